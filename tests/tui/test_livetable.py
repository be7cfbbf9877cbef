"""LiveTable (charter_tui/widgets/livetable.py) renders exactly what a stock DataTable renders.

LiveTable replaces DataTable's per-update cache key with a version per cell, keeps the cursor's
cells in a separate cache cleared on focus changes, and forgets everything when rows or columns
go. Each of those is a place where a stale cell could be shown, so these tests drive a LiveTable
and a stock DataTable through the same operations side by side, at the same size and scroll, and
compare every visible line (text and styles) after each step; plus two tests of what the cache
is for: a focus change re-renders only the cursor's cells, and a written cell is re-rendered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.coordinate import Coordinate
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from charter_tui.widgets.livetable import LiveTable

COLUMNS = [("name", "name"), ("state", "state"), ("rate", "rate"), ("note", "note")]
SIZE = (100, 20)


def row_cells(i: int, salt: str = "") -> list[str | Text]:
    """Rich Text cells with styles (whole-cell and span styles) next to plain strings."""
    state = Text(f"● {'UP' if i % 3 else 'DOWN'}{salt}", style="bold green" if i % 3 else "bold red")
    rate = Text(f"{i * 7 % 100:>5}{salt}")
    rate.append(" ▁▃▅", style="cyan")
    return [Text(f"vllm-{i:03d}", style="bold"), state, rate, f"plain {i}{salt}"]


class TwoTables(App[None]):
    """A LiveTable and a stock DataTable side by side (50x17 each), and an Input that holds the
    focus while the tables are compared, so neither table is focused unless a test says so."""

    CSS = """
    Horizontal { height: 1fr; }
    DataTable { width: 1fr; height: 1fr; }
    Input { height: 3; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield LiveTable(id="live", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="stock", cursor_type="row", zebra_stripes=True)
        yield Input(id="holder")

    def on_mount(self) -> None:
        for table in self.tables:
            for label, key in COLUMNS:
                table.add_column(label, key=key)
            for i in range(40):
                table.add_row(*row_cells(i), key=f"k{i}")
        self.query_one("#holder", Input).focus()

    @property
    def live(self) -> LiveTable:
        return self.query_one("#live", LiveTable)

    @property
    def stock(self) -> DataTable:
        return self.query_one("#stock", DataTable)

    @property
    def tables(self) -> list[DataTable]:
        return [self.query_one("#live", LiveTable), self.query_one("#stock", DataTable)]


def lines(table: DataTable) -> list[list[tuple[str, Any]]]:
    """Every visible line of `table` as (text, style) segments (styles carry colours and meta)."""
    out = []
    for y in range(table.size.height):
        out.append([(seg.text, seg.style) for seg in table.render_line(y)])
    return out


def text_of(table: DataTable) -> list[str]:
    """Every visible line of `table` as plain text."""
    return [table.render_line(y).text for y in range(table.size.height)]


async def settle(pilot: Pilot) -> None:
    await pilot.pause()
    await pilot.pause()


def assert_same_view(app: TwoTables, step: str) -> None:
    live, stock = app.live, app.stock
    assert live.size == stock.size and live.size.height > 3, f"{step}: tables must be the same size"
    assert live.scroll_offset == stock.scroll_offset, f"{step}: tables must be at the same scroll"
    assert live.cursor_coordinate == stock.cursor_coordinate, f"{step}: same cursor"
    assert live.has_focus == stock.has_focus, f"{step}: same focus state"
    got, want = lines(live), lines(stock)
    for y, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, (
            f"{step}: line {y} differs\n live:  {''.join(t for t, _ in g)!r}\n"
            f" stock: {''.join(t for t, _ in w)!r}\n live:  {g}\n stock: {w}"
        )


async def assert_same_all_focus_states(app: TwoTables, pilot: Pilot, step: str) -> None:
    """Compare unfocused as things are, then each table focused (focus moves to one table, then
    to the other, then back to the holder), then unfocused again."""
    assert_same_view(app, f"{step} (unfocused)")
    app.live.focus()
    await settle(pilot)
    live_focused = lines(app.live)
    app.stock.focus()
    await settle(pilot)
    stock_focused = lines(app.stock)
    for y, (g, w) in enumerate(zip(live_focused, stock_focused, strict=True)):
        assert g == w, (
            f"{step} (focused): line {y} differs\n live:  {''.join(t for t, _ in g)!r}\n"
            f" stock: {''.join(t for t, _ in w)!r}"
        )
    app.query_one("#holder", Input).focus()
    await settle(pilot)
    assert_same_view(app, f"{step} (unfocused again)")


def both(app: TwoTables, op: Callable[[DataTable], object]) -> None:
    for table in app.tables:
        op(table)


async def test_livetable_draws_every_visible_line_like_a_stock_datatable_after_each_edit() -> None:
    app = TwoTables()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await assert_same_all_focus_states(app, pilot, "initial")

        # Same values written again (a live feed rewrites unchanged cells).
        def same(t: DataTable) -> None:
            for i in (0, 1, 5):
                for (_, key), value in zip(COLUMNS, row_cells(i)):
                    t.update_cell(f"k{i}", key, value)

        both(app, same)
        await settle(pilot)
        await assert_same_all_focus_states(app, pilot, "same values rewritten")

        # Different values of the same width, on the cursor row and others.
        def different(t: DataTable) -> None:
            for i in (0, 2, 7):
                for (_, key), value in zip(COLUMNS, row_cells(i, salt="*")):
                    t.update_cell(f"k{i}", key, value)
            t.update_cell("k3", "state", Text("● STALE", style="bold yellow"))
            t.update_cell_at(Coordinate(4, 3), "coord-at")  # as wide as the column: not cropped

        both(app, different)
        await settle(pilot)
        assert any("coord-at" in line for line in text_of(app.live)), "the written value is on screen"
        await assert_same_all_focus_states(app, pilot, "different values")

        # Longer values that widen their columns.
        def longer(t: DataTable) -> None:
            t.update_cell("k1", "note", "a much longer plain value", update_width=True)
            t.update_cell(
                "k6", "name", Text("vllm-006-with-a-long-name", style="italic magenta"), update_width=True
            )

        both(app, longer)
        await settle(pilot)
        await assert_same_all_focus_states(app, pilot, "longer values, wider columns")

        # Cursor moves: on screen, then far enough down to scroll.
        both(app, lambda t: t.move_cursor(row=5, animate=False))
        await settle(pilot)
        await assert_same_all_focus_states(app, pilot, "cursor on row 5")
        both(app, lambda t: t.move_cursor(row=33, animate=False))
        await settle(pilot)
        assert app.live.scroll_y > 0, "the cursor move scrolled the table"
        await assert_same_all_focus_states(app, pilot, "cursor on row 33 (scrolled)")
        both(app, lambda t: t.update_cell("k33", "rate", Text("   99!", style="reverse")))
        await settle(pilot)
        await assert_same_all_focus_states(app, pilot, "cursor row written")
        both(app, lambda t: t.move_cursor(row=20, animate=False))
        await settle(pilot)
        await assert_same_all_focus_states(app, pilot, "cursor back on row 20")

        # Rows added at the end (and scrolled to).
        def add(t: DataTable) -> None:
            for i in range(40, 46):
                t.add_row(*row_cells(i, salt="+"), key=f"k{i}")
            t.move_cursor(row=44, animate=False)

        both(app, add)
        await settle(pilot)
        await assert_same_all_focus_states(app, pilot, "rows added")

        # The last row removed and added back under the same key (same index, same widths).
        both(app, lambda t: t.move_cursor(row=45, animate=False))
        await settle(pilot)
        assert_same_view(app, "cursor on the last row")

        def readd(t: DataTable) -> None:
            t.remove_row("k45")
            t.add_row(*row_cells(45, salt="!"), key="k45")
            t.move_cursor(row=45, animate=False)

        both(app, readd)
        await settle(pilot)
        assert any("DOWN!" in line for line in text_of(app.live)), "the row's new values are on screen"
        await assert_same_all_focus_states(app, pilot, "last row removed and added back")

        # A row removed above the cursor, on screen: every row below moves up one.
        both(app, lambda t: t.remove_row("k38"))
        await settle(pilot)
        await assert_same_all_focus_states(app, pilot, "row removed")
        both(app, lambda t: t.move_cursor(row=3, animate=False))
        await settle(pilot)
        await assert_same_all_focus_states(app, pilot, "back to the top after the removal")

        # Sorted so that rows on screen trade places two apart (0<->2, 1<->3, ...): each keeps its
        # zebra stripe, so only the row index tells the old rendering from the new one.
        both(app, lambda t: t.sort("name", key=lambda name: int(re.search(r"\d+", name.plain).group()) ^ 2))
        await settle(pilot)
        await assert_same_all_focus_states(app, pilot, "sorted, rows two apart swapped")
        # Sorted on a plain-string column: rows change places (and zebra stripes with them).
        both(app, lambda t: t.sort("note", reverse=True))
        await settle(pilot)
        await assert_same_all_focus_states(app, pilot, "sorted")

        # Cleared and refilled with the same keys (and columns), but other values.
        def refill(t: DataTable) -> None:
            t.clear()
            for i in range(30):
                t.add_row(*row_cells(i, salt="~"), key=f"k{i}")
            t.move_cursor(row=2, animate=False)

        both(app, refill)
        await settle(pilot)
        assert any("~" in line for line in text_of(app.live)), "the refilled values are on screen"
        await assert_same_all_focus_states(app, pilot, "cleared and refilled with the same keys")

        # Columns rebuilt with the same keys (as the Instances screen does on a resize).
        def rebuild(t: DataTable) -> None:
            t.clear(columns=True)
            for label, key in reversed(COLUMNS):
                t.add_column(label.upper(), key=key)
            for i in range(25):
                t.add_row(*reversed(row_cells(i, salt="#")), key=f"k{i}")

        both(app, rebuild)
        await settle(pilot)
        await assert_same_all_focus_states(app, pilot, "columns rebuilt with the same keys")


async def test_a_focus_change_rerenders_only_the_cursor_rows_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once both focus states have been drawn, moving the focus in and out of the LiveTable calls
    a cell rendering for the cursor row's cells only (besides header cells, which LiveTable
    leaves to DataTable, and the hover row's), and what it shows still matches the stock table."""
    app = TwoTables()
    async with app.run_test(size=SIZE) as pilot:
        both(app, lambda t: t.move_cursor(row=4, animate=False))
        await settle(pilot)
        # Draw both focus states once: with Textual's default CSS a focused DataTable is tinted,
        # so the first visit to each state has new row styles and renders every cell.
        app.live.focus()
        await settle(pilot)
        app.query_one("#holder", Input).focus()
        await settle(pilot)

        calls: list[tuple[int, int, bool]] = []  # (row, column, a cursor or hover cell)
        # Every body cell LiveTable renders (on a cache miss) goes through _render_text_cell first.
        render_text_cell = LiveTable._render_text_cell

        def spy(
            self: LiveTable,
            row_index: int,
            column_index: int,
            base_style: Any,
            width: int,
            cursor: bool = False,
            hover: bool = False,
        ) -> Any:
            if self is app.live:
                calls.append((row_index, column_index, cursor or hover))
            return render_text_cell(self, row_index, column_index, base_style, width, cursor, hover)

        monkeypatch.setattr(LiveTable, "_render_text_cell", spy)
        for step, widget in [
            ("focus in", app.live),
            ("focus out", app.query_one("#holder", Input)),
            ("focus in again", app.live),
        ]:
            calls.clear()
            widget.focus()
            await settle(pilot)
            lines(app.live)  # render every visible line now, whether or not the frame did already
            body = [(r, c, cur) for r, c, cur in calls if r >= 0]
            assert body, f"{step}: the cursor row was re-rendered with its new focus style"
            # DataTable's hover cell defaults to (0, 0) before the mouse moves, so row 0 counts as
            # the hover row (rendered with hover=True, kept with the cursor's cells).
            assert all(styled and r in (4, 0) for r, _, styled in body), (
                f"{step}: only the cursor's (and hover's) cells are re-rendered, got {sorted(set(body))}"
            )
            assert {c for r, c, _ in body if r == 4} == set(range(len(COLUMNS))), (
                f"{step}: every cell of the cursor row was re-rendered"
            )
        app.stock.focus()  # and what the cached cells show is right: compare with the stock table focused
        await settle(pilot)
        stock_focused = lines(app.stock)
        app.live.focus()
        await settle(pilot)
        assert lines(app.live) == stock_focused


async def test_a_written_cell_is_rerendered_and_shows_its_new_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """update_cell with a value of the same width (so the column width, part of the cache key,
    does not change): the cell is rendered again and the new value is on screen; its neighbours
    come from the cache."""
    app = TwoTables()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        lines(app.live)
        calls: list[tuple[int, int]] = []
        render_text_cell = LiveTable._render_text_cell

        def spy(self: LiveTable, row_index: int, column_index: int, *args: Any, **kwargs: Any) -> Any:
            if self is app.live and row_index >= 0:
                calls.append((row_index, column_index))
            return render_text_cell(self, row_index, column_index, *args, **kwargs)

        monkeypatch.setattr(LiveTable, "_render_text_cell", spy)
        old = "plain 6"
        y = 1 + 6  # header line, then row 6 (not the cursor row)
        assert old in text_of(app.live)[y]
        both(app, lambda t: t.update_cell("k6", "note", "PLAIN 6"))
        await settle(pilot)
        shown = text_of(app.live)[y]
        assert "PLAIN 6" in shown and old not in shown, f"row 6 shows the new value: {shown!r}"
        assert (6, 3) in calls, "the written cell was rendered again"
        assert set(calls) == {(6, 3)}, f"only the written cell was rendered again, got {sorted(set(calls))}"
        assert_same_view(app, "after one cell written")


# Cells for the fast path's comparison: whole-cell and span styles, plain strings and markup,
# empty cells, text longer than its column (cropped), wide characters and tabs (stock path).
FAST_PATH_CELLS: list[str | Text] = [
    Text("vllm-001", style="bold"),
    Text("  12.3", style="on blue").append(" ▁▂▃▄▅▆▇█", style="cyan"),
    Text("● UP", style="bold green"),
    "4s ago",
    "[b]mark[/b]up",
    "",
    Text(""),
    Text("a-long-model-name-that-does-not-fit-its-column", style="italic magenta"),
    Text("plain then ")
    .append("red", style="red")
    .append(" then ", style="")
    .append("reverse", style="reverse"),
    Text("日本語のモデル名"),
    Text("tab\there"),
    Text("two\nlines"),
]


async def test_the_text_cell_fast_path_renders_the_segments_datatable_would() -> None:
    """LiveTable._render_text_cell against DataTable._render_cell, cell by cell, for every cell
    kind above, in wide and narrow (cropping) columns, plain, zebra, cursor and hover rows, with
    the table focused and not: equal segment lists (text, style and the row/column meta)."""
    app = TwoTables()
    async with app.run_test(size=SIZE) as pilot:
        live = app.live
        live.clear(columns=True)
        for width in (None, 3, 12):
            live.add_column(f"w{width}", width=width)
        for i, cell in enumerate(FAST_PATH_CELLS):
            live.add_row(cell, cell, cell, key=f"f{i}")
        await settle(pilot)
        compared = fast = 0
        for focused in (False, True):
            if focused:
                live.focus()
                await settle(pilot)
            live._pseudo_class_state = live.get_pseudo_class_state()
            for row in range(len(FAST_PATH_CELLS)):
                base = live._get_row_style(row, live.rich_style)
                for column, col in enumerate(live.ordered_columns):
                    width = col.get_render_width(live)
                    for cursor, hover in ((False, False), (True, False), (False, True)):
                        got = live._render_text_cell(row, column, base, width, cursor, hover)
                        live._cell_render_cache.clear()
                        want = DataTable._render_cell(live, row, column, base, width, cursor, hover)
                        compared += 1
                        if got is None:
                            continue
                        fast += 1
                        assert got == want, (
                            f"row {row} ({FAST_PATH_CELLS[row]!r}) column {column} width {width}"
                        )
        plain_rows = len(FAST_PATH_CELLS) - 3  # wide characters, a tab, two lines: stock path
        assert fast == plain_rows * 3 * 3 * 2, f"the fast path took {fast} of {compared} cells"
