"""The store: SQLModel over any SQLAlchemy URL (SQLite file by default, PostgreSQL for a fleet).

SQLite runs in WAL mode so the TUI (or a second process) reads while the daemon writes, and a
killed writer leaves every committed transaction intact. The engine is synchronous: the daemon
calls it through `AsyncStore`, which runs every call on one worker thread — SQLite has one
writer anyway, and the same code then serves PostgreSQL through psycopg unchanged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import Session, SQLModel, create_engine, delete, select

from daemon import migrations
from daemon.errors import UserError
from daemon.models import SCHEMA_VERSION, SIGNAL_FIELDS, MetricAggregate, MetricSample, SchemaInfo

T = TypeVar("T", bound=SQLModel)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable against a crashed or killed process in WAL mode (only power loss can drop
    # the last transactions), and avoids an fsync per batch.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except ArgumentError as exc:
        raise UserError(f"database URL {url!r} is not a SQLAlchemy URL: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))  # psycopg 3, not the psycopg2 default
    try:
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise UserError(f"database URL {url!r} needs the driver {exc.name!r}: pip install it") from None


class Store:
    """Schema-managed access to the database. Safe to share between threads (one session per call)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        try:
            self.migrated_from = self._ensure_schema()
        except OperationalError as exc:
            raise UserError(f"cannot open the database {url!r}: {exc.orig}") from None

    # --- schema -----------------------------------------------------------------------------
    def _ensure_schema(self) -> int | None:
        """Create a new database, or migrate an older one; returns the version migrated from."""
        with self.engine.begin() as conn:
            tables = set(inspect(conn).get_table_names())
            if "schema_info" not in tables:
                if tables & {"metric_sample", "instance"}:
                    raise UserError(f"{self.url}: has charter-like tables but no schema_info; not ours?")
                SQLModel.metadata.create_all(conn)
                conn.execute(sa.insert(SchemaInfo).values(id=1, version=SCHEMA_VERSION, updated_at=time.time()))
                return None
            version = conn.execute(sa.select(SchemaInfo.version)).scalar_one()
            if version > SCHEMA_VERSION:
                raise UserError(
                    f"{self.url}: schema version {version} is newer than this charter-tui ({SCHEMA_VERSION}); "
                    "upgrade charter-tui"
                )
            if version == SCHEMA_VERSION:
                SQLModel.metadata.create_all(conn)  # tables added without a version bump are harmless
                return None
            migrations.upgrade(conn, version, SCHEMA_VERSION)
            conn.execute(sa.update(SchemaInfo).values(version=SCHEMA_VERSION, updated_at=time.time()))
            return version

    def schema_version(self) -> int:
        with self.session() as s:
            return s.exec(select(SchemaInfo.version)).one()

    # --- generic access ---------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def add_all(self, rows: Sequence[SQLModel]) -> None:
        """Write a batch in one transaction: all of it lands, or none."""
        if not rows:
            return
        with self.session() as s:
            s.add_all(rows)
            s.commit()

    def merge(self, row: T) -> T:
        with self.session() as s:
            merged = s.merge(row)
            s.commit()
            return merged

    def all(self, model: type[T], *where: Any, order_by: Any = None, limit: int | None = None) -> list[T]:
        with self.session() as s:
            query = select(model).where(*where)
            if order_by is not None:
                query = query.order_by(order_by)
            if limit is not None:
                query = query.limit(limit)
            return list(s.exec(query).all())

    # --- samples ----------------------------------------------------------------------------
    def samples(self, instance: str, since: float, until: float | None = None) -> list[MetricSample]:
        where = [MetricSample.instance == instance, MetricSample.ts >= since]
        if until is not None:
            where.append(MetricSample.ts < until)
        return self.all(MetricSample, *where, order_by=MetricSample.ts)

    def apply_retention(
        self, raw_retention_hours: float, aggregate_retention_days: float, now: float | None = None
    ) -> tuple[int, int]:
        """Fold raw samples older than the raw retention into per-minute means, then drop them.

        Runs in one transaction, so a crash leaves either the raw rows or their aggregates, never
        neither. The cutoff is aligned to a minute so no minute is split between two passes.
        Returns (raw samples folded, aggregates dropped for age).
        """
        now = time.time() if now is None else now
        cutoff = math.floor((now - raw_retention_hours * 3600) / 60) * 60
        agg_cutoff = now - aggregate_retention_days * 86400
        with self.session() as s:
            old = s.exec(select(MetricSample).where(MetricSample.ts < cutoff)).all()
            buckets: dict[tuple[str, int], list[MetricSample]] = defaultdict(list)
            for sample in old:
                buckets[(sample.instance, int(sample.ts // 60) * 60)].append(sample)
            for (instance, minute), rows in buckets.items():
                existing = s.exec(
                    select(MetricAggregate).where(
                        MetricAggregate.instance == instance, MetricAggregate.minute == minute
                    )
                ).first()
                values = _mean_values(rows, existing)
                if existing:
                    existing.values = values
                    existing.samples += len(rows)
                    s.add(existing)
                else:
                    s.add(MetricAggregate(instance=instance, minute=minute, samples=len(rows), values=values))
            s.exec(delete(MetricSample).where(MetricSample.ts < cutoff))
            dropped = s.exec(delete(MetricAggregate).where(MetricAggregate.minute < agg_cutoff)).rowcount
            s.commit()
        return len(old), int(dropped or 0)

    def aggregates(self, instance: str, since: float) -> list[MetricAggregate]:
        return self.all(
            MetricAggregate,
            MetricAggregate.instance == instance,
            MetricAggregate.minute >= since,
            order_by=MetricAggregate.minute,
        )

    def close(self) -> None:
        self.engine.dispose()


def _mean_values(rows: list[MetricSample], existing: MetricAggregate | None) -> dict[str, float | None]:
    """Per-signal means over the rows (and an existing aggregate's, weighted by its sample count)."""
    out: dict[str, float | None] = {}
    for name in SIGNAL_FIELDS:
        values = [v for r in rows if (v := getattr(r, name)) is not None]
        total, count = sum(values), len(values)
        if existing and existing.values.get(name) is not None:
            total += existing.values[name] * existing.samples
            count += existing.samples
        out[name] = total / count if count else None
    return out


class AsyncStore:
    """The store for asyncio code: each call runs on one dedicated thread, in order."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def add_all(self, rows: Sequence[SQLModel]) -> None:
        await self.call(self.store.add_all, rows)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.store.close()
