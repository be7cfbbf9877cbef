"""Typed views of what a `Rollout` row keeps in its JSON columns.

The table (`daemon.models.Rollout`) stores `changes`, `previous_config` and `stage_detail` as JSON so
the schema stays stable while the rollout logic grows; these models are the only code that reads or
writes those columns, so a typo in a key is a validation error, not a silently lost field.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RolloutState(str, enum.Enum):
    PENDING_APPROVAL = "PENDING_APPROVAL"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    CANARY = "CANARY"
    VALIDATING = "VALIDATING"
    ROLLING_OUT = "ROLLING_OUT"
    COMPLETED = "COMPLETED"
    PAUSED = "PAUSED"
    FAILED = "FAILED"  # something went wrong; the manager restores every target it changed
    ROLLING_BACK = "ROLLING_BACK"  # a person asked for the rollback: restored the same way, not a failure
    ROLLED_BACK = "ROLLED_BACK"


# States in which the manager owns the rollout and may touch targets.
ACTIVE_STATES: frozenset[RolloutState] = frozenset(
    {
        RolloutState.APPROVED,
        RolloutState.CANARY,
        RolloutState.VALIDATING,
        RolloutState.ROLLING_OUT,
        RolloutState.PAUSED,
        RolloutState.FAILED,
        RolloutState.ROLLING_BACK,
    }
)
TERMINAL_STATES: frozenset[RolloutState] = frozenset(
    {RolloutState.REJECTED, RolloutState.COMPLETED, RolloutState.ROLLED_BACK}
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


TargetStatus = Literal["pending", "applying", "applied", "restoring", "restored", "failed"]


class TargetProgress(_Model):
    """Where one target stands. `applying`/`restoring` are written *before* the actuator runs, so a
    crash in the middle leaves a mark that recovery resolves by looking at the target's real state."""

    status: TargetStatus = "pending"
    applied_at: float | None = None
    restored_at: float | None = None
    restore_attempts: int = 0
    next_restore_at: float | None = None
    error: str | None = None
    readback: dict[str, Any] | None = None


class StageDetail(_Model):
    canary: str | None = None
    order: list[str] = []  # canary first, then the rest
    progress: dict[str, TargetProgress] = {}
    signals: list[str] = []
    # The canary window starts when the change is verified on the canary (or when a restarted daemon
    # re-verified it: samples from while the daemon was down were never collected).
    canary_since: float | None = None
    baseline: dict[str, Any] | None = None  # {"targets": [...], "since": t, "until": t}
    paused_from: RolloutState | None = None
    pause_reason: Literal["manual", "inconclusive"] | None = None
    failure_reason: str | None = None
    failed_from: RolloutState | None = None
    reason: str | None = None  # why it was proposed
    proposed_by: str | None = None
    recoveries: int = 0
    # The changed settings as each target had them before it was touched ({target: {key: value}}, None for
    # the engine's default): what a diff shows as current and a rollback restores. Recorded with the
    # snapshot; plain values only (the snapshot itself, with launch env and argv, stays private).
    before: dict[str, dict[str, str | None]] = {}
    # The same settings as read once while the proposal waited for approval: what the diff shows as
    # current before anything is touched (a proposal made with the CLI carries no optimizer reading).
    pending_read: dict[str, dict[str, str | None]] = {}

    def applied_targets(self) -> list[str]:
        """Targets that were changed or may have been (a crash mid-apply), in the order they were touched."""
        return [t for t in self.order if self.progress.get(t, TargetProgress()).status != "pending"]


class Comparison(_Model):
    """The verdict of a validation, written into `Rollout.comparison`."""

    verdict: Literal["PASS", "FAIL", "INCONCLUSIVE"]
    summary: str
    signals: list[dict[str, Any]] = Field(default_factory=list)
    baseline: dict[str, Any] = Field(default_factory=dict)
    canary: dict[str, Any] = Field(default_factory=dict)
    decided_at: float | None = None
