"""Publish benchmark results to the bus as `charter-tui bench` stores them.

`charter-tui bench` usually runs as its own process, so its results reach the daemon only through
the store: this loop reads `bench_run` rows newer than the last it published, every few seconds,
and publishes each as a `BenchRunView` on `charter/v1/bench/<agent>`. It starts after the newest row
already stored; those older runs reach a TUI through its start-up snapshot (`latest_runs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select

from daemon.bus import Bus, topic
from daemon.bench.records import BenchRun, BenchRunView
from daemon.store import AsyncStore, Store

log = logging.getLogger(__name__)

POLL_S = 3.0
BATCH = 100  # rows per read: a burst of stored runs is published over a few polls, not in one read


def _has_table(store: Store) -> bool:
    # A database created by a process that never imported the bench model has no `bench_run` table
    # until the first bench run (or the publisher) creates it.
    return sa.inspect(store.engine).has_table(BenchRun.__tablename__)


def ensure_table(store: Store) -> None:
    BenchRun.__table__.create(store.engine, checkfirst=True)  # type: ignore[attr-defined]  # set by SQLAlchemy, undeclared in sqlmodel


def newest_id(store: Store) -> int:
    with store.session() as s:
        return int(s.exec(select(func.max(BenchRun.id))).one() or 0)


def runs_after(store: Store, after_id: int, limit: int = BATCH) -> list[BenchRunView]:
    # SQLite has one writer, so ids become visible in order and "greater than the last" misses
    # nothing. (On PostgreSQL two benches committing at the same instant could land out of order;
    # the later one still reaches any TUI through its snapshot.)
    rows = store.all(BenchRun, col(BenchRun.id) > after_id, order_by=BenchRun.id, limit=limit)
    return [BenchRunView.from_row(r) for r in rows]


def latest_runs(store: Store) -> list[BenchRunView]:
    """The newest run of each (agent, target), oldest first: what a freshly started TUI shows."""
    if not _has_table(store):
        return []
    newest = select(func.max(BenchRun.id)).group_by(BenchRun.agent, BenchRun.target)
    rows = store.all(BenchRun, col(BenchRun.id).in_(newest), order_by=BenchRun.id)
    return [BenchRunView.from_row(r) for r in rows]


class BenchPublisher:
    """The daemon loop. `after_id=None` starts after the newest stored run (the usual case)."""

    def __init__(
        self, store: AsyncStore, bus: Bus, *, after_id: int | None = None, every_s: float | None = None
    ) -> None:
        self.store = store
        self.bus = bus
        self.last_id = after_id
        self.every_s = POLL_S if every_s is None else every_s  # read at construction: tests shorten it
        self.published = 0

    async def start(self) -> None:
        """Create the table if missing and fix the starting point. The daemon awaits this before it is
        ready, so every run is either in the TUI's snapshot (read after ready) or published."""
        await self.store.call(ensure_table, self.store.store)
        if self.last_id is None:
            self.last_id = await self.store.call(newest_id, self.store.store)

    async def poll(self) -> int:
        """Publish every run stored since the last poll; returns how many."""
        if self.last_id is None:
            await self.start()
        assert self.last_id is not None
        views: list[BenchRunView] = await self.store.call(runs_after, self.store.store, self.last_id)
        for view in views:
            self.bus.publish(topic("bench", view.agent), view)
            self.last_id = view.id
        self.published += len(views)
        return len(views)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.poll()
            except OperationalError as exc:  # a locked or briefly unavailable database: next poll
                log.warning("reading bench runs failed (%s); retrying", exc.orig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every_s)
