"""When a failing target is polled again: exponential backoff with jitter, and a circuit breaker.

The poller's scheduler asks this module after each poll; the rules are kept apart so they can be read and
tested without a loop or a server (tests/daemon/test_poller_faults.py):
- a failure is retried after `backoff_delay`: doubling from the poll interval, capped at `MAX_BACKOFF_S`,
  half of it random so targets that failed together do not retry in lockstep;
- after `BREAKER_THRESHOLD` consecutive failures the circuit opens: no request at all for
  `BREAKER_COOLDOWN_S`, then one trial poll (half-open), whose failure re-opens it at once;
- one good poll closes it and resets the count.
The state (`consecutive_failures`, `breaker_open_until`) is kept on the target's live status, where the
daemon and `probe` show it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

BREAKER_THRESHOLD = 5  # consecutive failures that open the circuit
BREAKER_COOLDOWN_S = 30.0
MAX_BACKOFF_S = 30.0


class BreakerState(Protocol):
    """The fields of a target's status the breaker reads and writes (`poller.TargetStatus`)."""

    consecutive_failures: int
    breaker_open_until: float | None  # loop time


def backoff_delay(
    interval_s: float, failures: int, rng: random.Random, cap_s: float = MAX_BACKOFF_S
) -> float:
    """Exponential backoff with "equal jitter": half the delay fixed, half random, so many targets
    that failed together (a shared switch rebooting) do not retry in lockstep."""
    delay: float = min(cap_s, interval_s * 2 ** max(failures - 1, 0))
    return delay / 2 + rng.uniform(0, delay / 2)


@dataclass(frozen=True)
class Breaker:
    threshold: int = BREAKER_THRESHOLD
    cooldown_s: float = BREAKER_COOLDOWN_S

    @staticmethod
    def open_until(state: BreakerState, now: float) -> float | None:
        """While the circuit is open, when it lets the trial poll through; None when a poll may go now."""
        until = state.breaker_open_until
        return until if until is not None and now < until else None

    @staticmethod
    def succeeded(state: BreakerState) -> None:
        state.consecutive_failures = 0
        state.breaker_open_until = None

    @staticmethod
    def failed(state: BreakerState) -> None:
        state.consecutive_failures += 1

    def retry_at(
        self, state: BreakerState, now: float, interval_s: float, rng: random.Random
    ) -> tuple[float, bool]:
        """After a failed poll at `now`: when to poll next, and whether the circuit has just opened."""
        if state.consecutive_failures >= self.threshold:
            # Open: no request at all until the cooldown ends, then one trial poll (half-open); its
            # failure re-opens at once since the count stays high.
            state.breaker_open_until = now + self.cooldown_s
            return state.breaker_open_until, True
        return now + backoff_delay(interval_s, state.consecutive_failures, rng), False
