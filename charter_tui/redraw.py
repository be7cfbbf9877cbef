"""When a screen redraws: what changed since it last drew, and the once-a-second limit on samples.

With 100 targets polled at 1 Hz, samples arrive continuously; redrawing 100 rows of sparklines
on every tick (4 a second) would cost CPU for no information, so routine changes (samples, the
clock, instance state) redraw at most once a second. Anything else (a rollout, a compile, a
bottleneck) redraws on the next tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ROUTINE = frozenset({"sample", "clock", "instance"})
SAMPLE_REDRAW_S = 1.0


@dataclass
class RedrawSchedule:
    dirty: set[str] = field(default_factory=set)
    last_routine: float = -math.inf

    def mark(self, kind: str) -> None:
        self.dirty.add(kind)

    def take(self, now: float) -> set[str] | None:
        """The kinds to redraw now, or None to wait (nothing changed, or only routine changes
        within a second of the last routine redraw)."""
        if not self.dirty:
            return None
        if self.dirty <= ROUTINE and now - self.last_routine < SAMPLE_REDRAW_S:
            return None
        if self.dirty & ROUTINE:
            self.last_routine = now
        changed, self.dirty = self.dirty, set()
        return changed

    @property
    def only_routine_pending(self) -> bool:
        """Only routine changes wait: the screen is as current as a visible one would be."""
        return self.dirty <= ROUTINE

    def reset(self) -> None:
        """Forget the limit: the next `take` returns whatever is pending (tests settle with it)."""
        self.last_routine = -math.inf
