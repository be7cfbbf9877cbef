"""Bridge the daemon's bus to an MQTT broker (aiomqtt), for remote TUIs and fleets.

Out: every bus event except commands is published as JSON under the daemon's own branch of the versioned
topic tree (`charter/v1/<daemon-id>/...`, the prefix from `[mqtt] topic_prefix`, the id from `[daemon] id`),
so the daemons of a fleet share one broker. In: messages on `<prefix>/<daemon-id>/command/#`
must be signed commands, signed for this daemon (daemon/auth.py): each is verified -- signature, identity, freshness, nonce,
permission, topic and payload agreeing -- and only then put on the bus as an `AuthorizedCommand`, where
the rollout manager picks it up like a local key press. A refused one is answered and audited (at a
bounded rate) by `on_refused`; nothing of it reaches the manager. Retained messages are never commands.
Commands are never echoed back out, so two bridged daemons cannot loop a command between them.
The bridge reconnects with capped exponential backoff (daemon/mqtt_session.py); a broker outage
never stops the daemon. State topics (`TopicSpec.retained`: instances, rollouts, compile results, bottlenecks,
recommendations, GPU, health) go out retained at QoS 1, so a UI that connects late has the current state at
once; streams (samples, audit, SLO) at QoS 0. While the broker is away events wait in a bounded outbox
(`[mqtt] outbox_events`); the overflow drops the oldest, is counted (`dropped`) and is reported on reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiomqtt
from pydantic import BaseModel

from daemon.auth import CommandRefused, CommandVerifier, OnRefused, RefusalAudit
from daemon.bus import TOPIC_VERSION, Bus, Subscription
from daemon.config import MqttConfig
from daemon.mqtt_session import daemon_filter, keep_connected, to_bus_topic, to_mqtt_topic
from daemon.redaction import redact_data
from daemon.supervisor import cancel_and_wait
from daemon.topics import LIVENESS_TOPIC, DaemonOnline, is_retained

log = logging.getLogger(__name__)

COMMAND_KIND = "command"


def encode(payload: Any) -> bytes:
    # Every message that leaves the process passes here, so redacting here is what guarantees no
    # password, token or URL credential reaches a broker, whichever part of the daemon published it.
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json")
    return json.dumps(redact_data(payload), default=str, separators=(",", ":")).encode()


class MqttBridge:
    def __init__(
        self,
        bus: Bus,
        config: MqttConfig,
        daemon_id: str,
        client_id: str | None = None,
        *,
        verifier: CommandVerifier | None = None,
        on_refused: OnRefused | None = None,
    ) -> None:
        self.bus = bus
        self.config = config
        self.daemon_id = daemon_id
        # One client id per daemon: a broker disconnects the older of two clients with one id.
        self.client_id = client_id or f"charter-daemon-{daemon_id}"
        # No verifier: every command is refused (signatures are how a broker message proves its sender).
        self.verifier = verifier
        self.on_refused = on_refused
        self.connected = asyncio.Event()
        self.published = 0
        self.received = 0
        self.refused = 0
        self.audit = RefusalAudit("MQTT", on_refused)
        self.outbox: Subscription | None = None
        self._reported_dropped = 0

    @property
    def dropped(self) -> int:
        """Events dropped from the outbox (oldest first) while the broker was away or slow."""
        return self.outbox.dropped if self.outbox is not None else 0

    async def run(self, stop: asyncio.Event) -> None:
        # Subscribed for the whole run, so events published while the broker is away are queued
        # (up to the subscription's bound) and go out on reconnect.
        outbox = self.outbox = self.bus.subscribe(f"{TOPIC_VERSION}/#", maxsize=self.config.outbox_events)
        try:
            liveness = self._topic(LIVENESS_TOPIC)
            await keep_connected(
                self.config,
                self.client_id,
                daemon_filter(self.config, self.daemon_id, f"{COMMAND_KIND}/#"),
                1,
                lambda client: self._session(client, outbox),
                stop,
                self.connected,
                will=aiomqtt.Will(
                    liveness, encode(DaemonOnline(online=False, reason="connection lost")), qos=1, retain=True
                ),
                on_stop=lambda client: client.publish(
                    liveness, encode(DaemonOnline(online=False, reason="stopped")), qos=1, retain=True
                ),
            )
        finally:
            self.bus.unsubscribe(outbox)

    async def _session(self, client: aiomqtt.Client, outbox: Any) -> None:
        await client.publish(
            self._topic(LIVENESS_TOPIC),
            encode(DaemonOnline(online=True, reason="connected")),
            qos=1,
            retain=True,
        )
        if self.dropped > self._reported_dropped:
            log.warning(
                "MQTT: %d events did not fit the outbox (%d) while the broker was away and were dropped, oldest "
                "first (%d in all); a state topic whose newest event was among them shows its previous retained "
                "value until the entity changes again",
                self.dropped - self._reported_dropped,
                self.config.outbox_events,
                self.dropped,
            )
            self._reported_dropped = self.dropped
        tasks = [
            asyncio.create_task(self._forward_out(client, outbox)),
            asyncio.create_task(self._forward_in(client)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # the connection's error, if that is why it ended
        finally:
            await cancel_and_wait(tasks)

    async def _forward_out(self, client: aiomqtt.Client, outbox: Any) -> None:
        while True:
            event = await outbox.get()
            if event.topic.startswith(f"{TOPIC_VERSION}/{COMMAND_KIND}/"):
                continue  # commands flow in only
            retained = is_retained(event.topic)
            await client.publish(
                self._topic(event.topic),
                encode(event.payload),
                qos=1 if retained else 0,
                retain=retained,
            )
            self.published += 1

    def _topic(self, bus_topic: str) -> str:
        return to_mqtt_topic(self.config, self.daemon_id, bus_topic)

    async def _forward_in(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            # Subscribed to this daemon's command branch only, so the id is ours.
            addressed = to_bus_topic(self.config, str(message.topic))
            bus_topic = addressed[1] if addressed is not None else str(message.topic)
            raw = message.payload if isinstance(message.payload, (bytes, str)) else b""
            try:
                if self.verifier is None:
                    raise CommandRefused(
                        "this daemon has no [auth] identities configured, so it takes no commands over MQTT"
                    )
                authorized = self.verifier.verify(bus_topic, raw, retained=bool(message.retain))
            except CommandRefused as refused:
                self.refused += 1
                await self.audit.report(refused, bus_topic)
                continue
            self.received += 1
            self.bus.publish(authorized.command.topic, authorized)
