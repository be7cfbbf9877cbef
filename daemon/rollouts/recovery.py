"""Crash recovery: after a (re)start, reconcile every active rollout with what its targets really run.

The manager writes `applying` before it touches a target and `applied` only after reading the change back,
so a SIGKILL anywhere leaves one of three cases per target marked `applying`/`applied`, told apart by
asking the server (`actuator.observe()`):
- it runs the change -> carry on (marked `applied` if it was `applying`); a canary's window restarts, since
  no samples were judged while the daemon was down;
- it still runs its recorded config and was `applying` -> the change never happened: back to `pending`, the
  next step does it;
- anything else (unreachable, neither config, no recorded config, no longer configured) -> FAILED with the
  findings, and the rollback restores the recorded config.
Targets already `restoring`/`restored`/`failed` are left to the FAILED handler, which observes before acting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from daemon.actuators import Actuator, ActuatorError
from daemon.models import Rollout
from daemon.rollouts.journal import Journal
from daemon.rollouts.model import ACTIVE_STATES, RolloutState
from daemon.rollouts.repo import Draft, stage_of

log = logging.getLogger(__name__)

S = RolloutState
ActuatorFor = Callable[[Rollout, str], Actuator]
# Whether this daemon may act on the rollout now (its lease, daemon/rollouts/lease.py).
MayDrive = Callable[[Rollout], Awaitable[bool]]


async def recover(journal: Journal, actuator_for: ActuatorFor, may_drive: MayDrive | None = None) -> None:
    """Reconcile each active rollout this daemon may drive; one that cannot be reconciled is stepped as stored.
    Another daemon's rollouts are its own to reconcile (or, if it died, whoever takes its lease over)."""
    rows = await asyncio.to_thread(journal.repo.list, ACTIVE_STATES)
    for row in rows:
        try:
            if may_drive is not None and not await may_drive(row):
                continue
            await recover_one(row, journal, actuator_for)
        except Exception:  # noqa: BLE001
            log.exception("rollout %s: recovery failed; it will be stepped as stored", row.id)


async def recover_one(row: Rollout, journal: Journal, actuator_for: ActuatorFor) -> None:
    stage = stage_of(row)
    findings: list[str] = []
    drift: list[str] = []
    for name in stage.applied_targets():
        progress = stage.progress[name]
        if progress.status not in ("applying", "applied"):
            continue  # restoring / restored / failed: the FAILED handler observes before acting
        previous = row.previous_config.get(name)
        try:
            actuator = actuator_for(row, name)
        except ActuatorError as exc:
            drift.append(str(exc))
            continue
        if previous is None:
            drift.append(f"{name}: no recorded config")
            continue
        observed = await actuator.observe()
        desired = actuator.desired(previous)
        if observed is None:
            drift.append(f"{name} is unreachable")
        elif actuator.matches(observed, desired):
            findings.append(f"{name} runs the change")
            if progress.status == "applying":
                row = await journal.mark_applied(row, name, {"recovered": True}, canary=name == stage.canary)
        elif actuator.matches(observed, previous) and progress.status == "applying":
            findings.append(f"{name} still runs its recorded config: the change had not happened")

            def reset(d: Draft, name: str = name) -> None:
                d.stage.progress[name].status = "pending"

            row = await journal.mutate(
                row, reset, action="recover", comment=f"{name}: change not applied yet"
            )
        else:
            drift.append(f"{name} runs neither the change nor its recorded config")
    canary_restart = S(row.state) == S.CANARY and stage.canary_since is not None and not drift

    def note(d: Draft) -> None:
        d.stage.recoveries += 1
        if canary_restart:
            d.stage.canary_since = journal.clock()  # no samples were judged while the daemon was down

    comment = "; ".join(findings + drift) or "nothing applied yet"
    row = await journal.mutate(row, note, action="recover", comment=comment)
    if drift and S(row.state) not in (S.FAILED, S.ROLLING_BACK):
        await journal.fail(row, "after a restart: " + "; ".join(drift))
