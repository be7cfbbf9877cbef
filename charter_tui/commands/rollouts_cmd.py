"""`charter-tui rollouts list|show|propose|approve|reject|pause|resume|rollback`.

Commands write checked, audited transitions straight into the store (the daemon's manager notices
them on its next step and does the work), so they work whether or not a daemon is running, and a
second approval of the same rollout is refused whoever sends it. `--readonly` refuses every
mutating command before the store is opened for writing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from daemon.auth import local_identity
from daemon.config import load_config
from daemon.errors import UserError
from daemon.models import Rollout
from daemon.paths import locations
from daemon.rollouts import commands as cmd
from daemon.rollouts.model import ACTIVE_STATES, RolloutState
from daemon.redaction import redact_data
from daemon.rollouts.repo import RolloutRepo, public_event, public_view, stage_of
from daemon.store import NoDatabaseYet, Store
from charter_tui.render.text import DEFAULT

MUTATING = ("approve", "reject", "pause", "resume", "rollback")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rollouts",
        help="list, inspect, propose, approve, reject, pause, resume or roll back config rollouts",
        description=(
            "Approval-gated config rollouts. A proposal waits for a person; once approved the daemon applies "
            "it to one canary target, compares the canary with its baseline on LLM signals, then rolls it out "
            "to the rest, or rolls it back (configuration included) when the canary regresses."
        ),
    )
    p.add_argument("--readonly", action="store_true", help="refuse every mutating command")
    actions = p.add_subparsers(dest="rollouts_action", metavar="ACTION", required=True)

    ls = actions.add_parser("list", help="rollouts, newest first (active and pending by default)")
    ls.add_argument("--all", action="store_true", help="include finished ones")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=run_list)

    show = actions.add_parser(
        "show", help="one rollout: changes, per-target progress, comparison, audit trail"
    )
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=run_show)

    prop = actions.add_parser(
        "propose",
        help="put a hand-made change through the same gate (approval, canary, validation, rollback)",
        description="Propose a change. PARAM=VALUE for vLLM flags (max_num_seqs=64, enable_prefix_caching=false) "
        "and command targets; MODEL:PARAM=VALUE for Triton model config parameters. Values are checked "
        "against each parameter's type and range before anything is stored.",
    )
    prop.add_argument("--target", action="append", default=[], metavar="NAME", help="a target (repeatable)")
    prop.add_argument(
        "--set", action="append", default=[], dest="sets", metavar="PARAM=VALUE", help="a change (repeatable)"
    )
    prop.add_argument(
        "--from-recommendation",
        type=int,
        metavar="ID",
        help="propose a stored recommendation's changes (instead of --target/--set)",
    )
    prop.add_argument("--reason", help="why (kept with the rollout and in the audit log)")
    prop.add_argument(
        "--signal",
        action="append",
        dest="signals",
        default=[],
        metavar="SIGNAL",
        help="a signal to judge the canary on (repeatable; default: [rollouts].default_signals)",
    )
    prop.add_argument("--title", help="a short title (default: built from the changes)")
    prop.add_argument(
        "--dry-run",
        action="store_true",
        help="read the targets' current config and print what would change; store nothing",
    )
    prop.add_argument("--json", action="store_true", help="machine-readable output")
    prop.set_defaults(func=run_propose)

    for action, text in (
        ("approve", "approve a pending rollout (the daemon starts its canary)"),
        ("reject", "reject a pending rollout"),
        ("pause", "pause an active rollout where it is"),
        ("resume", "resume a paused rollout (after an undecided validation: promote it)"),
        ("rollback", "roll back: restore every changed target to its recorded config"),
    ):
        a = actions.add_parser(action, help=text)
        a.add_argument("id", type=int)
        # `--reason` too: `propose` takes it, and a user reaching for it here got "unrecognized arguments".
        a.add_argument("--comment", "--reason", "-m", dest="comment", help="why (kept in the audit log)")
        a.add_argument("--json", action="store_true", help="machine-readable output")
        if action == "approve":
            a.add_argument(
                "--yes",
                "-y",
                action="store_true",
                help="approve without asking, even when it means an outage",
            )
        a.set_defaults(func=run_command, command_action=action)


def _repo(args: argparse.Namespace, *, mutating: str | None = None) -> tuple[Any, RolloutRepo]:
    loaded = load_config(args.config)
    if mutating and _readonly(args, loaded):
        raise UserError(f"read-only: {mutating} is refused")
    # Listing and showing only read: a database the user may read but not write still answers.
    return loaded, RolloutRepo(Store(loaded.database_url, readonly=mutating is None))


def _readonly(args: argparse.Namespace, loaded: Any) -> bool:
    return bool(getattr(args, "readonly", False) or loaded.config.daemon.readonly)


def run_list(args: argparse.Namespace) -> int:
    try:
        _, repo = _repo(args)
    except NoDatabaseYet as exc:  # a fresh install: nothing proposed yet, and listing creates nothing
        if args.json:
            print("[]")
        else:
            print(f"no rollouts ({exc})")
        return 0
    states = None if args.all else ACTIVE_STATES | {RolloutState.PENDING_APPROVAL}
    rows = repo.list(states)
    if args.json:
        print(json.dumps([public_view(r).model_dump(mode="json") for r in rows], indent=2))
        return 0
    if not rows:
        print("no rollouts" + ("" if args.all else " pending or active (--all shows finished ones)"))
        return 0
    print(f"{'ID':>4}  {'STATE':<16} {'UPDATED':<19} {'TARGETS':<20} TITLE")
    for r in rows:
        updated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.updated_at))
        print(f"{r.id:>4}  {r.state:<16} {updated:<19} {','.join(r.targets)[:20]:<20} {r.title}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    _, repo = _repo(args)
    # Shown, so the public view: the stored previous config keeps the launch env a rollback needs.
    row = public_view(repo.get(args.id))
    events = [public_event(e) for e in repo.events(args.id)]
    if args.json:
        print(
            json.dumps(
                {
                    "rollout": row.model_dump(mode="json"),
                    "events": [e.model_dump(mode="json") for e in events],
                },
                indent=2,
            )
        )
        return 0
    print(render(row, events))
    return 0


def render(row: Rollout, events: list[Any]) -> str:
    stage = stage_of(row)
    lines = [f"rollout {row.id}: {row.title}", f"  state     {row.state}"]
    if stage.reason:
        lines.append(f"  reason    {stage.reason}")
    for c in row.changes:
        name = f"{c['model']}:{c['param']}" if c.get("model") else c["param"]
        lines.append(f"  change    {name} = {c['value']}")
    for t in row.targets:
        p = stage.progress.get(t)
        role = " (canary)" if t == stage.canary else ""
        status = p.status if p else "pending"
        extra = f"  error: {p.error}" if p and p.error else ""
        lines.append(f"  target    {t}{role}: {status}{extra}")
    if stage.failure_reason:
        lines.append(f"  failure   {stage.failure_reason}")
    if row.state == RolloutState.PAUSED.value:
        lines.append(
            f"  paused    from {stage.paused_from.value if stage.paused_from else '?'} ({stage.pause_reason})"
        )
    if row.comparison:
        lines.append(f"  verdict   {row.comparison.get('verdict')}: {row.comparison.get('summary')}")
        for s in row.comparison.get("signals", []):
            lines.append(
                f"    {s['signal']:<24} baseline {_num(s.get('baseline'))} (n={s['baseline_n']})  "
                f"canary {_num(s.get('canary'))} (n={s['canary_n']})  {s['verdict']}"
            )
    if row.previous_config:
        lines.append(f"  recorded  previous config of {', '.join(sorted(row.previous_config))}")
    hint = _next_step(row)
    if hint:
        lines.append(f"  next      {hint}")
    lines.append("  audit")
    for e in events:
        when = time.strftime("%H:%M:%S", time.localtime(e.ts))
        move = f"{e.from_state or '-'} -> {e.to_state}" if e.from_state != e.to_state else (e.to_state or "")
        lines.append(f"    {when} {e.actor:<10} {e.action:<15} {move:<30} {e.comment or ''}")
    return "\n".join(lines)


def _next_step(row: Rollout) -> str | None:
    """What a person can do now, spelled as the command to type."""
    rid = row.id
    if row.state == RolloutState.PENDING_APPROVAL.value:
        return f"charter-tui rollouts approve {rid}  |  charter-tui rollouts reject {rid}"
    if row.state == RolloutState.PAUSED.value:
        stage = stage_of(row)
        verb = "promote it" if stage.pause_reason == "inconclusive" else "continue"
        return f"charter-tui rollouts resume {rid} ({verb})  |  charter-tui rollouts rollback {rid}"
    if row.state in (RolloutState.FAILED.value, RolloutState.ROLLING_BACK.value) and any(
        p.status == "failed" for p in stage_of(row).progress.values()
    ):
        return f"restoring gave up; fix the target, then: charter-tui rollouts rollback {rid} (retries)"
    if row.state == RolloutState.COMPLETED.value:
        return f"charter-tui rollouts rollback {rid} (restores the recorded config)"
    return None


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"


def run_propose(args: argparse.Namespace) -> int:
    if args.from_recommendation is not None and (args.target or args.sets or args.dry_run):
        raise UserError("--from-recommendation takes its targets and changes from the recommendation")
    if args.from_recommendation is None and (not args.target or not args.sets):
        raise UserError(
            "propose needs --target NAME and at least one --set PARAM=VALUE (or --from-recommendation ID)"
        )
    if args.dry_run:  # validates and plans only: the database is not even opened
        return _dry_run(
            load_config(args.config), args.target, [cmd.parse_set(s) for s in args.sets], args.json
        )
    loaded, repo = _repo(args, mutating="propose")
    if args.from_recommendation is not None:
        row = cmd.propose_recommendation(
            repo, loaded.config, args.from_recommendation, actor=local_identity()
        )
        print(
            json.dumps(row.model_dump(mode="json"), indent=2)
            if args.json
            else f"rollout {row.id} proposed: {row.title}\n  approve with: charter-tui rollouts approve {row.id}"
        )
        return 0
    raw = [cmd.parse_set(s) for s in args.sets]
    row = cmd.propose(
        repo,
        loaded.config,
        targets=args.target,
        changes=raw,
        actor=local_identity(),
        reason=args.reason,
        signals=args.signals,
        title=args.title,
    )
    if args.json:
        print(json.dumps(row.model_dump(mode="json"), indent=2))
    else:
        print(
            f"rollout {row.id} proposed: {row.title}\n  approve with: charter-tui rollouts approve {row.id}"
        )
    return 0


def _dry_run(loaded: Any, targets: list[str], raw: list[dict[str, Any]], as_json: bool) -> int:
    from daemon.actuators import make_actuator

    changes = cmd.validate_proposal(loaded.config, targets, raw)
    state_dir = locations(None).state_dir / "rollouts"

    async def plans() -> list[dict[str, Any]]:
        out = []
        for name in targets:
            actuator = make_actuator(
                cmd.target_config(loaded.config, name), changes, loaded.config.rollouts, state_dir
            )
            try:
                plan = await actuator.plan()
                before, after = actuator.values_in(plan["current"]), actuator.values_in(plan["desired"])
                # Per setting, as a person reads it (the configured argv's value, not the raw snapshot's).
                plan["settings"] = {key: [before.get(key), after.get(key)] for key in after}
                out.append(plan)
            except Exception as exc:  # noqa: BLE001 - a dry run reports, it does not fail half-way
                out.append({"target": name, "error": str(exc)})
        return out

    result = redact_data(asyncio.run(plans()))  # a plan holds the launch env and argv
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    for plan in result:
        if "error" in plan:
            print(f"{plan['target']}: cannot read its current config: {plan['error']}")
            continue
        print(f"{plan['target']} ({plan['actuator']}): would change")
        for key, (before, after) in plan["settings"].items():
            print(
                f"  {key}: {DEFAULT if before is None else before} -> {DEFAULT if after is None else after}"
            )
    print(
        "dry run: nothing stored, nothing changed (--json shows each target's whole current and new config)"
    )
    return 0


def run_command(args: argparse.Namespace) -> int:
    action = args.command_action
    loaded, repo = _repo(args, mutating=action)
    if action == "approve" and not _outage_accepted(loaded, repo, args):
        print(f"rollout {args.id}: not approved", file=sys.stderr)
        return 1
    row = cmd.apply_command(repo, action, args.id, actor=local_identity(), comment=args.comment)
    if args.json:
        print(json.dumps(row.model_dump(mode="json"), indent=2))
    else:
        print(f"rollout {row.id}: {row.state}" + (f" ({args.comment})" if args.comment else ""))
    return 0


def _outage_accepted(loaded: Any, repo: RolloutRepo, args: argparse.Namespace) -> bool:
    """Said before approving a relaunch of the only server: what it costs (from the last relaunch on
    record). At a terminal the user then chooses; a script (no terminal, or `--yes`) is told and goes on."""
    try:
        pending = repo.get(args.id)
    except UserError:
        return True  # apply_command refuses it with the reason
    warning = cmd.outage_warning(loaded.config, pending.targets, repo.list())
    if not warning:
        return True
    print(f"note: {warning}", file=sys.stderr)
    if args.yes or not sys.stdin.isatty():
        return True
    try:
        answer = input("Approve anyway? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
