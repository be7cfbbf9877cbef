"""Every topic of the daemon <-> UI contract and the model its payload is, in one table.

In-process the bus carries the models themselves; over MQTT their JSON (`model_dump(mode="json")`), which a
reader validates back with `model_for(topic)`. The JSON schemas in docs/contract/ are generated from this table
(`python scripts/contract_schemas.py`; a test fails when they are out of date), so a UI in another language
can be written against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from daemon.analysis.slo import SloUpdate
from daemon.auth import SignedEnvelope
from daemon.bus import TOPIC_VERSION, topic_matches
from daemon.contract import COMMAND_PATTERN, RESULT_TOPIC, CommandResult, RolloutCommand
from daemon.bench.records import BenchRunView
from daemon.gpu import GPU_TOPIC, GpuStatus
from daemon.models import (
    AuditEvent,
    Bottleneck,
    CompileRecord,
    Instance,
    MetricSample,
    Recommendation,
    Rollout,
)
from daemon.supervisor import HEALTH_TOPIC, DaemonHealth


class DaemonReady(BaseModel):
    """`charter/v1/daemon/ready`: the daemon finished starting."""

    targets: int


LIVENESS_TOPIC = f"{TOPIC_VERSION}/daemon/online"


class DaemonOnline(BaseModel):
    """`charter/v1/<daemon-id>/daemon/online` (retained): whether the daemon is connected to the broker. The broker itself
    publishes `online: false` (the daemon's MQTT Last Will) when the connection dies without a goodbye."""

    online: bool
    reason: Literal["connected", "stopped", "connection lost"]


@dataclass(frozen=True)
class TopicSpec:
    pattern: str  # MQTT wildcards, under charter/v1 (the prefix is `[mqtt] topic_prefix` on the broker)
    model: type[BaseModel]
    direction: Literal["out", "in"]  # out: the daemon publishes; in: a UI sends
    when: str
    # Current state, kept by the broker (MQTT retained, QoS 1): a UI that connects late gets the latest of
    # each key at once instead of waiting for the next change. Streams (samples, audit, SLO) are not.
    retained: bool = False

    @property
    def name(self) -> str:
        return self.pattern.removeprefix(TOPIC_VERSION + "/").replace("/+", "").replace("/", "_")


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        f"{TOPIC_VERSION}/instance/+",
        Instance,
        "out",
        "a target's state, engine or model changed",
        retained=True,
    ),
    TopicSpec(f"{TOPIC_VERSION}/sample/+", MetricSample, "out", "each successful poll (a windowed sample)"),
    TopicSpec(
        f"{TOPIC_VERSION}/bottleneck/+",
        Bottleneck,
        "out",
        "a bottleneck opens, updates or clears",
        retained=True,
    ),
    TopicSpec(
        f"{TOPIC_VERSION}/compile/#",
        CompileRecord,
        "out",
        "a watched agent file was (re)compiled",
        retained=True,
    ),
    TopicSpec(f"{TOPIC_VERSION}/slo/+", SloUpdate, "out", "SLO compliance, every few seconds per target"),
    TopicSpec(
        f"{TOPIC_VERSION}/recommendation/+",
        Recommendation,
        "out",
        "a recommendation is made or changes",
        retained=True,
    ),
    TopicSpec(f"{TOPIC_VERSION}/rollout/+", Rollout, "out", "a rollout changes state", retained=True),
    TopicSpec(
        f"{TOPIC_VERSION}/audit/+", AuditEvent, "out", "an audited action (including refused commands)"
    ),
    TopicSpec(f"{TOPIC_VERSION}/bench/#", BenchRunView, "out", "a `charter-tui bench` run was stored"),
    TopicSpec(f"{TOPIC_VERSION}/daemon/ready", DaemonReady, "out", "the daemon finished starting"),
    TopicSpec(
        LIVENESS_TOPIC,
        DaemonOnline,
        "out",
        "the bridge connects or stops; the broker sends `online: false` itself (Last Will) if it dies",
        retained=True,
    ),
    TopicSpec(
        GPU_TOPIC,
        GpuStatus,
        "out",
        "every GPU poll (NVML), or once: why there is no GPU to show",
        retained=True,
    ),
    TopicSpec(
        HEALTH_TOPIC, DaemonHealth, "out", "a daemon loop crashed, restarted or recovered", retained=True
    ),
    TopicSpec(RESULT_TOPIC, CommandResult, "out", "the answer to each command (ok, or the reason refused)"),
    TopicSpec(
        COMMAND_PATTERN,
        SignedEnvelope,
        "in",
        "a person's command: over MQTT a signed envelope (daemon/auth.py) around a RolloutCommand; "
        "in-process an AuthorizedCommand",
    ),
)

# The command inside an envelope, documented with the rest.
EXTRA_SCHEMAS: dict[str, type[BaseModel]] = {"RolloutCommand": RolloutCommand}


def spec_for(name: str) -> TopicSpec | None:
    return next((spec for spec in TOPICS if topic_matches(spec.pattern, name)), None)


def is_retained(name: str) -> bool:
    """Whether the broker keeps the latest message of this topic (`TopicSpec.retained`)."""
    spec = spec_for(name)
    return spec is not None and spec.retained


def model_for(name: str) -> type[BaseModel] | None:
    """The payload model of an outgoing topic (None for commands and unknown topics)."""
    spec = spec_for(name)
    return spec.model if spec is not None and spec.direction == "out" else None
