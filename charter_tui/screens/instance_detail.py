"""One target in detail: larger plots of its signals over 5 min, 1 h or 24 h (`w` cycles).

5 min comes from the live ring buffer (so it moves every poll); 1 h and 24 h are read from the
store on a worker (per-minute aggregates past the raw retention) and re-read every
`HISTORY_REFRESH_S`, never on the UI thread. The plots share one time axis (columns are time, so a
silent server is a gap where it was silent) and carry the target's rollout and bottleneck events as
annotation lines, explained in the legend under them (render/annotations.py).
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from charter_tui.render import numbers
from charter_tui.render.annotations import annotations_for, columns_of, legend
from charter_tui.render.gpu import target_gpus
from charter_tui.render.plot import plot, time_axis
from charter_tui.render.text import server_text
from charter_tui.screens.base import ViewScreen
from charter_tui.widgets.panel import Panel
from charter_tui.render.signals import SIGNAL_LABELS, SIGNAL_RANGE, state_badge
from charter_tui.state import LIVE_SIGNALS
from daemon.models import Instance

AXIS_W = 8  # the y-axis labels' width, the same on every plot so their columns line up in time
WINDOWS: tuple[tuple[str, float], ...] = (("5m", 300.0), ("1h", 3600.0), ("24h", 86400.0))
HISTORY_REFRESH_S = 15.0


class InstanceDetailScreen(ViewScreen):
    MODE = "instances"
    WATCHES = frozenset({"instance", "sample", "clock", "rollout", "audit", "bottleneck", "gpu"})
    BINDINGS = [Binding("w", "cycle_window", "Window", id="detail.window")]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.show_target(name)

    def show_target(self, name: str) -> None:
        """Point the screen at a target (the app keeps one detail screen and reuses it)."""
        self.instance_name = name
        self.window_index = 0
        self._history: list[tuple[float, dict[str, float | None]]] | None = None
        self._history_at = 0.0

    def compose_body(self) -> ComposeResult:
        yield Panel(id="detail-header", classes="panel")
        with VerticalScroll(id="plots"):
            for sig in LIVE_SIGNALS:
                yield Panel(id=f"plot-{sig}", classes="plot")
            yield Panel(id="plot-time", classes="plot")

    def on_mount(self) -> None:
        self.query_one("#plots").focus()

    @property
    def window(self) -> tuple[str, float]:
        return WINDOWS[self.window_index]

    def action_cycle_window(self) -> None:
        self.window_index = (self.window_index + 1) % len(WINDOWS)
        self._history = None
        self._history_at = 0.0
        self.refresh_view({"sample"})

    def _columns(self) -> tuple[list[float], dict[str, list[float | None]]]:
        """The window's sample times and, per signal, its values at those times."""
        label, span = self.window
        now = self.charter.clock()
        if label == "5m" or self._history is None:
            series = self.charter.state.series.get(self.instance_name)
            if series is None:
                return [], {sig: [] for sig in LIVE_SIGNALS}
            since = now - span
            return [t for t in series.ts if t >= since], {
                sig: series.column(sig, since=since) for sig in LIVE_SIGNALS
            }
        return [ts for ts, _ in self._history], {
            sig: [row.get(sig) for _, row in self._history] for sig in LIVE_SIGNALS
        }

    def draw(self, changed: set[str] | frozenset[str]) -> None:
        label, span = self.window
        if label != "5m" and time.monotonic() - self._history_at > HISTORY_REFRESH_S:
            self._history_at = time.monotonic()
            self.load_history(span)
        state = self.charter.state
        inst = state.instances.get(self.instance_name)
        header = Text(self.instance_name, style="bold")
        if inst is not None:
            header.append_text(
                server_text(f"  {engine_label(inst)}  {inst.model or '-'}  {inst.url}  ", style="dim")
            )
            header.append_text(state_badge(inst.state.value))
            if inst.state_reason:
                header.append_text(server_text(f" ({inst.state_reason})", style="yellow"))
        gpus = target_gpus(state.gpu, self.instance_name, self.size.width or 80)
        if gpus.plain:
            header.append("\n")
            header.append_text(gpus)
        header.append("\nwindow: ")
        for i, (name, _) in enumerate(WINDOWS):
            header.append(f" {name} ", style="bold reverse" if i == self.window_index else "dim")
        source = "live" if label == "5m" or self._history is None else "store"
        header.append(f"  (w cycles; {source})", style="dim")
        self.query_one("#detail-header", Static).update(header)

        times, columns = self._columns()
        plots = self.query_one("#plots")
        width = max(20, (plots.size.width or self.size.width or 80) - 2)
        # Fit all five plots on screen when possible: title row + plot rows each, and the axis's 2.
        avail = (plots.size.height or max(10, (self.size.height or 24) - 6)) - 2
        height = max(2, min(8, avail // len(LIVE_SIGNALS) - 1))
        end = self.charter.clock()
        start = end - span
        plot_w = max(1, width - AXIS_W - 1)
        events = annotations_for(state, self.instance_name, start, end)
        marks = columns_of(events, start, end, plot_w)
        for sig in LIVE_SIGNALS:
            values = columns[sig]
            fmt = numbers.FORMATTERS[sig]
            known = [v for v in values if v is not None]
            title = Text(f"{SIGNAL_LABELS[sig]}", style="bold")
            title.append(f"  now {fmt(numbers.last_known(values))}", style="")
            if known:
                title.append(f"  min {fmt(min(known))}  max {fmt(max(known))}  n={len(known)}", style="dim")
            lo, hi = SIGNAL_RANGE.get(sig, (None, None))
            body = (
                plot(
                    values,
                    width,
                    height,
                    lo=lo,
                    hi=hi,
                    label=fmt,
                    axis_width=AXIS_W,
                    times=times,
                    window=(start, end),
                    marks=marks,
                )
                if known
                else Text("no data", style="dim")
            )
            self.query_one(f"#plot-{sig}", Static).update(Text.assemble(title, "\n", body))
        axis = time_axis(start, end, plot_w, AXIS_W)
        self.query_one("#plot-time", Static).update(Text.assemble(axis, "\n", legend(events)))

    @work(exclusive=True, group="history", exit_on_error=False)
    async def load_history(self, span: float) -> None:
        rows = await self.charter.source.history(self.instance_name, self.charter.clock() - span)
        self._history = rows or None
        self.refresh_view({"sample"})


def engine_label(inst: Instance) -> str:
    """The engine, and for a vLLM the backend it was read to run (its metrics do not say; it decides which
    settings are offered, e.g. no 16-token KV blocks on the CPU backend): `vllm on CPU`."""
    platform = (inst.info or {}).get("platform")
    return f"{inst.engine} on {platform.upper()}" if platform in ("cpu", "gpu") else str(inst.engine)
