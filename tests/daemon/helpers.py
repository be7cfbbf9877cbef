"""Real local HTTP servers for poller tests: each serves a scripted response per request."""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
VLLM_IDLE = (FIXTURES / "vllm-0.32.0-cpu.prom").read_text()
VLLM_LOAD = (FIXTURES / "vllm-0.32.0-cpu-under-load.prom").read_text()
TRITON = (FIXTURES / "triton-2.51.0-cpu-core.prom").read_text()

# (status, headers, body chunks)
Response = tuple[int, dict[str, str], Iterable[bytes]]
Responder = Callable[[int, str], Response]


def set_counter(text: str, name: str, value: float) -> str:
    """Rewrite every series of sample `name` to `value` (keeps labels): a scripted server state."""
    pattern = re.compile(rf"^({re.escape(name)}(?:\{{[^}}]*\}})?) \S+$", re.M)
    return pattern.sub(lambda m: f"{m.group(1)} {value}", text)


def text_response(body: str, status: int = 200) -> Response:
    data = body.encode()
    return status, {"Content-Type": "text/plain; version=0.0.4", "Content-Length": str(len(data))}, [data]


class MetricsServer:
    """A threaded HTTP server on 127.0.0.1 whose every response comes from `responder(n, path)`."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.requests = 0
        self.release = threading.Event()  # lets hanging handlers go at teardown
        self.posted: list[bytes] = []  # POST bodies, in order
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.requests += 1
                status, headers, chunks = outer.responder(outer.requests, self.path)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    for chunk in chunks:
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the poller hung up on purpose (size cap, timeout)

            def do_POST(self) -> None:  # noqa: N802 - a PromQL query: its form is read (and kept), then answered alike
                outer.posted.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> MetricsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (bind, read the port, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def replaying(body: str = VLLM_IDLE) -> MetricsServer:
    """A server answering every scrape with one recorded exposition (a replayed target)."""
    return MetricsServer(lambda _n, _path: text_response(body))


def daemon_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `charter-tui daemon` process of its own: its XDG dirs under `home` (so its lock,
    state and log are its own, as on another box), no CHARTER_TUI_* from this process, discovery off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_TUI_")}
    return env | {
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "CHARTER_TUI_DISCOVER": "0",
        **extra,
    }
