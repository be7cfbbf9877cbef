"""Find the inference servers on this machine, so `charter-tui` with no targets configured shows them.

As vllm-htop and llmtop do: every TCP port listening on this box (loopback or all interfaces) is
asked for `/metrics`; a port whose exposition an engine collector recognises (`detect_engine`) is a
server. Triton serves its metrics on their own port: the process's other listening ports (psutil
names the owner where the OS lets it), else every other found port, are asked for `/v2` (Triton's metadata),
and the one that answers is the target's URL, its metrics port the `metrics_url`.

Bounded: at most `MAX_PORTS` ports, `CONCURRENCY` at a time, each request `timeout_s` and
`max_bytes`, the whole search `deadline_s`. Ports that speak something else than HTTP are never
asked (SSH, SMTP, DNS, MQTT, databases, our own exporter), so a search sends no junk to them.
Nothing found is written anywhere: `charter-tui discover --write` adds what was found to the config.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import httpx
import psutil

from daemon.collectors import detect_engine
from daemon.config import Engine, TargetConfig
from daemon.fetch import FetchError
from daemon.health import fetch_capped
from daemon.prom import ExpositionError, parse
from daemon.supervisor import cancel_and_wait

log = logging.getLogger(__name__)

MAX_PORTS = 256
CONCURRENCY = 32
# Ports whose protocol is not HTTP: an HTTP request would only fill their logs with errors.
NOT_HTTP = frozenset(
    {22, 25, 53, 111, 389, 443, 631, 636, 1883, 3306, 5432, 5672, 6379, 8883, 9092, 11211, 25672, 27017}
)


@dataclass(frozen=True)
class Listening:
    host: str  # where to connect: the bound address, 127.0.0.1 / ::1 for a wildcard bind
    port: int
    pid: int | None


@dataclass(frozen=True)
class Found:
    engine: str
    url: str
    metrics_url: str | None = None  # set when /metrics is on another port than the API (Triton)

    @property
    def name(self) -> str:
        port = self.url.rsplit(":", 1)[-1].rstrip("/")
        return f"{self.engine}-{port}"


def listening_ports(exclude: Iterable[int] = ()) -> list[Listening]:
    """TCP ports listening on this machine that a local client can reach, lowest first."""
    skip = NOT_HTTP | set(exclude)
    out: dict[tuple[str, int], Listening] = {}
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError) as exc:  # some kernels or sandboxes refuse the listing
        log.warning("discovery: cannot list listening ports: %s", exc)
        return []
    for conn in conns:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port in skip:
            continue
        address = ipaddress.ip_address(conn.laddr.ip.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # `::ffff:127.0.0.1`: an IPv4 socket on a dual-stack bind
        if address.is_unspecified:
            host = "::1" if address.version == 6 else "127.0.0.1"
        else:
            host = str(address)
        key = (host, conn.laddr.port)
        out.setdefault(key, Listening(host, conn.laddr.port, conn.pid))
    # One entry per port: a server bound on both stacks is asked once, over IPv4.
    by_port: dict[int, Listening] = {}
    for item in sorted(out.values(), key=lambda i: (i.port, ":" in i.host)):
        by_port.setdefault(item.port, item)
    return list(by_port.values())[:MAX_PORTS]


def _base(item: Listening) -> str:
    host = f"[{item.host}]" if ":" in item.host else item.host
    return f"http://{host}:{item.port}"


async def _engine_at(
    client: httpx.AsyncClient, item: Listening, timeout_s: float, max_bytes: int
) -> str | None:
    try:
        status, body = await fetch_capped(client, _base(item) + "/metrics", timeout_s, max_bytes)
    except FetchError:
        return None
    if status != 200:
        return None
    try:
        return detect_engine(parse(body.decode("utf-8", errors="replace")))
    except ExpositionError:
        return None


async def _answers_triton_api(client: httpx.AsyncClient, item: Listening, timeout_s: float) -> bool:
    """Whether the port serves Triton's API: `GET /v2` is its server metadata, `{"name": "triton", ...}`
    (a 200 alone proves nothing: some servers answer 200 to any path)."""
    with contextlib.suppress(FetchError, ValueError):
        status, body = await fetch_capped(client, _base(item) + "/v2", timeout_s, 64 * 1024)
        meta = json.loads(body) if status == 200 else None
        return isinstance(meta, dict) and meta.get("name") == "triton"
    return False


async def discover(
    *,
    exclude_ports: Iterable[int] = (),
    timeout_s: float = 1.0,
    deadline_s: float = 5.0,
    max_bytes: int = 8 * 1024 * 1024,
) -> list[Found]:
    """The inference servers listening on this machine, by engine and URL.

    Ports still unanswered at `deadline_s` are left out (and logged), never waited for: what was found
    by then is the answer.
    """
    ports = listening_ports(exclude_ports)
    gate = asyncio.Semaphore(CONCURRENCY)
    engines: dict[Listening, str | None] = {}
    deadline = time.monotonic() + deadline_s
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:

        async def ask(item: Listening) -> None:
            async with gate:
                engines[item] = await _engine_at(client, item, timeout_s, max_bytes)

        tasks = [asyncio.create_task(ask(p)) for p in ports]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=deadline_s)
            if pending:
                log.warning(
                    "discovery: %d of %d ports did not answer within %.0f s",
                    len(pending),
                    len(ports),
                    deadline_s,
                )
            await cancel_and_wait(pending)
        found = [Found(e, _base(p)) for p, e in engines.items() if e is not None and e != "triton"]
        metrics_ports = sorted((p for p, e in engines.items() if e == "triton"), key=lambda p: p.port)
        # Triton's API port answers `/v2` with its metadata: ask every other port once, together, then match.
        api_ports: list[Listening] = []
        if metrics_ports:
            others = [p for p in ports if engines.get(p) is None]

            async def live(item: Listening) -> None:
                async with gate:
                    if await _answers_triton_api(client, item, timeout_s):
                        api_ports.append(item)

            tasks = [asyncio.create_task(live(p)) for p in others]
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
                await cancel_and_wait(pending)
        apis: dict[Listening, Listening] = {}
        # Two passes: every metrics port's own process first, so a guess for a process whose ports the
        # OS hides cannot take another server's API port; then the lowest port still unclaimed.
        for same_process in (True, False):
            for metrics in metrics_ports:
                claimed = set(apis.values())
                api = min(
                    (
                        p
                        for p in api_ports
                        if p not in claimed
                        and metrics not in apis
                        and (not same_process or (metrics.pid is not None and p.pid == metrics.pid))
                    ),
                    key=lambda p: p.port,
                    default=None,
                )
                if api is not None:
                    apis[metrics] = api
        for metrics in metrics_ports:
            api = apis.get(metrics)
            # No API port answered (another user's process, a metrics-only exporter): the metrics alone.
            found.append(
                Found("triton", _base(api), _base(metrics) + "/metrics")
                if api
                else Found("triton", _base(metrics))
            )
    return sorted(found, key=lambda f: f.url)


_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def target_name(found: Found, taken: set[str]) -> str:
    """A config-safe target name (`vllm-8000`), made unique against `taken`."""
    base = _NAME.sub("-", found.name)
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def found_targets(found: Iterable[Found], taken: Iterable[str] = ()) -> list[TargetConfig]:
    """Target configs for what was found, named `<engine>-<port>` and unique against `taken`."""
    names = set(taken)
    out: list[TargetConfig] = []
    for f in found:
        name = target_name(f, names)
        names.add(name)
        engine = cast(Engine, f.engine)  # detect_engine returns one of COLLECTORS, all of them Engine values
        out.append(TargetConfig(name=name, url=f.url, engine=engine, metrics_url=f.metrics_url))
    return out


async def triton_metrics_for(api_url: str, timeout_s: float = 1.0) -> str | None:
    """When `api_url` is a local Triton's HTTP API port, the URL of its `/metrics` (served on a port of
    its own, 8002 by default): the same process's listening port whose metrics are Triton's. For `probe`,
    which otherwise reports only "404" on the API port."""
    parts = httpx.URL(api_url)
    ports = listening_ports()
    api = next((p for p in ports if p.port == parts.port), None)
    if api is None:
        return None
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        if not await _answers_triton_api(client, api, timeout_s):
            return None
        siblings = [p for p in ports if p is not api and api.pid is not None and p.pid == api.pid]
        engines = await asyncio.gather(*(_engine_at(client, p, timeout_s, 8 * 1024 * 1024) for p in siblings))
    found = next((p for p, e in zip(siblings, engines, strict=True) if e == "triton"), None)
    return _base(found) + "/metrics" if found is not None else None
