"""The benchmark: compile an agent, bind it to each input record, run naive and optimized, compare.

Order of work, and why:
- compile with the target's own tokenizer (`/tokenize`) so the compiler's figures are counted, not
  estimated; when the plan has restructurings (DYNAMIC_PREFIX, MISPLACED_SHARED_CONTEXT fixes) and
  they are accepted, the optimized mode runs the *fixed* source's prompts (the compiler's own codemod,
  applied in memory; the agent file is never written);
- each round runs every mode over all inputs, resetting the server's prefix cache before each mode so
  neither inherits the other's cache (rounds alternate naive/optimized, so drift hits both alike);
- runs within a mode share the cache, as consecutive requests to a real agent would;
- before anything is sent, the compiler's estimate for this very traffic (`executor.estimate`: the
  optimized plan's prompts for these records, outputs modelled), so the report sets it beside what
  the server then measures;
- a failure stops the benchmark with the error naming mode, run, call and input line, and every run
  finished before it is kept in the result (and so in the store and the report).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from compiler.model import CompileResult
from daemon.errors import UserError
from executor.binding import Binder, BindOptions
from executor.ceiling import CeilingTracker
from executor.errors import BindingError, ExecutionError
from executor.estimate import TrafficEstimate, estimate_traffic
from executor.inputs import InputRecord
from daemon.bench.records import BenchResult, Mode, WaterfallStep
from executor.runner import RunOptions, run_workload
from executor.targets import Target

Progress = Callable[[str, int, int], None]  # (mode, runs done, runs total)


@dataclass
class BenchOptions:
    modes: tuple[Mode, ...] = ("naive", "optimized")
    rounds: int = 1
    apply_fixes: bool = True
    bind: BindOptions = field(default_factory=BindOptions)
    run: RunOptions = field(default_factory=RunOptions)
    nocache_target: Target | None = None  # a server with prefix caching off: one naive pass on it
    # One unmeasured pass of the first record in each mode before measuring: the first batches of a
    # new shape are slow on a fresh server (allocator, kernels), which would be charged to one mode.
    server_warmup: bool = True
    progress: Progress | None = None


@dataclass
class Compiled:
    naive: CompileResult
    optimized: CompileResult
    fixes_applied: list[str]


class TokenCounter:
    """A synchronous counter over a vLLM target's `/tokenize` (the compiler is synchronous); literal
    text only, so without special tokens. Close it when the compile is done."""

    def __init__(self, target: Target) -> None:
        self.model = target.model
        self.client = httpx.Client(base_url=target.url, timeout=10.0)

    def __call__(self, text: str) -> int:
        response = self.client.post(
            "/tokenize", json={"model": self.model, "prompt": text, "add_special_tokens": False}
        )
        response.raise_for_status()
        return int(response.json()["count"])

    def close(self) -> None:
        self.client.close()


def compile_agent(source: str, path: str, target: Target | None, apply_fixes: bool) -> Compiled:
    from compiler.api import compile_source, fixed_source
    from compiler.errors import CompileError

    counter = TokenCounter(target) if target is not None and target.engine == "vllm" else None
    try:
        result = compile_source(source, path, token_counter=counter)
        if not result.calls:
            raise UserError(f"{path}: the compiler found no LLM calls; nothing to benchmark")
        optimized, applied = result, []
        if apply_fixes and result.fixes:
            new_source, _ = fixed_source(source, path, token_counter=counter)
            if new_source != source:
                optimized = compile_source(new_source, path, token_counter=counter)
                applied = [f"{f.pattern.value} ({', '.join(f.calls)})" for f in result.fixes if f.diff]
    except CompileError as exc:
        raise UserError(str(exc)) from None
    finally:
        if counter is not None:
            counter.close()
    return Compiled(result, optimized, applied)


def compiler_ceiling(result: CompileResult, block_size: int | None) -> tuple[float | None, float | None]:
    """The compiler's estimated hit share at the block size nearest the target's."""
    shares = [b for b in result.plan.block_shares if b.engine in ("vllm", "trtllm")]
    if not shares or block_size is None:
        return None, None
    best = min(shares, key=lambda b: abs(b.block_size - block_size))
    return best.hit_share, best.hit_share_after_fixes


async def run_bench(
    agent: str,
    compiled: Compiled,
    records: list[InputRecord],
    target: Target,
    options: BenchOptions,
    inputs_name: str = "",
) -> BenchResult:
    result = BenchResult(
        agent=agent,
        inputs=inputs_name,
        target=target.url,
        engine=target.engine,
        model=target.model,
        block_size=target.block_size,
        fixes_applied=compiled.fixes_applied,
    )
    result.compiler_ceiling, result.compiler_ceiling_after_fixes = compiler_ceiling(
        compiled.naive, target.block_size
    )
    estimates: dict[Mode, TrafficEstimate] = {}
    programs: list[tuple[Mode, CompileResult]] = [
        ("optimized", compiled.optimized),
        ("naive", compiled.naive),
    ]
    if target.block_size:
        try:
            for mode, program in programs:
                if mode == "naive" and mode not in options.modes:
                    continue
                estimates[mode] = await estimate_traffic(
                    program,
                    records,
                    block_size=target.block_size,
                    mode=mode,
                    bind=options.bind,
                    via=target if target.engine == "vllm" else None,
                )
        except BindingError as exc:
            result.notes.append(f"no estimate for this traffic: {exc}")
        if "optimized" in estimates:
            estimate = estimates["optimized"]
            result.traffic_estimate, result.traffic_ceiling = estimate.estimate, estimate.ceiling
            result.traffic_assumptions = estimate.assumptions
    binders = {
        "naive": Binder(compiled.naive, options.bind),
        "optimized": Binder(compiled.optimized, options.bind),
    }
    run_options = RunOptions(
        timeout_s=options.run.timeout_s, concurrency=options.run.concurrency, inputs_name=inputs_name
    )
    plan: list[tuple[int, Mode, Target]] = []
    for r in range(options.rounds):
        for mode in options.modes:
            if mode == "naive-nocache":
                continue
            plan.append((r, mode, target))
    if options.nocache_target is not None:
        plan.append((0, "naive-nocache", options.nocache_target))
    total = len(plan) * len(records)
    finished = 0
    try:
        if options.server_warmup:
            for mode in [m for m in options.modes if m != "naive-nocache"]:
                binder = binders["optimized" if mode == "optimized" else "naive"]
                try:
                    workload = binder.bind(records[0], 0)
                except BindingError as exc:
                    raise ExecutionError(
                        str(exc),
                        mode=mode,
                        run=0,
                        call=exc.call,
                        input_line=records[0].line,
                        inputs=inputs_name,
                    ) from None
                await run_workload(target, workload, mode, run_options)
        for round_no, mode, tgt in plan:
            if not await tgt.reset_prefix_cache():
                note = (
                    f"{tgt.url}: the prefix cache could not be reset before the {mode} runs "
                    "(vLLM needs VLLM_SERVER_DEV_MODE=1; Triton has no reset): they may start warm"
                )
                if note not in result.notes:
                    result.notes.append(note)
            binder = binders["optimized" if mode == "optimized" else "naive"]
            tracker = CeilingTracker(tgt.block_size) if tgt.block_size else None
            for i, record in enumerate(records):
                try:
                    workload = binder.bind(record, i)
                except BindingError as exc:
                    raise ExecutionError(
                        str(exc), mode=mode, run=i, call=exc.call, input_line=record.line, inputs=inputs_name
                    ) from None
                for note in workload.notes:
                    if note not in result.notes:
                        result.notes.append(note)
                run = await run_workload(tgt, workload, mode, run_options, round_no, tracker)
                result.runs.append(run)
                finished += 1
                if options.progress:
                    options.progress(mode, finished, total)
    except (ExecutionError, UserError) as exc:
        result.error = str(exc)
    except asyncio.CancelledError:
        result.error = "interrupted"
        raise
    finally:
        result.warmups = sum(1 for r in result.runs for c in r.calls if c.kind == "warmup")
        result.finished_at = time.time()
    result.waterfalls = waterfalls(result, estimates, getattr(target, "cache_config", {}) or {})
    return result


def waterfalls(
    result: BenchResult, estimates: dict[Mode, TrafficEstimate], cache_config: dict[str, str]
) -> dict[str, list[WaterfallStep]]:
    """The cache doctor's waterfall for each mode that ran, from that mode's estimate down to the hit
    share the server delivered over its runs (each run starts on a reset cache, as the estimate does;
    one target, so no routing step; runs one request at a time are replayed as such)."""
    from daemon.doctor import DoctorInputs, waterfall

    size = cache_config.get("kv_cache_size_tokens", "")
    capacity = int(size) if size.isdigit() else None
    out: dict[str, list[WaterfallStep]] = {}
    for mode, estimate in estimates.items():
        windows = [r.server for r in result.runs_of(mode) if r.server and r.server.prefix_queries]
        if not windows:
            continue
        steps = waterfall(
            DoctorInputs(
                ceiling=estimate.estimate,
                ceiling_source=f"the estimate for the {mode} traffic of {estimate.requests} record(s)",
                hits=sum(w.prefix_hits or 0.0 for w in windows),
                queries=sum(w.prefix_queries or 0.0 for w in windows),
                kv_capacity_tokens=capacity,
                working_set_tokens=estimate.working_set_tokens or None,
                order_estimate=estimate.replay(None),
                capacity_estimate=estimate.replay(capacity) if capacity else None,
                needed_tokens=estimate.capacity_for() if capacity else None,
            )
        ).steps
        out[mode] = [
            WaterfallStep(
                name=s.name, points=s.points, evidence=s.evidence, inferred=s.inferred, lever=s.lever
            )
            for s in steps
        ]
    return out
