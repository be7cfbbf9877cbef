"""One rule per bottleneck kind: a windowed sample in, a `Measurement` (or None) out.

A rule returns None when the sample carries no evidence either way (no traffic in the window, the
engine does not export the signal): the detector then leaves that bottleneck's state unchanged, so
an idle minute neither raises nor clears CACHE_INEFFICIENCY. A Measurement always carries the
numbers it was decided on, which become the bottleneck's evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from daemon.config import SloConfig, ThresholdConfig
from daemon.models import MetricSample, Severity

MEMORY_PRESSURE = "MEMORY_PRESSURE"
HIGH_LATENCY = "HIGH_LATENCY"
LOW_THROUGHPUT = "LOW_THROUGHPUT"
QUEUE_BUILDUP = "QUEUE_BUILDUP"
CACHE_INEFFICIENCY = "CACHE_INEFFICIENCY"
PREEMPTION_STORM = "PREEMPTION_STORM"
KINDS = (MEMORY_PRESSURE, HIGH_LATENCY, LOW_THROUGHPUT, QUEUE_BUILDUP, CACHE_INEFFICIENCY, PREEMPTION_STORM)


@dataclass(slots=True)
class Measurement:
    value: float
    threshold: float
    direction: Literal["above", "below"]  # which side of the threshold is bad
    severity: Severity
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    force_clear: bool = False  # e.g. LOW_THROUGHPUT on an idle server: not a bottleneck at all


Rule = Callable[[MetricSample, dict[str, float], ThresholdConfig, SloConfig], Measurement | None]


def _window(sample: MetricSample) -> dict[str, Any]:
    return {"window_s": round(sample.window_s, 3) if sample.window_s else None, "ts": sample.ts}


def memory_pressure(
    s: MetricSample, x: dict[str, float], t: ThresholdConfig, slo: SloConfig
) -> Measurement | None:
    # Expressed as a ratio to its threshold so KV usage and device memory share one hysteresis band.
    ratios: dict[str, float] = {}
    if s.kv_cache_usage is not None:
        ratios["kv_cache_usage"] = s.kv_cache_usage / t.kv_cache_usage_high
    if s.gpu_memory_used_bytes is not None and s.gpu_memory_total_bytes:
        ratios["gpu_memory"] = s.gpu_memory_used_bytes / s.gpu_memory_total_bytes / t.gpu_memory_high
    if not ratios:
        return None
    worst = max(ratios, key=lambda k: ratios[k])
    preempting = bool(s.preemptions)
    critical = (s.kv_cache_usage or 0) >= 0.98 or (preempting and ratios[worst] >= 1)
    evidence = {
        "kv_cache_usage": s.kv_cache_usage,
        "kv_cache_usage_high": t.kv_cache_usage_high,
        "gpu_memory_used_bytes": s.gpu_memory_used_bytes,
        "gpu_memory_total_bytes": s.gpu_memory_total_bytes,
        "preemptions": s.preemptions,
        "driver": worst,
    } | _window(s)
    label = (
        f"KV cache {s.kv_cache_usage:.0%} full" if worst == "kv_cache_usage" else "device memory near full"
    )
    return Measurement(
        ratios[worst],
        1.0,
        "above",
        Severity.CRITICAL if critical else Severity.WARNING,
        label + (" and requests are being preempted" if preempting else ""),
        evidence,
    )


def high_latency(
    s: MetricSample, x: dict[str, float], t: ThresholdConfig, slo: SloConfig
) -> Measurement | None:
    ratios: dict[str, float] = {}
    if s.ttft_p95_s is not None:
        ratios["ttft_p95"] = s.ttft_p95_s * 1000 / slo.ttft_p95_ms
    if s.itl_p95_s is not None:
        ratios["itl_p95"] = s.itl_p95_s * 1000 / slo.itl_p95_ms
    if not ratios:
        return None
    worst = max(ratios, key=lambda k: ratios[k])
    worst_s = s.ttft_p95_s if worst == "ttft_p95" else s.itl_p95_s
    assert worst_s is not None  # `worst` is a key of `ratios`, which holds only the signals that have a value
    ms = worst_s * 1000
    slo_ms = slo.ttft_p95_ms if worst == "ttft_p95" else slo.itl_p95_ms
    evidence = {
        "ttft_p50_s": s.ttft_p50_s,
        "ttft_p95_s": s.ttft_p95_s,
        "itl_p50_s": s.itl_p50_s,
        "itl_p95_s": s.itl_p95_s,
        "queue_p95_s": s.queue_p95_s,
        "slo_ttft_p95_ms": slo.ttft_p95_ms,
        "slo_itl_p95_ms": slo.itl_p95_ms,
        "waiting": s.waiting,
        "driver": worst,
    } | _window(s)
    sev = Severity.CRITICAL if ratios[worst] >= 2 else Severity.WARNING
    name = "TTFT" if worst == "ttft_p95" else "inter-token latency"
    return Measurement(
        ratios[worst], 1.0, "above", sev, f"{name} p95 {ms:.0f} ms vs SLO {slo_ms:.0f} ms", evidence
    )


def low_throughput(
    s: MetricSample, x: dict[str, float], t: ThresholdConfig, slo: SloConfig
) -> Measurement | None:
    if t.throughput_low_tokens_s <= 0 or s.generation_tokens_per_s is None:
        return None
    demand = (s.running or 0) + (s.waiting or 0)
    evidence = {
        "generation_tokens_per_s": s.generation_tokens_per_s,
        "running": s.running,
        "waiting": s.waiting,
        "threshold_tokens_s": t.throughput_low_tokens_s,
    } | _window(s)
    if demand <= 0:  # an idle server is not slow
        return Measurement(
            s.generation_tokens_per_s,
            t.throughput_low_tokens_s,
            "below",
            Severity.INFO,
            "idle",
            evidence,
            force_clear=True,
        )
    sev = Severity.CRITICAL if s.generation_tokens_per_s < t.throughput_low_tokens_s / 4 else Severity.WARNING
    return Measurement(
        s.generation_tokens_per_s,
        t.throughput_low_tokens_s,
        "below",
        sev,
        f"{s.generation_tokens_per_s:.1f} generated tokens/s with {demand:.0f} requests in flight",
        evidence,
    )


def queue_buildup(
    s: MetricSample, x: dict[str, float], t: ThresholdConfig, slo: SloConfig
) -> Measurement | None:
    ratios: dict[str, float] = {}
    if s.waiting is not None:
        ratios["waiting"] = s.waiting / t.queue_waiting_high
    if t.queue_p95_high_s > 0 and s.queue_p95_s is not None:
        ratios["queue_p95"] = s.queue_p95_s / t.queue_p95_high_s
    if not ratios:
        return None
    worst = max(ratios, key=lambda k: ratios[k])
    rejecting = bool(s.requests_failure_per_s)
    sev = Severity.CRITICAL if ratios[worst] >= 3 or (rejecting and ratios[worst] >= 1) else Severity.WARNING
    evidence = {
        "waiting": s.waiting,
        "running": s.running,
        "queue_waiting_high": t.queue_waiting_high,
        "queue_p95_s": s.queue_p95_s,
        "queue_p95_high_s": t.queue_p95_high_s or None,
        "kv_cache_usage": s.kv_cache_usage,
        "requests_failure_per_s": s.requests_failure_per_s,
        "driver": worst,
    } | _window(s)
    summary = (
        f"{s.waiting:.0f} requests waiting, {s.running or 0:.0f} running"
        if worst == "waiting"
        else f"queue time p95 {s.queue_p95_s:.2f} s"
    )
    return Measurement(ratios[worst], 1.0, "above", sev, summary, evidence)


def cache_inefficiency(
    s: MetricSample, x: dict[str, float], t: ThresholdConfig, slo: SloConfig
) -> Measurement | None:
    if s.prefix_hit_rate is None or not s.prefix_queries or s.prefix_queries < t.min_prefix_queries:
        return None
    sev = Severity.CRITICAL if s.prefix_hit_rate < t.prefix_hit_rate_low / 3 else Severity.WARNING
    evidence = {
        "prefix_hit_rate": round(s.prefix_hit_rate, 4),
        "prefix_queries": s.prefix_queries,
        "prefix_hits": s.prefix_hits,
        "prefix_hit_rate_low": t.prefix_hit_rate_low,
        "kv_cache_usage": s.kv_cache_usage,
    } | _window(s)
    return Measurement(
        s.prefix_hit_rate,
        t.prefix_hit_rate_low,
        "below",
        sev,
        f"prefix-cache hit rate {s.prefix_hit_rate:.0%} of {s.prefix_queries:.0f} prompt tokens",
        evidence,
    )


def preemption_storm(
    s: MetricSample, x: dict[str, float], t: ThresholdConfig, slo: SloConfig
) -> Measurement | None:
    if s.preemptions is None or not s.window_s or t.preemptions_per_min_high <= 0:
        return None
    per_min = s.preemptions / s.window_s * 60
    sev = Severity.CRITICAL if per_min >= 4 * t.preemptions_per_min_high else Severity.WARNING
    evidence = {
        "preemptions": s.preemptions,
        "preemptions_per_min": round(per_min, 3),
        "preemptions_per_min_high": t.preemptions_per_min_high,
        "kv_cache_usage": s.kv_cache_usage,
        "running": s.running,
    } | _window(s)
    return Measurement(
        per_min, t.preemptions_per_min_high, "above", sev, f"{per_min:.1f} preemptions/min", evidence
    )


RULES: dict[str, Rule] = {
    MEMORY_PRESSURE: memory_pressure,
    HIGH_LATENCY: high_latency,
    LOW_THROUGHPUT: low_throughput,
    QUEUE_BUILDUP: queue_buildup,
    CACHE_INEFFICIENCY: cache_inefficiency,
    PREEMPTION_STORM: preemption_storm,
}
