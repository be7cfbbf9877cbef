"""Where the TUI's data comes from, behind one small interface.

`DataSource` is all the app knows: placeholders to show at once, a start-up snapshot, a stream of bus
events, a target's history, and a way to send commands. `BusSource` implements it in-process over the
embedded daemon's bus and its read views (`DaemonService.snapshot/history`, daemon/views.py); `MqttSource`
(`tui --connect`) over MQTT, so no screen changes. The composition root (charter_tui/compose.py) picks one.
Payloads may arrive as models (in-process) or as JSON dicts (over MQTT): `decode` turns either into the
model (daemon/topics.py), so the state only ever sees models.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from charter_tui.state import LIVE_SIGNALS, topic_kind
from daemon.bus import TOPIC_VERSION, Bus, Event, Subscription, topic
from daemon.contract import COMMAND_ACTIONS as CONTRACT_ACTIONS
from daemon.contract import AuthorizedCommand, RolloutCommand
from daemon.models import Instance
from daemon.topics import model_for
from daemon.views import History

log = logging.getLogger(__name__)

# What a key press can ask of an existing rollout; the one proposal a key makes is of a stored
# recommendation (free-form proposals are the CLI's).
COMMAND_ACTIONS = frozenset(a for a in CONTRACT_ACTIONS if a != "propose")


def sendable(action: str, recommendation_id: int | None) -> bool:
    return action in COMMAND_ACTIONS or (action == "propose" and recommendation_id is not None)


class ReadOnlyError(RuntimeError):
    """A mutating command was attempted from a read-only TUI."""


def decode(event: Event) -> Event:
    """The event with its payload as the contract's model (dicts from MQTT are validated)."""
    model = model_for(event.topic)
    if model is None or isinstance(event.payload, model) or not isinstance(event.payload, dict):
        return event
    return replace(event, payload=model.model_validate(event.payload))


class DaemonViews(Protocol):
    """What the in-process source needs of the embedded daemon (`daemon.service.DaemonService`)."""

    def configured_instances(self) -> list[Instance]: ...

    async def snapshot(self) -> list[Event]: ...

    async def history(self, instance: str, since: float, signals: Sequence[str]) -> History: ...


class DataSource(Protocol):
    readonly: bool

    def placeholders(self) -> list[Event]:
        """Events to show before anything arrives (the configured targets), applied at construction."""
        ...

    async def snapshot(self) -> list[Event]:
        """What the daemon already knows, as events, so state is filled the same way as live."""
        ...

    def events(self) -> AsyncIterator[Event]:
        """Live events, forever (until the source is closed)."""
        ...

    async def history(self, instance: str, since: float) -> History:
        """(ts, {signal: value}) rows for the detail plots, oldest first."""
        ...

    async def send_command(
        self,
        rollout_id: int | None,
        action: str,
        actor: str,
        comment: str = "",
        *,
        recommendation_id: int | None = None,
        daemon: str | None = None,
    ) -> str:
        """Send a rollout command to `daemon` (None: the one daemon there is); returns its request id (the
        manager's result carries it back)."""
        ...

    def link_down_since(self) -> float | None:
        """Since when (Unix time) nothing can arrive because the link to the daemons is down; None while up.
        The screens then say their data may be stale."""
        ...

    def close(self) -> None: ...


class BusSource:
    """The in-process source: the embedded daemon's bus and store.

    It subscribes at construction so no event published while the app starts is lost; the
    snapshot read from the store afterwards may repeat some of them, which the state ignores
    (it keeps the newest by timestamp).
    """

    def __init__(self, bus: Bus, daemon: DaemonViews | None = None, *, readonly: bool = False) -> None:
        self.bus = bus
        self.daemon = daemon  # None: only the bus (tests pin data by publishing it)
        self.readonly = readonly
        self.subscription: Subscription = bus.subscribe(f"{TOPIC_VERSION}/#", maxsize=5000)

    def placeholders(self) -> list[Event]:
        """Configured targets, shown at once (state UNKNOWN) instead of after the first poll."""
        if self.daemon is None:
            return []
        return [Event(topic("instance", i.name), i) for i in self.daemon.configured_instances()]

    async def snapshot(self) -> list[Event]:
        if self.daemon is None:
            return []
        try:
            return await self.daemon.snapshot()
        except Exception:  # a broken snapshot must not keep the live view from starting
            log.exception("reading the start-up snapshot from the store failed")
            return []

    async def events(self) -> AsyncIterator[Event]:
        while True:
            event = await self.subscription.get()
            if topic_kind(event.topic) == "command":
                continue  # our own (or a remote client's) commands are not state; their results are
            yield decode(event)

    async def history(self, instance: str, since: float) -> History:
        if self.daemon is None:
            return []
        return await self.daemon.history(instance, since, LIVE_SIGNALS)

    async def send_command(
        self,
        rollout_id: int | None,
        action: str,
        actor: str,
        comment: str = "",
        *,
        recommendation_id: int | None = None,
        daemon: str | None = None,  # in-process there is one daemon, the embedded one
    ) -> str:
        # Refused here as well as hidden in the UI: the read-only promise must not depend on
        # every screen remembering to check.
        if self.readonly:
            raise ReadOnlyError(f"read-only: refusing to {action} rollout {rollout_id}")
        if not sendable(action, recommendation_id):
            raise ValueError(f"unknown rollout action {action!r}")
        request_id = uuid.uuid4().hex
        command = RolloutCommand.model_validate(
            {
                "action": action,
                "id": rollout_id,
                "comment": comment or None,
                "request_id": request_id,
                **({"recommendation_id": recommendation_id} if recommendation_id is not None else {}),
            }
        )
        # In-process, the sender is this process's OS user: the embedded daemon trusts it as it trusts the CLI.
        self.bus.publish(command.topic, AuthorizedCommand(command, identity=actor, via="local"))
        return request_id

    def link_down_since(self) -> float | None:
        return None  # in-process: the bus cannot be away

    def close(self) -> None:
        self.bus.unsubscribe(self.subscription)
