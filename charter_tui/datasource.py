"""Where the TUI's data comes from, behind one small interface.

`DataSource` is all the app knows: an initial snapshot, a stream of bus events, store reads for
history, and a way to send commands. `BusSource` implements it in-process over the embedded
daemon's `Bus` and `AsyncStore`; a `--connect` to a remote daemon would implement the same four
methods over MQTT (`daemon/mqtt_bridge.py` already carries the same topics and JSON), so no
screen changes. Payloads may arrive as models (in-process) or as JSON dicts (over MQTT):
`decode` turns either into the model, so the state only ever sees models.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from pydantic import BaseModel

from charter_tui.state import LIVE_SIGNALS, topic_kind
from daemon.bus import TOPIC_VERSION, Bus, Event, Subscription, topic
from daemon.contract import COMMAND_ACTIONS as CONTRACT_ACTIONS
from daemon.contract import AuthorizedCommand, RolloutCommand
from daemon.topics import model_for
from daemon.executor.publisher import latest_runs
from daemon.models import (
    AuditEvent,
    Bottleneck,
    CompileRecord,
    Instance,
    Recommendation,
    Rollout,
)
from daemon.rollouts.repo import public_event, public_view
from daemon.store import AsyncStore, Store

log = logging.getLogger(__name__)

# What a key press can ask of an existing rollout (proposing is the CLI's and the optimizer's job).
COMMAND_ACTIONS = frozenset(a for a in CONTRACT_ACTIONS if a != "propose")
SNAPSHOT_SAMPLES_S = 600.0  # prime the sparklines with the last ten minutes from the store


class ReadOnlyError(RuntimeError):
    """A mutating command was attempted from a read-only TUI."""


def decode(event: Event) -> Event:
    """The event with its payload as the contract's model (dicts from MQTT are validated)."""
    model = model_for(event.topic)
    if model is None or isinstance(event.payload, model) or not isinstance(event.payload, dict):
        return event
    return Event(event.topic, model.model_validate(event.payload))


class DataSource(Protocol):
    readonly: bool

    async def snapshot(self) -> list[Event]:
        """What the daemon already knows, as events, so state is filled the same way as live."""
        ...

    def events(self) -> AsyncIterator[Event]:
        """Live events, forever (until the source is closed)."""
        ...

    async def history(self, instance: str, since: float) -> list[tuple[float, dict[str, float | None]]]:
        """(ts, {signal: value}) rows from the store, oldest first: raw samples then aggregates."""
        ...

    async def send_command(self, rollout_id: int, action: str, actor: str, comment: str = "") -> str:
        """Send a rollout command; returns its request id (the manager's result carries it back)."""
        ...

    def close(self) -> None: ...


class BusSource:
    """The in-process source: the embedded daemon's bus and store.

    It subscribes at construction so no event published while the app starts is lost; the
    snapshot read from the store afterwards may repeat some of them, which the state ignores
    (it keeps the newest by timestamp).
    """

    def __init__(
        self,
        bus: Bus,
        store: Callable[[], AsyncStore | None] = lambda: None,
        *,
        readonly: bool = False,
        ready: asyncio.Event | None = None,
    ) -> None:
        self.bus = bus
        self._store = store
        self._ready = ready
        self.readonly = readonly
        self.subscription: Subscription = bus.subscribe(f"{TOPIC_VERSION}/#", maxsize=5000)

    async def _wait_store(self) -> AsyncStore | None:
        if self._ready is not None:
            await self._ready.wait()
        return self._store()

    async def snapshot(self) -> list[Event]:
        store = await self._wait_store()
        if store is None:
            return []
        try:
            return await store.call(_read_snapshot, store.store, time.time())
        except Exception:  # a broken snapshot must not keep the live view from starting
            log.exception("reading the start-up snapshot from the store failed")
            return []

    async def events(self) -> AsyncIterator[Event]:
        while True:
            event = await self.subscription.get()
            if topic_kind(event.topic) == "command":
                continue  # our own (or a remote client's) commands are not state; their results are
            yield decode(event)

    async def history(self, instance: str, since: float) -> list[tuple[float, dict[str, float | None]]]:
        store = self._store()
        if store is None:
            return []
        return await store.call(_read_history, store.store, instance, since)

    async def send_command(self, rollout_id: int, action: str, actor: str, comment: str = "") -> str:
        # Refused here as well as hidden in the UI: the read-only promise must not depend on
        # every screen remembering to check.
        if self.readonly:
            raise ReadOnlyError(f"read-only: refusing to {action} rollout {rollout_id}")
        if action not in COMMAND_ACTIONS:
            raise ValueError(f"unknown rollout action {action!r}")
        request_id = uuid.uuid4().hex
        command = RolloutCommand.model_validate(
            {"action": action, "id": rollout_id, "comment": comment or None, "request_id": request_id})
        # In-process, the sender is this process's OS user: the embedded daemon trusts it as it trusts the CLI.
        self.bus.publish(command.topic, AuthorizedCommand(command, identity=actor, via="local"))
        return request_id

    def close(self) -> None:
        self.bus.unsubscribe(self.subscription)


def _read_snapshot(store: Store, now: float) -> list[Event]:
    """Runs on the store thread: everything a freshly started TUI should show at once."""
    events: list[Event] = []

    def add(kind: str, key: Any, row: BaseModel) -> None:
        events.append(Event(topic(kind, str(key)), row))

    for inst in store.all(Instance):
        add("instance", inst.name, inst)
        for sample in store.samples(inst.name, now - SNAPSHOT_SAMPLES_S):
            add("sample", inst.name, sample)
    for b in store.all(Bottleneck, order_by=Bottleneck.started_at.desc(), limit=200):  # type: ignore[attr-defined]
        add("bottleneck", b.instance, b)
    for rec in store.all(CompileRecord, order_by=CompileRecord.compiled_at):
        add("compile", rec.path, rec)
    for r in store.all(Recommendation, order_by=Recommendation.updated_at.desc(), limit=200):  # type: ignore[attr-defined]
        add("recommendation", r.id, r)
    for ro in store.all(Rollout, order_by=Rollout.updated_at.desc(), limit=200):  # type: ignore[attr-defined]
        add("rollout", ro.id, public_view(ro))  # shown, so redacted: the row keeps what a rollback needs
    for a in reversed(store.all(AuditEvent, order_by=AuditEvent.ts.desc(), limit=1000)):  # type: ignore[attr-defined]
        add("audit", a.entity, public_event(a))
    # Bench runs come from another process (`charter-tui bench`); the daemon publishes only those
    # stored after it started, so the newest per agent and target is read here.
    for run in latest_runs(store):
        add("bench", run.agent, run)
    return events


def _read_history(store: Store, instance: str, since: float) -> list[tuple[float, dict[str, float | None]]]:
    """Runs on the store thread: per-minute aggregates (older than raw retention) then raw samples."""
    rows: list[tuple[float, dict[str, float | None]]] = []
    for agg in store.aggregates(instance, since):
        rows.append((float(agg.minute) + 30.0, {k: agg.values.get(k) for k in LIVE_SIGNALS}))
    for s in store.samples(instance, since):
        rows.append((s.ts, {k: getattr(s, k) for k in LIVE_SIGNALS}))
    rows.sort(key=lambda r: r[0])
    return rows
