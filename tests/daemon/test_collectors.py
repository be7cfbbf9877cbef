"""Per-engine collectors against real captures (vLLM, Triton) and documented text (the rest)."""

from __future__ import annotations

import pytest

from daemon import prom
from daemon.collectors import base as b
from daemon.collectors import detect_engine, read
from daemon.collectors.window import CounterWindow
from tests.daemon import doc_expositions as docs
from tests.daemon.helpers import TRITON, VLLM_IDLE, VLLM_LOAD, set_counter


def reading(text: str, engine: str | None = None, ts: float = 0.0) -> b.RawReading:
    expo = prom.parse(text)
    return read(expo, engine or detect_engine(expo) or "?", ts)


@pytest.mark.parametrize(
    ("text", "engine"),
    [
        (VLLM_IDLE, "vllm"),
        (VLLM_LOAD, "vllm"),
        (TRITON, "triton"),
        (docs.trt_llm(), "triton"),
        (docs.sglang(), "sglang"),
        (docs.tgi(), "tgi"),
        (docs.llamacpp(), "llamacpp"),
    ],
)
def test_engine_is_detected_from_the_exposition(text: str, engine: str) -> None:
    assert detect_engine(prom.parse(text)) == engine


def test_unrelated_exposition_is_no_engine() -> None:
    assert detect_engine(prom.parse("process_cpu_seconds_total 3\nnode_load1 0.5\n")) is None


def test_vllm_capture_maps_every_signal() -> None:
    r = reading(VLLM_LOAD)
    assert r.gauges == {b.RUNNING: 3.0, b.WAITING: 6.0, b.KV_CACHE_USAGE: pytest.approx(0.0083048, rel=1e-4)}
    assert r.counters[b.PREFIX_QUERIES] == 6354.0 and r.counters[b.PREFIX_HITS] == 2304.0
    assert r.counters[b.PROMPT_TOKENS] == 5512.0 and r.counters[b.GENERATION_TOKENS] == 26.0
    assert r.counters[b.REQUESTS_SUCCESS] == 3.0 and r.counters[b.REQUESTS_FAILURE] == 0.0
    assert set(r.histograms) == {b.TTFT, b.ITL, b.E2E, b.QUEUE, b.PREFILL}
    assert r.histograms[b.TTFT].count == 5.0
    assert r.histograms[b.PREFILL].count == 3.0 and r.histograms[b.PREFILL].sum == pytest.approx(1.1109379)
    assert r.info["cache_config"]["enable_prefix_caching"] == "True"
    assert r.info["models"] == ["tiny"] and r.start_time == pytest.approx(1.7955146338e9)


def _as_old_vllm(text: str, keep_new: bool) -> str:
    """The same capture as vLLM <= 0.9.1 (old names only) or 0.10 (both names) would print it."""
    renames = {
        "vllm:kv_cache_usage_perc": "vllm:gpu_cache_usage_perc",
        "vllm:prefix_cache_queries": "vllm:gpu_prefix_cache_queries",
        "vllm:prefix_cache_hits": "vllm:gpu_prefix_cache_hits",
        "vllm:inter_token_latency_seconds": "vllm:time_per_output_token_seconds",
    }
    out = text
    for new, old in renames.items():
        out = out.replace(new, old)
    return (text + out) if keep_new else out


@pytest.mark.parametrize("keep_new", [False, True])
def test_vllm_renames_across_releases_read_the_same(keep_new: bool) -> None:
    text = _as_old_vllm(VLLM_LOAD, keep_new)
    if keep_new:  # the old copy gets absurd values: they must not be added to the new ones
        text = set_counter(text, "vllm:gpu_prefix_cache_hits_total", 999999)
    new, old = reading(VLLM_LOAD), reading(text)
    assert old.gauges[b.KV_CACHE_USAGE] == new.gauges[b.KV_CACHE_USAGE]
    assert old.counters[b.PREFIX_HITS] == new.counters[b.PREFIX_HITS] == 2304.0
    assert old.counters[b.PREFIX_QUERIES] == new.counters[b.PREFIX_QUERIES]
    assert old.histograms[b.ITL] == new.histograms[b.ITL]


def test_vllm_failures_count_errors_and_rejections_not_aborts() -> None:
    text = VLLM_IDLE.replace(
        'finished_reason="error",model_name="tiny"} 0.0', 'finished_reason="error",model_name="tiny"} 2.0'
    )
    text = text.replace(
        'finished_reason="abort",model_name="tiny"} 0.0', 'finished_reason="abort",model_name="tiny"} 5.0'
    )
    text = set_counter(text, "vllm:admission_rejections_total", 1.0)  # two reasons x 1
    r = reading(text)
    assert r.counters[b.REQUESTS_FAILURE] == 4.0
    assert r.counters[b.REQUESTS_SUCCESS] == 3.0


def test_triton_core_capture_gives_request_queue_and_compute_means() -> None:
    r1 = reading(TRITON, ts=0)
    assert r1.counters[b.REQUESTS_SUCCESS] == 20 and r1.gauges[b.WAITING] == 0
    text2 = set_counter(TRITON, "nv_inference_request_success", 30)
    text2 = set_counter(text2, "nv_inference_request_duration_us", 27852 + 10 * 5000)
    text2 = set_counter(text2, "nv_inference_queue_duration_us", 368 + 10 * 100)
    text2 = set_counter(text2, "nv_inference_compute_infer_duration_us", 25931 + 10 * 4000)
    w = CounterWindow("t", 60)
    w.update(r1)
    res = w.update(reading(text2, ts=10))
    assert res.sample.requests_success_per_s == pytest.approx(1.0)
    assert res.extras["e2e_mean_s"] == pytest.approx(0.005)
    assert res.extras["queue_mean_s"] == pytest.approx(0.0001)
    assert res.extras["compute_mean_s"] == pytest.approx(0.004)
    assert res.sample.e2e_p50_s is None  # a mean is not a percentile: the column stays honest
    # ...and the means have their own columns (schema 3), so they are stored with the sample.
    assert (res.sample.e2e_mean_s, res.sample.queue_mean_s, res.sample.compute_mean_s) == pytest.approx(
        (0.005, 0.0001, 0.004)
    )


def test_triton_summary_and_first_response_histogram_are_used_when_enabled() -> None:
    extra = "\n".join(
        [
            "# TYPE nv_inference_request_summary_us summary",
            'nv_inference_request_summary_us{model="echo",version="1",quantile="0.5"} 1200',
            'nv_inference_request_summary_us{model="echo",version="1",quantile="0.95"} 4000',
            'nv_inference_request_summary_us_sum{model="echo",version="1"} 27852',
            'nv_inference_request_summary_us_count{model="echo",version="1"} 20',
            "# TYPE nv_inference_first_response_histogram_ms histogram",
            'nv_inference_first_response_histogram_ms_bucket{model="echo",version="1",le="100"} 10',
            'nv_inference_first_response_histogram_ms_bucket{model="echo",version="1",le="500"} 20',
            'nv_inference_first_response_histogram_ms_bucket{model="echo",version="1",le="+Inf"} 20',
            'nv_inference_first_response_histogram_ms_sum{model="echo",version="1"} 2000',
            'nv_inference_first_response_histogram_ms_count{model="echo",version="1"} 20',
            "",
        ]
    )
    w = CounterWindow("t", 60)
    res = w.update(reading(TRITON + extra, ts=0))
    assert res.sample.e2e_p50_s == pytest.approx(0.0012) and res.sample.e2e_p95_s == pytest.approx(0.004)
    assert reading(TRITON + extra).histograms[b.TTFT].buckets == {0.1: 10, 0.5: 20, float("inf"): 20}


def test_trt_llm_families_from_the_documentation() -> None:
    r = reading(docs.trt_llm())
    assert r.gauges[b.RUNNING] == 3 and r.gauges[b.WAITING] == 2 + 1  # executor queue + Triton queue
    assert r.gauges[b.KV_CACHE_USAGE] == 0.3 and r.gauges[b.PAUSED] == 1
    assert r.gauges[b.GPU_MEM_USED] == 70e9 and r.gauges[b.GPU_MEM_TOTAL] == 80e9
    assert r.counters[b.REQUESTS_FAILURE] == 1  # REJECTED counts, CANCELED does not
    assert r.info["backend"] == "tensorrtllm" and r.info["tokens_per_block"] == 64
    # Before v0.18: no `waiting`, no `fraction` -> derived from active-scheduled and used/max.
    old = reading(docs.trt_llm(waiting=None, fraction=None, pending=0))
    assert old.gauges[b.WAITING] == 2 and old.gauges[b.KV_CACHE_USAGE] == pytest.approx(0.3)


def test_trt_llm_prefix_reuse_estimate_is_windowed() -> None:
    w = CounterWindow("t", 60)
    w.update(reading(docs.trt_llm(reused=4, input_tokens=1000), ts=0))
    res = w.update(reading(docs.trt_llm(reused=10, input_tokens=2000, success=20, output_tokens=400), ts=10))
    # 6 reused blocks x 64 tokens over 1000 new prompt tokens
    assert res.sample.prefix_hit_rate == pytest.approx(0.384)
    assert res.sample.prompt_tokens_per_s == pytest.approx(100.0)
    assert res.sample.generation_tokens_per_s == pytest.approx(20.0)


def test_sglang_from_the_documentation() -> None:
    r = reading(docs.sglang())
    assert r.gauges[b.RUNNING] == 4 and r.gauges[b.WAITING] == 2 and r.gauges[b.KV_CACHE_USAGE] == 0.28
    assert r.gauges[b.GPU_MEM_USED] == pytest.approx(65 * 2**30)
    assert r.counters[b.PREFIX_HITS] == 600 and r.counters[b.PREFIX_QUERIES] == 1000
    w = CounterWindow("s", 60)
    w.update(r)
    res = w.update(reading(docs.sglang(prompt=3000, cached=2200, retracted=3, ttft_n=20), ts=5))
    assert res.sample.prefix_hit_rate == pytest.approx(0.8)  # Δcached 1600 / Δprompt 2000, not 2200/3000
    assert res.sample.preemptions == 3
    assert res.sample.ttft_p50_s is not None and 0.1 <= res.sample.ttft_p50_s <= 0.5


def test_sglang_metric_names_used_exist_in_the_0_5_23_definitions() -> None:
    from tests.daemon.helpers import FIXTURES

    defined = {
        line.split("\t")[1]
        for line in (FIXTURES / "sglang-0.5.23-metric-definitions.tsv").read_text().splitlines()
        if "\t" in line
    }
    import inspect

    from daemon.collectors import sglang

    used = set(__import__("re").findall(r'"(sglang:[a-z_]+)"', inspect.getsource(sglang)))
    used |= {f"sglang:{n}_memory_usage_gb" for n in ("weight", "kv_cache", "graph")}
    counters = {n for n in used if n.endswith("_total")}
    # prometheus_client adds `_total` to counters defined without it
    missing = {n for n in used - defined if n.removesuffix("_total") not in defined}
    assert not missing, missing
    assert counters


@pytest.mark.parametrize("summary", [False, True])
def test_tgi_histograms_or_summaries(summary: bool) -> None:
    r = reading(docs.tgi(summary=summary))
    assert r.gauges[b.RUNNING] == 8 and r.gauges[b.WAITING] == 12
    assert r.counters[b.REQUESTS_FAILURE] == 2  # validation errors are the client's
    assert (b.E2E in r.quantiles) == summary and (b.E2E in r.histograms) != summary
    w = CounterWindow("g", 60)
    w.update(r)
    res = w.update(reading(docs.tgi(success=200, input_sum=10000, gen_sum=3000, summary=summary), ts=10))
    assert res.sample.prompt_tokens_per_s == pytest.approx(500.0)
    assert res.sample.requests_success_per_s == pytest.approx(10.0)
    if summary:
        assert res.sample.e2e_p50_s == 0.8 and res.sample.e2e_p95_s == 2.0
    else:
        assert res.sample.e2e_p50_s is not None and 0.5 < res.sample.e2e_p50_s <= 1.0


def test_llamacpp_counts_cached_tokens_as_queries_and_hits() -> None:
    w = CounterWindow("l", 60)
    w.update(reading(docs.llamacpp(), ts=0))
    res = w.update(reading(docs.llamacpp(prompt=500, cached=1500, predicted=200, predicted_s=4.0), ts=10))
    assert res.sample.prefix_queries == 1000 and res.sample.prefix_hits == 900
    assert res.sample.prefix_hit_rate == pytest.approx(0.9)
    assert res.sample.prompt_tokens_per_s == pytest.approx(100.0)
    assert res.extras["itl_mean_s"] == pytest.approx(0.02)
    assert res.sample.running == 2 and res.sample.waiting == 3


@pytest.mark.parametrize(
    ("text", "engine"),
    [
        (VLLM_IDLE, "vllm"),
        (VLLM_LOAD, "vllm"),
        (_as_old_vllm(VLLM_LOAD, False), "vllm"),
        (TRITON, "triton"),
        (docs.trt_llm(), "triton"),
        (docs.trt_llm(waiting=None, fraction=None), "triton"),
        (docs.sglang(), "sglang"),
        (docs.tgi(), "tgi"),
        (docs.tgi(summary=True), "tgi"),
        (docs.llamacpp(), "llamacpp"),
    ],
)
def test_filtered_parse_reads_exactly_what_the_full_parse_reads(text: str, engine: str) -> None:
    from daemon.collectors import wanted_names

    full = read(prom.parse(text), engine, 1.0)
    only = read(prom.parse(text, only=wanted_names(engine)), engine, 1.0)
    assert only == full


def test_filtered_parse_refuses_an_exposition_without_any_wanted_name() -> None:
    from daemon.collectors import wanted_names

    with pytest.raises(prom.ExpositionError, match="none of the expected"):
        prom.parse(TRITON, only=wanted_names("vllm"))
