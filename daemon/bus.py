"""The daemon's in-process pub/sub: typed events out to subscribers (the TUI, the MQTT bridge).

Topics are versioned (`charter/v1/<kind>/<key>`), payloads are the models' JSON, so bridging to
MQTT for a remote TUI changes only where messages come from, not what they are.
Which topics exist and what each payload is: `daemon/topics.py` (the table), `daemon/contract.py` (commands
and their results) and the generated schemas in docs/contract/. Payloads are the models in-process and their
JSON on MQTT; readers validate dicts back into the models (`daemon.topics.model_for`).

Slow subscribers never stall the daemon: each has a bounded queue and, when it is full, the
oldest event is dropped and counted (the next snapshot supersedes it anyway).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

TOPIC_VERSION = "charter/v1"


@dataclass(frozen=True)
class Event:
    topic: str
    payload: Any  # a model instance in-process; its JSON on MQTT
    # Which daemon published it, for a TUI attached to a fleet over MQTT (None: the one daemon there is).
    daemon: str | None = None


@dataclass
class Subscription:
    pattern: str
    queue: asyncio.Queue[Event]
    dropped: int = 0

    async def get(self) -> Event:
        return await self.queue.get()


@dataclass
class Bus:
    subscriptions: list[Subscription] = field(default_factory=list)

    def subscribe(self, pattern: str = f"{TOPIC_VERSION}/#", maxsize: int = 1000) -> Subscription:
        sub = Subscription(pattern=pattern, queue=asyncio.Queue(maxsize=maxsize))
        self.subscriptions.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)

    def publish(self, topic: str, payload: Any) -> None:
        event = Event(topic, payload)
        for sub in self.subscriptions:
            if not topic_matches(sub.pattern, topic):
                continue
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
            sub.queue.put_nowait(event)


def topic(kind: str, key: str = "") -> str:
    return f"{TOPIC_VERSION}/{kind}/{key}" if key else f"{TOPIC_VERSION}/{kind}"


def daemon_topic(daemon_id: str, bus_topic: str) -> str:
    """`charter/v1/sample/x` -> `charter/v1/<daemon-id>/sample/x`: a topic as a fleet names it, on the broker
    (under `[mqtt] topic_prefix`) and in a command's signature (so a command is for one daemon only)."""
    return f"{TOPIC_VERSION}/{daemon_id}{bus_topic.removeprefix(TOPIC_VERSION)}"


def split_daemon_topic(name: str) -> tuple[str, str] | None:
    """`charter/v1/<daemon-id>/sample/x` -> (`<daemon-id>`, `charter/v1/sample/x`); None if it is not one."""
    rest = name.removeprefix(TOPIC_VERSION + "/")
    if rest == name or "/" not in rest:
        return None
    daemon_id, kind = rest.split("/", 1)
    return (daemon_id, f"{TOPIC_VERSION}/{kind}") if daemon_id and kind else None


def topic_matches(pattern: str, name: str) -> bool:
    """MQTT wildcards: `+` one level, `#` the rest."""
    if pattern.endswith("/#"):
        prefix = pattern[:-2]
        return name == prefix or name.startswith(prefix + "/")
    p_parts, n_parts = pattern.split("/"), name.split("/")
    if len(p_parts) != len(n_parts):
        return False
    return all(p in ("+", n) for p, n in zip(p_parts, n_parts))
