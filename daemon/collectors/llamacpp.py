"""llama.cpp `llama-server --metrics` -> RawReading.

Only counters are used: the `*_tokens_seconds` gauges are averaged "since the previous scrape" by
the server, so any second scraper (a Prometheus next to us) would corrupt them. The prompt counter
excludes cached tokens, so queries = computed + cached and hits = cached. Inter-token latency is
the window mean Δtokens_predicted_seconds / Δtokens_predicted (no histograms exist).
"""

from __future__ import annotations

from daemon.collectors import base as b
from daemon.prom import Exposition

ENGINE = "llamacpp"
PREFIX = "llamacpp:"


def score(expo: Exposition) -> int:
    return sum(1 for n in expo.names() if n.startswith(PREFIX))


def read(expo: Exposition, ts: float) -> b.RawReading:
    r = b.RawReading(engine=ENGINE, ts=ts)
    r.put_gauge(b.RUNNING, expo.total("llamacpp:requests_processing"))
    r.put_gauge(b.WAITING, expo.total("llamacpp:requests_deferred"))
    computed = expo.total("llamacpp:prompt_tokens_total")
    cached = expo.total("llamacpp:prompt_tokens_cached_total")
    if computed is not None:
        r.put_counter(b.PROMPT_TOKENS, computed + (cached or 0.0))
        if cached is not None:
            r.put_counter(b.PREFIX_QUERIES, computed + cached)
            r.put_counter(b.PREFIX_HITS, cached)
    predicted = expo.total("llamacpp:tokens_predicted_total")
    r.put_counter(b.GENERATION_TOKENS, predicted)
    r.put_mean_pair(b.ITL, expo.total("llamacpp:tokens_predicted_seconds_total"), predicted)
    return r
