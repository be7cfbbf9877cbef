"""Full garbage collections run when the user is not typing, not in the middle of a key press.

CPython's cyclic GC runs a full (generation 2) collection whenever enough objects survive long
enough; with the TUI's ~230k tracked objects (Textual, Rich, pydantic, SQLAlchemy and the live
state) each one walked all of them and stalled the event loop ~160 ms, which was the whole p95 of
key-press latency in benchmarks/results/tui.md. So:

- when the app mounts (before the first frame, so no key waits for it), what is alive is frozen
  (`gc.freeze`): modules, classes and the app itself live as long as the process, and full
  collections no longer walk them;
- automatic full collections are switched off (young generations still collect as usual, which
  is where almost all garbage dies), and a timer runs one when no key has been pressed for
  `QUIET_S`, at most every `EVERY_S`, and at the latest after `AT_MOST_S` even while typing,
  so cyclic garbage that reached the old generation is still reclaimed.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

QUIET_S = 2.0
EVERY_S = 60.0
AT_MOST_S = 300.0
NEVER = 1_000_000  # a generation-2 threshold that automatic collection never reaches


class IdleCollector:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_input = clock()
        self.last_full = clock()
        self._saved: tuple[int, int, int] | None = None

    def start(self) -> None:
        """Freeze what is alive now and take full collections off the automatic schedule."""
        gc.collect()  # what is garbage now must not be frozen (it would never be freed)
        gc.freeze()
        self._saved = gc.get_threshold()
        young, middle, _ = self._saved
        gc.set_threshold(young, middle, NEVER)
        self.last_full = self.clock()
        log.debug("gc: froze %d objects; full collections on idle", gc.get_freeze_count())

    @property
    def started(self) -> bool:
        return self._saved is not None

    def stop(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            gc.unfreeze()
            self._saved = None

    def saw_input(self) -> None:
        self.last_input = self.clock()

    def due(self) -> bool:
        now = self.clock()
        since_full = now - self.last_full
        if since_full >= AT_MOST_S:
            return True
        return since_full >= EVERY_S and now - self.last_input >= QUIET_S

    def tick(self) -> bool:
        """Run a full collection if one is due (see `due`); True if it ran."""
        if self._saved is None or not self.due():
            return False
        t0 = time.perf_counter()
        found = gc.collect()
        self.last_full = self.clock()
        log.debug("gc: full collection freed %d objects in %.0f ms", found, (time.perf_counter() - t0) * 1000)
        return True
