"""The daemon: wires collectors, store, analysis, the watcher and the bus on one event loop.

The same `DaemonService` runs headless (`charter-tui daemon`) and embedded in the TUI, which only
subscribes to its bus. Every background loop is a task owned here, so stopping is one call and
nothing is left half-written: tasks are cancelled, pending writes flushed, the store closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from daemon.bus import Bus, topic
from daemon.config import LoadedConfig
from daemon.models import AuditEvent, Instance, InstanceState
from daemon.store import AsyncStore, Store

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 300.0


class DaemonService:
    def __init__(self, loaded: LoadedConfig, bus: Bus | None = None) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.bus = bus or Bus()
        self.store: AsyncStore | None = None
        self.ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then shut down cleanly."""
        store = Store(self.loaded.database_url)
        self.store = AsyncStore(store)
        if store.migrated_from is not None:
            log.info("migrated the database from schema %s", store.migrated_from)
        try:
            await self._register_targets()
            await self.store.add_all(
                [AuditEvent(actor="daemon", entity="daemon", entity_id="-", action="start")]
            )
            self._spawn("retention", self._retention_loop)
            for name, factory in self.extra_loops():
                self._spawn(name, factory)
            self.ready.set()
            log.info(
                "daemon running: %d target(s), database %s", len(self.config.targets), self.loaded.database_url
            )
            await stop.wait()
        finally:
            await self._shutdown()

    def extra_loops(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """The collectors, analysis and watcher loops (wired in as those parts land)."""
        return []

    def _spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        async def guarded() -> None:
            try:
                await factory()
            except asyncio.CancelledError:
                raise
            except Exception:  # one broken loop must not take the daemon down silently
                log.exception("daemon loop %r crashed", name)
                self.bus.publish(topic("daemon", "error"), {"loop": name})

        self._tasks.append(asyncio.create_task(guarded(), name=f"charter:{name}"))

    async def _register_targets(self) -> None:
        assert self.store is not None
        for target in self.config.targets:
            await self.store.call(
                self.store.store.merge,
                Instance(name=target.name, url=target.url, engine=target.engine, state=InstanceState.UNKNOWN),
            )

    async def _retention_loop(self) -> None:
        assert self.store is not None
        storage = self.config.storage
        while True:
            folded, dropped = await self.store.call(
                self.store.store.apply_retention, storage.raw_retention_hours, storage.aggregate_retention_days
            )
            if folded or dropped:
                log.info("retention: folded %d raw samples, dropped %d old aggregates", folded, dropped)
            await asyncio.sleep(RETENTION_EVERY_S)

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.store is not None:
            await self.store.add_all([AuditEvent(actor="daemon", entity="daemon", entity_id="-", action="stop")])
            self.store.close()
            log.info("daemon stopped")
