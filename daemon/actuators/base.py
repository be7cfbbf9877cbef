"""The one interface every actuator implements, and the error it raises.

An actuator changes one target. The rollout manager only ever asks it five things:
- `snapshot()`  the exact current configuration, recorded before any change (the rollback point);
- `desired(snapshot)` the configuration with the rollout's changes applied (pure: used by dry-run);
- `converge(config)` make the target run `config`, wait until it is ready, read it back and check it;
  applying and rolling back are the same call with a different config, and it is idempotent: a target
  already running `config` is only verified, never touched again (a crash-restarted daemon relies on it);
- `observe()`   what the target runs now, or None when it cannot be reached (crash recovery);
- `healthy()`   whether it serves (a canary that dies fails the rollout).
Configs are JSON-able dicts, because they are stored in `Rollout.previous_config`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from daemon.config import TargetConfig
from daemon.actuators.change import Change

Snapshot = dict[str, Any]


class ActuatorError(RuntimeError):
    """A change or restore that did not take: the message says what the target answered."""


class TargetUnreachable(ActuatorError):
    """The target does not answer (down, or not listening)."""


class Actuator(abc.ABC):
    kind: str = "abstract"

    def __init__(self, target: TargetConfig, changes: Sequence[Change]) -> None:
        self.target = target
        self.changes = list(changes)

    @abc.abstractmethod
    async def snapshot(self) -> Snapshot: ...

    @abc.abstractmethod
    def desired(self, snapshot: Snapshot) -> Snapshot: ...

    @abc.abstractmethod
    async def converge(self, config: Snapshot) -> dict[str, Any]:
        """Returns the read-back evidence (what the target reports after the change)."""

    @abc.abstractmethod
    async def observe(self) -> Snapshot | None: ...

    @abc.abstractmethod
    def matches(self, observed: Snapshot, config: Snapshot) -> bool: ...

    @abc.abstractmethod
    async def healthy(self) -> tuple[bool, str]: ...

    @abc.abstractmethod
    def value_in(self, snapshot: Snapshot, change: Change) -> Any:
        """The value `change`'s setting has in `snapshot` (None: not set, the engine's default)."""

    def values_in(self, snapshot: Snapshot) -> dict[str, str | None]:
        """The changed settings as `snapshot` has them, as text, keyed as changes are (`model:param`): what
        a diff shows as the current value and a rollback restores. A setting the snapshot cannot say is
        left out rather than guessed."""
        out: dict[str, str | None] = {}
        for change in self.changes:
            try:
                value = self.value_in(snapshot, change)
            except (KeyError, TypeError, IndexError, AttributeError):
                continue
            out[change.key()] = None if value is None else _text(value)
        return out

    async def plan(self) -> dict[str, Any]:
        """Dry run: what would be applied, from the live current config. Touches nothing."""
        current = await self.snapshot()
        return {
            "actuator": self.kind,
            "target": self.target.name,
            "current": current,
            "desired": self.desired(current),
        }


class ForeignProcess(ActuatorError):
    """The target's port is held by a process the actuator did not start and that is not the configured
    server: it is never stopped, and the change is refused (the message names it)."""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
