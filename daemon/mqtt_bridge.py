"""Bridge the daemon's bus to an MQTT broker (aiomqtt), for remote TUIs and fleets.

Out: every bus event except commands is published as JSON under the same versioned topic
(`charter/v1/...`, the prefix from `[mqtt] topic_prefix`). In: messages on `<prefix>/command/#`
are parsed and put on the bus, where the rollout manager picks them up like a local key press.
Commands are never echoed back out, so two bridged daemons cannot loop a command between them.
The bridge reconnects with capped exponential backoff (daemon/mqtt_session.py); a broker outage
never stops the daemon.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiomqtt
from pydantic import BaseModel

from daemon.bus import TOPIC_VERSION, Bus
from daemon.config import MqttConfig
from daemon.mqtt_session import keep_connected, to_bus_topic, to_mqtt_topic

log = logging.getLogger(__name__)

COMMAND_KIND = "command"


def encode(payload: Any) -> bytes:
    if isinstance(payload, BaseModel):
        return payload.model_dump_json().encode()
    return json.dumps(payload, default=str).encode()


class MqttBridge:
    def __init__(self, bus: Bus, config: MqttConfig, client_id: str = "charter-daemon") -> None:
        self.bus = bus
        self.config = config
        self.client_id = client_id
        self.connected = asyncio.Event()
        self.published = 0
        self.received = 0

    async def run(self, stop: asyncio.Event) -> None:
        # Subscribed for the whole run, so events published while the broker is away are queued
        # (up to the subscription's bound) and go out on reconnect.
        outbox = self.bus.subscribe(f"{TOPIC_VERSION}/#", maxsize=5000)
        try:
            await keep_connected(self.config, self.client_id, f"{self.config.topic_prefix}/{COMMAND_KIND}/#", 1,
                                 lambda client: self._session(client, outbox), stop, self.connected)
        finally:
            self.bus.unsubscribe(outbox)

    async def _session(self, client: aiomqtt.Client, outbox: Any) -> None:
        tasks = [asyncio.create_task(self._forward_out(client, outbox)), asyncio.create_task(self._forward_in(client))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # the connection's error, if that is why it ended
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _forward_out(self, client: aiomqtt.Client, outbox: Any) -> None:
        while True:
            event = await outbox.get()
            if event.topic.startswith(f"{TOPIC_VERSION}/{COMMAND_KIND}/"):
                continue  # commands flow in only
            await client.publish(to_mqtt_topic(self.config, event.topic), encode(event.payload), qos=0)
            self.published += 1

    async def _forward_in(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            raw = message.payload
            try:
                payload = json.loads(raw if isinstance(raw, (bytes, str)) else b"")
            except (ValueError, UnicodeDecodeError):
                log.warning("MQTT: ignoring a command on %s that is not JSON", message.topic)
                continue
            if not isinstance(payload, dict):
                log.warning("MQTT: ignoring a command on %s that is not a JSON object", message.topic)
                continue
            self.received += 1
            self.bus.publish(to_bus_topic(self.config, str(message.topic)), payload)
