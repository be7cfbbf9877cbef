"""Screen 3, Cache: measured prefix-cache hit rate per target over time, next to the ceiling the
compiler computed for the watched agents (`plan.block_shares`), and the latest `charter-tui bench`
run of each agent and target (measured hit share, naive vs optimized, next to the measured ceiling).

The ceiling is the best hit share the agents' prompts allow at the engine's block size, for a server
with traffic: the steady state (a request on the cache the one before it left), not one request on
an empty cache, which a live server's measurement beats (by 83 points on the committed suite's
dynamic-prefix agent, whose reuse is all between requests). A target
far below it has a serving problem (cache too small, eviction, routing), one at it needs the
restructuring on screen 2 ("after fixes") to go higher.
"""

from __future__ import annotations


from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from charter_tui.render import numbers
from charter_tui.render.bench import COLUMNS as BENCH_COLUMNS
from charter_tui.render.bench import HINT as BENCH_HINT
from charter_tui.render.bench import bench_row, row_key, target_label
from charter_tui.render.plot import plot, sparkline
from charter_tui.render.waterfall import waterfall_text
from charter_tui.state import parse_result
from charter_tui.screens.base import ViewScreen
from daemon.ceiling import ceiling_for, served_cache, steady
from daemon.paths import agent_label
from charter_tui.widgets.panel import Panel
from charter_tui.widgets.filterbar import matches
from charter_tui.widgets.livetable import LiveTable
from charter_tui.widgets.tables import selected_key, sync_rows
from compiler.model import CompileResult

# What redraws which part: the live tables and plot follow samples; the bench table follows stored
# runs, and the clock (its "when" ages), which alone must not redraw the plot every second.
LIVE_KINDS = frozenset({"instance", "sample", "compile"})
BENCH_KINDS = frozenset({"bench", "clock", "instance"})


def mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


class CacheScreen(ViewScreen):
    MODE = "cache"
    WATCHES = LIVE_KINDS | BENCH_KINDS

    def compose_body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static(
                "Targets: measured prefix-cache hit rate vs the compiler's ceiling", classes="section-title"
            )
            yield LiveTable(id="cache-targets", cursor_type="row")
            yield Panel(id="cache-plot", classes="panel")
            yield Static("Agents: reachable hit share by block size", classes="section-title")
            yield LiveTable(id="cache-agents", cursor_type="row")
            yield Static(
                "Benchmarks: measured hit share (charter-tui bench) vs ceiling", classes="section-title"
            )
            yield LiveTable(id="cache-bench", cursor_type="row")
            yield Panel(BENCH_HINT, id="cache-bench-hint", classes="panel")
            yield Panel(id="cache-waterfall", classes="panel")

    def on_mount(self) -> None:
        t = self.query_one("#cache-targets", DataTable)
        for label, key in (
            ("target", "t"),
            ("engine", "e"),
            ("hit now", "now"),
            ("5m mean", "mean"),
            ("ceiling", "ceil"),
            ("gap", "gap"),
            ("trend", "trend"),
        ):
            t.add_column(label, key=key)
        a = self.query_one("#cache-agents", DataTable)
        for label, key in (
            ("agent", "a"),
            ("engine", "e"),
            ("block", "b"),
            ("1 request", "c"),  # on an empty cache
            ("steady", "s"),  # a request on the cache the one before it left: what traffic reaches
            ("after fixes", "f"),
            ("cached/prompt tok", "tok"),
        ):
            a.add_column(label, key=key)
        bench = self.query_one("#cache-bench", DataTable)
        for label, key in BENCH_COLUMNS:
            bench.add_column(label, key=key)
        t.focus()

    def _results(self) -> dict[str, CompileResult]:
        out = {}
        for path, view in self.charter.state.compiles.items():
            result = parse_result(view)
            if result is not None:
                out[path] = result
        return out

    def draw(self, changed: set[str] | frozenset[str]) -> None:
        if changed & LIVE_KINDS:
            self._draw_live()
        if changed & BENCH_KINDS:
            self._draw_bench()

    def _draw_bench(self) -> None:
        state = self.charter.state
        instances = list(state.instances.values())
        rows = [
            bench_row(run, instances, self.charter.clock())
            for run in state.latest_benches()
            if matches(self.filter_text, run.agent, run.target, target_label(run.target, instances))
        ]
        sync_rows(self.query_one("#cache-bench", DataTable), rows)
        # The table with no rows would be a bare header; say instead how to get some.
        self.query_one("#cache-bench", DataTable).display = bool(rows)
        hint = self.query_one("#cache-bench-hint", Static)
        hint.display = not rows
        if not rows:
            hint.update(
                BENCH_HINT if not state.benches else Text("no benchmark runs match the filter", style="dim")
            )
        self._draw_waterfall()

    @on(DataTable.RowHighlighted, "#cache-bench")
    def _bench_highlighted(self) -> None:
        self._draw_waterfall()

    def _draw_waterfall(self) -> None:
        """The cache doctor's steps for the highlighted bench run (its optimized mode, else naive)."""
        panel = self.query_one("#cache-waterfall", Static)
        table = self.query_one("#cache-bench", DataTable)
        key = selected_key(table) if table.display else None
        run = next((r for r in self.charter.state.latest_benches() if row_key(r) == key), None)
        mode = None if run is None else ("optimized" if "optimized" in run.summaries else "naive")
        view = None if run is None or mode is None else run.summaries.get(mode)
        panel.display = bool(view and view.waterfall)
        if view is None or not view.waterfall or run is None:
            return
        width = max(40, (panel.size.width or self.size.width or 80) - 2)
        title = Text(f"where the hits went: {agent_label(run.agent)}, {mode}", style="bold")
        panel.update(Text.assemble(title, "\n", waterfall_text(view.waterfall, width)))

    def _draw_live(self) -> None:
        state = self.charter.state
        now = self.charter.clock()
        results = self._results()
        rows = []
        for name in state.instance_names():
            inst = state.instances.get(name)
            engine = inst.engine if inst else (state.latest[name].engine if name in state.latest else "?")
            if not matches(self.filter_text, name, engine):
                continue
            series = state.series.get(name)
            values = series.column("prefix_hit_rate") if series else []
            recent = series.column("prefix_hit_rate", since=now - 300) if series else []
            current = numbers.last_known(values)
            block, has_cache = served_cache(inst)
            ceil = ceiling_for(engine, block, results) if has_cache else None
            gap = Text("-")
            if ceil is not None and current is not None:
                d = current - steady(ceil[0])
                gap = Text(
                    f"{d * 100:+.0f}pt", style="green" if d >= -0.05 else "yellow" if d >= -0.2 else "red"
                )
            ceil_cell: str | Text = (
                f"{numbers.percent(steady(ceil[0]))} b{ceil[0].block_size}"
                if ceil
                else ("-" if has_cache else Text("no prefix cache", style="dim"))
            )
            rows.append(
                (
                    name,
                    [
                        Text(name, style="bold"),
                        engine,
                        numbers.percent(current),
                        numbers.percent(mean(recent)),
                        ceil_cell,
                        gap,
                        Text(sparkline(values, 16, lo=0.0, hi=1.0), style="cyan"),
                    ],
                )
            )
        targets = self.query_one("#cache-targets", DataTable)
        sync_rows(targets, rows)
        if not getattr(self, "_placed", False) and rows:
            # Start on the first target with measurements, so the plot is not empty.
            self._placed = True
            keys = [k for k, _ in rows]
            live = [
                k
                for k in keys
                if any(
                    v is not None
                    for v in (state.series[k].column("prefix_hit_rate") if k in state.series else [])
                )
            ]
            if live:
                targets.move_cursor(row=keys.index(live[0]), animate=False)

        arows = []
        for path, result in sorted(results.items()):
            if not matches(self.filter_text, path):
                continue
            for b in result.plan.block_shares:
                arows.append(
                    (
                        f"{path}#{b.engine}{b.block_size}",
                        [
                            agent_label(path),
                            b.engine,
                            str(b.block_size),
                            numbers.percent(b.hit_share),
                            numbers.percent(b.steady_state_share),
                            numbers.percent(b.hit_share_after_fixes),
                            f"{b.cached_tokens}/{b.prompt_tokens}",
                        ],
                    )
                )
        sync_rows(self.query_one("#cache-agents", DataTable), arows)
        self._draw_plot()

    @on(DataTable.RowHighlighted, "#cache-targets")
    def _highlighted(self) -> None:
        self._draw_plot()

    def _draw_plot(self) -> None:
        panel = self.query_one("#cache-plot", Static)
        name = selected_key(self.query_one("#cache-targets", DataTable))
        state = self.charter.state
        if name is None:
            panel.update(Text("no targets", style="dim"))
            return
        series = state.series.get(name)
        values = series.column("prefix_hit_rate") if series else []
        inst = state.instances.get(name)
        block, has_cache = served_cache(inst)
        ceil = ceiling_for(inst.engine if inst else "?", block, self._results()) if has_cache else None
        title = Text(f"{name} hit rate, last {len(values)} polls", style="bold")
        if ceil is not None:
            title.append("   ╌ ceiling ", style="bold magenta")
            title.append(
                f"{numbers.percent(steady(ceil[0]))} ({agent_label(ceil[1])}, block {ceil[0].block_size})"
            )
        width = max(20, (panel.size.width or self.size.width or 80) - 2)
        height = 3 if (self.size.height or 24) < 40 else 8
        body = (
            plot(
                values,
                width,
                height,
                lo=0.0,
                hi=1.0,
                ceiling=steady(ceil[0]) if ceil else None,
                label=numbers.percent,
            )
            if any(v is not None for v in values)
            else Text("no samples yet", style="dim")
        )
        panel.update(Text.assemble(title, "\n", body))
