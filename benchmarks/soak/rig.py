"""The soak's moving parts as real processes: replayed targets, the broker, the daemon.

Everything binds 127.0.0.1; every wait is bounded. Processes are started in their own session and
stopped by their own pid only (SIGTERM, then SIGKILL), never by name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from daemon.paths import repo_data_dir
from testkit.mosquitto import MosquittoBroker, start_mosquitto
from testkit.ports import die_with_parent, free_port

ROOT = Path(__file__).resolve().parents[2]
CHARTER = Path(sys.executable).parent / "charter-tui"
KNOB = ROOT / "tests" / "rollouts" / "knob.py"

BROKER_USERS = {"charter-daemon": "daemon-pw-soak", "ops": "ops-pw-soak", "team": "team-pw-soak"}
SECRETS = {"ops": "ops-soak-secret-0123456789abcdef", "team": "team-soak-secret-0123456789abcdef"}
KNOBS = ("knob-a", "knob-b")
HOSTILE = ("huge", "nan", "hang", "escape", "reset")


@dataclass(frozen=True)
class TargetSpec:
    name: str
    kind: str  # replay.py kinds
    group: str  # "steady" (never stopped) or "flap" (stopped and started by the fault schedule)
    knob: str | None = None

    @property
    def healthy(self) -> bool:
        """Polled on schedule by contract: real captures on targets the soak never stops."""
        return self.group == "steady" and self.kind not in HOSTILE


def plan_targets(n: int, workdir: Path) -> list[TargetSpec]:
    """`n` targets: 2 knob targets, the 5 hostile ones, 5 that the soak stops and starts, the rest replayed."""
    specs = [TargetSpec(k, "knob", "steady", str(workdir / f"{k}.json")) for k in KNOBS]
    specs += [TargetSpec(f"hostile-{k}", k, "steady") for k in HOSTILE]
    specs += [TargetSpec(f"flap-{i}", "vllm", "flap") for i in range(5)]
    kinds = ("vllm", "vllm", "vllm", "vllm-load", "triton")
    i = 0
    while len(specs) < n:
        specs.append(TargetSpec(f"replay-{i:03d}", kinds[i % len(kinds)], "steady"))
        i += 1
    return specs


class ReplayGroup:
    """One replay process serving a group of targets on fixed ports (so a restart reuses them)."""

    def __init__(self, name: str, specs: list[TargetSpec], workdir: Path, epoch: float) -> None:
        self.name = name
        self.specs = specs
        self.spec_file = workdir / f"replay-{name}.json"
        self.log = workdir / f"replay-{name}.log"
        self.epoch = epoch
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        targets = [
            {"name": s.name, "kind": s.kind, "knob": s.knob, "port": self.ports.get(s.name, 0)}
            for s in self.specs
        ]
        self.spec_file.write_text(json.dumps({"epoch": self.epoch, "targets": targets}))
        with open(self.log, "a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.soak.replay", str(self.spec_file)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = ""
        os.set_blocking(self.proc.stdout.fileno(), False)
        while time.monotonic() < deadline and self.proc.poll() is None:
            chunk = self.proc.stdout.readline()
            line += chunk or ""
            if line.endswith("\n"):
                break
            time.sleep(0.1)
        if not line.endswith("\n"):
            self.stop()
            raise RuntimeError(
                f"replay group {self.name} did not start within {timeout_s:.0f}s; see {self.log}"
            )
        self.ports = json.loads(line)["ports"]

    def stop(self, kill: bool = True) -> None:
        stop_process(self.proc, sig=signal.SIGKILL if kill else signal.SIGTERM)

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, grace_s: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class Broker:
    """The private Mosquitto (password file + the shipped ACL), stoppable and restartable on one port."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "broker"
        self.port = free_port()
        self._stack: ExitStack | None = None
        self.broker: MosquittoBroker | None = None

    def start(self) -> None:
        acl = (repo_data_dir() / "mosquitto" / "charter.acl").read_text()
        stack = ExitStack()
        self.broker = stack.enter_context(
            start_mosquitto(
                users=BROKER_USERS, acl=acl, port=self.port, keep_dir=self.dir, startup_timeout_s=30
            )
        )
        self._stack = stack

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self.broker = None, None

    @property
    def up(self) -> bool:
        return self.broker is not None and self.broker.process.poll() is None


@dataclass
class DaemonProc:
    """`charter-tui --config FILE daemon` with its own database, log and XDG dirs."""

    workdir: Path
    config: Path
    metrics_port: int
    proc: subprocess.Popen[str] | None = None
    starts: int = 0
    started_at: float = 0.0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.workdir / "charter.db"

    @property
    def log(self) -> Path:
        return self.workdir / "daemon.log"

    def environment(self) -> dict[str, str]:
        xdg = self.workdir / "xdg"
        return {
            **os.environ,
            "CHARTER_TUI_CONFIG": str(self.config),
            "CHARTER_TUI_DATABASE_URL": f"sqlite:///{self.db}",
            "CHARTER_TUI_LOG_FILE": str(self.log),
            "XDG_CONFIG_HOME": str(xdg / "config"),
            "XDG_DATA_HOME": str(xdg / "data"),
            "XDG_STATE_HOME": str(xdg / "state"),
            "XDG_CACHE_HOME": str(xdg / "cache"),
        }

    def start(self, timeout_s: float = 90.0) -> None:
        marker = self.log.read_text(errors="replace").count("daemon running") if self.log.exists() else 0
        self.started_at = float("inf")  # in start-up until it says it runs: the checks wait for that
        with open(self.workdir / "daemon.stderr", "a") as err:
            self.proc = subprocess.Popen(
                [str(CHARTER), "--config", str(self.config), "daemon"],
                env=self.environment(),
                stdout=subprocess.DEVNULL,
                stderr=err,
                text=True,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"daemon exited with {self.proc.returncode}; see {self.workdir / 'daemon.stderr'}"
                )
            if self.log.exists() and self.log.read_text(errors="replace").count("daemon running") > marker:
                self.started_at = time.monotonic()
                return
            time.sleep(0.2)
        raise RuntimeError(f"daemon did not say 'daemon running' within {timeout_s:.0f}s; see {self.log}")

    def sigkill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self) -> int | None:
        stop_process(self.proc, signal.SIGTERM, grace_s=30)
        return None if self.proc is None else self.proc.returncode

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_bytes(self) -> int | None:
        if not self.up:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():  # type: ignore[union-attr]
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None


def write_secret(workdir: Path, name: str) -> Path:
    path = workdir / f"{name}.key"
    path.write_text(SECRETS[name] + "\n")
    path.chmod(0o600)
    return path


def write_config(
    workdir: Path,
    specs: list[TargetSpec],
    ports: dict[str, int],
    broker_port: int,
    metrics_port: int,
    watch_dir: Path,
    poll_interval_s: float,
) -> Path:
    """The daemon's TOML: every target, the knob actuators, MQTT with signed identities, the watch dir."""
    pw = workdir / "daemon-mqtt.pw"
    pw.write_text(BROKER_USERS["charter-daemon"] + "\n")
    pw.chmod(0o600)
    ops, team = write_secret(workdir, "ops"), write_secret(workdir, "team")
    lines = [
        "[daemon]",
        'id = "soak-box"',
        f"poll_interval_s = {poll_interval_s}",
        f"metrics_port = {metrics_port}",
        "",
        "[storage]",
        "raw_retention_hours = 24.0",
        "",
        "[mqtt]",
        "enabled = true",
        'host = "127.0.0.1"',
        f"port = {broker_port}",
        'username = "charter-daemon"',
        f'password_file = "{pw}"',
        "",
        "[auth]",
        "max_skew_s = 60.0",
        "",
        "[[auth.identities]]",
        'name = "ops"',
        f'secret_file = "{ops}"',
        'actions = ["propose", "approve", "reject", "pause", "resume", "rollback"]',
        "",
        "[[auth.identities]]",
        'name = "team"',
        f'secret_file = "{team}"',
        "",  # propose only
        "[watch]",
        f'paths = ["{watch_dir}"]',
        "compile_timeout_s = 10.0",
        "",
        # A sample's rates cover the last [thresholds] window_s, and only samples wholly after the
        # change count for a canary: a short rate window lets a 15 s canary gather ~8 of them.
        "[thresholds]",
        "window_s = 5.0",
        "",
        "[rollouts]",
        "warmup_s = 2.0",
        "canary_window_s = 15.0",
        "baseline_window_s = 30.0",
        "min_samples = 3",
        'default_signals = ["generation_tokens_per_s"]',
        "step_interval_s = 0.5",
        "apply_timeout_s = 30.0",
        "",
    ]
    for knob in KNOBS:
        state = workdir / f"{knob}.json"
        argv = [sys.executable, str(KNOB), str(state)]
        lines += [
            f"[rollouts.commands.{knob}]",
            f"apply = {json.dumps(argv + ['set', '{param}', '{value}'])}",
            f"read = {json.dumps(argv + ['get', '{param}'])}",
            "timeout_s = 20.0",
            f"[rollouts.commands.{knob}.params.batch]",
            'type = "int"',
            "min = 1",
            "max = 512",
            "",
        ]
    for spec in specs:
        lines += [
            "[[targets]]",
            f'name = "{spec.name}"',
            f'url = "http://127.0.0.1:{ports[spec.name]}"',
            "timeout_s = 2.0",
            "",
        ]
    path = workdir / "config.toml"
    path.write_text("\n".join(lines))
    return path


def prepare_knobs(workdir: Path) -> None:
    for knob in KNOBS:
        (workdir / f"{knob}.json").write_text(json.dumps({"batch": "8"}))


def copy_agents(watch_dir: Path) -> list[Path]:
    src = ROOT / "data" / "agents"
    watch_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for f in sorted(list(src.glob("*.py")) + list((src / "examples").glob("*.py"))):
        dst = watch_dir / f.name
        shutil.copyfile(f, dst)
        files.append(dst)
    return files
