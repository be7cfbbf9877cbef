"""Synthetic probe requests to a canary, so that refused and failed requests count against it.

A server's own counters see only the requests it accepted: while a relaunched vLLM is down, or when it
hangs, the clients' refused requests appear nowhere in its `error_rate`, and a canary with no traffic
has no `error_rate` at all. With `canary_probes = true` on a target, the rollout manager sends it one
tiny completion (`max_tokens` 1) every `probe_interval_s` while it is a canary, and judges the share
that failed (refused, timed out, an HTTP error, a malformed answer) on the `error_rate` threshold's
absolute floor; a run of `PROBE_FAILURES_TO_STOP` failures in a row stops the canary early.

Off by default: a production target has its own traffic, and synthetic requests show in its users'
logs, dashboards and bills. Only OpenAI-compatible servers (vLLM, SGLang, TGI, llama.cpp) are probed;
a Triton model's inputs are its own, so a Triton target cannot turn probes on (config check).
Results are kept in memory: a daemon restarted mid-canary probes the rest of the window afresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from daemon.config import SignalThreshold, TargetConfig
from daemon.rollouts.model import Comparison
from daemon.supervisor import cancel_and_wait
from daemon.text import clean

log = logging.getLogger(__name__)

PROBE_PROMPT = "charter-tui canary probe"
PROBE_FAILURES_TO_STOP = 3  # in a row: the canary is not serving
MAX_PROBE_RESPONSE_BYTES = 64 * 1024
MAX_RESULTS = 10_000  # per canary: a 5-min window at 2 s is 150


@dataclass(frozen=True)
class ProbeResult:
    ts: float
    ok: bool
    latency_s: float
    error: str | None = None


@dataclass
class _Probing:
    target: str
    task: asyncio.Task[None] | None = None
    results: list[ProbeResult] = field(default_factory=list)
    model: str | None = None


def _model_of(body: Any) -> str | None:
    data = body.get("data") if isinstance(body, dict) else None
    first = data[0] if isinstance(data, list) and data else None
    model = first.get("id") if isinstance(first, dict) else None
    return model if isinstance(model, str) and model else None


async def probe_once(
    client: httpx.AsyncClient, url: str, model: str | None, timeout_s: float
) -> tuple[str | None, ProbeResult]:
    """One probe: the model name (asked of `/v1/models` the first time) and how the completion went."""
    start = time.monotonic()
    now = time.time()

    def failed(why: str) -> tuple[str | None, ProbeResult]:
        return model, ProbeResult(now, False, time.monotonic() - start, clean(why, limit=200))

    try:
        if model is None:
            r = await client.get(f"{url}/v1/models", timeout=timeout_s)
            if r.status_code != 200:
                return failed(f"/v1/models answered HTTP {r.status_code}")
            model = _model_of(r.json())
            if model is None:
                return failed("/v1/models lists no model")
        r = await client.post(
            f"{url}/v1/completions",
            json={"model": model, "prompt": PROBE_PROMPT, "max_tokens": 1, "temperature": 0},
            timeout=timeout_s,
        )
        if len(r.content) > MAX_PROBE_RESPONSE_BYTES:
            return failed(f"answer of {len(r.content)} bytes to a 1-token probe")
        if r.status_code != 200:
            return failed(f"HTTP {r.status_code}")
        body = r.json()
        if not (isinstance(body, dict) and isinstance(body.get("choices"), list) and body["choices"]):
            return failed("an answer without choices")
    except httpx.TimeoutException:
        return failed(f"no answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return failed(f"{type(exc).__name__}: {exc}")
    except ValueError:  # JSON
        return failed("an answer that is not JSON")
    return model, ProbeResult(now, True, time.monotonic() - start)


class CanaryProbes:
    """The probe loops of the canaries being watched, one per rollout."""

    def __init__(self, interval_s: float, timeout_s: float, clock: Callable[[], float] = time.time) -> None:
        self.interval_s, self.timeout_s, self.clock = interval_s, timeout_s, clock
        self._probing: dict[int, _Probing] = {}

    def ensure(self, rollout_id: int, target: TargetConfig) -> None:
        """Probe `target` for `rollout_id` from now on (nothing if it already is, or has probes off)."""
        current = self._probing.get(rollout_id)
        if current is not None and current.target == target.name and current.task and not current.task.done():
            return
        if not target.canary_probes:
            return
        kept = current.results if current is not None and current.target == target.name else []
        probing = _Probing(target=target.name, results=kept)
        probing.task = asyncio.create_task(
            self._loop(probing, target.url), name=f"charter:probe:{target.name}"
        )
        self._probing[rollout_id] = probing

    async def stop(self, rollout_id: int) -> None:
        probing = self._probing.pop(rollout_id, None)
        if probing is not None and probing.task is not None:
            await cancel_and_wait([probing.task])

    async def stop_all_but(self, rollout_ids: set[int]) -> None:
        for rid in [r for r in self._probing if r not in rollout_ids]:
            await self.stop(rid)

    def results(self, rollout_id: int, since: float, until: float | None = None) -> list[ProbeResult]:
        probing = self._probing.get(rollout_id)
        if probing is None:
            return []
        return [r for r in probing.results if r.ts >= since and (until is None or r.ts <= until)]

    async def _loop(self, probing: _Probing, url: str) -> None:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            while True:
                probing.model, result = await probe_once(
                    client, url.rstrip("/"), probing.model, self.timeout_s
                )
                if not result.ok:
                    probing.model = None  # a relaunched server may serve another name: ask again
                probing.results.append(result)
                del probing.results[:-MAX_RESULTS]
                await asyncio.sleep(self.interval_s)


def judge_probes(results: list[ProbeResult], threshold: SignalThreshold, min_samples: int) -> dict[str, Any]:
    """The probes' verdict, in the form of a `Comparison` signal: `fail` when the failed share is over the
    `error_rate` floor on at least `min_samples` probes, `insufficient` with fewer, else `pass`."""
    failed = [r for r in results if not r.ok]
    share = len(failed) / len(results) if results else None
    out: dict[str, Any] = {
        "signal": "probe_error_rate",
        "baseline_n": 0,
        "canary_n": len(results),
        "baseline": 0.0,
        "canary": share,
        "failed": len(failed),
        "max_regression": threshold.max_regression,
        "min_abs_change": threshold.min_abs_change,
        "higher_is_better": False,
    }
    if share is None or len(results) < min_samples:
        return {
            **out,
            "verdict": "insufficient",
            "reason": f"probe_error_rate: {len(results)} probes, need {min_samples}",
        }
    if share > threshold.min_abs_change:
        last = failed[-1].error
        return {
            **out,
            "verdict": "fail",
            "reason": f"synthetic probes: {len(failed)} of {len(results)} failed ({share:.0%}; last: {last})",
        }
    return {**out, "verdict": "pass", "reason": f"synthetic probes: {len(failed)} of {len(results)} failed"}


def with_probes(comparison: Comparison, probes: dict[str, Any]) -> Comparison:
    """`comparison` with the probes' verdict among its signals: a failed probe share fails it; too few
    probes (a daemon restarted late in the window) are reported and decide nothing."""
    signals = [*comparison.signals, probes]
    if probes["verdict"] != "fail":
        return comparison.model_copy(update={"signals": signals})
    failed = [r["reason"] for r in comparison.signals if r.get("verdict") == "fail"]
    summary = "; ".join([probes["reason"], *failed])
    return comparison.model_copy(update={"signals": signals, "verdict": "FAIL", "summary": summary})


def failing_in_a_row(results: list[ProbeResult]) -> list[ProbeResult]:
    """The failures at the end of `results`, newest last."""
    run: list[ProbeResult] = []
    for r in reversed(results):
        if r.ok:
            break
        run.append(r)
    return run[::-1]
