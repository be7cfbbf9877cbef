"""`charter-tui doctor TARGET --agent FILE --inputs FILE`: why the target's hit rate is what it is.

The waterfall of `daemon/doctor.py` for one configured target over a window of its stored samples: the
compiler's estimate for the agent's traffic (`executor/estimate.py`, the inputs a sample of real
requests) as the ceiling, then capacity (the estimate's working set against the server's KV size from
`vllm:cache_config_info`), restarts, routing (one target: one replica) and eviction or the unexplained
rest, down to the hit rate the server's own counters delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from daemon.config import load_config
from daemon.errors import UserError

WINDOWS = {"5m": 300.0, "15m": 900.0, "1h": 3600.0, "6h": 21600.0, "24h": 86400.0}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "doctor",
        help="explain a target's prefix-cache hit rate: ceiling -> capacity -> restarts -> ... -> delivered",
        description="From the agent's ceiling for its traffic (--agent, --inputs) to the hit rate the target "
        "delivered over the window, each lost point with its evidence and the lever that recovers it.",
    )
    p.add_argument("target", help="a configured target's name")
    p.add_argument(
        "--agent", type=Path, required=True, metavar="FILE", help="the agent file sending the traffic"
    )
    p.add_argument(
        "--inputs",
        type=Path,
        required=True,
        metavar="FILE",
        help="a sample of its real inputs (JSONL, as bench takes)",
    )
    p.add_argument("--window", choices=tuple(WINDOWS), default="1h", help="how far back to look (default 1h)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from daemon.doctor import DoctorInputs, waterfall
    from daemon.models import Instance
    from daemon.store import NoDatabaseYet, Store
    from executor.inputs import load_inputs

    loaded = load_config(args.config)
    names = [t.name for t in loaded.config.targets]
    if args.target not in names:
        raise UserError(f"no target {args.target!r} in the config (configured: {', '.join(names) or 'none'})")
    records = load_inputs(args.inputs)
    try:
        store = Store(loaded.database_url, readonly=True)
    except NoDatabaseYet as exc:
        raise UserError(str(exc)) from None
    try:
        since = time.time() - WINDOWS[args.window]
        samples = store.samples(args.target, since)
        rows = store.all(Instance, Instance.name == args.target)
    finally:
        store.close()
    if not samples:
        raise UserError(f"{args.target}: no samples in the last {args.window}; is the daemon polling it?")
    cache = (rows[0].info or {}).get("cache_config", {}) if rows else {}
    block_size = _int(cache.get("block_size")) or 16
    target = next(t for t in loaded.config.targets if t.name == args.target)
    estimate = _estimate(args, target, block_size, records)
    with_queries = [s for s in samples if s.prefix_queries]
    kv = [s.kv_cache_usage for s in samples if s.kv_cache_usage is not None]
    running = [s.running for s in samples if s.running is not None]
    inputs = DoctorInputs(
        ceiling=estimate.estimate,
        ceiling_source=f"the compiler's estimate for {estimate.requests} request(s) of {args.agent.name} "
        f"from {args.inputs.name} at block size {block_size}",
        hits=sum(s.prefix_hits or 0.0 for s in with_queries),
        queries=sum(s.prefix_queries or 0.0 for s in with_queries),
        kv_capacity_tokens=_int(cache.get("kv_cache_size_tokens")),
        working_set_tokens=estimate.working_set_tokens or None,
        concurrency=sum(running) / len(running) if running else None,
        queries_after_reset=sum(s.prefix_queries or 0.0 for s in with_queries if s.counter_reset),
        resets=sum(1 for s in samples if s.counter_reset),
        kv_full_share=sum(1 for v in kv if v >= 0.95) / len(kv) if kv else None,
        preemptions=sum(s.preemptions or 0.0 for s in samples),
    )
    result = waterfall(inputs)
    if args.json:
        print(
            json.dumps(
                {"target": args.target, "window": args.window, "steps": [vars(s) for s in result.steps]},
                indent=2,
            )
        )
        return 0
    print(f"{args.target}: prefix-cache hits over the last {args.window} ({len(samples)} samples)")
    for step in result.steps:
        label = step.name if step.name in ("ceiling", "delivered") else f"- {step.name}"
        value = f"{step.points:5.1f}%" if step.name in ("ceiling", "delivered") else f"{step.points:5.1f} pt"
        mark = " (inferred)" if step.inferred and step.name not in ("ceiling", "delivered") else ""
        print(f"  {label:<14} {value}  {step.evidence}{mark}")
        if step.lever and step.points > 0:
            print(f"  {'':<14}          lever: {step.lever}")
    for note in estimate.assumptions[:2]:
        print(f"  modelled: {note}")
    return 0


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _estimate(args: argparse.Namespace, target: Any, block_size: int, records: list[Any]) -> Any:
    from charter_tui.commands.compile_cmd import Projects
    from compiler.api import CompileOptions
    from compiler.errors import CompileError
    from compiler.model import MAX_SOURCE_BYTES
    from daemon.watcher import compile_file
    from executor.errors import BindingError, TargetDown
    from executor.estimate import estimate_traffic
    from executor.targets import connect_target

    try:
        result = compile_file(
            args.agent, CompileOptions(), None, MAX_SOURCE_BYTES, Projects(True).project_for(args.agent)
        )
    except CompileError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{args.agent}: cannot read: {exc.strerror or exc}") from None

    async def go() -> Any:
        via = None
        try:
            via = await connect_target(target.url)
        except TargetDown:
            print(f"{target.name}: not answering; tokens estimated, not counted", file=sys.stderr)
        try:
            return await estimate_traffic(result, records, block_size=block_size, via=via)
        finally:
            if via is not None:
                await via.aclose()

    try:
        return asyncio.run(go())
    except BindingError as exc:
        raise UserError(f"{args.inputs}: {exc}") from None
