"""The `/` filter: hidden until asked for, then on the bottom line left of the key hints; the
screen filters its rows by the text."""

from __future__ import annotations

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
    """

    def __init__(self) -> None:
        super().__init__(placeholder="filter: substring, esc clears", id="filter")
        # A blinking cursor makes snapshots nondeterministic and is noise over SSH.
        self.cursor_blink = False


def matches(needle: str, *fields: object) -> bool:
    """Case-insensitive substring match over the row's shown fields."""
    if not needle:
        return True
    n = needle.lower()
    return any(n in str(f).lower() for f in fields if f is not None)
