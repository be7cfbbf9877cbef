"""What a user sees at the two sizes the issue names: 160x48 (a wide terminal) and 80x24 (the default).

Each test reads the rendered screen, as a user reads it: a header cut to "ca" or a footer that lost "q Quit"
fails here, whatever the widgets' own widths claim.
"""

from __future__ import annotations

from textual.widgets import DataTable

from charter_tui.app import CharterApp
from tests.tui.helpers import screen_text, settle, static_text


async def test_the_agents_list_shows_its_column_names_whole_at_160x48(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        text = screen_text(app)
        header = next(line for line in text.splitlines() if " file " in f" {line} ")
        for name in ("file", "status", "calls", "patterns"):
            assert f" {name} " in f" {header} ", header


async def test_the_filter_shows_what_is_typed(make_app) -> None:
    """`/` then typing: the bottom line shows the typed text (Input's focus border used to cover it)."""
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        await pilot.press("slash", "r", "e", "s")
        await settle(app, pilot)
        bottom = screen_text(app).splitlines()[-1]
        assert bottom.lstrip().startswith("res") and "▔" not in bottom, bottom


async def test_at_80x24_the_rollouts_footer_keeps_its_keys_and_quit(make_app) -> None:
    """The Rollouts screen's four keys and `q` Quit fit on 80 columns: the generic hints (`/` filter,
    `esc` back, `:` commands), which `?` lists anyway, give way first."""
    app: CharterApp = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        footer = screen_text(app).splitlines()[-1]
        for hint in ("a Approve", "r Reject", "b Rollback", "p Pause/resume", "? Help", "q Quit"):
            assert hint in footer, footer
        assert "…" not in footer
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:  # with room, nothing is dropped
        await pilot.press("5")
        await settle(app, pilot)
        footer = screen_text(app).splitlines()[-1]
        assert "/ Filter" in footer and "esc Back" in footer and ": Commands" in footer and "q Quit" in footer


def _header_and_row(text: str, name: str) -> tuple[str, str]:
    """The files list's header line and the line of the file called `name` (its left pane)."""
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(" file "))
    return lines[i], next(line for line in lines[i + 1 :] if line.startswith(f" {name[:8]}"))


async def test_at_80x24_the_agents_list_fits_its_pane_with_every_heading_whole(make_app) -> None:
    """80 columns leave the list a 40-cell pane: its headings used to read "file  status  calls  patte"
    (the rest scrolled off). Now every heading shown is whole, each value starts under its heading, and
    what gives way is the file name's end (`…`) and the call count (the calls table lists the calls);
    widened to 160x48 the list has all four columns again."""
    from daemon.bus import topic
    from tests.tui.fixtures import AGENT_PATH, syntax_error_record

    app: CharterApp = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        files = app.screen.query_one("#files", DataTable)
        headings = [str(c.label) for c in files.ordered_columns]
        assert headings[0] == "file" and "status" in headings and "patterns" in headings, headings
        header, row = _header_and_row(screen_text(app), "research_agent.py")
        for name in headings:
            assert f" {name} " in f"{header} ", header
        assert files.virtual_size.width <= files.scrollable_content_region.width, "nothing scrolls off"
        assert row.startswith(" research_agent… ") or row.startswith(" research_agent.py "), row
        assert row.index("✓ ok") == header.index(" status ") + 1, (header, row)
        assert row.index("!DP BR SEQ SP") == header.index(" patterns ") + 1, (header, row)

        app.source.bus.publish(topic("compile", AGENT_PATH), syntax_error_record())
        await settle(app, pilot)
        header, row = _header_and_row(screen_text(app), "research_agent.py")
        for name in headings:
            assert f" {name} " in f"{header} ", header
        assert row.index("✗ 27:12 ") == header.index(" status ") + 1, (header, row)  # the position, short

        await pilot.resize_terminal(160, 48)
        await settle(app, pilot)
        header, row = _header_and_row(screen_text(app), "research_agent.py")
        for name in ("file", "status", "calls", "patterns"):
            assert f" {name} " in f"{header} ", header
        assert " research_agent.py " in row and "✗ line 27, col 12" in row, row


async def test_at_80x24_the_agents_detail_header_keeps_the_file_name_whole(make_app) -> None:
    """A path longer than the detail pane used to fold inside a name ("…document_p" / "rocessor.py");
    now its leading directories give way to `…/`, cut at a `/`."""
    from daemon.bus import topic
    from tests.tui.fixtures import compile_record

    path = "/home/someone/projects/charter/agents/document_processor.py"
    app: CharterApp = make_app()
    app.source.bus.publish(topic("compile", path), compile_record(path=path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        await pilot.press("down")  # the second file, after /agents/research_agent.py
        await settle(app, pilot)
        header = static_text(app, "#compile-status").splitlines()[0]
        assert header.startswith("…/") and "/agents/document_processor.py" in header, header
        assert "…/agents/document_processor.py" in screen_text(app)
        await pilot.resize_terminal(160, 48)  # with room, the whole path
        await settle(app, pilot)
        assert static_text(app, "#compile-status").startswith(path + "  compiled")


def test_short_path_cuts_only_at_a_slash() -> None:
    from charter_tui.screens.agents import short_path

    path = "/home/someone/agents/document_processor.py"
    assert short_path(path, 80) == path
    assert short_path(path, 0) == path  # width not known yet
    assert short_path(path, 30) == "…/agents/document_processor.py"
    assert short_path(path, 29) == "…/document_processor.py"
    assert short_path(path, 10) == "…/document_processor.py"  # a name longer than the width stays whole
