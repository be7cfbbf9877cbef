"""`charter-tui bench AGENT --inputs FILE --target URL`: the agent as written vs with charter-tui's plan.

Compiles the agent (read, never run), binds each input record to its calls, and runs them against a
real server twice on the same inputs: naive (source order, one call at a time, no warm-up) and
optimized (the cache plan: prefill-only warm-ups of shared prefixes, independent calls concurrently,
fan-out siblings after their prefix, restructured prompts where the compiler has a fix). The server's
prefix cache is reset between modes. Prints a summary table, writes a Markdown report with charts
(`--report DIR`) and stores the result for the TUI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from daemon.errors import UserError

_EPILOG = """\
what it measures, per run (one input record): each call's time to first token and latency from the
client, the makespan, and the server's own counters over exactly the run's window (vLLM prefix-cache
hits/queries, prompt tokens, TTFT histogram; Triton request and queue times), with the most hits the
same prompts could get at the server's block size (the ceiling) next to them.

exit status: 0 ok; 2 for a user mistake, an unreachable target or a failed call (the message names
the mode, the run, the call and the input line; runs finished before it are kept and reported).
examples:
  charter-tui bench data/agents/document_processor.py --inputs data/agents/inputs/document_processor.jsonl \\
      --target http://127.0.0.1:8000 --report out/doc
  charter-tui bench agent.py --inputs in.jsonl --target http://127.0.0.1:8000 --mode optimized --runs 3
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "bench",
        help="run an agent's calls against a real server, naive vs with the cache plan, and report",
        description="Benchmark a compiled agent on a real vLLM or Triton server: naive vs optimized, "
        "client timings and the server's own counters, hit share next to the ceiling.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("agent", type=Path, metavar="AGENT", help="the agent's Python file")
    p.add_argument(
        "--inputs",
        type=Path,
        required=True,
        metavar="FILE",
        help="JSON Lines: one object of the agent's input variables per run",
    )
    p.add_argument("--target", required=True, metavar="URL", help="server URL, e.g. http://127.0.0.1:8000")
    p.add_argument(
        "--engine",
        choices=("auto", "vllm", "triton"),
        default="auto",
        help="what the target is (default: ask it)",
    )
    p.add_argument("--model", help="model to use (vLLM: default the first served; Triton: required)")
    p.add_argument("--metrics-url", help="Triton: its metrics URL (e.g. http://127.0.0.1:8002/metrics)")
    p.add_argument("--mode", choices=("naive", "optimized", "both"), default="both")
    p.add_argument(
        "--runs",
        type=int,
        default=1,
        metavar="N",
        help="repeat each mode N times over the inputs (cache reset before each); medians reported",
    )
    p.add_argument("--report", type=Path, metavar="DIR", help="write report.md, charts and result.json here")
    p.add_argument(
        "--max-tokens",
        type=int,
        metavar="N",
        help="cap every call's max_tokens at N (default: each call's own, 16 if it sets none)",
    )
    p.add_argument(
        "--no-fixes",
        action="store_true",
        help="optimized mode keeps the agent's prompts (no restructuring from the plan)",
    )
    p.add_argument(
        "--nocache-target",
        metavar="URL",
        help="a second server of the same model with prefix caching off: one naive pass on it, "
        "to separate what the engine gives by itself from what the plan adds",
    )
    p.add_argument(
        "--timeout", type=float, default=120.0, metavar="S", help="per-call timeout (default 120 s)"
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=32,
        metavar="N",
        help="optimized mode: requests in flight at once (default 32)",
    )
    p.add_argument("--no-store", action="store_true", help="do not write the result to the database")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON instead of the table")
    p.set_defaults(func=run)


class _Progress:
    """A one-line progress bar on a terminal; one line per run otherwise (CI logs stay readable)."""

    def __init__(self) -> None:
        self.stream = sys.stderr  # looked up now, not at import: tests and wrappers replace it
        self.tty = self.stream.isatty()

    def __call__(self, mode: str, done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} runs ({mode})"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done == total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def run(args: argparse.Namespace) -> int:
    if args.runs < 1:
        raise UserError("--runs must be at least 1")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise UserError("--max-tokens must be at least 1")
    if args.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    if not args.agent.is_file():
        raise UserError(f"agent file {args.agent} does not exist")
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from executor.bench import BenchOptions, compile_agent, run_bench
    from executor.binding import BindOptions
    from executor.inputs import load_inputs
    from executor.report import explanation, summary_rows, text_table, write_report
    from executor.runner import RunOptions
    from executor.targets import connect_target

    records = load_inputs(args.inputs)
    source = args.agent.read_text(encoding="utf-8", errors="surrogateescape")
    target = await connect_target(
        args.target, engine=args.engine, model=args.model, metrics_url=args.metrics_url
    )
    nocache = None
    try:
        if args.nocache_target:
            nocache = await connect_target(
                args.nocache_target, engine=target.engine, model=target.model, metrics_url=None
            )
        compiled = await asyncio.to_thread(compile_agent, source, str(args.agent), target, not args.no_fixes)
        modes = ("naive", "optimized") if args.mode == "both" else (args.mode,)
        options = BenchOptions(
            modes=modes,
            rounds=args.runs,
            apply_fixes=not args.no_fixes,
            bind=BindOptions(max_tokens_cap=args.max_tokens),
            run=RunOptions(timeout_s=args.timeout, concurrency=args.concurrency),
            nocache_target=nocache,
            progress=_Progress(),
        )
        result = await run_bench(str(args.agent), compiled, records, target, options, str(args.inputs))
    finally:
        await target.aclose()
        if nocache is not None:
            await nocache.aclose()

    if result.runs:
        if not args.no_store:
            _store(args, result)
        if args.report:
            path = write_report(result, args.report)
            print(f"report: {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), indent=1))
    elif result.runs:
        print(text_table(summary_rows(result)))
        for line in explanation(result):
            print(line)
        for note in result.notes:
            print(f"note: {note}")
    if result.error:
        raise UserError(result.error)
    return 0


def _store(args: argparse.Namespace, result) -> None:  # type: ignore[no-untyped-def]
    from daemon.config import load_config
    from daemon.bench.records import BenchRun
    from daemon.store import Store

    store = Store(load_config(args.config).database_url)
    try:
        store.add_all([BenchRun.from_result(result)])
    finally:
        store.close()
