"""The daemon's HTTP API: what an orchestrator or a chat bot needs, next to MQTT, with the same trust.

FastAPI under uvicorn, on the daemon's own event loop (`HttpApi.run`, a supervised loop), loopback by
default (`[http] host`; put it behind your reverse proxy for anything else). The OpenAPI document is at
`/openapi.json` (and committed as docs/contract/openapi.json).

- Who: `GET /v1/daemon` names this daemon (`[daemon] id`): a command is signed for the topic
  `charter/v1/<that id>/command/<action>` (daemon/auth.py), so it is valid for this daemon alone.
- Reads: `GET /v1/targets`, `/v1/targets/{name}/samples`, `/v1/bottlenecks`, `/v1/recommendations`,
  `/v1/rollouts`, `/v1/rollouts/{id}` — the store's rows as the TUI gets them (URLs, argv and env masked).
- Commands: `POST /v1/commands/{action}` with the signed envelope MQTT takes (daemon/auth.py): verified
  the same way — signature, identity, permitted action and targets, freshness, one-time nonce — and then
  handed to the rollout manager on the bus. A refused one answers 403 with the reason and is audited
  (at the bounded rate MQTT uses); an accepted one answers with the manager's result when it comes within
  `RESULT_WAIT_S` (200), else 202.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from daemon.auth import CommandRefused, CommandVerifier, OnRefused, RefusalAudit
from daemon.bus import Bus
from daemon.config import Config, HttpApiConfig
from daemon.contract import RESULT_TOPIC, CommandAction, CommandResult, command_topic
from daemon.identity import daemon_id
from daemon.models import Bottleneck, Instance, MetricSample, Recommendation, Rollout
from daemon.rollouts.model import TERMINAL_STATES, RolloutState
from daemon.rollouts.repo import RolloutRepo, public_view
from daemon.store import AsyncStore

log = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 64 * 1024  # a signed envelope is a few hundred bytes
MAX_ROWS = 10_000
RESULT_WAIT_S = 10.0
OPEN_STATES = frozenset(RolloutState) - TERMINAL_STATES  # pending, running, paused, failed


def build_app(
    config: Config,
    store: AsyncStore,
    bus: Bus,
    *,
    verifier: CommandVerifier | None,
    on_refused: OnRefused | None,
    configured: Callable[[], Sequence[Instance]],
) -> FastAPI:
    app = FastAPI(
        title="charter-tui daemon",
        version="1",
        description="Reads of the daemon's state and signed rollout commands (see daemon/http_api.py).",
    )
    repo = RolloutRepo(store.store)
    audit = RefusalAudit("HTTP", on_refused)
    names = {t.name for t in config.targets}

    def rows(model: type, *where: Any, limit: int = 200, order: Any = None) -> Any:
        return store.call(store.store.all, model, *where, order_by=order, limit=limit)

    @app.get(
        "/v1/daemon", summary="This daemon's id: commands are signed for charter/v1/<id>/command/<action>"
    )
    async def daemon() -> dict[str, str]:
        return {"id": daemon_id(config.daemon)}

    @app.get("/v1/targets", response_model=list[Instance], summary="The configured targets and their state")
    async def targets() -> list[Instance]:
        stored = {i.name: i for i in await rows(Instance)}
        return [stored.get(i.name, i) for i in configured()]

    @app.get(
        "/v1/targets/{name}/samples",
        response_model=list[MetricSample],
        summary="A target's normalized samples since a time (Unix seconds), oldest first",
    )
    async def samples(
        name: str,
        since: float | None = Query(None, description="default: the last 5 minutes"),
        limit: int = Query(1000, ge=1, le=MAX_ROWS),
    ) -> list[MetricSample]:
        if name not in names:
            raise HTTPException(404, f"no target {name!r} is configured")
        start = since if since is not None else time.time() - 300
        found: list[MetricSample] = await store.call(store.store.samples, name, start)
        return found[:limit]

    @app.get("/v1/bottlenecks", response_model=list[Bottleneck], summary="Bottlenecks, newest first")
    async def bottlenecks(active: bool = Query(True, description="only the open ones")) -> list[Bottleneck]:
        where = [Bottleneck.active == True] if active else []  # noqa: E712 - SQL
        found: list[Bottleneck] = await rows(Bottleneck, *where, order=Bottleneck.started_at.desc())  # type: ignore[attr-defined]
        return [b for b in found if b.instance in names]

    @app.get("/v1/recommendations", response_model=list[Recommendation], summary="Recommendations")
    async def recommendations(status: str | None = Query("OPEN")) -> list[Recommendation]:
        where = [Recommendation.status == status] if status else []
        found: list[Recommendation] = await rows(Recommendation, *where, order=Recommendation.priority)
        return [r for r in found if r.instance in names]

    @app.get("/v1/rollouts", response_model=list[Rollout], summary="Rollouts, newest first")
    async def rollouts(all: bool = Query(False, description="include finished ones")) -> list[Rollout]:
        found = await store.call(repo.list, None if all else OPEN_STATES)
        return [public_view(r) for r in found]

    @app.get("/v1/rollouts/{rollout_id}", response_model=Rollout, summary="One rollout")
    async def rollout(rollout_id: int) -> Rollout:
        found = await store.call(lambda: store.store.all(Rollout, Rollout.id == rollout_id, limit=1))
        if not found:
            raise HTTPException(404, f"no rollout {rollout_id}")
        return public_view(found[0])

    @app.post(
        "/v1/commands/{action}",
        summary="A signed rollout command (the MQTT envelope: identity, ts, nonce, command, sig)",
        responses={
            200: {"description": "the rollout manager's answer (ok, or why it refused)"},
            202: {"description": "accepted; the manager has not answered yet"},
            403: {"description": "refused: unsigned, bad signature, stale, replayed or not permitted"},
            413: {"description": "body too large"},
        },
    )
    async def command(action: CommandAction, request: Request) -> JSONResponse:
        body = await _bounded_body(request)
        bus_topic = command_topic(action)
        try:
            if verifier is None:
                raise CommandRefused(
                    "this daemon has no [auth] identities configured, so it takes no commands"
                )
            authorized = verifier.verify(bus_topic, body)
        except CommandRefused as refused:
            await audit.report(refused, bus_topic)
            return JSONResponse({"refused": refused.reason}, status_code=403)
        request_id = authorized.command.request_id
        results = bus.subscribe(RESULT_TOPIC) if request_id else None
        try:
            bus.publish(authorized.command.topic, authorized)
            if results is None:
                return JSONResponse({"accepted": True}, status_code=202)
            answer = await _result_for(results, request_id)
        finally:
            if results is not None:
                bus.unsubscribe(results)
        if answer is None:
            return JSONResponse({"accepted": True, "request_id": request_id}, status_code=202)
        return JSONResponse(answer.model_dump(mode="json"), status_code=200)

    return app


async def _bounded_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_COMMAND_BYTES:
        raise HTTPException(413, f"a command is at most {MAX_COMMAND_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_COMMAND_BYTES:
            raise HTTPException(413, f"a command is at most {MAX_COMMAND_BYTES} bytes")
    return body


async def _result_for(results: Any, request_id: str | None) -> CommandResult | None:
    deadline = time.monotonic() + RESULT_WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = await asyncio.wait_for(results.get(), left)
        except TimeoutError:
            return None
        payload = event.payload
        if isinstance(payload, CommandResult) and payload.request_id == request_id:
            return payload
    return None


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The daemon (or the TUI) owns SIGINT and SIGTERM; uvicorn would install its own handlers.
        yield


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port; OSError (taken, no such address) for the caller."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class HttpApi:
    """The API server as one of the daemon's supervised loops."""

    def __init__(self, settings: HttpApiConfig, app: FastAPI) -> None:
        self.settings, self.app = settings, app
        self.server: _Server | None = None

    async def run(self, stop: asyncio.Event) -> None:
        config = uvicorn.Config(
            self.app,
            host=self.settings.host,
            port=self.settings.port,
            log_config=None,  # the daemon's own logging (a file), never the terminal the TUI owns
            access_log=False,
            lifespan="off",
            limit_concurrency=64,
            timeout_keep_alive=5,
        )
        # Bound here, not by uvicorn: on a taken port uvicorn logs and calls sys.exit, which must not
        # end the daemon. An OSError here is the supervisor's to log and retry with backoff.
        sock = _bind(self.settings.host, self.settings.port)
        self.server = _Server(config)
        log.info(
            "HTTP API on http://%s:%d (OpenAPI at /openapi.json)", self.settings.host, sock.getsockname()[1]
        )
        serving = asyncio.create_task(self.server.serve(sockets=[sock]), name="charter:http")
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.server.should_exit = True
            stopped.cancel()
            await asyncio.gather(serving, return_exceptions=True)
        if serving.done() and not serving.cancelled() and serving.exception() is not None:
            raise serving.exception()  # type: ignore[misc]
