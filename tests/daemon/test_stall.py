"""The loop-stall watchdog names the code holding the event loop, and stays quiet when nothing does."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from daemon.stall import LoopStallWatchdog


def _hold_the_loop_synchronously(seconds: float) -> None:
    time.sleep(seconds)  # what a synchronous database wait or a long computation does to the loop


async def test_a_held_loop_is_reported_with_the_stack_that_holds_it(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[float] = []
    watchdog = LoopStallWatchdog(threshold_s=0.3, tick_s=0.05, on_stall=seen.append)
    with caplog.at_level(logging.WARNING, logger="daemon.stall"):
        async with watchdog.running():
            await asyncio.sleep(0.2)
            _hold_the_loop_synchronously(1.2)
            await asyncio.sleep(0.3)  # the beat comes back and closes the stall
    during = [r.getMessage() for r in caplog.records if "has been held" in r.getMessage()]
    assert len(during) == 1, caplog.text  # once per stall, not once per check
    assert "_hold_the_loop_synchronously" in during[0] and "time.sleep" in during[0]
    assert len(seen) == 1 and 1.1 <= seen[0] < 3.0, seen
    assert watchdog.stalls == seen
    assert any("was held for" in r.getMessage() for r in caplog.records)


async def test_a_loop_that_keeps_turning_reports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    watchdog = LoopStallWatchdog(threshold_s=0.5, tick_s=0.05)
    with caplog.at_level(logging.WARNING, logger="daemon.stall"):
        async with watchdog.running():
            for _ in range(20):
                _hold_the_loop_synchronously(0.02)  # short work between awaits is normal
                await asyncio.sleep(0.02)
    assert watchdog.stalls == []
    assert "held" not in caplog.text
