"""vLLM: engine flags are fixed at startup, so a change is a relaunch with a new argument vector.

What runs is what the config says: a launch is always `[targets.launch] argv` with validated flags
set on it (`--max-num-seqs 8`), never an argv read from whatever process holds the port. A config
snapshot is therefore the set of flags the server runs with beyond the configured argv (`flags`; `argv`
is recorded beside it for people), read from the live server only once that server is identified.

The process on the port is stopped only if it is identified (daemon/actuators/launch.py says what the
configured program and account are):
- "launched": the process this actuator started, by the launch record it wrote in its state dir
  (pid *and* start time, so a recycled pid names nobody), or a child of it;
- "configured": the configured server started by someone else: it runs the configured program, its
  arguments start with the configured ones (tunable flags aside), and it runs as the configured account.
Anything else is a `ForeignProcess`: the change is refused naming its pid, user and executable, before
anything is stopped.

A relaunch writes the argv to the launch record first, stops the server gracefully (its process group,
so the engine core goes too, after checking through a pidfd that the pid is still the identified
process), starts the argv without a shell in its own session (it outlives a killed daemon) as the
configured account with only the configured environment, records its pid and start time, waits for
`/health`, and reads back the new process's argv, `/metrics` `vllm:cache_config_info` and `/v1/models`.
Rollback is the same relaunch with the recorded flags.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from daemon.actuators import launch, procs
from daemon.actuators.base import Actuator, ActuatorError, ForeignProcess, Snapshot, TargetUnreachable
from daemon.actuators.params import VLLM_PARAMS, InvalidChange, ParamSpec, Value
from daemon.config import TargetConfig
from daemon.actuators.change import Change
from daemon.actuators.server_log import RELAUNCH_MARKER, last_lines, root_cause

# Processes this daemon started, so they can be reaped (no zombies) when a later relaunch stops them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _flag_spellings(flag: str) -> tuple[str, str]:
    # vLLM's parser accepts --max-num-seqs and --max_num_seqs alike.
    return flag, "--" + flag[2:].replace("-", "_")


def _strip(argv: list[str], spec: ParamSpec) -> list[str]:
    """argv without any occurrence of the parameter (`--f v`, `--f=v`, and for booleans `--no-f`)."""
    assert spec.flag is not None
    names = set(_flag_spellings(spec.flag))
    if spec.negative_flag:
        names |= set(_flag_spellings(spec.negative_flag))
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        head = arg.split("=", 1)[0]
        if head in names:
            # `--flag value` consumes the next element unless the flag is a boolean or uses `=`.
            i += 1 if (spec.type == "bool" or "=" in arg) else 2
            continue
        out.append(arg)
        i += 1
    return out


def set_flag(argv: Sequence[str], param: str, value: Value) -> list[str]:
    spec = VLLM_PARAMS[param]
    assert spec.flag is not None
    out = _strip(list(argv), spec)
    if spec.type == "bool":
        out.append(spec.flag if value else str(spec.negative_flag))
    else:
        out += [spec.flag, str(value)]
    return out


def edit_argv(argv: Sequence[str], change: Change) -> list[str]:
    return set_flag(argv, change.param, change.value)


def strip_tunables(argv: Sequence[str]) -> list[str]:
    """argv without any flag a rollout may set: what identifies a server beyond its tuning."""
    out = list(argv)
    for spec in VLLM_PARAMS.values():
        out = _strip(out, spec)
    return out


def argv_value(argv: Sequence[str], param: str) -> str | bool | None:
    """The value a parameter has in `argv` (last occurrence wins, as with argparse); None if absent."""
    spec = VLLM_PARAMS[param]
    assert spec.flag is not None
    names = set(_flag_spellings(spec.flag))
    negatives = set(_flag_spellings(spec.negative_flag)) if spec.negative_flag else set()
    found: str | bool | None = None
    for i, arg in enumerate(argv):
        head, _, inline = arg.partition("=")
        if head in names:
            found = True if spec.type == "bool" else (inline or (argv[i + 1] if i + 1 < len(argv) else None))
        elif head in negatives:
            found = False
    return found


def parse_info_labels(metrics_text: str, family: str) -> dict[str, str]:
    for line in metrics_text.splitlines():
        if line.startswith(family + "{"):
            return dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line[len(family) : line.rindex("}") + 1]))
    return {}


_RECORD_MAX_BYTES = 64 * 1024  # a launch record is one argv; a bigger file is not one of ours


@dataclass(frozen=True)
class LaunchRecord:
    """What the actuator last launched for a target (its pid file): written before the start with no
    pid, then again with the pid and start time of the process it started."""

    argv: list[str]
    flags: dict[str, Value]
    pid: int | None
    start_time: int | None

    def owns(self, pid: int) -> bool:
        """Whether `pid` is the recorded process or a child of it, by pid and start time both."""
        if self.pid is None or self.start_time is None:
            return False
        return self.pid in procs.ancestors(pid) and procs.start_time(self.pid) == self.start_time

    def running(self) -> bool:
        return (
            self.pid is not None and procs.alive(self.pid) and procs.start_time(self.pid) == self.start_time
        )


@dataclass(frozen=True)
class Holder:
    """The identified server on the target's port."""

    info: procs.ProcessInfo
    kind: Literal["launched", "configured"]
    flags: dict[str, Value] | None  # None: its argv cannot be read as the configured one
    stop_pid: int  # what to stop: the launched process (leader of its group), or the listener itself
    stop_started: int


class VllmRelaunchActuator(Actuator):
    kind = "vllm"

    def __init__(
        self,
        target: TargetConfig,
        changes: Sequence[Change],
        *,
        state_dir: Path,
        startup_timeout_s: float = 600.0,
        stop_grace_s: float = 30.0,
    ) -> None:
        super().__init__(target, changes)
        if target.launch is None:
            raise InvalidChange(
                f"target {target.name}: vLLM flags need a relaunch, and the target has no [targets.launch] argv"
            )
        if target.launch.systemd_unit:
            raise InvalidChange(
                f"target {target.name}: relaunching a systemd unit is not supported; give [targets.launch] argv "
                "and let charter-tui start the server"
            )
        self.launch = target.launch
        parts = urlsplit(target.url)
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.state_dir = state_dir / "launch"
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self._resolved: tuple[launch.RunAs, str | None, dict[str, str], launch.Program] | None = None

    # --- what the config says ----------------------------------------------------------------
    def _preflight(self) -> tuple[launch.RunAs, str | None, dict[str, str], launch.Program]:
        """The account, cwd, environment and program of a launch; ActuatorError (before anything is
        stopped) if the server could not be started as configured."""
        if self._resolved is None:
            try:
                run_as = launch.resolve_run_as(self.launch, self.target.name)
                cwd = launch.child_cwd(self.launch, run_as, self.target.name)
                env = launch.child_env(self.launch, run_as)
                program = launch.resolve_program(self.launch.argv[0], env, cwd, self.target.name)
            except InvalidChange as exc:
                raise ActuatorError(str(exc)) from None
            self._resolved = (run_as, cwd, env, program)
        return self._resolved

    def _configured_value(self, param: str) -> Value | None:
        raw = argv_value(self.launch.argv, param)
        try:
            return None if raw is None else VLLM_PARAMS[param].coerce(raw)
        except InvalidChange:
            return None

    def _normalized(self, flags: Mapping[str, Any]) -> dict[str, Value]:
        """Validated flags, without those that only repeat the configured argv (so that equal configs
        compare equal however they were reached); ActuatorError naming a bad one."""
        out: dict[str, Value] = {}
        for param, raw in flags.items():
            spec = VLLM_PARAMS.get(param)
            if spec is None:
                raise ActuatorError(f"{self.target.name}: {param!r} is not a vLLM parameter charter-tui sets")
            try:
                value = spec.coerce(raw)
            except InvalidChange as exc:
                raise ActuatorError(f"{self.target.name}: {exc}") from None
            if value != self._configured_value(param):
                out[param] = value
        return dict(sorted(out.items()))

    def argv_for(self, flags: Mapping[str, Value]) -> list[str]:
        argv = list(self.launch.argv)
        for param, value in flags.items():
            argv = set_flag(argv, param, value)
        return argv

    def _config(self, flags: Mapping[str, Any]) -> Snapshot:
        normalized = self._normalized(flags)
        return {"flags": normalized, "argv": self.argv_for(normalized)}

    # --- who holds the port ------------------------------------------------------------------
    def _read_record(self) -> LaunchRecord | None:
        path = self.state_dir / f"{self._stem()}.json"
        try:
            with open(path, "rb") as f:
                raw = json.loads(f.read(_RECORD_MAX_BYTES + 1)[:_RECORD_MAX_BYTES])
            pid, started = raw.get("pid"), raw.get("start_time")
            argv, flags = raw.get("argv"), raw.get("flags") or {}
            if not (
                isinstance(argv, list) and all(isinstance(a, str) for a in argv) and isinstance(flags, dict)
            ):
                return None
            return LaunchRecord(
                argv=argv,
                flags=flags,
                pid=pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 1 else None,
                start_time=started if isinstance(started, int) and not isinstance(started, bool) else None,
            )
        except (OSError, ValueError, AttributeError):
            return None

    def _live_flags(self, args: list[str] | None) -> dict[str, Value] | None:
        if args is None:
            return None
        found = {p: v for p in VLLM_PARAMS if (v := argv_value(args, p)) is not None}
        try:
            return self._normalized(found)
        except ActuatorError:
            return None

    def _identify(self, info: procs.ProcessInfo) -> Holder | str:
        """The holder, if `info` is the server this target may stop; else why not."""
        run_as, _cwd, _env, program = self._preflight()
        args = program.args(info.argv)
        record = self._read_record()
        if record is not None and record.owns(info.pid):
            assert record.pid is not None and record.start_time is not None
            return Holder(info, "launched", self._live_flags(args), record.pid, record.start_time)
        if not program.runs(info.exe):
            return f"it runs {info.exe or 'an unreadable executable'}, not {program.path} ([targets.launch] argv[0])"
        configured = strip_tunables(self.launch.argv[1:])
        if args is None or strip_tunables(args)[: len(configured)] != configured:
            return "its arguments are not the configured [targets.launch] argv"
        if info.uid != run_as.uid or info.real_uid != run_as.uid:
            return f"it runs as {info.user}, not as the configured account {run_as.name}"
        return Holder(info, "configured", self._live_flags(args), info.pid, info.start_time)

    def _holder(self) -> Holder | None:
        """The identified server on the port; None if nothing listens; ForeignProcess otherwise."""
        roots = procs.listener_roots(self.port)
        if not roots:
            return None
        if len(roots) > 1:
            raise ForeignProcess(
                f"{self.target.name}: port {self.port} is held by {len(roots)} unrelated processes "
                f"(pids {', '.join(map(str, roots[:8]))}); nothing was stopped"
            )
        info = procs.info(roots[0])
        if info is None:
            return None  # exited while being looked at
        found = self._identify(info)
        if isinstance(found, str):
            raise ForeignProcess(
                f"{self.target.name}: port {self.port} is held by {info.describe()}, which charter-tui did not "
                f"start and which is not the configured server ({found}); nothing was stopped"
            )
        return found

    def _pending_launch(self) -> LaunchRecord | None:
        """The launch this actuator last started, if that very process (pid and start time) still runs."""
        record = self._read_record()
        return record if record is not None and record.running() else None

    # --- reading the real state ------------------------------------------------------------
    def _observed(self, holder: Holder) -> Snapshot:
        return {
            "flags": holder.flags,
            "argv": holder.info.argv,
            "pid": holder.info.pid,
            "holder": holder.kind,
        }

    async def snapshot(self) -> Snapshot:
        holder = await asyncio.to_thread(self._holder)
        if holder is None:
            raise TargetUnreachable(
                f"{self.target.name}: nothing listens on port {self.port}; nothing to change"
            )
        if holder.flags is None:
            raise ActuatorError(
                f"{self.target.name}: the flags of {holder.info.describe()} cannot be read as the configured argv "
                "with validated flags; nothing was stopped"
            )
        # Recorded: the flags beyond the configured argv, and the argv they make (never the live argv).
        return {**self._config(holder.flags), "pid": holder.info.pid}

    def value_in(self, snapshot: Snapshot, change: Change) -> Any:
        # `flags` holds only what differs from the configured argv: absent there, the value is the
        # configured one (`--max-model-len 4096` in the argv), and vLLM's default only when that says none.
        flags = snapshot.get("flags") or {}
        return flags[change.param] if change.param in flags else self._configured_value(change.param)

    def desired(self, snapshot: Snapshot) -> Snapshot:
        flags: dict[str, Any] = dict(snapshot.get("flags") or {})
        for change in self.changes:
            flags[change.param] = change.value
        return self._config(flags)

    async def observe(self) -> Snapshot | None:
        """What runs on the port. If nothing listens yet but the process of an interrupted relaunch
        (recorded in the state dir) is still starting, wait for it: it is about to be the truth.
        A process that may not be touched is reported as such (it matches no config)."""
        try:
            holder = await self._holder_or_pending()
        except ActuatorError as exc:
            return {"refused": str(exc)}
        return None if holder is None else self._observed(holder)

    async def _holder_or_pending(self) -> Holder | None:
        holder = await asyncio.to_thread(self._holder)
        pending = self._pending_launch() if holder is None else None
        if pending is not None:
            deadline = time.monotonic() + self.startup_timeout_s
            while holder is None and pending.running() and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                holder = await asyncio.to_thread(self._holder)
        return holder

    def matches(self, observed: Snapshot, config: Snapshot) -> bool:
        if observed.get("flags") is None:
            return False
        try:
            return self._normalized(observed["flags"]) == self._normalized(config.get("flags") or {})
        except ActuatorError:
            return False

    async def healthy(self) -> tuple[bool, str]:
        return await self._server_healthy()

    async def _server_healthy(self) -> tuple[bool, str]:
        """The server this actuator launches answers `/health` (where clients reach it: see _server_url)."""
        try:
            async with httpx.AsyncClient(timeout=self.target.timeout_s) as client:
                r = await client.get(f"{self._server_url()}/health")
            return (r.status_code == 200, f"/health {r.status_code}")
        except httpx.HTTPError as exc:
            return False, f"/health: {type(exc).__name__} {exc}"

    # --- where the server is: one place, so a blue-green subclass can point at its slot ----------
    def _stem(self) -> str:
        """The name of this server's launch record and log in the state dir."""
        return self.target.name

    def _server_url(self) -> str:
        return self.target.url

    def _metrics_url(self) -> str:
        return self.target.metrics_endpoint

    def _child_env(self) -> dict[str, str]:
        return self._preflight()[2]

    # --- changing it -----------------------------------------------------------------------
    async def converge(self, config: Snapshot) -> dict[str, Any]:
        flags = self._normalized(config.get("flags") or {})
        argv = self.argv_for(flags)  # from the config and the validated flags only
        self._preflight()
        holder = await self._holder_or_pending()  # ForeignProcess here: nothing has been touched
        if holder is not None and holder.flags == flags and (await self.healthy())[0]:
            return await self._readback(holder.info.pid, flags, relaunched=False)
        leftover = self._pending_launch() if holder is None else None
        self._write_record(argv, flags)
        out_of_service_from = time.monotonic()
        if holder is not None:
            how = await asyncio.to_thread(
                procs.stop, holder.stop_pid, self.stop_grace_s, started=holder.stop_started
            )
            child = _CHILDREN.pop(holder.stop_pid, None)
            if child is not None:
                child.poll()
            how = f"{holder.kind} {holder.info.describe()}: {how}"
        elif leftover is not None and leftover.pid is not None:
            # A relaunch interrupted by a crash left a server still starting: it would take the port.
            how = "stopped a leftover launch: " + await asyncio.to_thread(
                procs.stop, leftover.pid, self.stop_grace_s, started=leftover.start_time
            )
        else:
            how = "was not running"
        await self._wait_port_free()
        process = self._start(argv)
        self._write_record(argv, flags, pid=process.pid, started=procs.start_time(process.pid))
        await self._wait_healthy(process)
        # From stopping the old server to the new one answering /health: what the next approval of a
        # relaunch quotes as its expected outage (`rollouts.commands.last_relaunch_s`).
        downtime_s = round(time.monotonic() - out_of_service_from, 1)
        result = await self._readback(process.pid, flags, relaunched=True)
        result["stopped_previous"] = how
        result["downtime_s"] = downtime_s
        return result

    def _write_record(
        self, argv: list[str], flags: dict[str, Value], pid: int | None = None, started: int | None = None
    ) -> None:
        """The argv about to run, written first (then again with its pid once started): a person, or a
        restarted daemon, can see what was meant and find a launch that a crash interrupted. The
        environment is not written: it may hold secrets."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.state_dir / f"{self._stem()}.json"
        tmp = path.with_suffix(".json.tmp")
        record = {"argv": argv, "flags": flags, "pid": pid, "start_time": started, "written_at": time.time()}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record))
        os.replace(tmp, path)

    def _start(self, argv: list[str]) -> subprocess.Popen[bytes]:
        run_as, cwd, _env, _program = self._preflight()
        env = self._child_env()
        account: dict[str, Any] = {}
        if run_as.switch:
            account = {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}
        log_path = self.state_dir / f"{self._stem()}.log"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "ab") as log:
            log.write(f"\n{RELAUNCH_MARKER}{time.ctime()} as {run_as.name}: {argv}\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(
                    argv,  # a vector: never a shell
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,  # survives the daemon; its group can be stopped as one
                    **account,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise ActuatorError(
                    f"{self.target.name}: cannot start {argv[0]} as {run_as.name}: {exc}"
                ) from None
        _CHILDREN[process.pid] = process
        return process

    async def _wait_port_free(self) -> None:
        deadline = time.monotonic() + self.stop_grace_s + 15
        while await asyncio.to_thread(procs.listener_pids, self.port):
            if time.monotonic() > deadline:
                raise ActuatorError(
                    f"{self.target.name}: port {self.port} still taken after stopping the server"
                )
            await asyncio.sleep(0.2)

    async def _wait_healthy(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                _CHILDREN.pop(process.pid, None)
                log_text = self._relaunch_log()
                cause = root_cause(log_text)
                raise ActuatorError(
                    f"{self.target.name}: the relaunched server exited with code {process.returncode} "
                    f"before /health answered"
                    + (f"; root cause: {cause}" if cause else "")
                    + f"; last log lines:\n{last_lines(log_text, 15)}"
                )
            ok, _ = await self._server_healthy()
            if ok:
                return
            await asyncio.sleep(0.5)
        raise ActuatorError(
            f"{self.target.name}: /health not OK {self.startup_timeout_s:.0f} s after relaunch"
        )

    def _relaunch_log(self) -> str:
        """The server log since the last relaunch marker (its last 64 KiB at most)."""
        try:
            with open(self.state_dir / f"{self._stem()}.log", "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return text.rpartition(RELAUNCH_MARKER)[2] if RELAUNCH_MARKER in text else text

    async def _readback(self, pid: int, flags: dict[str, Value], *, relaunched: bool) -> dict[str, Any]:
        """What the server on the port runs now, checked: it must be the identified server (for a
        relaunch, the process just started) with exactly `flags` beyond the configured argv."""
        holder = await asyncio.to_thread(self._holder)
        if holder is None or (relaunched and holder.kind != "launched") or holder.flags != flags:
            seen = (
                "nothing"
                if holder is None
                else f"{holder.kind} {holder.info.describe()} with flags {holder.flags}"
            )
            raise ActuatorError(
                f"{self.target.name}: port {self.port} serves {seen}, not flags {flags} as launched"
            )
        argv = holder.info.argv
        out: dict[str, Any] = {
            "pid": holder.info.pid,
            "relaunched": relaunched,
            "argv": argv,
            "holder": holder.kind,
        }
        try:
            async with httpx.AsyncClient(timeout=self.target.timeout_s + 5) as client:
                metrics = (await client.get(self._metrics_url())).text
                models = (await client.get(f"{self._server_url()}/v1/models")).json()
            out["cache_config_info"] = parse_info_labels(metrics, "vllm:cache_config_info")
            out["max_model_len"] = {m.get("id"): m.get("max_model_len") for m in models.get("data", [])}
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            out["readback_error"] = str(exc)
        for change in self.changes:
            out.setdefault("flags", {})[change.param] = argv_value(argv, change.param)
        return out
