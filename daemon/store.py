"""The store: SQLModel over any SQLAlchemy URL (SQLite file by default, PostgreSQL for a fleet).

SQLite runs in WAL mode so the TUI (or a second process) reads while the daemon writes, and a
killed writer leaves every committed transaction intact. The engine is synchronous: the daemon
calls it through `AsyncStore`, which runs every call on one worker thread — SQLite has one
writer anyway, and the same code then serves PostgreSQL through psycopg unchanged.

Opening is all or nothing: a database that cannot be used (a SQLite path in a directory that does
not exist, a file that is not SQLite, a read-only file or directory, a schema from a newer
charter-tui) is one UserError naming the database and the reason, and leaves no file behind that
was not there before. Only the XDG data dir, the default's home, is created without being asked;
an explicit path in a missing directory is more likely a typo than a wish.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import sqlite3
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import Session, SQLModel, col, create_engine, delete, select

from daemon import migrations
from daemon.errors import UserError, shown
from daemon.models import SCHEMA_VERSION, SIGNAL_FIELDS, MetricAggregate, MetricSample, SchemaInfo
from daemon.paths import default_data_dir, path_problem

T = TypeVar("T", bound=SQLModel)
P = ParamSpec("P")
R = TypeVar("R")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable against a crashed or killed process in WAL mode (only power loss can drop
    # the last transactions), and avoids an fsync per batch.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def shown_url(url: str) -> str:
    """The URL fit for an error line: password masked, controls escaped, length bounded."""
    try:
        url = sa.engine.make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        pass
    return shown(url, 200)


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL; None for other backends, :memory: and `file:` URIs."""
    try:
        parsed = sa.engine.make_url(url)
    except ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # SQLite URI (`?uri=true`): SQLite parses it, not us
        return None
    return Path(database).expanduser()


def _check_sqlite_path(url: str, path: Path) -> None:
    problem = path_problem(path)
    if problem:
        raise UserError(f"database {shown_url(url)}: {problem}")
    if path.exists() and not path.is_file():
        raise UserError(f"database {shown_url(url)}: {shown(path, 160)} is not a regular file")
    parent = path.parent
    if parent.is_dir():
        return
    if parent.resolve() != default_data_dir().resolve():
        raise UserError(
            f"database {shown_url(url)}: directory {shown(parent, 160)} does not exist (create it, or fix the path)"
        )
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"database {shown_url(url)}: cannot create {shown(parent, 160)}: {exc.strerror}"
        ) from None


class NoDatabaseYet(UserError):
    """A read-only open of a SQLite file that is not there: nothing to read, and nothing is created."""


def _sqlite_reader_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")  # journal_mode is the writer's to set, not a reader's
    cursor.close()


def _connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to a SQLite file this process may not be able to write.

    `mode=ro` reads a WAL database through its `-shm` file: while the daemon runs, that file exists
    and the reader sees the latest commits. With no writer (no `-wal` file) and a directory this
    user cannot write, SQLite could not create `-shm` and refuses; every page is then in the main
    file, so it is read as `immutable` (a writer starting meanwhile could make this one listing stale).
    """
    resolved = path.resolve()
    wal = resolved.with_name(resolved.name + "-wal")
    idle_and_unwritable = not wal.exists() and not os.access(resolved.parent, os.W_OK)
    uri = f"file:{urllib.parse.quote(str(resolved))}?{'immutable=1' if idle_and_unwritable else 'mode=ro'}"
    return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5)


def make_engine(url: str, *, readonly: bool = False) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except ArgumentError as exc:
        raise UserError(f"database URL {shown(repr(url), 120)} is not a SQLAlchemy URL: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            _check_sqlite_path(url, path)
        if readonly and path is not None:
            if not path.exists():
                raise NoDatabaseYet(
                    f"database {shown_url(url)} does not exist yet: the daemon creates it "
                    "(charter-tui daemon)"
                )
            engine = create_engine("sqlite://", creator=lambda: _connect_reader(path))
            event.listen(engine, "connect", _sqlite_reader_pragmas)
            return engine
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))  # psycopg 3, not the psycopg2 default
    try:
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise UserError(f"database {shown_url(url)} needs the driver {exc.name!r}: pip install it") from None
    except (ArgumentError, ValueError, TypeError) as exc:  # a bad query argument, port or driver option
        raise UserError(f"database {shown_url(url)}: {shown(exc, 200)}") from None


def _db_reason(exc: SQLAlchemyError) -> str:
    """What a driver's error means for the person who named the database."""
    detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    lowered = detail.lower()
    if "file is not a database" in lowered:
        return "not a SQLite database (file is not a database)"
    if "readonly" in lowered or "read-only" in lowered:
        return f"read-only: the file or its directory is not writable ({detail})"
    if "unable to open database file" in lowered:
        return f"cannot be opened or created: check the path and the directory's permissions ({detail})"
    return detail


SCHEMA_WAIT_S = 10.0  # how long an open waits for another process to finish creating the database


class _SchemaBeingCreated(Exception):
    """`schema_info` exists without its row: another process is creating the database at this moment."""


class Store:
    """Schema-managed access to the database. Safe to share between threads (one session per call)."""

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        """`readonly`: for commands that only read (`rollouts list`, `show`): a SQLite file is opened
        with `mode=ro`, so a database the user may read but not write (the daemon's, say) still lists,
        and nothing is created, migrated or written."""
        self.url = url
        self.readonly = readonly
        self.engine = make_engine(url, readonly=readonly)  # checks the path; creates no file
        path = sqlite_path(url)
        existed = path is None or path.exists()
        try:
            if readonly:
                self.migrated_from = None
                self._check_readable()
                return
            self.migrated_from = self._ensure_schema_when_created()
            self._check_writable()
        except (SQLAlchemyError, UserError) as exc:
            self.engine.dispose()
            if not existed and path is not None:
                _remove_sqlite_files(path)  # nothing half-written: a file we created goes again
            if isinstance(exc, UserError):
                raise
            raise UserError(
                f"cannot open the database {shown_url(url)}: {shown(_db_reason(exc), 300)}"
            ) from None

    # --- schema -----------------------------------------------------------------------------
    def _ensure_schema_when_created(self) -> int | None:
        """`_ensure_schema`, waiting up to SCHEMA_WAIT_S for another process that is creating the database
        right now: SQLite commits each CREATE TABLE on its own, so its `schema_info` table can be seen
        before its row (a CLI run while the daemon started failed "No row was found when one was required")."""
        deadline = time.monotonic() + SCHEMA_WAIT_S
        while True:
            try:
                return self._ensure_schema()
            except _SchemaBeingCreated:
                if time.monotonic() > deadline:
                    raise UserError(
                        f"{shown_url(self.url)}: its schema_info table has no row after {SCHEMA_WAIT_S:.0f} s: "
                        "another process began creating this database and did not finish, or it is damaged"
                    ) from None
                time.sleep(0.1)

    def _ensure_schema(self) -> int | None:
        """Create a new database, or migrate an older one; returns the version migrated from."""
        with self.engine.begin() as conn:
            tables = set(inspect(conn).get_table_names())
            if "schema_info" not in tables:
                if tables & {"metric_sample", "instance"}:
                    raise UserError(f"{self.url}: has charter-like tables but no schema_info; not ours?")
                SQLModel.metadata.create_all(conn)
                conn.execute(
                    sa.insert(SchemaInfo).values(id=1, version=SCHEMA_VERSION, updated_at=time.time())
                )
                return None
            version = conn.execute(sa.select(col(SchemaInfo.version))).scalar_one_or_none()
            if version is None:
                raise _SchemaBeingCreated
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

    def _check_readable(self) -> None:
        """A read-only open cannot create or migrate: the schema must be this version's already."""
        with self.engine.connect() as conn:
            if "schema_info" not in set(inspect(conn).get_table_names()):
                raise UserError(f"{shown_url(self.url)}: not a charter-tui database (no schema_info table)")
            version = conn.execute(sa.select(col(SchemaInfo.version))).scalar_one()
        if version != SCHEMA_VERSION:
            newer = version > SCHEMA_VERSION
            raise UserError(
                f"{shown_url(self.url)}: schema version {version}, this charter-tui reads "
                f"{SCHEMA_VERSION}; "
                + ("upgrade charter-tui" if newer else "start the daemon once to migrate it")
            )

    def _check_writable(self) -> None:
        """Fail now, not at the daemon's first write, on a database this process cannot write.

        An up-to-date database is only read while opening; a no-op UPDATE needs the write lock and
        so meets a read-only file, directory or connection here, with nothing changed.
        """
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(SchemaInfo).where(col(SchemaInfo.id) == 1).values(version=SchemaInfo.version)
            )

    def schema_version(self) -> int:
        with self.session() as s:
            return s.exec(select(SchemaInfo.version)).one()

    # --- generic access ---------------------------------------------------------------------
    @property
    def shared(self) -> bool:
        """A database several daemons may share (PostgreSQL); a SQLite file is one machine's, one daemon's."""
        return self.engine.dialect.name == "postgresql"

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
            s.exec(delete(MetricSample).where(col(MetricSample.ts) < cutoff))
            dropped = s.exec(delete(MetricAggregate).where(col(MetricAggregate.minute) < agg_cutoff)).rowcount
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


def _remove_sqlite_files(path: Path) -> None:
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        try:
            os.unlink(candidate)
        except OSError:
            pass


def _mean_values(rows: list[MetricSample], existing: MetricAggregate | None) -> dict[str, float | None]:
    """Per-signal means over the rows (and an existing aggregate's, weighted by its sample count)."""
    out: dict[str, float | None] = {}
    for name in SIGNAL_FIELDS:
        values = [v for r in rows if (v := getattr(r, name)) is not None]
        total, count = sum(values), len(values)
        prior = existing.values.get(name) if existing else None
        if existing and prior is not None:
            total += prior * existing.samples
            count += existing.samples
        out[name] = total / count if count else None
    return out


class AsyncStore:
    """The store for asyncio code: each call runs on one dedicated thread, in order."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def add_all(self, rows: Sequence[SQLModel]) -> None:
        await self.call(self.store.add_all, rows)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.store.close()
