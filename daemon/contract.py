"""The command half of the daemon <-> UI contract: one topic form per command, typed both ways.

Every path a person's command can take (the embedded TUI, a remote TUI over MQTT, any later HTTP
front) ends as one `RolloutCommand` on the bus topic `charter/v1/command/rollout/<action>`; the
rollout manager answers on `charter/v1/command_result/rollout` with a `CommandResult` carrying the
command's `request_id`. The action is in the topic *and* the payload and the two must agree; the
rollout id lives only in the payload (a topic id that disagreed with a payload id was one way to
make the daemon act on another rollout than the sender saw).

Who sent a command is never part of the command: on the bus it travels inside an
`AuthorizedCommand` whose identity was established by the path it came in on (the OS user for the
embedded TUI, a verified signature for MQTT: daemon/auth.py). A bare `RolloutCommand` or a dict on
a command topic is refused by the manager as unauthenticated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from daemon.bus import topic

CommandAction = Literal["propose", "approve", "reject", "pause", "resume", "rollback"]
COMMAND_ACTIONS: tuple[CommandAction, ...] = ("propose", "approve", "reject", "pause", "resume", "rollback")

COMMAND_PREFIX = topic("command", "rollout")  # charter/v1/command/rollout/<action>
COMMAND_PATTERN = f"{COMMAND_PREFIX}/+"
RESULT_TOPIC = topic("command_result", "rollout")

# A command is a few hundred bytes; anything much larger is refused before it is parsed.
MAX_COMMAND_BYTES = 16 * 1024
MAX_ROLLOUT_ID = 2**63 - 1  # SQLite's INTEGER; larger ids cannot name a row

RolloutId = Annotated[int, Field(ge=1, le=MAX_ROLLOUT_ID)]
ShortText = Annotated[str, Field(max_length=2000)]
Name = Annotated[str, Field(min_length=1, max_length=128)]


def command_topic(action: CommandAction) -> str:
    return f"{COMMAND_PREFIX}/{action}"


def action_of_topic(bus_topic: str) -> str | None:
    """`charter/v1/command/rollout/approve` -> `approve`; None for any other topic or unknown action."""
    head, sep, action = bus_topic.rpartition("/")
    return action if sep and head == COMMAND_PREFIX and action in COMMAND_ACTIONS else None


class RolloutCommand(BaseModel):
    """What a person asks of a rollout. `id` names it (not `propose`, which creates one)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    action: CommandAction
    id: RolloutId | None = None
    comment: ShortText | None = None
    request_id: Annotated[str, Field(max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")] | None = None
    # propose only
    targets: Annotated[list[Name], Field(max_length=64)] = []
    changes: Annotated[list[dict[str, Any]], Field(max_length=64)] = []
    reason: ShortText | None = None
    signals: Annotated[list[Name], Field(max_length=32)] = []
    # propose a stored recommendation: its targets, changes and signals are the stored ones
    recommendation_id: RolloutId | None = None

    @model_validator(mode="after")
    def _id_matches_action(self) -> RolloutCommand:
        if self.action == "propose":
            if self.id is not None:
                raise ValueError("propose creates a rollout; it takes no id")
            if self.recommendation_id is not None and (self.targets or self.changes or self.signals):
                raise ValueError("a recommendation's proposal takes its targets, changes and signals from it")
        else:
            if self.id is None:
                raise ValueError(f"{self.action} needs the rollout id")
            if self.targets or self.changes or self.signals or self.reason or self.recommendation_id:
                raise ValueError(
                    f"{self.action} takes no targets, changes, signals, reason or recommendation"
                )
        return self

    @property
    def topic(self) -> str:
        return command_topic(self.action)


class CommandResult(BaseModel):
    """The manager's answer: `ok` with the rollout as it now is, or the reason it was refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool
    request_id: str | None = None
    error: str | None = None
    rollout: dict[str, Any] | None = None
    identity: str | None = None  # the verified sender the daemon acted for (or refused)


@dataclass(frozen=True)
class AuthorizedCommand:
    """A command together with who sent it, as established by the path it came in on.

    `identity` is what the audit log records. `targets` are the target-name patterns this identity may
    act on (checked by the manager against the rollout's targets, which only the store knows).
    """

    command: RolloutCommand
    identity: str
    via: str  # "local" (the daemon's own process/user) or "mqtt"
    targets: tuple[str, ...] = field(default=("*",))
