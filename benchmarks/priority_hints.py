"""The tracing client's priority hints, measured on the real vLLM CPU server.

vLLM starts with `--scheduling-policy priority` and a KV cache smaller than the concurrent agents' shared
prefixes together (`--kv-cache-memory-bytes`). Eight report-desk agents (benchmarks/workloads/report_desk.py:
six questions about one report, sent together) run at once through `AsyncTracingOpenAI` with the plan's
warm-ups, alternately without and with `priority_hints=True`; the prefix cache is reset before each run.
The server's own counters give the hit rate and the preemptions; the client's stopwatch the latencies.

    .venv/bin/python benchmarks/priority_hints.py            # writes benchmarks/results/priority_hints.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from benchmarks.doctor_capacity import launched_vllm  # noqa: E402
from compiler.api import compile_source  # noqa: E402
from compiler.model import CompileResult  # noqa: E402

AGENT = REPO / "benchmarks" / "workloads" / "report_desk.py"
RESULT = REPO / "benchmarks" / "results" / "priority_hints.md"
KV_BYTES = 4 << 20  # 1,024 tokens of the kit's tiny model: about three reports' prefixes
WORDS = "revenue margin region quarter cost growth guidance litigation audit segment board cash".split()


def report(seed: int, words: int) -> str:
    rng = random.Random(seed)
    return f"Report {seed}. " + " ".join(rng.choice(WORDS) for _ in range(words)) + "."


def counters(url: str) -> dict[str, float]:
    """The server's prefix-cache and preemption counters (summed over label sets)."""
    want = {
        "vllm:prefix_cache_queries": "queries",
        "vllm:prefix_cache_hits": "hits",
        "vllm:num_preemptions": "preemptions",
    }
    out = dict.fromkeys(want.values(), 0.0)
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removesuffix("_total")
            if name in want:
                out[want[name]] += sample.value
    return out


@dataclass
class Run:
    hints: bool
    wall_s: float
    hit_rate: float
    queries: float
    hits: float
    preemptions: float
    call_mean_s: float
    call_p95_s: float
    cached_share_usage: float


async def one_run(
    url: str, plan: CompileResult, hints: bool, agents: int, stagger_s: float, words: int
) -> Run:
    os.environ.setdefault("OPENAI_API_KEY", "EMPTY")  # the agent builds its own AsyncOpenAI() at import
    import benchmarks.workloads.report_desk as desk
    from executor.tracing import AsyncTracingOpenAI

    httpx.post(f"{url}/reset_prefix_cache", timeout=30).raise_for_status()
    await asyncio.sleep(0.5)
    before = counters(url)
    client = AsyncTracingOpenAI(base_url=f"{url}/v1", api_key="EMPTY", plan=plan, priority_hints=hints)
    desk.client = client  # the agent's own client, swapped: the agent code is unchanged

    async def agent(i: int) -> None:
        await asyncio.sleep(i * stagger_s)
        await desk.answer_all(report(i, words))

    start = time.perf_counter()
    await asyncio.gather(*(agent(i) for i in range(agents)))
    wall = time.perf_counter() - start
    await asyncio.sleep(1.5)  # the engine's stats reach /metrics a moment after the answers
    after = counters(url)
    await client.close()
    calls = [r for r in client.tracer.records if r.kind == "call"]
    errors = [r.error for r in client.tracer.records if r.error]
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, first: {errors[0]}")
    lat = sorted(r.latency_s for r in calls)
    d = {k: after[k] - before[k] for k in after}
    usage = sum(r.cached_tokens or 0 for r in calls) / max(sum(r.prompt_tokens or 0 for r in calls), 1)
    return Run(
        hints=hints,
        wall_s=round(wall, 2),
        hit_rate=round(d["hits"] / d["queries"], 4) if d["queries"] else 0.0,
        queries=d["queries"],
        hits=d["hits"],
        preemptions=d["preemptions"],
        call_mean_s=round(statistics.fmean(lat), 3),
        call_p95_s=round(lat[int(0.95 * (len(lat) - 1))], 3),
        cached_share_usage=round(usage, 4),
    )


def render(runs: list[Run], args: argparse.Namespace, command: str) -> str:
    def mean(hints: bool, field: str) -> float:
        return statistics.fmean(getattr(r, field) for r in runs if r.hints == hints)

    rows = [
        f"| {'on' if r.hints else 'off'} | {r.hit_rate:.1%} | {r.cached_share_usage:.1%} | {r.preemptions:.0f} "
        f"| {r.wall_s:.2f} | {r.call_mean_s:.3f} | {r.call_p95_s:.3f} |"
        for r in runs
    ]
    off, on = mean(False, "hit_rate"), mean(True, "hit_rate")
    return "\n".join(
        [
            "# Priority hints on the real vLLM CPU server",
            "",
            f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} "
            f"({os.cpu_count()} CPUs), with `{command}`.",
            "",
            f"vLLM (the test kit's tiny random-weight model) with `--scheduling-policy priority`, block size 32 and "
            f"`--kv-cache-memory-bytes {args.kv_bytes}`; {args.agents} report-desk agents "
            f"(benchmarks/workloads/report_desk.py, six questions per report of {args.words} words, "
            f"`max_tokens=8`) started {args.stagger_s:g} s apart, through `AsyncTracingOpenAI` with the "
            "plan's warm-ups. Runs alternate without and with `priority_hints=True`; the prefix cache is reset "
            "before each. Hit rate: the server's `prefix_cache_hits / prefix_cache_queries` over the run "
            "(warm-ups included); cached share: the calls' own `usage.prompt_tokens_details.cached_tokens`.",
            "",
            "| hints | server hit rate | calls' cached share | preemptions | wall s | call mean s | call p95 s |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Mean server hit rate: {off:.1%} without hints, {on:.1%} with ({(on - off) * 100:+.1f} points); "
            f"mean wall time {mean(False, 'wall_s'):.2f} s -> {mean(True, 'wall_s'):.2f} s.",
            "",
        ]
    )


async def run_all(args: argparse.Namespace) -> list[Run]:
    plan = compile_source(AGENT.read_text(), str(AGENT))
    if not plan.plan.warmups:
        raise SystemExit("the workload's plan has no warm-up: nothing to group requests by")
    runs = []
    args.workdir.mkdir(parents=True, exist_ok=True)
    extra = ["--scheduling-policy", "priority"]
    with launched_vllm(args.workdir, args.kv_bytes, extra=extra) as (url, _port, _argv, _env):
        await one_run(
            url, plan, False, 2, 0.0, args.words
        )  # first requests compile and allocate: not counted
        for i in range(args.repeats):
            for hints in (False, True) if i % 2 == 0 else (True, False):
                run = await one_run(url, plan, hints, args.agents, args.stagger_s, args.words)
                print(json.dumps(asdict(run)), flush=True)
                runs.append(run)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/charter-priority-hints"))
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--words", type=int, default=60)
    parser.add_argument("--stagger-s", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kv-bytes", type=int, default=KV_BYTES)
    args = parser.parse_args()
    runs = asyncio.run(run_all(args))
    command = "python benchmarks/priority_hints.py " + " ".join(sys.argv[1:])
    RESULT.write_text(render(runs, args, command.strip()))
    RESULT.with_suffix(".json").write_text(json.dumps([asdict(r) for r in runs], indent=1))
    print(f"wrote {RESULT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
