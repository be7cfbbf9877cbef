"""Canary vs baseline on named LLM signals: PASS, FAIL or INCONCLUSIVE, with the numbers.

Pure functions over `MetricSample`s; `canary.compare_canary` chooses the windows and reads the store.
Rules, in order:
- a sample belongs to the canary window only if its whole measurement window (`ts - window_s`)
  starts after the change was verified: a 60 s window straddling the change would mix both configs;
  samples that span a counter reset (a restart) are skipped for the same reason;
- per signal, the statistic is the median over the window (robust to one slow poll);
- a signal fails when the canary is worse than the baseline by more than its relative threshold
  AND its absolute floor (so noise around tiny values cannot fail a rollout);
- any failed signal -> FAIL (a regression is a regression even if other signals lack data);
- otherwise a signal with data but fewer than `min_samples` values in a window -> INCONCLUSIVE:
  the rollout pauses for a person instead of promoting or aborting on no evidence;
- a signal no sample carries at all (the engine does not export it) is reported and skipped, unless
  every signal is in that case, which is INCONCLUSIVE too.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Literal

from daemon.config import HIGHER_IS_BETTER, RolloutConfig, SignalThreshold
from daemon.models import MetricSample
from daemon.rollouts.model import Comparison


def signal_value(sample: MetricSample, signal: str) -> float | None:
    if signal == "error_rate":
        ok, bad = sample.requests_success_per_s, sample.requests_failure_per_s
        if ok is None or bad is None or ok + bad <= 0:
            return None
        return bad / (ok + bad)
    value = getattr(sample, signal, None)
    return None if value is None else float(value)


def baseline_samples(samples: Sequence[MetricSample], since: float, until: float) -> list[MetricSample]:
    return [s for s in samples if since <= s.ts < until and not s.counter_reset]


def canary_samples(samples: Sequence[MetricSample], since: float, until: float) -> list[MetricSample]:
    return [
        s for s in samples if s.ts - (s.window_s or 0.0) >= since and s.ts <= until and not s.counter_reset
    ]


def judge_signal(
    signal: str,
    baseline: Sequence[float],
    canary: Sequence[float],
    threshold: SignalThreshold,
    min_samples: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "signal": signal,
        "baseline_n": len(baseline),
        "canary_n": len(canary),
        "baseline": statistics.median(baseline) if baseline else None,
        "canary": statistics.median(canary) if canary else None,
        "max_regression": threshold.max_regression,
        "min_abs_change": threshold.min_abs_change,
        "higher_is_better": signal in HIGHER_IS_BETTER,
    }
    if not baseline and not canary:
        return {**out, "verdict": "unavailable", "reason": "no sample carries this signal"}
    b, c = out["baseline"], out["canary"]
    if b is not None and c is not None:
        worse_by = (b - c) if signal in HIGHER_IS_BETTER else (c - b)
        relative = worse_by / abs(b) if b else (float("inf") if worse_by > 0 else 0.0)
        out["worse_by"], out["relative"] = worse_by, relative
        if len(baseline) >= min_samples and len(canary) >= min_samples:
            if worse_by > threshold.min_abs_change and relative > threshold.max_regression:
                return {
                    **out,
                    "verdict": "fail",
                    "reason": f"{signal} worse by {worse_by:.4g} ({relative:+.1%}) > "
                    f"{threshold.max_regression:.0%} and {threshold.min_abs_change:g}",
                }
            return {**out, "verdict": "pass", "reason": f"{signal} within threshold ({relative:+.1%})"}
    return {
        **out,
        "verdict": "insufficient",
        "reason": f"{signal}: {len(baseline)} baseline / {len(canary)} canary samples, need {min_samples} each",
    }


def compare(
    baseline: Sequence[MetricSample],
    canary: Sequence[MetricSample],
    signals: Sequence[str],
    config: RolloutConfig,
    *,
    baseline_info: dict[str, Any] | None = None,
    canary_info: dict[str, Any] | None = None,
    now: float | None = None,
) -> Comparison:
    results = []
    for signal in signals:
        b = [v for s in baseline if (v := signal_value(s, signal)) is not None]
        c = [v for s in canary if (v := signal_value(s, signal)) is not None]
        results.append(judge_signal(signal, b, c, config.thresholds[signal], config.min_samples))
    verdicts = [r["verdict"] for r in results]
    failed = [r for r in results if r["verdict"] == "fail"]
    verdict: Literal["PASS", "FAIL", "INCONCLUSIVE"]
    undecided = [r for r in results if r["verdict"] == "insufficient"]
    if failed:
        verdict, summary = "FAIL", "; ".join(r["reason"] for r in failed)
    elif undecided:
        verdict, summary = "INCONCLUSIVE", "not enough data: " + "; ".join(r["reason"] for r in undecided)
    elif not verdicts or all(v == "unavailable" for v in verdicts):
        verdict, summary = "INCONCLUSIVE", "no sample carries any of the signals " + ", ".join(signals)
    else:
        verdict = "PASS"
        summary = "; ".join(r["reason"] for r in results if r["verdict"] == "pass")
    return Comparison(
        verdict=verdict,
        summary=summary,
        signals=results,
        baseline={**(baseline_info or {}), "samples": len(baseline)},
        canary={**(canary_info or {}), "samples": len(canary)},
        decided_at=now,
    )


def gross_regressions(comparison: Comparison, factor: float) -> list[dict[str, Any]]:
    """The failed signals worse than `factor` times their threshold: reason enough to stop a canary before
    its window ends (each judged on `min_samples` or more samples, as any failure is)."""
    if factor <= 0:
        return []
    return [
        r
        for r in comparison.signals
        if r.get("verdict") == "fail"
        and float(r.get("relative") or 0.0) > factor * float(r["max_regression"])
    ]
