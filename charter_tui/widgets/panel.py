"""A Static for content that is redrawn every second.

`Static.update` asks for a layout pass on every call, and a layout pass reflows and re-renders the
whole screen: with a 1 Hz feed that was a full-screen render every second (~25 ms at 160x48),
which is also what a key press then had to wait behind. A `Panel` skips content identical to what
it shows, and asks for a layout pass only when the content's shape (its line count, or a line
too long for the panel) may change the panel's height; otherwise it repaints just itself.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.visual import VisualType
from textual.widgets import Static

Shape = tuple[int, bool] | None  # (lines, any line wider than the panel); None: not known


def shape_of(content: VisualType, width: int) -> Shape:
    if isinstance(content, Text):
        plain = content.plain
    elif isinstance(content, str):
        plain = content
    else:
        return None  # another renderable (a table, a group): its height is not cheap to know
    lines = plain.split("\n")
    return len(lines), width <= 0 or any(cell_len(line) > width for line in lines)


def same_content(a: object, b: object) -> bool:
    """Equal as shown. Rich's `Text.__eq__` compares only the characters and spans, not the Text's
    own style or layout settings, so a status that changes colour but not wording is not equal."""
    if isinstance(a, Text) and isinstance(b, Text):
        return a == b and (a.style, a.justify, a.overflow, a.no_wrap, a.end) == (
            b.style,
            b.justify,
            b.overflow,
            b.no_wrap,
            b.end,
        )
    return type(a) is type(b) and a == b


class Panel(Static):
    _shape: Shape = None

    def update(self, content: VisualType = "", *, layout: bool | None = None) -> None:
        if layout is None:
            if self.is_mounted and same_content(content, self.content):
                return
            shape = shape_of(content, self.content_region.width)
            layout = shape is None or shape[1] or shape != self._shape
            self._shape = shape
        super().update(content, layout=layout)
