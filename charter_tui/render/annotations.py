"""Events drawn on a target's plots, as Grafana annotations are: rollouts and bottlenecks, at their time.

A rollout that touched the target is marked where its canary started, where it was promoted and where it
failed or was rolled back (from the audit log's state changes); a bottleneck of the target where it
opened and where it cleared. The plots draw a `┊` through their empty cells at each event's column; the
legend under them says what each was, newest last.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from charter_tui.render import numbers
from charter_tui.render.plot import MARK
from charter_tui.state import DaemonState

# A rollout's state entered -> what the legend calls it, and its style.
ROLLOUT_EVENTS = {
    "CANARY": ("canary", "cyan"),
    "COMPLETED": ("promoted", "green"),
    "ROLLING_BACK": ("rolling back", "yellow"),
    "ROLLED_BACK": ("rolled back", "yellow"),
    "FAILED": ("failed", "red"),
}
LEGEND_MAX = 6


@dataclass(frozen=True)
class Annotation:
    ts: float
    text: str
    style: str


def annotations_for(state: DaemonState, name: str, start: float, end: float) -> list[Annotation]:
    out = []
    for ev in state.audit:
        if ev.entity != "rollout" or ev.to_state not in ROLLOUT_EVENTS or not start <= ev.ts <= end:
            continue
        rollout = state.rollouts.get(int(ev.entity_id)) if ev.entity_id.isdigit() else None
        if rollout is None or name not in rollout.targets:
            continue
        what, style = ROLLOUT_EVENTS[ev.to_state]
        out.append(Annotation(ev.ts, f"rollout #{rollout.id} {what}", style))
    for b in state.bottlenecks.values():
        if b.instance != name:
            continue
        if start <= b.started_at <= end:
            out.append(Annotation(b.started_at, f"{b.kind} opened", "red"))
        if b.cleared_at is not None and start <= b.cleared_at <= end:
            out.append(Annotation(b.cleared_at, f"{b.kind} cleared", "green"))
    return sorted(out, key=lambda a: a.ts)


def columns_of(annotations: list[Annotation], start: float, end: float, plot_w: int) -> list[int]:
    span = end - start
    if span <= 0 or plot_w <= 0:
        return []
    return sorted({min(plot_w - 1, int((a.ts - start) / span * plot_w)) for a in annotations})


def legend(annotations: list[Annotation]) -> Text:
    if not annotations:
        return Text("no rollout or bottleneck events in this window", style="dim")
    shown = annotations[-LEGEND_MAX:]
    out = Text()
    if len(annotations) > len(shown):
        out.append(f"(+{len(annotations) - len(shown)} earlier)  ", style="dim")
    for i, a in enumerate(shown):
        if i:
            out.append("  ")
        out.append(MARK, style="magenta")
        out.append(f" {numbers.clock(a.ts)} ", style="dim")
        out.append(a.text, style=a.style)
    return out
