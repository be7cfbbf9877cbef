"""vLLM (V1 engine) `/metrics` -> RawReading, across the 0.9 -> 0.33 renames.

Each signal is read from the current name first and the older one second, so one collector serves
every release: `kv_cache_usage_perc` <- `gpu_cache_usage_perc`, `prefix_cache_*` <-
`gpu_prefix_cache_*`, `inter_token_latency_seconds` <- `time_per_output_token_seconds`
(0.9.2-0.11 emit both; taking the new one first never double-counts).
"""

from __future__ import annotations

from daemon.collectors import base as b
from daemon.prom import Exposition

ENGINE = "vllm"
PREFIX = "vllm:"

# finished_reason values that are not a successful completion. `abort` is the client going away,
# which is neither a success nor a server failure, so it is left out of both rates.
_NOT_SUCCESS = {"finished_reason": ("abort", "error")}


def score(expo: Exposition) -> int:
    return sum(1 for n in expo.names() if n.startswith(PREFIX))


def read(expo: Exposition, ts: float) -> b.RawReading:
    r = b.RawReading(engine=ENGINE, ts=ts)
    r.put_gauge(b.RUNNING, expo.total("vllm:num_requests_running"))
    r.put_gauge(b.WAITING, expo.total("vllm:num_requests_waiting"))
    kv = expo.maximum("vllm:kv_cache_usage_perc")
    r.put_gauge(b.KV_CACHE_USAGE, kv if kv is not None else expo.maximum("vllm:gpu_cache_usage_perc"))

    r.put_counter(
        b.PREFIX_QUERIES, expo.first("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total")
    )
    r.put_counter(
        b.PREFIX_HITS, expo.first("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total")
    )
    r.put_counter(b.PROMPT_TOKENS, expo.total("vllm:prompt_tokens_total"))
    r.put_counter(b.GENERATION_TOKENS, expo.total("vllm:generation_tokens_total"))
    r.put_counter(b.PREEMPTIONS, expo.total("vllm:num_preemptions_total"))
    if expo.has("vllm:request_success_total"):
        r.put_counter(
            b.REQUESTS_SUCCESS, expo.total("vllm:request_success_total", exclude=_NOT_SUCCESS) or 0.0
        )
        errors = expo.total("vllm:request_success_total", where={"finished_reason": "error"}) or 0.0
        rejected = expo.total("vllm:admission_rejections_total") or 0.0
        r.put_counter(b.REQUESTS_FAILURE, errors + rejected)

    for signal, names in (
        (b.TTFT, ("vllm:time_to_first_token_seconds",)),
        (b.ITL, ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")),
        (b.E2E, ("vllm:e2e_request_latency_seconds",)),
        (b.QUEUE, ("vllm:request_queue_time_seconds",)),
        (b.PREFILL, ("vllm:request_prefill_time_seconds",)),
    ):
        for name in names:
            h = b.read_histogram(expo, name)
            if h is not None:
                r.histograms[signal] = h
                break

    r.start_time = expo.total("process_start_time_seconds")
    r.info["models"] = b.label_values(expo, "vllm:num_requests_running", "model_name")
    cache = expo.series("vllm:cache_config_info")
    if cache:
        # One label set per engine; they are identical in practice, the first one is the config.
        r.info["cache_config"] = {k: v for k, v in cache[0][0].items() if k != "engine"}
    return r
