"""One MQTT connection kept up: connect, subscribe, run a session, reconnect after any failure.

Both ends of the bus-over-MQTT bridge use it, the daemon's `MqttBridge` and the remote TUI's
`MqttSource`, so they share one retry policy: capped exponential backoff with jitter (a broker
restart, or a wrong password fixed later, is waited out; a fleet of clients does not reconnect in
lock step), and `connected` set only once the subscription is in place, so whoever waits on it
can publish and be heard.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import aiomqtt

from daemon.bus import TOPIC_VERSION
from daemon.config import MqttConfig

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0

Session = Callable[[aiomqtt.Client], Awaitable[None]]


def to_mqtt_topic(config: MqttConfig, bus_topic: str) -> str:
    """`charter/v1/sample/x` -> `<prefix>/sample/x`."""
    return config.topic_prefix + bus_topic.removeprefix(TOPIC_VERSION)


def to_bus_topic(config: MqttConfig, mqtt_topic: str) -> str:
    """`<prefix>/sample/x` -> `charter/v1/sample/x`."""
    return TOPIC_VERSION + mqtt_topic.removeprefix(config.topic_prefix)


async def keep_connected(
    config: MqttConfig,
    client_id: str,
    subscribe: str,
    qos: int,
    session: Session,
    stop: asyncio.Event,
    connected: asyncio.Event,
) -> None:
    """Until `stop` is set: connect, subscribe to `subscribe`, set `connected`, run `session(client)`.

    A session ends when it returns or raises `aiomqtt.MqttError` (the connection went); then
    `connected` is cleared and, after the backoff, it starts again on a new connection. Any other
    exception is a bug and propagates.
    """
    delay = RETRY_FIRST_S
    while not stop.is_set():
        try:
            async with aiomqtt.Client(
                config.host,
                config.port,
                username=config.username,
                password=config.password,
                identifier=client_id,
            ) as client:
                await client.subscribe(subscribe, qos=qos)
                connected.set()
                delay = RETRY_FIRST_S
                log.info("MQTT %s connected to %s:%s", client_id, config.host, config.port)
                await _until_stopped(session(client), stop)
        except aiomqtt.MqttError as exc:
            log.warning("MQTT %s:%s: %s; retrying in %.1f s", config.host, config.port, exc, delay)
        finally:
            connected.clear()
        if stop.is_set():
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay * (0.5 + random.random()))
        except TimeoutError:
            pass
        delay = min(delay * 2, RETRY_MAX_S)


async def _until_stopped(session: Awaitable[None], stop: asyncio.Event) -> None:
    """Run `session` until it ends or `stop` is set, whichever is first (its errors propagate)."""
    work = asyncio.ensure_future(session)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            work.result()
    finally:
        for task in (work, stopped):
            task.cancel()
        await asyncio.gather(work, stopped, return_exceptions=True)
