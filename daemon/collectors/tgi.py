"""Hugging Face TGI 3.x `/metrics` -> RawReading.

TGI's Rust exporter renders a duration as a histogram only when buckets were configured for it,
otherwise as a summary; both shapes are read. Counters carry no `_total` suffix in the releases read
for the reference, but the suffixed names are accepted too. TGI exports no TTFT, no KV usage and no
prefix-cache counters, so those stay None. `tgi_request_mean_time_per_token_duration` includes the
prefill, so it stands in for inter-token latency only approximately (noted in `info`).
"""

from __future__ import annotations

from daemon.collectors import base as b
from daemon.prom import Exposition

ENGINE = "tgi"


def score(expo: Exposition) -> int:
    return sum(1 for n in expo.names() if n.startswith("tgi_"))


def read(expo: Exposition, ts: float) -> b.RawReading:
    r = b.RawReading(engine=ENGINE, ts=ts)
    r.put_gauge(b.RUNNING, expo.total("tgi_batch_current_size"))
    r.put_gauge(b.WAITING, expo.total("tgi_queue_size"))
    r.put_counter(b.PROMPT_TOKENS, expo.total("tgi_request_input_length_sum"))
    r.put_counter(b.GENERATION_TOKENS, expo.total("tgi_request_generated_tokens_sum"))
    r.put_counter(b.REQUESTS_SUCCESS, expo.first("tgi_request_success", "tgi_request_success_total"))
    failures = None
    for name in ("tgi_request_failure", "tgi_request_failure_total"):
        # A validation error is the client's malformed request, not the server failing.
        failures = expo.total(name, exclude={"err": ("validation",)})
        if failures is not None or expo.has(name):
            failures = failures or 0.0
            break
    r.put_counter(b.REQUESTS_FAILURE, failures)
    for signal, name in (
        (b.E2E, "tgi_request_duration"),
        (b.QUEUE, "tgi_request_queue_duration"),
        (b.ITL, "tgi_request_mean_time_per_token_duration"),
    ):
        h = b.read_histogram(expo, name)
        if h is not None:
            r.histograms[signal] = h
            continue
        q = b.read_quantiles(expo, name)
        if q:
            r.quantiles[signal] = q
    r.info["itl_includes_prefill"] = True
    return r
