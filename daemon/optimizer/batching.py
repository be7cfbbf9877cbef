"""Batching recommendations: batch capacity versus per-request latency, read from what is limiting.

- Queue builds up while the KV cache has room: the scheduler's batch cap is the limit -> raise it.
- Queue builds up with the KV cache full: more batching cannot help -> capacity (another replica).
- Preemption storm: the batch admits more than the KV cache holds -> lower the cap (vLLM) or
  switch TRT-LLM to `guaranteed_no_evict`.
- Inter-token latency over SLO: decode steps are too big -> lower the cap.
- TTFT over SLO without a queue: long prefills stall the batch -> chunked prefill / smaller token budget.
"""

from __future__ import annotations

from daemon.analysis.rules import HIGH_LATENCY, LOW_THROUGHPUT, PREEMPTION_STORM, QUEUE_BUILDUP
from daemon.models import Bottleneck
from daemon.optimizer.context import Context
from daemon.optimizer.models import RecommendationSpec

KV_ROOM = 0.7
MAX_SEQS_CAP = 1024


def recommend(ctx: Context) -> list[RecommendationSpec]:
    out: list[RecommendationSpec] = []
    queue = ctx.bottleneck(QUEUE_BUILDUP) or ctx.bottleneck(LOW_THROUGHPUT)
    storm = ctx.bottleneck(PREEMPTION_STORM)
    latency = ctx.bottleneck(HIGH_LATENCY)
    if storm is not None:
        out += _fewer_sequences(
            ctx, storm, "preemptions: the batch admits more sequences than the KV cache holds"
        )
    elif latency is not None and latency.evidence.get("driver") == "itl_p95":
        out += _fewer_sequences(
            ctx, latency, "inter-token latency over SLO: each decode step carries too many sequences"
        )
    if queue is not None and storm is None:
        kv = queue.evidence.get("kv_cache_usage")
        if kv is None and ctx.sample is not None:
            kv = ctx.sample.kv_cache_usage
        if isinstance(kv, (int, float)) and kv >= 0.85:
            out.append(_more_replicas(ctx, queue, kv))
        elif kv is None or kv < KV_ROOM:
            out += _more_sequences(ctx, queue, kv)
    if latency is not None and latency.evidence.get("driver") == "ttft_p95" and queue is None:
        out += _chunked_prefill(ctx, latency)
    return out


def _more_sequences(ctx: Context, b: Bottleneck, kv: object) -> list[RecommendationSpec]:
    room = f"KV cache only {kv:.0%} used" if isinstance(kv, (int, float)) else "KV usage not exported"
    why = f"{b.summary}; {room}: the batch cap, not memory, holds requests back"
    if ctx.engine == "vllm":
        cur = ctx.settings.value("--max-num-seqs")
        running = (ctx.sample.running if ctx.sample else None) or 0
        base = cur if isinstance(cur, int) else 256
        if running and running < base * 0.9:
            return []  # not at the cap: the queue comes from elsewhere (prefill budget, CPU)
        target = min(MAX_SEQS_CAP, base * 2)
        if target <= base:
            return []
        return [
            RecommendationSpec(
                instance=ctx.instance,
                engine=ctx.engine,
                kind="batching",
                title=f"Raise max-num-seqs to {target}",
                description="Requests wait while the KV cache has room: let the scheduler run more sequences per step.",
                changes=[ctx.change("--max-num-seqs", target, why)],
                expected_impact="high",
                estimated_improvement="queue drains; throughput up to ~2x if decode is memory-bound",
                effort="medium",
                effort_detail="vLLM restart",
                risks=["Higher inter-token latency per request", "More preemptions if prompts grow"],
                prerequisites=["Watch ITL p95 against its SLO after the change"],
                source=ctx.source(b),
            )
        ]
    if ctx.engine == "triton":
        delay = ctx.settings.value("dynamic_batching.max_queue_delay_microseconds")
        count = ctx.settings.value("instance_group.count")
        changes = []
        if isinstance(count, int):
            changes.append(ctx.change("instance_group.count", count + 1, why, apply="reload"))
        if delay is None:
            changes.append(
                ctx.change("dynamic_batching.max_queue_delay_microseconds", 100, why, apply="reload")
            )
        if not changes:
            return []
        return [
            RecommendationSpec(
                instance=ctx.instance,
                engine=ctx.engine,
                kind="batching",
                title="Serve the queue with more parallelism",
                description="Triton queues in front of the model: another model instance (an in-place update) and dynamic "
                "batching let it take more requests at once.",
                changes=changes,
                expected_impact="medium",
                estimated_improvement="queue time down in proportion to instances",
                effort="low",
                effort_detail="Triton applies instance_group changes in place, without reloading",
                risks=["Each instance holds its own memory"],
                prerequisites=["--model-control-mode=explicit"],
                source=ctx.source(b),
            )
        ]
    if ctx.engine == "sglang":
        return [
            RecommendationSpec(
                instance=ctx.instance,
                engine=ctx.engine,
                kind="batching",
                title="Raise max-running-requests",
                description="The scheduler caps running requests below what the KV pool holds.",
                changes=[ctx.change("--max-running-requests", "2x current", why)],
                expected_impact="medium",
                estimated_improvement="queue drains",
                effort="medium",
                effort_detail="SGLang restart",
                risks=["Higher ITL"],
                prerequisites=[],
                source=ctx.source(b),
            )
        ]
    return []


def _fewer_sequences(ctx: Context, b: Bottleneck, why: str) -> list[RecommendationSpec]:
    if ctx.engine == "vllm":
        cur = ctx.settings.value("--max-num-seqs")
        running = ctx.sample.running if ctx.sample and ctx.sample.running else None
        base = cur if isinstance(cur, int) else 256
        # Aim just under what is actually running, or 3/4 of the cap when that is unknown.
        target = max(1, int(min(base * 0.75, running * 0.9) if running else base * 0.75))
        if target >= base:
            return []
        return [
            RecommendationSpec(
                instance=ctx.instance,
                engine=ctx.engine,
                kind="batching",
                title=f"Lower max-num-seqs to {target}",
                description="Fewer concurrent sequences per step: each gets its KV blocks and decodes faster.",
                changes=[ctx.change("--max-num-seqs", target, why)],
                expected_impact="medium",
                estimated_improvement="fewer preemptions (no recompute) and lower ITL",
                effort="medium",
                effort_detail="vLLM restart",
                risks=["Lower peak throughput; the queue grows under bursts"],
                prerequisites=[],
                source=ctx.source(b),
            )
        ]
    if (
        ctx.engine == "triton"
        and ctx.is_trt_llm
        and ctx.settings.value("parameters.batch_scheduler_policy") != "guaranteed_no_evict"
    ):
        return [
            RecommendationSpec(
                instance=ctx.instance,
                engine=ctx.engine,
                kind="batching",
                title="Schedule with guaranteed_no_evict",
                description="max_utilization packs the batch and pauses requests when KV runs out; guaranteed_no_evict "
                "admits a request only when its KV is guaranteed.",
                changes=[
                    ctx.change(
                        "parameters.batch_scheduler_policy", "guaranteed_no_evict", why, apply="reload"
                    )
                ],
                expected_impact="medium",
                estimated_improvement="no paused requests; steadier latency",
                effort="medium",
                effort_detail="Triton model reload",
                risks=["Lower batch occupancy, lower peak throughput"],
                prerequisites=["--model-control-mode=explicit"],
                source=ctx.source(b),
            )
        ]
    return []


def _more_replicas(ctx: Context, b: Bottleneck, kv: float) -> RecommendationSpec:
    return RecommendationSpec(
        instance=ctx.instance,
        engine=ctx.engine,
        kind="capacity",
        title="Add a replica (the KV cache is full)",
        description=f"Requests queue with the KV cache {kv:.0%} full: every running sequence already holds its blocks, "
        "so a larger batch would only preempt. Only more KV memory or another replica drains the queue.",
        changes=[
            ctx.change("replicas", "current + 1", f"{b.summary} with KV {kv:.0%} full", apply="restart")
        ],
        expected_impact="high",
        estimated_improvement="queue time towards zero at the same load",
        effort="high",
        effort_detail="another GPU/server and a load balancer entry",
        risks=["Cost", "Prefix caches are per replica: route shared-prefix traffic to the same replica"],
        prerequisites=["Spare GPU capacity"],
        source=ctx.source(b),
    )


def _chunked_prefill(ctx: Context, b: Bottleneck) -> list[RecommendationSpec]:
    if ctx.engine != "vllm":
        return []
    changes = []
    if ctx.settings.value("--enable-chunked-prefill") is not True:
        changes.append(ctx.change("--enable-chunked-prefill", True, "long prefills block decode steps"))
    tokens = ctx.settings.value("--max-num-batched-tokens")
    if isinstance(tokens, int) and tokens > 2048:
        changes.append(
            ctx.change("--max-num-batched-tokens", 2048, "smaller chunks interleave prefill with decode")
        )
    if not changes:
        return []
    return [
        RecommendationSpec(
            instance=ctx.instance,
            engine=ctx.engine,
            kind="batching",
            title="Chunk long prefills",
            description="TTFT is over SLO without a queue: prefills are long and run unchunked or in large chunks.",
            changes=changes,
            expected_impact="medium",
            estimated_improvement="lower TTFT tail under mixed traffic",
            effort="medium",
            effort_detail="vLLM restart",
            risks=["Slightly lower prefill throughput"],
            prerequisites=[],
            source=ctx.source(b),
        )
    ]
