"""Schema migrations: version N -> N+1, applied in order when an older database is opened.

The DDL goes through Alembic's `Operations` so one migration works on SQLite (batch mode rebuilds
the table where SQLite cannot ALTER) and on PostgreSQL alike; the version itself is one row in
`schema_info`, which is simpler than Alembic's script directory for a tool that ships its schema.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Connection

Migration = Callable[[Operations], None]


def _v1_to_v2(op: Operations) -> None:
    # Schema 2: restart-aware samples, and per-minute aggregates for downsampling.
    with op.batch_alter_table("metric_sample") as batch:
        batch.add_column(sa.Column("counter_reset", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "metric_aggregate",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("instance", sa.String(), nullable=False),
        sa.Column("minute", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("values", sa.JSON()),
        sa.UniqueConstraint("instance", "minute", name="uq_metric_aggregate_instance_minute"),
    )


def _v2_to_v3(op: Operations) -> None:
    # Schema 3: window means (engines without histogram buckets) and TRT-LLM's paused requests.
    with op.batch_alter_table("metric_sample") as batch:
        for name in (
            "ttft_mean_s",
            "itl_mean_s",
            "e2e_mean_s",
            "queue_mean_s",
            "compute_mean_s",
            "paused_requests",
        ):
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))


def _v3_to_v4(op: Operations) -> None:
    # Schema 4: samples with values rejected at the edge (NaN, Inf, out of range) are marked, with why.
    with op.batch_alter_table("metric_sample") as batch:
        batch.add_column(sa.Column("suspect", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("suspect_reason", sa.String(), nullable=True))


def _v4_to_v5(op: Operations) -> None:
    # Schema 5: each window's prefill seconds, for what the prefix cache saved (daemon/savings.py).
    with op.batch_alter_table("metric_sample") as batch:
        batch.add_column(sa.Column("prefill_seconds", sa.Float(), nullable=True))


def _v5_to_v6(op: Operations) -> None:
    # Schema 6: the GPU a target's processes run on, from NVML (daemon/gpu.py), with each sample.
    with op.batch_alter_table("metric_sample") as batch:
        batch.add_column(sa.Column("gpu_utilization", sa.Float(), nullable=True))
        batch.add_column(sa.Column("gpu_temperature_c", sa.Float(), nullable=True))
        batch.add_column(sa.Column("gpu_power_w", sa.Float(), nullable=True))


def _v6_to_v7(op: Operations) -> None:
    # Schema 7, the fleet: rollout leases, so that of the daemons sharing a database exactly one drives each
    # rollout; and which daemon a target and a rollout belong to.
    with op.batch_alter_table("instance") as batch:
        batch.add_column(sa.Column("daemon", sa.String(), nullable=True))
    with op.batch_alter_table("rollout") as batch:
        batch.add_column(sa.Column("daemon", sa.String(), nullable=True))
        batch.create_index("ix_rollout_daemon", ["daemon"])
    op.create_table(
        "rollout_lease",
        sa.Column("rollout_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.Column("takeovers", sa.Integer(), nullable=False, server_default="0"),
    )


# MIGRATIONS[n] upgrades a version-n database to version n+1.
MIGRATIONS: dict[int, Migration] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
    5: _v5_to_v6,
    6: _v6_to_v7,
}


def upgrade(connection: Connection, from_version: int, to_version: int) -> list[int]:
    """Apply every migration from `from_version` up to `to_version`; returns the versions passed."""
    op = Operations(MigrationContext.configure(connection))
    applied = []
    for version in range(from_version, to_version):
        MIGRATIONS[version](op)
        applied.append(version + 1)
    return applied
