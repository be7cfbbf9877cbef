"""A `DataSource` over MQTT: the TUI attached to remote daemons (`charter-tui tui --connect HOST[:PORT]`).

Each daemon's `MqttBridge` publishes every bus event as JSON under `<prefix>/<daemon-id>/...` and turns
signed messages on `<prefix>/<daemon-id>/command/#` into bus commands; this source is the other end of
those bridges, for every daemon on the broker or only those named (`--daemon ID`). Each event carries the
daemon it came from, and a command goes to the daemon that owns its rollout, signed for that daemon only. Only where
events come from changes: `decode` gives the screens the same models as the in-process source.
It reconnects with capped backoff (daemon/mqtt_session.py: a broker restart must not end the session), and while it is
disconnected commands are refused with a clear error instead of being silently dropped.
History reads need the daemon's store, which a remote TUI does not have: the detail screen then
plots the samples received since it connected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt

from charter_tui.datasource import ReadOnlyError, decode, sendable
from charter_tui.state import topic_kind
from daemon.bus import Event
from daemon.config import MqttConfig
from daemon.auth import CommandSigner
from daemon.contract import RolloutCommand
from daemon.mqtt_session import daemon_filter, keep_connected, to_bus_topic, to_mqtt_topic
from daemon.supervisor import cancel_and_wait

log = logging.getLogger(__name__)


class NotConnected(RuntimeError):
    pass


class NotSigned(RuntimeError):
    """No [auth.client] identity: the remote daemon would refuse the command, so it is not sent."""


class WhichDaemon(RuntimeError):
    """A command without a daemon while several are in view: it is not guessed."""


class MqttSource:
    def __init__(
        self,
        config: MqttConfig,
        *,
        readonly: bool = False,
        client_id: str | None = None,
        signer: CommandSigner | None = None,
        daemons: tuple[str, ...] = (),
    ) -> None:
        self.config = config
        self.daemons = daemons  # only these daemons' topics (`--daemon`); empty: every daemon on the broker
        self.seen: set[str] = set(daemons)  # the daemons heard from (or named), for commands without one
        self.readonly = readonly
        self.signer = signer  # the daemon refuses unsigned commands, so without one none are sent
        self.client_id = client_id or f"charter-tui-{random.getrandbits(32):08x}"
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._closed = asyncio.Event()
        self._down_since: float | None = time.time()  # not connected yet
        self.connected_at: float | None = None  # time.monotonic() of the latest connection

    def placeholders(self) -> list[Event]:
        return []  # the remote daemon's targets are its own; they show as it publishes them

    async def snapshot(self) -> list[Event]:
        return []  # the bridge carries changes, not state; screens fill as the daemon publishes

    async def events(self) -> AsyncIterator[Event]:
        """Every event the daemon publishes, across reconnects, until `close()`."""
        received: asyncio.Queue[Event] = asyncio.Queue()

        async def session(client: aiomqtt.Client) -> None:
            self._client = client
            self._down_since = None
            self.connected_at = time.monotonic()
            try:
                async for message in client.messages:
                    event = self._event(str(message.topic), message.payload)
                    if event is not None:
                        received.put_nowait(event)
            finally:
                self._client = None
                self._down_since = time.time()

        connection = asyncio.create_task(
            keep_connected(
                self.config,
                self.client_id,
                [daemon_filter(self.config, d) for d in self.daemons] or daemon_filter(self.config, None),
                0,
                session,
                self._closed,
                self.connected,
            )
        )
        try:
            while True:
                next_event = asyncio.ensure_future(received.get())
                await asyncio.wait({next_event, connection}, return_when=asyncio.FIRST_COMPLETED)
                if not next_event.done():
                    next_event.cancel()
                    connection.result()  # closed (or a bug in the session, raised here)
                    return
                yield next_event.result()
        finally:
            await cancel_and_wait([connection])

    def _event(self, mqtt_topic: str, raw: Any) -> Event | None:
        addressed = to_bus_topic(self.config, mqtt_topic)
        if addressed is None:
            return None
        daemon, name = addressed
        if topic_kind(name) == "command" or (self.daemons and daemon not in self.daemons):
            return None  # commands (ours or another client's) are not state
        self.seen.add(daemon)
        try:
            payload = json.loads(raw if isinstance(raw, (bytes, str)) else b"")
            return decode(Event(name, payload, daemon=daemon))
        except ValueError:  # not JSON, or JSON that is not the contract's model: skip, keep the stream
            log.warning("MQTT: ignoring an undecodable message on %s", mqtt_topic)
            return None

    async def history(self, instance: str, since: float) -> list[tuple[float, dict[str, float | None]]]:
        return []

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
        if self.readonly:
            raise ReadOnlyError(f"read-only: refusing to {action} rollout {rollout_id}")
        if not sendable(action, recommendation_id):
            raise ValueError(f"unknown rollout action {action!r}")
        if daemon is None:
            if self._client is not None and len(self.seen) != 1:
                raise WhichDaemon(
                    f"{action} not sent: say which daemon it is for ("
                    + (", ".join(sorted(self.seen)) or "none has been heard from yet")
                    + ")"
                )
            daemon = next(iter(self.seen), "")
        request_id = f"{self.client_id}-{random.getrandbits(48):012x}"
        command = RolloutCommand.model_validate(
            {
                "action": action,
                "id": rollout_id,
                "comment": comment or None,
                "request_id": request_id,
                **({"recommendation_id": recommendation_id} if recommendation_id is not None else {}),
            }
        )
        # `actor` is not sent: the daemon records the identity whose signature it verified.
        await self.publish_command(command, daemon)
        return request_id

    async def publish_command(self, command: RolloutCommand, daemon: str) -> None:
        """Sign `command` for `daemon` and publish it on that daemon's command topic (QoS 1)."""
        if self.readonly:
            raise ReadOnlyError(f"read-only: refusing to {command.action}")
        if self.signer is None:
            raise NotSigned(
                f"{command.action} not sent: commands to a remote daemon must be signed; set [auth.client] "
                "identity and secret_file in the config"
            )
        client = self._client
        if client is None:
            raise NotConnected(
                f"not connected to {self.config.host}:{self.config.port}; {command.action} not sent"
            )
        await client.publish(
            to_mqtt_topic(self.config, daemon, command.topic), self.signer.encode(command, daemon), qos=1
        )

    def link_down_since(self) -> float | None:
        return self._down_since

    def close(self) -> None:
        self._closed.set()
