"""The store on a real SQLite file (and the local PostgreSQL): durability, retention, migration."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from daemon.errors import UserError
from daemon.models import SCHEMA_VERSION, AuditEvent, MetricAggregate, MetricSample, SchemaInfo
from daemon.store import Store

HERE = Path(__file__).parent


def sample(instance: str, ts: float, **values: float) -> MetricSample:
    return MetricSample(instance=instance, ts=ts, engine="vllm", **values)


def test_write_and_read_back_every_signal(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    now = time.time()
    store.add_all([sample("a", now - 5, ttft_p95_s=0.25, prefix_hit_rate=0.5, waiting=3), sample("b", now)])
    got = store.samples("a", since=now - 60)
    assert [(s.instance, s.ttft_p95_s, s.prefix_hit_rate, s.waiting) for s in got] == [("a", 0.25, 0.5, 3.0)]
    assert store.samples("a", since=now - 1) == []
    assert store.schema_version() == SCHEMA_VERSION


def test_sqlite_runs_in_wal_mode(sqlite_url: str, tmp_path: Path) -> None:
    Store(sqlite_url).add_all([sample("a", time.time())])
    mode = sqlite3.connect(tmp_path / "charter.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_retention_folds_old_samples_into_minute_means(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    now = 1_800_000_000.0  # a fixed clock: minute boundaries are then exact
    old_minute = now - 3 * 3600 - 600  # well past a 1-hour raw retention
    start = old_minute - old_minute % 60
    rows = [sample("a", start + i * 10, ttft_p50_s=0.1 * (i + 1), running=i) for i in range(6)]  # one minute
    rows += [sample("a", start + 60, ttft_p50_s=1.0)]  # next minute
    rows += [sample("a", now - 60, ttft_p50_s=9.0)]  # recent: stays raw
    store.add_all(rows)

    folded, dropped = store.apply_retention(raw_retention_hours=1, aggregate_retention_days=30, now=now)

    assert (folded, dropped) == (7, 0)
    assert [s.ttft_p50_s for s in store.samples("a", since=0)] == [9.0]
    aggregates = store.aggregates("a", since=0)
    assert [(a.minute, a.samples) for a in aggregates] == [(int(start), 6), (int(start) + 60, 1)]
    assert aggregates[0].values["ttft_p50_s"] == pytest.approx(0.35)  # mean of 0.1..0.6
    assert aggregates[0].values["running"] == pytest.approx(2.5)
    assert aggregates[0].values["kv_cache_usage"] is None  # never exported: stays unknown, not 0

    # A second pass folding more samples into an existing minute keeps a weighted mean.
    store.add_all([sample("a", start + 5, ttft_p50_s=1.05)])
    store.apply_retention(raw_retention_hours=1, aggregate_retention_days=30, now=now)
    again = store.aggregates("a", since=0)[0]
    assert again.samples == 7
    assert again.values["ttft_p50_s"] == pytest.approx((0.35 * 6 + 1.05) / 7)

    # Aggregates past their own retention are dropped.
    folded, dropped = store.apply_retention(1, aggregate_retention_days=0.01, now=now)
    assert dropped == 2 and store.aggregates("a", since=0) == []


def test_migrates_a_version_1_database_without_losing_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript((HERE / "schema_v1_sqlite.sql").read_text())
    conn.execute(
        "INSERT INTO metric_sample (instance, ts, engine, ttft_p95_s) VALUES ('old', 100.0, 'vllm', 0.7)"
    )
    conn.execute(
        "INSERT INTO audit_event (ts, actor, entity, entity_id, action) VALUES (1.0, 'me', 'rollout', '1', 'approve')"
    )
    conn.commit()
    conn.close()

    store = Store(f"sqlite:///{db}")

    assert store.migrated_from == 1
    assert store.schema_version() == SCHEMA_VERSION
    (old,) = store.samples("old", since=0)
    assert old.ttft_p95_s == 0.7 and old.counter_reset is False
    assert [e.action for e in store.all(AuditEvent)] == ["approve"]
    store.add_all([MetricAggregate(instance="old", minute=0, samples=1, values={"ttft_p95_s": 0.7})])
    assert len(store.aggregates("old", since=0)) == 1
    # Opening again is a no-op.
    assert Store(f"sqlite:///{db}").migrated_from is None


def test_refuses_a_database_from_a_newer_charter(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    with store.session() as s:
        s.exec(sa.update(SchemaInfo).values(version=SCHEMA_VERSION + 1))
        s.commit()
    with pytest.raises(UserError, match="newer than this charter-tui"):
        Store(sqlite_url)


WRITER = textwrap.dedent(
    """
    import sys, time
    from daemon.store import Store
    from daemon.models import MetricSample
    store = Store(sys.argv[1])
    i = 0
    while True:
        store.add_all([MetricSample(instance="w", ts=time.time(), running=i + k) for k in range(10)])
        i += 10
        print(i, flush=True)  # printed only after the commit returned
    """
)


def _start_writer(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


def test_a_second_process_reads_while_the_writer_writes(sqlite_url: str) -> None:
    Store(sqlite_url)  # create the schema first
    writer = _start_writer(sqlite_url)
    try:
        assert writer.stdout is not None
        writer.stdout.readline()
        reader = Store(sqlite_url)
        counts = []
        for _ in range(5):
            counts.append(len(reader.samples("w", since=0)))
            time.sleep(0.1)
        assert counts[0] > 0
        assert counts == sorted(counts) and counts[-1] > counts[0], "reads see the writer's progress"
    finally:
        writer.kill()
        writer.wait()


def test_sigkilled_writer_loses_no_committed_row(sqlite_url: str) -> None:
    Store(sqlite_url)
    writer = _start_writer(sqlite_url)
    assert writer.stdout is not None
    committed = 0
    while committed < 300:
        committed = int(writer.stdout.readline())
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    for line in writer.stdout:  # anything printed before the kill was committed too
        if line.strip():
            committed = int(line)

    store = Store(sqlite_url)  # opens cleanly: WAL recovery, no repair needed
    rows = store.samples("w", since=0)
    assert len(rows) >= committed
    assert len(rows) % 10 == 0, "batches are atomic: never a partial batch"
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_bad_database_url_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="not a SQLAlchemy URL"):
        Store("not a url")


@pytest.mark.postgres
def test_postgresql_round_trip_and_retention(postgres_url: str) -> None:
    store = Store(postgres_url)
    try:
        now = 1_800_000_000.0
        store.add_all([sample("pg", now - 7200, ttft_p50_s=0.5), sample("pg", now - 10, ttft_p50_s=0.1)])
        assert store.schema_version() == SCHEMA_VERSION
        assert store.apply_retention(1, 30, now=now) == (1, 0)
        assert [s.ttft_p50_s for s in store.samples("pg", since=0)] == [0.1]
        assert store.aggregates("pg", since=0)[0].values["ttft_p50_s"] == 0.5
    finally:
        store.close()
