"""Soak: the real daemon for N minutes among 100 targets, with faults, rollouts and junk, checking invariants.

    .venv/bin/python benchmarks/soak.py --minutes 60 --report benchmarks/results/soak.md [--json FILE]

All on 127.0.0.1, all bounded in time (benchmarks/soak/ holds the parts):
- 100 targets: replayed vLLM and Triton captures with counters advancing in wall time, 2 knob targets
  changed by real argv commands (tests/rollouts/knob.py), 5 hostile ones (an 8 MB exposition over the
  line cap, NaN/Inf/negative values, one that never answers, terminal escapes in strings, counters that
  reset every 20 s) and 5 that the soak stops and starts;
- a private Mosquitto (password file + the shipped ACL) that the soak stops and starts;
- the real `charter-tui daemon` as a process, SIGKILLed and restarted on a schedule (preferably while a
  rollout is in flight), watching a folder of agent files that is edited on a schedule;
- rollouts proposed, approved, rejected, resumed and rolled back through the CLI and signed MQTT
  commands, and junk commands (unsigned, forged, unknown identity, not allowed, garbage, oversized,
  replayed, with a forged actor) that must all be refused.
Invariants, watched all along and at the end: no rollout in an active state longer than a bound of
daemon up-time; every approved rollout ends COMPLETED or ROLLED_BACK with the knob file's real value
equal to the record; no missed poll of a healthy target (the daemon's charter_polls_missed, per daemon
life); daemon RSS and database size under bounds; no rollout changed by anyone but the allowed
identities, no junk command carried out. After the fault phase, a settle phase (no faults, no new
proposals) lets the last rollout finish before the final checks. Exit status 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.auth import local_identity  # noqa: E402
from testkit.ports import free_port  # noqa: E402

from benchmarks.soak.agents import AgentEditor  # noqa: E402
from benchmarks.soak.checks import Observer  # noqa: E402
from benchmarks.soak.driver import Driver  # noqa: E402
from benchmarks.soak.report import render  # noqa: E402
from benchmarks.soak.rig import (  # noqa: E402
    Broker,
    DaemonProc,
    ReplayGroup,
    copy_agents,
    plan_targets,
    prepare_knobs,
    write_config,
)

FAULT_KINDS = ("daemon_sigkill", "broker_restart", "targets_restart")
# (first at s, every s): scaled so a 4-minute run sees each kind at least once, a long one many times.
SCHEDULE = {
    "targets_restart": (25.0, 100.0),
    "daemon_sigkill": (40.0, 120.0),
    "broker_restart": (70.0, 150.0),
}


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.rng = random.Random(args.seed)
        self.started = time.monotonic()
        self.faults: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.stalls: dict[str, Any] | None = None  # read from the daemon log at the end
        self.interrupted: dict[int, str] = {}  # rollout id -> its state when the daemon was SIGKILLed
        self.fault_log: list[str] = []
        self.stop_faults = asyncio.Event()
        self.stop_all = asyncio.Event()

    def t(self) -> float:
        return time.monotonic() - self.started

    async def setup(self) -> None:
        w = self.workdir
        epoch = time.time()
        self.specs = plan_targets(self.args.targets, w)
        prepare_knobs(w)
        self.steady = ReplayGroup("steady", [s for s in self.specs if s.group == "steady"], w, epoch)
        self.flap = ReplayGroup("flap", [s for s in self.specs if s.group == "flap"], w, epoch)
        await asyncio.to_thread(self.steady.start)
        await asyncio.to_thread(self.flap.start)
        self.broker = Broker(w)
        await asyncio.to_thread(self.broker.start)
        watch = w / "agents"
        files = copy_agents(watch)
        config = write_config(
            w,
            self.specs,
            {**self.steady.ports, **self.flap.ports},
            self.broker.port,
            free_port(),
            watch,
            self.args.poll_interval,
        )
        self.daemon = DaemonProc(
            w, config, int(config.read_text().split("metrics_port = ")[1].split("\n")[0])
        )
        self.editor = AgentEditor(files, watch, self.rng)
        await asyncio.to_thread(self.daemon.start)
        self.observer = Observer(
            self.daemon,
            self.specs,
            self.started,
            stuck_bound_s=self.args.stuck_bound,
            startup_grace_s=self.args.startup_grace,
        )
        self.driver = Driver(w, self.daemon, self.broker, self.rng, self.observer.violation)

    async def teardown(self) -> int | None:
        rc = await asyncio.to_thread(self.daemon.terminate)
        await asyncio.to_thread(self.broker.stop)
        self.flap.stop()
        self.steady.stop()
        return rc

    # --- loops -------------------------------------------------------------------------------
    async def observe(self) -> None:
        while not self.stop_all.is_set():
            try:
                await asyncio.to_thread(self.observer.tick)
            except Exception as exc:  # a check that cannot read is a harness problem, said once per tick
                self.fault_log.append(f"{self.t():.0f}s observer: {exc!r}")
            await self._sleep(self.stop_all, 2.0)

    async def drive(self) -> None:
        while not self.stop_faults.is_set():
            try:
                await self.driver.one_rollout()
            except Exception as exc:
                self.driver.stats.errors.append(f"{self.t():.0f}s driver: {exc!r}")
            await self._sleep(self.stop_faults, 1.0)

    async def junk(self) -> None:
        while not self.stop_faults.is_set():
            await self._sleep(self.stop_faults, 12.0)
            if self.broker.up and self.daemon.up:
                await self.driver.junk()

    async def edit(self) -> None:
        while not self.stop_faults.is_set():
            await self._sleep(self.stop_faults, 8.0)
            self.editor.step()

    async def inject(self) -> None:
        due = {k: first for k, (first, _) in SCHEDULE.items() if k in self.args.faults}
        if not due:
            return
        while not self.stop_faults.is_set():
            kind = min(due, key=due.get)  # type: ignore[arg-type]
            if await self._sleep(self.stop_faults, due[kind] - self.t()):
                return
            due[kind] += SCHEDULE[kind][1]
            try:
                await getattr(self, kind)()
                self.faults[kind] += 1
            except Exception as exc:
                self.fault_log.append(f"{self.t():.0f}s {kind} failed: {exc!r}")
                self.observer.violation("harness", f"{kind} failed: {exc!r}")

    async def daemon_sigkill(self) -> None:
        # Prefer a moment when a rollout is in flight: that is what recovery must get right.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (await asyncio.to_thread(self.observer.active_ids)):
            await asyncio.sleep(0.5)
        await asyncio.sleep(self.rng.uniform(0, 2))
        active = await asyncio.to_thread(self.observer.active_ids)
        self.daemon.sigkill()
        self.interrupted.update(active)
        self.fault_log.append(f"{self.t():.0f}s SIGKILL daemon (active rollouts: {active or 'none'})")
        await asyncio.sleep(2)
        await asyncio.to_thread(self.daemon.start)

    async def broker_restart(self) -> None:
        await asyncio.to_thread(self.broker.stop)
        self.fault_log.append(f"{self.t():.0f}s broker stopped for 10 s")
        await asyncio.sleep(10)
        await asyncio.to_thread(self.broker.start)

    async def targets_restart(self) -> None:
        self.flap.stop()
        self.fault_log.append(f"{self.t():.0f}s {len(self.flap.specs)} replayed targets stopped for 15 s")
        await asyncio.sleep(15)
        await asyncio.to_thread(self.flap.start)

    @staticmethod
    async def _sleep(event: asyncio.Event, seconds: float) -> bool:
        """Sleep up to `seconds`; True when `event` was set meanwhile."""
        try:
            await asyncio.wait_for(event.wait(), max(0.0, seconds))
            return True
        except TimeoutError:
            return event.is_set()

    # --- the run -------------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        try:
            return await self._run()
        finally:  # whatever failed, no process of ours outlives the run
            for stop in (
                getattr(self, "daemon", None) and self.daemon.terminate,
                getattr(self, "broker", None) and self.broker.stop,
                getattr(self, "flap", None) and self.flap.stop,
                getattr(self, "steady", None) and self.steady.stop,
            ):
                if stop:
                    stop()

    async def _run(self) -> dict[str, Any]:
        await self.setup()
        observing = asyncio.create_task(self.observe())
        tasks = [asyncio.create_task(c) for c in (self.drive(), self.junk(), self.edit(), self.inject())]
        await asyncio.sleep(self.args.minutes * 60 - self.t())
        fault_end = self.t()
        self.stop_faults.set()
        # Settle: the fault in progress ends (every fault restores what it stopped), the driver finishes
        # the rollout it holds; then no rollout may stay active.
        settle_deadline = time.monotonic() + self.args.settle
        done, pending = await asyncio.wait(tasks, timeout=self.args.settle)
        for task in pending:
            self.observer.violation(
                "settle", f"{task.get_coro().__name__} still running after the settle period"
            )
            task.cancel()
        while time.monotonic() < settle_deadline and await asyncio.to_thread(self.observer.active_ids):
            await asyncio.sleep(1)
        await asyncio.sleep(3)  # one more exporter read with everything up
        await asyncio.to_thread(self.observer.tick)
        self.stop_all.set()
        await observing
        allowed = {"daemon", local_identity(), "ops", "team"}
        await asyncio.to_thread(self.observer.final_checks, self.workdir, allowed)
        self.observer.check_polls()
        finals = {r["id"]: r["state"] for r in self.observer.rollouts()}
        compiles = self._compile_figures()
        rc = await self.teardown()
        self.stalls = self._stall_figures()
        if rc != 0:
            self.observer.violation("shutdown", f"daemon exited {rc} on SIGTERM at the end")
        return self.result(fault_end, finals, compiles, rc)

    def _compile_figures(self) -> dict[str, Any]:
        import sqlite3

        with sqlite3.connect(self.daemon.db, timeout=10) as conn:
            rows = conn.execute("SELECT path, ok, error FROM compile_record").fetchall()
        deep = [r for r in rows if r[0].endswith("deep_loops.py")]
        return {
            "records": len(rows),
            "ok": sum(1 for r in rows if r[1]),
            "deep_loops": [{"ok": bool(r[1]), "error": (r[2] or "")[:200]} for r in deep],
        }

    def _stall_figures(self) -> dict[str, Any]:
        """What the daemon's loop-stall watchdog logged (daemon/stall.py): every time its event loop
        was held over a second, how long; a burst of missed polls with none here was not the loop."""
        import re

        text = self.daemon.log.read_text(errors="replace") if self.daemon.log.exists() else ""
        held = [float(m) for m in re.findall(r"the event loop was held for ([0-9.]+) s", text)]
        return {
            "count": len(held),
            "max_s": max(held, default=0.0),
            "total_s": round(sum(held), 2),
            "whole_process": text.count("the whole process was held"),
        }

    def result(
        self, fault_end: float, finals: dict[int, str], compiles: dict[str, Any], rc: int | None
    ) -> dict[str, Any]:
        o, d = self.observer, self.driver.stats
        by_state: dict[str, int] = {}
        for state in finals.values():
            by_state[state] = by_state.get(state, 0) + 1
        rss_trend, rss_life = o.rss_trend()
        rss = [v for _, v, _ in o.rss]
        db = [v for _, v in o.db]
        return {
            "command": "benchmarks/soak.py " + shlex.join(sys.argv[1:]),
            "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "minutes_soaked": round(self.t() / 60, 1),
            "fault_minutes": round(fault_end / 60, 1),
            "targets": {
                "total": len(self.specs),
                "healthy": sum(s.healthy for s in self.specs),
                "kinds": {
                    k: sum(1 for s in self.specs if s.kind == k) for k in sorted({s.kind for s in self.specs})
                },
            },
            "poll_interval_s": self.args.poll_interval,
            "faults": self.faults,
            "daemon_starts": self.daemon.starts,
            "fault_log": self.fault_log,
            "rollouts_by_state": by_state,
            "rollout_outcomes": d.outcomes,
            "interrupted": {
                str(k): {"at_kill": v, "final": finals.get(k)} for k, v in sorted(self.interrupted.items())
            },
            "proposed": d.proposed,
            "commands": d.commands,
            "mqtt_unanswered": d.mqtt_unanswered,
            "junk": {
                "sent": d.junk_sent,
                "refused": d.junk_refused,
                "unanswered": d.junk_unanswered,
                "accepted": d.junk_accepted,
            },
            "driver_errors": d.errors[:50],
            "polls": o.poll_figures(),
            "exporter_failures": o.exporter_failures,
            "poll_series": o.poll_series,
            "missed_windows": o.missed_windows(),
            "rss_mib": {
                "min": round(min(rss) / 2**20, 1) if rss else None,
                "max": round(max(rss) / 2**20, 1) if rss else None,
                "life_max": o.rss_life_max_mib(),
                "trend_mib_per_h": None if rss_trend is None else round(rss_trend / 2**20, 1),
                "trend_over_s": round(rss_life),
            },
            "db_mib": {
                "min": round(min(db) / 2**20, 1) if db else None,
                "max": round(max(db) / 2**20, 1) if db else None,
                "trend_mib_per_h": None if (t := o.trend_per_hour(o.db)) is None else round(t / 2**20, 1),
            },
            "edits": self.editor.edits,
            "compiles": compiles,
            "loop_stalls": self.stalls,
            "load_average": list(os.getloadavg()),
            "daemon_exit_on_sigterm": rc,
            "violations": [v.__dict__ for v in o.violations],
            "workdir": str(self.workdir),
        }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, required=True, help="length of the fault phase")
    p.add_argument("--report", type=Path, help="write the markdown report here")
    p.add_argument("--json", type=Path, help="write the figures as JSON here")
    p.add_argument("--targets", type=int, default=100)
    p.add_argument("--poll-interval", type=float, default=1.0)
    p.add_argument("--settle", type=float, default=180.0, help="seconds allowed after the fault phase")
    p.add_argument(
        "--stuck-bound", type=float, default=120.0, help="max seconds of daemon up-time in one active state"
    )
    p.add_argument(
        "--startup-grace",
        type=float,
        default=10.0,
        help="seconds after each daemon start whose missed polls are reported apart",
    )
    p.add_argument(
        "--faults",
        default=",".join(FAULT_KINDS),
        help=f"comma-separated fault kinds to inject (default all: {','.join(FAULT_KINDS)})",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workdir", type=Path, help="keep the run's files here (default: a temporary folder)")
    args = p.parse_args()
    if args.minutes <= 0 or args.targets < 13:
        p.error("--minutes must be > 0 and --targets at least 13 (knobs, hostile, flapping, some replayed)")
    args.faults = [f for f in args.faults.split(",") if f]
    if unknown := set(args.faults) - set(FAULT_KINDS):
        p.error(f"--faults: unknown kind(s) {', '.join(sorted(unknown))}; known: {', '.join(FAULT_KINDS)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="charter-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(Soak(args, workdir).run())
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    text = render(result)
    if args.report:
        args.report.write_text(text)
    print(text)
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
