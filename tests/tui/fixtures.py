"""Deterministic daemon data for TUI tests: real model instances with fixed timestamps.

Everything here is what the daemon publishes on the bus (same models, same topics), so feeding
it through `publish_all` exercises the app's real data path; only the values are pinned so
snapshots do not depend on the clock.
"""

from __future__ import annotations

import math

from compiler.model import (
    BlockShare,
    CachePlan,
    CallSite,
    CallStyle,
    CompileResult,
    Edge,
    EngineSetting,
    Estimates,
    Finding,
    Fix,
    LoopContext,
    PatternKind,
    ScheduleStage,
    Segment,
    SourceKind,
    Warmup,
)
from daemon.bus import Bus, topic
from daemon.bench.records import BenchResult, BenchRun, BenchRunView, Ceiling, RunResult, ServerWindow
from daemon.models import (
    AuditEvent,
    Bottleneck,
    CompileRecord,
    Instance,
    InstanceState,
    MetricSample,
    Recommendation,
    RecommendationStatus,
    Rollout,
    Severity,
)

NOW = 1_790_000_000.0  # a fixed "now" (2026-09-21 UTC) for every test
AGENT_PATH = "/agents/research_agent.py"


def _call(**kw: object) -> CallSite:
    # The compiler's model is still growing; fill fields it added since these fixtures were
    # written from what they already say, so the fixtures track the model, not a stale copy.
    if "callee" in CallSite.model_fields and "callee" not in kw:
        kw["callee"] = kw.get("api", "")
    return CallSite(**kw)  # type: ignore[arg-type]


def fixed_clock() -> float:
    return NOW


def instances() -> list[Instance]:
    return [
        Instance(
            name="vllm-a",
            url="http://127.0.0.1:8000",
            engine="vllm",
            model="tiny-llama",
            state=InstanceState.UP,
            last_seen=NOW - 1,
        ),
        Instance(
            name="triton-b",
            url="http://127.0.0.1:8001",
            engine="triton",
            model="textgen",
            state=InstanceState.STALE,
            state_reason="2 polls timed out",
            last_seen=NOW - 20,
        ),
        Instance(
            name="sglang-c",
            url="http://127.0.0.1:30000",
            engine="sglang",
            model=None,
            state=InstanceState.DOWN,
            state_reason="connection refused",
        ),
    ]


def samples(name: str = "vllm-a", n: int = 120, end: float = NOW) -> list[MetricSample]:
    """A smooth, deterministic minute or two of polls (1 Hz) for one instance."""
    out = []
    for i in range(n):
        t = end - (n - 1 - i)
        phase = i / 12.0
        out.append(
            MetricSample(
                instance=name,
                ts=t,
                engine="vllm",
                window_s=1.0,
                ttft_p95_s=0.12 + 0.08 * (1 + math.sin(phase)),
                generation_tokens_per_s=40.0 + 30.0 * (1 + math.cos(phase)),
                kv_cache_usage=0.35 + 0.25 * (i / n),
                prefix_hit_rate=0.25 + 0.25 * math.sin(phase / 2) ** 2,
                waiting=float(i % 7 // 3),
                running=2.0,
                prompt_tokens_per_s=300.0,
            )
        )
    return out


def compile_result(path: str = AGENT_PATH, extra_call: bool = False) -> CompileResult:
    """A 4-call research agent: plan -> (search x3 fan-out, outline) -> write; one loop."""
    sys_seg = Segment(
        kind="static", text="You are a meticulous research assistant.", role="system", tokens=420
    )
    calls = [
        _call(
            id="c1",
            line=14,
            col=4,
            end_line=18,
            end_col=5,
            function="plan",
            style=CallStyle.OPENAI,
            api="client.chat.completions.create",
            output_var="plan",
            max_tokens=256,
            segments=[
                sys_seg,
                Segment(
                    kind="dynamic",
                    text="{request_id}",
                    name="request_id",
                    source=SourceKind.VOLATILE,
                    tokens=8,
                    tokens_basis="assumed",
                ),
                Segment(kind="static", text="Plan the research for:", tokens=12),
                Segment(
                    kind="dynamic",
                    text="{question}",
                    name="question",
                    source=SourceKind.PARAMETER,
                    tokens=40,
                    tokens_basis="assumed",
                ),
            ],
            prompt_tokens=480,
            static_prefix_tokens=420,
        ),
        _call(
            id="c2",
            line=25,
            col=8,
            end_line=29,
            end_col=9,
            function="search",
            style=CallStyle.OPENAI,
            api="client.chat.completions.create",
            output_var="notes",
            fanout=3,
            loops=[LoopContext(kind="for", line=24, target="topic", iterates="plan.topics")],
            segments=[
                sys_seg,
                Segment(kind="static", text="Find sources on", tokens=6),
                Segment(
                    kind="dynamic",
                    text="{topic}",
                    name="topic",
                    source=SourceKind.LOOP_VARIABLE,
                    origin_calls=["c1"],
                    varies_in_loop=True,
                    tokens=20,
                    tokens_basis="assumed",
                ),
            ],
            prompt_tokens=446,
            static_prefix_tokens=426,
        ),
        _call(
            id="c3",
            line=33,
            col=4,
            end_line=36,
            end_col=5,
            function="outline",
            style=CallStyle.OPENAI,
            api="client.chat.completions.create",
            output_var="outline",
            segments=[
                sys_seg,
                Segment(
                    kind="dynamic",
                    text="{plan}",
                    name="plan",
                    source=SourceKind.CALL_OUTPUT,
                    origin_calls=["c1"],
                    tokens=256,
                ),
            ],
            prompt_tokens=676,
            static_prefix_tokens=420,
        ),
        _call(
            id="c4",
            line=41,
            col=4,
            end_line=46,
            end_col=5,
            function="write_report",
            style=CallStyle.OPENAI,
            api="client.chat.completions.create",
            output_var="report",
            segments=[
                sys_seg,
                Segment(kind="static", text="Write the report from:", tokens=8),
                Segment(
                    kind="dynamic",
                    text="{outline}",
                    name="outline",
                    source=SourceKind.CALL_OUTPUT,
                    origin_calls=["c3"],
                    tokens=256,
                ),
                Segment(
                    kind="dynamic",
                    text="{notes}",
                    name="notes",
                    source=SourceKind.CALL_OUTPUT,
                    origin_calls=["c2"],
                    tokens=600,
                ),
            ],
            prompt_tokens=1284,
            static_prefix_tokens=428,
        ),
    ]
    edges = [
        Edge(source="c1", target="c2", variables=["plan"]),
        Edge(source="c1", target="c3", variables=["plan"]),
        Edge(source="c3", target="c4", variables=["outline"]),
        Edge(source="c2", target="c4", variables=["notes"]),
    ]
    if extra_call:
        calls.append(
            _call(
                id="c5",
                line=52,
                col=4,
                end_line=55,
                end_col=5,
                function="critique",
                style=CallStyle.OPENAI,
                api="client.chat.completions.create",
                output_var="review",
                segments=[
                    sys_seg,
                    Segment(
                        kind="dynamic",
                        text="{report}",
                        name="report",
                        source=SourceKind.CALL_OUTPUT,
                        origin_calls=["c4"],
                        tokens=512,
                    ),
                ],
                prompt_tokens=932,
                static_prefix_tokens=420,
            )
        )
        edges.append(Edge(source="c4", target="c5", variables=["report"]))
    patterns = [
        Finding(
            kind=PatternKind.SHARED_PREFIX, calls=["c2", "c3", "c4"], message="420-token system prompt shared"
        ),
        Finding(
            kind=PatternKind.SEQUENTIAL_CHAIN, calls=["c1", "c3", "c4"], message="plan -> outline -> report"
        ),
        Finding(kind=PatternKind.BRANCHING, calls=["c2"], message="n=3 samples share the prompt"),
        Finding(
            kind=PatternKind.DYNAMIC_PREFIX,
            calls=["c1"],
            anti_pattern=True,
            line=16,
            message="request_id precedes 432 static tokens",
        ),
    ]
    plan = CachePlan(
        engine="vllm",
        block_shares=[
            BlockShare(
                engine="vllm",
                block_size=16,
                prompt_tokens=2886,
                cached_tokens=1680,
                hit_share=0.58,
                hit_share_after_fixes=0.72,
            ),
            BlockShare(
                engine="vllm",
                block_size=32,
                prompt_tokens=2886,
                cached_tokens=1536,
                hit_share=0.53,
                hit_share_after_fixes=0.66,
            ),
        ],
        warmups=[
            Warmup(
                before_call="c2",
                reason="prefill the shared system prompt once",
                prefix_segments=["You are a meticulous research assistant."],
                prefix_tokens=420,
                request={"max_tokens": 1},
            )
        ],
        schedule=[
            ScheduleStage(stage=1, calls=["c1"], concurrent=False, note="plan first"),
            ScheduleStage(stage=2, calls=["c2", "c3"], concurrent=True, note="fan out after the warm-up"),
        ],
        settings=[
            EngineSetting(
                engine="vllm",
                where="flag",
                name="--enable-prefix-caching",
                value="true",
                reason="shared 420-token prefix",
                applies="restart",
            )
        ],
    )
    fixes = [
        Fix(
            pattern=PatternKind.DYNAMIC_PREFIX,
            calls=["c1"],
            description="move request_id after the static text",
            diff=(
                f"--- a{path}\n+++ b{path}\n@@ -15,4 +15,4 @@\n"
                "     messages=[\n"
                '-        {"role": "user", "content": f"[{request_id}] Plan the research for: {question}"},\n'
                '+        {"role": "user", "content": f"Plan the research for: {question} [{request_id}]"},\n'
                "     ],\n"
            ),
            cacheable_share_before=0.0,
            cacheable_share_after=0.89,
            warning="",
        )
    ]
    return CompileResult(
        path=path,
        source_sha256="ab" * 32,
        calls=calls,
        edges=edges,
        order=[c.id for c in calls],
        patterns=patterns,
        plan=plan,
        fixes=fixes,
        estimates=Estimates(
            tokens_estimated=True,
            tokenizer="estimate (chars/4)",
            prompt_tokens_total=2886,
            static_tokens_total=1716,
            dynamic_tokens_assumed=1170,
        ),
    )


def compile_record(path: str = AGENT_PATH, at: float = NOW - 5, **kw: object) -> CompileRecord:
    result = compile_result(path, **kw)  # type: ignore[arg-type]
    return CompileRecord(
        path=path,
        content_hash=result.source_sha256,
        compiled_at=at,
        ok=True,
        result=result.model_dump(mode="json"),
    )


def syntax_error_record(path: str = AGENT_PATH, at: float = NOW - 1) -> CompileRecord:
    return CompileRecord(
        path=path,
        content_hash="cd" * 32,
        compiled_at=at,
        ok=False,
        error="SyntaxError: '(' was never closed (line 27, col 12)",
        result={},
    )


def bottlenecks() -> list[Bottleneck]:
    return [
        Bottleneck(
            id=1,
            instance="vllm-a",
            kind="CACHE_INEFFICIENCY",
            severity=Severity.WARNING,
            started_at=NOW - 300,
            summary="prefix-cache hit rate 12% < 30% for 5 min",
            evidence={"prefix_hit_rate": 0.12, "threshold": 0.30, "window_s": 300},
        ),
        Bottleneck(
            id=2,
            instance="vllm-a",
            kind="QUEUE_BUILDUP",
            severity=Severity.CRITICAL,
            started_at=NOW - 60,
            summary="12 requests waiting (threshold 8)",
            evidence={"waiting": 12, "threshold": 8, "kv_cache_usage": 0.93},
        ),
        Bottleneck(
            id=3,
            instance="triton-b",
            kind="HIGH_LATENCY",
            severity=Severity.WARNING,
            active=False,
            started_at=NOW - 3600,
            cleared_at=NOW - 3000,
            summary="TTFT p95 1.8 s > 1 s SLO",
            evidence={"ttft_p95_s": 1.8, "slo_s": 1.0},
        ),
    ]


def recommendations() -> list[Recommendation]:
    """As the optimizer stores them (`RecommendationSpec.to_row`): priority 1 is the most urgent."""
    return [
        Recommendation(
            id=7,
            fingerprint="vllm-a/kv",
            instance="vllm-a",
            kind="kv_cache",
            priority=1,
            title="Raise --gpu-memory-utilization 0.5 -> 0.8 on vllm-a",
            status=RecommendationStatus.PROPOSED,
            created_at=NOW - 50,
            updated_at=NOW - 50,
            detail={
                "engine": "vllm",
                "description": "KV cache is 93% full and 12 requests wait",
                "changes": [
                    {
                        "parameter": "--gpu-memory-utilization",
                        "current_value": 0.5,
                        "current_source": "launch argv",
                        "recommended_value": 0.8,
                        "reason": "more KV blocks",
                        "apply": "restart",
                    },
                    {
                        "parameter": "--max-num-seqs",
                        "current_value": 64,
                        "current_source": "launch argv",
                        "recommended_value": 128,
                        "reason": "admit the queue",
                        "apply": "restart",
                    },
                ],
                "expected_impact": "high",
                "estimated_improvement": "queue wait -60%, KV 93% -> 58%",
                "effort": "low",
                "effort_detail": "one restart",
                "risks": ["OOM if another process uses the GPU"],
                "prerequisites": [],
                "source": {"bottleneck": 2},
            },
        ),
        Recommendation(
            id=8,
            fingerprint="agent/dp",
            instance=None,
            kind="prompt_layout",
            priority=3,
            title="Move request_id to the end of plan()'s prompt",
            created_at=NOW - 40,
            updated_at=NOW - 40,
            detail={
                "engine": "vllm",
                "changes": [],
                "expected_impact": "medium",
                "estimated_improvement": "hit share 58% -> 72%",
                "risks": ["changes the prompt text"],
                "source": {"compile": AGENT_PATH},
            },
        ),
    ]


def rollouts() -> list[Rollout]:
    """As the rollout manager stores them: `{param, value}` changes, `StageDetail`, `Comparison`."""
    return [
        Rollout(
            id=11,
            recommendation_id=7,
            state="PENDING_APPROVAL",
            created_at=NOW - 45,
            updated_at=NOW - 45,
            title="Raise --gpu-memory-utilization on vllm-a",
            targets=["vllm-a"],
            changes=[
                {"param": "--gpu-memory-utilization", "value": 0.8},
                {"param": "--max-num-seqs", "value": 128},
            ],
            stage_detail={"reason": "QUEUE_BUILDUP on vllm-a", "proposed_by": "optimizer"},
        ),
        Rollout(
            id=10,
            recommendation_id=None,
            state="CANARY",
            created_at=NOW - 900,
            updated_at=NOW - 120,
            title="Enable prefix caching on triton-b",
            targets=["triton-b", "triton-c"],
            changes=[{"param": "enable_kv_cache_reuse", "value": True, "model": "textgen"}],
            previous_config={"triton-b": {"models": {"textgen": {"name": "textgen", "parameters": {}}}}},
            stage_detail={
                "before": {"triton-b": {"textgen:enable_kv_cache_reuse": "false"}},
                "canary": "triton-b",
                "order": ["triton-b", "triton-c"],
                "progress": {
                    "triton-b": {"status": "applied", "applied_at": NOW - 300},
                    "triton-c": {"status": "pending"},
                },
                "signals": ["ttft_p95_s", "prefix_hit_rate"],
                "canary_since": NOW - 290,
            },
            comparison={
                "verdict": "PASS",
                "summary": "ttft_p95_s within threshold (-26%)",
                "signals": [
                    {
                        "signal": "ttft_p95_s",
                        "baseline": 0.82,
                        "canary": 0.61,
                        "verdict": "pass",
                        "higher_is_better": False,
                    },
                    {
                        "signal": "prefix_hit_rate",
                        "baseline": 0.05,
                        "canary": 0.44,
                        "verdict": "pass",
                        "higher_is_better": True,
                    },
                ],
            },
        ),
        Rollout(
            id=9,
            state="ROLLED_BACK",
            created_at=NOW - 7200,
            updated_at=NOW - 6000,
            title="max-num-batched-tokens 8192 on vllm-a",
            targets=["vllm-a"],
            changes=[{"param": "--max-num-batched-tokens", "value": 8192}],
            previous_config={"vllm-a": {"flags": {"max_num_batched_tokens": 2048}, "pid": 4242}},
            comparison={
                "verdict": "FAIL",
                "summary": "ttft_p95_s worse by 0.65 (+217%) > 20% and 0.05",
                "signals": [
                    {
                        "signal": "ttft_p95_s",
                        "baseline": 0.30,
                        "canary": 0.95,
                        "verdict": "fail",
                        "higher_is_better": False,
                    }
                ],
            },
            stage_detail={
                "canary": "vllm-a",
                "order": ["vllm-a"],
                "progress": {"vllm-a": {"status": "restored"}},
                "before": {"vllm-a": {"--max-num-batched-tokens": "2048"}},
                "failure_reason": "validation failed: ttft_p95_s worse by 0.65 (+217%)",
                "failed_from": "VALIDATING",
            },
        ),
    ]


def audit() -> list[AuditEvent]:
    return [
        AuditEvent(
            id=1,
            ts=NOW - 900,
            actor="daemon",
            entity="rollout",
            entity_id="10",
            action="propose",
            to_state="PENDING_APPROVAL",
        ),
        AuditEvent(
            id=2,
            ts=NOW - 600,
            actor="alice",
            entity="rollout",
            entity_id="10",
            action="approve",
            from_state="PENDING_APPROVAL",
            to_state="CANARY",
            comment="looks safe",
        ),
        AuditEvent(
            id=3,
            ts=NOW - 45,
            actor="daemon",
            entity="rollout",
            entity_id="11",
            action="propose",
            to_state="PENDING_APPROVAL",
        ),
    ]


def _bench_run(mode: str, makespan: float, hits: float, ceiling_cached: int, engine: str) -> RunResult:
    """One measured run of the 2886-token research agent: the server's hits and the block ceiling."""
    return RunResult(
        mode=mode,
        run=0,
        input_line=1,
        makespan_s=makespan,  # type: ignore[arg-type]
        server=ServerWindow(engine=engine, prefix_queries=2886, prefix_hits=hits),
        ceiling=Ceiling(block_size=16, prompt_tokens=2886, cached_tokens=ceiling_cached),
    )


def bench_result(
    agent: str = AGENT_PATH,
    target: str = "http://127.0.0.1:8000",
    *,
    engine: str = "vllm",
    at: float = NOW - 300,
    naive_hits: float = 895,
    optimized_hits: float = 2540,
    error: str | None = None,
    modes: tuple[str, ...] = ("naive", "optimized"),
) -> BenchResult:
    """What `charter-tui bench` would store: naive 31%, optimized 88% of a 92% ceiling, 4.26 s vs 3.00 s."""
    runs = []
    if "naive" in modes:
        runs.append(_bench_run("naive", 4.26, naive_hits, 2655, engine))
    if "optimized" in modes:
        runs.append(_bench_run("optimized", 3.00, optimized_hits, 2655, engine))
    return BenchResult(
        agent=agent,
        inputs="inputs.jsonl",
        target=target,
        engine=engine,
        model="tiny-llama",
        block_size=16,
        started_at=at,
        finished_at=at + 8,
        runs=runs,
        error=error,
    )


def bench_view(result: BenchResult, run_id: int) -> BenchRunView:
    """The event the daemon publishes for `result` once stored as row `run_id` (the real conversion)."""
    row = BenchRun.from_result(result)
    row.id = run_id
    return BenchRunView.from_row(row)


def bench_views() -> list[BenchRunView]:
    """The research agent on vllm-a, and a document agent on triton-b that failed part-way (naive only)."""
    failed = bench_result(
        "/agents/document_processor.py",
        "http://127.0.0.1:8001",
        engine="triton",
        at=NOW - 7200,
        naive_hits=1300,
        modes=("naive",),
        error="naive run 1, call c3 (inputs.jsonl:2): timed out after 120 s",
    )
    return [bench_view(failed, 1), bench_view(bench_result(), 2)]


def publish_all(bus: Bus, *, with_samples: bool = True, with_bench: bool = True) -> None:
    """Everything above, in the order a running daemon would produce it."""
    for inst in instances():
        bus.publish(topic("instance", inst.name), inst)
    if with_samples:
        for s in samples("vllm-a"):
            bus.publish(topic("sample", s.instance), s)
        for s in samples("triton-b", n=60, end=NOW - 20):
            s.engine = "triton"
            bus.publish(topic("sample", s.instance), s)
    for b in bottlenecks():
        bus.publish(topic("bottleneck", b.instance), b)
    rec = compile_record()
    bus.publish(topic("compile", rec.path), rec)
    for r in recommendations():
        bus.publish(topic("recommendation", str(r.id)), r)
    for ro in rollouts():
        bus.publish(topic("rollout", str(ro.id)), ro)
    for a in audit():
        bus.publish(topic("audit", a.entity), a)
    if with_bench:
        for run in bench_views():
            bus.publish(topic("bench", run.agent), run)
