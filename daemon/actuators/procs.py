"""Linux process facts the relaunch actuator needs: who listens on a port, its argv, stopping a group.

Read from /proc, not from what the daemon believes: after a crash or a hand restart, the process
listening on the target's port *is* the target's real state.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

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


def server_pid(port: int) -> int | None:
    """The server process on `port`: of the listeners, the one whose parent is not a listener too."""
    pids = listener_pids(port)
    roots = [p for p in pids if parent(p) not in pids]
    return min(roots) if roots else None


def cmdline(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")[:-1]] or None


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


def stop(pid: int, grace_s: float) -> str:
    """SIGTERM the server (its whole process group when it leads one, so vLLM's engine core goes too),
    wait up to `grace_s` for every member to exit, then SIGKILL what is left. Returns how it ended."""
    group = pgid(pid)
    leads_group = group == pid
    sig_target = (lambda s: os.killpg(pid, s)) if leads_group else (lambda s: os.kill(pid, s))
    try:
        sig_target(signal.SIGTERM)
    except ProcessLookupError:
        return "already gone"

    def remaining() -> list[int]:
        return group_members(pid) if leads_group else ([pid] if alive(pid) else [])

    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not remaining():
            return "stopped (SIGTERM)"
        time.sleep(0.2)
    for p in remaining():
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while remaining() and time.monotonic() < deadline:
        time.sleep(0.1)
    return "killed (SIGKILL after grace)"
