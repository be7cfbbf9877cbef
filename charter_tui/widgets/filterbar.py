"""The `/` filter: hidden until asked for, then on the bottom line left of the key hints; the
screen filters its rows by the text."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import Input


class FilterBar(Input):
    DEFAULT_CSS = """
    FilterBar {
        display: none;
        width: 40%;
        max-width: 48;
        height: 1;
        border: none;
        padding: 0 1;
        background: $boost;
    }
    FilterBar.-active {
        display: block;
    }
    FilterBar:focus {
        /* Input's own focus style adds a tall border, which on a 1-line bar covers the typed text */
        border: none;
    }
    """

    def __init__(self, on_change: Callable[[str], None]) -> None:
        super().__init__(placeholder="filter: substring, esc clears", id="filter")
        # A blinking cursor makes snapshots nondeterministic and is noise over SSH.
        self.cursor_blink = False
        self._on_change = on_change

    def watch_value(self, value: str) -> None:
        # Called as the value changes, so the rows are filtered in the same frame that shows the
        # typed character. (Input.Changed is a message: it arrives after that frame is drawn,
        # and the filtered rows would wait for the next one, a frame interval later.)
        self._on_change(value)


def matches(needle: str, *fields: object) -> bool:
    """Case-insensitive substring match over the row's shown fields."""
    if not needle:
        return True
    n = needle.lower()
    return any(n in str(f).lower() for f in fields if f is not None)
