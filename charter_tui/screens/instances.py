"""Screen 1, Instances: one row per target, live; the highlighted one's sparklines below.

Columns carry the latest value of each signal, and on wide terminals a small sparkline too;
the panel under the table always shows the highlighted target's five sparklines at full width,
so an 80-column terminal loses no information, only density. Enter opens the detail screen.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Region
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from charter_tui.render import numbers
from charter_tui.render.plot import sparkline
from charter_tui.render.gpu import gpu_strip
from charter_tui.render.signals import FALLBACK_SIGNALS, SIGNAL_LABELS, SIGNAL_RANGE, state_badge
from charter_tui.render.text import server_text
from charter_tui.screens.base import ViewScreen
from charter_tui.widgets.panel import Panel
from charter_tui.state import LIVE_SIGNALS, Series
from daemon.models import Instance, MetricSample
from daemon.text import clean
from charter_tui.widgets.filterbar import matches
from charter_tui.widgets.livetable import LiveTable
from charter_tui.widgets.tables import selected_key, sync_visible_rows


def _engine(inst: Instance | None, latest: MetricSample | None) -> str:
    return clean((inst.engine if inst else None) or (latest.engine if latest else "?"))


def _model(inst: Instance | None) -> str:
    return clean((inst.model if inst else None) or "-")


def _state(inst: Instance | None) -> str:
    return inst.state.value if inst else "UNKNOWN"


def spark(values: list[float | None], name: str, width: int) -> str:
    lo, hi = SIGNAL_RANGE.get(name, (None, None))
    return sparkline(values, width, lo=lo, hi=hi)


class SparkCache:
    """Sparklines per (target, signal, width), recomputed only when the target got a new sample.

    A row's five sparklines bucket up to 600 values each; redrawing 100 rows would redo that for
    rows whose data did not move since the last redraw.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, int], tuple[float, int, str]] = {}

    def get(self, name: str, series: Series, sig: str, width: int) -> str:
        stamp = (series.ts[-1] if series.ts else 0.0, len(series.ts))
        key = (name, sig, width)
        hit = self._cache.get(key)
        if hit is not None and hit[:2] == stamp:
            return hit[2]
        text = spark(series.column(sig), sig, width)
        self._cache[key] = (*stamp, text)
        return text


class TargetTable(LiveTable):
    """The targets table. Its `enter` is DataTable's select (which opens the detail, see
    `InstancesScreen._selected`), named and shown here: DataTable's own binding for the key is
    hidden and, being nearer the focus, hid the screen's `enter` hint from the key bar."""

    BINDINGS = [Binding("enter", "select_cursor", "Detail", id="instances.detail", key_display="⏎")]


class InstancesScreen(ViewScreen):
    MODE = "instances"
    WATCHES = frozenset({"instance", "sample", "bottleneck", "clock", "gpu"})
    BINDINGS = [Binding("enter", "open_detail", "Detail", id="instances.detail", key_display="⏎")]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Panel(id="gpu-strip")
            yield TargetTable(id="instances", cursor_type="row", zebra_stripes=True)
            yield Panel(id="instance-panel", classes="panel")

    def on_mount(self) -> None:
        self.query_one("#instances", DataTable).focus()
        self._columns_for: int | None = None
        self._restore: str | None = None  # the row to put the cursor back on after a column rebuild
        self._placed = False
        self._sparks = SparkCache()

    def _spark_width(self) -> int:
        # Inline sparklines only where they fit beside every column (~120+ columns).
        width = self.size.width or 80
        return 0 if width < 120 else min(16, (width - 95) // 5)

    def _ensure_columns(self, table: DataTable, spark_w: int) -> None:
        """(Re)build the columns when the sparkline width changes (a resize across 120 columns)."""
        if self._columns_for == spark_w:
            return
        keep = selected_key(table)
        table.clear(columns=True)
        table.add_column("target", key="target")
        table.add_column("state", key="state")
        table.add_column("engine", key="engine")
        table.add_column("model", key="model")
        for name in LIVE_SIGNALS:
            table.add_column(SIGNAL_LABELS[name], key=name)
        table.add_column("seen", key="seen")
        self._columns_for = spark_w
        self._restore = keep

    def draw(self, changed: set[str] | frozenset[str]) -> None:
        state = self.charter.state
        if "gpu" in changed:
            self._draw_gpus()
        now = self.charter.clock()
        table = self.query_one("#instances", DataTable)
        spark_w = self._spark_width()
        self._ensure_columns(table, spark_w)
        active = {b.instance for b in state.bottlenecks.values() if b.active}

        def cells_for(name: str) -> list[str | Text]:
            inst = state.instances.get(name)
            latest = state.latest.get(name)
            series = state.series.get(name)
            label = Text(name, style="bold")
            if name in active:
                label.append(" ▲", style="bold red")  # an open bottleneck; details on screen 4
            # Server strings as Text: DataTable would parse a str cell as markup.
            cells: list[str | Text] = [
                label,
                state_badge(_state(inst)),
                server_text(_engine(inst, latest)),
                server_text(_model(inst)),
            ]
            for sig in LIVE_SIGNALS:
                value = getattr(latest, sig) if latest else None
                shown = numbers.FORMATTERS[sig](value)
                if value is None and latest is not None and sig in FALLBACK_SIGNALS:
                    other, mark = FALLBACK_SIGNALS[sig]
                    if (fallback := getattr(latest, other, None)) is not None:
                        shown = f"{numbers.FORMATTERS[sig](fallback)} {mark}"
                cell = Text(shown.rjust(6))
                if spark_w and series:
                    cell.append(" " + self._sparks.get(name, series, sig, spark_w), style="cyan")
                cells.append(cell)
            cells.append(numbers.age(inst.last_seen if inst else (latest.ts if latest else None), now))
            return cells

        keys = []
        for name in state.instance_names():
            inst = state.instances.get(name)
            if matches(
                self.filter_text, name, _engine(inst, state.latest.get(name)), _model(inst), _state(inst)
            ):
                keys.append(name)
        sync_visible_rows(table, keys, cells_for)
        if not self._placed and keys:
            # Start on the first target with data, not on whichever name sorts first.
            self._placed = True
            live = [k for k in keys if k in state.latest]
            if live and self._restore is None:
                self._restore = live[0]
        if self._restore in keys:
            table.move_cursor(row=keys.index(self._restore), animate=False)
        self._restore = None
        self._draw_panel()

    def _draw_gpus(self) -> None:
        strip = self.query_one("#gpu-strip", Static)
        text = gpu_strip(self.charter.state.gpu, self.size.width or 80)
        strip.display = bool(text.plain)
        strip.update(text)

    def warm(self) -> None:
        # Render the table's lines now, while hidden: LiveTable keeps each row's line until the
        # row changes, so the frame that uncovers this screen only assembles them.
        table = self.query_one("#instances", LiveTable)
        width, height = table.outer_size
        if width and height:
            table.render_lines(Region(0, 0, width, height))

    @on(LiveTable.Scrolled, "#instances")
    def _scrolled(self) -> None:
        self.refresh_view({"sample"})  # rows scrolled into view were not drawn while off screen

    @on(DataTable.RowHighlighted, "#instances")
    def _highlighted(self) -> None:
        self._draw_panel()

    def _draw_panel(self) -> None:
        panel = self.query_one("#instance-panel", Static)
        name = selected_key(self.query_one("#instances", DataTable))
        state = self.charter.state
        if name is None:
            panel.update(
                Text(
                    "No targets yet. Add [[targets]] to the config (`charter-tui config path`).", style="dim"
                )
            )
            return
        inst = state.instances.get(name)
        series = state.series.get(name)
        out = Text()
        out.append(name, style="bold")
        if inst is not None:
            out.append(f"  {inst.url}  ", style="dim")
            out.append_text(state_badge(inst.state.value))
            if inst.state_reason:
                out.append_text(server_text(f" ({inst.state_reason})", style="yellow"))
        width = max(10, (panel.size.width or self.size.width or 80) - 22)
        for sig in LIVE_SIGNALS:
            values = series.column(sig) if series else []
            out.append(f"\n{SIGNAL_LABELS[sig]:<9}", style="bold")
            out.append(f"{numbers.FORMATTERS[sig](numbers.last_known(values)):>7}  ")
            out.append(spark(values, sig, width), style="cyan")
        panel.update(out)

    def action_open_detail(self) -> None:
        name = selected_key(self.query_one("#instances", DataTable))
        if name is not None:
            self.charter.show_instance_detail(name)

    @on(DataTable.RowSelected, "#instances")
    def _selected(self) -> None:
        self.action_open_detail()
