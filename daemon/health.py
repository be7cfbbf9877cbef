"""Health and readiness of one target, beyond its `/metrics`: what a user checks when a target looks wrong.

- vLLM: `GET /health` (200 = engine alive), `/v1/models` (served model names), `/version`.
- Triton: `/v2/health/live`, `/v2/health/ready`, and per configured model `/v2/models/<m>/ready` and
  `/v2/models/<m>/config` (the model's configuration JSON: its `parameters`, `max_batch_size`,
  `dynamic_batching`, `instance_group` are the "current values" the optimizer needs).
- SGLang / TGI / llama.cpp: `/health` plus the OpenAI-compatible `/v1/models` where served.

Every request is bounded by the target's timeout and the response-size cap (`fetch_capped`), and
the whole check by a deadline, so a sick server costs at most that much. Every string taken from a
response (version, model names, error bodies, model configs) goes through `daemon.text.clean` before
it is kept: it will be shown on a terminal. Pure data out
(`HealthView`), no storage: the poller keeps the latest view with the instance.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, Field

from daemon.config import TargetConfig
from daemon.fetch import FetchError
from daemon.text import clean, clean_json


async def fetch_capped(
    client: httpx.AsyncClient, url: str, timeout_s: float, max_bytes: int
) -> tuple[int, bytes]:
    """GET `url`, streaming, and stop reading past `max_bytes`; the whole exchange is bounded by
    `timeout_s` (httpx's own timeouts are per read, so a server trickling bytes would evade them)."""
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("GET", url, timeout=timeout_s) as resp:
                declared = resp.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError(
                        "too_large", f"response declares {int(declared)} bytes, over the {max_bytes}-byte cap"
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_raw():
                    size += len(chunk)
                    if size > max_bytes:
                        # Leaving the `stream` context closes the connection: the rest is never read.
                        raise FetchError("too_large", f"response exceeded the {max_bytes}-byte cap")
                    chunks.append(chunk)
                return resp.status_code, b"".join(chunks)
    except FetchError:
        raise
    except TimeoutError:
        raise FetchError("timeout", f"no complete response within {timeout_s:g}s") from None
    except httpx.ConnectError as exc:
        refused = _find_cause(exc, ConnectionRefusedError)
        if refused is not None:
            raise FetchError("refused", f"connection refused ({url})") from None
        raise FetchError("connect", f"cannot connect to {url}: {_find_cause(exc, OSError) or exc}") from None
    except httpx.TimeoutException:
        raise FetchError("timeout", f"no complete response within {timeout_s:g}s") from None
    except httpx.HTTPError as exc:
        raise FetchError("error", f"{type(exc).__name__}: {exc}") from None


def _find_cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """httpx wraps the socket error two levels deep; find it to tell "refused" from "unreachable"."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, kind) and cur is not exc:
            return cur
        cur, seen = cur.__cause__ or cur.__context__, seen + 1
    return None


class Check(BaseModel):
    path: str
    ok: bool
    status: int | None = None
    detail: str = ""
    latency_ms: float | None = None


class HealthView(BaseModel):
    checked_at: float = Field(default_factory=time.time)
    live: bool | None = None
    ready: bool | None = None
    version: str | None = None
    models: list[str] = []
    model_ready: dict[str, bool] = {}
    model_configs: dict[str, dict[str, Any]] = {}
    checks: list[Check] = []

    def summary(self) -> str:
        failed = [c.path for c in self.checks if not c.ok]
        return "ok" if not failed else "failing: " + ", ".join(failed)


async def _get(
    client: httpx.AsyncClient, base: str, path: str, timeout_s: float, max_bytes: int
) -> tuple[Check, Any]:
    started = time.perf_counter()
    try:
        status, body = await fetch_capped(client, base + path, timeout_s, max_bytes)
    except FetchError as exc:
        return Check(path=path, ok=False, detail=str(exc)), None
    check = Check(
        path=path,
        ok=200 <= status < 300,
        status=status,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    payload: Any = None
    if body:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            payload = body[:200].decode("utf-8", "replace")
    if not check.ok:
        # The body is the server's text: it reaches the terminal, so it is cleaned here, at the edge.
        check.detail = clean(f"HTTP {status}: {str(payload)[:200]}")
    return check, payload


def _openai_models(payload: Any) -> list[str]:
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        return [clean(m.get("id")) for m in payload["data"][:64] if isinstance(m, dict) and m.get("id")]
    return []


async def check_health(
    client: httpx.AsyncClient,
    target: TargetConfig,
    engine: str,
    max_bytes: int = 1 << 20,
) -> HealthView:
    """Run the engine's health/readiness requests concurrently; never raises for a sick server."""
    view = HealthView()
    base, timeout = target.url, target.timeout_s
    if engine == "triton":
        paths = ["/v2/health/live", "/v2/health/ready"]
        for m in target.models:
            paths += [f"/v2/models/{quote(m, safe='')}/ready", f"/v2/models/{quote(m, safe='')}/config"]
    elif engine == "vllm":
        paths = ["/health", "/v1/models", "/version"]
    elif engine in ("sglang", "tgi", "llamacpp"):
        paths = ["/health", "/v1/models"]
    else:
        paths = ["/health"]
    results = await asyncio.gather(*(_get(client, base, p, timeout, max_bytes) for p in paths))
    for (check, payload), path in zip(results, paths):
        view.checks.append(check)
        if path in ("/health", "/v2/health/live"):
            view.live = check.ok
        if path in ("/health", "/v2/health/ready"):
            view.ready = check.ok
        elif path == "/v1/models" and check.ok:
            view.models = _openai_models(payload)
        elif path == "/version" and check.ok and isinstance(payload, dict):
            view.version = clean(payload.get("version"))
        elif path.startswith("/v2/models/"):
            model = path.split("/")[3]
            if path.endswith("/ready"):
                view.model_ready[model] = check.ok
            elif check.ok and isinstance(payload, dict):
                view.model_configs[model] = clean_json(payload)
    if engine == "triton":
        view.models = list(target.models)
    return view
