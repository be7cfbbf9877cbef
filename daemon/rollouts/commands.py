"""What a person can ask of a rollout — propose, approve, reject, pause, resume, rollback — as plain
functions over the store, shared by the CLI (its own process), the TUI and the bus handler.

A command is only a checked, audited state change in the database; the manager loop in the daemon
notices it on its next step and does the work (apply, restore). That is why a command works while
no daemon runs (an approval waits in the store), and why none can be lost or carried out twice:
the transition is made once, under the row lock, and every later identical command is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from daemon.actuators import actuator_kind, make_actuator, validate_changes
from daemon.actuators.params import InvalidChange
from daemon.identity import daemon_id
from daemon.config import Config, TargetConfig
from daemon.errors import UserError
from daemon.models import Recommendation, RecommendationStatus, Rollout
from daemon.rollouts.machine import (
    ACTIONS,
    COMMAND_FROM,
    Action,
    IllegalTransition,
    check_command,
    resume_target,
)
from daemon.actuators.change import Change
from daemon.rollouts.model import ACTIVE_STATES, RolloutState
from daemon.rollouts.repo import Draft, RolloutRepo, stage_of
from daemon.store import Store


class ReadOnly(UserError):
    pass


def parse_set(text: str) -> dict[str, Any]:
    """`PARAM=VALUE` or `MODEL:PARAM=VALUE` from the command line -> a raw change (validated later)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise InvalidChange(f"--set {text!r}: expected PARAM=VALUE (or MODEL:PARAM=VALUE)")
    model, colon, param = name.partition(":")
    return {"param": param, "value": value, "model": model} if colon else {"param": name, "value": value}


def target_config(config: Config, name: str) -> TargetConfig:
    for target in config.targets:
        if target.name == name:
            return target
    known = ", ".join(t.name for t in config.targets) or "none configured"
    raise UserError(f"no target {name!r} in the config (targets: {known})")


def validate_proposal(
    config: Config,
    targets: Sequence[str],
    raw_changes: Iterable[dict[str, Any] | Change],
    state_dir: Path | None = None,
) -> list[Change]:
    """Typed changes valid for every target, or a refusal. Nothing runs: actuators are only built."""
    if not targets:
        raise UserError("a rollout needs at least one target")
    if len(set(targets)) != len(targets):
        raise UserError("a target is named twice")
    raw = list(raw_changes)
    changes: list[Change] | None = None
    for name in targets:
        target = target_config(config, name)
        validated = validate_changes(target, raw, config.rollouts)
        if changes is not None and validated != changes:
            raise UserError("the targets of one rollout must take the same changes (same engine and model)")
        changes = validated
        make_actuator(
            target, validated, config.rollouts, Path(state_dir or ".")
        )  # refuses e.g. vLLM without launch
    assert changes is not None
    return changes


def propose(
    repo: RolloutRepo,
    config: Config,
    *,
    targets: Sequence[str],
    changes: Iterable[dict[str, Any] | Change],
    actor: str,
    reason: str | None = None,
    signals: Sequence[str] = (),
    title: str | None = None,
    recommendation_id: int | None = None,
    readonly: bool = False,
) -> Rollout:
    if readonly:
        raise ReadOnly("read-only: proposing a rollout is refused")
    typed = validate_proposal(config, targets, changes)
    unknown = sorted(set(signals) - set(config.rollouts.thresholds))
    if unknown:
        raise UserError(
            f"unknown signal(s) {', '.join(unknown)}; known: {', '.join(sorted(config.rollouts.thresholds))}"
        )
    title = title or ", ".join(f"{c.key()}={c.value}" for c in typed) + " on " + ", ".join(targets)
    return repo.create(
        title=title,
        targets=targets,
        changes=typed,
        actor=actor,
        reason=reason,
        signals=signals,
        recommendation_id=recommendation_id,
        daemon=daemon_id(config.daemon),
    )


# Signals that judge a recommendation's kind of change, when it names none itself.
SIGNALS_BY_KIND: dict[str, list[str]] = {
    "kv_cache": ["prefix_hit_rate", "ttft_p95_s", "preemptions", "error_rate"],
    "batching": ["ttft_p95_s", "itl_p95_s", "generation_tokens_per_s", "error_rate"],
    "quantization": ["itl_p95_s", "generation_tokens_per_s", "error_rate"],
}


def recommendation_changes(rec: Recommendation) -> list[dict[str, Any]]:
    """The optimizer's `ConfigChange`s as raw changes. Changes a rollout cannot carry out (an engine
    rebuild, a code edit, "current + 1" replicas) are refused here with the reason, not half-applied."""
    out = []
    for change in rec.detail.get("changes", []):
        param = change.get("param") or change.get("parameter")
        if change.get("apply") in ("rebuild", "code"):
            raise InvalidChange(
                f"{param}: needs an engine rebuild or a code change ({change['apply']}), not a rollout"
            )
        value = next((change[k] for k in ("value", "recommended_value", "recommended") if k in change), None)
        if isinstance(param, str):
            param = param.removeprefix("parameters.")  # the optimizer's Triton config path
        out.append(
            {"param": param, "value": value, **({"model": change["model"]} if change.get("model") else {})}
        )
    return out


def recommendation_of(repo: RolloutRepo, recommendation_id: int) -> Recommendation:
    with repo.store.session() as s:
        rec = s.get(Recommendation, recommendation_id)
    if rec is None:
        raise UserError(f"no recommendation {recommendation_id}")
    return rec


def recommendation_targets(rec: Recommendation) -> list[str]:
    """The targets a recommendation's changes are for."""
    return list(rec.detail.get("targets") or ([rec.instance] if rec.instance else []))


def propose_recommendation(
    repo: RolloutRepo, config: Config, recommendation_id: int, *, actor: str, readonly: bool = False
) -> Rollout:
    """A stored recommendation through the same gate: its changes, targets and signals become a proposal."""
    rec = recommendation_of(repo, recommendation_id)
    targets = recommendation_targets(rec)
    rollout = propose(
        repo,
        config,
        targets=targets,
        changes=recommendation_changes(rec),
        actor=actor,
        reason=rec.title,
        signals=rec.detail.get("signals") or SIGNALS_BY_KIND.get(rec.kind, []),
        recommendation_id=rec.id,
        readonly=readonly,
    )
    rec.status = RecommendationStatus.PROPOSED
    repo.store.merge(rec)
    return rollout


def recommendation_refused(
    repo: RolloutRepo, recommendation_id: int, *, rollout_id: int, target: str, reason: str, now: float
) -> Recommendation | None:
    """The server would not run a recommendation's change (its rollout failed while applying it): the
    recommendation is dismissed with the server's reason, so the optimizer, which leaves dismissed
    recommendations alone, stops offering a change this server has refused. A person can still propose
    it by hand."""
    with repo.store.session() as s:
        rec = s.get(Recommendation, recommendation_id)
        if rec is None or rec.status == RecommendationStatus.DISMISSED:
            return None
        rec.status = RecommendationStatus.DISMISSED
        rec.detail = {
            **rec.detail,
            "refused": {"rollout": rollout_id, "target": target, "reason": reason[:1000], "at": now},
        }
        rec.updated_at = now
        s.add(rec)
        s.commit()
        s.refresh(rec)
        return rec


def last_relaunch_s(rows: Iterable[Rollout], target: str) -> tuple[float, int] | None:
    """How long `target` was out of service the last time a rollout relaunched it (the vLLM actuator's
    `downtime_s`: old server stopped to new one healthy), and which rollout that was; None if never."""
    seen: list[tuple[float, float, int]] = []
    for row in rows:
        progress = stage_of(row).progress.get(target)
        downtime = (progress.readback or {}).get("downtime_s") if progress is not None else None
        if isinstance(downtime, int | float) and not isinstance(downtime, bool) and progress is not None:
            # A restore replaces the readback with its own relaunch's: then that one is the latest.
            when = progress.restored_at or progress.applied_at or 0.0
            seen.append((when, float(downtime), row.id or 0))
    if not seen:
        return None
    _, downtime, rollout = max(seen)
    return downtime, rollout


def outage_warning(config: Config, targets: Sequence[str], history: Iterable[Rollout] = ()) -> str | None:
    """What approving costs when the canary is the only server: a vLLM change is applied by relaunching
    it, so nothing serves until the new process is ready and every request meanwhile is refused. Said
    before the approval, by the TUI's dialog and the CLI, instead of found out from the clients; with
    the last relaunch's measured outage from `history` (earlier rollouts) when there was one."""
    if len(targets) != 1:
        return None
    target = next((t for t in config.targets if t.name == targets[0]), None)
    try:
        kind = actuator_kind(target, config.rollouts) if target is not None else None
    except InvalidChange:
        return None
    if target is None or kind != "vllm":
        return None
    if target.launch is not None and target.launch.blue_green is not None:
        return None  # the new server starts beside the old one: nothing stops serving
    last = last_relaunch_s(history, target.name)
    expected = (
        f"its last relaunch (rollout {last[1]}) left nothing serving for {last[0]:.0f} s"
        if last is not None
        else f"no relaunch of it is on record here; expect up to {config.rollouts.apply_timeout_s:g} s"
    )
    return (
        f"{target.name} is this rollout's only server: the change relaunches it, and nothing serves until "
        f"the new vLLM is ready ({expected}); requests meanwhile are refused. "
        "Add a second target to canary without an outage."
    )


def allowed_actions(row: Rollout) -> frozenset[Action]:
    """The commands a person may give this rollout now: exactly what `apply_command` would accept (bar a
    clash with another rollout), so a UI offers no key the daemon refuses."""
    state = RolloutState(row.state)
    allowed = {action for action, states in COMMAND_FROM.items() if state in states}
    restoring = state in (RolloutState.FAILED, RolloutState.ROLLING_BACK)
    if restoring and any(p.status == "failed" for p in stage_of(row).progress.values()):
        allowed.add("rollback")  # a restore that gave up can be retried (see `_retry_restore`)
    return frozenset(allowed)


def _busy_targets(repo: RolloutRepo, rollout_id: int, targets: Sequence[str]) -> list[str]:
    clashes = []
    for other in repo.list(ACTIVE_STATES):
        if other.id != rollout_id and set(other.targets) & set(targets):
            clashes.append(
                f"rollout {other.id} ({other.state}) holds {', '.join(sorted(set(other.targets) & set(targets)))}"
            )
    return clashes


def apply_command(
    repo: RolloutRepo,
    action: str,
    rollout_id: int,
    *,
    actor: str,
    comment: str | None = None,
    readonly: bool = False,
) -> Rollout:
    """Carry out a person's command as one checked, audited transition; raises with the reason if refused."""
    if action not in ACTIONS:
        raise UserError(f"unknown rollout action {action!r} (known: {', '.join(ACTIONS)})")
    if readonly:
        raise ReadOnly(f"read-only: {action} is refused")
    row = repo.get(rollout_id)
    current = RolloutState(row.state)

    if action == "rollback" and current in (RolloutState.FAILED, RolloutState.ROLLING_BACK):
        return _retry_restore(repo, rollout_id, actor, comment)
    check_command(action, current, rollout_id)

    if action == "approve":

        def approve(d: Draft) -> None:
            clashes = _busy_targets(repo, rollout_id, d.row.targets)
            if clashes:
                raise IllegalTransition(f"cannot approve rollout {rollout_id}: " + "; ".join(clashes))

        return repo.mutate(
            rollout_id,
            approve,
            actor=actor,
            action="approve",
            to_state=RolloutState.APPROVED,
            expect={RolloutState.PENDING_APPROVAL},
            comment=comment,
        )
    if action == "reject":
        return repo.mutate(
            rollout_id,
            None,
            actor=actor,
            action="reject",
            to_state=RolloutState.REJECTED,
            expect={RolloutState.PENDING_APPROVAL},
            comment=comment,
        )
    if action == "pause":

        def pause(d: Draft) -> None:
            d.stage.paused_from, d.stage.pause_reason = d.state, "manual"

        return repo.mutate(
            rollout_id,
            pause,
            actor=actor,
            action="pause",
            to_state=RolloutState.PAUSED,
            expect={current},
            comment=comment,
        )
    if action == "resume":
        destination = resume_target(stage_of(row).paused_from, stage_of(row).pause_reason)

        def resume(d: Draft) -> None:
            d.stage.paused_from, d.stage.pause_reason = None, None

        return repo.mutate(
            rollout_id,
            resume,
            actor=actor,
            action="resume",
            to_state=destination,
            expect={RolloutState.PAUSED},
            comment=comment,
        )

    def rollback(d: Draft) -> None:
        d.stage.failed_from = d.state
        d.stage.failure_reason = f"rollback requested by {actor}" + (f": {comment}" if comment else "")

    return repo.mutate(
        rollout_id,
        rollback,
        actor=actor,
        action="rollback",
        to_state=RolloutState.ROLLING_BACK,  # asked for: not a failure, restored the same way
        expect={current},
        comment=comment,
    )


def _retry_restore(repo: RolloutRepo, rollout_id: int, actor: str, comment: str | None) -> Rollout:
    """`rollback` on a FAILED or ROLLING_BACK rollout whose restore gave up: try again (a person fixed
    the target)."""

    def retry(d: Draft) -> None:
        stuck = [n for n, p in d.stage.progress.items() if p.status == "failed"]
        if not stuck:
            raise IllegalTransition(
                f"cannot rollback rollout {rollout_id}: its rollback is already under way"
            )
        for name in stuck:
            p = d.stage.progress[name]
            p.status, p.restore_attempts, p.next_restore_at = "restoring", 0, None

    return repo.mutate(rollout_id, retry, actor=actor, action="retry-restore", comment=comment)


def open_repo(database_url: str) -> RolloutRepo:
    return RolloutRepo(Store(database_url))
