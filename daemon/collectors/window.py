"""Successive cumulative readings of one target -> windowed `MetricSample`s.

Everything a user reads off a sample is about the last `window_s` seconds, never the server's
lifetime: rates are Δcounter/Δt, the prefix hit rate is Δhits/Δqueries, percentiles come from the
*difference* of histogram buckets (`histogram_quantile(rate(...))` in PromQL terms).

The window's base is the newest kept reading at least `window_s` old (or the oldest one while the
history is shorter), so with 1 s polls and a 60 s window each sample covers ~60 s.

Counter resets: a server restart sets every counter back to ~0. When any counter or histogram count
goes down, or `process_start_time_seconds` changes, the history is dropped and the new reading is
measured against an all-zero base at the previous poll's time — the counters' current values are
what happened since the restart (the same assumption Prometheus' `rate()` makes) — and the sample
carries `counter_reset=True`. No rate is ever negative.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from daemon.collectors import base as b
from daemon.collectors.checks import check_sample, mark_suspect
from daemon.models import MEAN_FIELDS, MetricSample

# Readings are kept only as long as the window needs; this caps memory if the clock misbehaves.
MAX_READINGS = 4096


def histogram_quantile(q: float, cur: dict[float, float], base: dict[float, float] | None) -> float | None:
    """Quantile `q` of the observations between two cumulative bucket snapshots.

    Linear interpolation inside the bucket that holds the rank, as Prometheus does; a rank in the
    +Inf bucket returns the largest finite bound (the histogram cannot say more). None when no
    observation fell in the window.
    """
    bounds = sorted(cur)
    if not bounds:
        return None
    deltas: list[float] = []
    running_max = 0.0
    for bound in bounds:
        d = cur[bound] - (base.get(bound, 0.0) if base else 0.0)
        # Cumulative counts must not decrease with the bound; clamp rounding noise and partial scrapes.
        running_max = max(running_max, d)
        deltas.append(running_max)
    total = deltas[-1]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = None, 0.0
    for bound, count in zip(bounds, deltas):
        if count >= rank and count > prev_count:
            if math.isinf(bound):
                return prev_bound  # beyond the largest finite bound: that bound is all we know
            lower = prev_bound if prev_bound is not None else min(0.0, bound)
            return lower + (bound - lower) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


def _summary_quantile(quantiles: dict[float, float], q: float) -> float | None:
    """A summary's own quantile closest to `q` (summaries are already windowed by the server)."""
    if not quantiles:
        return None
    nearest = min(quantiles, key=lambda k: abs(k - q))
    value = quantiles[nearest]
    return None if abs(nearest - q) > 0.05 or math.isnan(value) else value


@dataclass(slots=True)
class WindowResult:
    sample: MetricSample
    # Signals without a column: window means of latencies ("e2e_mean_s", "compute_mean_s", ...),
    # TRT-LLM's paused-requests gauge. Kept with the instance's latest view, used by the analysis.
    extras: dict[str, float] = field(default_factory=dict)
    reading: b.RawReading | None = None


class CounterWindow:
    """Per-target history of readings; `update(reading)` returns the windowed sample."""

    def __init__(self, instance: str, window_s: float) -> None:
        self.instance = instance
        self.window_s = window_s
        self._ring: deque[b.RawReading] = deque(maxlen=MAX_READINGS)
        self.resets = 0

    def _is_reset(self, prev: b.RawReading, cur: b.RawReading) -> bool:
        if (
            prev.start_time is not None
            and cur.start_time is not None
            and abs(cur.start_time - prev.start_time) > 1
        ):
            return True
        for key, value in cur.counters.items():
            old = prev.counters.get(key)
            if old is not None and value < old:
                return True
        for key, h in cur.histograms.items():
            old_h = prev.histograms.get(key)
            if old_h is not None and h.count < old_h.count:
                return True
        return False

    def update(self, reading: b.RawReading) -> WindowResult:
        reset = False
        ring = self._ring
        if ring and reading.engine != ring[-1].engine:
            ring.clear()  # the target now runs another engine: nothing to compare with
        if ring and self._is_reset(ring[-1], reading):
            reset = True
            self.resets += 1
            zero_ts = ring[-1].ts
            ring.clear()
            ring.append(b.RawReading(engine=reading.engine, ts=zero_ts, start_time=reading.start_time))
        horizon = reading.ts - self.window_s
        while len(ring) >= 2 and ring[1].ts <= horizon:
            ring.popleft()
        base = ring[0] if ring else None
        result = build_sample(self.instance, reading, base, reset)
        ring.append(reading)
        return result


def build_sample(
    instance: str, cur: b.RawReading, base: b.RawReading | None, reset: bool = False
) -> WindowResult:
    """The windowed sample; `suspect` (with the reasons) when the edge rejected a value of the
    reading or a computed signal came out non-finite or out of range (then cleared)."""
    result = _build_sample(instance, cur, base, reset)
    mark_suspect(result.sample, [*cur.rejected, *check_sample(result.sample)])
    return result


def _build_sample(instance: str, cur: b.RawReading, base: b.RawReading | None, reset: bool) -> WindowResult:
    g = cur.gauges
    sample = MetricSample(
        instance=instance,
        ts=cur.ts,
        engine=cur.engine,
        running=g.get(b.RUNNING),
        waiting=g.get(b.WAITING),
        kv_cache_usage=g.get(b.KV_CACHE_USAGE),
        gpu_memory_used_bytes=g.get(b.GPU_MEM_USED),
        gpu_memory_total_bytes=g.get(b.GPU_MEM_TOTAL),
        counter_reset=reset,
    )
    extras: dict[str, float] = {}
    if b.PAUSED in g:
        extras[b.PAUSED] = g[b.PAUSED]

    # Summary quantiles need no base: the server windows them itself.
    for signal, q in cur.quantiles.items():
        _set_percentiles(sample, signal, _summary_quantile(q, 0.5), _summary_quantile(q, 0.95))

    dt = cur.ts - base.ts if base is not None else 0.0
    if base is None or dt <= 0:
        store_extras(sample, extras)
        return WindowResult(sample=sample, extras=extras, reading=cur)
    sample.window_s = dt

    def delta(key: str) -> float | None:
        now = cur.counters.get(key)
        if now is None:
            return None
        return max(now - base.counters.get(key, 0.0), 0.0)

    def rate(key: str) -> float | None:
        d = delta(key)
        return None if d is None else d / dt

    queries, hits = delta(b.PREFIX_QUERIES), delta(b.PREFIX_HITS)
    sample.prefix_queries, sample.prefix_hits = queries, hits
    if queries and hits is not None:
        sample.prefix_hit_rate = min(hits / queries, 1.0)
    sample.prompt_tokens_per_s = rate(b.PROMPT_TOKENS)
    sample.generation_tokens_per_s = rate(b.GENERATION_TOKENS)
    sample.preemptions = delta(b.PREEMPTIONS)
    sample.requests_success_per_s = rate(b.REQUESTS_SUCCESS)
    sample.requests_failure_per_s = rate(b.REQUESTS_FAILURE)

    for signal, h in cur.histograms.items():
        old = base.histograms.get(signal)
        old_buckets = old.buckets if old is not None else None
        _set_percentiles(
            sample,
            signal,
            histogram_quantile(0.5, h.buckets, old_buckets),
            histogram_quantile(0.95, h.buckets, old_buckets),
        )
        n = h.count - (old.count if old else 0.0)
        if signal == b.PREFILL:
            sample.prefill_seconds = max(h.sum - (old.sum if old else 0.0), 0.0)
            continue
        if n > 0:
            extras[f"{signal}_mean_s"] = max(h.sum - (old.sum if old else 0.0), 0.0) / n
    for signal, (s_key, c_key) in cur.mean_pairs.items():
        calls, total = delta(c_key), delta(s_key)
        if calls and total is not None:
            extras[f"{signal}_mean_s"] = total / calls
    store_extras(sample, extras)
    return WindowResult(sample=sample, extras=extras, reading=cur)


def store_extras(sample: MetricSample, extras: dict[str, float]) -> None:
    """Extras that have a column (schema 3: window means, paused requests) are stored with the sample."""
    for key in (*MEAN_FIELDS, b.PAUSED):
        if key in extras:
            setattr(sample, key, extras[key])


_PERCENTILE_FIELDS = {b.TTFT: "ttft", b.ITL: "itl", b.E2E: "e2e", b.QUEUE: "queue"}


def _set_percentiles(sample: MetricSample, signal: str, p50: float | None, p95: float | None) -> None:
    prefix = _PERCENTILE_FIELDS.get(signal)
    if prefix is None:
        return  # e.g. COMPUTE: no column, its mean goes to extras
    if p50 is not None:
        setattr(sample, f"{prefix}_p50_s", p50)
    if p95 is not None:
        setattr(sample, f"{prefix}_p95_s", p95)
