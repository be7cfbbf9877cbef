"""The daemon: wires collectors, store, analysis, the watcher, rollouts and the bus on one event loop.

The same `DaemonService` runs headless (`charter-tui daemon`) and embedded in the TUI, which only
subscribes to its bus. Every background loop is a task owned here and receives the service's stop
event, so stopping is one call: loops are asked to finish (the poller flushes its queued samples,
the rollout manager finishes its step), and whatever has not finished within `STOP_GRACE_S` is
cancelled. Nothing is left half-written: every write is one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from daemon.errors import UserError
from daemon.identity import daemon_id
from daemon.bus import Bus, Event, topic
from daemon.gpu import GPU_TOPIC
from daemon.config import Config, LoadedConfig
from daemon.models import AuditEvent, CompileRecord, Instance, InstanceState
from daemon.redaction import redact_url
from daemon.stall import LoopStallWatchdog
from daemon.store import AsyncStore, Store
from daemon.single import AnotherDaemon, DaemonLock
from daemon.supervisor import Loop, Supervisor, cancel_and_wait
from daemon.topics import DaemonReady
from daemon.views import History, read_history, read_snapshot

if TYPE_CHECKING:  # the parts are imported where they start (_start_parts, _watch_loop); here only for types
    import threading
    from wsgiref.simple_server import WSGIServer

    from daemon.pipeline import PerformancePipeline
    from daemon.exporter import DaemonMetrics
    from compiler.model import CompileResult
    from daemon.gpu import GpuMonitor
    from daemon.mqtt_bridge import MqttBridge
    from daemon.poller import Poller
    from daemon.rollouts.manager import RolloutManager
    from daemon.watcher import AgentWatcher

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 300.0
GAUGES_EVERY_S = 10.0
STOP_GRACE_S = 3.0  # well inside the 5 s a service manager allows between SIGTERM and SIGKILL


def configured_instances(config: Config) -> list[Instance]:
    """One row per configured target, state UNKNOWN until polled (URLs redacted: rows are shown)."""
    return [
        Instance(
            name=t.name,
            url=redact_url(t.url),
            engine=t.engine,
            state=InstanceState.UNKNOWN,
            daemon=daemon_id(config.daemon),
        )
        for t in config.targets
    ]


# A target row another daemon of a shared database updated more recently than this is still that daemon's.
CLAIM_FRESH_S = 600.0


def claimed_by(existing: Instance | None, mine: Instance, now: float) -> None:
    """Refuse to poll a target whose name another live daemon of the shared database gives to another server:
    their samples and state would mix under one name. The same name for the same server is a standby pair
    (both daemons may drive its rollouts, daemon/rollouts/lease.py) and is allowed. A daemon silent for
    `CLAIM_FRESH_S` has let its name go."""
    if existing is None or existing.daemon in (None, mine.daemon) or existing.url == mine.url:
        return
    seen = existing.last_seen
    if seen is not None and now - seen < CLAIM_FRESH_S:
        raise UserError(
            f"target {existing.name!r} is {existing.url} for daemon {existing.daemon!r} in this shared database "
            f"(last seen {now - seen:.0f} s ago), {mine.url} here; target names are one namespace there: rename "
            "this daemon's target (e.g. prefix it with the box) or give it the same server"
        )
    log.warning(
        "target %s: taking it over from daemon %s, silent since %s", existing.name, existing.daemon, seen
    )


class DaemonService:
    def __init__(
        self,
        loaded: LoadedConfig,
        bus: Bus | None = None,
        *,
        readonly: bool | None = None,
        watch_if_taken: bool = False,
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.readonly = self.config.daemon.readonly if readonly is None else readonly
        # Another daemon already acts on the database (daemon/single.py): refuse to start, or (the TUI's
        # embedded daemon) only watch, so the two never carry out the same rollout twice.
        self.watch_if_taken = watch_if_taken
        self.taken_by: str | None = None
        self._lock: DaemonLock | None = None
        self.bus = bus or Bus()
        self.store: AsyncStore | None = None
        self.ready = asyncio.Event()
        # Set by _start_parts / _watch_loop; None until then (and for the watcher, with no watch paths).
        self.poller: Poller | None = None
        self.gpus: GpuMonitor | None = None
        self.compiled: dict[str, CompileResult] = {}  # the latest good compile of each watched agent
        self.pipeline: PerformancePipeline | None = None
        self.rollouts: RolloutManager | None = None
        self.watcher: AgentWatcher | None = None
        self.mqtt_bridge: MqttBridge | None = None  # with [mqtt] enabled
        self.metrics: DaemonMetrics | None = None
        self._stop_loops = asyncio.Event()
        self.supervisor: Supervisor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._metrics_server: tuple[WSGIServer, threading.Thread] | None = None
        self.stall_watchdog: LoopStallWatchdog | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then shut down cleanly."""
        if not self.readonly:
            lock = DaemonLock(self.loaded.locations.state_dir, self.loaded.database_url)
            try:
                lock.acquire()
                self._lock = lock
            except AnotherDaemon as exc:
                if not self.watch_if_taken:
                    raise
                self.readonly, self.taken_by = True, str(exc)
                log.warning("%s: this one only watches (read-only)", exc)
        store = Store(self.loaded.database_url)
        self.store = AsyncStore(store)
        if store.migrated_from is not None:
            log.info("migrated the database from schema %s", store.migrated_from)
        # Where the loop is when it is held (a burst of missed polls says only that it was).
        self.stall_watchdog = LoopStallWatchdog(on_stall=self._count_stall)
        try:
            async with self.stall_watchdog.running():
                await self._discover_if_unconfigured()
                await self._register_targets()
                await self.store.add_all(
                    [AuditEvent(actor="daemon", entity="daemon", entity_id="-", action="start")]
                )
                await self._start_parts(store)
                self.ready.set()
                self.bus.publish(topic("daemon", "ready"), DaemonReady(targets=len(self.config.targets)))
                log.info(
                    "daemon running: %d target(s), database %s",
                    len(self.config.targets),
                    redact_url(self.loaded.database_url),
                )
                await stop.wait()
        finally:
            await self._shutdown()

    def _count_stall(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.loop_stalls.observe(seconds)

    # --- parts ------------------------------------------------------------------------------
    async def _start_parts(self, store: Store) -> None:
        from daemon.pipeline import PerformancePipeline
        from daemon.bench.publisher import BenchPublisher
        from daemon.exporter import DaemonMetrics
        from daemon.poller import Poller
        from daemon.rollouts.manager import RolloutManager

        assert self.store is not None
        self.metrics = DaemonMetrics()
        port = self.config.daemon.metrics_port
        if port:
            try:
                self._metrics_server = self.metrics.serve(port=port)
                log.info("daemon metrics on http://127.0.0.1:%d/metrics", port)
            except OSError as exc:  # a second daemon, or the port is taken: run without the exporter
                log.warning("daemon metrics port %d unavailable (%s); exporter off", port, exc)

        self.pipeline = PerformancePipeline(self.config, self.store, bus=self.bus, metrics=self.metrics)
        await self.pipeline.restore()
        if self.config.gpu.enabled:
            from daemon.gpu import GpuMonitor

            self.gpus = GpuMonitor(
                self.bus, [(t.name, t.url) for t in self.config.targets], self.config.gpu.poll_interval_s
            )
            self._spawn("gpu", self.gpus.run)
        self.poller = Poller(
            self.config,
            self.store,
            on_sample=self.pipeline.on_sample,
            on_status=self.pipeline.on_status,
            metrics=self.metrics,
            device_of=self.gpus.device_of if self.gpus is not None else None,
        )
        self.pipeline.attach(self.poller)
        self._spawn("poller", self.poller.run)

        rollout_dir = self.loaded.locations.state_dir / "rollouts"
        if not self.readonly:  # blue-green targets' clients need their front before any rollout
            from daemon.actuators.blue_green import ensure_fronts

            for problem in await ensure_fronts(self.config.targets, rollout_dir):
                log.warning("%s", problem)
        self.rollouts = RolloutManager(
            self.config,
            store,
            self.bus,
            state_dir=rollout_dir,
            readonly=self.readonly,
            on_converged=self.poller.wake,
        )
        self._spawn("rollouts", self.rollouts.run)
        if self.config.webhooks and not self.readonly:  # only the daemon that acts tells: no duplicates
            from daemon.auth import read_secret
            from daemon.webhooks import WebhookNotifier

            secrets = {
                i: read_secret(hook, f"webhooks[{i}]")
                for i, hook in enumerate(self.config.webhooks)
                if hook.secret_file or hook.secret_env
            }
            self._spawn("webhooks", WebhookNotifier(self.config.webhooks, self.bus, secrets=secrets).run)

        if self.config.watch.paths:
            self._spawn("watcher", self._watch_loop)
        self._spawn("retention", self._retention_loop)
        self._spawn("gauges", self._gauges_loop)
        # `charter-tui bench` runs in its own process and only writes the store; this carries its
        # results onto the bus (and so to the TUI and over MQTT).
        bench = BenchPublisher(self.store, self.bus)
        await bench.start()  # before `ready`, so the TUI's snapshot holds every run it will not publish
        self._spawn("bench", bench.run)
        # Commands from outside (MQTT, HTTP) must be signed by a configured identity; with none, all are
        # refused. One verifier for both: a nonce used on one channel cannot be replayed on the other.
        verifier = None
        if self.config.auth.identities and (self.config.http.port or self.config.mqtt.enabled):
            from daemon.auth import CommandVerifier

            verifier = CommandVerifier(self.config.auth, daemon_id(self.config.daemon))
        if self.config.http.port:
            from daemon.http_api import HttpApi, build_app

            api = build_app(
                self.config,
                self.store,
                self.bus,
                verifier=verifier,
                on_refused=self.rollouts.refused,
                configured=self.configured_instances,
            )
            self._spawn("http", HttpApi(self.config.http, api).run)
        if self.config.mqtt.enabled:
            from daemon.mqtt_bridge import MqttBridge
            from daemon.mqtt_session import broker_options

            broker_options(self.config.mqtt)  # a bad password or TLS file stops the start with its reason
            bridge = self.mqtt_bridge = MqttBridge(
                self.bus,
                self.config.mqtt,
                daemon_id(self.config.daemon),
                verifier=verifier,
                on_refused=self.rollouts.refused,
            )
            if self.metrics is not None:
                self.metrics.watch_mqtt_outbox(lambda: bridge.dropped)
            self._spawn("mqtt", bridge.run)

    def _spawn(self, name: str, loop: Loop) -> None:
        # Supervised: an exception is logged, counted, published (daemon/health) and the loop restarted
        # with backoff; one bad message can no longer stop e.g. automatic rollback for good.
        if self.supervisor is None:
            metrics = self.metrics
            self.supervisor = Supervisor(
                self.bus,
                self._stop_loops,
                on_crash=(lambda n: metrics.loop_crashes.labels(n).inc()) if metrics else None,
                on_degraded=(lambda d: metrics.degraded.set(1.0 if d else 0.0)) if metrics else None,
            )
        self._tasks.append(self.supervisor.spawn(name, loop))

    def configured_instances(self) -> list[Instance]:
        return configured_instances(self.config)

    async def _discover_if_unconfigured(self) -> None:
        """No targets configured: poll the servers found on this box (kept in memory, not written)."""
        if self.config.targets or not self.config.daemon.discover:
            return
        from daemon.discovery import discover, found_targets

        targets = found_targets(await discover(exclude_ports=[self.config.daemon.metrics_port]))
        if targets:
            self.config = self.config.model_copy(update={"targets": targets})
            log.info(
                "no targets configured; polling the %d found on this machine: %s "
                "(`charter-tui discover --write` keeps them)",
                len(targets),
                ", ".join(f"{t.name} {t.url}" for t in targets),
            )
        else:
            log.info("no targets configured and no inference server found listening on this machine")

    async def _register_targets(self) -> None:
        assert self.store is not None
        store = self.store.store
        for instance in self.configured_instances():
            for attempt in (1, 2):
                if store.shared:
                    found = await self.store.call(
                        store.all, Instance, Instance.name == instance.name, limit=1
                    )
                    claimed_by(found[0] if found else None, instance, time.time())
                try:
                    await self.store.call(store.merge, instance)
                    break
                except IntegrityError:
                    # Two daemons of a fleet starting together on one database: both read no row, and the
                    # second insert loses. Read again (whose is it now?) and write as an update.
                    if attempt == 2:
                        raise
                    log.info(
                        "target %s was registered by another daemon meanwhile; reading it again",
                        instance.name,
                    )

    # --- what a UI reads (daemon/views.py) --------------------------------------------------
    async def snapshot(self) -> list[Event]:
        """Everything a freshly started UI should show at once, as the events that would have built it."""
        await self.ready.wait()
        if self.store is None:
            return []
        names = {t.name for t in self.config.targets}
        events = await self.store.call(read_snapshot, self.store.store, time.time(), names)
        if self.gpus is not None and self.gpus.latest is not None:  # not stored: the latest reading
            events.append(Event(GPU_TOPIC, self.gpus.latest))
        return events

    async def history(self, instance: str, since: float, signals: Sequence[str]) -> History:
        """(ts, {signal: value}) rows of one target, oldest first: per-minute aggregates, then raw samples."""
        if self.store is None:
            return []
        return await self.store.call(read_history, self.store.store, instance, since, signals)

    async def _watch_loop(self, stop: asyncio.Event) -> None:
        from compiler.api import CompileOptions
        from compiler.callsites import DEFAULT_NAME_PATTERNS
        from daemon.compile_worker import CompileLimits
        from daemon.adapters import AdapterError, load_adapters
        from daemon.watcher import AgentWatcher

        assert self.store is not None
        watch = self.config.watch
        try:
            adapters = load_adapters(watch.adapters)
        except AdapterError as exc:
            log.error("%s; compiling without users' adapters", exc)
            adapters = ()
        options = CompileOptions(
            name_patterns=(*DEFAULT_NAME_PATTERNS, *watch.llm_call_patterns), adapters=adapters
        )
        paths = [Path(p).expanduser() for p in watch.paths]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            log.warning("watch paths that do not exist (yet): %s", ", ".join(missing))
        limits = CompileLimits(timeout_s=watch.compile_timeout_s, max_file_bytes=watch.max_file_bytes)
        self.watcher = AgentWatcher(
            [p for p in paths if p.exists()], options, debounce_ms=watch.debounce_ms, limits=limits
        )
        async for event in self.watcher.events(stop):
            log.info("compile: %s", event.summary())
            record = CompileRecord(
                path=str(event.path),
                content_hash=self.watcher.hashes.get(event.path, ""),
                ok=event.error is None,
                error=event.error,
                result=event.result.model_dump(mode="json") if event.result is not None else {},
            )
            await self.store.add_all([record])
            self.bus.publish(topic("compile", str(event.path)), record)
            if event.error is None and event.result is not None:
                self.compiled[str(event.path)] = event.result
                if self.pipeline is not None:
                    await self.pipeline.on_compile(record.result)

    async def _retention_loop(self, stop: asyncio.Event) -> None:
        assert self.store is not None
        storage = self.config.storage
        while not stop.is_set():
            folded, dropped = await self.store.call(
                self.store.store.apply_retention,
                storage.raw_retention_hours,
                storage.aggregate_retention_days,
            )
            if folded or dropped:
                log.info("retention: folded %d raw samples, dropped %d old aggregates", folded, dropped)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETENTION_EVERY_S)

    async def _gauges_loop(self, stop: asyncio.Event) -> None:
        """Rollouts by state and each target's compiler ceiling for the daemon's own /metrics (the manager's
        loop stays free of exporting)."""
        from sqlalchemy import func
        from sqlmodel import select

        from daemon.ceiling import target_ceiling
        from daemon.models import Rollout

        assert self.store is not None and self.metrics is not None
        store = self.store.store  # bound here: the assert above does not narrow inside the closure

        def count_by_state() -> dict[str, int]:
            with store.session() as s:
                return dict(s.exec(select(Rollout.state, func.count()).group_by(Rollout.state)).all())

        while not stop.is_set():
            self.metrics.set_rollouts(await self.store.call(count_by_state))
            if self.poller is not None:  # the ceiling beside each target's hit rate (Grafana, docs/grafana)
                self.metrics.set_ceilings(
                    {
                        name: target_ceiling(status.instance_row(), self.compiled)
                        for name, status in self.poller.status.items()
                    }
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), GAUGES_EVERY_S)

    async def _shutdown(self) -> None:
        self._stop_loops.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
            for task in pending:
                log.warning(
                    "daemon loop %s did not stop in %.0f s; cancelling it", task.get_name(), STOP_GRACE_S
                )
            await cancel_and_wait(pending)
        self._tasks.clear()
        if self._metrics_server is not None:
            server, thread = self._metrics_server
            server.shutdown()
            thread.join(timeout=1)
        if self.store is not None:
            await self.store.add_all(
                [AuditEvent(actor="daemon", entity="daemon", entity_id="-", action="stop")]
            )
            self.store.close()
            log.info("daemon stopped")
        if self._lock is not None:
            self._lock.release()  # last: nothing of this daemon acts any more
            self._lock = None
