"""Triton Inference Server core (`nv_inference_*`, `nv_gpu_*`) plus the TensorRT-LLM backend
families (`nv_trt_llm_*`, `nv_llm_*_token_len`) -> RawReading.

Triton's latency metrics are cumulative microsecond counters by default (histograms and summaries
are opt-in via `--metrics-config`), so e2e/queue/compute come out as window means
(Δduration/Δsuccess); a summary's p50/p95 or the first-response histogram (TTFT, decoupled models
with `histogram_latencies=true`) are used when exported. Label sets are summed over models: the
sample describes the server instance.
"""

from __future__ import annotations

from daemon.collectors import base as b
from daemon.prom import Exposition

ENGINE = "triton"
US = 1e-6
MS = 1e-3

_TRT_REQ = "nv_trt_llm_request_metrics"
_TRT_KV = "nv_trt_llm_kv_cache_block_metrics"
_TRT_IFB = "nv_trt_llm_inflight_batcher_metrics"
_TRT_MEM = "nv_trt_llm_runtime_memory_metrics"


def score(expo: Exposition) -> int:
    return sum(1 for n in expo.names() if n.startswith(("nv_inference_", "nv_trt_llm_", "nv_llm_")))


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale


def read(expo: Exposition, ts: float) -> b.RawReading:
    r = b.RawReading(engine=ENGINE, ts=ts)
    success = expo.total("nv_inference_request_success")
    r.put_counter(b.REQUESTS_SUCCESS, success)
    # CANCELED is the client's doing; REJECTED (queue timeout), BACKEND and OTHER are the server's.
    r.put_counter(
        b.REQUESTS_FAILURE, expo.total("nv_inference_request_failure", exclude={"reason": ("CANCELED",)})
    )
    r.put_mean_pair(b.E2E, _scaled(expo.total("nv_inference_request_duration_us"), US), success)
    r.put_mean_pair(b.QUEUE, _scaled(expo.total("nv_inference_queue_duration_us"), US), success)
    compute_parts = [
        expo.total(f"nv_inference_compute_{p}_duration_us") for p in ("input", "infer", "output")
    ]
    if all(p is not None for p in compute_parts):
        r.put_mean_pair(b.COMPUTE, sum(p for p in compute_parts if p is not None) * US, success)

    for signal, base_name in (
        (b.E2E, "nv_inference_request_summary_us"),
        (b.QUEUE, "nv_inference_queue_summary_us"),
        (b.COMPUTE, "nv_inference_compute_infer_summary_us"),
    ):
        q = b.read_quantiles(expo, base_name, US)
        if q:
            r.quantiles[signal] = q
    ttft = b.read_histogram(expo, "nv_inference_first_response_histogram_ms", MS)
    if ttft is not None:
        r.histograms[b.TTFT] = ttft

    pending = expo.total("nv_inference_pending_request_count")
    r.put_gauge(b.GPU_MEM_USED, expo.total("nv_gpu_memory_used_bytes"))
    r.put_gauge(b.GPU_MEM_TOTAL, expo.total("nv_gpu_memory_total_bytes"))
    r.info["models"] = b.label_values(expo, "nv_inference_request_success", "model")

    if expo.has(_TRT_REQ) or expo.has(_TRT_KV):
        _read_trt_llm(expo, r, pending)
    else:
        r.put_gauge(b.WAITING, pending)
    return r


def _read_trt_llm(expo: Exposition, r: b.RawReading, pending: float | None) -> None:
    r.info["backend"] = "tensorrtllm"
    active = expo.total(_TRT_REQ, where={"request_type": "active"})
    scheduled = expo.total(_TRT_REQ, where={"request_type": "scheduled"})
    waiting = expo.total(_TRT_REQ, where={"request_type": "waiting"})  # >= v0.18
    if waiting is None and active is not None and scheduled is not None:
        waiting = max(active - scheduled, 0.0)  # what v0.18 computes, for older backends
    r.put_gauge(b.RUNNING, scheduled if scheduled is not None else active)
    if waiting is not None or pending is not None:
        # Triton's own queue and the executor's are disjoint stages of the same wait.
        r.put_gauge(b.WAITING, (waiting or 0.0) + (pending or 0.0))

    fraction = expo.maximum_where(_TRT_KV, "kv_cache_block_type", "fraction")
    if fraction is None:
        used = expo.total(_TRT_KV, where={"kv_cache_block_type": "used"})
        cap = expo.total(_TRT_KV, where={"kv_cache_block_type": "max"})
        fraction = used / cap if used is not None and cap else None
    r.put_gauge(b.KV_CACHE_USAGE, fraction)
    r.put_gauge(b.PAUSED, expo.total(_TRT_IFB, where={"inflight_batcher_specific_metric": "paused_requests"}))
    if b.GPU_MEM_USED not in r.gauges:
        r.put_gauge(b.GPU_MEM_USED, expo.total(_TRT_MEM, where={"memory_type": "gpu"}))

    prompt = expo.total("nv_llm_input_token_len_sum")
    r.put_counter(b.PROMPT_TOKENS, prompt)
    r.put_counter(b.GENERATION_TOKENS, expo.total("nv_llm_output_token_len_sum"))
    # TRT-LLM exports only cumulative *reused blocks*; blocks x tokens-per-block over the prompt
    # tokens is the closest estimate of a token hit rate it allows (an estimate: a reused block may
    # be partially matched). Needs both the reuse counter and the per-request token histogram.
    reused = expo.total(_TRT_KV, where={"kv_cache_block_type": "reused"})
    tokens_per = expo.total(_TRT_KV, where={"kv_cache_block_type": "tokens_per"})
    if reused is not None and tokens_per and prompt is not None:
        r.put_counter(b.PREFIX_HITS, reused * tokens_per)
        r.put_counter(b.PREFIX_QUERIES, prompt)
        r.info["prefix_hit_rate_estimated"] = True
    if tokens_per:
        r.info["tokens_per_block"] = int(tokens_per)
