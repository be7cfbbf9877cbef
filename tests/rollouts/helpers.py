"""Shared helpers of the rollout tests: configs, driving a manager, reading audit trails."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from daemon.config import CommandActuatorConfig, CommandParamRule, Config, RolloutConfig, TargetConfig
from daemon.models import AuditEvent, MetricSample, Rollout
from daemon.rollouts.manager import RolloutManager
from daemon.rollouts.model import RolloutState
from daemon.store import Store

KNOB = Path(__file__).with_name("knob.py")


def knob_commands(state: Path) -> CommandActuatorConfig:
    return CommandActuatorConfig(
        apply=[sys.executable, str(KNOB), str(state), "set", "{param}", "{value}"],
        read=[sys.executable, str(KNOB), str(state), "get", "{param}"],
        timeout_s=20,
        params={"batch": CommandParamRule(type="int", min=1, max=512)},
    )


def knob_commands_toml(target: str, state: Path) -> str:
    """`knob_commands` as a daemon's TOML: the `[rollouts.commands.<target>]` tables (for daemon processes)."""
    argv = f'"{sys.executable}", "{KNOB}", "{state}"'
    return (
        f"[rollouts.commands.{target}]\n"
        f'apply = [{argv}, "set", "{{param}}", "{{value}}"]\nread = [{argv}, "get", "{{param}}"]\n'
        f'[rollouts.commands.{target}.params.batch]\ntype = "int"\nmin = 1\nmax = 512\n'
    )


def knob_config(tmp: Path, names: Iterable[str], **rollouts: object) -> tuple[Config, dict[str, Path]]:
    states = {}
    targets = []
    for i, name in enumerate(names):
        state = tmp / f"{name}.json"
        state.write_text(json.dumps({"batch": "8"}))
        states[name] = state
        targets.append(TargetConfig(name=name, url=f"http://127.0.0.1:{9 + i}"))
    settings = dict(
        warmup_s=0.0,
        canary_window_s=1.0,
        baseline_window_s=60.0,
        min_samples=3,
        default_signals=["ttft_p95_s"],
        step_interval_s=0.05,
    )
    settings.update(rollouts)
    cfg = Config(
        targets=targets,
        rollouts=RolloutConfig(commands={n: knob_commands(s) for n, s in states.items()}, **settings),
    )
    return cfg, states


def knob_value(state: Path) -> str:
    return json.loads(state.read_text())["batch"]


def knob_sets(state: Path) -> list[list[str]]:
    path = Path(str(state) + ".calls")
    calls = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [c for c in calls if c[0] == "set"]


async def drive(
    manager: RolloutManager, rollout_id: int, until: set[RolloutState], timeout_s: float = 90.0
) -> Rollout:
    """Step the manager (as its loop would) until the rollout reaches one of `until`."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = manager.repo.get(rollout_id)
        if RolloutState(row.state) in until:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(
                f"rollout {rollout_id} stuck in {row.state}; events: {trail(manager.repo.store, rollout_id)}"
            )
        await manager.step_all()
        await asyncio.sleep(0.05)


async def run_until(
    manager: RolloutManager,
    rollout_id: int,
    until: set[RolloutState],
    *,
    timeout_s: float,
    poll_s: float,
    stop_timeout_s: float,
) -> Rollout:
    """Run the manager's own loop (as the daemon does) until the rollout reaches one of `until`;
    then stop it, allowing `stop_timeout_s` for a step in flight (a relaunch) to finish."""
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        deadline = time.monotonic() + timeout_s
        while (row := manager.repo.get(rollout_id)).state not in {s.value for s in until}:
            if task.done():
                task.result()
            assert time.monotonic() < deadline, (
                f"stuck in {row.state}: {trail(manager.repo.store, rollout_id)}"
            )
            await asyncio.sleep(poll_s)
        return row
    finally:
        stop.set()
        await asyncio.wait_for(task, stop_timeout_s)


def events(store: Store, rollout_id: int) -> list[AuditEvent]:
    return store.all(
        AuditEvent,
        AuditEvent.entity == "rollout",
        AuditEvent.entity_id == str(rollout_id),
        order_by=AuditEvent.id,
    )


def trail(store: Store, rollout_id: int) -> list[tuple[str, str | None, str | None]]:
    return [(e.action, e.from_state, e.to_state) for e in events(store, rollout_id)]


def states_visited(store: Store, rollout_id: int) -> list[str]:
    out: list[str] = []
    for e in events(store, rollout_id):
        if e.to_state and (not out or out[-1] != e.to_state):
            out.append(e.to_state)
    return out


class Traffic:
    """Writes a sample per target every 20 ms while a rollout runs; `value(target)` decides the latency.

    A thread, not a task: a sample write that waits on SQLite's lock must not stall the event loop the
    manager runs on (nor the manager starve the writer, which would leave a canary window empty).
    """

    def __init__(self, store: Store, targets: list[str], value) -> None:  # noqa: ANN001
        self.store, self.targets, self.value = store, targets, value
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            now = time.time()
            try:
                values = {t: self.value(t) for t in self.targets}
            except (OSError, ValueError, KeyError):  # the target's state file is down or being replaced
                continue
            self.store.add_all(
                [MetricSample(instance=t, ts=now, window_s=0.0, ttft_p95_s=v) for t, v in values.items()]
            )

    async def __aenter__(self) -> Traffic:
        self._thread.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join, 30)
