"""A fleet rollout: one change carried out on several daemons in stages, through signed commands.

    plan = FleetPlan(stages=[Stage("box-1", ["vllm"]), Stage("box-2", ["vllm"])], changes=[...])
    outcome = await FleetRollout(source, plan, report=print).run()

Each stage is an ordinary rollout on its daemon, proposed and approved with commands signed for that daemon
(`[auth.client]`), so it is canaried, validated and recorded in that daemon's store like any other. The first
stage is the fleet's canary; the next stage starts only once the previous one COMPLETED. When a stage fails
(its daemon rolled it back, or it is refused, or it does not finish in time), every stage already completed is
rolled back too, newest first, and the outcome says so. Each stage's rollout names the fleet rollout in its
reason, so each daemon's audit log tells the whole story.

The coordinator is this client: if it is stopped half-way, the stages already done stay done (each daemon
holds its own rollout) and the outcome it printed so far says which; it keeps no state of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from daemon.bus import Event
from daemon.contract import RESULT_TOPIC, CommandResult, RolloutCommand
from daemon.models import Rollout
from daemon.rollouts.model import TERMINAL_STATES, RolloutState

from charter_tui.mqtt_source import MqttSource

S = RolloutState
DONE = {s.value for s in TERMINAL_STATES} | {S.FAILED.value}


@dataclass(frozen=True)
class Stage:
    daemon: str
    targets: list[str]


@dataclass(frozen=True)
class FleetPlan:
    stages: list[Stage]
    changes: list[dict[str, Any]]
    reason: str | None = None
    stage_timeout_s: float = 3600.0


@dataclass
class StageOutcome:
    daemon: str
    rollout_id: int | None = None
    state: str = "NOT STARTED"
    error: str | None = None


@dataclass
class FleetOutcome:
    fleet_id: str
    ok: bool = False
    stages: list[StageOutcome] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)  # daemons whose completed stage was undone


class StageFailed(Exception):
    pass


class FleetRollout:
    def __init__(
        self,
        source: MqttSource,
        plan: FleetPlan,
        *,
        report: Callable[[str], None] = lambda _line: None,
        answer_timeout_s: float = 30.0,
    ) -> None:
        self.source = source
        self.plan = plan
        self.report = report
        self.answer_timeout_s = answer_timeout_s
        self.fleet_id = f"fleet-{secrets.token_hex(4)}"
        self._results: dict[str, CommandResult] = {}
        self._rollouts: dict[tuple[str, int], Rollout] = {}
        self._changed = asyncio.Event()

    async def run(self) -> FleetOutcome:
        outcome = FleetOutcome(self.fleet_id, stages=[StageOutcome(s.daemon) for s in self.plan.stages])
        listener = asyncio.create_task(self._listen())
        try:
            await asyncio.wait_for(self.source.connected.wait(), self.answer_timeout_s)
            for index, (stage, result) in enumerate(zip(self.plan.stages, outcome.stages, strict=True)):
                try:
                    await self._run_stage(index, stage, result)
                except StageFailed as exc:
                    result.error = str(exc)
                    self.report(f"stage {index + 1} ({stage.daemon}) failed: {exc}")
                    await self._roll_back(outcome.stages[:index], outcome)
                    return outcome
            outcome.ok = True
            self.report(f"{self.fleet_id}: every stage completed")
            return outcome
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    # --- one stage ---------------------------------------------------------------------------------
    async def _run_stage(self, index: int, stage: Stage, result: StageOutcome) -> None:
        total = len(self.plan.stages)
        where = f"stage {index + 1}/{total}{' (canary)' if index == 0 else ''} on {stage.daemon}"
        reason = f"{self.fleet_id} {where}" + (f": {self.plan.reason}" if self.plan.reason else "")
        proposed = await self._command(
            stage.daemon,
            RolloutCommand(action="propose", targets=stage.targets, changes=self.plan.changes, reason=reason),
        )
        if proposed.rollout is None or not isinstance(proposed.rollout.get("id"), int):
            raise StageFailed("the daemon accepted the proposal but named no rollout")
        rollout_id = result.rollout_id = proposed.rollout["id"]
        self.report(f"{where}: rollout {rollout_id} proposed")
        await self._command(stage.daemon, RolloutCommand(action="approve", id=rollout_id))
        self.report(f"{where}: rollout {rollout_id} approved; waiting for its canary and validation")
        result.state = await self._until_over(stage.daemon, rollout_id, self.plan.stage_timeout_s)
        if result.state != S.COMPLETED.value:
            raise StageFailed(f"rollout {rollout_id} ended {result.state}")
        self.report(f"{where}: rollout {rollout_id} COMPLETED")

    async def _roll_back(self, done: list[StageOutcome], outcome: FleetOutcome) -> None:
        """Undo every completed stage, newest first, and wait for each to be restored."""
        for stage in reversed(done):
            if stage.rollout_id is None or stage.state != S.COMPLETED.value:
                continue
            self.report(f"rolling back rollout {stage.rollout_id} on {stage.daemon}")
            try:
                await self._command(stage.daemon, RolloutCommand(action="rollback", id=stage.rollout_id))
                stage.state = await self._until_over(
                    stage.daemon, stage.rollout_id, self.plan.stage_timeout_s, after=S.COMPLETED.value
                )
            except StageFailed as exc:
                stage.error = f"rollback: {exc}"
                self.report(f"rollback of rollout {stage.rollout_id} on {stage.daemon} failed: {exc}")
                continue
            self.report(f"rollout {stage.rollout_id} on {stage.daemon}: {stage.state}")
            if stage.state == S.ROLLED_BACK.value:
                outcome.rolled_back.append(stage.daemon)

    # --- talking to the daemons ------------------------------------------------------------------------
    async def _command(self, daemon: str, command: RolloutCommand) -> CommandResult:
        request_id = f"{self.fleet_id}-{secrets.token_hex(6)}"
        command = command.model_copy(update={"request_id": request_id})
        try:
            await self.source.publish_command(command, daemon)
        except RuntimeError as exc:  # not connected, not signed
            raise StageFailed(str(exc)) from None
        deadline = time.monotonic() + self.answer_timeout_s
        while (answer := self._results.pop(request_id, None)) is None:
            if not await self._wait(deadline):
                raise StageFailed(
                    f"{daemon} did not answer {command.action} within {self.answer_timeout_s:g} s"
                )
        if not answer.ok:
            raise StageFailed(f"{daemon} refused {command.action}: {answer.error}")
        return answer

    async def _until_over(
        self, daemon: str, rollout_id: int, timeout_s: float, *, after: str | None = None
    ) -> str:
        """Wait until the rollout reaches an end state (skipping `after`, the state it is being moved from)."""
        deadline = time.monotonic() + timeout_s
        while True:
            row = self._rollouts.get((daemon, rollout_id))
            if row is not None and row.state in DONE and row.state != after:
                if row.state == S.FAILED.value:  # the daemon restores it; wait for the restore to finish
                    after = S.FAILED.value
                else:
                    return row.state
            if not await self._wait(deadline):
                state = row.state if row is not None else "unknown"
                raise StageFailed(f"rollout {rollout_id} on {daemon} still {state} after {timeout_s:g} s")

    async def _wait(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), remaining)
        except TimeoutError:
            return False
        return True

    async def _listen(self) -> None:
        async for event in self.source.events():
            self._note(event)

    def _note(self, event: Event) -> None:
        if event.topic == RESULT_TOPIC:
            try:
                result = (
                    CommandResult.model_validate(event.payload)
                    if isinstance(event.payload, dict)
                    else event.payload
                )
            except ValueError:
                return
            if isinstance(result, CommandResult) and str(result.request_id).startswith(self.fleet_id):
                self._results[str(result.request_id)] = result
                self._changed.set()
        elif isinstance(event.payload, Rollout) and event.daemon is not None and event.payload.id is not None:
            self._rollouts[(event.daemon, event.payload.id)] = event.payload
            self._changed.set()
