"""What every engine collector produces: one `RawReading` per scrape, in engine-neutral units.

A collector is a pure function from a parsed exposition to a `RawReading` (no I/O: the poller
fetches, the collector translates). Readings keep *cumulative* counters and histogram buckets as
the server reported them; turning two readings into windowed rates and quantiles is the job of
`daemon.collectors.window`, so every engine gets the same reset handling and the same maths.

Signal keys (module constants below) are the vocabulary between collectors and the window:
- gauges: instantaneous values (requests running/waiting, KV usage 0-1, GPU memory bytes);
- counters: cumulative, monotonically increasing except across a server restart;
- histograms: cumulative buckets with bounds and sums already converted to seconds;
- quantiles: summary quantiles in seconds (engines that only export summaries, e.g. TGI without
  buckets, Triton `*_summary_us`), used when no histogram is available;
- mean pairs: (seconds counter, count counter) for engines that export only cumulative durations
  (Triton's `nv_inference_*_duration_us`, llama.cpp's `*_seconds_total`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daemon.prom import Exposition
from daemon.text import clean

# Distinct label values kept for `info` (model names): a server listing 100,000 "models" is a fault.
MAX_LABEL_VALUES = 64

# gauges
RUNNING = "running"
WAITING = "waiting"
KV_CACHE_USAGE = "kv_cache_usage"
GPU_MEM_USED = "gpu_memory_used_bytes"
GPU_MEM_TOTAL = "gpu_memory_total_bytes"
PAUSED = "paused_requests"  # TRT-LLM's gauge of paused (preempted) requests; not a counter

# counters
PREFIX_QUERIES = "prefix_queries"  # tokens looked up in the prefix cache
PREFIX_HITS = "prefix_hits"  # tokens found there
PROMPT_TOKENS = "prompt_tokens"  # all prompt tokens, cached ones included
GENERATION_TOKENS = "generation_tokens"
PREEMPTIONS = "preemptions"
REQUESTS_SUCCESS = "requests_success"
REQUESTS_FAILURE = "requests_failure"

# histograms / summaries / mean pairs
TTFT = "ttft"
ITL = "itl"
E2E = "e2e"
QUEUE = "queue"
COMPUTE = "compute"
PREFILL = "prefill"  # per-request prefill time: its window sum is the sample's prefill_seconds

LATENCY_SIGNALS = (TTFT, ITL, E2E, QUEUE, COMPUTE)


@dataclass(slots=True)
class Histogram:
    """Cumulative histogram: upper bound (seconds) -> cumulative count, plus sum (s) and count."""

    buckets: dict[float, float]
    count: float
    sum: float


@dataclass(slots=True)
class RawReading:
    engine: str
    ts: float
    gauges: dict[str, float] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, Histogram] = field(default_factory=dict)
    quantiles: dict[str, dict[float, float]] = field(default_factory=dict)
    # signal -> (seconds counter key, count counter key), both also present in `counters`
    mean_pairs: dict[str, tuple[str, str]] = field(default_factory=dict)
    start_time: float | None = None  # process start (s since epoch) when exported: restart detection
    info: dict[str, Any] = field(default_factory=dict)  # static facts: cache config, model names
    # Values the edge refused (NaN, infinite, out of range), with why: see `daemon.collectors.checks`.
    rejected: list[str] = field(default_factory=list)

    def put_gauge(self, key: str, value: float | None) -> None:
        if value is not None:
            self.gauges[key] = value

    def put_counter(self, key: str, value: float | None) -> None:
        if value is not None:
            self.counters[key] = value

    def put_mean_pair(self, signal: str, seconds: float | None, count: float | None) -> None:
        if seconds is not None and count is not None:
            s_key, c_key = f"{signal}_seconds", f"{signal}_count"
            self.counters[s_key], self.counters[c_key] = seconds, count
            self.mean_pairs[signal] = (s_key, c_key)


def read_histogram(
    expo: Exposition, base: str, scale: float = 1.0, where: dict[str, str] | None = None
) -> Histogram | None:
    """A histogram family summed over label sets; `scale` converts its unit to seconds (ms: 1e-3)."""
    # _count and _sum are looked up first so `collectors.wanted_names` records them too.
    count = expo.total(base + "_count", where)
    total = expo.total(base + "_sum", where)
    buckets = expo.buckets(base, where)
    if buckets is None:
        return None
    if count is None:
        count = buckets.get(float("inf"), max(buckets.values()))
    if scale != 1.0:
        buckets = {(b * scale if b != float("inf") else b): c for b, c in buckets.items()}
    return Histogram(buckets=buckets, count=count, sum=(total or 0.0) * scale)


def read_quantiles(expo: Exposition, base: str, scale: float = 1.0) -> dict[float, float] | None:
    q = expo.quantiles(base)
    return {k: v * scale for k, v in q.items()} if q else None


def label_values(expo: Exposition, name: str, label: str) -> list[str]:
    """Distinct values of one label on a sample, in first-seen order (model names, engines), cleaned
    of terminal escapes (`daemon.text.clean`) and at most `MAX_LABEL_VALUES` of them."""
    seen: dict[str, None] = {}
    for labels, _ in expo.series(name):
        v = labels.get(label)
        if v is not None:
            seen.setdefault(clean(v), None)
            if len(seen) >= MAX_LABEL_VALUES:
                break
    return list(seen)
