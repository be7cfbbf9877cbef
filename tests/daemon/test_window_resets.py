"""Counter resets seen only through a counter going down: Triton's core exposition.

Triton exports neither `process_start_time_seconds` nor (by default) a histogram, so the one sign of
a restart is that its cumulative counters fall. These tests parse Triton exposition text with the
daemon's own parser and collector, so the readings have exactly the shape a real scrape gives.
"""

from __future__ import annotations

import pytest

from daemon.collectors import base as b
from daemon.collectors import triton
from daemon.collectors.window import CounterWindow
from daemon.models import SIGNAL_FIELDS
from daemon.prom import parse


def triton_core(success: float, queue_us: float, duration_us: float, failure: float = 0) -> str:
    """Triton core metrics as the server prints them (no start time, no histograms)."""
    m = 'model="textgen",version="1"'
    return (
        "\n".join(
            [
                "# HELP nv_inference_request_success Number of successful inference requests, all batch sizes",
                "# TYPE nv_inference_request_success counter",
                f"nv_inference_request_success{{{m}}} {success}",
                "# TYPE nv_inference_request_failure counter",
                f'nv_inference_request_failure{{{m},reason="REJECTED"}} {failure}',
                "# TYPE nv_inference_request_duration_us counter",
                f"nv_inference_request_duration_us{{{m}}} {duration_us}",
                "# TYPE nv_inference_queue_duration_us counter",
                f"nv_inference_queue_duration_us{{{m}}} {queue_us}",
                "# TYPE nv_inference_pending_request_count gauge",
                f"nv_inference_pending_request_count{{{m}}} 0",
            ]
        )
        + "\n"
    )


def scrape(ts: float, **state: float) -> b.RawReading:
    return triton.read(parse(triton_core(**state)), ts)


def test_the_triton_reading_has_no_other_sign_of_a_restart() -> None:
    """The premise of the next test: if this changes, the reset test below may pass for another reason."""
    r = scrape(0, success=5, queue_us=1, duration_us=1)
    assert r.start_time is None and r.histograms == {} and r.counters


def test_triton_restart_is_a_reset_with_rates_since_the_restart() -> None:
    w = CounterWindow("triton-a", window_s=60)
    w.update(scrape(0, success=1000, queue_us=2_000_000, duration_us=50_000_000))
    before = w.update(scrape(10, success=1100, queue_us=2_500_000, duration_us=55_000_000)).sample
    assert before.counter_reset is False and before.requests_success_per_s == pytest.approx(10.0)

    # The server restarts: 30 requests since, 4 ms queue and 200 ms end to end each.
    res = w.update(scrape(20, success=30, queue_us=30 * 4_000, duration_us=30 * 200_000))
    s = res.sample
    assert s.counter_reset is True and w.resets == 1
    # Measured against zeros at the previous poll (t=10): 30 requests in 10 s.
    assert s.window_s == pytest.approx(10.0)
    assert s.requests_success_per_s == pytest.approx(3.0)
    assert res.extras["queue_mean_s"] == pytest.approx(0.004)
    assert res.extras["e2e_mean_s"] == pytest.approx(0.2)
    for name in SIGNAL_FIELDS:
        value = getattr(s, name)
        assert value is None or value >= 0, name

    # The next poll measures against the zero base too, not against the pre-restart history.
    nxt = w.update(scrape(30, success=50, queue_us=50 * 4_000, duration_us=50 * 200_000))
    assert nxt.sample.counter_reset is False
    assert nxt.sample.requests_success_per_s == pytest.approx(50 / 20)


def test_one_counter_going_down_is_enough() -> None:
    """Only the failure counter falls (success grew past its old value): still a restart."""
    w = CounterWindow("triton-b", window_s=60)
    w.update(scrape(0, success=10, queue_us=100, duration_us=1000, failure=7))
    res = w.update(scrape(10, success=40, queue_us=400, duration_us=4000, failure=2))
    assert res.sample.counter_reset is True
    assert res.sample.requests_failure_per_s == pytest.approx(0.2)
    assert res.sample.requests_success_per_s == pytest.approx(4.0)


def test_an_unchanged_counter_is_not_a_reset() -> None:
    """`<`, not `<=`: an idle server's counters stay put and that is no restart."""
    w = CounterWindow("triton-c", window_s=60)
    w.update(scrape(0, success=10, queue_us=100, duration_us=1000))
    res = w.update(scrape(10, success=10, queue_us=100, duration_us=1000))
    assert res.sample.counter_reset is False and w.resets == 0
    assert res.sample.requests_success_per_s == 0.0
