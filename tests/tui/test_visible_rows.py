"""Drawing only the rows on screen (charter_tui/widgets/tables.py) and redrawing on scroll.

`sync_visible_rows` writes the rows in `visible_rows(table, margin)` when the row keys are
unchanged, and everything when they change; `LiveTable` posts `Scrolled` when its scroll moves by
a row, and the Instances screen redraws then, so rows scrolled into view show current values.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from charter_tui.app import CharterApp
from charter_tui.widgets.livetable import LiveTable
from charter_tui.widgets.tables import sync_visible_rows, visible_rows
from daemon.bus import topic
from daemon.models import Instance, InstanceState, MetricSample
from tests.tui.fixtures import NOW
from tests.tui.helpers import screen_text, settle

N_ROWS = 100
KEYS = [f"t{i:03d}" for i in range(N_ROWS)]


def cells(version: str) -> Callable[[str], list[str | Text]]:
    return lambda key: [key, Text(f"{version}-{key}", style="bold"), f"{version}"]


class OneTable(App[None]):
    CSS = "LiveTable { height: 1fr; }"

    def __init__(self) -> None:
        super().__init__()
        self.scrolled: list[LiveTable.Scrolled] = []

    def compose(self) -> ComposeResult:
        yield LiveTable(id="t", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(LiveTable)
        table.add_columns("key", "value", "version")
        for key in KEYS:
            table.add_row(*cells("old")(key), key=key)

    def on_live_table_scrolled(self, message: LiveTable.Scrolled) -> None:
        self.scrolled.append(message)


def versions(table: LiveTable) -> list[str]:
    return [str(table.get_row(key)[2]) for key in KEYS]


async def test_visible_rows_are_the_rows_on_screen_plus_the_margin() -> None:
    app = OneTable()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.query_one(LiveTable)
        on_screen = table.size.height - 1  # one line is the header
        assert 10 < on_screen < N_ROWS
        first, last = visible_rows(table)
        assert first == 0 and on_screen <= last - first <= on_screen + 1
        assert visible_rows(table, margin=5) == (0, last + 5), "the margin widens the range (not below row 0)"
        table.move_cursor(row=60, animate=False)
        await pilot.pause()
        top = int(table.scroll_y)
        assert top > 0
        assert visible_rows(table, margin=5) == (top - 5, last + top + 5)
        table.move_cursor(row=N_ROWS - 1, animate=False)
        await pilot.pause()
        assert visible_rows(table, margin=5)[1] == N_ROWS, "the range ends at the last row"


async def test_visible_rows_before_layout_are_all_rows() -> None:
    app = OneTable()
    async with app.run_test(size=(80, 24)):
        table = LiveTable()  # never mounted: no size yet
        table.add_columns("key")
        for key in KEYS[:30]:
            table.add_row(key, key=key)
        assert visible_rows(table, margin=5) == (0, 30)


async def test_sync_visible_rows_writes_only_rows_on_screen_plus_margin_when_keys_are_unchanged() -> None:
    app = OneTable()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.query_one(LiveTable)
        first, last = visible_rows(table, margin=5)
        assert (first, last) == (0, table.size.height + 5)
        built: list[str] = []

        def new(key: str) -> list[str | Text]:
            built.append(key)
            return cells("new")(key)

        sync_visible_rows(table, KEYS, new, margin=5)
        assert built == KEYS[first:last], "cells are built only for the rows written"
        got = versions(table)
        assert got[first:last] == ["new"] * (last - first), "rows on screen (and the margin) get new values"
        assert got[last:] == ["old"] * (N_ROWS - last), "rows off screen keep their old values"
        await pilot.pause()
        assert "new-t000" in screen_text(app) and "old-" not in screen_text(app)

        # Scrolled to the bottom, the next sync writes the rows there (and only those).
        table.move_cursor(row=N_ROWS - 1, animate=False)
        await pilot.pause()
        first, last = visible_rows(table, margin=5)
        assert first > 0 and last == N_ROWS
        sync_visible_rows(table, KEYS, cells("newer"), margin=5)
        got = versions(table)
        assert got[first:] == ["newer"] * (N_ROWS - first)
        assert "newer" not in got[:first]
        await pilot.pause()
        assert "newer-t099" in screen_text(app)


async def test_sync_visible_rows_writes_every_row_when_the_keys_change() -> None:
    app = OneTable()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.query_one(LiveTable)
        keys = [*KEYS, "t100"]
        sync_visible_rows(table, keys, cells("new"), margin=5)
        assert [rk.value for rk in table.rows] == keys
        assert {str(table.get_row(k)[2]) for k in keys} == {"new"}, "a rebuild writes every row"


async def test_livetable_posts_scrolled_when_its_scroll_moves_by_a_row() -> None:
    app = OneTable()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.query_one(LiveTable)
        table.move_cursor(row=3, animate=False)  # on screen: no scroll
        await pilot.pause()
        assert table.scroll_y == 0 and app.scrolled == [], "a cursor move on screen is no scroll"
        table.move_cursor(row=90, animate=False)
        await pilot.pause()
        assert table.scroll_y > 0
        assert app.scrolled, "LiveTable.Scrolled arrived"
        assert all(m.table is table and m.control is table for m in app.scrolled)
        app.scrolled.clear()
        table.scroll_to(y=10, animate=False)
        await pilot.pause()
        assert table.scroll_y == 10 and len(app.scrolled) == 1


# --- the Instances screen, end to end ---------------------------------------------------------

N_TARGETS = 60


def sample(name: str, i: int, ts: float, tok_s: float) -> MetricSample:
    return MetricSample(
        instance=name,
        ts=ts,
        engine="vllm",
        window_s=1.0,
        ttft_p95_s=0.1 + i / 1000,
        generation_tokens_per_s=tok_s,
        kv_cache_usage=0.5,
        prefix_hit_rate=0.6,
        waiting=float(i % 5),
        running=8.0,
    )


def tok_s_cell(table: LiveTable, name: str) -> str:
    return table.get_cell(name, "generation_tokens_per_s").plain.strip()


async def scroll_to_bottom(pilot: Pilot, table: LiveTable) -> None:
    await pilot.press("ctrl+end")  # DataTable: cursor (and scroll) to the last row
    await pilot.pause()
    assert table.cursor_row == table.row_count - 1


async def test_instances_screen_shows_new_values_in_rows_scrolled_into_view(
    make_app: Callable[..., CharterApp],
) -> None:
    """60 targets (more than fit at 80x24), new samples for all, then scroll to the bottom: the
    bottom row shows its new tok/s, redrawn by LiveTable.Scrolled before any routine redraw."""
    app: CharterApp = make_app(data=False)
    bus = app.source.bus
    names = [f"vllm-{i:03d}" for i in range(N_TARGETS)]
    async with app.run_test(size=(80, 24)) as pilot:
        for i, name in enumerate(names):
            bus.publish(
                topic("instance", name),
                Instance(
                    name=name,
                    url=f"http://10.0.0.{i + 1}:8000",
                    engine="vllm",
                    model="llama-3-8b",
                    state=InstanceState.UP,
                    last_seen=NOW - 1,
                ),
            )
            bus.publish(topic("sample", name), sample(name, i, NOW - 1, tok_s=111.0))
        await settle(app, pilot)
        table = app.screen.query_one("#instances", LiveTable)
        assert [rk.value for rk in table.rows] == names
        assert tok_s_cell(table, names[-1]) == "111"
        _, last = visible_rows(table, margin=5)
        assert last < N_TARGETS - 1, "the bottom row is off screen (and outside the margin)"

        for i, name in enumerate(names):
            bus.publish(topic("sample", name), sample(name, i, NOW, tok_s=222.0))
        await settle(app, pilot)  # ends with flush_now(): a redraw of the rows on screen
        assert tok_s_cell(table, names[0]) == "222", "rows on screen are redrawn"
        assert tok_s_cell(table, names[-1]) == "111", "rows off screen are not (the point of it)"

        # Hold off the app's own once-a-second redraws so only the scroll can redraw the rows.
        app._home.last_routine = time.monotonic() + 3600  # type: ignore[attr-defined]
        await scroll_to_bottom(pilot, table)
        await pilot.pause()
        assert tok_s_cell(table, names[-1]) == "222", "the row scrolled into view was redrawn"
        app.flush_now()
        await pilot.pause()
        bottom = [line for line in screen_text(app).splitlines() if names[-1] in line]
        assert bottom and "222" in bottom[0] and "111" not in bottom[0], f"on screen: {bottom}"
