"""The front of a blue-green vLLM target: an HTTP reverse proxy on the target's URL port, in a process of its own.

Clients reach a target at one URL. For a relaunch without an outage (daemon/actuators/blue_green.py) the
new server starts on the idle one of two backend ports beside the old one, and once it is validated the
front sends every *new request* to it; requests already running finish on the old server, and the
actuator stops the old server only when the front holds no request to it any more. The switch is one
small JSON file the actuator writes (`{"backend": 8102}`); the front reads it when its mtime changes and
then writes its status file (pid, start time, the backend it now uses, requests in flight per backend),
so the actuator knows the switch took and when the old server is drained.

Why HTTP and not bytes: a byte forwarder pins a keep-alive connection to the server it was opened on,
and the only way to move it is to close it, which races a request the client is sending on it at that
moment (measured: 2 of ~400 completions failed with "Server disconnected" during a real switch). Choosing
the backend per request has no such race. Why a process of its own, started in its own session: client
traffic must not depend on the daemon's event loop (a compile or a stall there would delay tokens), nor
stop when the daemon restarts. Responses are streamed through as they arrive (SSE token streams too).

The files' format is daemon/actuators/front_state.py, shared with the actuator.

Run: python -m daemon.front_proxy --listen HOST:PORT --backend-host HOST --state FILE --status FILE
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from daemon.actuators.front_state import MODULE, read_backend, write_json

MAX_IN_FLIGHT = 4096  # beyond this a request is answered 503 at once: a bound, not a queue
CONNECT_TIMEOUT_S = 5.0
MAX_BODY_BYTES = 32 << 20  # an LLM request is kilobytes; a body is held whole to be sent again once
# Shorter than the servers' own keep-alive timeout (uvicorn's 5 s), so the front rarely reuses a
# connection a server is closing; the rare one left is sent again (see `forward`).
KEEPALIVE_EXPIRY_S = 2.0
WATCH_INTERVAL_S = 0.05
# Per connection, not end to end: they are not forwarded (RFC 9110 7.6.1), and `host` is the backend's.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)


def _start_time() -> int | None:
    try:
        with open("/proc/self/stat") as f:
            return int(f.read().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


class Front:
    def __init__(self, backend_host: str, state: Path, status: Path) -> None:
        self.backend_host, self.state, self.status = backend_host, state, status
        self.host_in_url = f"[{backend_host}]" if ":" in backend_host else backend_host
        self.backend: int | None = read_backend(state)
        self.in_flight: dict[int, int] = {}
        # No read timeout: a long generation streams for minutes. No pool limit beyond MAX_IN_FLIGHT.
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_S),
            limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=64, keepalive_expiry=KEEPALIVE_EXPIRY_S
            ),
        )

    def _publish(self) -> None:
        write_json(
            self.status,
            {
                "pid": os.getpid(),
                "start_time": _start_time(),
                "backend": self.backend,
                "in_flight": {str(k): v for k, v in self.in_flight.items() if v},
                "written_at": time.time(),
            },
        )

    async def watch(self) -> None:
        """Follow the state file; publish the status whenever the backend or the requests in flight change
        (the actuator drains the old server by the latter)."""
        seen: int | None = None
        published: object = None
        while True:
            try:
                mtime = self.state.stat().st_mtime_ns
            except OSError:
                mtime = None
            if mtime != seen:
                seen = mtime
                port = read_backend(self.state)
                if port is not None and port != self.backend:
                    self.backend = port
                    print(f"{time.ctime()} new requests go to port {port}", flush=True)
            now = (self.backend, sorted((k, v) for k, v in self.in_flight.items() if v))
            if now != published:
                published = now
                self._publish()
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def forward(self, request: Request) -> Response:
        if self.backend is None:
            return JSONResponse({"error": "charter-tui front: no backend configured yet"}, status_code=503)
        if sum(self.in_flight.values()) >= MAX_IN_FLIGHT:
            return JSONResponse({"error": "charter-tui front: too many requests in flight"}, status_code=503)
        body = await _bounded_body(request)
        if body is None:
            return JSONResponse(
                {"error": f"charter-tui front: request body over {MAX_BODY_BYTES >> 20} MiB"}, status_code=413
            )
        target = request.scope["raw_path"] + (
            b"?" + request.scope["query_string"] if request.scope["query_string"] else b""
        )
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        for attempt in (1, 2):
            port = self.backend  # chosen per request (and per retry): a switch moves the very next one
            assert port is not None
            self.in_flight[port] = self.in_flight.get(port, 0) + 1
            finish = _once(functools.partial(self._done, port))
            try:
                upstream = self.client.build_request(
                    request.method,
                    httpx.URL(f"http://{self.host_in_url}:{port}").copy_with(raw_path=target),
                    headers=headers,
                    content=body,
                )
                reply = await self.client.send(upstream, stream=True)
            except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
                # No response came: the connection was refused, or the server closed a kept-alive one as
                # it was reused (uvicorn closes idle ones after 5 s). Sent once more, body and all.
                finish()
                why = f"the server on port {port} did not answer: {type(exc).__name__}: {str(exc)[:200]}"
                print(
                    f"{time.ctime()} {request.method} {request.url.path[:200]!r} try {attempt}: {why}",
                    flush=True,
                )
                if attempt == 2:
                    return JSONResponse({"error": f"charter-tui front: {why}"}, status_code=502)
                continue
            except httpx.HTTPError as exc:
                finish()
                why = f"the server on port {port} failed: {type(exc).__name__}: {str(exc)[:200]}"
                print(f"{time.ctime()} {request.method} {request.url.path[:200]!r}: {why}", flush=True)
                return JSONResponse({"error": f"charter-tui front: {why}"}, status_code=502)
            except BaseException:
                finish()
                raise
            return StreamingResponse(
                _streamed(reply, finish),
                status_code=reply.status_code,
                headers={k: v for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP},
                background=BackgroundTask(finish),
            )
        raise AssertionError("unreachable")

    def _done(self, port: int) -> None:
        self.in_flight[port] -= 1


def _once(action: Callable[[], None]) -> Callable[[], None]:
    """`action`, run the first time only: a response's end is seen both by its stream and by Starlette."""
    done = False

    def run() -> None:
        nonlocal done
        if not done:
            done = True
            action()

    return run


async def _streamed(reply: httpx.Response, finish: Callable[[], None]) -> AsyncIterator[bytes]:
    try:
        async for chunk in reply.aiter_raw():  # as they arrive: token streams stay streams
            yield chunk
    finally:
        await reply.aclose()
        finish()


async def _bounded_body(request: Request) -> bytes | None:
    """The whole request body (kept to send again if the first try gets no response); None if too big."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        parts.append(chunk)
    return b"".join(parts)


async def serve(listen_host: str, listen_port: int, front: Front) -> None:
    app = Starlette(
        routes=[
            Route(
                "/{path:path}",
                front.forward,
                methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            )
        ]
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=listen_host,
            port=listen_port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            server_header=False,  # the server's own headers pass through; the front adds none
            date_header=False,
        )
    )
    watcher = asyncio.create_task(front.watch())
    print(
        f"{time.ctime()} listening on {listen_host}:{listen_port}, backend port {front.backend}", flush=True
    )
    try:
        await server.serve()  # until SIGTERM/SIGINT, which uvicorn turns into a graceful stop
    finally:
        watcher.cancel()
        await front.client.aclose()
    if not server.started:
        raise OSError(f"cannot listen on {listen_host}:{listen_port}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT the clients use (the target's URL)")
    parser.add_argument("--backend-host", default="127.0.0.1")
    parser.add_argument("--state", required=True, type=Path, help="JSON file naming the backend port")
    parser.add_argument("--status", required=True, type=Path, help="JSON file this front writes")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    try:
        asyncio.run(
            serve(
                host.strip("[]") or "127.0.0.1", int(port), Front(args.backend_host, args.state, args.status)
            )
        )
    except OSError as exc:
        print(f"front: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
