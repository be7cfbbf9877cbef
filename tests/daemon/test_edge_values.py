"""Values checked at the edge: NaN, +Inf and negative gauges in real exposition text are rejected
with the reason, the sample is marked suspect, nothing of it is shown as data or becomes a bottleneck."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from daemon import prom
from daemon.analysis import Analyzer
from daemon.collectors import read
from daemon.collectors.checks import check_sample
from daemon.collectors.window import CounterWindow
from daemon.config import parse_config
from daemon.models import InstanceState, MetricSample
from daemon.poller import Poller
from daemon.store import AsyncStore, Store
from tests.daemon.helpers import TRITON, VLLM_IDLE, MetricsServer, set_counter, text_response

# Values as the exposition format spells them (`+Inf`, `NaN`), written into the real vLLM capture.
BROKEN_VLLM = set_counter(
    set_counter(
        set_counter(VLLM_IDLE, "vllm:num_requests_waiting", "+Inf"),  # type: ignore[arg-type]
        "vllm:kv_cache_usage_perc",
        "-0.05",
    ),  # type: ignore[arg-type]
    "vllm:num_requests_running",
    "NaN",
)  # type: ignore[arg-type]


def _sample(
    text: str, engine: str = "vllm", window: CounterWindow | None = None, ts: float = 1000.0
) -> MetricSample:
    window = window or CounterWindow("t", 60)
    return window.update(read(prom.parse(text), engine, ts)).sample


def test_the_broken_text_really_carries_nan_inf_and_negative() -> None:
    assert "} +Inf\n" in BROKEN_VLLM and "} NaN\n" in BROKEN_VLLM and "} -0.05\n" in BROKEN_VLLM
    expo = prom.parse(BROKEN_VLLM)
    assert math.isinf(expo.series("vllm:num_requests_waiting")[0][1])
    assert expo.series("vllm:kv_cache_usage_perc")[0][1] == -0.05
    assert math.isnan(expo.series("vllm:num_requests_running")[0][1])


def test_nan_inf_and_negative_gauges_are_rejected_with_reasons() -> None:
    sample = _sample(BROKEN_VLLM)
    assert sample.waiting is None and sample.kv_cache_usage is None and sample.running is None
    assert sample.suspect
    reason = sample.suspect_reason or ""
    assert "waiting=inf rejected (infinite)" in reason
    assert "kv_cache_usage=-0.05 rejected (below 0)" in reason
    assert "vllm:num_requests_running is NaN" in reason
    healthy = _sample(VLLM_IDLE)
    assert not healthy.suspect and healthy.suspect_reason is None and healthy.running is not None


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("vllm:kv_cache_usage_perc", "1.5", "kv_cache_usage"),
        ("vllm:kv_cache_usage_perc", "+Inf", "kv_cache_usage"),
        ("vllm:num_requests_waiting", "-5", "waiting"),
        ("vllm:num_requests_running", "-Inf", "running"),
    ],
)
def test_each_out_of_range_gauge_is_dropped(name: str, value: str, field: str) -> None:
    text = set_counter(VLLM_IDLE, name, value)  # type: ignore[arg-type]
    assert f"}} {value}\n" in text
    sample = _sample(text)
    assert getattr(sample, field) is None and sample.suspect and field in (sample.suspect_reason or "")


def test_an_infinite_counter_yields_no_rate_and_no_hit_rate() -> None:
    window = CounterWindow("t", 60)
    _sample(VLLM_IDLE, window=window, ts=1000.0)
    later = set_counter(VLLM_IDLE, "vllm:prefix_cache_queries_total", "+Inf")  # type: ignore[arg-type]
    sample = _sample(later, window=window, ts=1001.0)
    assert sample.prefix_hit_rate is None and sample.prefix_queries is None
    assert sample.suspect and "prefix_queries=inf" in (sample.suspect_reason or "")


def test_triton_negative_pending_count_is_rejected() -> None:
    text = set_counter(TRITON, "nv_inference_pending_request_count", "-5")  # type: ignore[arg-type]
    assert "nv_inference_pending_request_count" in text
    sample = _sample(text, engine="triton")
    assert sample.waiting is None and sample.suspect


def test_computed_signals_out_of_range_are_cleared() -> None:
    s = MetricSample(
        instance="t",
        ttft_p95_s=math.inf,
        prefix_hit_rate=1.2,
        generation_tokens_per_s=-1.0,
        queue_p95_s=math.nan,
        running=3.0,
    )
    reasons = check_sample(s)
    assert s.ttft_p95_s is None and s.prefix_hit_rate is None and s.generation_tokens_per_s is None
    assert s.queue_p95_s is None and s.running == 3.0 and len(reasons) == 4


def test_a_suspect_sample_never_becomes_a_bottleneck() -> None:
    config = parse_config("")
    analyzer = Analyzer(config)
    full = dict(instance="t", ts=1.0, kv_cache_usage=0.99, waiting=100.0, running=1.0)
    assert not analyzer.observe(
        MetricSample(**full, suspect=True, suspect_reason="kv_cache_usage=inf rejected")
    )
    # The same numbers from a trustworthy sample do open bottlenecks: the skip is what protected.
    assert analyzer.observe(MetricSample(**full))


async def test_the_poller_stores_and_shows_a_suspect_sample(tmp_path: Path) -> None:
    with MetricsServer(lambda n, path: text_response(BROKEN_VLLM)) as server:
        config = parse_config(
            f'[[targets]]\nname = "bad"\nurl = "{server.url}"\nengine = "vllm"\ntimeout_s = 2\n'
        )
        store = AsyncStore(Store(f"sqlite:///{tmp_path / 'db.sqlite'}"))
        seen: list = []
        analyzer = Analyzer(config)
        poller = Poller(config, store, on_sample=lambda name, res: seen.extend(analyzer.observe(res.sample)))
        try:
            assert await poller.poll_target(poller.targets["bad"])
            assert await poller.poll_target(poller.targets["bad"])
            await poller.flush()
        finally:
            await poller.aclose()
        status = poller.status["bad"]
        assert status.state == InstanceState.UP
        assert (status.reason or "").startswith("suspect values ignored: ") and "waiting=inf" in status.reason
        stored = store.store.all(MetricSample)
        assert len(stored) == 2 and all(
            s.suspect and s.waiting is None and s.kv_cache_usage is None for s in stored
        )
        assert "kv_cache_usage=-0.05" in (stored[0].suspect_reason or "")
        assert seen == []  # no bottleneck from any of it
        store.close()
