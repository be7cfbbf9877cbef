"""The stored data model: SQLModel tables that are also the typed messages between the parts.

A row is the contract: the collectors produce `MetricSample`s, the analysis produces
`Bottleneck`s, the optimizer `Recommendation`s, the rollout manager `Rollout`s and
`AuditEvent`s, and the same JSON goes into SQLite/PostgreSQL, over MQTT and into `--json`.
Times are Unix seconds (float, UTC): comparable across SQLite and PostgreSQL and cheap to window.
"""

from __future__ import annotations

import enum
import time
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

# Bump with a migration in daemon/migrations.py whenever a table below changes.
SCHEMA_VERSION = 7


def now() -> float:
    return time.time()


class InstanceState(str, enum.Enum):
    UP = "UP"
    STALE = "STALE"  # reachable history, but the latest polls failed or timed out
    DOWN = "DOWN"  # refused, circuit open, or never seen
    UNKNOWN = "UNKNOWN"


class SchemaInfo(SQLModel, table=True):
    __tablename__ = "schema_info"
    id: int = Field(default=1, primary_key=True)
    version: int
    updated_at: float = Field(default_factory=now)


class Instance(SQLModel, table=True):
    """One inference server the daemon polls (a `[[targets]]` entry)."""

    __tablename__ = "instance"
    name: str = Field(primary_key=True)
    url: str
    engine: str = "auto"
    model: str | None = None
    state: InstanceState = InstanceState.UNKNOWN
    state_reason: str | None = None
    last_seen: float | None = None
    info: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # The daemon that polls it (`[daemon] id`): in a database a fleet shares, target names are one namespace.
    daemon: str | None = None


# The numeric signals of a sample, in one place so storage, downsampling and display agree.
SIGNAL_FIELDS: tuple[str, ...] = (
    "ttft_p50_s",
    "ttft_p95_s",
    "itl_p50_s",
    "itl_p95_s",
    "e2e_p50_s",
    "e2e_p95_s",
    "queue_p50_s",
    "queue_p95_s",
    "running",
    "waiting",
    "kv_cache_usage",
    "prefix_hit_rate",
    "prefix_queries",
    "prefix_hits",
    "prompt_tokens_per_s",
    "generation_tokens_per_s",
    "preemptions",
    "gpu_memory_used_bytes",
    "gpu_memory_total_bytes",
    "requests_success_per_s",
    "requests_failure_per_s",
    "ttft_mean_s",
    "itl_mean_s",
    "e2e_mean_s",
    "queue_mean_s",
    "compute_mean_s",
    "paused_requests",
    "prefill_seconds",
    "gpu_utilization",
    "gpu_temperature_c",
    "gpu_power_w",
)

# Added in schema 3: window means, for engines that export sums and counts but no buckets (Triton's
# cumulative durations, llama.cpp's token-time totals) — a mean is not a percentile, so it gets its
# own column instead of pretending to be a p50.
MEAN_FIELDS: tuple[str, ...] = ("ttft_mean_s", "itl_mean_s", "e2e_mean_s", "queue_mean_s", "compute_mean_s")


class MetricSample(SQLModel, table=True):
    """One poll of one instance, normalized across engines.

    Latency percentiles come from histogram bucket deltas over `window_s`; rates and the prefix
    hit rate from counter deltas over the same window (never lifetime ratios). `prefix_queries`
    and `prefix_hits` are the window's deltas in tokens, `preemptions` the window's count.
    None means the engine does not export the signal (or the window had no traffic for it).
    """

    __tablename__ = "metric_sample"
    __table_args__ = (Index("ix_metric_sample_instance_ts", "instance", "ts"),)
    id: int | None = Field(default=None, primary_key=True)
    instance: str
    ts: float = Field(default_factory=now)
    engine: str = "unknown"
    window_s: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    itl_p50_s: float | None = None
    itl_p95_s: float | None = None
    e2e_p50_s: float | None = None
    e2e_p95_s: float | None = None
    queue_p50_s: float | None = None
    queue_p95_s: float | None = None
    running: float | None = None
    waiting: float | None = None
    kv_cache_usage: float | None = None
    prefix_hit_rate: float | None = None
    prefix_queries: float | None = None
    prefix_hits: float | None = None
    prompt_tokens_per_s: float | None = None
    generation_tokens_per_s: float | None = None
    preemptions: float | None = None
    gpu_memory_used_bytes: float | None = None
    gpu_memory_total_bytes: float | None = None
    # Schema 6: the GPU the target's processes hold memory on, from NVML (daemon/gpu.py), when the engine
    # exports none of it: utilization 0-1, temperature, power draw.
    gpu_utilization: float | None = None
    gpu_temperature_c: float | None = None
    gpu_power_w: float | None = None
    requests_success_per_s: float | None = None
    requests_failure_per_s: float | None = None
    ttft_mean_s: float | None = None
    itl_mean_s: float | None = None
    e2e_mean_s: float | None = None
    queue_mean_s: float | None = None
    compute_mean_s: float | None = None
    paused_requests: float | None = None  # TRT-LLM's gauge of paused (preempted) requests
    # Schema 5: the window's total of per-request prefill time (vLLM's request_prefill_time_seconds
    # sum delta), which with the cache's hits says what the cache saved in prefill seconds.
    prefill_seconds: float | None = None
    counter_reset: bool = False  # the server restarted inside this window
    # Schema 4: the server reported a value its signal cannot take (NaN, Inf, KV usage -5%): that
    # value is left out (None) and the sample kept with the reasons, never read as data by the analysis.
    suspect: bool = False
    suspect_reason: str | None = None


class MetricAggregate(SQLModel, table=True):
    """Per-minute means of raw samples older than the raw retention (added in schema 2)."""

    __tablename__ = "metric_aggregate"
    __table_args__ = (UniqueConstraint("instance", "minute", name="uq_metric_aggregate_instance_minute"),)
    id: int | None = Field(default=None, primary_key=True)
    instance: str
    minute: int  # Unix time of the minute's start
    samples: int
    values: dict[str, float | None] = Field(default_factory=dict, sa_column=Column(JSON))


class Severity(str, enum.Enum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


class Bottleneck(SQLModel, table=True):
    __tablename__ = "bottleneck"
    id: int | None = Field(default=None, primary_key=True)
    instance: str = Field(index=True)
    kind: str  # MEMORY_PRESSURE, HIGH_LATENCY, LOW_THROUGHPUT, QUEUE_BUILDUP, CACHE_INEFFICIENCY, ...
    severity: Severity = Severity.WARNING
    active: bool = True
    started_at: float = Field(default_factory=now)
    cleared_at: float | None = None
    summary: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class CompileRecord(SQLModel, table=True):
    """The latest compile of a watched agent file (the compiler's `CompileResult` as JSON)."""

    __tablename__ = "compile_record"
    id: int | None = Field(default=None, primary_key=True)
    path: str = Field(index=True)
    content_hash: str
    compiled_at: float = Field(default_factory=now)
    ok: bool = True
    error: str | None = None
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class RecommendationStatus(str, enum.Enum):
    OPEN = "OPEN"
    PROPOSED = "PROPOSED"  # turned into a rollout proposal
    DISMISSED = "DISMISSED"
    RESOLVED = "RESOLVED"


class Recommendation(SQLModel, table=True):
    __tablename__ = "recommendation"
    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(unique=True)  # de-duplication key: target + kind + changes
    instance: str | None = Field(default=None, index=True)
    kind: str
    title: str
    priority: int = 50
    status: RecommendationStatus = RecommendationStatus.OPEN
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)
    # changes, expected impact, effort, risks, prerequisites, source (bottleneck id / compile path)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class Rollout(SQLModel, table=True):
    __tablename__ = "rollout"
    id: int | None = Field(default=None, primary_key=True)
    recommendation_id: int | None = Field(default=None, index=True)
    state: str = "PENDING_APPROVAL"
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)
    title: str = ""
    targets: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    changes: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    previous_config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    comparison: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    stage_detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # The daemon whose targets it changes (the one it was proposed to); its lease says who drives it now.
    daemon: str | None = Field(default=None, index=True)


class RolloutLease(SQLModel, table=True):
    """Which daemon drives an active rollout, until when (daemon/rollouts/lease.py). A fleet's daemons share one
    database: the holder renews its lease while it lives; another daemon takes the rollout over once it expires."""

    __tablename__ = "rollout_lease"
    rollout_id: int = Field(primary_key=True)
    holder: (
        str  # "<daemon id>/<process nonce>": two daemons with one id (one host name) are still two holders
    )
    expires_at: float  # the database's clock (PostgreSQL's), so daemons on machines with skewed clocks agree
    acquired_at: float
    takeovers: int = 0


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    id: int | None = Field(default=None, primary_key=True)
    ts: float = Field(default_factory=now, index=True)
    actor: str  # "daemon", a user name, "mqtt:<client>"
    entity: str  # "rollout", "recommendation", "config"
    entity_id: str
    action: str
    from_state: str | None = None
    to_state: str | None = None
    comment: str | None = None
