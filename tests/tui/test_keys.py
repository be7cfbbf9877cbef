"""The keyboard grammar: number keys, ? help, : palette, / filter, esc, q, the rollout keys with
their y/n confirmation, read-only mode and remapping from the config."""

from __future__ import annotations

import time

from textual.widgets import DataTable

from charter_tui.app import CharterApp
from charter_tui.redraw import ROUTINE, SAMPLE_REDRAW_S
from charter_tui.screens.confirm import ConfirmScreen
from charter_tui.screens.help import HelpScreen
from daemon.bus import Event, topic
from daemon.models import MetricSample, Rollout
from tests.tui.fixtures import NOW
from tests.tui.helpers import screen_text, settle, static_text, table_rows


def command_log(app: CharterApp) -> list[Event]:
    """Everything the app publishes on the command topics, as the rollout manager would receive it."""
    sub = app.source.bus.subscribe("charter/v1/command/#")
    app._test_commands = sub  # type: ignore[attr-defined]
    return []


def drain(app: CharterApp) -> list[Event]:
    sub = app._test_commands  # type: ignore[attr-defined]
    out = []
    while not sub.queue.empty():
        out.append(sub.queue.get_nowait())
    return out


async def test_number_keys_switch_screens_and_the_top_bar_follows(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        expected = {
            "1": "#instances",
            "2": "#files",
            "3": "#cache-targets",
            "4": "#bottlenecks",
            "5": "#queue",
        }
        for key, widget in [*expected.items(), ("1", "#instances")]:
            await pilot.press(key)
            await settle(app, pilot)
            assert app.screen.query(widget), f"key {key} shows {widget}"
        assert app.current_mode == "instances"
        top = screen_text(app).splitlines()[0]
        assert "4 Bottlenecks(2)" in top and "5 Rollouts(1)" in top, "badges count open work"


async def test_a_redraw_tick_with_no_screen_on_the_stack_draws_nothing(make_app) -> None:
    """The refresh timer can fire while the current mode's stack is empty (a mode being entered for the
    first time, or the app shutting down); CI once failed test_number_keys_... with ScreenStackError."""
    app: CharterApp = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
    assert not app.screen_stack, "run_test's exit empties the stack"
    app.flush_now()  # raised ScreenStackError before the guard


async def test_help_lists_every_binding_with_its_current_key(make_app) -> None:
    app: CharterApp = make_app(config='[keymap.bindings]\n"rollouts.approve" = "A"\n')
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        await settle(app, pilot)
        assert isinstance(app.screen, HelpScreen)
        rows = {r[3]: r for r in table_rows(app, "#help-table").values()}
        for bid in (
            "screen.instances",
            "screen.rollouts",
            "help",
            "palette",
            "quit",
            "filter",
            "back",
            "instances.detail",
            "detail.window",
            "rollouts.approve",
            "rollouts.reject",
            "rollouts.rollback",
            "rollouts.pause",
            "confirm.yes",
            "confirm.no",
        ):
            assert bid in rows, f"help lists {bid}"
        assert rows["rollouts.approve"][1] == "A", "help shows the remapped key"
        assert rows["help"][1] == "?" and rows["filter"][1] == "/"
        assert rows["screen.cache"][1] == "3"
        await pilot.press("escape")
        await settle(app, pilot)
        assert not isinstance(app.screen, HelpScreen)


async def test_colon_opens_the_palette_and_it_switches_screens(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("colon")
        await pilot.pause(0.2)
        from textual.command import CommandPalette

        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"Rollouts screen")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.current_mode == "rollouts"
        assert app.screen.query("#queue")


async def test_slash_filters_rows_and_esc_clears(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"trit")
        await settle(app, pilot)
        assert list(table_rows(app, "#instances")) == ["triton-b"]
        await pilot.press("enter")  # back to the table, filter kept
        await settle(app, pilot)
        assert list(table_rows(app, "#instances")) == ["triton-b"]
        await pilot.press("escape")
        await settle(app, pilot)
        assert list(table_rows(app, "#instances")) == ["sglang-c", "triton-b", "vllm-a"]
        await pilot.press("5", "slash", *"prefix")
        await settle(app, pilot)
        assert list(table_rows(app, "#queue")) == ["10"] and list(table_rows(app, "#history")) == []


async def test_q_quits(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_approve_asks_yes_no_and_publishes_the_command(make_app) -> None:
    app: CharterApp = make_app()
    command_log(app)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        await pilot.press("a")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "Approve rollout #11: Raise --gpu-memory-utilization on" in screen_text(app)
        assert "+ --gpu-memory-utilization = 0.8" in screen_text(app), "the dialog shows what is approved"
        assert app.screen.focused is not None and app.screen.focused.id == "no", "No is the default"
        await pilot.press("y")
        await settle(app, pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        sent = drain(app)
        assert [(e.topic, e.payload.command.id) for e in sent] == [("charter/v1/command/rollout/approve", 11)]
        assert sent[0].payload.identity and sent[0].payload.command.comment == "from charter-tui"
        assert "⏳ approve sent; waiting for the rollout manager" in static_text(app, "#rollout")
        # The manager's answer replaces the pending marker.
        app.source.bus.publish(
            topic("rollout", "11"),
            Rollout(
                id=11,
                state="CANARY",
                created_at=NOW - 45,
                updated_at=NOW + 5,
                title="Raise --gpu-memory-utilization on vllm-a",
                targets=["vllm-a"],
            ),
        )
        await settle(app, pilot)
        assert table_rows(app, "#queue")["11"][1] == " CANARY "
        assert "⏳" not in static_text(app, "#rollout")


async def test_reject_defaults_to_no_on_enter_and_n(make_app) -> None:
    app: CharterApp = make_app()
    command_log(app)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        for cancel in ("enter", "n", "escape"):
            await pilot.press("r")
            await settle(app, pilot)
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press(cancel)
            await settle(app, pilot)
            assert not isinstance(app.screen, ConfirmScreen)
        assert drain(app) == [], "enter (No has focus), n and esc all cancel"
        await pilot.press("r", "y")
        await settle(app, pilot)
        assert [e.payload.command.action for e in drain(app)] == ["reject"]


async def test_rollback_and_pause_apply_to_running_rollouts_only(make_app) -> None:
    app: CharterApp = make_app()
    command_log(app)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        # #11 is awaiting approval: b and p do not apply (dimmed), nothing is sent.
        assert (
            app.screen.check_action("rollback", ()) is None and app.screen.check_action("pause", ()) is None
        )
        await pilot.press("p", "b")
        await settle(app, pilot)
        assert drain(app) == [] and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("down")  # #10, in CANARY
        await settle(app, pilot)
        assert app.screen.check_action("approve", ()) is None
        await pilot.press("p")
        await settle(app, pilot)
        await pilot.press("b")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app, pilot)
        assert [(e.topic, e.payload.command.id) for e in drain(app)] == [
            ("charter/v1/command/rollout/pause", 10),
            ("charter/v1/command/rollout/rollback", 10),
        ]
        app.source.bus.publish(
            topic("rollout", "10"),
            Rollout(
                id=10,
                state="PAUSED",
                created_at=NOW - 900,
                updated_at=NOW + 1,
                title="Enable prefix caching on triton-b",
                targets=["triton-b"],
            ),
        )
        await settle(app, pilot)
        await pilot.press("p")
        await settle(app, pilot)
        assert [e.payload.command.action for e in drain(app)] == ["resume"], (
            "p on a paused rollout resumes it"
        )


async def test_a_failed_rollout_is_shown_as_running_and_offers_rollback_only_when_the_daemon_takes_it(
    make_app,
) -> None:
    """FAILED means the manager is rolling back: it is not history, and `b` is offered only where the state
    machine accepts it (a restore that gave up can be retried), never where the daemon would refuse it."""
    from daemon.rollouts import commands as cmd

    app: CharterApp = make_app()
    command_log(app)
    failed = Rollout(
        id=10,
        state="FAILED",
        created_at=NOW - 900,
        updated_at=NOW + 1,
        title="Enable prefix caching",
        targets=["triton-b"],
        stage_detail={"progress": {"triton-b": {"status": "restoring"}}},
    )
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        app.source.bus.publish(topic("rollout", "10"), failed)
        await settle(app, pilot)
        assert 10 in [r.id for r in app.state.pending_rollouts()] and 10 not in [
            r.id for r in app.state.rollout_history()
        ]
        await pilot.press("down")  # #10
        await settle(app, pilot)
        assert app.screen.selected().id == 10
        assert "rollback" not in cmd.allowed_actions(failed)
        assert app.screen.check_action("rollback", ()) is None, (
            "the daemon would refuse: its rollback is under way"
        )
        await pilot.press("b")
        await settle(app, pilot)
        assert drain(app) == [] and not isinstance(app.screen, ConfirmScreen)
        gave_up = failed.model_copy(
            update={"updated_at": NOW + 2, "stage_detail": {"progress": {"triton-b": {"status": "failed"}}}}
        )
        app.source.bus.publish(topic("rollout", "10"), gave_up)
        await settle(app, pilot)
        assert app.screen.check_action("rollback", ()) is True, "retrying a restore that gave up is allowed"
        await pilot.press("b")
        await settle(app, pilot)
        await pilot.press("y")
        await settle(app, pilot)
        assert [(e.payload.command.action, e.payload.command.id) for e in drain(app)] == [("rollback", 10)]


async def test_readonly_hides_and_refuses_the_mutating_keys(make_app) -> None:
    app: CharterApp = make_app(readonly=True)
    command_log(app)
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        footer = screen_text(app).splitlines()[-1]
        for label in ("Approve", "Reject", "Rollback", "Pause"):
            assert label not in footer
        assert "READ-ONLY" in screen_text(app).splitlines()[0]
        await pilot.press("a", "r", "b", "p")
        await settle(app, pilot)
        assert not isinstance(app.screen, ConfirmScreen) and drain(app) == []
        # Even a direct call cannot get a command out.
        await app._send(11, "approve")
        assert drain(app) == []
        await pilot.press("question_mark")
        await settle(app, pilot)
        rows = {r[3]: r for r in table_rows(app, "#help-table").values()}
        assert rows["rollouts.approve"][2] == "Approve (disabled: read-only)"


async def test_rollout_keys_show_in_the_footer_when_they_apply(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        footer = screen_text(app).splitlines()[-1]
        assert "a Approve" in footer and "r Reject" in footer


async def test_keymap_from_config_remaps_keys(make_app) -> None:
    app: CharterApp = make_app(config='[keymap.bindings]\n"rollouts.approve" = "A"\n"screen.agents" = "g"\n')
    command_log(app)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("g")
        await settle(app, pilot)
        assert app.current_mode == "agents"
        await pilot.press("5", "a")
        await settle(app, pilot)
        assert not isinstance(app.screen, ConfirmScreen), "the old key no longer approves"
        await pilot.press("A")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app, pilot)
        assert [e.payload.command.action for e in drain(app)] == ["approve"]


async def test_the_detail_key_remaps_on_the_focused_table_too(make_app) -> None:
    """`enter` on Instances is bound twice (the screen, and the table that has the focus): one
    keymap id moves both, so the new key opens the detail and `enter` no longer does."""
    from charter_tui.screens.instance_detail import InstanceDetailScreen

    app: CharterApp = make_app(config='[keymap.bindings]\n"instances.detail" = "o"\n')
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        assert not isinstance(app.screen, InstanceDetailScreen), "enter was remapped away"
        await pilot.press("o")
        await settle(app, pilot)
        assert isinstance(app.screen, InstanceDetailScreen)


async def test_live_refresh_pauses_while_a_modal_is_open(make_app) -> None:
    """A screen under a dialog is not redrawn (what the user was reading stays put) and catches
    up when the dialog closes. (Instances, the home screen, is the exception: next test.)"""
    app: CharterApp = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("3")
        await settle(app, pilot)
        before = table_rows(app, "#cache-targets")["vllm-a"][2]
        await pilot.press("question_mark")
        await settle(app, pilot)
        app.source.bus.publish(
            topic("sample", "vllm-a"), MetricSample(instance="vllm-a", ts=NOW + 1, prefix_hit_rate=0.01)
        )
        await pilot.pause(1.3)  # longer than the once-a-second sample redraw
        cache = app.get_screen_stack("cache")[0]
        assert table_rows_of(cache, "#cache-targets")["vllm-a"][2] == before, "no redraw under the modal"
        assert "sample" in app._active.dirty
        await pilot.press("escape")
        await settle(app, pilot)
        assert table_rows(app, "#cache-targets")["vllm-a"][2] == "1%"


async def test_instances_is_kept_drawn_under_a_modal_and_shows_in_one_frame(make_app) -> None:
    """Under the help screen, Instances keeps drawing at the live rate (its frame is not painted:
    it is not the current screen), so `esc` shows it current without redrawing on resume."""
    app: CharterApp = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        home = app.screen
        await pilot.press("question_mark")
        await settle(app, pilot)
        app.source.bus.publish(
            topic("sample", "vllm-a"), MetricSample(instance="vllm-a", ts=NOW + 1, ttft_p95_s=3.0)
        )
        for _ in range(30):  # the app's own ticks only (settle would force a redraw)
            await pilot.pause(0.1)
            if table_rows_of(home, "#instances")["vllm-a"][4].split()[0] == "3.00s":
                break
        else:
            raise AssertionError("Instances was not drawn under the help screen within 3 s")
        assert isinstance(app.screen, HelpScreen), "still under the modal"
        draws: list[set[str]] = []
        original = home.draw
        home.draw = lambda changed: (draws.append(set(changed)), original(changed))  # type: ignore[method-assign]
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is home and draws == [], f"no redraw on resume, got {draws}"
        assert table_rows(app, "#instances")["vllm-a"][4].split()[0] == "3.00s"


async def test_hidden_screens_are_not_redrawn(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        await pilot.press("1")
        await settle(app, pilot)
        agents = app._screen_stacks["agents"][0]
        calls = []
        agents.draw = lambda changed: calls.append(changed)  # type: ignore[method-assign]
        app.source.bus.publish(
            topic("sample", "vllm-a"), MetricSample(instance="vllm-a", ts=NOW + 1, ttft_p95_s=3.0)
        )
        await pilot.pause(0.6)
        assert calls == []
        await pilot.press("2")
        await settle(app, pilot)
        assert calls, "it redraws when shown again"


async def test_a_burst_of_samples_costs_one_redraw(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        draws = []
        original = screen.draw
        screen.draw = lambda changed: (draws.append(set(changed)), original(changed))  # type: ignore[method-assign]
        started = time.monotonic()
        for i in range(500):
            app.source.bus.publish(
                topic("sample", "vllm-a"),
                MetricSample(instance="vllm-a", ts=NOW + 1 + i, ttft_p95_s=1.0 + i / 1000),
            )
        # Wait on the state (the latest value shown) with the app's own ticks only: `settle` would
        # force redraws. However long a loaded machine takes, samples redraw at most once per
        # SAMPLE_REDRAW_S, so the bound follows the time it took, not a fixed count.
        deadline = started + 60
        while table_rows(app, "#instances")["vllm-a"][4].split()[0] != "1.50s":
            assert time.monotonic() < deadline, "the latest sample was never shown"
            await pilot.pause(0.1)
        elapsed = time.monotonic() - started
        assert draws and len(draws) <= 1 + elapsed / SAMPLE_REDRAW_S, (
            f"500 samples, {len(draws)} redraws in {elapsed:.1f} s"
        )
        assert all(changed <= ROUTINE for changed in draws), draws


async def test_a_steady_stream_of_samples_redraws_at_most_once_a_second(make_app) -> None:
    """Samples arriving every 0.1 s (several per refresh tick) redraw once per SAMPLE_REDRAW_S."""
    app: CharterApp = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        draws = []
        original = screen.draw
        screen.draw = lambda changed: (draws.append(set(changed)), original(changed))  # type: ignore[method-assign]
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < 2.5:  # long enough for several ticks; the count is not timed
            i += 1
            app.source.bus.publish(
                topic("sample", "vllm-a"),
                MetricSample(instance="vllm-a", ts=NOW + 1 + i, ttft_p95_s=1.0 + i / 1000),
            )
            await pilot.pause(0.1)
        elapsed = time.monotonic() - started
        assert draws and len(draws) <= 1 + elapsed / SAMPLE_REDRAW_S, (
            f"{i} samples, {len(draws)} redraws in {elapsed:.1f} s"
        )


def table_rows_of(screen, selector: str) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]

    table = screen.query_one(selector, DataTable)
    return {k.value: [getattr(c, "plain", str(c)) for c in table.get_row(k)] for k in table.rows}


async def test_stray_prints_do_not_break_the_app(make_app) -> None:
    """Textual captures stdout while it owns the terminal and flushes through `App._flush`; a
    library that prints must not crash the TUI (the app once shadowed that method)."""
    app: CharterApp = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        print("a stray print from some library", flush=True)
        await pilot.press("2")
        await settle(app, pilot)
        assert app.current_mode == "agents"


async def test_the_rollback_dialog_shows_what_will_be_restored_and_the_diff_the_values_read(make_app) -> None:
    """Once the manager has read a target (`stage_detail.before`), the diff shows that value where it said
    "(current)", and `b` asks about the restore (new -> recorded), not the forward change."""
    app: CharterApp = make_app()
    command_log(app)
    canary = Rollout(
        id=10,
        state="CANARY",
        created_at=NOW - 900,
        updated_at=NOW + 1,
        title="Bigger batches on vllm-a",
        targets=["vllm-a", "vllm-b"],
        changes=[{"param": "max_num_seqs", "value": 64}, {"param": "block_size", "value": 32}],
        stage_detail={
            "order": ["vllm-a", "vllm-b"],
            "progress": {"vllm-a": {"status": "applied"}, "vllm-b": {"status": "pending"}},
            "before": {"vllm-a": {"max_num_seqs": "16", "block_size": None}},
        },
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        app.source.bus.publish(topic("rollout", "10"), canary)
        await settle(app, pilot)
        await pilot.press("down")
        await settle(app, pilot)
        panel = static_text(app, "#rollout")
        assert "- max_num_seqs = 16" in panel and "- block_size = (default)" in panel
        assert "(current)" not in panel
        # Shown once, in the diff: not again as a raw "before / vllm-a / ..." dump under the stage.
        assert "before" not in panel.split("stage", 1)[1], panel
        await pilot.press("b")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen)
        restore = static_text(app, "#confirm-detail")
        assert "@@ vllm-a" in restore and "vllm-b" not in restore, "only the touched target is restored"
        assert "- max_num_seqs = 64" in restore and "+ max_num_seqs = 16" in restore
        assert "- block_size = 32" in restore and "+ block_size = (default)" in restore


async def test_a_pending_proposal_shows_the_values_the_manager_read(make_app) -> None:
    """A proposal made with the CLI has no optimizer reading: the values the manager read while it waits
    (`stage_detail.pending_read`) stand where the diff said "(current)"."""
    app: CharterApp = make_app()
    pending = Rollout(
        id=12,
        state="PENDING_APPROVAL",
        created_at=NOW - 900,
        updated_at=NOW + 1,
        title="Bigger batches on vllm-a",
        targets=["vllm-a"],
        changes=[{"param": "max_num_seqs", "value": 64}, {"param": "block_size", "value": 32}],
        stage_detail={"pending_read": {"vllm-a": {"max_num_seqs": "16", "block_size": None}}},
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        app.source.bus.publish(topic("rollout", "12"), pending)
        await settle(app, pilot)
        queue = app.screen.query_one("#queue", DataTable)
        queue.move_cursor(row=queue.get_row_index("12"))
        await settle(app, pilot)
        panel = static_text(app, "#rollout")
        assert "Bigger batches on vllm-a" in panel
        assert "- max_num_seqs = 16" in panel and "- block_size = (default)" in panel
        assert "(current)" not in panel


async def test_approving_a_relaunch_of_the_only_server_says_it_is_an_outage(make_app) -> None:
    """#11 changes vllm-a alone: configured as a vLLM target, the approval dialog says that nothing will
    serve during the relaunch; the same rollout without that target configured says nothing of it."""
    config = '[[targets]]\nname = "vllm-a"\nurl = "http://127.0.0.1:9"\nengine = "vllm"\n'
    for cfg, warned in ((config, True), ("", False)):
        app: CharterApp = make_app(config=cfg)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("5")
            await settle(app, pilot)
            await pilot.press("a")
            await settle(app, pilot)
            assert isinstance(app.screen, ConfirmScreen)
            detail = static_text(app, "#confirm-detail")
            assert "+ --gpu-memory-utilization = 0.8" in detail
            assert ("vllm-a is this rollout's only server: the change relaunches it" in detail) is warned, (
                detail
            )
            if warned:
                assert "no relaunch of it is on record here" in detail


async def test_the_approval_dialog_quotes_the_last_measured_relaunch(make_app) -> None:
    """A finished rollout that relaunched vllm-a recorded how long nothing served (the actuator's
    `downtime_s`): the next approval of a relaunch of vllm-a says that figure, not the timeout."""
    from daemon.bus import topic
    from daemon.models import Rollout
    from daemon.rollouts.model import StageDetail, TargetProgress

    config = '[[targets]]\nname = "vllm-a"\nurl = "http://127.0.0.1:9"\nengine = "vllm"\n'
    app: CharterApp = make_app(config=config)
    stage = StageDetail(
        order=["vllm-a"],
        progress={
            "vllm-a": TargetProgress(status="applied", applied_at=NOW - 3600, readback={"downtime_s": 61.3})
        },
    )
    earlier = Rollout(
        id=4,
        state="COMPLETED",
        title="earlier relaunch",
        targets=["vllm-a"],
        created_at=NOW - 4000,
        updated_at=NOW - 3500,
        stage_detail=stage.model_dump(mode="json"),
    )
    app.source.bus.publish(topic("rollout", "4"), earlier)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        queue = app.screen.query_one("#queue", DataTable)
        queue.move_cursor(row=queue.get_row_index("11"))
        await settle(app, pilot)
        await pilot.press("a")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen)
        detail = static_text(app, "#confirm-detail")
        assert "its last relaunch (rollout 4) left nothing serving for 61 s" in detail, detail


async def test_p_on_an_open_recommendation_proposes_it_as_a_rollout(make_app) -> None:
    """From the Bottlenecks screen: `p` on an open recommendation with changes asks, then sends a propose
    command naming the recommendation (the daemon takes targets and changes from the stored one). A
    proposed recommendation, or one whose change is a code edit, offers no `p`."""
    from daemon.models import Recommendation, RecommendationStatus

    app: CharterApp = make_app()
    command_log(app)
    rec = Recommendation(
        id=9,
        fingerprint="vllm-a/batch",
        instance="vllm-a",
        kind="batching",
        priority=0,
        title="Raise --max-num-seqs on vllm-a",
        status=RecommendationStatus.OPEN,
        created_at=NOW - 5,
        updated_at=NOW - 5,
        detail={
            "changes": [
                {
                    "parameter": "--max-num-seqs",
                    "current_value": 16,
                    "recommended_value": 64,
                    "apply": "restart",
                }
            ]
        },
    )
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("4")
        await settle(app, pilot)
        app.source.bus.publish(topic("recommendation", "9"), rec)
        await settle(app, pilot)
        recs = app.screen.query_one("#recommendations", DataTable)
        recs.focus()
        for rid, offered in (("7", None), ("8", None), ("9", True)):  # PROPOSED; a code change; open
            recs.move_cursor(row=recs.get_row_index(rid))
            await settle(app, pilot)
            assert app.screen.check_action("propose", ()) is offered, rid
        await pilot.press("p")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "Propose recommendation #9 as a rollout" in screen_text(app)
        shown = static_text(app, "#confirm-detail")
        assert "- --max-num-seqs = 16" in shown and "+ --max-num-seqs = 64" in shown
        await pilot.press("y")
        await settle(app, pilot)
        sent = drain(app)
        assert [(e.topic, e.payload.command.recommendation_id) for e in sent] == [
            ("charter/v1/command/rollout/propose", 9)
        ]
        assert sent[0].payload.command.targets == [] and sent[0].payload.command.id is None


def test_the_rollouts_table_names_a_state_as_the_cli_does() -> None:
    """ROLLING_BACK was "UNDOING" in the table and ROLLING_BACK in `rollouts list`: one state, two names."""
    from charter_tui.screens.rollouts import state_badge

    assert state_badge("ROLLING_BACK", short=True).plain.strip() == "ROLLING_BACK"
