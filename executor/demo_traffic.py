"""Demo traffic: one bundled agent run against the demo's own server at a modest, steady rate.

`charter-tui demo` (what `make run` starts) has a server and nothing calling it, so every latency,
throughput and hit-rate column would stay '-'. This drives one agent as it is written (the naive
mode: its calls in program order, each input record in turn), one run every `interval_s`, with every
answer capped at `max_tokens` so that a 2-core box keeps up and the screens stay responsive.

Only the demo builds it, and only against the server the demo started itself: synthetic requests
are never sent to a server the user configured. The TUI says on screen that the traffic is
synthetic, and `t` pauses and resumes it. A failed run (the server relaunched by a rollout, say)
is counted and shown, and the loop carries on after a pause: traffic that stops at the first
refused request would make the rollout it is there to show look healthier than it is.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from daemon.errors import UserError, shown
from daemon.supervisor import until_stopped
from executor.bench import compile_agent
from executor.binding import Binder, BindOptions
from executor.errors import BindingError
from executor.inputs import load_inputs
from executor.runner import RunOptions, run_workload
from executor.targets import Target, connect_target

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 2.0  # between the end of one run and the start of the next
DEFAULT_MAX_TOKENS = 32  # per answer: enough to show decode latency, small enough for CPU vLLM
RETRY_S = 5.0  # after a failed run or while the server does not answer
CALL_TIMEOUT_S = 60.0

TrafficState = Literal["starting", "running", "paused", "failed"]


@dataclass
class TrafficStatus:
    """What the TUI shows of the traffic; plain data, updated in place by the loop."""

    agent: str  # the agent's file name
    target: str  # the target's name as the TUI shows it
    interval_s: float
    state: TrafficState = "starting"
    runs: int = 0
    calls: int = 0
    failed_runs: int = 0
    last_error: str = ""  # one line, control characters escaped

    def describe(self) -> str:
        """One sentence for a notification: what is sent, where, how often, and how to stop it."""
        return (
            f"Demo traffic: {self.agent} runs against {self.target} every {self.interval_s:g} s "
            "(synthetic requests, answers capped). Press t to pause it."
        )


class DemoTraffic:
    def __init__(
        self,
        agent: Path,
        inputs: Path,
        url: str,
        *,
        target_name: str,
        interval_s: float = DEFAULT_INTERVAL_S,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        retry_s: float = RETRY_S,
    ) -> None:
        self.agent, self.inputs, self.url = agent, inputs, url
        self.max_tokens, self.retry_s = max_tokens, retry_s
        self.status = TrafficStatus(agent=agent.name, target=target_name, interval_s=interval_s)
        self._resumed = asyncio.Event()
        self._resumed.set()

    # --- control (from the TUI's key) ------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    def pause(self) -> None:
        """Send nothing more; a run already under way finishes (its calls are a few seconds)."""
        self._resumed.clear()
        if self.status.state in ("starting", "running"):
            self.status.state = "paused"

    def resume(self) -> None:
        self._resumed.set()
        if self.status.state == "paused":
            self.status.state = "running"

    # --- the loop ---------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Send runs until `stop` is set; returns early only if the agent cannot be run at all."""
        records = load_inputs(self.inputs)
        target = await self._connect(stop)
        if target is None:
            return
        try:
            try:
                compiled = await asyncio.to_thread(
                    compile_agent, self.agent.read_text(encoding="utf-8"), str(self.agent), target, False
                )
            except UserError as exc:
                self._fail(str(exc))
                return
            binder = Binder(compiled.naive, BindOptions(max_tokens_cap=self.max_tokens))
            options = RunOptions(timeout_s=CALL_TIMEOUT_S, inputs_name=self.inputs.name)
            if not self.paused:
                self.status.state = "running"
            number = 0
            while not stop.is_set():
                if not await until_stopped(self._resumed.wait(), stop):
                    return
                record = records[number % len(records)]
                try:
                    workload = binder.bind(record, number)
                except BindingError as exc:
                    self._fail(f"{self.inputs.name}:{record.line}: {exc}")
                    return
                number += 1
                try:
                    result = await run_workload(target, workload, "naive", options)
                except UserError as exc:  # ExecutionError, TargetDown: the server refused or went away
                    self.status.failed_runs += 1
                    self.status.last_error = shown(exc)
                    log.info("demo traffic: run %d failed: %s", number, exc)
                    await self._sleep(self.retry_s, stop)
                    continue
                self.status.runs += 1
                self.status.calls += len(result.calls)
                self.status.last_error = ""
                await self._sleep(self.status.interval_s, stop)
        finally:
            await target.aclose()

    async def _connect(self, stop: asyncio.Event) -> Target | None:
        while not stop.is_set():
            try:
                return await connect_target(self.url, engine="vllm")
            except UserError as exc:
                self.status.last_error = shown(exc)
                await self._sleep(self.retry_s, stop)
        return None

    def _fail(self, reason: str) -> None:
        self.status.state = "failed"
        self.status.last_error = shown(reason)
        log.warning("demo traffic stopped: %s", reason)

    @staticmethod
    async def _sleep(seconds: float, stop: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except TimeoutError:
            pass
