"""The optimization engine: runs the optimizers for a target, orders the result, stores it de-duplicated.

    ctx = Context(instance, engine, read_settings(target, engine, instance_info), analyzer.active(instance), sample)
    specs = recommend(ctx)                                   # ordered, priority 1 first
    specs += recommend_from_compile(compile_record.result, ctx)
    created, updated = upsert_recommendations(store, specs)  # sync Store; via AsyncStore.call

Priority = f(severity of the bottleneck behind it, expected impact, effort): a CRITICAL bottleneck
with a high-impact, low-effort fix comes first; an expensive, speculative change last.
"""

from __future__ import annotations

import time

from sqlmodel import select

from daemon.models import Recommendation, RecommendationStatus, Severity
from daemon.optimizer import batching, kv_cache, quantization
from daemon.optimizer.context import Context
from daemon.optimizer.models import RecommendationSpec
from daemon.store import Store

_IMPACT = {"low": 1.0, "medium": 2.0, "high": 3.0}
_EFFORT = {"low": 1.0, "medium": 1.5, "high": 3.0}
_SEVERITY = {"INFO": 1.0, "WARNING": 2.0, "CRITICAL": 3.0}
OPTIMIZERS = (kv_cache.recommend, batching.recommend, quantization.recommend)


def score(spec: RecommendationSpec) -> float:
    severities = [b.get("severity", "INFO") for b in spec.source.get("bottlenecks", [])]
    sev = max(
        (_SEVERITY.get(s, 1.0) for s in severities), default=1.5
    )  # compiler plans: between INFO and WARNING
    return sev * _IMPACT[spec.expected_impact] / _EFFORT[spec.effort]


def prioritize(specs: list[RecommendationSpec]) -> list[RecommendationSpec]:
    """De-duplicate by fingerprint and number them 1..n by descending score (stable on ties)."""
    unique: dict[str, RecommendationSpec] = {}
    for s in specs:
        unique.setdefault(s.fingerprint, s)
    ordered = sorted(unique.values(), key=score, reverse=True)
    for i, s in enumerate(ordered, 1):
        s.priority = i
    return ordered


def recommend(ctx: Context) -> list[RecommendationSpec]:
    specs: list[RecommendationSpec] = []
    for optimizer in OPTIMIZERS:
        specs += optimizer(ctx)
    return prioritize(specs)


def upsert_recommendations(
    store: Store, specs: list[RecommendationSpec], now: float | None = None
) -> tuple[int, int]:
    """Insert new recommendations, refresh existing ones (same fingerprint) in place.

    A dismissed recommendation stays dismissed (the operator said no); a resolved one that fires
    again is reopened, since the problem came back. Returns (created, updated).
    """
    ts = time.time() if now is None else now
    created = updated = 0
    with store.session() as s:
        for spec in specs:
            row = s.exec(select(Recommendation).where(Recommendation.fingerprint == spec.fingerprint)).first()
            if row is None:
                s.add(spec.to_row(ts))
                created += 1
                continue
            fresh = spec.to_row(ts)
            row.detail, row.priority, row.title, row.updated_at = fresh.detail, spec.priority, spec.title, ts
            if row.status == RecommendationStatus.RESOLVED:
                row.status = RecommendationStatus.OPEN
            s.add(row)
            updated += 1
        s.commit()
    return created, updated


__all__ = ["Context", "Severity", "prioritize", "recommend", "score", "upsert_recommendations"]
