"""Bridge the daemon's bus to an MQTT broker (aiomqtt), for remote TUIs and fleets.

Out: every bus event except commands is published as JSON under the same versioned topic
(`charter/v1/...`, the prefix from `[mqtt] topic_prefix`). In: messages on `<prefix>/command/#`
are parsed and put on the bus, where the rollout manager picks them up like a local key press.
Commands are never echoed back out, so two bridged daemons cannot loop a command between them.
The bridge reconnects with capped exponential backoff; a broker outage never stops the daemon.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

import aiomqtt
from pydantic import BaseModel

from daemon.bus import TOPIC_VERSION, Bus
from daemon.config import MqttConfig

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

    def _to_mqtt(self, bus_topic: str) -> str:
        return self.config.topic_prefix + bus_topic.removeprefix(TOPIC_VERSION)

    def _to_bus(self, mqtt_topic: str) -> str:
        return TOPIC_VERSION + mqtt_topic.removeprefix(self.config.topic_prefix)

    async def run(self, stop: asyncio.Event) -> None:
        outbox = self.bus.subscribe(f"{TOPIC_VERSION}/#", maxsize=5000)
        delay = 0.5
        try:
            while not stop.is_set():
                try:
                    await self._session(outbox, stop)
                    delay = 0.5
                except aiomqtt.MqttError as exc:
                    self.connected.clear()
                    log.warning("MQTT %s:%s: %s; retrying in %.1f s", self.config.host, self.config.port, exc, delay)
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=delay * (0.5 + random.random()))
                    except TimeoutError:
                        pass
                    delay = min(delay * 2, 30.0)
        finally:
            self.bus.unsubscribe(outbox)
            self.connected.clear()

    async def _session(self, outbox: Any, stop: asyncio.Event) -> None:
        async with aiomqtt.Client(
            self.config.host,
            self.config.port,
            username=self.config.username,
            password=self.config.password,
            identifier=self.client_id,
        ) as client:
            await client.subscribe(f"{self.config.topic_prefix}/{COMMAND_KIND}/#", qos=1)
            self.connected.set()
            log.info("MQTT bridge connected to %s:%s", self.config.host, self.config.port)
            tasks = [
                asyncio.create_task(self._forward_out(client, outbox)),
                asyncio.create_task(self._forward_in(client)),
                asyncio.create_task(stop.wait()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if not task.cancelled() and task.exception():
                        raise task.exception()  # type: ignore[misc]
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _forward_out(self, client: aiomqtt.Client, outbox: Any) -> None:
        while True:
            event = await outbox.get()
            if event.topic.startswith(f"{TOPIC_VERSION}/{COMMAND_KIND}/"):
                continue  # commands flow in only
            await client.publish(self._to_mqtt(event.topic), encode(event.payload), qos=0)
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
            self.bus.publish(self._to_bus(str(message.topic)), payload)
