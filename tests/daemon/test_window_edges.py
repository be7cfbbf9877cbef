"""Windowed samples, edge by edge: the cases the mutation run (docs/mutation.md) found unchecked.

Each test names the behaviour a user reads off the sample; the readings are built by hand so every
expected figure is worked out here from the counters, not taken from the code under test.
"""

from __future__ import annotations

import math

import pytest

from daemon.collectors import base as b
from daemon.collectors.window import MAX_READINGS, CounterWindow, build_sample, histogram_quantile

INF = math.inf


def reading(
    ts: float, *, engine: str = "vllm", start: float | None = None, **counters: float
) -> b.RawReading:
    r = b.RawReading(engine=engine, ts=ts, start_time=start)
    r.counters = dict(counters)
    return r


def with_ttft(r: b.RawReading, buckets: dict[float, float], total_s: float) -> b.RawReading:
    r.histograms[b.TTFT] = b.Histogram(buckets=buckets, count=buckets[INF], sum=total_s)
    return r


def test_sample_carries_identity_and_gauges_through() -> None:
    r = reading(5.0, engine="sglang")
    r.gauges = {
        b.RUNNING: 3,
        b.WAITING: 4,
        b.KV_CACHE_USAGE: 0.5,
        b.GPU_MEM_USED: 7e9,
        b.GPU_MEM_TOTAL: 8e9,
        b.PAUSED: 2,
    }
    res = CounterWindow("gpu-1", 60).update(r)
    s = res.sample
    assert (s.instance, s.ts, s.engine) == ("gpu-1", 5.0, "sglang")
    assert (s.running, s.waiting, s.kv_cache_usage) == (3, 4, 0.5)
    assert (s.gpu_memory_used_bytes, s.gpu_memory_total_bytes) == (7e9, 8e9)
    assert res.extras[b.PAUSED] == 2 and s.paused_requests == 2
    assert res.reading is r and s.counter_reset is False and s.suspect is False
    nxt = reading(6.0, engine="sglang")
    w = CounterWindow("gpu-1", 60)
    w.update(r)
    assert w.update(nxt).reading is nxt  # with a base too (the other return path)


def test_histogram_percentiles_and_mean_use_the_window_delta() -> None:
    w = CounterWindow("x", 60)
    # Lifetime: 100 fast requests (all <= 0.1 s, 5 s in total).
    w.update(with_ttft(reading(0), {0.1: 100, 1.0: 100, INF: 100}, total_s=5.0))
    # Window: 10 more, all between 0.1 and 1.0 s, 6 s in total.
    res = w.update(with_ttft(reading(10), {0.1: 100, 1.0: 110, INF: 110}, total_s=11.0))
    s = res.sample
    assert s.ttft_p50_s == pytest.approx(0.1 + 0.9 * 0.5)
    assert s.ttft_p95_s == pytest.approx(0.1 + 0.9 * 0.95)
    assert res.extras["ttft_mean_s"] == pytest.approx(0.6)


def test_no_observation_in_the_window_gives_no_percentile_and_no_mean() -> None:
    w = CounterWindow("x", 60)
    w.update(with_ttft(reading(0), {0.1: 5, INF: 5}, total_s=0.2))
    res = w.update(with_ttft(reading(10), {0.1: 5, INF: 5}, total_s=0.2))
    assert res.sample.ttft_p50_s is None and res.sample.ttft_p95_s is None
    assert "ttft_mean_s" not in res.extras


def test_a_histogram_count_going_down_alone_is_a_reset() -> None:
    """Counters grew, start time unchanged: only the histogram says the server restarted."""
    w = CounterWindow("x", 60)
    w.update(with_ttft(reading(0, start=100.0, a=10), {0.1: 50, INF: 50}, total_s=1.0))
    res = w.update(with_ttft(reading(10, start=100.0, a=20), {0.1: 4, INF: 4}, total_s=0.2))
    assert res.sample.counter_reset is True
    assert res.extras["ttft_mean_s"] == pytest.approx(0.05)  # 0.2 s over the 4 since the restart


def test_an_unchanged_histogram_count_is_not_a_reset() -> None:
    w = CounterWindow("x", 60)
    w.update(with_ttft(reading(0, a=1), {0.1: 5, INF: 5}, total_s=0.2))
    res = w.update(with_ttft(reading(10, a=2), {0.1: 5, INF: 5}, total_s=0.2))
    assert res.sample.counter_reset is False


def test_a_start_time_within_a_second_is_not_a_restart() -> None:
    """Exporters round the process start time; a jitter of up to 1 s is the same process."""
    w = CounterWindow("x", 60)
    w.update(reading(0, start=100.0, a=10))
    assert w.update(reading(10, start=101.0, a=20)).sample.counter_reset is False
    assert w.update(reading(20, start=102.5, a=30)).sample.counter_reset is True


def test_every_reset_is_counted() -> None:
    w = CounterWindow("x", 60)
    w.update(reading(0, **{b.REQUESTS_SUCCESS: 100}))
    w.update(reading(10, **{b.REQUESTS_SUCCESS: 5}))
    w.update(reading(20, **{b.REQUESTS_SUCCESS: 1}))
    assert w.resets == 2


def test_after_a_reset_the_zero_base_keeps_the_new_start_time() -> None:
    """The next reading of the restarted process compares its start time with the restarted one's."""
    w = CounterWindow("x", 60)
    w.update(reading(0, start=100.0, a=10))
    w.update(reading(10, start=200.0, a=2))
    # One more reading of the same (restarted) process, with a history of just the zero base.
    res = w.update(reading(20, start=200.0, a=4))
    assert res.sample.counter_reset is False and w.resets == 1


def test_rates_tokens_preemptions_and_failures() -> None:
    w = CounterWindow("x", 60)
    zero = {
        b.GENERATION_TOKENS: 0,
        b.PROMPT_TOKENS: 0,
        b.PREEMPTIONS: 3,
        b.REQUESTS_SUCCESS: 0,
        b.REQUESTS_FAILURE: 1,
    }
    w.update(reading(0, **zero))
    res = w.update(
        reading(
            4,
            **{
                b.GENERATION_TOKENS: 400,
                b.PROMPT_TOKENS: 1200,
                b.PREEMPTIONS: 5,
                b.REQUESTS_SUCCESS: 8,
                b.REQUESTS_FAILURE: 3,
            },
        )
    )
    s = res.sample
    assert s.generation_tokens_per_s == pytest.approx(100.0)
    assert s.prompt_tokens_per_s == pytest.approx(300.0)
    assert s.preemptions == 2  # a count over the window, not a rate
    assert s.requests_success_per_s == pytest.approx(2.0) and s.requests_failure_per_s == pytest.approx(0.5)


def test_hit_rate_is_capped_at_one_and_needs_queries() -> None:
    """Hits and queries are scraped one after the other: hits may run ahead of queries by a little."""
    w = CounterWindow("x", 60)
    w.update(reading(0, **{b.PREFIX_QUERIES: 0, b.PREFIX_HITS: 0}))
    assert w.update(reading(10, **{b.PREFIX_QUERIES: 100, b.PREFIX_HITS: 103})).sample.prefix_hit_rate == 1.0
    w2 = CounterWindow("y", 60)
    w2.update(reading(0, **{b.PREFIX_QUERIES: 50, b.PREFIX_HITS: 0}))
    idle = w2.update(reading(10, **{b.PREFIX_QUERIES: 50, b.PREFIX_HITS: 0})).sample
    assert idle.prefix_hit_rate is None and idle.prefix_queries == 0  # no queries: no rate, not 0 %


def test_a_reading_with_the_same_timestamp_gives_no_rates() -> None:
    w = CounterWindow("x", 60)
    w.update(reading(10, **{b.REQUESTS_SUCCESS: 1}))
    s = w.update(reading(10, **{b.REQUESTS_SUCCESS: 5})).sample
    assert s.window_s is None and s.requests_success_per_s is None


def test_a_sub_second_window_still_gives_rates() -> None:
    w = CounterWindow("x", 60)
    w.update(reading(0, **{b.REQUESTS_SUCCESS: 0}))
    s = w.update(reading(0.5, **{b.REQUESTS_SUCCESS: 1})).sample
    assert s.window_s == 0.5 and s.requests_success_per_s == pytest.approx(2.0)


def test_mean_pairs_give_window_means() -> None:
    w = CounterWindow("x", 60)
    first = reading(0)
    first.put_mean_pair(b.QUEUE, 10.0, 100)
    w.update(first)
    second = reading(10)
    second.put_mean_pair(b.QUEUE, 12.0, 120)
    res = w.update(second)
    assert res.extras["queue_mean_s"] == pytest.approx(0.1) and res.sample.queue_mean_s == pytest.approx(0.1)


def test_summary_quantiles_are_taken_as_the_server_windowed_them() -> None:
    r = reading(0, engine="triton")
    r.quantiles[b.E2E] = {0.5: 0.2, 0.9: 0.4, 0.95: 0.5, 0.99: 0.9}
    s = CounterWindow("x", 60).update(r).sample  # no base needed: summaries are windowed already
    assert s.e2e_p50_s == 0.2 and s.e2e_p95_s == 0.5


def test_summary_without_a_near_quantile_or_with_nan_gives_nothing() -> None:
    r = reading(0, engine="triton")
    r.quantiles[b.E2E] = {0.5: math.nan, 0.8: 0.9}  # no 0.95 within 0.05; p50 not a number
    s = build_sample("x", r, None).sample
    assert s.e2e_p50_s is None and s.e2e_p95_s is None
    assert s.counter_reset is False  # build_sample's default: no reset unless the window says so
    r.quantiles[b.E2E] = {0.9: 0.4}  # exactly 0.05 from 0.95: still taken
    assert build_sample("x", r, None).sample.e2e_p95_s == 0.4


def test_the_window_base_slides_only_past_readings_at_least_window_s_old() -> None:
    w = CounterWindow("x", window_s=10)
    w.update(reading(0, a=0))
    w.update(reading(5, a=5))
    s = w.update(reading(10, a=10)).sample
    assert s.window_s == 10  # base t=0 is exactly window_s old: kept as the base
    s = w.update(reading(14, a=14)).sample
    assert s.window_s == 14  # t=5 is only 9 s old: t=0 stays the base
    s = w.update(reading(15, a=15)).sample
    assert s.window_s == 10  # t=5 is now exactly window_s old: it becomes the base


def test_the_base_slides_with_only_two_readings_kept() -> None:
    w = CounterWindow("x", window_s=10)
    w.update(reading(0, a=0))
    w.update(reading(10, a=10))
    s = w.update(reading(20, a=30)).sample
    assert s.window_s == 10 and s.ts == 20  # base t=10, not t=0


def test_quantile_of_a_single_bucket_window() -> None:
    # All 4 observations in (0.1, 0.2]: p50 halfway, p100 the bound.
    assert histogram_quantile(0.5, {0.1: 0, 0.2: 4, INF: 4}, None) == pytest.approx(0.15)
    assert histogram_quantile(1.0, {0.1: 0, 0.2: 4, INF: 4}, None) == pytest.approx(0.2)
    # A rank exactly on a bucket's upper count belongs to that bucket.
    assert histogram_quantile(0.5, {0.1: 2, 0.2: 4, INF: 4}, None) == pytest.approx(0.1)


def test_quantile_with_one_observation_in_the_window() -> None:
    assert histogram_quantile(0.5, {0.1: 0, 0.2: 1, INF: 1}, None) == pytest.approx(0.15)


def test_quantile_first_bucket_interpolates_from_zero() -> None:
    assert histogram_quantile(0.5, {0.4: 2, INF: 2}, None) == pytest.approx(0.2)


def test_quantile_with_a_base_missing_a_bucket_counts_it_from_zero() -> None:
    # The base lacks the 0.2 bucket: its delta is its whole count, 14 (deltas 2, 14, 14 after the
    # running max). Rank 7 lies in (0.1, 0.2]: 0.1 + 0.1 * (7 - 2) / (14 - 2).
    assert histogram_quantile(0.5, {0.1: 12, 0.2: 14, INF: 14}, {0.1: 10, INF: 10}) == pytest.approx(
        0.1 + 0.5 / 12
    )


def test_one_observation_in_the_window_has_a_mean() -> None:
    w = CounterWindow("x", 60)
    w.update(with_ttft(reading(0), {0.1: 3, INF: 3}, total_s=0.15))
    res = w.update(with_ttft(reading(10), {0.1: 4, INF: 4}, total_s=0.22))
    assert res.extras["ttft_mean_s"] == pytest.approx(0.07)


def test_memory_is_capped_when_readings_never_age_out() -> None:
    """A window far longer than the history (a misbehaving clock): the ring keeps MAX_READINGS, so the
    base is no older than that many readings back."""
    w = CounterWindow("x", window_s=1e12)
    n = MAX_READINGS + 100
    for i in range(n):
        s = w.update(reading(float(i), a=float(i))).sample
    assert s.window_s is not None and s.window_s <= MAX_READINGS


def test_a_rejected_value_marks_the_sample_suspect_with_the_reason() -> None:
    r = reading(0)
    r.rejected = ["running=nan is not a finite number"]
    s = build_sample("x", r, None).sample
    assert s.suspect is True and "running=nan" in (s.suspect_reason or "")
    w = CounterWindow("y", 60)
    w.update(reading(0, **{b.PREFIX_QUERIES: 0, b.PREFIX_HITS: 0}))
    # A clean window is not suspect: the mark comes from the reasons, not from every sample.
    res = w.update(reading(10, **{b.PREFIX_QUERIES: 10, b.PREFIX_HITS: 5}))
    assert res.sample.suspect is False and res.sample.suspect_reason is None
