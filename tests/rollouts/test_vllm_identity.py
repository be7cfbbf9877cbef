"""The vLLM relaunch actuator runs only what the config says, and stops only what it may stop.

Real processes throughout: the servers are tests/rollouts/mini_vllm.py, a small real HTTP server (standard
library only) that answers /health, /metrics and /v1/models as vLLM does and starts in a second, run by
/usr/bin/python3 so that it can run as `nobody` (the vLLM kit sits under /root, mode 700; the real vLLM
relaunch is covered by tests/rollouts/test_vllm.py). Foreign processes are real listeners started by the
test, as `nobody` or as root. Each test reproduces one attack or mistake and fails if the protection
against it is taken out:
- a foreign process on the target's port is refused, left running, and its argv is not launched;
- the configured server is relaunched with the configured argv plus the flag, not the argv it ran with,
  as the configured account, with the configured env only;
- a launch record whose pid now names another process (start time differs) is not trusted;
- a root daemon with no account configured does not start the server as root.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from daemon.actuators import procs
from daemon.actuators.base import ActuatorError, ForeignProcess
from daemon.actuators.vllm import VllmRelaunchActuator
from daemon.config import Config, DaemonConfig, LaunchConfig, RolloutConfig, TargetConfig
from daemon.models import MetricSample
from daemon.rollouts import commands as cmd
from daemon.rollouts.manager import RolloutManager
from daemon.actuators.change import Change
from daemon.rollouts.model import RolloutState as S
from daemon.rollouts.repo import stage_of
from daemon.store import Store
from testkit.ports import free_port, stop_listeners
from tests.rollouts.helpers import drive, events, trail

SYSTEM_PYTHON = "/usr/bin/python3"
MINI = str(Path(__file__).with_name("mini_vllm.py"))
FINAL = {S.COMPLETED, S.ROLLED_BACK, S.PAUSED, S.REJECTED}
SECRET = "hf_s3cret-token-for-the-child-only"
DAEMON_SECRET = "daemon-own-secret-not-for-children"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK), reason="needs root and /usr/bin/python3"
)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    s = Store(sqlite_url)
    yield s
    s.close()


@pytest.fixture
def port() -> Iterator[int]:
    port = free_port()
    yield port
    # Whatever the test or the actuator left on the port is stopped (the test runs as root).
    stop_listeners(port, grace_s=5)


@pytest.fixture
def nobody() -> pwd.struct_passwd:
    return pwd.getpwnam("nobody")


def configured_argv(port: int) -> list[str]:
    return [SYSTEM_PYTHON, MINI, "--port", str(port), "--served-model-name", "mini"]


def start(argv: list[str], port: int, *, user: str | None) -> subprocess.Popen[bytes]:
    """Start a listener as `user` (None: as the test, root) and wait until it holds the port."""
    account = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []} if user else {}
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,
        **account,
    )
    deadline = time.monotonic() + 60
    while procs.server_pid(port) != process.pid:
        assert process.poll() is None, f"{argv} exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{argv} never listened on {port}"
        time.sleep(0.05)
    return process


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for p in processes:
        if p.poll() is None:
            procs.stop(p.pid, 5)
        p.wait(10)


def mini_config(port: int, **launch: object) -> Config:
    settings: dict[str, object] = dict(argv=configured_argv(port), env={"HF_TOKEN": SECRET}, user="nobody")
    settings.update(launch)
    target = TargetConfig(
        name="mini",
        url=f"http://127.0.0.1:{port}",
        engine="vllm",
        timeout_s=5.0,
        launch=LaunchConfig(**settings),
    )
    rollouts = RolloutConfig(
        warmup_s=0.0,
        canary_window_s=1.0,
        baseline_window_s=60.0,
        min_samples=3,
        default_signals=["ttft_p95_s"],
        step_interval_s=0.05,
        apply_timeout_s=60.0,
        stop_grace_s=5.0,
    )
    return Config(daemon=DaemonConfig(metrics_port=0), targets=[target], rollouts=rollouts)


class Samples:
    """Steady latency samples for the target in a thread, so that a canary has something to be judged on."""

    def __init__(self, store: Store) -> None:
        self.store, self._stop = store, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.store.add_all([MetricSample(instance="mini", ts=time.time(), window_s=0.0, ttft_p95_s=0.01)])

    def __enter__(self) -> Samples:
        self._thread.start()
        time.sleep(0.5)  # a baseline before the change
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


async def approve_and_run(manager: RolloutManager, config: Config, **param: str) -> object:
    ((name, value),) = param.items()
    row = cmd.propose(
        manager.repo, config, targets=["mini"], actor="alice", changes=[{"param": name, "value": value}]
    )
    cmd.apply_command(manager.repo, "approve", row.id, actor="bob")
    return await drive(manager, row.id, FINAL, timeout_s=120)


def status_ids(pid: int, field: str) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(e.decode().split("=", 1) for e in raw.split(b"\0") if b"=" in e)


def launched_anything(tmp_path: Path) -> bool:
    return (tmp_path / "launch" / "mini.log").exists()


@pytest.mark.parametrize("foreign", ["other-program-as-nobody", "configured-argv-as-root"])
async def test_foreign_process_on_the_port_is_refused_and_left_running(
    foreign: str, port: int, started: list[subprocess.Popen[bytes]], store: Store, tmp_path: Path
) -> None:
    """Another user's process on the port (or the configured argv run by the wrong account): the
    approved change is refused naming it, nothing is stopped or launched, the rollout rolls back clean."""
    if foreign == "other-program-as-nobody":
        argv, user, who = (
            [SYSTEM_PYTHON, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
            "nobody",
            "nobody",
        )
    else:
        argv, user, who = configured_argv(port), None, "root"
    process = start(argv, port, user=user)
    started.append(process)
    holder_started = procs.start_time(process.pid)
    config = mini_config(port)
    manager = RolloutManager(config, store, state_dir=tmp_path)

    final = await approve_and_run(manager, config, max_num_seqs="8")

    assert final.state == "ROLLED_BACK", trail(store, final.id)
    reason = stage_of(final).failure_reason or ""
    assert f"pid {process.pid} (user {who}, executable {os.path.realpath(SYSTEM_PYTHON)})" in reason, reason
    assert "nothing was stopped" in reason
    assert stage_of(final).progress["mini"].status == "pending", "nothing was touched, so nothing to restore"
    assert "mini" not in final.previous_config
    # Still the very same process on the port, and nothing was launched.
    assert process.poll() is None
    assert procs.server_pid(port) == process.pid and procs.start_time(process.pid) == holder_started
    assert not launched_anything(tmp_path)
    assert "nothing had been changed" in [e.comment for e in events(store, final.id)][-1]


async def test_configured_server_is_relaunched_with_the_configured_argv_as_the_configured_user(
    port: int,
    started: list[subprocess.Popen[bytes]],
    store: Store,
    tmp_path: Path,
    nobody: pwd.struct_passwd,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The configured server, started by hand with an extra argument: the change relaunches the
    configured argv plus the flag (the extra is not carried over), as `nobody`, with only the configured
    env; the secret is nowhere but in the child. The rollback relaunches the configured argv alone."""
    monkeypatch.setenv("CHARTER_TEST_DAEMON_SECRET", DAEMON_SECRET)
    hand_started = start([*configured_argv(port), "--api-key", "only-in-the-live-argv"], port, user="nobody")
    started.append(hand_started)
    config = mini_config(port)
    manager = RolloutManager(config, store, state_dir=tmp_path)

    with Samples(store):
        done = await approve_and_run(manager, config, max_num_seqs="8")
        assert done.state == "COMPLETED", trail(store, done.id)
        assert hand_started.wait(10) is not None, "the configured server was stopped"
        pid = procs.server_pid(port)
        assert pid is not None and pid != hand_started.pid
        assert procs.cmdline(pid) == [*configured_argv(port), "--max-num-seqs", "8"]
        assert "mini_vllm_max_num_seqs 8" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        # Runs as the configured account: every uid and gid, and no supplementary group of root's.
        assert status_ids(pid, "Uid") == [nobody.pw_uid] * 4
        assert status_ids(pid, "Gid") == [nobody.pw_gid] * 4
        assert status_ids(pid, "Groups") == []
        env = environ(pid)
        assert env["HF_TOKEN"] == SECRET and env["HOME"] == nobody.pw_dir and env["USER"] == "nobody"
        assert "CHARTER_TEST_DAEMON_SECRET" not in env, "the daemon's own environment reached the child"
        assert done.previous_config["mini"]["argv"] == configured_argv(port)
        assert stage_of(done).progress["mini"].readback["holder"] == "launched"

        cmd.apply_command(manager.repo, "rollback", done.id, actor="carol")
        back = await drive(manager, done.id, {S.ROLLED_BACK}, timeout_s=120)
    assert stage_of(back).progress["mini"].status == "restored"
    pid = procs.server_pid(port)
    assert pid is not None and procs.cmdline(pid) == configured_argv(port)
    assert status_ids(pid, "Uid") == [nobody.pw_uid] * 4
    # The secret went to the child only: not into the recorded config, the launch record, the log, the audit.
    stored = back.model_dump_json() + json.dumps([e.comment for e in events(store, back.id)])
    for text in (stored, *(p.read_text(errors="replace") for p in (tmp_path / "launch").iterdir())):
        assert SECRET not in text


async def test_launch_record_pointing_at_a_recycled_pid_is_not_trusted(
    port: int, started: list[subprocess.Popen[bytes]], store: Store, tmp_path: Path
) -> None:
    """The launch record names the pid now held by a foreign listener, but the process recorded there
    started earlier (another start time): a recycled pid. It is not taken for the launched server."""
    foreign = start(
        [SYSTEM_PYTHON, "-m", "http.server", "--bind", "127.0.0.1", str(port)], port, user="nobody"
    )
    started.append(foreign)
    record = tmp_path / "launch" / "mini.json"
    record.parent.mkdir()
    earlier = procs.start_time(foreign.pid) - 100  # the recorded process started a second before this one
    record.write_text(
        json.dumps(
            {
                "argv": configured_argv(port),
                "flags": {},
                "pid": foreign.pid,
                "start_time": earlier,
                "written_at": time.time() - 60,
            }
        )
    )
    config = mini_config(port)
    manager = RolloutManager(config, store, state_dir=tmp_path)

    final = await approve_and_run(manager, config, max_num_seqs="8")

    assert final.state == "ROLLED_BACK", trail(store, final.id)
    assert f"pid {foreign.pid} (user nobody" in (stage_of(final).failure_reason or "")
    assert foreign.poll() is None and procs.server_pid(port) == foreign.pid
    assert not launched_anything(tmp_path)


async def test_leftover_launch_record_with_a_recycled_pid_is_neither_waited_for_nor_stopped(
    port: int, started: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """Nothing listens; the launch record of an interrupted relaunch names a pid that now belongs to
    an unrelated process. A restore launches the configured server and leaves that process alone."""
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    started.append(bystander)
    record = tmp_path / "launch" / "mini.json"
    record.parent.mkdir()
    record.write_text(
        json.dumps(
            {
                "argv": configured_argv(port),
                "flags": {},
                "pid": bystander.pid,
                "start_time": procs.start_time(bystander.pid) - 100,
                "written_at": time.time(),
            }
        )
    )
    config = mini_config(port)
    actuator = VllmRelaunchActuator(
        config.targets[0],
        [Change(param="max_num_seqs", value=8)],
        state_dir=tmp_path,
        startup_timeout_s=60.0,
        stop_grace_s=5.0,
    )

    result = await asyncio.wait_for(actuator.converge({"flags": {"max_num_seqs": 4}}), 120)

    assert result["relaunched"] is True and result["stopped_previous"] == "was not running"
    assert isinstance(result["downtime_s"], float) and result["downtime_s"] >= 0
    assert bystander.poll() is None, "an unrelated process was stopped as a leftover launch"
    pid = procs.server_pid(port)
    assert pid is not None and procs.cmdline(pid) == [*configured_argv(port), "--max-num-seqs", "4"]


async def test_root_daemon_without_a_user_does_not_start_the_server_as_root(
    port: int, started: list[subprocess.Popen[bytes]], store: Store, tmp_path: Path
) -> None:
    """No [targets.launch] user and no allow_root, on a root daemon: the change is refused before the
    running server is stopped (a relaunch would run as root)."""
    running = start(configured_argv(port), port, user=None)
    started.append(running)
    config = mini_config(port, user=None)
    manager = RolloutManager(config, store, state_dir=tmp_path)

    final = await approve_and_run(manager, config, max_num_seqs="8")

    assert final.state == "ROLLED_BACK", trail(store, final.id)
    assert "would run as root" in (stage_of(final).failure_reason or "")
    assert "allow_root = true" in (stage_of(final).failure_reason or "")
    assert running.poll() is None and procs.server_pid(port) == running.pid
    assert not launched_anything(tmp_path)


MANGLED = {
    "garbage": b"not json",
    "a list": b"[]",
    "wrong types": b'{"pid": "1", "start_time": [], "argv": 7}',
    "a megabyte": b"{" * (1 << 20),
}


@pytest.mark.parametrize("mangled", list(MANGLED))
async def test_a_mangled_launch_record_names_nobody(
    mangled: str, port: int, started: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """A launch record that is not one (garbage, a wrong shape, a megabyte) trusts no process: the
    foreign listener is refused with a one-line reason, and nothing raises anything else."""
    foreign = start(
        [SYSTEM_PYTHON, "-m", "http.server", "--bind", "127.0.0.1", str(port)], port, user="nobody"
    )
    started.append(foreign)
    (tmp_path / "launch").mkdir()
    (tmp_path / "launch" / "mini.json").write_bytes(MANGLED[mangled])
    actuator = VllmRelaunchActuator(
        mini_config(port).targets[0],
        [Change(param="max_num_seqs", value=8)],
        state_dir=tmp_path,
        startup_timeout_s=10.0,
        stop_grace_s=5.0,
    )
    with pytest.raises(ForeignProcess) as refused:
        await actuator.converge({"flags": {"max_num_seqs": 8}})
    assert f"pid {foreign.pid} (user nobody" in str(refused.value) and "\n" not in str(refused.value)
    assert (await actuator.observe()) == {"refused": str(refused.value)}
    assert foreign.poll() is None and procs.server_pid(port) == foreign.pid


@pytest.mark.parametrize(
    ("launch", "reason"),
    [
        ({"user": "no-such-account-here"}, "user 'no-such-account-here' does not exist"),
        ({"user": "root"}, "would run as root"),
        ({"cwd": "/no/such/dir"}, "cwd '/no/such/dir' is not a directory"),
        ({"argv": ["/no/such/program", "--port", "1"]}, "is not an executable file"),
    ],
)
async def test_a_launch_that_cannot_be_done_as_configured_is_refused_before_anything_is_stopped(
    launch: dict[str, object], reason: str, port: int, started: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    running = start(configured_argv(port), port, user="nobody")
    started.append(running)
    actuator = VllmRelaunchActuator(
        mini_config(port, **launch).targets[0],
        [Change(param="max_num_seqs", value=8)],
        state_dir=tmp_path,
        startup_timeout_s=10.0,
        stop_grace_s=5.0,
    )
    with pytest.raises(ActuatorError, match=reason):
        await actuator.converge({"flags": {"max_num_seqs": 8}})
    assert running.poll() is None and procs.server_pid(port) == running.pid
    assert not launched_anything(tmp_path)
