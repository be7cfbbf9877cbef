"""The server's own counters over exactly one run: a `/metrics` snapshot before and after, differenced.

The engine collectors of the daemon (`daemon.collectors`) translate each engine's names into neutral
signals, so one windowing function serves vLLM and Triton. vLLM updates its Prometheus counters from
the engine's per-step stats, which can trail the HTTP response by a few milliseconds; `settle` polls
until the server has counted every request the run sent (bounded), so a window never misses the last
call's tokens.
"""

from __future__ import annotations

import asyncio
import time

from daemon.collectors import base as b
from daemon.collectors import triton as triton_collector
from daemon.collectors import vllm as vllm_collector
from daemon.collectors.window import histogram_quantile
from daemon.bench.records import ServerWindow
from executor.targets import Target
from daemon.prom import parse

SETTLE_TIMEOUT_S = 3.0


async def snapshot(target: Target) -> b.RawReading | None:
    text = await target.metrics_text()
    if not text:
        return None
    expo = parse(text)
    reader = vllm_collector.read if target.engine == "vllm" else triton_collector.read
    return reader(expo, time.time())


def _requests(reading: b.RawReading) -> float:
    """Finished requests, counted the way each engine counts them."""
    return reading.counters.get(b.REQUESTS_SUCCESS, 0.0) + reading.counters.get(b.REQUESTS_FAILURE, 0.0)


async def settle(target: Target, before: b.RawReading | None, sent: int) -> b.RawReading | None:
    """The first snapshot after `before` that has counted all `sent` requests (or the last one tried)."""
    after = await snapshot(target)
    if before is None or after is None:
        return after
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while _requests(after) - _requests(before) < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        after = await snapshot(target)
        assert after is not None
    return after


def window(before: b.RawReading | None, after: b.RawReading | None) -> ServerWindow | None:
    if before is None or after is None:
        return None

    def delta(key: str) -> float | None:
        if key not in after.counters or key not in before.counters:
            return None
        return after.counters[key] - before.counters[key]

    w = ServerWindow(
        engine=after.engine,
        requests=_requests(after) - _requests(before),
        prompt_tokens=delta(b.PROMPT_TOKENS),
        generation_tokens=delta(b.GENERATION_TOKENS),
        prefix_queries=delta(b.PREFIX_QUERIES),
        prefix_hits=delta(b.PREFIX_HITS),
    )
    ttft_after, ttft_before = after.histograms.get(b.TTFT), before.histograms.get(b.TTFT)
    if ttft_after is not None:
        base = ttft_before.buckets if ttft_before else None
        w.ttft_p50_s = histogram_quantile(0.5, ttft_after.buckets, base)
        w.ttft_p95_s = histogram_quantile(0.95, ttft_after.buckets, base)
        count = ttft_after.count - (ttft_before.count if ttft_before else 0.0)
        if count > 0:
            w.ttft_mean_s = (ttft_after.sum - (ttft_before.sum if ttft_before else 0.0)) / count
    # Triton exports cumulative durations (seconds, count) pairs: their window mean is Δs / Δcount.
    for signal, attr in ((b.QUEUE, "queue_mean_s"), (b.E2E, "e2e_mean_s"), (b.COMPUTE, "compute_mean_s")):
        pair = after.mean_pairs.get(signal)
        if pair is None:
            h_after, h_before = after.histograms.get(signal), before.histograms.get(signal)
            if h_after is not None:
                n = h_after.count - (h_before.count if h_before else 0.0)
                if n > 0:
                    setattr(w, attr, (h_after.sum - (h_before.sum if h_before else 0.0)) / n)
            continue
        seconds, calls = delta(pair[0]), delta(pair[1])
        if seconds is not None and calls:
            setattr(w, attr, seconds / calls)
    return w
