"""Supervised loops: a loop that raises is restarted, counted and reported, and a crash loop marks the
daemon degraded (daemon/supervisor.py), in the real DaemonService with its real exporter."""

from __future__ import annotations

import asyncio
import sys

from daemon.bus import Bus
from daemon.supervisor import HEALTH_TOPIC, DaemonHealth, Supervisor, cancel_and_wait, until_stopped


async def test_a_crashing_loop_is_restarted_counted_and_marks_the_daemon_degraded() -> None:
    bus = Bus()
    health = bus.subscribe(HEALTH_TOPIC)
    stop = asyncio.Event()
    crashes: list[str] = []
    degraded: list[bool] = []
    runs = {"flaky": 0, "steady": 0}
    steady_started = asyncio.Event()

    async def flaky(stop: asyncio.Event) -> None:
        runs["flaky"] += 1
        if runs["flaky"] <= 3:
            raise OverflowError(
                "int too large to convert to SQLite INTEGER"
            )  # the message that killed it once
        await stop.wait()

    async def steady(stop: asyncio.Event) -> None:
        runs["steady"] += 1
        steady_started.set()
        await stop.wait()

    sup = Supervisor(bus, stop, on_crash=crashes.append, on_degraded=degraded.append, backoff_first_s=0.01)
    tasks = [sup.spawn("flaky", flaky), sup.spawn("steady", steady)]
    reports: list[DaemonHealth] = []
    while runs["flaky"] < 4:
        reports.append((await asyncio.wait_for(health.get(), 10)).payload)
    await asyncio.wait_for(steady_started.wait(), 10)

    assert crashes == ["flaky"] * 3, "each crash counted once, under the loop's name"
    loop = sup.health.loops["flaky"]
    assert (
        loop.crashes == 3 and loop.last_error == "OverflowError: int too large to convert to SQLite INTEGER"
    )
    assert loop.degraded and sup.health.status == "degraded", "three crashes in five minutes: degraded"
    assert degraded[-1] is True and degraded[0] is False, "the first crash alone does not degrade the daemon"
    assert [r.loops["flaky"].crashes for r in reports if r.loops["flaky"].restarting] == [1, 2, 3]
    assert sup.health.summary() == "degraded: flaky"
    assert runs["steady"] == 1 and sup.health.loops["steady"].crashes == 0, "the other loop never noticed"

    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert runs["flaky"] == 4, "a loop that returns after stop is not restarted"


async def test_cancellation_is_not_a_crash() -> None:
    bus, stop = Bus(), asyncio.Event()
    crashes: list[str] = []

    async def forever(stop: asyncio.Event) -> None:
        await asyncio.Event().wait()

    sup = Supervisor(bus, stop, on_crash=crashes.append)
    task = sup.spawn("forever", forever)
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and crashes == [], "stopping the daemon still cancels loops; nothing restarts"


async def test_cancel_and_wait_ends_a_task_whose_cancellation_wait_for_dropped() -> None:
    """Python 3.11's `asyncio.wait_for` returns its result, dropping the cancellation, when the cancel
    lands as its inner future completes; the task then waits on at its next await. A shutdown that
    cancels once and gathers hangs forever there (it did, in the MQTT bridge): this one cancels again."""
    inner = asyncio.get_running_loop().create_future()
    went_on = asyncio.Event()

    async def publisher() -> None:
        await asyncio.wait_for(inner, 10)  # aiomqtt's publish waits so for its confirmation
        went_on.set()
        await asyncio.sleep(3600)  # the next `outbox.get()`

    task = asyncio.create_task(publisher())
    await asyncio.sleep(0)
    inner.set_result(None)
    await asyncio.wait_for(cancel_and_wait([task]), 10)
    assert task.cancelled()
    if sys.version_info < (3, 12):
        assert went_on.is_set(), "the first cancellation was dropped, as this test means to show"


async def test_until_stopped_cancels_the_work_when_stop_comes_first() -> None:
    stop = asyncio.Event()
    cancelled = asyncio.Event()

    async def long_step() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert await asyncio.wait_for(until_stopped(long_step(), stop), 10) is False
    assert cancelled.is_set()
    assert await until_stopped(asyncio.sleep(0), asyncio.Event()) is True
