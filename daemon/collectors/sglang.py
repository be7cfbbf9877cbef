"""SGLang (0.4.6 - 0.5.23) `/metrics` -> RawReading.

The prefix hit rate comes from counters, `cached_tokens_total` (summed over `cache_source`) over
`prompt_tokens_total`, not from the `cache_hit_rate` gauge, which describes only the last logged
prefill batch. Retractions are SGLang's preemptions. `token_usage` excludes evictable radix-cache
tokens, which is what memory pressure means here (they are freed on demand).
"""

from __future__ import annotations

from daemon.collectors import base as b
from daemon.prom import Exposition

ENGINE = "sglang"
PREFIX = "sglang:"
GIB = float(1 << 30)  # SGLang's *_gb gauges divide bytes by 2**30


def score(expo: Exposition) -> int:
    return sum(1 for n in expo.names() if n.startswith(PREFIX))


def read(expo: Exposition, ts: float) -> b.RawReading:
    r = b.RawReading(engine=ENGINE, ts=ts)
    r.put_gauge(b.RUNNING, expo.total("sglang:num_running_reqs"))
    r.put_gauge(b.WAITING, expo.total("sglang:num_queue_reqs"))
    r.put_gauge(b.KV_CACHE_USAGE, expo.maximum("sglang:token_usage"))
    parts = [expo.total(f"sglang:{n}_memory_usage_gb") for n in ("weight", "kv_cache", "graph")]
    if any(p is not None for p in parts):
        r.put_gauge(b.GPU_MEM_USED, sum(p or 0.0 for p in parts) * GIB)

    prompt = expo.total("sglang:prompt_tokens_total")
    r.put_counter(b.PROMPT_TOKENS, prompt)
    r.put_counter(b.GENERATION_TOKENS, expo.total("sglang:generation_tokens_total"))
    cached = expo.total("sglang:cached_tokens_total")
    if cached is not None and prompt is not None:
        r.put_counter(b.PREFIX_HITS, cached)
        r.put_counter(b.PREFIX_QUERIES, prompt)
    r.put_counter(b.PREEMPTIONS, expo.total("sglang:num_retracted_requests_total"))
    r.put_counter(b.REQUESTS_SUCCESS, expo.total("sglang:num_requests_total"))

    for signal, name in (
        (b.TTFT, "sglang:time_to_first_token_seconds"),
        (b.ITL, "sglang:inter_token_latency_seconds"),
        (b.E2E, "sglang:e2e_request_latency_seconds"),
        (b.QUEUE, "sglang:queue_time_seconds"),
    ):
        h = b.read_histogram(expo, name)
        if h is not None:
            r.histograms[signal] = h
    r.start_time = expo.total("process_start_time_seconds")
    r.info["models"] = b.label_values(expo, "sglang:num_running_reqs", "model_name")
    return r
