"""The rollout manager: the daemon loop that carries approved rollouts out on the real servers.

    manager = RolloutManager(config, store, bus, state_dir=locations().state_dir / "rollouts")
    await manager.run(stop)     # recover, then step every active rollout each `step_interval_s`

Each step does one small, persisted piece of work and writes what it did before moving on, so a
SIGKILL anywhere leaves the database describing a state recovery can resolve:
- before a target is touched, its exact current config is stored (`previous_config[target]`), then the
  target is marked `applying`; only after the change is read back is it marked `applied`;
- on start, `recover()` looks at every target marked `applying`/`applied` and asks the server what it
  really runs: the new config -> carry on (the canary window restarts: no samples were taken while the
  daemon was down); the recorded one -> the change never happened, do it now; anything else, or a
  changed target that no longer runs the change -> FAILED, and the rollback restores the recorded config;
- the FAILED handler is idempotent: a target already running its recorded config is not touched again.
Commands from people arrive as database transitions (CLI, TUI) or over the bus (`handle_command`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from daemon.actuators import Actuator, ActuatorError, make_actuator, validate_changes
from daemon.auth import CommandRefused, targets_allowed
from daemon.bus import Bus, Event, topic
from daemon.config import Config, TargetConfig
from daemon.contract import COMMAND_PATTERN, RESULT_TOPIC, AuthorizedCommand, CommandResult
from daemon.errors import UserError
from daemon.models import AuditEvent, Rollout
from daemon.rollouts import commands as cmd
from daemon.rollouts.model import ACTIVE_STATES, Comparison, RolloutState, TargetProgress
from daemon.rollouts.repo import (Draft, RolloutRepo, StateChanged, changes_of, public_event, public_view,
                                  stage_of)
from daemon.rollouts.validation import baseline_samples, canary_samples, compare
from daemon.store import Store

log = logging.getLogger(__name__)

S = RolloutState
COMMAND_TOPIC = COMMAND_PATTERN
ACTOR = "daemon"
Checkpoint = Callable[[str, int], None]


def _id(row: Rollout) -> int:
    assert row.id is not None  # a row read from the store: only an unsaved row has no id
    return row.id


class RolloutManager:
    def __init__(
        self,
        config: Config,
        store: Store,
        bus: Bus | None = None,
        *,
        state_dir: Path,
        readonly: bool | None = None,
        checkpoint: Checkpoint | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.cfg = config.rollouts
        self.repo = RolloutRepo(store)
        self.bus = bus or Bus()
        self.state_dir = state_dir
        self.readonly = config.daemon.readonly if readonly is None else readonly
        # Test hook: called at named points (e.g. "after_apply") so fault tests can SIGKILL exactly there.
        self.checkpoint: Checkpoint = checkpoint or (lambda _name, _id: None)
        self.clock = clock
        self.recovered = False
        self._published: dict[int, float] = {}
        self._last_scan = 0.0
        self._noted_readonly: set[int | None] = set()
        # Subscribed now, not in run(): a command published while the daemon is still starting (or
        # recovering) waits in the queue instead of being lost.
        self._commands = self.bus.subscribe(COMMAND_TOPIC)

    # --- the loop ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Recover, then step active rollouts until `stop` is set; bus commands are handled between steps."""
        if self._commands not in self.bus.subscriptions:  # restarted by the supervisor after a crash
            self._commands = self.bus.subscribe(COMMAND_TOPIC)
        sub = self._commands
        try:
            await self.recover()
            while not stop.is_set():
                await self.step_all()
                await self._wait_for_commands(sub, stop)
        finally:
            self.bus.unsubscribe(sub)

    async def run_forever(self) -> None:
        """The same loop for `DaemonService.extra_loops()`, whose loops run until cancelled.

        Cancelling in the middle of a change is safe: the target was marked `applying` first, and the
        next start's `recover()` asks it what it runs.
        """
        await self.run(asyncio.Event())

    async def _wait_for_commands(self, sub: Any, stop: asyncio.Event) -> None:
        deadline = time.monotonic() + self.cfg.step_interval_s
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            get = asyncio.ensure_future(sub.get())
            stopped = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({get, stopped}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if get in done:
                await self.handle_event(get.result())
            else:
                get.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await get
                return

    async def step_all(self) -> None:
        await self.publish_changes()
        rows = await asyncio.to_thread(self.repo.list, ACTIVE_STATES)
        if self.readonly:
            # Read-only means no transition from any source: an approval written by the CLI into the
            # store waits for a daemon that may act, instead of being carried out here.
            self._note_waiting(rows)
            return
        for row in sorted(rows, key=lambda r: r.id or 0):
            try:
                await self.advance(row)
            except StateChanged as exc:  # a person's command landed between our read and write
                log.info("rollout %s: %s; re-reading on the next step", row.id, exc)
            except Exception:  # noqa: BLE001 - one bad rollout must not stop the others
                log.exception("rollout %s: step failed", row.id)

    def _note_waiting(self, rows: list[Rollout]) -> None:
        waiting = {row.id for row in rows if S(row.state) not in (S.PENDING_APPROVAL, S.PAUSED)}
        for rollout_id in sorted(waiting - self._noted_readonly, key=lambda i: i or 0):
            log.warning("read-only daemon: rollout %s is active but will not be carried out here", rollout_id)
        self._noted_readonly = waiting

    # --- commands ------------------------------------------------------------------------------
    async def handle_event(self, event: Event) -> None:
        """One event from a command topic -> a checked, audited transition, answered with a `CommandResult`.

        Only `AuthorizedCommand`s are accepted: whoever put it on the bus (the MQTT bridge after checking
        a signature, the embedded TUI as the local user) established the identity. Anything else on a
        command topic (a bare dict, a string) is refused as unauthenticated, whatever `actor` it claims.
        """
        payload = event.payload
        if not isinstance(payload, AuthorizedCommand):
            reason = "unauthenticated command refused (send it signed over MQTT, or from the CLI/TUI)"
            await self._refuse(reason, identity=None, request_id=_request_id_of(payload), topic_=event.topic)
            return
        command = payload.command
        try:
            if event.topic != command.topic:
                raise UserError(f"the topic {event.topic} does not match the command's action {command.action}")
            row = await self.handle_command(payload)
        except (UserError, ValueError) as exc:
            await self._refuse(str(exc), identity=payload.identity, request_id=command.request_id,
                               topic_=event.topic)
            return
        self.bus.publish(RESULT_TOPIC, CommandResult(ok=True, request_id=command.request_id, rollout=_dump(row),
                                                     identity=payload.identity))

    async def refused(self, refused: CommandRefused, bus_topic: str) -> None:
        """A command the MQTT bridge refused before it reached the bus: answered and audited here too."""
        await self._refuse(refused.reason, identity=refused.identity, request_id=refused.request_id,
                           topic_=bus_topic)

    async def _refuse(self, reason: str, *, identity: str | None, request_id: str | None, topic_: str) -> None:
        """Answer and audit a refused command; nothing was changed."""
        log.warning("command on %s from %s refused: %s", topic_, identity or "an unverified sender", reason)
        audit = AuditEvent(actor=identity or "unverified", entity="command", entity_id=topic_[-200:],
                           action="refused", comment=reason[:2000])
        await asyncio.to_thread(self.repo.store.add_all, [audit])  # audited before the sender hears back
        self.bus.publish(topic("audit", "command"), audit)
        self.bus.publish(RESULT_TOPIC, CommandResult(ok=False, request_id=request_id, error=reason,
                                                     identity=identity))

    async def handle_command(self, authorized: AuthorizedCommand) -> Rollout:
        """Carry out an authorized command, as its verified identity (the audit's actor)."""
        command, actor = authorized.command, authorized.identity
        if self.readonly:
            raise cmd.ReadOnly(f"read-only daemon: {command.action} is refused")
        if command.action == "propose":
            _check_targets(authorized, command.targets)
            row = await asyncio.to_thread(
                cmd.propose,
                self.repo,
                self.config,
                targets=command.targets,
                changes=command.changes,
                actor=actor,
                reason=command.reason,
                signals=command.signals,
                readonly=self.readonly,
            )
        else:
            assert command.id is not None  # RolloutCommand requires it for every other action
            current = await asyncio.to_thread(self.repo.get, command.id)
            _check_targets(authorized, current.targets)
            row = await asyncio.to_thread(
                cmd.apply_command,
                self.repo,
                command.action,
                command.id,
                actor=actor,
                comment=command.comment,
                readonly=self.readonly,
            )
        latest = await asyncio.to_thread(self.repo.events, _id(row))
        self._publish(row, latest[-1] if latest else None)
        return row

    # --- one step of one rollout --------------------------------------------------------------
    async def advance(self, row: Rollout) -> None:
        state = S(row.state)
        if state == S.APPROVED:
            await self._start(row)
        elif state == S.CANARY:
            await self._canary(row)
        elif state == S.VALIDATING:
            await self._validate(row)
        elif state == S.ROLLING_OUT:
            await self._roll_out(row)
        elif state == S.FAILED:
            await self._roll_back(row)

    async def _start(self, row: Rollout) -> None:
        def plan(d: Draft) -> None:
            d.stage.order = list(d.row.targets)
            d.stage.canary = d.stage.order[0]
            d.stage.progress = {t: d.stage.progress.get(t, TargetProgress()) for t in d.stage.order}
            d.stage.signals = d.stage.signals or list(self.cfg.default_signals)

        await self._transition(row, S.CANARY, plan, comment=f"canary: {row.targets[0]}")

    async def _canary(self, row: Rollout) -> None:
        stage = stage_of(row)
        assert stage.canary is not None
        progress = stage.progress[stage.canary]
        if progress.status != "applied":
            await self._apply_target(row, stage.canary, canary=True)
            return
        try:
            ok, why = await self._actuator(row, stage.canary).healthy()
        except ActuatorError as exc:
            ok, why = False, str(exc)
        if not ok:
            await self._fail(row, f"canary {stage.canary} stopped serving during the canary window: {why}")
            return
        assert stage.canary_since is not None
        if self.clock() >= stage.canary_since + self.cfg.warmup_s + self.cfg.canary_window_s:
            await self._transition(row, S.VALIDATING, None, comment="canary window over")

    async def _validate(self, row: Rollout) -> None:
        comparison = await asyncio.to_thread(self._compare, row)

        def record(d: Draft) -> None:
            d.comparison = comparison.model_dump(mode="json")
            if comparison.verdict == "FAIL":
                d.stage.failure_reason, d.stage.failed_from = f"validation failed: {comparison.summary}", S.VALIDATING
            elif comparison.verdict == "INCONCLUSIVE":
                d.stage.paused_from, d.stage.pause_reason = S.VALIDATING, "inconclusive"

        to = {"PASS": S.ROLLING_OUT, "FAIL": S.FAILED, "INCONCLUSIVE": S.PAUSED}[comparison.verdict]
        await self._transition(row, to, record, comment=f"{comparison.verdict}: {comparison.summary}"[:2000])

    def _compare(self, row: Rollout) -> Comparison:
        stage = stage_of(row)
        assert stage.canary is not None and stage.canary_since is not None
        since = stage.canary_since + self.cfg.warmup_s
        until = since + self.cfg.canary_window_s
        canary = canary_samples(self.repo.store.samples(stage.canary, since - 3600, until + 1), since, until)
        others = [t for t in stage.order if t != stage.canary]
        if others:  # the rest still run the old config: judge the canary against them, same time, same traffic
            baseline = [
                s for t in others for s in baseline_samples(self.repo.store.samples(t, since, until + 1), since, until)
            ]
            info = {"targets": others, "since": since, "until": until, "kind": "peers"}
        else:  # one target: against its own samples from before the change
            b = stage.baseline or {}
            b_since, b_until = b.get("since", since - self.cfg.baseline_window_s), b.get("until", stage.canary_since)
            baseline = baseline_samples(self.repo.store.samples(stage.canary, b_since, b_until), b_since, b_until)
            info = {"targets": [stage.canary], "since": b_since, "until": b_until, "kind": "self-before"}
        return compare(
            baseline,
            canary,
            stage.signals or self.cfg.default_signals,
            self.cfg,
            baseline_info=info,
            canary_info={"target": stage.canary, "since": since, "until": until},
            now=self.clock(),
        )

    async def _roll_out(self, row: Rollout) -> None:
        stage = stage_of(row)
        for name in stage.order:
            if stage.progress[name].status != "applied":
                await self._apply_target(row, name, canary=False)
                return  # one target per step: a pause or rollback gets in between targets
        await self._transition(row, S.COMPLETED, None, comment=f"applied to {', '.join(stage.order)}")

    async def _apply_target(self, row: Rollout, name: str, *, canary: bool) -> None:
        assert row.id is not None
        try:
            actuator = self._actuator(row, name)
            if name not in row.previous_config:
                snapshot = await actuator.snapshot()

                def record(d: Draft) -> None:
                    d.previous_config[name] = snapshot

                row = await self._mutate(row, record, action="snapshot", comment=f"recorded the config of {name}")
            previous = row.previous_config[name]
            desired = actuator.desired(previous)
            started = self.clock()

            def mark(d: Draft) -> None:
                d.stage.progress[name].status = "applying"
                if canary and len(d.stage.order) == 1:
                    d.stage.baseline = {"since": started - self.cfg.baseline_window_s, "until": started}

            row = await self._mutate(row, mark, action="apply", comment=f"applying to {name}")
            self.checkpoint("before_apply", _id(row))
            readback = await actuator.converge(desired)
            self.checkpoint("after_apply", _id(row))
        except ActuatorError as exc:
            await self._fail(row, f"applying to {name} failed: {exc}")
            return
        await self._mark_applied(row, name, readback, canary=canary)

    async def _mark_applied(self, row: Rollout, name: str, readback: dict[str, Any], *, canary: bool) -> Rollout:
        now = self.clock()

        def done(d: Draft) -> None:
            p = d.stage.progress[name]
            p.status, p.applied_at, p.readback, p.error = "applied", now, _clip(readback), None
            if canary:
                d.stage.canary_since = now

        return await self._mutate(row, done, action="applied", comment=f"{name}: change verified ({_brief(readback)})")

    async def _roll_back(self, row: Rollout) -> None:
        stage = stage_of(row)
        now = self.clock()
        for name in reversed(stage.applied_targets()):
            progress = stage.progress[name]
            if progress.status in ("restored", "failed"):
                continue
            if progress.next_restore_at and now < progress.next_restore_at:
                return
            await self._restore_target(row, name)
            return  # one target per step
        stage = stage_of(await asyncio.to_thread(self.repo.get, _id(row)))
        if any(p.status == "failed" for p in stage.progress.values()):
            return  # a person has to look (restore gave up); `rollback` retries
        restored = [n for n in stage.applied_targets() if stage.progress[n].status == "restored"]
        await self._transition(
            row,
            S.ROLLED_BACK,
            None,
            comment=("restored " + ", ".join(restored)) if restored else "nothing had been changed",
        )

    async def _restore_target(self, row: Rollout, name: str) -> None:
        assert row.id is not None
        previous = row.previous_config.get(name)
        if previous is None:
            # Marked without a snapshot cannot happen (the snapshot is written first); be explicit anyway.
            await self._restore_result(row, name, error=f"no recorded config for {name}", give_up=True)
            return
        try:
            actuator = self._actuator(row, name)
        except ActuatorError as exc:
            await self._restore_result(row, name, error=str(exc), give_up=True)
            return
        observed = await actuator.observe()
        if observed is not None and actuator.matches(observed, previous):
            await self._restore_result(row, name, readback={"already": "running the recorded config"})
            return

        def mark(d: Draft) -> None:
            d.stage.progress[name].status = "restoring"

        row = await self._mutate(row, mark, action="restore", comment=f"restoring {name} to its recorded config")
        self.checkpoint("before_restore", _id(row))
        try:
            readback = await actuator.converge(previous)
        except ActuatorError as exc:
            await self._restore_result(row, name, error=str(exc))
            return
        self.checkpoint("after_restore", _id(row))
        await self._restore_result(row, name, readback=readback)

    async def _restore_result(
        self,
        row: Rollout,
        name: str,
        *,
        readback: dict[str, Any] | None = None,
        error: str | None = None,
        give_up: bool = False,
    ) -> None:
        now = self.clock()

        def record(d: Draft) -> None:
            p = d.stage.progress[name]
            if error is None:
                p.status, p.restored_at, p.readback, p.error, p.next_restore_at = "restored", now, _clip(readback or {}), None, None
                return
            p.restore_attempts += 1
            p.error = error
            if give_up or p.restore_attempts >= self.cfg.max_restore_attempts:
                p.status, p.next_restore_at = "failed", None
            else:
                p.status = "restoring"
                p.next_restore_at = now + min(60.0, 2.0 ** min(p.restore_attempts, 6))

        action = "restored" if error is None else "restore-failed"
        comment = f"{name}: " + (_brief(readback or {}) if error is None else error)
        await self._mutate(row, record, action=action, comment=comment[:2000])

    # --- recovery ------------------------------------------------------------------------------
    async def recover(self) -> None:
        """After a (re)start: reconcile every active rollout with what its targets really run."""
        if self.readonly:  # reconciling may change targets and rows; a read-only daemon only watches
            self.recovered = True
            return
        rows = await asyncio.to_thread(self.repo.list, ACTIVE_STATES)
        for row in rows:
            try:
                await self._recover_one(row)
            except Exception:  # noqa: BLE001
                log.exception("rollout %s: recovery failed; it will be stepped as stored", row.id)
        self.recovered = True

    async def _recover_one(self, row: Rollout) -> None:
        stage = stage_of(row)
        findings: list[str] = []
        drift: list[str] = []
        for name in stage.applied_targets():
            progress = stage.progress[name]
            if progress.status not in ("applying", "applied"):
                continue  # restoring / restored / failed: the FAILED handler observes before acting
            previous = row.previous_config.get(name)
            try:
                actuator = self._actuator(row, name)
            except ActuatorError as exc:
                drift.append(str(exc))
                continue
            if previous is None:
                drift.append(f"{name}: no recorded config")
                continue
            observed = await actuator.observe()
            desired = actuator.desired(previous)
            if observed is None:
                drift.append(f"{name} is unreachable")
            elif actuator.matches(observed, desired):
                findings.append(f"{name} runs the change")
                if progress.status == "applying":
                    row = await self._mark_applied(row, name, {"recovered": True}, canary=name == stage.canary)
            elif actuator.matches(observed, previous) and progress.status == "applying":
                findings.append(f"{name} still runs its recorded config: the change had not happened")

                def reset(d: Draft, name: str = name) -> None:
                    d.stage.progress[name].status = "pending"

                row = await self._mutate(row, reset, action="recover", comment=f"{name}: change not applied yet")
            else:
                drift.append(f"{name} runs neither the change nor its recorded config")
        canary_restart = S(row.state) == S.CANARY and stage.canary_since is not None and not drift

        def note(d: Draft) -> None:
            d.stage.recoveries += 1
            if canary_restart:
                d.stage.canary_since = self.clock()  # no samples were judged while the daemon was down

        comment = "; ".join(findings + drift) or "nothing applied yet"
        row = await self._mutate(row, note, action="recover", comment=comment)
        if drift and S(row.state) != S.FAILED:
            await self._fail(row, "after a restart: " + "; ".join(drift))

    # --- helpers -------------------------------------------------------------------------------
    def _target(self, name: str) -> TargetConfig | None:
        return next((t for t in self.config.targets if t.name == name), None)

    def _actuator(self, row: Rollout, name: str) -> Actuator:
        """The actuator for one target, with the stored changes validated again: what runs is checked
        against the parameter registry at the moment it runs, not only when it was proposed."""
        target = self._target(name)
        if target is None:
            raise ActuatorError(f"target {name} is no longer in the config")
        try:
            changes = validate_changes(target, changes_of(row), self.cfg)
            return make_actuator(target, changes, self.cfg, self.state_dir)
        except UserError as exc:
            raise ActuatorError(f"{name}: {exc}") from None

    async def _fail(self, row: Rollout, reason: str) -> None:
        def record(d: Draft) -> None:
            d.stage.failure_reason, d.stage.failed_from = reason, d.state

        current = S((await asyncio.to_thread(self.repo.get, _id(row))).state)
        if current in (S.FAILED, S.ROLLED_BACK, S.COMPLETED):
            return
        await self._transition(row, S.FAILED, record, comment=reason[:2000], expect=None)

    async def _transition(
        self,
        row: Rollout,
        to: RolloutState,
        fn: Callable[[Draft], None] | None,
        *,
        comment: str,
        expect: set[RolloutState] | None | Literal[True] = True,
    ) -> Rollout:
        assert row.id is not None
        expected = {S(row.state)} if expect is True else expect
        out: list[AuditEvent] = []
        new = await asyncio.to_thread(
            self.repo.mutate, row.id, fn, actor=ACTOR, action=to.value.lower(), to_state=to, expect=expected,
            comment=comment, events_out=out,
        )
        self._publish(new, out[0] if out else None)
        log.info("rollout %s: %s -> %s: %s", row.id, row.state, to.value, comment)
        self.checkpoint(f"state:{to.value}", row.id)
        return new

    async def _mutate(self, row: Rollout, fn: Callable[[Draft], None], *, action: str, comment: str) -> Rollout:
        assert row.id is not None
        out: list[AuditEvent] = []
        new = await asyncio.to_thread(
            self.repo.mutate, row.id, fn, actor=ACTOR, action=action, comment=comment, events_out=out
        )
        self._publish(new, out[0] if out else None)
        return new

    def _publish(self, row: Rollout, event: AuditEvent | None = None) -> None:
        """The row in-process (the bus's contract: models in-process, their JSON on MQTT), as its public
        view: the recorded previous config (launch env, argv) stays in the database for the rollback."""
        self.bus.publish(topic("rollout", str(row.id)), public_view(row))
        self._published[row.id or 0] = row.updated_at
        if event is not None:
            self.bus.publish(topic("audit", "rollout"), public_event(event))

    async def publish_changes(self) -> None:
        """Publish rollouts changed by other processes (the CLI writes to the store directly)."""
        rows = await asyncio.to_thread(self.repo.changed_since, self._last_scan)
        for row in rows:
            if self._published.get(row.id or 0) != row.updated_at:
                self._publish(row)
            self._last_scan = max(self._last_scan, row.updated_at)


def _check_targets(authorized: AuthorizedCommand, targets: list[str]) -> None:
    refused = targets_allowed(authorized.targets, targets)
    if refused:
        raise UserError(f"identity {authorized.identity!r} may not act on target(s) {', '.join(refused)}")


def _request_id_of(payload: object) -> str | None:
    """The request id of an unauthenticated command, only so its sender can match the refusal."""
    rid = payload.get("request_id") if isinstance(payload, dict) else None
    return rid if isinstance(rid, str) and len(rid) <= 128 and rid.isprintable() else None


def _dump(row: Rollout) -> dict[str, Any]:
    return public_view(row).model_dump(mode="json")


def _clip(data: dict[str, Any], limit: int = 4000) -> dict[str, Any]:
    """Read-back evidence is kept, but not a whole /metrics page."""
    text = json.dumps(data, default=str)
    return data if len(text) <= limit else {"truncated": text[:limit]}


def _brief(readback: dict[str, Any]) -> str:
    keys = ("flags", "parameters", "values", "cache_config_info", "already", "recovered")
    parts = [f"{k}={readback[k]}" for k in keys if k in readback]
    return ("; ".join(parts) or "ok")[:500]


__all__ = ["COMMAND_TOPIC", "RESULT_TOPIC", "RolloutManager"]
