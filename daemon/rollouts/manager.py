"""The rollout manager: the daemon loop that carries approved rollouts out on the real servers, stage by stage.

    manager = RolloutManager(config, store, bus, state_dir=locations().state_dir / "rollouts")
    await manager.run(stop)     # recover, then start a step of every active rollout each `step_interval_s`

Each step does one small, persisted piece of work and writes what it did before moving on (through the
`journal`), so a SIGKILL anywhere leaves the database describing a state recovery can resolve:
- before a target is touched, its exact current config is stored (`previous_config[target]`), then the
  target is marked `applying`; only after the change is read back is it marked `applied`;
- on start, `recovery.recover` asks every target marked `applying`/`applied` what it really runs (the rules
  are in its docstring);
- the FAILED/ROLLING_BACK handler is idempotent: a target already running its recorded config is not touched again.
Commands from people arrive as database transitions (CLI, TUI) or over the bus, where `command_handler`
verifies, audits and answers them while steps run. Rollouts on different targets step side by side, each
group sharing a target in a task of its own (`lanes`): a relaunch that takes minutes holds up neither
another server's rollout nor a person's command. Which samples the VALIDATING step compares is `canary`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.actuators import Actuator, ActuatorError, make_actuator, validate_changes
from daemon.auth import CommandRefused
from daemon.bus import Bus, topic
from daemon.config import Config, TargetConfig
from daemon.contract import COMMAND_PATTERN
from daemon.errors import UserError
from daemon.models import Rollout
from daemon.rollouts import commands, recovery
from daemon.rollouts.canary import compare_canary
from daemon.rollouts.validation import gross_regressions
from daemon.rollouts.command_handler import CommandHandler
from daemon.identity import daemon_id
from daemon.rollouts.journal import ACTOR, Checkpoint, Journal, brief, clip, row_id
from daemon.rollouts.lease import Leases, daemon_of
from daemon.rollouts.model import ACTIVE_STATES, RolloutState, TargetProgress
from daemon.rollouts.probes import (
    PROBE_FAILURES_TO_STOP,
    CanaryProbes,
    failing_in_a_row,
    judge_probes,
    with_probes,
)
from daemon.rollouts.repo import Draft, RolloutRepo, StateChanged, changes_of, stage_of
from daemon.store import Store
from daemon.supervisor import until_stopped

log = logging.getLogger(__name__)

S = RolloutState
COMMAND_TOPIC = COMMAND_PATTERN


# How often a running canary's window so far is checked for a gross regression (`_check_early`).
EARLY_CHECK_S = 5.0
# A canary fails for not serving after this many failed health checks in a row (a step apart).
HEALTH_MISSES_TO_FAIL = 3
# A pending proposal's preview read must not hold up the rollout loop behind a hung target.
PENDING_READ_TIMEOUT_S = 30.0


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
        on_converged: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        # Told the target's name each time an actuator has brought it to a config (the daemon wakes the
        # target's poller: a relaunched server is measured at once, which the canary's window needs).
        self.on_converged = on_converged
        self.cfg = config.rollouts
        self.repo = RolloutRepo(store)
        self.bus = bus or Bus()
        self.state_dir = state_dir
        self.readonly = config.daemon.readonly if readonly is None else readonly
        self.journal = Journal(self.repo, self.bus, checkpoint=checkpoint, clock=clock)
        self.commands = CommandHandler(config, self.journal, readonly=self.readonly)
        self.leases = Leases(store, daemon_id(config.daemon), self.cfg.lease_s)
        if self.leases.shared:
            self.journal.fence = self.leases.fence
        self._not_driving: dict[int, str] = {}  # rollout -> why another daemon drives it (logged once)
        self._leased: set[int] = set()  # rollouts this daemon took a lease on, released once they are over
        self.recovered = False
        self._noted_readonly: set[int | None] = set()
        self._pending_read: set[int | None] = set()  # pending rollouts whose targets were read (once)
        self._early_checked: dict[int | None, float] = {}  # canary -> when its window was last checked
        # Unanswered health checks of each rollout's canary in a row: one timeout on a loaded box is not
        # an outage (a new user's canary was failed, and rolled back by a relaunch, for a single one).
        self._health_misses: dict[int, int] = {}
        self.probes = CanaryProbes(self.cfg.probe_interval_s, self.cfg.probe_timeout_s, lambda: self.clock())
        # Subscribed now, not in run(): a command published while the daemon is still starting (or
        # recovering) waits in the queue instead of being lost.
        self._commands = self.bus.subscribe(COMMAND_TOPIC)
        # The steps running now: (their rollouts, the targets they touch) -> the task stepping them.
        self._lanes: dict[tuple[frozenset[int], frozenset[str]], asyncio.Task[None]] = {}

    @property
    def clock(self) -> Callable[[], float]:
        """The journal's clock, the one every part reads (tests move it forward)."""
        return self.journal.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self.journal.clock = clock

    @property
    def checkpoint(self) -> Checkpoint:
        return self.journal.checkpoint

    # --- the loop ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Recover, then step active rollouts until `stop` is set; bus commands are handled as they come."""
        if self._commands not in self.bus.subscriptions:  # restarted by the supervisor after a crash
            self._commands = self.bus.subscribe(COMMAND_TOPIC)
        sub = self._commands
        renewal = asyncio.create_task(self._renew_leases())
        try:
            # A step can take minutes (a relaunched server loading): stopping cancels it, which is
            # safe — the target was marked `applying` first and the next start's recover() asks it.
            if not await until_stopped(self.recover(), stop):
                return
            # Steps run in lanes of their own (`_dispatch`): this loop never waits on one, so a command from
            # the bus, or a rollout on another server, is not held behind a relaunch that takes minutes.
            while not stop.is_set() and await until_stopped(self._dispatch(), stop):
                await self._wait_for_commands(sub, stop)
                self._reap_lanes()
        finally:
            renewal.cancel()
            await self._cancel_lanes()
            self.bus.unsubscribe(sub)
            await self.probes.stop_all_but(set())
            # A clean stop hands this daemon's rollouts on at once instead of after the lease runs out.
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.leases.release)

    async def _renew_leases(self) -> None:
        """Keep this daemon's leases alive while a step runs for minutes (a relaunch): renewed three times per
        lease, so two missed renewals still leave it held."""
        while True:
            await asyncio.sleep(self.cfg.lease_s / 3)
            try:
                await asyncio.to_thread(self.leases.renew_all)
            except Exception:  # noqa: BLE001 - the database away: the next step's acquire says more
                log.warning("renewing rollout leases failed", exc_info=True)

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
            done, _ = await asyncio.wait(
                {get, stopped}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            stopped.cancel()
            if get in done:
                await self.commands.handle_event(get.result())
            else:
                get.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await get
                return

    async def step_all(self) -> None:
        """One step of every active rollout (lanes side by side), returning once all of them have stepped."""
        await self._dispatch()
        await asyncio.gather(*self._lanes.values())
        self._reap_lanes()

    async def _dispatch(self) -> None:
        """Start one step of each active rollout that is not stepping already.

        Rollouts that share a target are one lane, stepped one after another in id order (their changes to
        one server must not interleave); lanes with no target in common run side by side, and a lane whose
        targets are still busy with an earlier step waits for the next pass."""
        await self.journal.publish_changes()
        rows = await asyncio.to_thread(self.repo.list, ACTIVE_STATES)
        if self.readonly:
            # Read-only means no transition from any source: an approval written by the CLI into the
            # store waits for a daemon that may act, instead of being carried out here.
            self._note_waiting(rows)
            return
        await self._read_pending(await asyncio.to_thread(self.repo.list, {S.PENDING_APPROVAL}))
        # Probes run while a rollout is canary; its validation reads them, then they stop.
        await self.probes.stop_all_but({row_id(r) for r in rows if S(r.state) in (S.CANARY, S.VALIDATING)})
        stepping = {rid for rollouts, _ in self._lanes for rid in rollouts}
        # Completed or rolled back (and no step of theirs still running): no one drives them any more.
        if over := self._leased - {row_id(r) for r in rows} - stepping:
            for rid in over:
                await asyncio.to_thread(self.leases.release, rid)
            self._leased -= over
        busy = {target for _, targets in self._lanes for target in targets}
        for lane in lanes(rows):
            touched = frozenset(t for row in lane for t in row.targets)
            if touched & busy:
                continue
            rollouts = frozenset(row_id(r) for r in lane)
            self._lanes[(rollouts, touched)] = asyncio.create_task(
                self._step_lane(lane), name=f"rollouts {sorted(rollouts)}"
            )
            busy |= touched

    async def _step_lane(self, rows: list[Rollout]) -> None:
        for row in rows:
            try:
                if not await self.may_drive(row, recover=True):
                    continue
                row = await asyncio.to_thread(self.repo.get, row_id(row))  # as it is now we hold it
                await self.advance(row)
            except StateChanged as exc:  # a person's command landed between our read and write
                log.info("rollout %s: %s; re-reading on the next step", row.id, exc)
            except Exception:  # noqa: BLE001 - one bad rollout must not stop the others
                log.exception("rollout %s: step failed", row.id)

    def _reap_lanes(self) -> None:
        for key, task in list(self._lanes.items()):
            if task.done():
                del self._lanes[key]
                if not task.cancelled() and (exc := task.exception()) is not None:  # _step_lane catches all
                    log.error("rollouts %s: their step ended with %r", sorted(key[0]), exc)

    async def _cancel_lanes(self) -> None:
        """On stop: a step may take minutes (a relaunched server loading). Cancelling it is safe — the
        target was marked `applying` first and the next start's recover() asks it what it runs."""
        tasks = list(self._lanes.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._lanes.clear()

    def _note_waiting(self, rows: list[Rollout]) -> None:
        waiting = {row.id for row in rows if S(row.state) not in (S.PENDING_APPROVAL, S.PAUSED)}
        for rollout_id in sorted(waiting - self._noted_readonly, key=lambda i: i or 0):
            log.warning("read-only daemon: rollout %s is active but will not be carried out here", rollout_id)
        self._noted_readonly = waiting

    async def _read_pending(self, rows: list[Rollout]) -> None:
        """Read, once per pending rollout, the settings it would change as its targets have them now, so
        its diff shows real current values. Read only: nothing is applied, and a target that cannot be
        read is left out (the diff then says "(current)", as before)."""
        for row in rows:
            if row.id in self._pending_read:
                continue
            self._pending_read.add(row.id)
            if stage_of(row).pending_read:
                continue
            values: dict[str, dict[str, str | None]] = {}
            for name in row.targets:
                try:
                    actuator = self._actuator(row, name)
                    snapshot = await asyncio.wait_for(actuator.snapshot(), PENDING_READ_TIMEOUT_S)
                    values[name] = actuator.values_in(snapshot)
                except Exception as exc:  # noqa: BLE001 - a preview; the rollout itself reads again
                    log.info("rollout %s: could not read %s's current config: %s", row.id, name, exc)
            if not values:
                continue

            def record(d: Draft, values: dict[str, dict[str, str | None]] = values) -> None:
                d.stage.pending_read = values

            try:
                await self.journal.note(row, record, expect={S.PENDING_APPROVAL})
            except StateChanged:  # approved or rejected meanwhile: the reading is moot
                pass

    async def refused(self, refused: CommandRefused, bus_topic: str) -> None:
        """A command the MQTT bridge refused before it reached the bus (`CommandHandler.refused`)."""
        await self.commands.refused(refused, bus_topic)

    async def recover(self) -> None:
        """After a (re)start: reconcile every active rollout with what its targets really run (`recovery`)."""
        if not self.readonly:  # reconciling may change targets and rows; a read-only daemon only watches
            await recovery.recover(
                self.journal, self._actuator, lambda row: self.may_drive(row, recover=False)
            )
        self.recovered = True

    # --- leases: which daemon drives a rollout (daemon/rollouts/lease.py) -------------------------
    async def may_drive(self, row: Rollout, *, recover: bool) -> bool:
        """Whether this daemon drives `row` now: its targets are all configured here and it holds the lease.

        On a takeover (the previous holder's lease expired: it died or lost the database) the rollout is first
        reconciled with what its targets run (`recover`), as after a restart. Every refusal is logged once."""
        rid = row_id(row)
        missing = [t for t in row.targets if self._target(t) is None]
        if missing and self.leases.shared:
            # In a fleet a rollout belongs to the daemons that have its targets; on a database of its own a
            # daemon fails it instead (a target removed from the config), as `_actuator` says.
            return self._waiting(rid, f"its targets {', '.join(missing)} are not in this daemon's config")
        grant = await asyncio.to_thread(self.leases.acquire, rid)
        if not grant.held:
            return self._waiting(rid, f"driven by {daemon_of(grant.holder) or 'nobody yet'}")
        self._not_driving.pop(rid, None)
        self._leased.add(rid)
        if grant.taken_from is not None:
            comment = (
                f"{daemon_of(self.leases.holder)} took over from {daemon_of(grant.taken_from)}, whose lease had "
                "expired; reconciling with what the targets run"
            )
            log.warning("rollout %s: %s", rid, comment)
            await asyncio.to_thread(self.repo.audit, rid, ACTOR, "takeover", comment)
            if recover:
                await recovery.recover_one(row, self.journal, self._actuator)
        elif grant.new and self.leases.shared:
            await asyncio.to_thread(
                self.repo.audit, rid, ACTOR, "lease", f"driven by {daemon_of(grant.holder)}"
            )
        return True

    def _waiting(self, rollout_id: int, why: str) -> bool:
        if self._not_driving.get(rollout_id) != why:
            log.info("rollout %s: not driven here: %s", rollout_id, why)
            self._not_driving[rollout_id] = why
        return False

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
        elif state in (S.FAILED, S.ROLLING_BACK):
            await self._roll_back(row)

    async def _start(self, row: Rollout) -> None:
        def plan(d: Draft) -> None:
            d.stage.order = list(d.row.targets)
            d.stage.canary = d.stage.order[0]
            d.stage.progress = {t: d.stage.progress.get(t, TargetProgress()) for t in d.stage.order}
            d.stage.signals = d.stage.signals or list(self.cfg.default_signals)

        await self.journal.transition(row, S.CANARY, plan, comment=f"canary: {row.targets[0]}")

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
        rid = row_id(row)
        if not ok:
            misses = self._health_misses[rid] = self._health_misses.get(rid, 0) + 1
            if misses < HEALTH_MISSES_TO_FAIL:
                log.warning(
                    "rollout %s: canary %s health check %d failed: %s", rid, stage.canary, misses, why
                )
                return
            self._health_misses.pop(rid, None)
            await self.journal.fail(
                row,
                f"canary {stage.canary} stopped serving during the canary window "
                f"({misses} health checks in a row failed): {why}",
            )
            return
        self._health_misses.pop(rid, None)
        assert stage.canary_since is not None
        target = self._target(stage.canary)
        if target is not None:
            self.probes.ensure(row_id(row), target)
        if self.clock() >= stage.canary_since + self.cfg.warmup_s + self.cfg.canary_window_s:
            await self.journal.transition(row, S.VALIDATING, None, comment="canary window over")
            return
        if await self._probes_failing(row, stage.canary_since):
            return
        await self._check_early(row)

    async def _probes_failing(self, row: Rollout, since: float) -> bool:
        """Fail a canary whose probe requests failed PROBE_FAILURES_TO_STOP times in a row (it is not serving
        them, whatever /health says); off with the early check (`early_abort_factor = 0`)."""
        run = failing_in_a_row(self.probes.results(row_id(row), since))
        if self.cfg.early_abort_factor <= 0 or len(run) < PROBE_FAILURES_TO_STOP:
            return False
        reason = f"stopped early: {len(run)} synthetic probes in a row failed (last: {run[-1].error})"

        def record(d: Draft) -> None:
            d.stage.failure_reason, d.stage.failed_from = reason, S.CANARY

        await self.journal.transition(row, S.FAILED, record, comment=reason[:2000])
        return True

    async def _check_early(self, row: Rollout) -> None:
        """Fail a canary whose regression is already gross, instead of leaving it to serve the whole
        window (`early_abort_factor`); checked every EARLY_CHECK_S at most."""
        now = self.clock()
        if self.cfg.early_abort_factor <= 0 or now - self._early_checked.get(row.id, 0.0) < EARLY_CHECK_S:
            return
        self._early_checked[row.id] = now
        so_far = await asyncio.to_thread(
            compare_canary, self.repo.store, row, self.cfg, clock=self.clock, so_far=True
        )
        gross = gross_regressions(so_far, self.cfg.early_abort_factor)
        if not gross:
            return
        reason = "stopped early: " + "; ".join(r["reason"] for r in gross)

        def record(d: Draft) -> None:
            d.comparison = so_far.model_dump(mode="json")
            d.stage.failure_reason, d.stage.failed_from = reason, S.CANARY

        await self.journal.transition(row, S.FAILED, record, comment=reason[:2000])

    async def _validate(self, row: Rollout) -> None:
        comparison = await asyncio.to_thread(compare_canary, self.repo.store, row, self.cfg, clock=self.clock)
        stage = stage_of(row)
        target = self._target(stage.canary) if stage.canary is not None else None
        if target is not None and target.canary_probes and stage.canary_since is not None:
            since = stage.canary_since + self.cfg.warmup_s
            results = self.probes.results(row_id(row), since, since + self.cfg.canary_window_s)
            verdict = judge_probes(results, self.cfg.thresholds["error_rate"], self.cfg.min_samples)
            comparison = with_probes(comparison, verdict)

        def record(d: Draft) -> None:
            d.comparison = comparison.model_dump(mode="json")
            if comparison.verdict == "FAIL":
                d.stage.failure_reason, d.stage.failed_from = (
                    f"validation failed: {comparison.summary}",
                    S.VALIDATING,
                )
            elif comparison.verdict == "INCONCLUSIVE":
                d.stage.paused_from, d.stage.pause_reason = S.VALIDATING, "inconclusive"

        to = {"PASS": S.ROLLING_OUT, "FAIL": S.FAILED, "INCONCLUSIVE": S.PAUSED}[comparison.verdict]
        await self.journal.transition(
            row, to, record, comment=f"{comparison.verdict}: {comparison.summary}"[:2000]
        )

    async def _roll_out(self, row: Rollout) -> None:
        stage = stage_of(row)
        for name in stage.order:
            if stage.progress[name].status != "applied":
                await self._apply_target(row, name, canary=False)
                return  # one target per step: a pause or rollback gets in between targets
        await self.journal.transition(row, S.COMPLETED, None, comment=f"applied to {', '.join(stage.order)}")

    async def _apply_target(self, row: Rollout, name: str, *, canary: bool) -> None:
        assert row.id is not None
        try:
            actuator = self._actuator(row, name)
            if name not in row.previous_config:
                snapshot = await actuator.snapshot()

                before = actuator.values_in(snapshot)

                def record(d: Draft) -> None:
                    d.previous_config[name] = snapshot
                    d.stage.before[name] = before

                row = await self.journal.mutate(
                    row, record, action="snapshot", comment=f"recorded the config of {name}"
                )
            previous = row.previous_config[name]
            desired = actuator.desired(previous)
            started = self.clock()

            def mark(d: Draft) -> None:
                d.stage.progress[name].status = "applying"
                if canary and len(d.stage.order) == 1:
                    d.stage.baseline = {"since": started - self.cfg.baseline_window_s, "until": started}

            row = await self.journal.mutate(row, mark, action="apply", comment=f"applying to {name}")
            self.checkpoint("before_apply", row_id(row))
            readback = await actuator.converge(desired)
            self._converged(name)
            self.checkpoint("after_apply", row_id(row))
        except ActuatorError as exc:
            await self.journal.fail(row, f"applying to {name} failed: {exc}")
            await self._refused(row, name, str(exc))
            return
        await self.journal.mark_applied(row, name, readback, canary=canary)

    async def _refused(self, row: Rollout, name: str, reason: str) -> None:
        """A recommendation whose change a target would not run is not offered again (`recommendation_refused`)."""
        if row.recommendation_id is None:
            return
        try:
            rec = await asyncio.to_thread(
                commands.recommendation_refused,
                self.repo,
                row.recommendation_id,
                rollout_id=row_id(row),
                target=name,
                reason=reason,
                now=self.clock(),
            )
        except Exception:  # noqa: BLE001 - the rollout's own record is written; this is a courtesy
            log.exception(
                "rollout %s: could not mark recommendation %s refused", row.id, row.recommendation_id
            )
            return
        if rec is not None:
            self.bus.publish(topic("recommendation", str(rec.id)), rec.model_dump(mode="json"))

    def _converged(self, name: str) -> None:
        if self.on_converged is not None:
            try:
                self.on_converged(name)
            except Exception:  # a listener's fault must not fail the rollout
                log.exception("on_converged(%s) failed", name)

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
        stage = stage_of(await asyncio.to_thread(self.repo.get, row_id(row)))
        if any(p.status == "failed" for p in stage.progress.values()):
            return  # a person has to look (restore gave up); `rollback` retries
        restored = [n for n in stage.applied_targets() if stage.progress[n].status == "restored"]
        await self.journal.transition(
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

        row = await self.journal.mutate(
            row, mark, action="restore", comment=f"restoring {name} to its recorded config"
        )
        self.checkpoint("before_restore", row_id(row))
        try:
            readback = await actuator.converge(previous)
        except ActuatorError as exc:
            await self._restore_result(row, name, error=str(exc))
            return
        self._converged(name)
        self.checkpoint("after_restore", row_id(row))
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
                p.status, p.restored_at, p.readback, p.error, p.next_restore_at = (
                    "restored",
                    now,
                    clip(readback or {}),
                    None,
                    None,
                )
                return
            p.restore_attempts += 1
            p.error = error
            if give_up or p.restore_attempts >= self.cfg.max_restore_attempts:
                p.status, p.next_restore_at = "failed", None
            else:
                p.status = "restoring"
                p.next_restore_at = now + min(60.0, 2.0 ** min(p.restore_attempts, 6))

        action = "restored" if error is None else "restore-failed"
        comment = f"{name}: " + (brief(readback or {}) if error is None else error)
        await self.journal.mutate(row, record, action=action, comment=comment[:2000])

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


def lanes(rows: list[Rollout]) -> list[list[Rollout]]:
    """The rollouts grouped so that two sharing a target (directly or through others) are in one lane,
    each lane in id order, the lanes in the order of their first rollout."""
    groups: list[tuple[set[str], list[Rollout]]] = []
    for row in sorted(rows, key=lambda r: r.id or 0):
        targets, members = set(row.targets), [row]
        for group in [g for g in groups if g[0] & targets]:
            targets |= group[0]
            members = group[1] + members
            groups.remove(group)
        groups.append((targets, sorted(members, key=lambda r: r.id or 0)))
    return sorted((g[1] for g in groups), key=lambda lane: lane[0].id or 0)


__all__ = ["COMMAND_TOPIC", "RolloutManager", "lanes"]
