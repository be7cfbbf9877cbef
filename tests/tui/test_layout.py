"""What a user sees at the two sizes the issue names: 160x48 (a wide terminal) and 80x24 (the default).

Each test reads the rendered screen, as a user reads it: a header cut to "ca" or a footer that lost "q Quit"
fails here, whatever the widgets' own widths claim.
"""

from __future__ import annotations

from charter_tui.app import CharterApp
from tests.tui.helpers import screen_text, settle


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
