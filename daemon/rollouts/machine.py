"""The rollout state machine: which transitions exist, and what each person's command means.

PENDING_APPROVAL -> APPROVED | REJECTED
APPROVED -> CANARY -> VALIDATING -> ROLLING_OUT -> COMPLETED
any active state -> FAILED -> ROLLED_BACK (the manager found a fault: restore)
any active state or COMPLETED -> ROLLING_BACK -> ROLLED_BACK (a person asked for the rollback: restore)
APPROVED/CANARY/VALIDATING/ROLLING_OUT -> PAUSED (a person, or a validation that cannot decide)
PAUSED -> the state it was paused from (resume), or ROLLING_OUT (resume after an inconclusive validation:
          the person's judgement replaces the missing data, as `argo rollouts promote` does)
COMPLETED -> ROLLING_BACK only by a person's rollback: a finished change can still be undone, configuration
included. FAILED -> ROLLING_BACK never: a failed rollout's restore is already under way.
"""

from __future__ import annotations

from typing import Literal

from daemon.errors import UserError
from daemon.rollouts.model import RolloutState as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.REJECTED}),
    S.APPROVED: frozenset({S.CANARY, S.PAUSED, S.FAILED, S.ROLLING_BACK}),
    S.CANARY: frozenset({S.VALIDATING, S.PAUSED, S.FAILED, S.ROLLING_BACK}),
    S.VALIDATING: frozenset({S.ROLLING_OUT, S.PAUSED, S.FAILED, S.ROLLING_BACK}),
    S.ROLLING_OUT: frozenset({S.COMPLETED, S.PAUSED, S.FAILED, S.ROLLING_BACK}),
    S.PAUSED: frozenset({S.APPROVED, S.CANARY, S.VALIDATING, S.ROLLING_OUT, S.FAILED, S.ROLLING_BACK}),
    S.COMPLETED: frozenset({S.ROLLING_BACK}),
    S.FAILED: frozenset({S.ROLLED_BACK}),
    S.ROLLING_BACK: frozenset({S.ROLLED_BACK}),
    S.REJECTED: frozenset(),
    S.ROLLED_BACK: frozenset(),
}

Action = Literal["approve", "reject", "pause", "resume", "rollback"]
ACTIONS: tuple[Action, ...] = ("approve", "reject", "pause", "resume", "rollback")

# The states from which a person's command is accepted (the manager's own moves are not listed).
COMMAND_FROM: dict[Action, frozenset[S]] = {
    "approve": frozenset({S.PENDING_APPROVAL}),
    "reject": frozenset({S.PENDING_APPROVAL}),
    "pause": frozenset({S.APPROVED, S.CANARY, S.VALIDATING, S.ROLLING_OUT}),
    "resume": frozenset({S.PAUSED}),
    "rollback": frozenset({S.APPROVED, S.CANARY, S.VALIDATING, S.ROLLING_OUT, S.PAUSED, S.COMPLETED}),
}


class IllegalTransition(UserError):
    """A transition or command the state machine does not allow; the message says why."""


def check_transition(current: S, target: S) -> None:
    allowed = TRANSITIONS[current]
    if target not in allowed:
        options = ", ".join(sorted(s.value for s in allowed)) or "nothing (it is final)"
        raise IllegalTransition(
            f"cannot go from {current.value} to {target.value}: {current.value} allows {options}"
        )


def check_command(action: Action, current: S, rollout_id: int) -> None:
    allowed = COMMAND_FROM[action]
    if current in allowed:
        return
    hints = {
        ("reject", S.REJECTED): "it was already rejected",
        ("rollback", S.ROLLED_BACK): "it was already rolled back",
        ("rollback", S.FAILED): "its rollback is already under way",
        ("rollback", S.ROLLING_BACK): "its rollback is already under way",
    }
    # Past approval but not final: say so, rather than listing states.
    approved = current not in (S.PENDING_APPROVAL, S.REJECTED) and bool(TRANSITIONS[current])
    if action == "approve" and approved:
        hints[(action, current)] = "it was already approved"
    if action == "reject" and approved:
        hints[(action, current)] = "it was already approved; `rollback` undoes it"
    hint = hints.get((action, current)) or (
        "it is final"
        if not TRANSITIONS[current]
        else f"{action} needs {', '.join(sorted(s.value for s in allowed))}"
    )
    raise IllegalTransition(f"cannot {action} rollout {rollout_id}: it is {current.value} ({hint})")


def resume_target(paused_from: S | None, pause_reason: str | None) -> S:
    """Where `resume` goes: back where it was paused, except past an undecided validation."""
    if paused_from is None:
        return S.APPROVED
    if paused_from == S.VALIDATING and pause_reason == "inconclusive":
        return S.ROLLING_OUT
    return paused_from
