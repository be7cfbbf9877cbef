"""Windowed maths: quantiles from bucket deltas, rates from counter deltas, counter resets."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.collectors import base as b
from daemon.collectors.window import CounterWindow, histogram_quantile
from daemon.models import SIGNAL_FIELDS

INF = math.inf


def test_quantile_interpolates_inside_the_bucket() -> None:
    cur = {0.1: 10, 0.5: 30, 1.0: 40, INF: 40}
    assert histogram_quantile(0.5, cur, None) == pytest.approx(0.1 + 0.4 * (20 - 10) / 20)
    assert histogram_quantile(0.25, cur, None) == pytest.approx(0.1 * 10 / 10)


def test_quantile_uses_only_the_window_delta() -> None:
    base = {0.1: 1000, 0.5: 1000, 1.0: 1000, INF: 1000}  # lifetime: everything fast
    cur = {0.1: 1000, 0.5: 1000, 1.0: 1010, INF: 1010}  # window: 10 slow observations
    assert histogram_quantile(0.5, cur, base) == pytest.approx(0.75)
    assert histogram_quantile(0.5, base, base) is None  # no observation in the window


def test_quantile_in_the_inf_bucket_is_the_largest_finite_bound() -> None:
    assert histogram_quantile(0.95, {0.1: 0, 1.0: 1, INF: 100}, None) == 1.0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=2, max_size=12), st.floats(0.01, 0.99))
def test_quantile_lies_within_the_bucket_range(counts: list[int], q: float) -> None:
    bounds = [0.01 * 2**i for i in range(len(counts) - 1)] + [INF]
    cumulative, total = {}, 0
    for bound, c in zip(bounds, counts):
        total += c
        cumulative[bound] = total
    value = histogram_quantile(q, cumulative, None)
    if total == 0:
        assert value is None
    else:
        assert value is not None and 0 <= value <= bounds[-2] if len(bounds) > 1 else True


def _reading(
    ts: float,
    queries: float,
    hits: float,
    ttft: dict[float, float] | None = None,
    start: float | None = 100.0,
) -> b.RawReading:
    r = b.RawReading(engine="vllm", ts=ts, start_time=start)
    r.counters = {b.PREFIX_QUERIES: queries, b.PREFIX_HITS: hits, b.PROMPT_TOKENS: queries}
    if ttft is not None:
        r.histograms[b.TTFT] = b.Histogram(buckets=ttft, count=max(ttft.values()), sum=0.0)
    return r


def test_hit_rate_is_window_delta_not_lifetime_ratio() -> None:
    w = CounterWindow("x", window_s=60)
    w.update(_reading(0, queries=10000, hits=9000))  # lifetime 90%
    res = w.update(_reading(10, queries=11000, hits=9100))  # window 10%
    assert res.sample.prefix_hit_rate == pytest.approx(0.1)
    assert res.sample.prefix_queries == 1000 and res.sample.prefix_hits == 100
    assert res.sample.prompt_tokens_per_s == pytest.approx(100.0) and res.sample.window_s == 10


def test_window_base_slides_to_cover_window_s() -> None:
    w = CounterWindow("x", window_s=30)
    for t in range(0, 101, 10):
        res = w.update(_reading(t, queries=t * 10, hits=t))
    assert res.sample.window_s == 30  # base = newest reading at least 30 s old
    assert res.sample.prefix_queries == 300


@pytest.mark.parametrize("use_start_time", [True, False])
def test_counter_reset_is_detected_and_never_negative(use_start_time: bool) -> None:
    w = CounterWindow("x", window_s=60)
    w.update(_reading(0, 5000, 4000, {0.1: 50, INF: 60}, start=100.0))
    w.update(_reading(10, 6000, 4500, {0.1: 55, INF: 70}, start=100.0))
    # restart: counters back near zero (and, in one variant, a new process start time)
    res = w.update(_reading(20, 300, 30, {0.1: 2, INF: 3}, start=200.0 if use_start_time else 100.0))
    s = res.sample
    assert s.counter_reset is True and w.resets == 1
    assert s.prefix_queries == 300 and s.prefix_hits == 30 and s.prefix_hit_rate == pytest.approx(0.1)
    for name in SIGNAL_FIELDS:
        value = getattr(s, name)
        assert value is None or value >= 0, name
    assert s.ttft_p50_s is not None and s.ttft_p50_s <= 0.1
    nxt = w.update(_reading(30, 400, 40, {0.1: 3, INF: 4}, start=200.0 if use_start_time else 100.0))
    assert nxt.sample.counter_reset is False and nxt.sample.prefix_queries == 400  # base: zeros at t=10


def test_restart_detected_by_start_time_even_when_counters_grew_past_old_values() -> None:
    w = CounterWindow("x", window_s=60)
    w.update(_reading(0, 100, 10, start=100.0))
    res = w.update(_reading(10, 500, 50, start=105.0))
    assert res.sample.counter_reset and res.sample.prefix_queries == 500


def test_first_reading_has_gauges_but_no_rates() -> None:
    r = _reading(0, 100, 10)
    r.gauges = {b.RUNNING: 2, b.WAITING: 1}
    s = CounterWindow("x", 60).update(r).sample
    assert s.running == 2 and s.waiting == 1
    assert s.window_s is None and s.prefix_hit_rate is None and s.prompt_tokens_per_s is None


def test_prefill_seconds_are_the_window_delta_of_the_prefill_sum() -> None:
    def at(ts: float, total_s: float, count: float) -> b.RawReading:
        r = _reading(ts, queries=1000 + ts, hits=ts)
        r.histograms[b.PREFILL] = b.Histogram(buckets={INF: count}, count=count, sum=total_s)
        return r

    w = CounterWindow("x", window_s=60)
    assert w.update(at(0, 4.0, 10)).sample.prefill_seconds is None  # no base yet
    res = w.update(at(10, 5.5, 13))
    assert res.sample.prefill_seconds == pytest.approx(1.5)
    # Not a latency with a percentile or a mean column: only the window's seconds are kept.
    assert "prefill_mean_s" not in res.extras
    assert w.update(at(20, 5.5, 13)).sample.prefill_seconds == pytest.approx(1.5)  # base still t=0
