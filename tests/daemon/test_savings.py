"""What the prefix cache saved: sliding-window samples integrated so each token counts once."""

from __future__ import annotations

import pytest

from daemon.models import MetricSample
from daemon.savings import savings


def window(ts: float, hits: float, queries: float, *, window_s: float = 60.0, prefill_s: float | None = None):
    return MetricSample(
        instance="a",
        ts=ts,
        window_s=window_s,
        prefix_hits=hits,
        prefix_queries=queries,
        prefill_seconds=prefill_s,
    )


def test_overlapping_windows_count_each_token_once() -> None:
    # A steady 10 hits/s of 40 queried tokens/s, polled every second with a 60 s window: each sample holds
    # 600 hits. Over 120 polls after a first full window, that is 180 s of traffic: 1,800 hits, not 72,600.
    samples = [window(float(t), 600.0, 2400.0, prefill_s=18.0) for t in range(60, 181)]
    saved = savings(samples, since=0.0)
    assert saved.span_s == pytest.approx(180.0)
    assert saved.cached_tokens == pytest.approx(1800.0) and saved.queried_tokens == pytest.approx(7200.0)
    assert saved.computed_tokens == pytest.approx(5400.0)
    # 18 s of prefill per window for 1,800 computed tokens: 10 ms a token; 1,800 cached tokens saved 18 s.
    assert saved.prefill_s_per_token == pytest.approx(0.01)
    assert saved.prefill_seconds_saved == pytest.approx(18.0)
    assert saved.per_hour(saved.cached_tokens) == pytest.approx(36_000.0)
    assert saved.money_saved is None


def test_a_gap_counts_the_window_once_and_a_price_gives_money() -> None:
    # Two polls 10 minutes apart: the second window's 60 s, not the 600 s between them.
    samples = [window(60.0, 600.0, 1000.0), window(660.0, 300.0, 1000.0)]
    saved = savings(samples, since=0.0, price_per_million=2.0)
    assert saved.cached_tokens == pytest.approx(900.0) and saved.queried_tokens == pytest.approx(2000.0)
    assert saved.money_saved == pytest.approx(900 * 2.0 / 1e6)
    assert saved.prefill_s_per_token is None  # the engine exports no prefill time
    assert saved.per_hour(saved.prefill_seconds_saved) is None


def test_samples_without_a_window_and_before_since_are_left_out() -> None:
    samples = [
        window(5.0, 600.0, 600.0, window_s=0.0),  # a first reading: no window yet
        MetricSample(instance="a", ts=6.0, prefix_hits=5.0, prefix_queries=5.0),
        window(30.0, 60.0, 120.0, window_s=10.0),
    ]
    saved = savings(samples, since=25.0)
    # Only 5 of its 10 s fall after `since`.
    assert saved.cached_tokens == pytest.approx(30.0) and saved.span_s == pytest.approx(5.0)


def test_nothing_to_count_is_zero_with_no_rate() -> None:
    saved = savings([], since=0.0)
    assert saved.cached_tokens == 0 and saved.span_s == 0
    assert saved.per_hour(saved.cached_tokens) is None
