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
from charter_tui.fleet import row_key, split_row_key
from charter_tui.state import LIVE_SIGNALS, DaemonState, Series
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
    """Attached to several daemons (`tui --connect`), the rows are grouped by daemon: a summary row per box
    (its link, targets up, open bottlenecks, rollouts waiting), then its targets; opening a row shows that
    daemon on the other screens too."""

    MODE = "instances"
    WATCHES = frozenset({"instance", "sample", "bottleneck", "clock", "gpu", "fleet", "daemon", "rollout"})
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

    def _target(self, key: str) -> tuple[DaemonState, str]:
        """The state a row's target lives in, and its name there."""
        fleet = self.charter.fleet
        if not fleet.is_fleet:
            return self.charter.state, key
        daemon, name = split_row_key(key)
        return fleet.state_of(daemon), name

    def _row_keys(self) -> list[str]:
        fleet = self.charter.fleet
        if not fleet.is_fleet:
            return self._matching(self.charter.state)
        keys: list[str] = []
        for daemon in fleet.ids():
            state = fleet.state_of(daemon)
            # Filtering by a daemon's id shows that box with all its targets.
            by_daemon = bool(self.filter_text) and matches(self.filter_text, daemon)
            names = state.instance_names() if by_daemon else self._matching(state)
            if names or not self.filter_text or by_daemon:
                keys.append(row_key(daemon))
                keys += [row_key(daemon, name) for name in names]
        return keys

    def _matching(self, state: DaemonState) -> list[str]:
        return [
            name
            for name in state.instance_names()
            if matches(
                self.filter_text,
                name,
                _engine(state.instances.get(name), state.latest.get(name)),
                _model(state.instances.get(name)),
                _state(state.instances.get(name)),
            )
        ]

    def draw(self, changed: set[str] | frozenset[str]) -> None:
        if "gpu" in changed:
            self._draw_gpus()
        now = self.charter.clock()
        table = self.query_one("#instances", DataTable)
        spark_w = self._spark_width()
        self._ensure_columns(table, spark_w)
        fleet = self.charter.fleet
        flagged: dict[int, set[str]] = {}  # per state: targets with an open bottleneck (computed once a draw)

        def bottlenecked(state: DaemonState) -> set[str]:
            if id(state) not in flagged:
                flagged[id(state)] = {b.instance for b in state.bottlenecks.values() if b.active}
            return flagged[id(state)]

        def cells_for(key: str) -> list[str | Text]:
            state, name = self._target(key)
            if fleet.is_fleet and not name:
                return self._daemon_cells(split_row_key(key)[0], state, now)
            inst = state.instances.get(name)
            latest = state.latest.get(name)
            series = state.series.get(name)
            label = Text(("  " if fleet.is_fleet else "") + name, style="bold")
            if name in bottlenecked(state):
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
                    cell.append(" " + self._sparks.get(key, series, sig, spark_w), style="cyan")
                cells.append(cell)
            cells.append(numbers.age(inst.last_seen if inst else (latest.ts if latest else None), now))
            return cells

        keys = self._row_keys()
        sync_visible_rows(table, keys, cells_for)
        if not self._placed and keys:
            # Start on the first target with data, not on whichever name sorts first.
            self._placed = True
            live = [k for k in keys if (t := self._target(k))[1] and t[1] in t[0].latest]
            if live and self._restore is None:
                self._restore = live[0]
        if self._restore in keys:
            table.move_cursor(row=keys.index(self._restore), animate=False)
        self._restore = None
        self._draw_panel()

    def _daemon_cells(self, daemon: str, state: DaemonState, now: float) -> list[str | Text]:
        """A daemon's summary row: its link to the broker, targets up, open bottlenecks, rollouts waiting."""
        online = state.online
        link = (
            Text("● online", style="green")
            if online is None or online.online
            else Text(f"○ {online.reason}", style="bold red")
        )
        up = sum(1 for i in state.instances.values() if i.state.value == "UP")
        open_ = sum(1 for b in state.bottlenecks.values() if b.active)
        waiting = sum(1 for r in state.pending_rollouts() if r.state == "PENDING_APPROVAL")
        label = Text("▾ ", style="dim")
        label.append(server_text(daemon, style="bold reverse"))
        summary = [f"{up}/{len(state.instances)} up"]
        if open_:
            summary.append(f"{open_} ▲")
        if waiting:
            summary.append(f"{waiting} to approve")
        latest = max((i.last_seen or 0.0 for i in state.instances.values()), default=0.0) or None
        cells: list[str | Text] = [label, link, Text(" · ".join(summary), style="bold"), Text("")]
        cells += [Text("") for _ in LIVE_SIGNALS]
        cells.append(numbers.age(latest, now))
        return cells

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
        key = selected_key(self.query_one("#instances", DataTable))
        state, name = self._target(key) if key is not None else (self.charter.state, None)
        if name == "" and key is not None:
            panel.update(
                Text(
                    f"daemon {split_row_key(key)[0]}: ⏎ shows it on the Agents, Cache, Bottlenecks and "
                    "Rollouts screens (d: the next daemon)",
                    style="dim",
                )
            )
            return
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
        key = selected_key(self.query_one("#instances", DataTable))
        if key is None:
            return
        if self.charter.fleet.is_fleet:
            daemon, name = split_row_key(key)
            self.charter.select_daemon(daemon)  # its detail, and the other screens, show that daemon
            if not name:
                self.charter.notify(f"showing daemon {daemon}", timeout=3)
                return
            key = name
        self.charter.show_instance_detail(key)

    @on(DataTable.RowSelected, "#instances")
    def _selected(self) -> None:
        self.action_open_detail()
