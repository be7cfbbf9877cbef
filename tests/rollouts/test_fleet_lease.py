"""Two daemons sharing the machine's PostgreSQL: one rollout is driven by exactly one of them, and when that
one is SIGKILLed the other takes it over once the lease has expired (issue 17's "Done when").

Each daemon is a real `charter-tui daemon` process with its own `[daemon] id` and state dir; both have the same
two targets (a standby pair: same names, same servers), real settings changed by the generic command actuator
(`knob.py`: a JSON file changed by commands, every call logged). Samples are written to the shared store as
traffic would make them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.config import Config
from daemon.models import RolloutLease
from daemon.rollouts import commands as cmd
from daemon.rollouts.lease import daemon_of
from daemon.rollouts.model import RolloutState as S
from daemon.rollouts.repo import RolloutRepo, stage_of
from daemon.store import Store
from tests.daemon.helpers import daemon_env
from tests.rollouts.helpers import Traffic, knob_commands_toml, events, knob_config, knob_sets, knob_value

pytestmark = pytest.mark.postgres

REPO_ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 5.0  # short for the test; a loaded 2-core CI box must still renew it in time


def daemon_toml(config: Config, daemon_id: str, url: str, states: dict[str, Path]) -> str:
    """The TOML of `knob_config`'s targets and rollout settings, for a daemon process with its own id."""
    r = config.rollouts
    lines = [
        f'[daemon]\nid = "{daemon_id}"\nmetrics_port = 0\npoll_interval_s = 0.5',
        f'[storage]\nurl = "{url}"',
        f"[rollouts]\nwarmup_s = {r.warmup_s}\ncanary_window_s = {r.canary_window_s}\n"
        f"baseline_window_s = {r.baseline_window_s}\nmin_samples = {r.min_samples}\n"
        f"default_signals = {json.dumps(r.default_signals)}\nstep_interval_s = {r.step_interval_s}\n"
        f"lease_s = {r.lease_s}",
    ]
    for target in config.targets:
        lines.append(f'[[targets]]\nname = "{target.name}"\nurl = "{target.url}"')
        lines.append(knob_commands_toml(target.name, states[target.name]))
    return "\n".join(lines) + "\n"


def spawn(
    config: Config, daemon_id: str, url: str, states: dict[str, Path], tmp: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    """`charter-tui daemon` as its own process, with its own id, state dir and log file."""
    config_path = tmp / f"{daemon_id}.toml"
    config_path.write_text(daemon_toml(config, daemon_id, url, states))
    log = tmp / f"{daemon_id}.log"
    env = daemon_env(tmp / f"{daemon_id}-xdg", CHARTER_TUI_LOG_FILE=str(log))
    argv = [sys.executable, "-m", "charter_tui", "--config", str(config_path), "daemon"]
    with open(tmp / f"{daemon_id}.out", "ab") as out:
        return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT), log


def lease_of(store: Store, rollout_id: int) -> RolloutLease | None:
    with store.session() as s:
        return s.get(RolloutLease, rollout_id)


async def wait_for(what: str, check, timeout_s: float, logs: list[Path]):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        if time.monotonic() > deadline:
            tails = "\n".join(
                f"--- {p.name}\n{p.read_text(errors='replace')[-2500:] if p.exists() else '(none yet)'}"
                for p in logs
            )
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        await asyncio.sleep(0.1)
    return result


async def test_one_daemon_drives_a_rollout_and_the_other_takes_it_over_after_a_sigkill(
    tmp_path: Path, postgres_url: str
) -> None:
    config, states = knob_config(
        tmp_path, ["a", "b"], canary_window_s=6.0, step_interval_s=0.1, lease_s=LEASE_S
    )
    store = Store(postgres_url)
    repo = RolloutRepo(store)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}
    try:
        async with Traffic(store, ["a", "b"], lambda _t: 0.1):
            row = cmd.propose(
                repo, config, targets=["a", "b"], changes=[{"param": "batch", "value": "16"}], actor="alice"
            )
            assert row.id is not None
            rid = row.id
            cmd.apply_command(repo, "approve", rid, actor="bob")
            for daemon_id in ("box-a", "box-b"):
                procs[daemon_id], logs[daemon_id] = spawn(config, daemon_id, postgres_url, states, tmp_path)
            all_logs = list(logs.values())

            # One of them leases it and carries the canary out; the other waits, saying who drives it.
            def canary_applied() -> bool:
                now = repo.get(rid)
                return S(now.state) == S.CANARY and stage_of(now).progress["a"].status == "applied"

            await wait_for("the canary on a", canary_applied, 60, all_logs)
            lease = lease_of(store, rid)
            assert lease is not None
            holder = daemon_of(lease.holder)
            other = "box-b" if holder == "box-a" else "box-a"
            await wait_for(
                f"{other} to say {holder} drives the rollout",
                lambda: (
                    logs[other].exists()
                    and f"not driven here: driven by {holder}" in logs[other].read_text(errors="replace")
                ),
                30,
                all_logs,
            )
            assert [
                (e.action, e.comment) for e in events(store, rid) if e.action in ("lease", "takeover")
            ] == [("lease", f"driven by {holder}")]
            assert knob_value(states["a"]) == "16" and knob_value(states["b"]) == "8"  # canary only, once
            assert len(knob_sets(states["a"])) == 1 and knob_sets(states["b"]) == []

            # The holder dies mid-canary: no clean stop, its lease is left to expire.
            lease = lease_of(store, rid)
            assert lease is not None
            expires_at = lease.expires_at
            procs[holder].send_signal(signal.SIGKILL)
            assert procs[holder].wait(10) == -signal.SIGKILL
            killed_at = time.time()

            done = await wait_for(
                "the rollout to complete",
                lambda: (
                    (now := repo.get(rid)).state in (S.COMPLETED.value, S.FAILED.value, S.ROLLED_BACK.value)
                    and now
                ),
                60,
                all_logs,
            )
            assert done.state == S.COMPLETED.value, [(e.action, e.comment) for e in events(store, rid)]

        trail = events(store, rid)
        [takeover] = [e for e in trail if e.action == "takeover"]
        assert takeover.comment is not None and takeover.comment.startswith(
            f"{other} took over from {holder}"
        )
        # Not before the dead holder's lease ran out (the lease's clock is PostgreSQL's, on this machine too).
        assert takeover.ts >= expires_at - 0.2, (takeover.ts, expires_at, killed_at)
        assert takeover.ts - killed_at < LEASE_S + 5.0
        print(
            f"{holder} SIGKILLed; its lease ran out {expires_at - killed_at:.1f} s later; {other} took over "
            f"{takeover.ts - killed_at:.1f} s after the kill"
        )
        # The survivor reconciled first (the canary runs the change: carried on, not applied again), then
        # finished the rollout: every setting changed exactly once, by one daemon or the other.
        after = [
            e.action for e in trail if e.id is not None and takeover.id is not None and e.id > takeover.id
        ]
        assert after[0] == "recover", after
        assert knob_value(states["a"]) == "16" and knob_value(states["b"]) == "16"
        assert len(knob_sets(states["a"])) == 1 and len(knob_sets(states["b"])) == 1
        # Released by the survivor's next step once the rollout is over.
        await wait_for("the lease's release", lambda: lease_of(store, rid) is None, 10, list(logs.values()))
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        store.close()
