"""What the TUI knows about the daemon: a plain-Python model fed by bus events, no Textual here.

The data source applies every event here as it arrives (cheap dict/deque updates), and records
which kinds of data changed. Screens read this model when they redraw, at most a few times per
second and only while visible, so a burst of samples costs one redraw ("latest value wins").
Keeping it free of Textual makes it testable alone and lets a remote (MQTT) source fill it the
same way.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from compiler.model import CompileResult
from daemon.bus import TOPIC_VERSION, Event
from daemon.rollouts.model import TERMINAL_STATES as DAEMON_TERMINAL_STATES
from daemon.rollouts.model import RolloutState
from daemon.supervisor import DaemonHealth
from daemon.bench.records import BenchRunView
from daemon.gpu import GpuStatus
from daemon.topics import DaemonOnline
from daemon.models import (
    AuditEvent,
    Bottleneck,
    CompileRecord,
    Instance,
    MetricSample,
    Recommendation,
    Rollout,
)

# The signals drawn as live sparklines; the ring buffers keep only these, as floats (a full
# MetricSample per poll for 100 targets would cost tens of MB for no visible gain).
LIVE_SIGNALS: tuple[str, ...] = (
    "ttft_p95_s",
    "generation_tokens_per_s",
    "kv_cache_usage",
    "prefix_hit_rate",
    "waiting",
)
RING_SIZE = 600  # ten minutes at the default 1 Hz poll
AUDIT_KEEP = 2000

# Rollout states that need a human (the approve/reject queue) and that are over (history).
# The rollout states are the daemon's (daemon/rollouts/model.py); the TUI only groups them. FAILED and
# ROLLING_BACK are not history: the manager is still restoring the targets.
PENDING_STATES = frozenset({RolloutState.PENDING_APPROVAL.value})
TERMINAL_STATES = frozenset(s.value for s in DAEMON_TERMINAL_STATES)


@dataclass
class Series:
    """One instance's recent samples: timestamps plus one float column per live signal."""

    ts: deque[float] = field(default_factory=lambda: deque(maxlen=RING_SIZE))
    values: dict[str, deque[float | None]] = field(
        default_factory=lambda: {name: deque(maxlen=RING_SIZE) for name in LIVE_SIGNALS}
    )

    def add(self, sample: MetricSample) -> None:
        if self.ts and sample.ts <= self.ts[-1]:
            return  # a duplicate from the start-up snapshot, or out of order: keep time monotonic
        self.ts.append(sample.ts)
        for name, column in self.values.items():
            column.append(getattr(sample, name))

    def column(self, name: str, since: float | None = None) -> list[float | None]:
        col = self.values[name]
        if since is None:
            return list(col)
        return [v for t, v in zip(self.ts, col) if t >= since]


@dataclass
class CompileView:
    """The newest compile of one file and the last one that succeeded (kept across syntax errors)."""

    latest: CompileRecord
    last_good: CompileRecord | None


@dataclass
class DaemonState:
    instances: dict[str, Instance] = field(default_factory=dict)
    latest: dict[str, MetricSample] = field(default_factory=dict)
    series: dict[str, Series] = field(default_factory=dict)
    bottlenecks: dict[str, Bottleneck] = field(default_factory=dict)  # key: id, or instance/kind
    compiles: dict[str, CompileView] = field(default_factory=dict)
    recommendations: dict[int, Recommendation] = field(default_factory=dict)
    rollouts: dict[int, Rollout] = field(default_factory=dict)
    audit: deque[AuditEvent] = field(default_factory=lambda: deque(maxlen=AUDIT_KEEP))
    benches: dict[tuple[str, str], BenchRunView] = field(default_factory=dict)  # (agent, target) -> newest
    daemon_status: str = "starting"
    daemon_health: DaemonHealth | None = None  # supervised loops: crashes, restarts, degraded
    gpu: GpuStatus | None = None  # the daemon machine's GPUs (NVML), or why there are none
    online: DaemonOnline | None = None  # the daemon's link to the broker (remote TUI only; its Last Will)
    events_applied: int = 0

    # --- applying events ------------------------------------------------------------------
    def apply(self, event: Event) -> str | None:
        """Apply one bus event; returns the kind that changed (the topic's second level)."""
        kind = topic_kind(event.topic)
        payload = event.payload
        handler = _HANDLERS.get(kind)
        if handler is None:
            return None
        handler(self, event.topic, payload)
        self.events_applied += 1
        return kind

    def apply_all(self, events: Iterable[Event]) -> set[str]:
        return {k for e in events if (k := self.apply(e)) is not None}

    def _instance(self, _topic: str, inst: Instance) -> None:
        self.instances[inst.name] = inst

    def _sample(self, _topic: str, sample: MetricSample) -> None:
        prev = self.latest.get(sample.instance)
        if prev is None or sample.ts >= prev.ts:
            self.latest[sample.instance] = sample
        self.series.setdefault(sample.instance, Series()).add(sample)

    def _bottleneck(self, _topic: str, b: Bottleneck) -> None:
        self.bottlenecks[bottleneck_key(b)] = b

    def _compile(self, _topic: str, rec: CompileRecord) -> None:
        view = self.compiles.get(rec.path)
        if view is not None and rec.compiled_at < view.latest.compiled_at:
            return
        last_good = rec if rec.ok else (view.last_good if view else None)
        self.compiles[rec.path] = CompileView(latest=rec, last_good=last_good)

    def _recommendation(self, _topic: str, rec: Recommendation) -> None:
        if rec.id is None:
            return
        old = self.recommendations.get(rec.id)
        if old is None or rec.updated_at >= old.updated_at:
            self.recommendations[rec.id] = rec

    def _rollout(self, _topic: str, ro: Rollout) -> None:
        if ro.id is None:
            return
        old = self.rollouts.get(ro.id)
        if old is None or ro.updated_at >= old.updated_at:
            self.rollouts[ro.id] = ro

    def _audit(self, _topic: str, ev: AuditEvent) -> None:
        if ev.id is not None and any(a.id == ev.id for a in self.audit):
            return
        self.audit.append(ev)

    def _bench(self, _topic: str, run: BenchRunView) -> None:
        # The snapshot and the publisher may both deliver a run; only a newer one replaces it.
        key = (run.agent, run.target)
        old = self.benches.get(key)
        if old is None or (run.started_at, run.id) >= (old.started_at, old.id):
            self.benches[key] = run

    def _gpu(self, _topic: str, status: Any) -> None:
        status = status if isinstance(status, GpuStatus) else GpuStatus.model_validate(status)
        if self.gpu is None or status.ts >= self.gpu.ts:
            self.gpu = status

    def _daemon(self, topic: str, payload: Any) -> None:
        what = topic.rsplit("/", 1)[-1]
        if what == "online":  # liveness, not a status: `online: false` is the broker saying it went
            self.online = (
                payload if isinstance(payload, DaemonOnline) else DaemonOnline.model_validate(payload)
            )
            return
        if what == "health":
            self.daemon_health = (
                payload if isinstance(payload, DaemonHealth) else DaemonHealth.model_validate(payload)
            )
            return
        self.daemon_status = what

    # --- queries the screens use --------------------------------------------------------------
    def instance_names(self) -> list[str]:
        return sorted(set(self.instances) | set(self.latest))

    def pending_rollouts(self) -> list[Rollout]:
        rows = [r for r in self.rollouts.values() if r.state not in TERMINAL_STATES]
        # Awaiting approval first (they need someone), then the running ones; oldest first.
        return sorted(rows, key=lambda r: (r.state not in PENDING_STATES, r.created_at))

    def rollout_history(self) -> list[Rollout]:
        rows = [r for r in self.rollouts.values() if r.state in TERMINAL_STATES]
        return sorted(rows, key=lambda r: r.updated_at, reverse=True)

    def audit_for(self, entity: str, entity_id: str) -> list[AuditEvent]:
        return [a for a in self.audit if a.entity == entity and a.entity_id == entity_id]

    def sorted_bottlenecks(self) -> list[Bottleneck]:
        order = {"CRITICAL": 0, "WARNING": 1, "INFO": 2}
        return sorted(
            self.bottlenecks.values(),
            key=lambda b: (not b.active, order.get(str(b.severity.value), 3), -b.started_at),
        )

    def latest_benches(self) -> list[BenchRunView]:
        """Newest run of each agent and target, the most recent first."""
        return sorted(self.benches.values(), key=lambda r: (-r.started_at, r.agent, r.target))

    def sorted_recommendations(self) -> list[Recommendation]:
        # The optimizer's priority: 1 is the most urgent.
        return sorted(self.recommendations.values(), key=lambda r: (r.priority, -r.updated_at))


def parse_result(view: CompileView | None) -> CompileResult | None:
    """The last good compile's result as the compiler's model (None if it never compiled).

    A failed compile's record may carry the last good result itself (the watcher keeps it), which
    matters when the TUI starts while the file is broken and never saw the good record.
    """
    if view is None:
        return None
    source = view.last_good if view.last_good is not None else view.latest
    if not source.result:
        return None
    try:
        return CompileResult.model_validate(source.result)
    except ValueError:  # a result from a newer compiler schema: show the file, not a crash
        return None


def topic_kind(name: str) -> str:
    """`charter/v1/sample/vllm-a` -> `sample`."""
    rest = name.removeprefix(TOPIC_VERSION + "/")
    return rest.split("/", 1)[0]


def bottleneck_key(b: Bottleneck) -> str:
    # Open and clear events of one bottleneck share its id; without one (not stored yet) the
    # instance and kind identify it, which is also how the detector de-duplicates.
    return str(b.id) if b.id is not None else f"{b.instance}/{b.kind}"


def is_running(ro: Rollout) -> bool:
    return ro.state not in PENDING_STATES and ro.state not in TERMINAL_STATES


_HANDLERS = {
    "instance": DaemonState._instance,
    "sample": DaemonState._sample,
    "bottleneck": DaemonState._bottleneck,
    "compile": DaemonState._compile,
    "recommendation": DaemonState._recommendation,
    "rollout": DaemonState._rollout,
    "audit": DaemonState._audit,
    "bench": DaemonState._bench,
    "daemon": DaemonState._daemon,
    "gpu": DaemonState._gpu,
}


def now() -> float:
    return time.time()
