"""Helpers for driving the app in tests: a config, settling the live view, reading the screen."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from textual.app import App
from textual.widgets import DataTable, Static


def write_config(tmp_path: Path, body: str = "") -> Path:
    config = tmp_path / "charter.toml"
    config.write_text("[daemon]\nmetrics_port = 0\n" + body)
    return config


def screen_text(app: App) -> str:
    """The whole screen as plain text, as a user would read it (modals over their background)."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def table_rows(app: App, selector: str) -> dict[str, list[str]]:
    """A DataTable's rows by key, each cell as its plain text."""
    table = app.screen.query_one(selector, DataTable)
    out = {}
    for row_key in table.rows:
        out[row_key.value] = [getattr(c, "plain", str(c)) for c in table.get_row(row_key)]
    return out


def static_text(app: App, selector: str) -> str:
    widget = app.screen.query_one(selector, Static)
    content = widget.content
    return getattr(content, "plain", str(content))


async def settle(app, pilot, rounds: int = 3) -> None:  # type: ignore[no-untyped-def]
    """Let the pump drain the bus, then redraw the active screen with everything."""
    for _ in range(rounds):
        await pilot.pause()
        sub = getattr(app.source, "subscription", None)
        while sub is not None and not sub.queue.empty():
            await pilot.pause(0.01)
    app.flush_now()
    await pilot.pause()


async def wait_until(app, pilot, check, timeout: float = 30.0, what: str = "") -> float:  # type: ignore[no-untyped-def]
    """Settle repeatedly until `check()` holds; returns the seconds it took. Fails with the screen."""
    import time

    start = time.monotonic()
    while True:
        await settle(app, pilot, rounds=1)
        try:
            if check():
                return time.monotonic() - start
        except Exception:  # noqa: BLE001 - a widget not mounted yet is "not yet", not a failure
            pass
        if time.monotonic() - start > timeout:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what or check}:\n{screen_text(app)}"
            )
        await pilot.pause(0.05)
