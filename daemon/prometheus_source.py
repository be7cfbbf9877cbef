"""Read a `source = "prometheus"` target from a PromQL server (Prometheus, VictoriaMetrics, Thanos, Mimir).

The I/O half of `daemon.collectors.promql`: one POST to `<prometheus_url>/api/v1/query` per poll, bounded in
time (the target's `timeout_s`, the whole exchange) and size (`daemon.max_response_bytes`, enforced while
reading), evaluated at the poll's instant. POST because a target's query is a few KiB, past what some proxies
take in a URL. The first poll, and any after the engine's series vanished, asks which engine the selector
matches when the target's `engine` is "auto".
"""

from __future__ import annotations

import asyncio
import time

import httpx

from daemon.collectors import promql
from daemon.collectors.window import WindowResult
from daemon.config import TargetConfig
from daemon.redaction import redact_url


class PromqlReader:
    """One target's reads; the httpx client is the poller's (per-target pool, TLS context shared)."""

    def __init__(self, target: TargetConfig, window_s: float, max_bytes: int) -> None:
        if target.prometheus is None:
            raise ValueError(f"target {target.name} is not read from Prometheus")
        self.target = target
        self.window_s = window_s
        self.max_bytes = max_bytes
        self.selector = target.prometheus.selector
        self.matchers = promql.parse_selector(self.selector)
        self.selector_labels = {m.label for m in self.matchers}
        self.endpoint = f"{target.prometheus.url}/api/v1/query"
        self.engine: str | None = None if target.engine == "auto" else target.engine
        self.info: dict[str, object] = {}

    async def read(self, client: httpx.AsyncClient) -> WindowResult:
        """The target's windowed sample now; PromqlError (with a poll error's `kind`) when there is none."""
        ts = time.time()
        if self.engine is None:
            found = promql.detected_engine(await self._query(client, promql.detect_query(self.matchers), ts))
            if found is None:
                raise promql.PromqlError(
                    "engine",
                    f"Prometheus has no vLLM, SGLang or Triton series matching {self.selector}",
                )
            self.engine = found
        answer = await self._query(client, promql.engine_query(self.engine, self.matchers, self.window_s), ts)
        up = answer.values.get("up")
        if up is None:
            if self.target.engine == "auto":
                self.engine = None  # look again next time: the server may have been replaced
            raise promql.PromqlError(
                "engine",
                f"Prometheus has no series matching {self.selector} (is it scraped?)",
            )
        if up == 0:
            raise promql.PromqlError("refused", f"Prometheus cannot scrape it: up == 0 for {self.selector}")
        self.info = promql.info_from(answer, self.selector_labels)
        return promql.build_result(self.target.name, self.engine, answer, ts, self.window_s)

    async def _query(self, client: httpx.AsyncClient, query: str, ts: float) -> promql.Answer:
        where = redact_url(self.endpoint)
        try:
            async with asyncio.timeout(self.target.timeout_s):
                async with client.stream(
                    "POST", self.endpoint, data={"query": query, "time": f"{ts:.3f}"}
                ) as response:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > self.max_bytes:
                            raise promql.PromqlError(
                                "too_large",
                                f"answer from {where} past {self.max_bytes} bytes (daemon.max_response_bytes)",
                            )
        except TimeoutError:
            raise promql.PromqlError(
                "timeout", f"{where} did not answer within {self.target.timeout_s} s"
            ) from None
        except httpx.ConnectError as exc:
            # "connect", not "refused": Prometheus being away says nothing about the server behind it.
            raise promql.PromqlError("connect", f"cannot reach Prometheus at {where}: {exc}") from None
        except httpx.HTTPError as exc:
            raise promql.PromqlError("error", f"{where}: {type(exc).__name__}: {exc}") from None
        # Prometheus answers a bad query with 400 and a JSON reason, which says more than the status.
        if response.status_code not in (200, 400, 422):
            raise promql.PromqlError("http", f"HTTP {response.status_code} from {where}")
        return promql.parse_answer(bytes(body))
