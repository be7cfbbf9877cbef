"""How the daemon writes a rollout: each step persisted (row and audit event, one transaction), then published.

The stage loop (`manager`), crash recovery (`recovery`) and the bus commands (`command_handler`) all change
rollout rows; they do it only through a `Journal`, so every change the daemon makes is recorded under the
row lock with the expected state checked, reaches the bus as the row's public view, and passes the
`checkpoint` hook the crash tests kill the process at. The clock lives here too: one clock for every part.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from daemon.bus import Bus, topic
from daemon.models import AuditEvent, Rollout
from daemon.rollouts.model import RolloutState
from daemon.rollouts.repo import Draft, Fence, RolloutRepo, public_event, public_view

log = logging.getLogger(__name__)

S = RolloutState
ACTOR = "daemon"
Checkpoint = Callable[[str, int], None]


def row_id(row: Rollout) -> int:
    assert row.id is not None  # a row read from the store: only an unsaved row has no id
    return row.id


class Journal:
    def __init__(
        self,
        repo: RolloutRepo,
        bus: Bus,
        *,
        checkpoint: Checkpoint | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repo = repo
        self.bus = bus
        # Test hook: called at named points (e.g. "after_apply") so fault tests can SIGKILL exactly there.
        self.checkpoint: Checkpoint = checkpoint or (lambda _name, _id: None)
        self.clock = clock
        # Set by a manager that shares its database with other daemons: a write to a rollout another daemon
        # holds the live lease of is refused (daemon/rollouts/lease.py).
        self.fence: Fence | None = None
        self._published: dict[int, float] = {}
        self._last_scan = 0.0
        # The audit events this process published itself, and the newest event id seen in the store
        # (None until the first scan: the TUI's snapshot already holds the events from before it).
        self._published_events: set[int] = set()
        self._last_event_id: int | None = None

    async def transition(
        self,
        row: Rollout,
        to: RolloutState,
        fn: Callable[[Draft], None] | None,
        *,
        comment: str,
        expect: set[RolloutState] | None | Literal[True] = True,
    ) -> Rollout:
        assert row.id is not None
        expected = {S(row.state)} if expect is True else expect
        out: list[AuditEvent] = []
        new = await asyncio.to_thread(
            self.repo.mutate,
            row.id,
            fn,
            actor=ACTOR,
            action=to.value.lower(),
            to_state=to,
            expect=expected,
            comment=comment,
            events_out=out,
            fence=self.fence,
        )
        self.publish(new, out[0] if out else None)
        log.info("rollout %s: %s -> %s: %s", row.id, row.state, to.value, comment)
        self.checkpoint(f"state:{to.value}", row.id)
        return new

    async def mutate(
        self, row: Rollout, fn: Callable[[Draft], None], *, action: str, comment: str
    ) -> Rollout:
        assert row.id is not None
        out: list[AuditEvent] = []
        new = await asyncio.to_thread(
            self.repo.mutate,
            row.id,
            fn,
            actor=ACTOR,
            action=action,
            comment=comment,
            events_out=out,
            fence=self.fence,
        )
        self.publish(new, out[0] if out else None)
        return new

    async def note(self, row: Rollout, fn: Callable[[Draft], None], *, expect: set[RolloutState]) -> Rollout:
        """Change what the row records without an audit event (a reading, not a step), if it is still in
        one of the `expect` states (StateChanged otherwise)."""
        assert row.id is not None
        new = await asyncio.to_thread(
            self.repo.mutate,
            row.id,
            fn,
            actor=ACTOR,
            action="note",
            expect=expect,
            audit=False,
            fence=self.fence,
        )
        self.publish(new)
        return new

    async def fail(self, row: Rollout, reason: str) -> None:
        def record(d: Draft) -> None:
            d.stage.failure_reason, d.stage.failed_from = reason, d.state

        current = S((await asyncio.to_thread(self.repo.get, row_id(row))).state)
        if current in (S.FAILED, S.ROLLING_BACK, S.ROLLED_BACK, S.COMPLETED):
            return
        await self.transition(row, S.FAILED, record, comment=reason[:2000], expect=None)

    async def mark_applied(
        self, row: Rollout, name: str, readback: dict[str, Any], *, canary: bool
    ) -> Rollout:
        """`name` runs the change (read back from the server, or found so after a restart)."""
        now = self.clock()

        def done(d: Draft) -> None:
            p = d.stage.progress[name]
            p.status, p.applied_at, p.readback, p.error = "applied", now, clip(readback), None
            if canary:
                d.stage.canary_since = now

        return await self.mutate(
            row, done, action="applied", comment=f"{name}: change verified ({brief(readback)})"
        )

    def publish(self, row: Rollout, event: AuditEvent | None = None) -> None:
        """The row in-process (the bus's contract: models in-process, their JSON on MQTT), as its public
        view: the recorded previous config (launch env, argv) stays in the database for the rollback."""
        self.bus.publish(topic("rollout", str(row.id)), public_view(row))
        self._published[row.id or 0] = row.updated_at
        if event is not None:
            self.bus.publish(topic("audit", "rollout"), public_event(event))
            if event.id is not None:
                self._published_events.add(event.id)

    async def publish_changes(self) -> None:
        """Publish rollouts changed by other processes (the CLI writes to the store directly), and their
        audit events: a proposal or approval made with `charter-tui rollouts` shows in the TUI's log."""
        rows = await asyncio.to_thread(self.repo.changed_since, self._last_scan)
        for row in rows:
            if self._published.get(row.id or 0) != row.updated_at:
                self.publish(row)
            self._last_scan = max(self._last_scan, row.updated_at)
        if self._last_event_id is None:
            self._last_event_id = await asyncio.to_thread(self.repo.last_event_id)
            self._published_events.clear()  # all at or below that id: never read back
            return
        for event in await asyncio.to_thread(self.repo.events_after, self._last_event_id):
            assert event.id is not None  # read from the store
            self._last_event_id = event.id
            if event.id in self._published_events:
                self._published_events.discard(event.id)  # ours, already sent: forget it
                continue
            self.bus.publish(topic("audit", "rollout"), public_event(event))


def clip(data: dict[str, Any], limit: int = 4000) -> dict[str, Any]:
    """Read-back evidence is kept, but not a whole /metrics page."""
    text = json.dumps(data, default=str)
    return data if len(text) <= limit else {"truncated": text[:limit]}


def brief(readback: dict[str, Any]) -> str:
    keys = ("flags", "parameters", "values", "cache_config_info", "already", "recovered", "blue_green")
    parts = [f"{k}={readback[k]}" for k in keys if k in readback]
    return ("; ".join(parts) or "ok")[:500]
