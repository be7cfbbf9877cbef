"""Free loopback ports and waiting for a server to answer."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from daemon.actuators import procs


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it; a tiny race remains, as always)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]  # (host, port) for AF_INET; typeshed types the address as Any
        return port


def die_with_parent() -> None:
    """Run in the child before exec: ask Linux to SIGTERM it when the process that started it dies, so
    a test run killed by a timeout (or a Ctrl-C that skips teardown) leaves no server behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except OSError:  # not Linux/glibc: the server then outlives a killed parent, as without this
        pass


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class StartupError(RuntimeError):
    """A kit server did not come up; the message carries the reason and its log's tail."""


def wait_http_ok(url: str, process: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    """Poll `url` until it answers 200, the process dies, or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartupError(
                f"server exited with code {process.returncode} before {url} answered; log {log}:\n"
                + log_tail(log)
            )
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise StartupError(f"{url} did not answer 200 within {timeout_s:.0f} s; log {log}:\n" + log_tail(log))


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `grace_s`."""
    import os
    import signal

    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def stop_listeners(*ports: int, grace_s: float = 20.0) -> None:
    """Stop whatever listens on `ports` (a server the code under test started, or relaunched, has no
    handle here): each listener's process group, SIGTERM then SIGKILL after `grace_s`."""
    for port in ports:
        for _ in range(3):
            roots = procs.listener_roots(port)
            if not roots:
                break
            procs.stop(roots[0], grace_s)
