"""Supervised daemon loops: a loop that raises is logged, counted, reported and restarted with backoff.

One message once stopped the rollouts loop for good (automatic rollback included) while the daemon
kept running and looked healthy. Now every loop the service starts runs under `Supervisor.spawn`:

- an exception is logged with its traceback, counted (`charter_daemon_loop_crashes_total{loop}`) and
  published as `DaemonHealth` on `charter/v1/daemon/health`, which the TUI's status bar shows;
- the loop is started again after a capped, doubling backoff (1 s .. 60 s), reset once it has run
  cleanly for a while;
- a loop that crashed `DEGRADED_AFTER` times within `DEGRADED_WINDOW_S` marks the daemon degraded
  (`charter_daemon_degraded` = 1) until it has run `HEALTHY_AFTER_S` without crashing.

A loop that returns normally has finished (the stop event was set, or it had nothing to do) and is not
restarted. Cancellation is never caught: stopping the daemon still cancels everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from daemon.bus import Bus, topic
from daemon.errors import shown

log = logging.getLogger(__name__)

Loop = Callable[[asyncio.Event], Awaitable[None]]

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
DEGRADED_AFTER = 3
DEGRADED_WINDOW_S = 300.0
HEALTHY_AFTER_S = 120.0  # a restarted loop that runs this long without crashing counts as healthy again
HEALTH_TOPIC = topic("daemon", "health")

T = TypeVar("T")


class LoopHealth(BaseModel):
    crashes: int = 0
    last_error: str | None = None
    last_crash_ts: float | None = None
    restarting: bool = False
    degraded: bool = False


class DaemonHealth(BaseModel):
    """The daemon's own health, as published on `charter/v1/daemon/health`."""

    status: Literal["ok", "degraded"] = "ok"
    loops: dict[str, LoopHealth] = {}

    def summary(self) -> str:
        bad = sorted(name for name, loop in self.loops.items() if loop.degraded or loop.restarting)
        return "ok" if not bad else f"{self.status}: {', '.join(bad)}"


class Supervisor:
    def __init__(
        self,
        bus: Bus,
        stop: asyncio.Event,
        *,
        on_crash: Callable[[str], None] | None = None,
        on_degraded: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.time,
        backoff_first_s: float = BACKOFF_FIRST_S,
    ) -> None:
        self.bus = bus
        self.stop = stop
        self.on_crash = on_crash or (lambda _name: None)
        self.on_degraded = on_degraded or (lambda _degraded: None)
        self.clock = clock
        self.backoff_first_s = backoff_first_s
        self.health = DaemonHealth()
        self.tasks: list[asyncio.Task[None]] = []

    def spawn(self, name: str, loop: Loop) -> asyncio.Task[None]:
        self.health.loops[name] = LoopHealth()
        task = asyncio.create_task(self._supervise(name, loop), name=f"charter:{name}")
        self.tasks.append(task)
        return task

    async def _supervise(self, name: str, loop: Loop) -> None:
        delay = self.backoff_first_s
        recent: deque[float] = deque()
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                await loop(self.stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the point: no exception ends a daemon loop
                log.exception("daemon loop %r crashed; restarting in %.0f s", name, delay)
                if time.monotonic() - started >= HEALTHY_AFTER_S:
                    delay = self.backoff_first_s  # it ran well for a while: a fresh crash, not a crash loop
                now = self.clock()
                recent.append(now)
                while recent and recent[0] < now - DEGRADED_WINDOW_S:
                    recent.popleft()
                health = self.health.loops[name]
                health.crashes += 1
                health.last_error = shown(f"{type(exc).__name__}: {exc}", 300)
                health.last_crash_ts = now
                health.restarting = True
                health.degraded = len(recent) >= DEGRADED_AFTER
                self.on_crash(name)
                self._publish()
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=delay)
                return
            except TimeoutError:
                pass
            delay = min(delay * 2, BACKOFF_MAX_S)
            self.health.loops[name].restarting = False
            asyncio.get_running_loop().call_later(HEALTHY_AFTER_S, self._maybe_healthy, name, now)
            self._publish()

    def _maybe_healthy(self, name: str, crash_ts: float) -> None:
        health = self.health.loops.get(name)
        if health is not None and health.degraded and health.last_crash_ts == crash_ts:
            health.degraded = False  # no crash since the restart this timer was set for
            self._publish()

    def _publish(self) -> None:
        degraded = any(loop.degraded for loop in self.health.loops.values())
        self.health.status = "degraded" if degraded else "ok"
        self.on_degraded(degraded)
        self.bus.publish(HEALTH_TOPIC, self.health.model_copy(deep=True))


async def until_stopped(work: Awaitable[T], stop: asyncio.Event) -> bool:
    """Run `work` until it ends or `stop` is set, whichever is first: True if it ended.

    Its errors propagate. Stopped first, it is cancelled and awaited, so nothing of it runs on after
    this returns — a SIGTERM must not wait for a step that can take minutes (a server relaunch).
    """
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
            return True
        return False
    finally:
        await cancel_and_wait([task, stopped])


CANCEL_AGAIN_EVERY_S = 1.0


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel `tasks` and return once every one has ended; their errors are retrieved, not raised.

    A task still running a second later is cancelled again: Python 3.11's `asyncio.wait_for` (which
    aiomqtt awaits on every publish) drops a cancellation that lands as its inner future completes, and
    the task then waits forever at its next await. Seen: the MQTT bridge's shutdown hung in 1 run of 6
    of tests/daemon_bus/test_command_auth.py on a loaded machine, its publisher back on `outbox.get()`.
    """
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=CANCEL_AGAIN_EVERY_S)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: asyncio would otherwise log "exception was never retrieved"
