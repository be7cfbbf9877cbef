"""What keeps key presses fast (benchmarks/results/tui.md), checked for behaviour, not timing:
full GCs wait for a pause in typing, the key bar follows the screen, reused screens show the right
target, and a switch shows current data in its first frame."""

from __future__ import annotations

import gc

from textual._compositor import LayoutUpdate
from textual.widgets import DataTable

from charter_tui import idle_gc
from charter_tui.app import CharterApp
from charter_tui.idle_gc import IdleCollector
from charter_tui.screens.help import HelpScreen
from charter_tui.screens.instance_detail import InstanceDetailScreen
from charter_tui.widgets.keybar import KeyBar
from daemon.bus import Event, topic
from daemon.models import MetricSample
from tests.tui import fixtures as fx
from tests.tui.fixtures import NOW
from tests.tui.helpers import settle, static_text, table_rows


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_full_collections_wait_for_a_pause_in_typing() -> None:
    clock = FakeClock()
    collector = IdleCollector(clock)
    saved = gc.get_threshold()
    collector.start()
    try:
        assert gc.get_threshold()[2] == idle_gc.NEVER, "automatic full collections are off"
        assert gc.get_freeze_count() > 0
        clock.now += idle_gc.EVERY_S - 1
        assert not collector.tick(), "not due yet"
        clock.now += 2
        collector.saw_input()
        clock.now += idle_gc.QUIET_S / 2
        assert not collector.tick(), "due, but a key was pressed just now"
        clock.now += idle_gc.QUIET_S
        assert collector.tick(), "due and quiet: it runs"
        assert not collector.tick(), "and not again right away"
        # Someone typing without pause still gets a collection, just late.
        for _ in range(int(idle_gc.AT_MOST_S)):
            clock.now += 1
            collector.saw_input()
            if collector.tick():
                break
        assert clock.now - 1000.0 >= idle_gc.AT_MOST_S
    finally:
        collector.stop()
    assert gc.get_threshold() == saved and gc.get_freeze_count() == 0, "stop restores the GC as it was"


async def test_the_app_restores_the_gc_however_it_ends(make_app) -> None:
    saved = gc.get_threshold()
    app: CharterApp = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        assert gc.get_threshold()[2] == idle_gc.NEVER
    assert gc.get_threshold() == saved and gc.get_freeze_count() == 0


async def test_key_bar_follows_the_screen_and_the_focus(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(app, pilot)
        bar = app.screen.query_one(KeyBar)
        assert "/ Filter" in static_text(app, "#keybar") and "Approve" not in static_text(app, "#keybar")
        assert ("/", "Filter", True) in bar.hints()
        assert ("⏎", "Detail", True) in bar.hints(), "the table's enter opens the detail and says so"
        await pilot.press("5")
        await settle(app, pilot)
        assert "a Approve" in static_text(app, "#keybar")
        await pilot.press("slash")  # focus moves to the filter input: the bar is redrawn for it
        await settle(app, pilot)
        assert app.focused is not None and app.focused.id == "filter"
        assert app.screen.query_one(KeyBar).hints() == app.screen.query_one(KeyBar)._shown


async def test_help_screen_is_built_once_and_reused(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        await settle(app, pilot)
        first = app.screen
        assert isinstance(first, HelpScreen)
        await pilot.press("escape", "2", "question_mark")
        await settle(app, pilot)
        assert app.screen is first, "the same screen object comes back"
        assert len(table_rows(app, "#help-table")) > 10, "with its rows still there"


async def test_reused_detail_screen_shows_the_target_it_was_opened_for(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.show_instance_detail("vllm-a")
        await settle(app, pilot)
        first = app.screen
        assert isinstance(first, InstanceDetailScreen)
        assert static_text(app, "#detail-header").startswith("vllm-a")
        await pilot.press("w")  # 1h window: must not carry over to the next target
        await pilot.press("escape")
        await settle(app, pilot)
        app.show_instance_detail("triton-b")
        await pilot.pause()
        assert app.screen is first
        header = static_text(app, "#detail-header")
        assert header.startswith("triton-b") and "vllm-a" not in header
        assert first.window_index == 0


async def test_switching_back_shows_samples_that_arrived_while_hidden(make_app) -> None:
    """Instances, the home screen, keeps drawing while another screen shows, at the rate it
    draws samples when visible (once a second): a sample that arrived while it was hidden is in
    the first frame after `1`, and that frame is full and needs no redraw at the switch. A change
    that is more than samples (a new bottleneck) is drawn at the switch, before that frame."""
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        await settle(app, pilot)
        home = app.get_screen_stack("instances")[0]
        hidden = home.query_one("#instances", DataTable)
        assert hidden.get_row("vllm-a")[5].plain.split()[0] != "4.3k"
        app.source.bus.publish(
            topic("sample", "vllm-a"),
            MetricSample(
                instance="vllm-a", ts=NOW + 5, engine="vllm", window_s=1.0, generation_tokens_per_s=4321.0
            ),
        )
        for _ in range(30):  # the app's own ticks only (settle would force a redraw)
            await pilot.pause(0.1)
            if hidden.get_row("vllm-a")[5].plain.split()[0] == "4.3k":
                break
        else:
            raise AssertionError("the hidden Instances screen did not draw the sample within 3 s")
        assert app.current_mode == "agents"

        # What each frame after the key shows: the watched row and the kind of frame.
        watched = ["vllm-a"]
        shown: list[tuple[str, str, type]] = []
        display = app._display

        def recording_display(screen, renderable) -> None:  # type: ignore[no-untyped-def]
            if app.current_mode == "instances" and renderable is not None:
                row = hidden.get_row(watched[0])
                shown.append((row[5].plain.split()[0], row[0].plain, type(renderable)))
            display(screen, renderable)

        app._display = recording_display  # type: ignore[method-assign]
        draws: list[set[str]] = []
        original = home.draw
        home.draw = lambda changed: (draws.append(set(changed)), original(changed))  # type: ignore[method-assign]
        await pilot.press("1")
        assert shown and shown[0][0] == "4.3k", f"first frame after the switch showed {shown[:1]}"
        # ... and repaints the whole terminal: a partial frame would update only the regions that
        # changed on this screen and leave the Agents screen's lines everywhere else.
        assert shown[0][2] is LayoutUpdate, f"first frame after the switch was a {shown[0][2].__name__}"
        assert draws == [], f"nothing to draw at the switch, got {draws}"

        # More than samples: a bottleneck opens on a target while Instances is hidden, and the
        # key comes before any tick could draw it in the background.
        await pilot.press("2")
        await settle(app, pilot)
        assert "▲" not in hidden.get_row("triton-b")[0].plain
        watched = ["triton-b"]
        shown.clear()
        bottleneck = fx.bottlenecks()[0].model_copy(update={"instance": "triton-b", "id": 99})
        app._apply(Event(topic("bottleneck", "triton-b"), bottleneck))
        await pilot.press("1")
        assert shown and "▲" in shown[0][1], f"first frame shows the new bottleneck: {shown[:1]}"
