"""The cache doctor's waterfall as terminal bars: one line per step on a shared 0-100% axis.

The ceiling and the delivered share are bars from zero; each loss is a bar hanging from the level
left before it down to the level after it (as a waterfall chart draws it), so the eye follows the
points from what the code could reuse to what the server delivered. Evidence text is the engine's
and the compiler's own words, shown sanitized (it may quote a server's labels).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from daemon.bench.records import WaterfallStep
from daemon.text import clean

LEVEL_STEPS = ("ceiling", "delivered")
NAME_WIDTH = 12


def waterfall_text(steps: Sequence[WaterfallStep], width: int) -> Text:
    """`width` columns: name, bar, points, then as much evidence as fits."""
    if not steps:
        return Text("no waterfall: the run has no estimate or no server counters", style="dim")
    bar_width = max(10, min(40, width // 3))
    out = Text()
    level = 0.0
    for i, step in enumerate(steps):
        if i:
            out.append("\n")
        is_level = step.name in LEVEL_STEPS
        if step.name == "ceiling":
            level = step.points
        start, end = (0.0, step.points) if is_level else (max(0.0, level - step.points), level)
        if not is_level:
            level = max(0.0, level - step.points)
        lo = round(max(0.0, min(100.0, start)) / 100 * bar_width)
        hi = max(lo, round(max(0.0, min(100.0, end)) / 100 * bar_width))
        if not is_level and step.points > 0 and hi == lo:
            hi = min(bar_width, lo + 1)  # a loss under one cell still shows
        style = "cyan" if step.name == "ceiling" else "green" if step.name == "delivered" else "red"
        if not is_level and step.points <= 0:
            style = "dim"
        out.append(f"{step.name:<{NAME_WIDTH}}", style="bold" if is_level else "")
        out.append(" " * lo + "█" * (hi - lo) + " " * (bar_width - hi), style=style)
        value = f"{step.points:5.1f}%" if is_level else f"-{step.points:4.1f}pt"
        out.append(f" {value} ")
        room = width - NAME_WIDTH - bar_width - len(value) - 3
        if room > 10:
            evidence = clean(step.evidence)
            out.append(evidence if len(evidence) <= room else evidence[: room - 1] + "…", style="dim")
    return out
