"""Benchmark runs on the Cache screen: from the bus (in-process or MQTT JSON) and the start-up snapshot."""

from __future__ import annotations

import json
from pathlib import Path

from charter_tui.app import CharterApp
from charter_tui.datasource import decode
from charter_tui.render.bench import bench_row, target_label
from charter_tui.state import DaemonState
from daemon.views import read_snapshot
from daemon.bus import Event, topic
from daemon.bench.records import BenchRun, BenchRunView
from daemon.mqtt_bridge import encode
from daemon.store import AsyncStore, Store
from tests.tui import fixtures as fx
from tests.tui.helpers import screen_text, settle, static_text, table_rows

RESEARCH = f"{fx.AGENT_PATH}@http://127.0.0.1:8000"
DOCS = "/agents/document_processor.py@http://127.0.0.1:8001"


def _bench_widgets(app: CharterApp) -> tuple[bool, bool]:
    """(table shown, hint shown)."""
    return app.screen.query_one("#cache-bench").display, app.screen.query_one("#cache-bench-hint").display


async def test_cache_screen_shows_the_latest_bench_run_per_agent_and_target(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        await settle(app, pilot)
        rows = table_rows(app, "#cache-bench")
        assert list(rows) == [RESEARCH, DOCS], "newest first"
        # naive 895/2886, optimized 2540/2886, ceiling 2655/2886; makespan 4.26 s vs 3.00 s.
        assert rows[RESEARCH] == [
            "research_agent.py",
            "vllm-a",
            "5m",
            "31%",
            "88%",
            "92%",
            "96%",
            "1.42×",
            "",
        ]
        # Naive only and failed: no optimized hit and no speedup; the error is shown and marked.
        assert rows[DOCS][:8] == ["✗ document_processor.py", "triton-b", "2h", "45%", "-", "92%", "49%", "-"]
        assert rows[DOCS][8] == "naive run 1, call c3 (inputs.jsonl:2): timed out after 120 s"
        assert _bench_widgets(app) == (True, False)

        # A newer run of the same agent on the same target replaces the row, live (no forced flush).
        newer = fx.bench_view(fx.bench_result(at=fx.NOW - 30, naive_hits=577, optimized_hits=2020), 3)
        app.source.bus.publish(topic("bench", fx.AGENT_PATH), newer)
        for _ in range(100):  # the app's own refresh tick (4 Hz) picks it up
            await pilot.pause(0.05)
            if table_rows(app, "#cache-bench")[RESEARCH][2] == "30s":
                break
        assert table_rows(app, "#cache-bench")[RESEARCH][2:8] == ["30s", "20%", "70%", "92%", "76%", "1.42×"]
        # An older one arriving late (the start-up snapshot repeating it) does not.
        app.source.bus.publish(
            topic("bench", fx.AGENT_PATH), fx.bench_view(fx.bench_result(at=fx.NOW - 900), 0)
        )
        await settle(app, pilot)
        assert table_rows(app, "#cache-bench")[RESEARCH][3:5] == ["20%", "70%"]


async def test_cache_screen_bench_hint_without_runs_and_filter(make_app) -> None:
    app: CharterApp = make_app(data=False)
    fx.publish_all(app.source.bus, with_bench=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await settle(app, pilot)
        assert _bench_widgets(app) == (False, True)
        hint = "no benchmark runs yet — run charter-tui bench AGENT --inputs FILE --target URL"
        assert static_text(app, "#cache-bench-hint") == hint
        assert hint in screen_text(app), "the hint fits one line at 80 columns"

        for run in fx.bench_views():
            app.source.bus.publish(topic("bench", run.agent), run)
        await settle(app, pilot)
        assert _bench_widgets(app) == (True, False)
        text = screen_text(app)
        assert "1.42×" in text and "96%" in text, "every number fits 80 columns"
        await pilot.press("slash", *"triton")
        await settle(app, pilot)
        assert list(table_rows(app, "#cache-bench")) == [DOCS], "the filter matches the target's name"
        await pilot.press(*"zz")
        await settle(app, pilot)
        assert _bench_widgets(app) == (False, True)
        assert static_text(app, "#cache-bench-hint") == "no benchmark runs match the filter"


async def test_a_tui_started_after_a_bench_gets_it_from_the_snapshot(tmp_path: Path) -> None:
    store = AsyncStore(Store(f"sqlite:///{tmp_path / 'snap.db'}"))
    try:
        older, newer = fx.bench_result(at=fx.NOW - 600, optimized_hits=1000), fx.bench_result()
        store.store.add_all([BenchRun.from_result(older), BenchRun.from_result(newer)])
        events = await store.call(read_snapshot, store.store, fx.NOW)
    finally:
        store.close()
    bench = [e for e in events if e.topic.startswith("charter/v1/bench/")]
    assert [e.topic for e in bench] == [topic("bench", fx.AGENT_PATH)], "only the newest per agent and target"
    assert bench[0].payload.id == 2 and bench[0].payload.summaries["optimized"].hit_share == 2540 / 2886


def test_bench_events_decode_from_mqtt_json_and_update_state() -> None:
    view = fx.bench_views()[1]
    wire = json.loads(encode(view))  # what the MQTT bridge sends and `MqttSource` parses
    decoded = decode(Event(topic("bench", view.agent), wire))
    assert isinstance(decoded.payload, BenchRunView) and decoded.payload == view
    state = DaemonState()
    assert state.apply(decoded) == "bench"
    assert state.latest_benches() == [view]


def test_bench_row_labels_an_unconfigured_target_by_host_and_colours_the_result() -> None:
    run = fx.bench_view(
        fx.bench_result(target="http://10.0.0.7:8000/", naive_hits=2000, optimized_hits=1000), 4
    )
    assert target_label(run.target, fx.instances()) == "10.0.0.7:8000"
    assert target_label("http://127.0.0.1:8000/", fx.instances()) == "vllm-a"
    _, cells = bench_row(run, fx.instances(), fx.NOW)
    assert [getattr(c, "plain", c) for c in cells[3:8]] == ["69%", "35%", "92%", "38%", "1.42×"]
    assert cells[6].style == "red" and cells[7].style == "green"


async def test_the_highlighted_bench_run_shows_where_its_hits_went(make_app) -> None:
    """The cache doctor's steps of a stored run (BenchResult.waterfalls), drawn as bars on the Cache screen."""
    from daemon.bench.records import WaterfallStep

    app: CharterApp = make_app(data=False)
    fx.publish_all(app.source.bus, with_bench=False)
    result = fx.bench_result()
    result.waterfalls = {
        "optimized": [
            WaterfallStep(name="ceiling", points=92.0, evidence="the estimate for the optimized traffic"),
            WaterfallStep(name="order", points=0.0, evidence="in the order sent, 92.0% can hit"),
            WaterfallStep(name="capacity", points=50.0, evidence="an LRU cache of 1,024 tokens hit 42.0%"),
            WaterfallStep(name="unexplained", points=4.0, evidence="the rest \x1b[31mof the gap"),
            WaterfallStep(name="delivered", points=38.0, evidence="the server's hits / queries"),
        ]
    }
    app.source.bus.publish(topic("bench", fx.AGENT_PATH), fx.bench_view(result, 5))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        await settle(app, pilot)
        app.screen.query_one("#cache-bench").focus()
        await settle(app, pilot)
        text = static_text(app, "#cache-waterfall")
        lines = text.splitlines()
        assert lines[0] == "where the hits went: research_agent.py, optimized"
        assert [line.split()[0] for line in lines[1:]] == [
            "ceiling",
            "order",
            "capacity",
            "unexplained",
            "delivered",
        ]
        assert " 92.0% the estimate" in lines[1] and "-50.0pt an LRU cache of 1,024 tokens" in lines[3]
        assert "\x1b" not in text  # a server's text never reaches the terminal as an escape sequence
        # The bars share one axis: capacity hangs from 92% down to 42%, the delivered bar ends at 38%.
        bar = lambda line: line[12 : 12 + 40]  # noqa: E731
        assert bar(lines[1]).count("█") == round(0.92 * 40)
        assert bar(lines[3]).index("█") == round(0.42 * 40) and bar(lines[3]).rstrip().endswith("█")
        assert bar(lines[5]).count("█") == round(0.38 * 40)


def test_a_run_that_hit_more_than_its_ceiling_says_its_cache_was_warm() -> None:
    run = fx.bench_view(fx.bench_result(naive_hits=2000, optimized_hits=2900), 4)
    assert run.of_ceiling is not None and run.of_ceiling > 1.0
    _, cells = bench_row(run, fx.instances(), fx.NOW)
    assert "over (warm)" in [getattr(c, "plain", c) for c in cells]
