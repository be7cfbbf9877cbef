"""The benchmark report: a summary table for the terminal, and a Markdown page with SVG charts.

Charts (one file each, linked from `report.md`): per-call TTFT naive vs optimized, measured hit share
next to the block-level ceiling for each mode, and the makespan of every run. `result.json` beside
them holds everything measured, so a chart can always be redrawn or checked.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from daemon.bench.records import BenchResult, Mode, warm_beyond_ceiling
from executor.svg import bar_chart


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def summary_rows(result: BenchResult) -> list[list[str]]:
    rows = [
        [
            "mode",
            "runs",
            "makespan (median)",
            "speed-up",
            "hit share",
            "ceiling",
            "of ceiling",
            "TTFT (median)",
            "latency (median)",
        ]
    ]
    naive = result.summary("naive") if result.runs_of("naive") else None
    for mode in result.modes():
        s = result.summary(mode)
        speedup = (
            naive.makespan_median_s / s.makespan_median_s
            if naive and s.makespan_median_s and mode != "naive"
            else None
        )
        # With prefix caching off the server looks nothing up: there is no hit share to show, and
        # the ceiling of a cache that does not exist means nothing.
        off = mode == "naive-nocache"
        rows.append(
            [
                mode,
                str(s.runs),
                secs(s.makespan_median_s),
                "-" if speedup is None else f"{speedup:.2f}x",
                "caching off" if off else pct(s.hit_share),
                "-" if off else pct(s.ceiling_share),
                "-" if off else _of_ceiling(s.of_ceiling),
                secs(s.ttft_median_s),
                secs(s.latency_median_s),
            ]
        )
    return rows


def _of_ceiling(share: float | None) -> str:
    return "over (warm)" if warm_beyond_ceiling(share) else pct(share)


def time_to_first_token_share(result: BenchResult, mode: Mode) -> float | None:
    """Of the calls' time in `mode`, the share spent before the first token (queueing and prefill): the
    only part a prefix cache can shorten. The rest is decoding, which `max_tokens` sets."""
    calls = [c for r in result.runs_of(mode) for c in r.calls if c.ttft_s is not None and c.latency_s > 0]
    total = sum(c.latency_s for c in calls)
    return sum(c.ttft_s or 0.0 for c in calls) / total if total else None


def explanation(result: BenchResult) -> list[str]:
    """Why the speed-up is what it is, in one line per compared mode."""
    before = time_to_first_token_share(result, "naive") if result.runs_of("naive") else None
    out = []
    for mode in result.modes():
        if mode in ("naive", "naive-nocache"):
            continue
        after = time_to_first_token_share(result, mode)
        if before is None or after is None:
            continue
        out.append(
            f"time to first token (queueing + prefill, what the cache can shorten): {before:.0%} of call time "
            f"naive, {after:.0%} {mode}; the rest is decoding, which caching leaves as it is"
            + (" (a decode-bound run: expect a small speed-up)" if before < 0.5 else "")
        )
    return out


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def _call_ttft(result: BenchResult, mode: Mode) -> dict[str, float]:
    by_call: dict[str, list[float]] = {}
    for run in result.runs_of(mode):
        for c in run.agent_calls:
            value = c.ttft_s if c.ttft_s is not None else c.latency_s
            by_call.setdefault(c.call_id, []).append(value)
    return {k: statistics.median(v) for k, v in by_call.items()}


def charts(result: BenchResult) -> dict[str, str]:
    out: dict[str, str] = {}
    modes = result.modes()
    ttft = {m: _call_ttft(result, m) for m in modes}
    calls = sorted({c for m in modes for c in ttft[m]}, key=lambda c: (len(c), c))
    if calls:
        streamed = all(c.ttft_s is not None for r in result.runs for c in r.agent_calls)
        title = "Time to first token per call (median over runs)" + (
            "" if streamed else ", latency where not streamed"
        )
        out["ttft.svg"] = bar_chart(title, calls, {m: [ttft[m].get(c) for c in calls] for m in modes}, " s")
    cached_modes = [m for m in modes if m != "naive-nocache"]
    out["hit_share.svg"] = bar_chart(
        "Prefix-cache hit share: measured vs block-level ceiling",
        list(cached_modes),
        {
            "measured (server counters)": [result.summary(m).hit_share for m in cached_modes],
            "ceiling (same prompts)": [result.summary(m).ceiling_share for m in cached_modes],
        },
        percent=True,
    )
    runs = sorted({(r.round, r.run) for r in result.runs})
    labels = [f"r{rnd}/{run}" if len({x[0] for x in runs}) > 1 else f"run {run}" for rnd, run in runs]
    series: dict[str, list[float | None]] = {}
    for m in modes:
        by = {(r.round, r.run): r.makespan_s for r in result.runs_of(m)}
        series[m] = [by.get(k) for k in runs]
    out["makespan.svg"] = bar_chart("Makespan per run", labels, series, " s")
    return out


def markdown(result: BenchResult, chart_dir: str = ".") -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(result.started_at))
    lines = [
        f"# Benchmark: `{result.agent}`",
        "",
        f"- target: {result.target} ({result.engine}, model `{result.model}`, block size {result.block_size})",
        f"- inputs: `{result.inputs}`; started {when}",
        f"- compiler's one-request figure (cold cache, assumed sizes): {pct(result.compiler_ceiling)}"
        + (
            f" (after its fixes: {pct(result.compiler_ceiling_after_fixes)})"
            if result.compiler_ceiling_after_fixes is not None
            else ""
        ),
        f"- compiler's estimate for this traffic (optimized plan, these inputs): {pct(result.traffic_estimate)}"
        f" at block size {result.block_size}, ceiling {pct(result.traffic_ceiling)} at token level"
        + (f"; modelled: {'; '.join(result.traffic_assumptions[:2])}" if result.traffic_assumptions else ""),
        f"- restructurings applied in optimized mode: {', '.join(result.fixes_applied) or 'none'}",
        f"- prefill-only warm-ups sent: {result.warmups}",
        "",
    ]
    if result.error:
        lines += [f"**Stopped:** {result.error} (the runs finished before it are below)", ""]
    lines += [
        "## Summary",
        "",
        markdown_table(summary_rows(result)),
        "",
        "Hit share = the server's `prefix_cache_hits / prefix_cache_queries` over each run's window; "
        "ceiling = the most hits the prompts that run sent could get at the server's block size "
        "(full blocks only, first miss ends the match, last token recomputed) on the server's own "
        "token ids.",
        "",
        *[f"- {line}" for line in explanation(result)],
        "",
    ]
    for name in charts(result):
        lines += [f"![{name[:-4]}]({chart_dir}/{name})", ""]
    lines += waterfall_section(result)
    lines += [
        "## Runs",
        "",
        "| mode | round | run | input line | makespan | requests | hits / queries | "
        "ceiling | client cached |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result.runs:
        srv = r.server
        hq = (
            f"{srv.prefix_hits:.0f} / {srv.prefix_queries:.0f}"
            if srv and srv.prefix_queries is not None
            else "-"
        )
        ceil = f"{r.ceiling.cached_tokens} / {r.ceiling.prompt_tokens}" if r.ceiling else "-"
        cc = r.client_cached_tokens()
        lines.append(
            f"| {r.mode} | {r.round} | {r.run} | {r.input_line} | {secs(r.makespan_s)} | {len(r.calls)} | "
            f"{hq} | {ceil} | {'-' if cc is None else cc} |"
        )
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def waterfall_section(result: BenchResult) -> list[str]:
    """The cache doctor's steps per mode: where the points between the estimate and the delivered hit
    share went (daemon/doctor.py); every step's evidence, the inferred ones marked."""
    if not result.waterfalls:
        return []
    lines = ["## Where the hits went (cache doctor)", ""]
    for mode, steps in result.waterfalls.items():
        lines += [f"### {mode}", "", "| step | points | evidence |", "|---|---|---|"]
        for s in steps:
            level = s.name in ("ceiling", "delivered")
            value = f"{s.points:.1f}%" if level else f"-{s.points:.1f} pt"
            mark = " (inferred)" if s.inferred and not level else ""
            lever = f" Lever: {s.lever}." if s.lever and s.points > 0 else ""
            lines.append(f"| {s.name} | {value} | {s.evidence}{mark}.{lever} |")
        lines.append("")
    return lines


def write_report(result: BenchResult, directory: str | Path) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for name, svg in charts(result).items():
        (d / name).write_text(svg, encoding="utf-8")
    (d / "result.json").write_text(result.model_dump_json(indent=1), encoding="utf-8")
    path = d / "report.md"
    path.write_text(markdown(result), encoding="utf-8")
    return path
