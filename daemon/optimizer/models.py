"""The optimizer's typed output: a recommendation is a list of config changes plus what it buys and costs.

`RecommendationSpec.to_row()` turns it into the stored `Recommendation` (changes, impact, effort,
risks and prerequisites go to `detail`); `fingerprint` is the de-duplication key: the same target,
kind and *recommended* values give the same fingerprint however often the bottleneck re-fires, while
the current values and the evidence may change between firings without creating a duplicate.

Priority: 1 is the most urgent; the engine sorts ascending.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from daemon.models import Recommendation

Impact = Literal["low", "medium", "high"]
Effort = Literal["low", "medium", "high"]
Kind = Literal["kv_cache", "quantization", "batching", "prompt_layout", "capacity"]
Apply = Literal[
    "restart", "reload", "runtime", "rebuild", "code"
]  # what it takes for a change to take effect


class ConfigChange(BaseModel):
    parameter: str  # as the operator sets it: a launch flag (`--max-num-seqs`) or a Triton config path
    current_value: Any = None
    current_source: str = (
        "unknown"  # where current_value was read: cache_config_info, model_config, launch argv, default
    )
    recommended_value: Any
    reason: str
    apply: Apply = "restart"  # what it takes to take effect


class RecommendationSpec(BaseModel):
    instance: str | None
    engine: str
    kind: Kind
    title: str
    description: str
    changes: list[ConfigChange]
    expected_impact: Impact
    estimated_improvement: str
    effort: Effort
    effort_detail: str
    risks: list[str] = []
    prerequisites: list[str] = []
    source: dict[str, Any] = Field(default_factory=dict)  # bottleneck kinds/ids, compile path, evidence
    priority: int = 50

    @property
    def fingerprint(self) -> str:
        key = {
            "instance": self.instance,
            "kind": self.kind,
            "changes": sorted(
                (c.parameter, json.dumps(c.recommended_value, sort_keys=True, default=str))
                for c in self.changes
            ),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]

    def to_row(self, now: float | None = None) -> Recommendation:
        ts = time.time() if now is None else now
        detail = self.model_dump(mode="json", exclude={"instance", "kind", "title", "priority"})
        return Recommendation(
            fingerprint=self.fingerprint,
            instance=self.instance,
            kind=self.kind,
            title=self.title,
            priority=self.priority,
            created_at=ts,
            updated_at=ts,
            detail=detail,
        )
