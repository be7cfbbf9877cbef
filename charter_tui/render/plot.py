"""Sparklines and small multi-row plots from block characters.

Hand-written rather than Textual's `Sparkline` because a monitor needs gaps: a missing sample
(server down, no traffic for that signal) must show as blank, not as a zero that looks like a
real drop. Block characters (not braille) keep plots legible in a 256-colour terminal over SSH
with any font.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text

BLOCKS = " ▁▂▃▄▅▆▇█"


def bucket(values: Sequence[float | None], width: int) -> list[float | None]:
    """Fit `values` into `width` columns: the newest at the right, each column the bucket's max.

    Max (not mean) so a short latency spike stays visible when many samples share a column.
    """
    if width <= 0:
        return []
    if len(values) <= width:
        return [None] * (width - len(values)) + list(values)
    out: list[float | None] = []
    n = len(values)
    for i in range(width):
        lo, hi = i * n // width, (i + 1) * n // width
        chunk = [v for v in values[lo:hi] if v is not None]
        out.append(max(chunk) if chunk else None)
    return out


def _scale(values: Sequence[float | None], lo: float | None, hi: float | None) -> tuple[float, float]:
    known = [v for v in values if v is not None]
    lo = min(known, default=0.0) if lo is None else lo
    hi = max(known, default=1.0) if hi is None else hi
    lo = min(lo, 0.0)  # anchor at zero: a monitor that zooms on noise makes noise look like trouble
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def sparkline(
    values: Sequence[float | None], width: int, *, lo: float | None = None, hi: float | None = None
) -> str:
    """One row of block characters; `·` marks a column with no data."""
    cols = bucket(values, width)
    lo, hi = _scale(cols, lo, hi)
    chars = []
    for v in cols:
        if v is None:
            chars.append("·")
            continue
        level = round((v - lo) / (hi - lo) * 8)
        chars.append(BLOCKS[max(1, min(8, level))])
    return "".join(chars)


def plot(
    values: Sequence[float | None],
    width: int,
    height: int,
    *,
    lo: float | None = None,
    hi: float | None = None,
    ceiling: float | None = None,
    style: str = "cyan",
    label: Callable[[float], str] | None = None,
) -> Text:
    """A `height`-row bar plot with a y-axis (max at top, min at bottom) and an optional
    horizontal reference line (`ceiling`, e.g. the compiler's reachable hit rate)."""
    fmt = label or (lambda v: f"{v:.3g}")
    lo0, hi0 = _scale(values, lo, hi if ceiling is None else max(ceiling, hi or ceiling))
    axis_w = max(len(fmt(hi0)), len(fmt(lo0))) + 1
    plot_w = max(1, width - axis_w - 1)
    cols = bucket(values, plot_w)
    if ceiling is not None:
        hi = max(ceiling, hi if hi is not None else max((v for v in cols if v is not None), default=ceiling))
    lo_v, hi_v = _scale(cols, lo, hi)
    levels = [None if v is None else (v - lo_v) / (hi_v - lo_v) * height * 8 for v in cols]
    ceil_row = None
    if ceiling is not None:
        ceil_row = height - 1 - min(height - 1, int((ceiling - lo_v) / (hi_v - lo_v) * height - 1e-9))
    out = Text()
    for row in range(height):
        y_label = fmt(hi_v) if row == 0 else (fmt(lo_v) if row == height - 1 else "")
        out.append(y_label.rjust(axis_w - 1) + " ", style="dim")
        out.append("│", style="dim")
        base = (height - 1 - row) * 8  # eighths below this row
        # Build the row as runs of one style: one Text.append per run, not per cell (plots are
        # redrawn live, and per-cell appends dominated the detail screen's cost).
        run: list[str] = []
        run_style = style
        for level in levels:
            if level is None:
                ch, st = (
                    ("╌", "bold magenta") if ceil_row == row else ("·" if row == height - 1 else " ", "dim")
                )
            else:
                fill = level - base
                if fill >= 8:
                    ch = "█"
                elif fill <= 0:
                    ch = "▁" if row == height - 1 and level <= 0 else " "
                else:
                    ch = BLOCKS[max(1, int(round(fill)))]
                st = style
                if ch == " " and ceil_row == row:
                    ch, st = "╌", "bold magenta"
            if st != run_style and run:
                out.append("".join(run), style=run_style)
                run = []
            run_style = st
            run.append(ch)
        if run:
            out.append("".join(run), style=run_style)
        if row < height - 1:
            out.append("\n")
    return out
