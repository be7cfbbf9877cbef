"""`charter-tui probe URL`: what a user runs first when a target looks wrong.

Polls the endpoint twice, `--interval` seconds apart, through the daemon's own poller (same
timeouts, size cap, parser, collectors and windowing), and prints the detected engine, the health
and readiness checks, the normalized sample with its windowed rates, and the bottlenecks the
analysis would raise on it. Exit 0 when both polls succeeded, 1 when the target could not be read,
2 (one line on stderr) when the arguments are unusable: the URLs pass the config's own rule
(`check_http_url`), and both times are finite and capped so that a probe always ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from typing import Any

from daemon.analysis import Analyzer
from daemon.collectors import ENGINES
from daemon.collectors.window import WindowResult
from pydantic import ValidationError

from daemon.config import Config, DaemonConfig, TargetConfig, check_http_url, describe_validation_error
from daemon.errors import UserError
from daemon.health import HealthView, check_health
from daemon.models import SIGNAL_FIELDS
from daemon.poller import Poller, TargetStatus

# Which backend a vLLM runs decides what it accepts (the CPU one refuses 16-token KV blocks); its metrics do
# not say, so the poller reads it from the local server process (daemon/poller.py `read_platform`).
PLATFORM_TEXT = {
    "cpu": "cpu (vLLM's CPU backend, read from the local server process)",
    "gpu": "gpu (vLLM's CUDA/ROCm backend, read from the local server process)",
    "unknown": "unknown (not a local process charter-tui can read: settings only a GPU backend takes are not offered)",
}
MAX_TIMEOUT_S = 300.0
MAX_INTERVAL_S = 3600.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="poll one inference server twice and show engine, health and its normalized metrics",
        description="Poll URL's /metrics twice, INTERVAL seconds apart, and print the detected engine, "
        "health/readiness, and the normalized sample with rates and percentiles over that window.",
    )
    p.add_argument("url", help="the server's base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--engine", choices=("auto", *ENGINES), default="auto", help="skip auto-detection")
    p.add_argument(
        "--interval", type=float, default=5.0, metavar="S", help="seconds between the two polls (default 5)"
    )
    p.add_argument("--metrics-url", help="where /metrics is served when not at URL (Triton: :8002/metrics)")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="Triton model to check readiness and config of (repeatable)",
    )
    p.add_argument("--timeout", type=float, default=5.0, metavar="S", help="per-request timeout (default 5)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


async def probe(target: TargetConfig, interval_s: float) -> dict[str, Any]:
    config = Config(daemon=DaemonConfig(poll_interval_s=max(interval_s, 0.01)), targets=[target])
    results: list[WindowResult] = []
    poller = Poller(config, None, on_sample=lambda _name, res: results.append(res))
    first_ok = await poller.poll_target(target)
    await asyncio.sleep(interval_s)
    second_ok = await poller.poll_target(target)
    status: TargetStatus = poller.status[target.name]
    engine = status.engine or target.engine
    try:
        health: HealthView = await check_health(poller.client_for(target.name), target, engine)
        await poller.read_platform(target, status)
    finally:
        await poller.aclose()
    sample = results[-1] if results else None
    bottlenecks = []
    if sample is not None and second_ok:
        analyzer = Analyzer(Config())
        bottlenecks = [
            e.bottleneck.model_dump(mode="json", exclude={"id"})
            for e in analyzer.observe(sample.sample, sample.extras)
        ]
    return {
        "url": target.url,
        "engine": status.engine,
        "state": status.state.value,
        "reason": status.reason,
        "polls_ok": [first_ok, second_ok],
        "health": health.model_dump(mode="json"),
        "sample": sample.sample.model_dump(mode="json", exclude={"id"}) if sample else None,
        "extras": sample.extras if sample else {},
        "server_config": {
            k: v
            for k, v in status.info.items()
            if k in ("cache_config", "models", "backend", "tokens_per_block", "model_configs", "platform")
        },
        "bottlenecks": bottlenecks,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(report: dict[str, Any]) -> str:
    lines = [
        f"target   {report['url']}",
        f"engine   {report['engine'] or 'not detected'}",
        f"state    {report['state']}" + (f"  ({report['reason']})" if report["reason"] else ""),
    ]
    if report.get("hint"):
        lines.append(f"hint     {report['hint']}")
    health = report["health"]
    lines.append("health")
    for check in health["checks"]:
        mark = "ok  " if check["ok"] else "FAIL"
        extra = f"  {check['detail']}" if check["detail"] else ""
        lines.append(f"  {mark} {check['path']}{extra}")
    if health.get("version"):
        lines.append(f"  version {health['version']}")
    if health.get("models"):
        lines.append(f"  models  {', '.join(health['models'])}")
    sample = report["sample"]
    if sample:
        lines.append(
            f"sample   (window {_fmt(sample['window_s'])} s"
            + (", COUNTER RESET: the server restarted" if sample["counter_reset"] else "")
            + ")"
        )
        for name in SIGNAL_FIELDS:
            if sample.get(name) is not None:
                lines.append(f"  {name:<26} {_fmt(sample[name])}")
        for name, value in sorted(report["extras"].items()):
            lines.append(f"  {name:<26} {_fmt(value)}")
        missing = [n for n in SIGNAL_FIELDS if sample.get(n) is None]
        if missing:
            lines.append(f"  not exported / no traffic: {', '.join(missing)}")
    cache = report["server_config"].get("cache_config")
    if cache:
        keys = (
            "enable_prefix_caching",
            "block_size",
            "gpu_memory_utilization",
            "cache_dtype",
            "num_gpu_blocks",
        )
        lines.append("server   " + ", ".join(f"{k}={cache[k]}" for k in keys if k in cache))
    platform = report["server_config"].get("platform")
    if platform:
        lines.append(f"platform {PLATFORM_TEXT.get(platform, platform)}")
    for b in report["bottlenecks"]:
        lines.append(f"BOTTLENECK {b['kind']} [{b['severity']}]: {b['summary']}")
    return "\n".join(lines)


def _seconds(name: str, value: float, low: float, high: float, low_open: bool) -> None:
    below = value <= low if low_open else value < low
    if not math.isfinite(value) or below or value > high:
        bracket = "(" if low_open else "["
        raise UserError(
            f"probe: {name} must be a finite number of seconds in {bracket}{low:g}, {high:g}], got {value!r}"
        )


def run(args: argparse.Namespace) -> int:
    _seconds("--interval", args.interval, 0, MAX_INTERVAL_S, low_open=False)
    _seconds("--timeout", args.timeout, 0, MAX_TIMEOUT_S, low_open=True)
    for name, url in (("URL", args.url), ("--metrics-url", args.metrics_url)):
        if url is None:
            continue
        try:
            check_http_url(url)
        except ValueError as exc:
            raise UserError(f"probe: {name}: {exc}") from None
    try:
        target = TargetConfig(
            name="probe",
            url=args.url,
            engine=args.engine,
            metrics_url=args.metrics_url,
            models=args.model,
            timeout_s=args.timeout,
        )
    except ValidationError as exc:
        key, reason = describe_validation_error(exc)
        raise UserError(f"probe: {key}: {reason}") from None
    started = time.time()
    report = asyncio.run(probe(target, args.interval))
    report["took_s"] = round(time.time() - started, 3)
    if not any(report["polls_ok"]) and "404" in (report["reason"] or "") and not target.metrics_url:
        from daemon.discovery import triton_metrics_for

        metrics = asyncio.run(triton_metrics_for(target.url))
        if metrics is not None:  # the API port of a Triton, whose metrics live on their own port
            report["hint"] = (
                f"this is Triton's HTTP API port; its metrics are at {metrics}: add --metrics-url {metrics}"
            )
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0 if all(report["polls_ok"]) else 1
