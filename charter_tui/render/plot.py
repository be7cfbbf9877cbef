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
GAP_FACTOR = 2.5
MARK = "┊"  # an annotation (a rollout or bottleneck event) across every plot


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


def time_columns(
    times: Sequence[float], values: Sequence[float | None], start: float, end: float, width: int
) -> list[float | None]:
    """`values` placed by their time on `width` columns from `start` to `end`, each column the max of its
    samples. A column between two samples that are at most `GAP_FACTOR` poll intervals apart shows the
    earlier one (a 5 s poll on a 140-column plot is not a row of gaps); a longer silence — the server
    down, no traffic — stays a gap, where it happened in time."""
    cols: list[float | None] = [None] * max(0, width)
    span = end - start
    if width <= 0 or span <= 0:
        return cols
    points = [(t, v) for t, v in zip(times, values) if start <= t <= end]
    steps = sorted(b[0] - a[0] for a, b in zip(points, points[1:]) if b[0] > a[0])
    max_gap = GAP_FACTOR * steps[len(steps) // 2] if steps else 0.0
    owner: list[float | None] = [None] * width  # when the sample shown in each column was taken
    for t, v in points:
        i = min(width - 1, int((t - start) / span * width))
        if v is not None:
            cols[i] = v if cols[i] is None else max(cols[i], v)  # type: ignore[type-var]
            owner[i] = t
    last_t: float | None = None
    last_v: float | None = None
    for i in range(width):
        if owner[i] is not None:
            last_t, last_v = owner[i], cols[i]
            continue
        column_t = start + (i + 0.5) * span / width
        if last_t is not None and column_t - last_t <= max_gap:
            cols[i] = last_v
    return cols


def ago(seconds: float) -> str:
    """-5m, -2m30s, -1h, -12h: how long before now a point of the time axis is."""
    s = round(seconds)
    if s <= 0:
        return "now"
    if s >= 3600:
        h, m = divmod(s // 60, 60)
        return f"-{h}h" + (f"{m:02d}m" if m else "")
    m, sec = divmod(s, 60)
    return f"-{m}m" + (f"{sec:02d}s" if sec else "") if m else f"-{sec}s"


def time_axis(start: float, end: float, plot_w: int, axis_w: int) -> Text:
    """The x-axis under plots drawn with `axis_width=axis_w`: start, middle and now, at their columns."""
    line = [" "] * plot_w
    for frac in (0.0, 0.5, 1.0):
        label = ago((end - start) * (1 - frac))
        if frac == 0.0:
            at = 0
        elif frac == 1.0:
            at = plot_w - len(label)
        else:
            at = round(frac * (plot_w - 1)) - len(label) // 2
        at = max(0, min(at, plot_w - len(label)))
        line[at : at + len(label)] = list(label)
    out = Text(" " * axis_w + "└", style="dim")
    out.append("".join(line), style="dim")
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
    axis_width: int | None = None,
    times: Sequence[float] | None = None,
    window: tuple[float, float] | None = None,
    marks: Sequence[int] = (),
) -> Text:
    """A `height`-row bar plot with a y-axis (max at top, min at bottom) and an optional
    horizontal reference line (`ceiling`, e.g. the compiler's reachable hit rate).

    With `times` and `window` (start, end) the columns are time, not sample order (`time_columns`);
    `axis_width` fixes the y-axis width so plots stacked on one screen share their columns, and `marks`
    (column indices) draw annotation lines through the empty cells of those columns."""
    fmt = label or (lambda v: f"{v:.3g}")
    lo0, hi0 = _scale(values, lo, hi if ceiling is None else max(ceiling, hi or ceiling))
    axis_w = axis_width or max(len(fmt(hi0)), len(fmt(lo0))) + 1
    plot_w = max(1, width - axis_w - 1)
    if times is not None and window is not None:
        cols = time_columns(times, values, window[0], window[1], plot_w)
    else:
        cols = bucket(values, plot_w)
    marked = set(marks)
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
        out.append(y_label[: axis_w - 1].rjust(axis_w - 1) + " ", style="dim")
        out.append("│", style="dim")
        base = (height - 1 - row) * 8  # eighths below this row
        # Build the row as runs of one style: one Text.append per run, not per cell (plots are
        # redrawn live, and per-cell appends dominated the detail screen's cost).
        run: list[str] = []
        run_style = style
        for col, level in enumerate(levels):
            if level is None:
                ch, st = (
                    ("╌", "bold magenta") if ceil_row == row else ("·" if row == height - 1 else " ", "dim")
                )
                if col in marked and ch != "╌":
                    ch, st = MARK, "magenta"
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
                elif ch == " " and col in marked:
                    ch, st = MARK, "magenta"
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
