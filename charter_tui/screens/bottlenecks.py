"""Screen 4, Bottlenecks and recommendations, each with the evidence behind it.

Open bottlenecks come first (critical before warning), then the recently cleared ones; below
them the optimizer's recommendations by priority. The highlighted row's evidence (the measured
values, thresholds and windows the detector used) or detail (changes, expected impact, risks)
fills the panel underneath, so a user can judge a finding before any rollout is proposed.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from charter_tui.render import numbers
from charter_tui.render import text as render_text
from charter_tui.screens.base import ViewScreen
from charter_tui.screens.confirm import ConfirmScreen
from charter_tui.widgets.panel import Panel
from charter_tui.state import bottleneck_key
from charter_tui.widgets.filterbar import matches
from charter_tui.widgets.livetable import LiveTable
from charter_tui.widgets.tables import selected_key, sync_rows
from daemon.actuators.params import InvalidChange
from daemon.models import Recommendation, RecommendationStatus
from daemon.rollouts.commands import recommendation_changes

SEVERITY_STYLE = {
    "CRITICAL": "bold white on red",
    "WARNING": "bold black on yellow",
    "INFO": "bold black on cyan",
}


class BottlenecksScreen(ViewScreen):
    MODE = "bottlenecks"
    WATCHES = frozenset({"bottleneck", "recommendation", "clock"})
    BINDINGS = [Binding("p", "propose", "Propose", id="bottlenecks.propose")]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static("Bottlenecks", classes="section-title")
            yield LiveTable(id="bottlenecks", cursor_type="row")
            yield Static("Recommendations", classes="section-title")
            yield LiveTable(id="recommendations", cursor_type="row")
            with VerticalScroll(id="evidence-scroll"):
                yield Panel(id="evidence", classes="panel")

    def on_mount(self) -> None:
        b = self.query_one("#bottlenecks", DataTable)
        for label, key in (
            ("severity", "sev"),
            ("target", "t"),
            ("kind", "k"),
            ("for", "age"),
            ("summary", "s"),
        ):
            b.add_column(label, key=key)
        r = self.query_one("#recommendations", DataTable)
        for label, key in (("prio", "p"), ("status", "st"), ("target", "t"), ("recommendation", "title")):
            r.add_column(label, key=key)
        b.focus()
        self._last_focus = "bottlenecks"

    def draw(self, changed: set[str] | frozenset[str]) -> None:
        state = self.charter.state
        now = self.charter.clock()
        rows = []
        for b in state.sorted_bottlenecks():
            if not matches(self.filter_text, b.instance, b.kind, b.summary):
                continue
            sev = b.severity.value
            badge = (
                Text(f" {sev} ", style=SEVERITY_STYLE.get(sev, ""))
                if b.active
                else Text("cleared", style="dim")
            )
            since = numbers.age(b.started_at, now) if b.active else f"{numbers.age(b.cleared_at, now)} ago"
            rows.append((bottleneck_key(b), [badge, b.instance, b.kind, since, b.summary]))
        sync_rows(self.query_one("#bottlenecks", DataTable), rows)
        recs = []
        for r in state.sorted_recommendations():
            if not matches(self.filter_text, r.title, r.instance, r.kind):
                continue
            recs.append((str(r.id), [str(r.priority), r.status.value, r.instance or "agent", r.title]))
        sync_rows(self.query_one("#recommendations", DataTable), recs)
        self._draw_evidence()

    @on(DataTable.RowHighlighted, "#bottlenecks, #recommendations")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Filling a table highlights its first row too; only the table the user is in decides
        # which evidence shows (the order tables fill in must not).
        if event.data_table is self.focused and event.data_table.id:
            self._last_focus = event.data_table.id
        self._draw_evidence()

    def on_descendant_focus(self) -> None:
        focused = self.focused
        if isinstance(focused, DataTable) and focused.id in ("bottlenecks", "recommendations"):
            self._last_focus = focused.id
            self._draw_evidence()

    # --- proposing a recommendation ---------------------------------------------------------------
    def selected_recommendation(self) -> Recommendation | None:
        if getattr(self, "_last_focus", "bottlenecks") != "recommendations":
            return None
        key = selected_key(self.query_one("#recommendations", DataTable))
        return self.charter.state.recommendations.get(int(key)) if key else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action != "propose":
            return True
        if self.charter.readonly:
            return False  # hidden from the footer and refused
        rec = self.selected_recommendation()
        if rec is None or rec.status != RecommendationStatus.OPEN:
            return None
        try:
            changes = recommendation_changes(rec)  # the daemon's rule: a code change or rebuild is no rollout
        except InvalidChange:
            return None
        return True if changes else None

    def action_propose(self) -> None:
        rec = self.selected_recommendation()
        if rec is None or rec.id is None or not self.check_action("propose", ()):
            return
        rid = rec.id
        changes = rec.detail.get("changes") or []
        detail = render_text.config_changes(changes, render_text.current_values(changes))

        def answered(yes: bool | None) -> None:
            if yes:
                self.charter.propose_recommendation(rid)

        title = Text(f"Propose recommendation #{rid} as a rollout: {rec.title}?", style="bold")
        self.app.push_screen(ConfirmScreen(title, detail), answered)

    def _draw_evidence(self) -> None:
        panel = self.query_one("#evidence", Static)
        state = self.charter.state
        if getattr(self, "_last_focus", "bottlenecks") == "recommendations":
            key = selected_key(self.query_one("#recommendations", DataTable))
            rec = state.recommendations.get(int(key)) if key else None
            if rec is None:
                panel.update(Text("no recommendations", style="dim"))
                return
            out = Text(f"#{rec.id} {rec.title}\n", style="bold")
            out.append(f"{rec.kind} · priority {rec.priority} · {rec.status.value}\n", style="dim")
            detail = dict(rec.detail)
            changes = detail.pop("changes", None)
            if changes:
                out.append_text(render_text.config_changes(changes))
                out.append("\n")
            out.append_text(render_text.key_values(detail))
            panel.update(out)
            return
        key = selected_key(self.query_one("#bottlenecks", DataTable))
        b = state.bottlenecks.get(key) if key else None
        if b is None:
            panel.update(Text("no bottlenecks detected", style="green"))
            return
        out = Text(f"{b.kind} on {b.instance}: {b.summary}\n", style="bold")
        out.append(f"since {numbers.clock(b.started_at)} UTC", style="dim")
        if b.cleared_at:
            out.append(f", cleared {numbers.clock(b.cleared_at)} UTC", style="dim")
        out.append("\nevidence\n", style="bold underline")
        out.append_text(render_text.key_values(b.evidence))
        related = [
            r
            for r in state.recommendations.values()
            if b.id is not None
            and isinstance(src := r.detail.get("source"), dict)
            and src.get("bottleneck") == b.id
        ]
        for r in related:
            out.append(f"\n→ recommendation #{r.id}: {r.title}", style="cyan")
        panel.update(out)
