"""One MQTT connection kept up: connect, subscribe, run a session, reconnect after any failure.

Both ends of the bus-over-MQTT bridge use it, the daemon's `MqttBridge` and the remote TUI's
`MqttSource`, so they share one retry policy: capped exponential backoff with jitter (a broker
restart, or a wrong password fixed later, is waited out; a fleet of clients does not reconnect in
lock step), and `connected` set only once the subscription is in place, so whoever waits on it
can publish and be heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiomqtt

from daemon.bus import TOPIC_VERSION, daemon_topic, split_daemon_topic
from daemon.config import MqttConfig
from daemon.errors import ConfigError
from daemon.redaction import remember
from daemon.supervisor import until_stopped

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.5
# A broker back after an outage is found within this (times the jitter, 0.5-1.5): a TUI user waits no longer
# than that for the live view, and a fleet of clients still spreads its reconnects.
RETRY_MAX_S = 10.0
GOODBYE_TIMEOUT_S = 2.0  # a stopping daemon waits this long at most to say it is going offline

Session = Callable[[aiomqtt.Client], Awaitable[None]]


def to_mqtt_topic(config: MqttConfig, daemon_id: str, bus_topic: str) -> str:
    """`charter/v1/sample/x` of daemon `box` -> `<prefix>/box/sample/x`."""
    return config.topic_prefix + daemon_topic(daemon_id, bus_topic).removeprefix(TOPIC_VERSION)


def to_bus_topic(config: MqttConfig, mqtt_topic: str) -> tuple[str, str] | None:
    """`<prefix>/box/sample/x` -> (`box`, `charter/v1/sample/x`); None for a topic outside the prefix."""
    if not mqtt_topic.startswith(config.topic_prefix + "/"):
        return None
    return split_daemon_topic(TOPIC_VERSION + mqtt_topic.removeprefix(config.topic_prefix))


def daemon_filter(config: MqttConfig, daemon_id: str | None, rest: str = "#") -> str:
    """The subscription for one daemon's topics (`<prefix>/box/#`), or every daemon's (`<prefix>/+/#`)."""
    return f"{config.topic_prefix}/{daemon_id or '+'}/{rest}"


def broker_options(config: MqttConfig) -> dict[str, Any]:
    """Credentials and TLS for `aiomqtt.Client`, from `[mqtt]`; raises ConfigError naming the key."""
    options: dict[str, Any] = {"username": config.username, "password": _broker_password(config)}
    if config.uses_tls:
        try:
            context = ssl.create_default_context(cafile=_path(config.ca_file))
            cert, key = _path(config.cert_file), _path(config.key_file)
            if cert and key:
                context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("[mqtt]", "ca_file/cert_file/key_file", f"cannot set up TLS: {exc}") from None
        options["tls_context"] = context
    return options


def _path(value: str | None) -> str | None:
    return str(Path(value).expanduser()) if value else None


def _broker_password(config: MqttConfig) -> str | None:
    if config.password_file:
        path = Path(config.password_file).expanduser()
        try:
            if path.stat().st_mode & 0o077:
                raise ConfigError("[mqtt]", "password_file", f"{path} is readable by others; chmod 600 it")
            password = path.read_text(encoding="utf-8").strip()
            remember([password])  # masked in any log line that would quote it
            return password
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("[mqtt]", "password_file", f"{path}: cannot be read: {exc}") from None
    # A plain string: the config redacts it through its SECRET annotation, not a SecretStr.
    return config.password


async def keep_connected(
    config: MqttConfig,
    client_id: str,
    subscribe: str | Sequence[str],
    qos: int,
    session: Session,
    stop: asyncio.Event,
    connected: asyncio.Event,
    *,
    will: aiomqtt.Will | None = None,
    on_stop: Session | None = None,
) -> None:
    """Until `stop` is set: connect, subscribe to `subscribe` (one filter or several), set `connected`, run `session(client)`.

    A session ends when it returns or raises `aiomqtt.MqttError` (the connection went); then
    `connected` is cleared and, after the backoff, it starts again on a new connection. Any other
    exception is a bug and propagates. `will` is the broker's Last Will (sent for us if the connection dies
    without a goodbye); `on_stop(client)` runs, bounded, when `stop` ends a live session: the goodbye.
    """
    options = broker_options(config)  # a bad CA or key file is a config error, not a retry loop
    delay = RETRY_FIRST_S
    while not stop.is_set():
        try:
            async with aiomqtt.Client(
                config.host, config.port, identifier=client_id, will=will, **options
            ) as client:
                for topic_filter in [subscribe] if isinstance(subscribe, str) else subscribe:
                    await client.subscribe(topic_filter, qos=qos)
                connected.set()
                delay = RETRY_FIRST_S
                log.info("MQTT %s connected to %s:%s", client_id, config.host, config.port)
                if not await until_stopped(session(client), stop) and on_stop is not None:
                    with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                        await asyncio.wait_for(on_stop(client), GOODBYE_TIMEOUT_S)
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
