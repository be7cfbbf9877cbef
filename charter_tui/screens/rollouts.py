"""Screen 5, Rollouts: the approval queue, the history, and the selected rollout in full.

Keys act on the highlighted rollout and are published as commands on the bus
(`charter/v1/command/rollout/<id>`); the screen then shows the state the rollout manager
reports back, never an optimistic guess. `a` approve and `r` reject ask y/n first (default no);
`b` rollback asks too, since it restarts servers; `p` pause/resume is reversible and does not.
A key that does not apply to the highlighted rollout is shown dimmed; in read-only mode all four
are hidden and refused.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from charter_tui.render import numbers
from charter_tui.render import text as render_text
from charter_tui.screens.base import ViewScreen
from charter_tui.widgets.panel import Panel
from charter_tui.screens.confirm import ConfirmScreen
from charter_tui.state import PENDING_STATES
from charter_tui.widgets.filterbar import matches
from charter_tui.widgets.livetable import LiveTable
from charter_tui.widgets.tables import selected_key, sync_rows
from daemon.models import Rollout
from daemon.rollouts.commands import allowed_actions, outage_warning

MUTATING_ACTIONS = frozenset({"approve", "reject", "rollback", "pause"})
STATE_STYLE = {
    "PENDING_APPROVAL": "bold black on yellow",
    "PAUSED": "bold black on cyan",
    "ROLLED_BACK": "bold white on red",
    "FAILED": "bold white on red",
    "ROLLING_BACK": "bold black on yellow",  # asked for: not a failure
    "REJECTED": "dim",
    "COMPLETED": "bold green",
}


# Table cells use short names so titles keep room at 80 columns; the detail shows the full state. A state
# the CLI also prints keeps its name (ROLLING_BACK was "UNDOING" here: a new user took them for two states).
SHORT_STATE = {
    "PENDING_APPROVAL": "PENDING",
    "ROLLING_OUT": "ROLLING",
    "ROLLED_BACK": "ROLLED_BACK",
}


def state_badge(state: str, short: bool = False) -> Text:
    label = SHORT_STATE.get(state, state) if short else state
    return Text(f" {label} ", style=STATE_STYLE.get(state, "bold black on green"))


VERDICT_STYLE = {
    "PASS": "bold black on green",
    "FAIL": "bold white on red",
    "INCONCLUSIVE": "bold black on yellow",
    "pass": "green",
    "fail": "bold red",
    "insufficient": "yellow",
    "unavailable": "dim",
}
LOWER_IS_BETTER = ("ttft", "itl", "e2e", "queue", "latency", "wait", "kv_cache", "preempt", "failure")


def comparison(d: dict[str, Any]) -> Text:
    """The canary's comparison: verdict, then per signal baseline vs canary and the change.

    Reads the rollout manager's `Comparison` (`verdict`, `summary`, `signals: [{signal, baseline,
    canary, verdict, higher_is_better, ...}]`); a plain `{metric: {baseline, canary}}` works too.
    """
    if not d:
        return Text("(no canary data yet)", style="dim")
    out = Text()
    if d.get("verdict"):
        out.append(f" {d['verdict']} ", style=VERDICT_STYLE.get(str(d["verdict"]), "bold"))
        out.append(f" {d.get('summary', '')}\n")
    rows: list[dict[str, Any]] = [r for r in d.get("signals", []) if isinstance(r, dict)]
    rows += [
        {"signal": k, **v}
        for k, v in d.items()
        if isinstance(v, dict) and "baseline" in v and "canary" in v and k not in ("baseline", "canary")
    ]
    if not rows:
        return out if out else render_text.key_values(d)
    width = max(6, *(len(str(r.get("signal", "?"))) for r in rows))
    out.append(f"{'signal'.ljust(width)}  {'baseline':>9}  {'canary':>9}  {'change':>7}\n", style="bold")
    for r in rows:
        name = str(r.get("signal", "?"))
        base, can = r.get("baseline"), r.get("canary")
        out.append(f"{name.ljust(width)}  {_num(base):>9}  {_num(can):>9}  ")
        if isinstance(base, (int, float)) and isinstance(can, (int, float)) and base:
            change = (can - base) / abs(base)
            higher_better = r.get("higher_is_better", not any(t in name for t in LOWER_IS_BETTER))
            better = change > 0 if higher_better else change < 0
            out.append(f"{change * 100:+6.0f}%", style="green" if better or change == 0 else "red")
        else:
            out.append(f"{'-':>7}")
        if r.get("verdict"):
            out.append(f"  {r['verdict']}", style=VERDICT_STYLE.get(str(r["verdict"]), ""))
        out.append("\n")
    out.rstrip()
    return out


def stage(ro: Rollout) -> Text:
    """Where a running (or finished) rollout stands: canary, per-target progress, why it stopped."""
    d = ro.stage_detail or {}
    out = Text()
    order = d.get("order") or []
    progress = d.get("progress") or {}
    if d.get("canary"):
        out.append("canary   ", style="bold")
        out.append(f"{d['canary']}\n")
    for target in order or list(progress):
        p = progress.get(target) or {}
        status = p.get("status", "pending") if isinstance(p, dict) else str(p)
        out.append(f"  {target:<16}", style="bold" if target == d.get("canary") else "")
        out.append(
            status, style={"applied": "green", "failed": "bold red", "restored": "cyan"}.get(status, "yellow")
        )
        if isinstance(p, dict) and p.get("error"):
            out.append(f"  {p['error']}", style="red")
        out.append("\n")
    # Shown elsewhere (the diff's current values, "why", "risks") or bookkeeping: not repeated as raw data.
    shown = {"canary", "order", "progress", "signals", "baseline", "canary_since", "recoveries"}
    shown |= {"before", "pending_read", "reason", "risks"}
    rest = {k: v for k, v in d.items() if k not in shown}
    if rest:
        out.append_text(render_text.key_values(rest))
    out.rstrip()
    return out or Text(ro.state)


def _num(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, (int, float)) else ("-" if v is None else str(v))


class RolloutsScreen(ViewScreen):
    MODE = "rollouts"
    WATCHES = frozenset({"rollout", "recommendation", "audit", "clock"})
    BINDINGS = [
        Binding("a", "approve", "Approve", id="rollouts.approve"),
        Binding("r", "reject", "Reject", id="rollouts.reject"),
        Binding("b", "rollback", "Rollback", id="rollouts.rollback"),
        Binding("p", "pause", "Pause/resume", id="rollouts.pause"),
    ]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="rollouts-left"):
                yield Static("Queue (pending and running)", classes="section-title")
                yield LiveTable(id="queue", cursor_type="row")
                yield Static("History", classes="section-title")
                yield LiveTable(id="history", cursor_type="row")
            with VerticalScroll(id="rollout-detail"):
                yield Panel(id="rollout", classes="panel")

    def on_mount(self) -> None:
        for tid in ("queue", "history"):
            t = self.query_one(f"#{tid}", DataTable)
            t.add_column("#", key="id")
            t.add_column("state", key="state")
            t.add_column("title", key="title")
            t.add_column("age", key="age")
        self.query_one("#queue", DataTable).focus()
        self._table = "queue"

    def draw(self, changed: set[str] | frozenset[str]) -> None:
        state = self.charter.state
        now = self.charter.clock()
        for tid, rollouts in (("queue", state.pending_rollouts()), ("history", state.rollout_history())):
            rows = []
            for ro in rollouts:
                if not matches(self.filter_text, ro.title, ro.state, ro.id, *ro.targets):
                    continue
                rows.append(
                    (
                        str(ro.id),
                        [
                            str(ro.id),
                            state_badge(ro.state, short=True),
                            ro.title,
                            numbers.age(ro.updated_at, now),
                        ],
                    )
                )
            sync_rows(self.query_one(f"#{tid}", DataTable), rows)
        self._draw_detail()

    # --- selection ---------------------------------------------------------------------------
    def selected(self) -> Rollout | None:
        key = selected_key(self.query_one(f"#{getattr(self, '_table', 'queue')}", DataTable))
        if key is None:
            other = "history" if getattr(self, "_table", "queue") == "queue" else "queue"
            key = selected_key(self.query_one(f"#{other}", DataTable))
        return self.charter.state.rollouts.get(int(key)) if key else None

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id in ("queue", "history") and event.data_table.has_focus:
            self._table = event.data_table.id
        self._draw_detail()

    def on_descendant_focus(self) -> None:
        focused = self.focused
        if isinstance(focused, DataTable) and focused.id in ("queue", "history"):
            self._table = focused.id
            self._draw_detail()

    def _draw_detail(self) -> None:
        self.refresh_bindings()  # which of a/r/b/p apply depends on the highlighted rollout
        panel = self.query_one("#rollout", Static)
        ro = self.selected()
        if ro is None:
            panel.update(Text("No rollouts. Proposals from screen 4 appear here for approval.", style="dim"))
            return
        state = self.charter.state
        now = self.charter.clock()
        out = Text(f"#{ro.id} {ro.title}\n", style="bold")
        out.append_text(state_badge(ro.state))
        out.append(
            f"  targets: {', '.join(ro.targets) or '-'}  created {numbers.clock(ro.created_at)} UTC"
            f"  updated {numbers.age(ro.updated_at, now)} ago\n",
            style="dim",
        )
        sent = (
            self.charter.sent_commands.get((self.charter.fleet.current_id, ro.id))
            if ro.id is not None
            else None
        )
        if sent and sent[1] >= ro.updated_at:
            out.append(f"⏳ {sent[0]} sent; waiting for the rollout manager\n", style="yellow")
        rec = state.recommendations.get(ro.recommendation_id) if ro.recommendation_id is not None else None
        detail = rec.detail if rec else {}
        out.append("\nchanges (current -> proposed)\n", style="bold underline")
        out.append_text(render_text.config_changes(ro.changes, self.current_config(ro, detail)))
        impact = detail.get("expected_impact") or detail.get("impact")
        improvement = detail.get("estimated_improvement")
        risks = detail.get("risks") or ro.stage_detail.get("risks")
        out.append("\n\nexpected impact  ", style="bold")
        out.append(" — ".join(str(x) for x in (impact, improvement) if x) or "-")
        out.append("\nrisks            ", style="bold")
        out.append("; ".join(map(str, risks)) if isinstance(risks, list) else (str(risks) if risks else "-"))
        if reason := ro.stage_detail.get("reason"):
            out.append("\nwhy              ", style="bold")
            out.append(str(reason))
        if ro.state not in PENDING_STATES:
            out.append("\n\nstage\n", style="bold underline")
            out.append_text(stage(ro))
            out.append("\n\ncanary comparison\n", style="bold underline")
            out.append_text(comparison(ro.comparison))
        out.append("\n\naudit log\n", style="bold underline")
        events = state.audit_for("rollout", str(ro.id))
        if not events:
            out.append("(none yet)", style="dim")
        for ev in events:
            out.append(f"{numbers.clock(ev.ts)} ", style="dim")
            out.append(f"{ev.actor:<8} ", style="cyan")
            out.append(f"{ev.action}")
            if ev.from_state or ev.to_state:
                out.append(f" {ev.from_state or '-'} → {ev.to_state or '-'}", style="dim")
            if ev.comment:
                out.append(f"  “{ev.comment}”", style="italic")
            out.append("\n")
        out.rstrip()
        panel.update(out)

    @staticmethod
    def current_config(ro: Rollout, rec_detail: dict[str, Any]) -> dict[str, Any]:
        """Current values for the diff: what the manager read from the first target it touched, before
        changing it (the truth, once recorded), else what it read while the proposal was pending, else
        what the optimizer read from the server."""
        current = render_text.current_values(rec_detail.get("changes") or [])
        before = ro.stage_detail.get("before") or ro.stage_detail.get("pending_read") or {}
        order = [t for t in ro.stage_detail.get("order") or [] if t in before] or list(before)
        if order and isinstance(before[order[0]], dict):
            for key, value in before[order[0]].items():
                current[key] = render_text.DEFAULT if value is None else value
        return current

    # --- keys ------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in MUTATING_ACTIONS:
            return True
        if self.charter.readonly:
            return False  # hidden from the footer and refused
        ro = self.selected()
        if ro is None:
            return None
        allowed = allowed_actions(ro)  # the daemon's rules, not a copy of them
        if action == "pause":  # `p` pauses a running rollout and resumes a paused one
            return True if allowed & {"pause", "resume"} else None
        return True if action in allowed else None

    def _confirm_then_send(self, ro: Rollout, action: str, verb: str) -> None:
        assert ro.id is not None
        rid = ro.id
        rec = self.charter.state.recommendations.get(ro.recommendation_id or -1)
        detail = render_text.config_changes(ro.changes, self.current_config(ro, rec.detail if rec else {}))
        if action == "rollback":  # what will be restored, not the change itself
            restored = render_text.restored_changes(ro.changes, ro.stage_detail.get("before") or {})
            detail = (
                render_text.config_changes(restored)
                if restored
                else Text("No target was changed yet: rolling back ends the rollout.", style="dim")
            )
        warning = (
            outage_warning(self.charter.loaded.config, ro.targets, self.charter.state.rollouts.values())
            if action == "approve"
            else None
        )
        if warning:
            detail = Text.assemble(detail, "\n\n", Text(warning, style="bold"))

        def answered(yes: bool | None) -> None:
            if yes:
                self.charter.send_rollout_command(rid, action)
            else:
                self.notify(f"{verb} of rollout #{rid} cancelled", timeout=3)

        self.app.push_screen(
            ConfirmScreen(Text(f"{verb} rollout #{rid}: {ro.title}?", style="bold"), detail), answered
        )

    def action_approve(self) -> None:
        if (ro := self.selected()) is not None and self.check_action("approve", ()):
            self._confirm_then_send(ro, "approve", "Approve")

    def action_reject(self) -> None:
        if (ro := self.selected()) is not None and self.check_action("reject", ()):
            self._confirm_then_send(ro, "reject", "Reject")

    def action_rollback(self) -> None:
        if (ro := self.selected()) is not None and self.check_action("rollback", ()):
            self._confirm_then_send(ro, "rollback", "Roll back")

    def action_pause(self) -> None:
        ro = self.selected()
        if ro is not None and ro.id is not None and self.check_action("pause", ()):
            self.charter.send_rollout_command(ro.id, "resume" if "resume" in allowed_actions(ro) else "pause")
