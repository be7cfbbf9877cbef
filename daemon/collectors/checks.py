"""Values checked at the edge: a number a server reports must be one its signal can take.

A broken or hostile exporter can send `NaN`, `+Inf` or `-5` for any sample. Shown as they came,
they read as `waiting inf` or `KV -5%` on a server marked UP, and a KV usage of `+Inf` raises a
CRITICAL memory-pressure bottleneck. So every value a collector read is checked here, once for all
engines, before the window turns it into a sample:

- gauges must be finite and inside their signal's range (KV usage 0..1, counts and bytes >= 0);
- counters must be finite and >= 0 (they count things; a restart goes *down*, never below zero);
- histograms must have finite, non-negative counts and sum (bucket *bounds* may be +Inf);
- summary quantiles must be finite and >= 0 (`NaN` is how a summary says "no observations": skipped
  quietly, as Prometheus does);
- a sample name whose series included `NaN` where a number was summed is reported too.

A rejected value is dropped (the signal reads as "not exported" for this poll) and its reason kept
in `RawReading.rejected`; the window marks the sample `suspect` with those reasons, the poller
shows them as the target's reason, and the analysis skips suspect samples. `check_sample` is the
same promise for what the window computed (rates, hit rates, percentiles).
"""

from __future__ import annotations

import math

from daemon.collectors import base as b
from daemon.models import SIGNAL_FIELDS, MetricSample

INF = math.inf
# Fractions: the exporters' own definitions bound them by 1 (a hair over is float rounding).
_FRACTION = (0.0, 1.0 + 1e-9)
GAUGE_RANGES: dict[str, tuple[float, float]] = {
    b.RUNNING: (0.0, INF),
    b.WAITING: (0.0, INF),
    b.KV_CACHE_USAGE: _FRACTION,
    b.GPU_MEM_USED: (0.0, INF),
    b.GPU_MEM_TOTAL: (0.0, INF),
    b.PAUSED: (0.0, INF),
}
SAMPLE_RANGES: dict[str, tuple[float, float]] = {"kv_cache_usage": _FRACTION, "prefix_hit_rate": _FRACTION}
MAX_REASONS = 8  # one bad exporter can break every series; the first few say enough


def _bad(value: float, lo: float, hi: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "infinite"
    if value < lo:
        return f"below {lo:g}"
    if value > hi:
        return f"above {hi:g}"
    return None


def _reason(key: str, value: float, why: str) -> str:
    return f"{key}={value:g} rejected ({why})"


def check_reading(r: b.RawReading, nan_names: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Drop every value of `r` its signal cannot take; returns the reasons (also kept in `r.rejected`)."""
    reasons: list[str] = [f"{name} is NaN" for name in sorted(nan_names)]
    for key, value in list(r.gauges.items()):
        why = _bad(value, *GAUGE_RANGES.get(key, (0.0, INF)))
        if why:
            reasons.append(_reason(key, value, why))
            del r.gauges[key]
    for key, value in list(r.counters.items()):
        why = _bad(value, 0.0, INF)
        if why:
            reasons.append(_reason(key, value, why))
            del r.counters[key]
    for signal, (s_key, c_key) in list(r.mean_pairs.items()):
        if s_key not in r.counters or c_key not in r.counters:  # half a mean is no mean
            del r.mean_pairs[signal]
            r.counters.pop(s_key, None)
            r.counters.pop(c_key, None)
    for signal, h in list(r.histograms.items()):
        bad = next(
            (
                (k, v, w)
                for k, v in (
                    ("count", h.count),
                    ("sum", h.sum),
                    *((f"le={le:g}", c) for le, c in h.buckets.items()),
                )
                if (w := _bad(v, 0.0, INF)) is not None
            ),
            None,
        )
        if bad is None and any(math.isnan(le) for le in h.buckets):
            bad = ("le", math.nan, "NaN bound")
        if bad is not None:
            reasons.append(_reason(f"{signal} histogram {bad[0]}", bad[1], bad[2]))
            del r.histograms[signal]
    for signal, qs in list(r.quantiles.items()):
        kept = {}
        for q, v in qs.items():
            if math.isnan(v):
                continue  # a summary with no observations in its window: nothing, not wrong
            why = _bad(v, 0.0, INF)
            if why:
                reasons.append(_reason(f"{signal} quantile {q:g}", v, why))
            else:
                kept[q] = v
        if kept:
            r.quantiles[signal] = kept
        else:
            del r.quantiles[signal]
    if r.start_time is not None and not math.isfinite(r.start_time):
        reasons.append(_reason("process_start_time_seconds", r.start_time, "not finite"))
        r.start_time = None
    r.rejected.extend(reasons)
    return reasons


def check_sample(sample: MetricSample) -> list[str]:
    """Clear every computed signal of `sample` that is not a finite value in its range; the reasons."""
    reasons = []
    for name in SIGNAL_FIELDS:
        value = getattr(sample, name)
        if value is None:
            continue
        why = _bad(value, *SAMPLE_RANGES.get(name, (0.0, INF)))
        if why:
            reasons.append(_reason(name, value, why))
            setattr(sample, name, None)
    return reasons


def mark_suspect(sample: MetricSample, reasons: list[str]) -> None:
    if reasons:
        shown = reasons[:MAX_REASONS] + (
            [f"and {len(reasons) - MAX_REASONS} more"] if len(reasons) > MAX_REASONS else []
        )
        sample.suspect = True
        sample.suspect_reason = "; ".join(shown)
