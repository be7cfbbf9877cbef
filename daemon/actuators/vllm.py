"""vLLM: engine flags are fixed at startup, so a change is a relaunch with a new argument vector.

The live process is the truth: the argv recorded before a change is read from /proc of the process
listening on the target's port (not from the config, which may be stale), and after a relaunch the
new process's argv is read back the same way, together with `/metrics` `vllm:cache_config_info` and
`/v1/models`. A relaunch writes the new argv to the state dir, stops the server gracefully (its process
group, so the engine core goes too), starts the new argv without a shell in its own session (it
outlives a killed daemon), and waits for `/health`. Rollback is the same relaunch with the recorded argv.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from daemon.actuators import procs
from daemon.actuators.base import Actuator, ActuatorError, Snapshot, TargetUnreachable
from daemon.actuators.params import VLLM_PARAMS, InvalidChange, ParamSpec
from daemon.config import TargetConfig
from daemon.rollouts.model import Change

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


def edit_argv(argv: Sequence[str], change: Change) -> list[str]:
    spec = VLLM_PARAMS[change.param]
    assert spec.flag is not None
    out = _strip(list(argv), spec)
    if spec.type == "bool":
        out.append(spec.flag if change.value else str(spec.negative_flag))
    else:
        out += [spec.flag, str(change.value)]
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

    # --- reading the real state ------------------------------------------------------------
    def _live(self) -> Snapshot | None:
        pid = procs.server_pid(self.port)
        if pid is None:
            return None
        argv = procs.cmdline(pid)
        if not argv:
            return None
        return {"argv": argv, "cwd": procs.cwd(pid), "env": dict(self.launch.env), "pid": pid}

    async def snapshot(self) -> Snapshot:
        live = await asyncio.to_thread(self._live)
        if live is None:
            raise TargetUnreachable(f"{self.target.name}: nothing listens on port {self.port}; nothing to change")
        return live

    def desired(self, snapshot: Snapshot) -> Snapshot:
        argv = list(snapshot["argv"])
        for change in self.changes:
            argv = edit_argv(argv, change)
        return {"argv": argv, "cwd": snapshot.get("cwd"), "env": dict(snapshot.get("env") or {})}

    async def observe(self) -> Snapshot | None:
        """What runs on the port. If nothing listens yet but the process of an interrupted relaunch
        (recorded in the state dir) is still starting, wait for it: it is about to be the truth."""
        live = await asyncio.to_thread(self._live)
        pending = self._pending_launch() if live is None else None
        if pending is not None:
            deadline = time.monotonic() + self.startup_timeout_s
            while live is None and procs.alive(pending) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                live = await asyncio.to_thread(self._live)
        return live

    def _pending_launch(self) -> int | None:
        """The pid this actuator last started, if it still runs the argv it was started with."""
        try:
            record = json.loads((self.state_dir / f"{self.target.name}.json").read_text())
        except (OSError, ValueError):
            return None
        pid = record.get("pid")
        if isinstance(pid, int) and procs.alive(pid) and procs.cmdline(pid) == record.get("argv"):
            return pid
        return None

    def matches(self, observed: Snapshot, config: Snapshot) -> bool:
        return list(observed["argv"]) == list(config["argv"])

    async def healthy(self) -> tuple[bool, str]:
        try:
            async with httpx.AsyncClient(timeout=self.target.timeout_s) as client:
                r = await client.get(f"{self.target.url}/health")
            return (r.status_code == 200, f"/health {r.status_code}")
        except httpx.HTTPError as exc:
            return False, f"/health: {type(exc).__name__} {exc}"

    # --- changing it -----------------------------------------------------------------------
    async def converge(self, config: Snapshot) -> dict[str, Any]:
        live = await self.observe()
        if live is not None and self.matches(live, config) and (await self.healthy())[0]:
            return await self._readback(live["pid"], relaunched=False)
        leftover = self._pending_launch() if live is None else None
        self._write_argv(config)
        if live is not None:
            how = await asyncio.to_thread(procs.stop, live["pid"], self.stop_grace_s)
            child = _CHILDREN.pop(live["pid"], None)
            if child is not None:
                child.poll()
        elif leftover is not None:
            # A relaunch interrupted by a crash left a server still starting: it would take the port.
            how = "stopped a leftover launch: " + await asyncio.to_thread(procs.stop, leftover, self.stop_grace_s)
        else:
            how = "was not running"
        await self._wait_port_free()
        process = self._start(config)
        self._write_argv(config, pid=process.pid)
        await self._wait_healthy(process)
        result = await self._readback(process.pid, relaunched=True)
        result["stopped_previous"] = how
        if result["argv"] != list(config["argv"]):
            raise ActuatorError(f"{self.target.name}: the process on port {self.port} runs {result['argv']}, "
                                f"not the argv just launched")
        return result

    def _write_argv(self, config: Snapshot, pid: int | None = None) -> None:
        """The argv about to run, written first (then again with its pid once started): a person, or a
        restarted daemon, can see what was meant and find a launch that a crash interrupted."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / f"{self.target.name}.json"
        tmp = path.with_suffix(".json.tmp")
        record = {"argv": config["argv"], "cwd": config.get("cwd"), "pid": pid, "written_at": time.time()}
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)

    def _start(self, config: Snapshot) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.update(config.get("env") or {})
        log_path = self.state_dir / f"{self.target.name}.log"
        with open(log_path, "ab") as log:
            log.write(f"\n--- charter-tui relaunch at {time.ctime()}: {config['argv']}\n".encode())
            try:
                process = subprocess.Popen(
                    list(config["argv"]),  # a vector: never a shell
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=config.get("cwd") or self.launch.cwd,
                    start_new_session=True,  # survives the daemon; its group can be stopped as one
                )
            except OSError as exc:
                raise ActuatorError(f"{self.target.name}: cannot start {config['argv'][0]}: {exc}") from None
        _CHILDREN[process.pid] = process
        return process

    async def _wait_port_free(self) -> None:
        deadline = time.monotonic() + self.stop_grace_s + 15
        while await asyncio.to_thread(procs.listener_pids, self.port):
            if time.monotonic() > deadline:
                raise ActuatorError(f"{self.target.name}: port {self.port} still taken after stopping the server")
            await asyncio.sleep(0.2)

    async def _wait_healthy(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                _CHILDREN.pop(process.pid, None)
                raise ActuatorError(
                    f"{self.target.name}: the relaunched server exited with code {process.returncode} "
                    f"before /health answered; last log lines:\n{self._log_tail()}"
                )
            ok, _ = await self.healthy()
            if ok:
                return
            await asyncio.sleep(0.5)
        raise ActuatorError(f"{self.target.name}: /health not OK {self.startup_timeout_s:.0f} s after relaunch")

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = (self.state_dir / f"{self.target.name}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def _readback(self, pid: int, *, relaunched: bool) -> dict[str, Any]:
        argv = procs.cmdline(pid) or []
        out: dict[str, Any] = {"pid": pid, "relaunched": relaunched, "argv": argv}
        try:
            async with httpx.AsyncClient(timeout=self.target.timeout_s + 5) as client:
                metrics = (await client.get(self.target.metrics_url or f"{self.target.url}/metrics")).text
                models = (await client.get(f"{self.target.url}/v1/models")).json()
            out["cache_config_info"] = parse_info_labels(metrics, "vllm:cache_config_info")
            out["max_model_len"] = {m.get("id"): m.get("max_model_len") for m in models.get("data", [])}
        except (httpx.HTTPError, ValueError) as exc:
            out["readback_error"] = str(exc)
        for change in self.changes:
            out.setdefault("flags", {})[change.param] = argv_value(argv, change.param)
        return out
