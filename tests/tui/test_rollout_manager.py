"""The TUI's rollout keys against the real rollout manager on the same bus (knob command actuator).

No fixtures stand in for the manager here: `a` then `y` publishes the command, the manager
validates it against its state machine, moves the rollout and publishes it back, and the TUI
shows what the manager reports, including its refusals.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from charter_tui.app import CharterApp
from charter_tui.compose import pinned_app
from daemon.config import LoadedConfig
from daemon.rollouts import commands as cmd
from daemon.rollouts.manager import RolloutManager
from daemon.store import Store
from tests.rollouts.helpers import knob_config, knob_value
from tests.tui.helpers import settle, static_text, table_rows


async def wait_for(pilot, app: CharterApp, check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        await settle(app, pilot)
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out; focus {app.focused} table {getattr(app.screen, '_table', None)}; "
                f"{table_rows(app, '#queue')} {app.state.rollouts} "
                f"screen:\n{static_text(app, '#rollout')}"
            )
        await pilot.pause(0.1)


async def test_approve_with_a_then_y_drives_the_real_manager(make_loaded, tmp_path: Path) -> None:
    loaded: LoadedConfig = make_loaded()
    config, states = knob_config(tmp_path, ["a"])
    store = Store(loaded.database_url)
    app = pinned_app(loaded.model_copy(update={"config": config}))
    manager = RolloutManager(config, store, app.source.bus, state_dir=tmp_path)
    row = cmd.propose(
        manager.repo,
        config,
        targets=["a"],
        changes=[{"param": "batch", "value": "16"}],
        actor="optimizer",
        reason="queue builds up on a",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("5")
            await wait_for(pilot, app, lambda: str(row.id) in table_rows(app, "#queue"))
            assert table_rows(app, "#queue")[str(row.id)][1] == " PENDING "
            detail = static_text(app, "#rollout")
            assert "+ batch = 16" in detail and "why              queue builds up on a" in detail
            await pilot.press("a")
            await settle(app, pilot)
            await pilot.press("y")
            # The manager approves, then starts the canary on its own.
            await wait_for(
                pilot,
                app,
                lambda: (
                    "CANARY" in static_text(app, "#rollout") or str(row.id) in table_rows(app, "#history")
                ),
            )
            detail = static_text(app, "#rollout")
            assert "approve PENDING_APPROVAL → APPROVED  “from charter-tui”" in detail
            assert "canary   a" in detail
            # A refused command comes back as an error, not as a silent no-op.
            app.send_rollout_command(row.id, "approve")
            await wait_for(pilot, app, lambda: any("refused" in str(n.message) for n in app._notifications))
            message = next(str(n.message) for n in app._notifications if "refused" in str(n.message))
            assert message.startswith(
                f"approve of rollout #{row.id} refused: cannot approve rollout {row.id}"
            )
            await pilot.press("q")
        assert knob_value(states["a"]) in ("8", "16")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        store.close()


async def test_reject_resume_and_rollback_keys_against_the_real_manager(make_loaded, tmp_path: Path) -> None:
    loaded: LoadedConfig = make_loaded()
    # A long canary window keeps the approved rollout in CANARY while the test pauses and resumes it.
    config, states = knob_config(tmp_path, ["a", "b"], canary_window_s=60.0)
    store = Store(loaded.database_url)
    app = pinned_app(loaded.model_copy(update={"config": config}))
    manager = RolloutManager(config, store, app.source.bus, state_dir=tmp_path)
    first = cmd.propose(
        manager.repo, config, targets=["a"], changes=[{"param": "batch", "value": "16"}], actor="x"
    )
    second = cmd.propose(
        manager.repo, config, targets=["b"], changes=[{"param": "batch", "value": "32"}], actor="x"
    )
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))

    def state_of(rid: int) -> str:
        for tid in ("#queue", "#history"):
            row = table_rows(app, tid).get(str(rid))
            if row:
                return row[1].strip()
        return ""

    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("5")
            await wait_for(
                pilot, app, lambda: list(table_rows(app, "#queue")) == [str(first.id), str(second.id)]
            )
            # r, then n: nothing happens; r, then y: rejected, into the history.
            await pilot.press("r")
            await settle(app, pilot)
            await pilot.press("n")
            await settle(app, pilot)
            assert state_of(first.id) == "PENDING"
            await pilot.press("r")
            await settle(app, pilot)
            await pilot.press("y")
            await wait_for(pilot, app, lambda: state_of(first.id) == "REJECTED")
            # Approve the other: the manager applies it to its canary and waits out the window.
            await pilot.press("a")
            await settle(app, pilot)
            await pilot.press("y")
            await wait_for(
                pilot,
                app,
                lambda: (
                    state_of(second.id) == "CANARY"
                    and "  b               applied" in static_text(app, "#rollout")
                ),
                timeout=30,
            )
            # p pauses (no dialog: reversible), p again resumes where it was.
            await pilot.press("p")
            await wait_for(pilot, app, lambda: state_of(second.id) == "PAUSED")
            assert "pause_reason  manual" in static_text(app, "#rollout")
            await pilot.press("p")
            await wait_for(pilot, app, lambda: state_of(second.id) == "CANARY")
            # b asks, then rolls back: the manager restores the recorded value.
            await pilot.press("b")
            await settle(app, pilot)
            await pilot.press("y")
            await wait_for(pilot, app, lambda: state_of(second.id) == "ROLLED_BACK", timeout=60)
            await pilot.press("tab", "up")  # the history, newest first: the rolled-back one is above
            await wait_for(pilot, app, lambda: static_text(app, "#rollout").startswith(f"#{second.id} "))
            detail = static_text(app, "#rollout")
            for line in (
                "approve PENDING_APPROVAL → APPROVED",
                "pause CANARY → PAUSED",
                "resume PAUSED → CANARY",
                "rollback CANARY → ROLLING_BACK",  # asked for: not a failure
            ):
                assert line in detail, line
            await pilot.press("q")
        assert knob_value(states["a"]) == "8", "the rejected change never ran"
        assert knob_value(states["b"]) == "8", "the rolled-back change was restored"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        store.close()
