"""`charter-tui doctor TARGET --agent FILE --inputs FILE`: why the target's hit rate is what it is.

The waterfall of `daemon/doctor.py` for one configured target over a window of its stored samples: the
compiler's estimate for the agent's traffic (`executor/estimate.py`, the inputs a sample of real
requests) as the ceiling, then capacity (the estimate's working set against the server's KV size from
`vllm:cache_config_info`), restarts, routing (one target: one replica) and eviction or the unexplained
rest, down to the hit rate the server's own counters delivered. Below it, and alone when neither an
agent nor a trace is given, what the cache saved over the window (`daemon/savings.py`).
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
from daemon.doctor import HEADROOM, capacity_change
from daemon.errors import UserError
from daemon.savings import Savings, savings

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_WINDOW_S = 30 * 86400.0


def window(text: str) -> float:
    """`90s`, `5m`, `1h`, `2d`: seconds, up to 30 days (what the store keeps at most)."""
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit() or len(number) > 7:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 5m, 1h or 2d")
    seconds = int(number) * _UNITS[unit]
    if not 0 < seconds <= MAX_WINDOW_S:
        raise argparse.ArgumentTypeError(f"{text!r}: a window is 1s to 30d")
    return seconds


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "doctor",
        help="explain a target's prefix-cache hit rate: ceiling -> capacity -> restarts -> ... -> delivered",
        description="From the agent's ceiling for its traffic (--agent, --inputs) to the hit rate the target "
        "delivered over the window, each lost point with its evidence and the lever that recovers it; and what "
        "the prefix cache saved there, in prefill tokens, prefill seconds and (with the target's "
        "price_per_million_prompt_tokens) money per hour. With only TARGET: the savings alone.",
    )
    p.add_argument("target", help="a configured target's name")
    p.add_argument("--agent", type=Path, metavar="FILE", help="the agent file sending the traffic")
    p.add_argument(
        "--inputs", type=Path, metavar="FILE", help="a sample of its real inputs (JSONL, as bench takes)"
    )
    p.add_argument(
        "--trace",
        type=Path,
        metavar="FILE",
        help="a traced run (client.tracer.save(FILE)): predicted vs delivered cached tokens per request, "
        "each miss with its reason",
    )
    p.add_argument(
        "--mode",
        choices=("optimized", "naive"),
        default="optimized",
        help="how the traffic was sent: through charter-tui's plan (optimized, the default) or as the agent is "
        "written (naive: source order, one call at a time); decides the order the cache saw",
    )
    p.add_argument(
        "--window",
        default="1h",
        metavar="DURATION",
        help="how far back to look: 90s, 5m, 1h, 2d (default 1h)",
    )
    p.add_argument(
        "--propose",
        action="store_true",
        help="when capacity costs points, propose the KV-cache change as a rollout (approve it as any other)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.agent is None) != (args.inputs is None):
        raise UserError("--agent and --inputs go together: the ceiling is the agent's, for those inputs")
    loaded = load_config(args.config)
    names = [t.name for t in loaded.config.targets]
    if args.target not in names:
        raise UserError(f"no target {args.target!r} in the config (configured: {', '.join(names) or 'none'})")
    target = next(t for t in loaded.config.targets if t.name == args.target)
    report: dict[str, Any] = {"target": args.target}
    if args.agent is not None:
        report.update(_waterfall(args, loaded, target))
    elif args.trace is None:
        report.update(_saved_only(args, loaded, target))
    if args.trace is not None:
        from charter_tui.commands import doctor_trace

        checked = asyncio.run(doctor_trace.check_trace(target.url, args.trace))
        if args.json:
            report["trace"] = doctor_trace.as_json(checked)
        else:
            print("\n".join(doctor_trace.render(checked, target.price_per_million_prompt_tokens)))
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


def _waterfall(args: argparse.Namespace, loaded: Any, target: Any) -> dict[str, Any]:
    """Prints the waterfall (or returns it, with --json)."""
    from daemon.doctor import DoctorInputs, waterfall
    from executor.inputs import load_inputs

    records = load_inputs(args.inputs)
    samples, since = _samples(args, loaded)
    rows = _instance(loaded, args.target)
    if not samples:
        raise UserError(f"{args.target}: no samples in the last {args.window}; is the daemon polling it?")
    saved = savings(samples, since, target.price_per_million_prompt_tokens)
    cache = (rows[0].info or {}).get("cache_config", {}) if rows else {}
    block_size = _int(cache.get("block_size")) or 16
    with_queries = [s for s in samples if s.prefix_queries]
    kv = [s.kv_cache_usage for s in samples if s.kv_cache_usage is not None]
    running = [s.running for s in samples if s.running is not None and s.running > 0]
    concurrency = sum(running) / len(running) if running else None
    capacity = _int(cache.get("kv_cache_size_tokens"))
    beside = max(0.0, (concurrency or 1.0) - 1.0)
    estimate = _estimate(args, target, block_size, records)
    held = estimate.held_tokens(beside)
    needed = estimate.capacity_for(beside) + held if capacity else None
    inputs = DoctorInputs(
        ceiling=estimate.estimate,
        ceiling_source=f"the compiler's estimate for {estimate.requests} request(s) of {args.agent.name} "
        f"from {args.inputs.name} at block size {block_size}",
        hits=sum(s.prefix_hits or 0.0 for s in with_queries),
        queries=sum(s.prefix_queries or 0.0 for s in with_queries),
        kv_capacity_tokens=capacity,
        working_set_tokens=estimate.working_set_tokens or None,
        order_estimate=estimate.replay(None),
        capacity_estimate=estimate.replay(capacity, beside) if capacity else None,
        bounded_cache_tokens=max(0, capacity - held) if capacity else None,
        needed_tokens=needed,
        concurrency=concurrency,
        queries_after_reset=sum(s.prefix_queries or 0.0 for s in with_queries if s.counter_reset),
        resets=sum(1 for s in samples if s.counter_reset),
        kv_full_share=sum(1 for v in kv if v >= 0.95) / len(kv) if kv else None,
        preemptions=sum(s.preemptions or 0.0 for s in samples),
    )
    result = waterfall(inputs)
    lost = next((s.points for s in result.steps if s.name == "capacity"), 0.0)
    change = capacity_change(cache, needed) if needed and lost > 0 else None
    overridden = _overridden(target, change)
    if overridden and args.propose:
        raise UserError(f"{args.target}: not proposed: {overridden}")
    proposal = _propose(args, loaded, change, lost) if args.propose and change else None
    if args.propose and change is None:
        print(f"{args.target}: nothing to propose: capacity costs no points here", file=sys.stderr)
    if args.json:
        return {
            "window": args.window,
            "steps": [vars(s) for s in result.steps],
            "change": None
            if change is None
            else {"param": change[0], "value": change[1], "basis": change[2], "overridden": overridden},
            "proposed": proposal,
            "saved": saved_json(saved),
        }
    print(f"{args.target}: prefix-cache hits over the last {args.window} ({len(samples)} samples)")
    for step in result.steps:
        label = step.name if step.name in ("ceiling", "delivered") else f"- {step.name}"
        value = f"{step.points:5.1f}%" if step.name in ("ceiling", "delivered") else f"{step.points:5.1f} pt"
        mark = " (inferred)" if step.inferred and step.name not in ("ceiling", "delivered") else ""
        print(f"  {label:<14} {value}  {step.evidence}{mark}")
        if step.lever and step.points > 0:
            print(f"  {'':<14}          lever: {step.lever}")
    if change is not None:
        param, setting, basis = change
        print(f"  change: {param} = {setting} ({basis}, {HEADROOM:.0%} of the replay's need)")
        if overridden:
            print(f"    but {overridden}")
        print(
            f"    {'proposed as rollout ' + str(proposal) if proposal else 'propose it with'}: charter-tui "
            + (f"rollouts approve {proposal}" if proposal else f"doctor {args.target} ... --propose")
        )
    for note in estimate.assumptions[:2]:
        print(f"  modelled: {note}")
    for line in saved_lines(saved):
        print(f"  {line}")
    return {}


def _saved_only(args: argparse.Namespace, loaded: Any, target: Any) -> dict[str, Any]:
    """With no agent and no trace: what the target's prefix cache saved over the window."""
    samples, since = _samples(args, loaded)
    if not samples:
        raise UserError(
            f"{args.target}: no samples in the last {args.window}; is the daemon polling it? "
            "(--agent FILE --inputs FILE explain its hit rate, --trace FILE a traced run)"
        )
    saved = savings(samples, since, target.price_per_million_prompt_tokens)
    if args.json:
        return {"window": args.window, "saved": saved_json(saved)}
    print(f"{args.target}: what the prefix cache saved over the last {args.window} ({len(samples)} samples)")
    for line in saved_lines(saved):
        print(f"  {line}")
    print(f"  why the hit rate is what it is: charter-tui doctor {args.target} --agent FILE --inputs FILE")
    return {}


def _instance(loaded: Any, name: str) -> list[Any]:
    from daemon.models import Instance
    from daemon.store import Store

    store = Store(loaded.database_url, readonly=True)
    try:
        return store.all(Instance, Instance.name == name)
    finally:
        store.close()


def _samples(args: argparse.Namespace, loaded: Any) -> tuple[list[Any], float]:
    from daemon.store import NoDatabaseYet, Store

    try:
        store = Store(loaded.database_url, readonly=True)
    except NoDatabaseYet as exc:
        raise UserError(str(exc)) from None
    try:
        since = time.time() - _window_s(args.window)
        return store.samples(args.target, since), since
    finally:
        store.close()


def saved_json(saved: Savings) -> dict[str, Any]:
    return {
        "span_s": saved.span_s,
        "cached_tokens": saved.cached_tokens,
        "queried_tokens": saved.queried_tokens,
        "cached_tokens_per_hour": saved.per_hour(saved.cached_tokens),
        "prefill_s_per_token": saved.prefill_s_per_token,
        "prefill_seconds_saved_per_hour": saved.per_hour(saved.prefill_seconds_saved),
        "price_per_million_prompt_tokens": saved.price_per_million,
        "money_saved_per_hour": saved.per_hour(saved.money_saved),
    }


def saved_lines(saved: Savings) -> list[str]:
    """The savings as a reader budgets them; each figure says what it is measured from."""
    if saved.queried_tokens <= 0 or saved.span_s <= 0:
        return ["saved: no prompt tokens reached the cache in this window"]
    share = saved.cached_tokens / saved.queried_tokens
    lines = [
        f"saved: {saved.per_hour(saved.cached_tokens):,.0f} prefill tokens/h from the cache "
        f"({share:.1%} of {saved.per_hour(saved.queried_tokens):,.0f} prompt tokens/h, "
        f"measured over {_span(saved.span_s)})"
    ]
    per_token, seconds = saved.prefill_s_per_token, saved.per_hour(saved.prefill_seconds_saved)
    if per_token is not None and seconds is not None:
        lines.append(
            f"       {seconds:,.1f} prefill request-seconds/h at the server's {per_token * 1e3:.3g} ms per "
            "computed token (requests prefilled together each count their time: an upper bound on GPU-seconds)"
        )
    else:
        lines.append("       prefill seconds: this engine exports no per-request prefill time")
    money = saved.per_hour(saved.money_saved)
    if money is not None:
        lines.append(f"       {money:,.4g}/h at {saved.price_per_million:g} per million prompt tokens")
    else:
        lines.append("       money: set price_per_million_prompt_tokens on the target to see it")
    return lines


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _propose(args: argparse.Namespace, loaded: Any, change: tuple[str, Any, str], lost: float) -> int:
    """The capacity change as a pending rollout: the same gate as any other (approval, canary,
    validation, rollback)."""
    from daemon.auth import local_identity
    from daemon.rollouts import commands as cmd
    from daemon.rollouts.repo import RolloutRepo
    from daemon.store import Store

    if loaded.config.daemon.readonly:
        raise UserError("read-only: --propose is refused")
    param, value, basis = change
    repo = RolloutRepo(Store(loaded.database_url))
    try:
        row = cmd.propose(
            repo,
            loaded.config,
            targets=[args.target],
            changes=[{"param": param, "value": str(value)}],
            actor=local_identity(),
            reason=f"cache doctor: capacity costs {lost:.1f} points of the prefix-cache hit rate ({basis})",
            title=f"KV cache for {args.agent.name}: {param} = {value}",
        )
    finally:
        repo.store.close()
    assert row.id is not None
    return row.id


CPU_KV_ENV = "VLLM_CPU_KVCACHE_SPACE"


def _overridden(target: Any, change: tuple[str, Any, str] | None) -> str | None:
    """Why the change would not take effect, when the launch says so: vLLM's CPU backend applies its
    legacy VLLM_CPU_KVCACHE_SPACE (whole GiB) over --kv-cache-memory-bytes (vLLM 0.32, platforms/cpu.py)."""
    env = (target.launch.env or {}) if target.launch is not None else {}
    if change is not None and change[0] == "kv_cache_memory_bytes" and env.get(CPU_KV_ENV):
        return (
            f"the launch env sets {CPU_KV_ENV}={env[CPU_KV_ENV]}, which vLLM's CPU backend applies over "
            f"--kv-cache-memory-bytes: remove it from [targets.launch.env] first"
        )
    return None


def _window_s(text: str) -> float:
    try:
        return window(text)
    except argparse.ArgumentTypeError as exc:
        raise UserError(f"--window: {exc}") from None


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
            return await estimate_traffic(
                result,
                records,
                block_size=block_size,
                mode=args.mode,
                via=via,
            )
        finally:
            if via is not None:
                await via.aclose()

    try:
        return asyncio.run(go())
    except BindingError as exc:
        raise UserError(f"{args.inputs}: {exc}") from None
