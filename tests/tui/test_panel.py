"""Panel (charter_tui/widgets/panel.py): a Static that skips identical content and asks for a
layout pass only when its content's shape (line count, or a line wider than the panel) changes."""

from __future__ import annotations

from typing import Any

import pytest
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult

from charter_tui.widgets.panel import Panel, shape_of

WIDTH = 20  # the panel's content width in the app below


def test_shape_of_text_is_its_line_count_and_whether_a_line_is_too_wide() -> None:
    assert shape_of(Text("one line"), 20) == (1, False)
    assert shape_of(Text("a\nbb\nccc", style="bold"), 20) == (3, False)
    assert shape_of(Text("x" * 20), 20) == (1, False), "a line exactly as wide as the panel fits"
    assert shape_of(Text("ok\n" + "x" * 21), 20) == (2, True)


def test_shape_of_a_string_counts_lines_and_cells_not_characters() -> None:
    assert shape_of("", 20) == (1, False)
    assert shape_of("a\nb\n", 20) == (3, False), "a trailing newline is an empty last line"
    assert shape_of("日本語日本語日本", 16) == (1, False)
    assert shape_of("日本語日本語日本語", 16) == (1, True), "9 wide characters are 18 cells"


def test_shape_of_is_wide_when_the_panel_has_no_width_yet() -> None:
    assert shape_of("x", 0) == (1, True)


def test_shape_of_another_renderable_is_unknown() -> None:
    assert shape_of(Table("a", "b"), 20) is None


class PanelApp(App[None]):
    CSS = f"Panel {{ width: {WIDTH}; height: auto; }}"

    def compose(self) -> ComposeResult:
        yield Panel(Text("first\nsecond"), id="p")


def spy_refresh(panel: Panel, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records the `layout` argument of each `panel.refresh` call from here on."""
    calls: list[bool] = []
    refresh = panel.refresh

    def spy(*regions: Any, layout: bool = False, **kwargs: Any) -> Any:
        calls.append(layout)
        return refresh(*regions, layout=layout, **kwargs)

    monkeypatch.setattr(panel, "refresh", spy)
    return calls


async def test_panel_update_with_equal_content_does_not_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 10)) as pilot:
        await pilot.pause()
        panel = app.query_one(Panel)
        panel.update(Text("first\nsecond"))
        await pilot.pause()
        shown = panel.content
        calls = spy_refresh(panel, monkeypatch)
        panel.update(Text("first\nsecond"))  # a new, equal object (what a 1 Hz redraw builds)
        assert calls == [], "identical content: no refresh at all"
        assert panel.content is shown


async def test_panel_update_with_the_same_shape_refreshes_without_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 10)) as pilot:
        await pilot.pause()
        panel = app.query_one(Panel)
        panel.update(Text("FIRST\nSECOND"))  # an update (not the constructor's) records the shape
        await pilot.pause()
        calls = spy_refresh(panel, monkeypatch)
        new = Text("1st\n2nd", style="bold")
        panel.update(new)
        assert calls == [False], "same line count, every line fits: repaint only"
        assert panel.content is new
        await pilot.pause()
        assert panel.size.height == 2
        assert "2nd" in panel.render_line(1).text, "the new content is drawn"


async def test_panel_update_with_another_line_count_refreshes_with_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 10)) as pilot:
        await pilot.pause()
        panel = app.query_one(Panel)
        panel.update(Text("first\nsecond"))
        await pilot.pause()
        calls = spy_refresh(panel, monkeypatch)
        panel.update(Text("first\nsecond\nthird"))
        assert calls == [True], "a line more: the panel's height changes, so a layout pass"
        await pilot.pause()
        assert panel.size.height == 3, "and the panel grew"
        calls.clear()
        panel.update(Text("only one"))
        assert calls == [True]
        await pilot.pause()
        assert panel.size.height == 1


async def test_panel_update_with_a_line_wider_than_the_panel_refreshes_with_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 10)) as pilot:
        await pilot.pause()
        panel = app.query_one(Panel)
        panel.update(Text("first\nsecond"))
        await pilot.pause()
        calls = spy_refresh(panel, monkeypatch)
        panel.update(Text("first\n" + "word " * 8))  # 40 cells: wraps in a 20-cell panel
        assert calls == [True], "a line may wrap: layout even with the same line count"
        await pilot.pause()
        assert panel.size.height > 2, "the wrapped line made the panel taller"
        calls.clear()
        panel.update(Text("first\n" + "WORD " * 8))  # same shape as shown, but still too wide
        assert calls == [True], "too wide is never assumed to keep the height"


async def test_panel_update_with_another_renderable_or_an_explicit_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 10)) as pilot:
        await pilot.pause()
        panel = app.query_one(Panel)
        calls = spy_refresh(panel, monkeypatch)
        panel.update(Table("a", "b"))
        assert calls == [True], "a renderable's height is unknown: layout"
        calls.clear()
        panel.update(Text("first\nsecond"), layout=False)
        panel.update(Text("first\nsecond"), layout=True)
        assert calls == [False, True], "an explicit layout= is passed through, even for equal content"


async def test_panel_update_with_only_the_text_style_changed_shows_the_new_style() -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 10)) as pilot:
        await pilot.pause()
        panel = app.query_one(Panel)
        panel.update(Text("status", style="red"))
        await pilot.pause()
        new = Text("status", style="green")
        panel.update(new)
        assert panel.content is new
