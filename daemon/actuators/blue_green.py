"""vLLM relaunch without an outage: blue-green on two ports behind a front.

With `[targets.launch.blue_green] ports = [A, B]` the server runs on A or B, never on the target URL's
port: that port is held by a front (daemon/front_proxy.py), a small HTTP proxy process of
charter-tui's own, started in its own session so client traffic depends neither on the daemon's loop nor
on its being up. A change is then:

1. the new server started on the idle port (with that port's `env`: e.g. the second GPU), beside the old
   one, which keeps serving;
2. validated there: `/health`, and its argv, `vllm:cache_config_info` and `/v1/models` read back from
   it directly; a server that fails here is stopped and the old one never stopped serving;
3. the front switched: every new request goes to the new server (it says when it has switched);
4. the old server drained (no request the front sent it still running, or `drain_s` passed) and
   stopped gracefully.

The rollout's canary then judges the new server through the same URL the clients use. A rollback is the
same step back. Everything else (who may be stopped, launch records, root causes of a failed start) is
the relaunch actuator's, per port: each port has its own launch record and log (`<target>@<port>`).

What it costs: two servers' memory for the time of the switch (on one GPU, both must fit: size
`--gpu-memory-utilization` for it, or give each port its own GPU with `env`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from daemon.actuators import front_state, procs
from daemon.actuators.base import ActuatorError, ForeignProcess, Snapshot
from daemon.actuators.change import Change
from daemon.actuators.params import Value
from daemon.actuators.server_log import last_lines
from daemon.actuators.vllm import _CHILDREN, VllmRelaunchActuator
from daemon.config import BlueGreenConfig, TargetConfig

FRONT_START_TIMEOUT_S = 15.0
SWITCH_TIMEOUT_S = 10.0
_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def with_port(argv: Sequence[str], port: int) -> list[str]:
    """argv with `--port` set to `port` (every earlier spelling removed)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        head = argv[i].split("=", 1)[0]
        if head == "--port":
            i += 1 if "=" in argv[i] else 2
            continue
        out.append(argv[i])
        i += 1
    return [*out, "--port", str(port)]


def backend_host(argv: Sequence[str]) -> str:
    """Where the front reaches the server: the argv's `--host`, loopback when it listens everywhere."""
    host = ""
    for i, arg in enumerate(argv):
        head, _, inline = arg.partition("=")
        if head == "--host":
            host = inline or (argv[i + 1] if i + 1 < len(argv) else "")
    return "127.0.0.1" if host in _WILDCARD_HOSTS else host


def _reap(pid: int) -> None:
    """Collect a stopped server this daemon started (no zombie left behind)."""
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.poll()


class BlueGreenVllmActuator(VllmRelaunchActuator):
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
        super().__init__(
            target,
            changes,
            state_dir=state_dir,
            startup_timeout_s=startup_timeout_s,
            stop_grace_s=stop_grace_s,
        )
        assert self.launch.blue_green is not None
        self.blue_green: BlueGreenConfig = self.launch.blue_green
        self.front_port = self.port  # the URL's port: the clients'
        self.front_host = urlsplit(target.url).hostname or "127.0.0.1"
        self.backend_host = backend_host(self.launch.argv)
        self.port = self.blue_green.ports[0]  # the port being looked at; set per step
        front = self.state_dir / f"{target.name}.front"
        self.front_state = front.with_name(front.name + ".json")  # written here: the backend to use
        self.front_status = front.with_name(front.name + "-status.json")  # written by the front
        self.front_log = front.with_name(front.name + ".log")

    # --- per port: the relaunch actuator's hooks ---------------------------------------------
    def _stem(self) -> str:
        return f"{self.target.name}@{self.port}"

    def _server_url(self) -> str:
        host = f"[{self.backend_host}]" if ":" in self.backend_host else self.backend_host
        return f"http://{host}:{self.port}"

    def _metrics_url(self) -> str:
        return f"{self._server_url()}/metrics"

    def _child_env(self) -> dict[str, str]:
        env = dict(super()._child_env())
        if self.blue_green.env:
            env.update(self.blue_green.env[self.blue_green.ports.index(self.port)])
        return env

    def argv_for(self, flags: Any) -> list[str]:
        return with_port(super().argv_for(flags), self.port)

    def _other(self, port: int) -> int:
        a, b = self.blue_green.ports
        return b if port == a else a

    # --- the front -----------------------------------------------------------------------------
    def _front_pid(self) -> int | None:
        """The front on the URL's port, identified by the status it wrote (pid and start time); None if
        nothing listens there; ForeignProcess if something else does."""
        roots = procs.listener_roots(self.front_port)
        if not roots:
            return None
        status = front_state.read_json(self.front_status) or {}
        if (
            len(roots) == 1
            and status.get("pid") == roots[0]
            and procs.start_time(roots[0]) == status.get("start_time")
        ):
            return roots[0]
        held = procs.info(roots[0])
        raise ForeignProcess(
            f"{self.target.name}: port {self.front_port} (the url's) is held by "
            f"{held.describe() if held else f'pid {roots[0]}'}, not charter-tui's blue-green front; the server "
            f"must run on one of blue_green.ports {self.blue_green.ports} and leave the url's port to the front; "
            "nothing was stopped"
        )

    def _active_port(self) -> int:
        """The port the front sends new requests to; before there is a front, the port an identified
        server listens on (the first when neither or both)."""
        ports = self.blue_green.ports
        for source in (self.front_status, self.front_state):
            port = front_state.read_backend(source)
            if port in ports:
                return port
        listening = [p for p in ports if procs.listener_pids(p)]
        return listening[0] if len(listening) == 1 else ports[0]

    def _start_front(self, backend: int) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        front_state.write_json(self.front_state, {"backend": backend, "written_at": time.time()})
        argv = [
            sys.executable,
            "-I",  # isolated: no PYTHONPATH or user site from the daemon's environment decides what runs
            "-m",
            front_state.MODULE,
            "--listen",
            f"{self.front_host}:{self.front_port}",
            "--backend-host",
            self.backend_host,
            "--state",
            str(self.front_state),
            "--status",
            str(self.front_status),
        ]
        fd = os.open(self.front_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "ab") as log:
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the daemon: the clients' path must not depend on it
                close_fds=True,
            )

    async def ensure_front(self) -> int:
        """Start the front if it is not running (pointing at the active port); its pid."""
        pid = await asyncio.to_thread(self._front_pid)
        if pid is not None:
            return pid
        await asyncio.to_thread(self._start_front, await asyncio.to_thread(self._active_port))
        deadline = time.monotonic() + FRONT_START_TIMEOUT_S
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            pid = await asyncio.to_thread(self._front_pid)
            if pid is not None:
                return pid
        raise ActuatorError(
            f"{self.target.name}: the blue-green front did not listen on {self.front_host}:{self.front_port} "
            f"within {FRONT_START_TIMEOUT_S:.0f} s; its log ({self.front_log}) ends:\n{self._front_log_tail()}"
        )

    def _front_log_tail(self) -> str:
        try:
            with open(self.front_log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                return last_lines(f.read().decode(errors="replace"), 5)
        except OSError:
            return "(no log)"

    async def _switch(self, port: int) -> None:
        """New requests go to `port` from the moment this returns (the front said so)."""
        front_state.write_json(self.front_state, {"backend": port, "written_at": time.time()})
        await self.ensure_front()  # a front that died meanwhile starts again, on the new port
        deadline = time.monotonic() + SWITCH_TIMEOUT_S
        while front_state.read_backend(self.front_status) != port:
            if time.monotonic() > deadline:
                raise ActuatorError(
                    f"{self.target.name}: the front did not switch to port {port} within {SWITCH_TIMEOUT_S:.0f} s"
                )
            await asyncio.sleep(0.05)

    def _in_flight(self, port: int) -> int:
        """Requests the front has sent to `port` that have not finished (their response fully streamed)."""
        counts = (front_state.read_json(self.front_status) or {}).get("in_flight") or {}
        found = counts.get(str(port), 0) if isinstance(counts, dict) else 0
        return found if isinstance(found, int) and not isinstance(found, bool) else 0

    async def _drain(self, port: int) -> str:
        """Wait until no request the front sent to the old server is still running, up to `drain_s`.
        After the switch no new one goes there, so this only counts down."""
        started = time.monotonic()
        while (left := self._in_flight(port)) > 0:
            if time.monotonic() - started >= self.blue_green.drain_s:
                return (
                    f"stopped after drain_s={self.blue_green.drain_s:g} s with {left} requests still running"
                )
            await asyncio.sleep(0.1)
        return f"drained in {time.monotonic() - started:.1f} s"

    # --- the actuator's interface --------------------------------------------------------------
    async def _look_at_active(self) -> int:
        self.port = await asyncio.to_thread(self._active_port)
        return self.port

    async def snapshot(self) -> Snapshot:
        await self.ensure_front()
        await self._look_at_active()
        return {**await super().snapshot(), "port": self.port}

    def desired(self, snapshot: Snapshot) -> Snapshot:
        """The change as it will run: on the other port (what a dry run shows)."""
        serving = snapshot.get("port")
        saved, self.port = self.port, self._other(serving) if serving in self.blue_green.ports else self.port
        try:
            return {**super().desired(snapshot), "port": self.port}
        finally:
            self.port = saved

    async def observe(self) -> Snapshot | None:
        await self._look_at_active()
        return await super().observe()

    async def healthy(self) -> tuple[bool, str]:
        """Through the front, as the clients see it."""
        try:
            async with httpx.AsyncClient(timeout=self.target.timeout_s) as client:
                r = await client.get(f"{self.target.url}/health")
            return (r.status_code == 200, f"/health {r.status_code} (via the front)")
        except httpx.HTTPError as exc:
            return False, f"/health via the front: {type(exc).__name__} {exc}"

    async def converge(self, config: Snapshot) -> dict[str, Any]:
        flags: dict[str, Value] = self._normalized(config.get("flags") or {})
        self._preflight()
        await self.ensure_front()  # ForeignProcess here: nothing has been touched
        active = await self._look_at_active()
        holder = await self._holder_or_pending()
        if holder is not None and holder.flags == flags and (await self._server_healthy())[0]:
            return await self._readback(holder.info.pid, flags, relaunched=False)

        idle = self.port = self._other(active)
        leftover = await asyncio.to_thread(self._holder)  # a stranger on the idle port: refused here
        pending = self._pending_launch() if leftover is None else None
        if leftover is not None:  # the new server of an interrupted or failed switch
            await asyncio.to_thread(
                procs.stop, leftover.stop_pid, self.stop_grace_s, started=leftover.stop_started
            )
        elif pending is not None and pending.pid is not None:
            await asyncio.to_thread(procs.stop, pending.pid, self.stop_grace_s, started=pending.start_time)
        await self._wait_port_free()
        argv = self.argv_for(flags)
        self._write_record(argv, flags)
        process = self._start(argv)
        started_at = procs.start_time(process.pid)
        self._write_record(argv, flags, pid=process.pid, started=started_at)
        try:
            await self._wait_healthy(process)
            result = await self._readback(process.pid, flags, relaunched=True)
        except (ActuatorError, asyncio.CancelledError) as exc:
            await asyncio.to_thread(procs.stop, process.pid, self.stop_grace_s, started=started_at)
            _reap(process.pid)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise ActuatorError(
                f"{exc}\n(blue-green: the new server on port {idle} was stopped; the one on port {active} "
                "kept serving and still does)"
            ) from None
        await self._switch(idle)

        self.port = active
        how = "nothing served there"
        if holder is not None:
            drained = await self._drain(active)
            how = f"{drained}; {holder.kind} {holder.info.describe()}: " + await asyncio.to_thread(
                procs.stop, holder.stop_pid, self.stop_grace_s, started=holder.stop_started
            )
            _reap(holder.stop_pid)
        self.port = idle
        result["stopped_previous"] = how
        result["downtime_s"] = 0.0  # the front never lacked a server to send a request to
        result["blue_green"] = {"from_port": active, "to_port": idle}
        return result


async def ensure_fronts(targets: Sequence[TargetConfig], state_dir: Path) -> list[str]:
    """At daemon start: a front for every blue-green target (clients need it before any rollout). What
    could not be started, one line each; nothing raises (a target's front is its own business)."""
    problems: list[str] = []
    for target in targets:
        if target.launch is None or target.launch.blue_green is None:
            continue
        try:
            await BlueGreenVllmActuator(target, [], state_dir=state_dir).ensure_front()
        except ActuatorError as exc:
            problems.append(str(exc))
    return problems
