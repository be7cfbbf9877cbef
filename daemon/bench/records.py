"""Benchmark results: typed models (what the report and `--json` show) and the `bench_run` table.

A `BenchResult` holds every run of every mode with each call's client-side timings and the server's
own counters over the run's window. It is stored whole, as JSON, in one `bench_run` row (so the TUI's
Cache screen can show the latest comparison for an agent), next to a few indexed summary columns.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import JSON, Column
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

Mode = Literal["naive", "optimized", "naive-nocache"]
MODES: tuple[Mode, ...] = ("naive", "optimized", "naive-nocache")


def warm_beyond_ceiling(of_ceiling: float | None) -> bool:
    """Whether a run hit more than it could reuse of itself: its cache was warm before it (the server's
    could not be reset). Then no share of the ceiling is shown (a new user saw "537.5%")."""
    return of_ceiling is not None and of_ceiling > 1.0 + 1e-9


class CallRecord(BaseModel):
    """One request sent in a run: an agent call's execution, or a prefill-only warm-up."""

    execution: str = Field(description="`c2`, `c2#3` (4th iteration) or `warmup:c2`")
    call_id: str
    kind: Literal["call", "warmup"] = "call"
    prompt_chars: int
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = Field(
        default=None, description="from the response's usage, when the server says"
    )
    sent_s: float = Field(description="seconds from the run's start to sending it")
    ttft_s: float | None = Field(default=None, description="first streamed token (None when not streamed)")
    latency_s: float
    output_chars: int = 0


class ServerWindow(BaseModel):
    """Differences of the server's counters between the start and the end of one run."""

    engine: str
    requests: float | None = None
    prompt_tokens: float | None = None
    generation_tokens: float | None = None
    prefix_queries: float | None = None
    prefix_hits: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    ttft_mean_s: float | None = None
    queue_mean_s: float | None = None
    e2e_mean_s: float | None = None
    compute_mean_s: float | None = None

    @property
    def hit_share(self) -> float | None:
        if not self.prefix_queries or self.prefix_hits is None:
            return None
        return self.prefix_hits / self.prefix_queries


class Ceiling(BaseModel):
    """The most prefix-cache hits the prompts sent in a run could get at the engine's block size."""

    block_size: int
    prompt_tokens: int
    cached_tokens: int

    @property
    def hit_share(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


class RunResult(BaseModel):
    mode: Mode
    round: int = 0
    run: int = Field(description="index of the input record in the file")
    input_line: int
    makespan_s: float
    calls: list[CallRecord] = Field(default_factory=list)
    server: ServerWindow | None = None
    ceiling: Ceiling | None = None

    @property
    def agent_calls(self) -> list[CallRecord]:
        return [c for c in self.calls if c.kind == "call"]

    def client_cached_tokens(self) -> int | None:
        values = [c.cached_tokens for c in self.calls]
        return (
            None if not values or any(v is None for v in values) else sum(v for v in values if v is not None)
        )

    def client_prompt_tokens(self) -> int | None:
        values = [c.prompt_tokens for c in self.calls]
        return (
            None if not values or any(v is None for v in values) else sum(v for v in values if v is not None)
        )

    @property
    def hit_share(self) -> float | None:
        """Measured share of prompt tokens served from the prefix cache: the server's counters when
        it exports them, else the responses' `cached_tokens`."""
        if self.server is not None and self.server.hit_share is not None:
            return self.server.hit_share
        cached, prompt = self.client_cached_tokens(), self.client_prompt_tokens()
        return cached / prompt if cached is not None and prompt else None


class ModeSummary(BaseModel):
    mode: Mode
    runs: int
    makespan_median_s: float
    makespan_total_s: float
    hit_share: float | None = Field(description="Σ hits / Σ queries over all runs (server counters)")
    ceiling_share: float | None
    ttft_median_s: float | None = Field(description="client TTFT of agent calls (not warm-ups), median")
    latency_median_s: float | None
    prompt_tokens: float | None
    cached_tokens: float | None

    @property
    def of_ceiling(self) -> float | None:
        if self.hit_share is None or not self.ceiling_share:
            return None
        return self.hit_share / self.ceiling_share


def summarize(mode: Mode, runs: list[RunResult]) -> ModeSummary:
    makespans = [r.makespan_s for r in runs]
    queries = [r.server.prefix_queries for r in runs if r.server and r.server.prefix_queries is not None]
    hits = [r.server.prefix_hits for r in runs if r.server and r.server.prefix_hits is not None]
    prompt: float | None
    cached: float | None
    if queries and len(queries) == len(runs) and len(hits) == len(runs):
        prompt, cached = float(sum(queries)), float(sum(hits))
    else:  # no server counters (e.g. Triton without TRT-LLM): fall back to the responses' usage
        cp = [r.client_prompt_tokens() for r in runs]
        cc = [r.client_cached_tokens() for r in runs]
        ok = all(v is not None for v in cp + cc)
        prompt = float(sum(v for v in cp if v is not None)) if ok else None
        cached = float(sum(v for v in cc if v is not None)) if ok else None
    ceilings = [r.ceiling for r in runs if r.ceiling is not None]
    ceiling_share = (
        sum(c.cached_tokens for c in ceilings) / sum(c.prompt_tokens for c in ceilings)
        if ceilings and len(ceilings) == len(runs) and sum(c.prompt_tokens for c in ceilings)
        else None
    )
    ttfts = [c.ttft_s for r in runs for c in r.agent_calls if c.ttft_s is not None]
    lats = [c.latency_s for r in runs for c in r.agent_calls]
    return ModeSummary(
        mode=mode,
        runs=len(runs),
        makespan_median_s=statistics.median(makespans) if makespans else 0.0,
        makespan_total_s=sum(makespans),
        hit_share=(cached / prompt) if prompt and cached is not None else None,
        ceiling_share=ceiling_share,
        ttft_median_s=statistics.median(ttfts) if ttfts else None,
        latency_median_s=statistics.median(lats) if lats else None,
        prompt_tokens=prompt,
        cached_tokens=cached,
    )


class WaterfallStep(BaseModel):
    """One step of the cache doctor's waterfall (daemon/doctor.py `Step`), as stored and published."""

    name: str
    points: float
    evidence: str
    inferred: bool = True
    lever: str | None = None


class BenchResult(BaseModel):
    agent: str
    inputs: str
    target: str
    engine: str
    model: str | None = None
    block_size: int | None = None
    started_at: float = Field(default_factory=time.time)
    finished_at: float | None = None
    compiler_ceiling: float | None = Field(
        default=None,
        description="the compiler's own (estimated) "
        "hit share at this block size, from the CompileResult's plan",
    )
    compiler_ceiling_after_fixes: float | None = None
    traffic_estimate: float | None = Field(
        default=None,
        description="the compiler's estimate for this traffic: the block-level hit share of the prompts "
        "the optimized plan would send for these input records, outputs modelled (executor/estimate.py)",
    )
    traffic_ceiling: float | None = Field(
        default=None, description="the same prompts at token granularity: a share no engine can beat"
    )
    traffic_assumptions: list[str] = Field(default_factory=list)
    waterfalls: dict[str, list[WaterfallStep]] = Field(
        default_factory=dict,
        description="per mode: the cache doctor's steps from the estimate for that mode's traffic to the hit "
        "share the server delivered",
    )
    fixes_applied: list[str] = Field(default_factory=list)
    warmups: int = 0
    runs: list[RunResult] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    error: str | None = None

    def modes(self) -> list[Mode]:
        return [m for m in MODES if any(r.mode == m for r in self.runs)]

    def runs_of(self, mode: Mode) -> list[RunResult]:
        return [r for r in self.runs if r.mode == mode]

    def summary(self, mode: Mode) -> ModeSummary:
        return summarize(mode, self.runs_of(mode))

    def speedup(self) -> float | None:
        """Naive over optimized median makespan."""
        if not self.runs_of("naive") or not self.runs_of("optimized"):
            return None
        opt = self.summary("optimized").makespan_median_s
        return self.summary("naive").makespan_median_s / opt if opt else None


class BenchRun(SQLModel, table=True):
    """One `charter-tui bench` invocation. `result` is the whole `BenchResult` as JSON."""

    __tablename__ = "bench_run"
    id: int | None = SQLField(default=None, primary_key=True)
    started_at: float = SQLField(index=True)
    agent: str = SQLField(index=True)
    target: str
    engine: str
    modes: str = SQLField(description="comma-separated modes run")
    naive_hit_share: float | None = None
    optimized_hit_share: float | None = None
    ceiling_share: float | None = None
    speedup: float | None = None
    error: str | None = None
    result: dict[str, Any] = SQLField(default_factory=dict, sa_column=Column(JSON))

    @classmethod
    def from_result(cls, result: BenchResult) -> BenchRun:
        def share(mode: Mode) -> float | None:
            return result.summary(mode).hit_share if result.runs_of(mode) else None

        ceiling = result.summary("optimized").ceiling_share if result.runs_of("optimized") else None
        return cls(
            started_at=result.started_at,
            agent=result.agent,
            target=result.target,
            engine=result.engine,
            modes=",".join(result.modes()),
            naive_hit_share=share("naive"),
            optimized_hit_share=share("optimized"),
            ceiling_share=ceiling,
            speedup=result.speedup(),
            error=result.error,
            result=result.model_dump(mode="json"),
        )


class ModeView(BaseModel):
    """One mode's figures from a stored run, as the TUI shows them (a `ModeSummary`, trimmed)."""

    runs: int = 0
    hit_share: float | None = None
    ceiling_share: float | None = None
    makespan_median_s: float | None = None
    ttft_median_s: float | None = None
    waterfall: list[WaterfallStep] = Field(default_factory=list)


class BenchRunView(BaseModel):
    """A `bench_run` row small enough to publish on the bus: the per-mode summaries, not every call.

    Published on `charter/v1/bench/<agent>` and read by the TUI's Cache screen. `summaries` is keyed
    by mode name as a plain string so a TUI older than a new mode still decodes the event.
    """

    id: int
    started_at: float
    agent: str
    target: str
    engine: str
    model: str | None = None
    modes: list[str] = Field(default_factory=list)
    summaries: dict[str, ModeView] = Field(default_factory=dict)
    speedup: float | None = Field(default=None, description="naive over optimized median makespan")
    error: str | None = None

    @classmethod
    def from_row(cls, row: BenchRun) -> BenchRunView:
        assert row.id is not None, "only stored rows have an id to publish"
        summaries: dict[str, ModeView] = {}
        model: str | None = None
        try:
            result = BenchResult.model_validate(row.result)
        except ValidationError:
            result = None  # a row written by another version: the summary columns still hold
        if result is not None and result.runs:
            model = result.model
            for mode in result.modes():
                s = result.summary(mode)
                summaries[mode] = ModeView(
                    runs=s.runs,
                    hit_share=s.hit_share,
                    ceiling_share=s.ceiling_share,
                    makespan_median_s=s.makespan_median_s,
                    ttft_median_s=s.ttft_median_s,
                    waterfall=result.waterfalls.get(mode, []),
                )
        else:
            if row.naive_hit_share is not None:
                summaries["naive"] = ModeView(hit_share=row.naive_hit_share)
            if row.optimized_hit_share is not None or row.ceiling_share is not None:
                summaries["optimized"] = ModeView(
                    hit_share=row.optimized_hit_share, ceiling_share=row.ceiling_share
                )
        return cls(
            id=row.id,
            started_at=row.started_at,
            agent=row.agent,
            target=row.target,
            engine=row.engine,
            model=model,
            modes=[m for m in row.modes.split(",") if m],
            summaries=summaries,
            speedup=row.speedup,
            error=row.error,
        )

    @property
    def best(self) -> ModeView | None:
        """The mode measured against the ceiling: optimized when it ran, else naive (`--mode naive`)."""
        return self.summaries.get("optimized") or self.summaries.get("naive")

    @property
    def of_ceiling(self) -> float | None:
        best = self.best
        if best is None or best.hit_share is None or not best.ceiling_share:
            return None
        return best.hit_share / best.ceiling_share
