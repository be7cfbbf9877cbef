"""Persistence of rollouts: every state change and its audit event in one transaction.

The database is the single source of truth for a rollout, shared by the daemon's manager, the CLI
(another process) and the TUI. Two rules make that safe:
- every mutation locks the row first (an UPDATE before the read: SQLite takes its write lock,
  PostgreSQL the row lock), so a CLI `pause` and the manager's next step never overwrite each
  other's JSON, and a second `approve` sees the first one's result and is refused;
- a transition and its `AuditEvent` (who, when, from, to, why) commit together or not at all.

The row keeps the real previous config (launch env with its tokens, argv with its keys): a rollback
must restore exactly that. Whatever is published or shown goes through `public_view`, never the row.
"""

from __future__ import annotations

import builtins
import copy
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col, select

from daemon.errors import UserError
from daemon.models import AuditEvent, Rollout
from daemon.redaction import redact_data, redact_text
from daemon.rollouts.machine import check_transition
from daemon.actuators.change import Change
from daemon.rollouts.model import RolloutState, StageDetail
from daemon.store import Store

ENTITY = "rollout"

# Called inside a write's transaction; raises to refuse the write (daemon/rollouts/lease.py).
Fence = Callable[[Session, int], None]


class RolloutNotFound(UserError):
    pass


class StateChanged(UserError):
    """The rollout moved on (a person paused it, or another step won) since the caller looked."""


class Draft:
    """A mutable view of one locked rollout row, handed to the callback of `RolloutRepo.mutate`."""

    def __init__(self, row: Rollout) -> None:
        self.row = row
        self.stage = StageDetail.model_validate(row.stage_detail or {})
        self.previous_config: dict[str, Any] = copy.deepcopy(row.previous_config or {})
        self.comparison: dict[str, Any] = copy.deepcopy(row.comparison or {})

    @property
    def state(self) -> RolloutState:
        return RolloutState(self.row.state)

    @property
    def changes(self) -> list[Change]:
        return [Change.model_validate(c) for c in self.row.changes]


def stage_of(row: Rollout) -> StageDetail:
    return StageDetail.model_validate(row.stage_detail or {})


def changes_of(row: Rollout) -> list[Change]:
    return [Change.model_validate(c) for c in row.changes]


def public_view(row: Rollout) -> Rollout:
    """A detached copy of the row for the bus, MQTT, the TUI and the CLI: env values, credential argv
    flags, URL credentials and remembered secrets masked in its JSON columns (read-backs and failure
    text quote argv too). Never written back: the stored row stays what a rollback needs."""
    data = row.model_dump()
    for column in ("previous_config", "stage_detail", "comparison", "changes"):
        data[column] = redact_data(data[column] or ({} if column != "changes" else []))
    data["title"] = redact_text(row.title or "")
    return Rollout(**data)


def public_event(event: AuditEvent) -> AuditEvent:
    """An audit event for display: its comment may quote an actuator's error (argv, a URL)."""
    if not event.comment:
        return event
    return AuditEvent(**{**event.model_dump(), "comment": redact_text(event.comment)})


class RolloutRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    # --- reads ------------------------------------------------------------------------------
    def get(self, rollout_id: int) -> Rollout:
        with self.store.session() as s:
            row = s.get(Rollout, rollout_id)
        if row is None:
            raise RolloutNotFound(f"no rollout {rollout_id}")
        return row

    def list(self, states: Iterable[RolloutState] | None = None, limit: int = 200) -> list[Rollout]:
        where = [] if states is None else [col(Rollout.state).in_([s.value for s in states])]
        return self.store.all(Rollout, *where, order_by=col(Rollout.id).desc(), limit=limit)

    # `list` below is the method above: the builtin is spelled builtins.list in this class from here on.
    def changed_since(self, ts: float, limit: int = 200) -> builtins.list[Rollout]:
        return self.store.all(Rollout, Rollout.updated_at > ts, order_by=Rollout.updated_at, limit=limit)

    def events_after(self, event_id: int, limit: int = 500) -> builtins.list[AuditEvent]:
        """Rollout audit events with an id above `event_id`, oldest first."""
        return self.store.all(
            AuditEvent,
            AuditEvent.entity == ENTITY,
            col(AuditEvent.id) > event_id,
            order_by=AuditEvent.id,
            limit=limit,
        )

    def last_event_id(self) -> int:
        """The newest audit event's id, of any entity (0 for an empty log)."""
        with self.store.session() as s:
            return s.exec(select(sa.func.max(AuditEvent.id))).one() or 0

    def events(self, rollout_id: int) -> builtins.list[AuditEvent]:
        return self.store.all(
            AuditEvent,
            AuditEvent.entity == ENTITY,
            AuditEvent.entity_id == str(rollout_id),
            order_by=AuditEvent.id,
        )

    # --- writes -----------------------------------------------------------------------------
    def create(
        self,
        *,
        title: str,
        targets: Sequence[str],
        changes: Sequence[Change],
        actor: str,
        reason: str | None = None,
        signals: Sequence[str] = (),
        recommendation_id: int | None = None,
        daemon: str | None = None,
    ) -> Rollout:
        stage = StageDetail(signals=list(signals), reason=reason, proposed_by=actor)
        row = Rollout(
            recommendation_id=recommendation_id,
            state=RolloutState.PENDING_APPROVAL.value,
            title=title,
            targets=list(targets),
            changes=[c.model_dump(mode="json") for c in changes],
            stage_detail=stage.model_dump(mode="json"),
            daemon=daemon,
        )
        with self.store.session() as s:
            s.add(row)
            s.flush()
            s.add(self._event(row.id, actor, "propose", None, row.state, reason))
            s.commit()
            s.refresh(row)
        return row

    def mutate(
        self,
        rollout_id: int,
        fn: Callable[[Draft], None] | None = None,
        *,
        actor: str,
        action: str,
        to_state: RolloutState | None = None,
        expect: Iterable[RolloutState] | None = None,
        comment: str | None = None,
        audit: bool = True,
        events_out: builtins.list[AuditEvent] | None = None,
        fence: Fence | None = None,
    ) -> Rollout:
        """Lock the row, check `expect` and the transition, run `fn` on it, write it and its audit event.

        `fn` may raise to abort: nothing is written. With `to_state`, the transition is checked
        against the state machine *under the lock*, so of two racing commands only one wins. `fence` runs in
        the same transaction before anything is written and may refuse it (a daemon's lease, lease.py).
        """
        with self.store.session() as s:
            row = self._lock(s, rollout_id)
            if fence is not None:
                fence(s, rollout_id)
            current = RolloutState(row.state)
            if expect is not None and current not in set(expect):
                raise StateChanged(
                    f"rollout {rollout_id} is {current.value}, expected {'/'.join(sorted(e.value for e in expect))}"
                )
            if to_state is not None and to_state != current:
                check_transition(current, to_state)
            draft = Draft(row)
            if fn is not None:
                fn(draft)
            # New objects for the JSON columns: SQLAlchemy does not see in-place changes to a dict.
            row.stage_detail = draft.stage.model_dump(mode="json")
            row.previous_config = copy.deepcopy(draft.previous_config)
            row.comparison = copy.deepcopy(draft.comparison)
            if to_state is not None:
                row.state = to_state.value
            row.updated_at = time.time()
            s.add(row)
            event = (
                self._event(rollout_id, actor, action, current.value, row.state, comment) if audit else None
            )
            if event is not None:
                s.add(event)
            s.commit()
            s.refresh(row)
            if event is not None and events_out is not None:
                s.refresh(event)
                events_out.append(event)
            return row

    def audit(self, rollout_id: int, actor: str, action: str, comment: str | None = None) -> None:
        """An event that changes nothing on the row (a refused command, a recovery finding)."""
        with self.store.session() as s:
            row = s.get(Rollout, rollout_id)
            state = row.state if row else None
            s.add(self._event(rollout_id, actor, action, state, state, comment))
            s.commit()

    # --- internals --------------------------------------------------------------------------
    @staticmethod
    def _lock(s: Session, rollout_id: int) -> Rollout:
        # Write first: this takes SQLite's write lock (PostgreSQL's row lock) before we read, so the
        # read-modify-write below cannot interleave with another writer's.
        # An UPDATE's result is a CursorResult (it has the rowcount); Session.execute is typed for any statement.
        result = cast(
            sa.CursorResult[Any],
            s.execute(sa.update(Rollout).where(col(Rollout.id) == rollout_id).values(updated_at=time.time())),
        )
        if result.rowcount == 0:
            raise RolloutNotFound(f"no rollout {rollout_id}")
        row = s.exec(select(Rollout).where(Rollout.id == rollout_id).with_for_update()).one()
        return row

    @staticmethod
    def _event(
        rollout_id: int | None,
        actor: str,
        action: str,
        from_state: str | None,
        to_state: str | None,
        comment: str | None,
    ) -> AuditEvent:
        return AuditEvent(
            actor=actor,
            entity=ENTITY,
            entity_id=str(rollout_id),
            action=action,
            from_state=from_state,
            to_state=to_state,
            comment=comment,
        )
