"""`?`: every key binding of the app and of each screen, with the key it is bound to now.

Built from the same `BINDINGS` declarations the app runs on (after the user's keymap), so it
cannot drift from what the keys actually do. In read-only mode the mutating keys are listed as
disabled rather than left out, so a user learns why `a` does nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from charter_tui.widgets.livetable import LiveTable


def binding_rows(
    scopes: Iterable[tuple[str, Iterable[Binding]]], keymap: dict[str, str], readonly_ids: set[str]
) -> list[tuple[str, str, str, str]]:
    """(scope, key, what it does, binding id) for every binding with a description."""
    rows = []
    for scope, bindings in scopes:
        for b in bindings:
            if not b.description:
                continue
            key = keymap.get(b.id, b.key_display or b.key) if b.id else (b.key_display or b.key)
            what = b.description + (" (disabled: read-only)" if b.id in readonly_ids else "")
            rows.append((scope, key, what, b.id or ""))
    return rows


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > #help {
        width: 90%;
        max-width: 100;
        height: 90%;
        border: thick $accent;
        background: $surface;
    }
    HelpScreen DataTable {
        height: 1fr;
    }
    """
    BINDINGS = [
        Binding("escape,question_mark,q", "app.pop_screen", "Close", show=False),
    ]

    def __init__(self, rows: list[tuple[str, str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(
                Text(" Keys  (esc closes; remap any id under [keymap.bindings] in the config)", style="bold")
            )
            yield LiveTable(id="help-table", cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("where", key="where")
        table.add_column("key", key="key")
        table.add_column("action", key="action")
        table.add_column("id", key="id")
        for i, (scope, key, what, bid) in enumerate(self.rows):
            style = "dim" if "read-only" in what else ""
            table.add_row(
                scope,
                Text(key, style="bold cyan"),
                Text(what, style=style),
                Text(bid, style="dim"),
                key=f"{i}",
            )
        table.focus()
