"""Noticing a held event loop: every poll, timeout and command shares one loop, so one call that
blocks it (a synchronous database wait, a long computation, a process starved of CPU) makes every
target miss its polls at once, each `asyncio.timeout` firing together when the loop turns again.

The soak showed such bursts without saying where the loop was held. `LoopStallWatchdog` says it:

    watchdog = LoopStallWatchdog(on_stall=metrics.loop_stalls.inc)
    async with watchdog.running():      # a heartbeat task on the loop, a checking thread beside it
        ...

- the loop beats every `tick_s`; a thread checks the beat; once the beat is `threshold_s` late it
  logs where the loop's thread is right now (its stack, innermost frames last), once per stall;
- when the beat comes back it logs how long the loop was held and calls `on_stall(seconds)`;
- if the checking thread itself woke late, the whole process was held (the GIL kept by C code, or
  the machine out of CPU), and the log says so: then the stack shows the loop after the fact.

A thread and not a loop task because a held loop cannot observe itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable

log = logging.getLogger(__name__)

THRESHOLD_S = 1.0  # a poll's timeout is 2 s by default: report well before polls start failing
TICK_S = 0.1
STACK_FRAMES = 14


class LoopStallWatchdog:
    def __init__(
        self,
        *,
        threshold_s: float = THRESHOLD_S,
        tick_s: float = TICK_S,
        on_stall: Callable[[float], None] | None = None,
    ) -> None:
        self.threshold_s = threshold_s
        self.tick_s = tick_s
        self.on_stall = on_stall or (lambda _seconds: None)
        self.stalls: list[float] = []  # seconds each stall lasted, for tests and the soak
        self.max_lag_s = 0.0
        self._beat = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._done = threading.Event()
        self._stall_started: float | None = None  # beat time of the stall being reported

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LoopStallWatchdog]:
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._done.clear()
        beat = asyncio.create_task(self._heartbeat(), name="charter:stall-heartbeat")
        thread = threading.Thread(target=self._watch, name="charter-stall-watchdog", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._done.set()
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            await asyncio.to_thread(thread.join, 2 * self.tick_s + 1)

    async def _heartbeat(self) -> None:
        while True:
            now = time.monotonic()
            self._ended(now)
            self._beat = now
            await asyncio.sleep(self.tick_s)

    def _ended(self, now: float) -> None:
        """On the loop: a beat after a reported stall closes it."""
        started = self._stall_started
        if started is None:
            return
        self._stall_started = None
        held = now - started
        self.stalls.append(held)
        log.warning("the event loop was held for %.2f s (polls, commands and timers all waited)", held)
        self.on_stall(held)

    def _watch(self) -> None:
        expected = time.monotonic() + self.tick_s
        while not self._done.wait(self.tick_s):
            now = time.monotonic()
            own_lateness = now - expected
            expected = now + self.tick_s
            beat = self._beat
            lag = now - beat
            self.max_lag_s = max(self.max_lag_s, lag)
            if lag < self.threshold_s or self._stall_started == beat:
                continue
            self._stall_started = beat
            whole = (
                f"; this watchdog thread was itself {own_lateness:.2f} s late, so the whole process was "
                "held (C code keeping the GIL, or no CPU): the stack below is where the loop is now"
            )
            log.warning(
                "the event loop has been held for %.2f s%s, in:\n%s",
                lag,
                whole if own_lateness >= self.threshold_s / 2 else "",
                self._loop_stack(),
            )

    def _loop_stack(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)  # noqa: SLF001 - the documented way to see another thread
        if frame is None:
            return "  (the loop's thread has no frame)"
        return "".join(traceback.format_stack(frame)[-STACK_FRAMES:]).rstrip()
