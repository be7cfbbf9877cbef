"""KV-cache recommendations: prefix caching / KV reuse, cache capacity, KV dtype, block granularity.

Decisions follow the engines' actual mechanics (inference-servers.md §1.5, §2.6): vLLM and TRT-LLM
only hit *full* blocks, so a large block size loses the tail of every shared prefix; a cache that is
full evicts reusable blocks before they are hit again (LRU), so a low hit rate with high KV usage is a
capacity problem, while a low hit rate with room to spare means the prompts do not share a prefix —
a prompt-layout problem that no server flag fixes.
"""

from __future__ import annotations

from daemon.analysis.rules import CACHE_INEFFICIENCY, MEMORY_PRESSURE
from daemon.models import Bottleneck
from daemon.optimizer.context import GPU_SMALLEST_BLOCK, Context
from daemon.optimizer.models import RecommendationSpec

KV_FULL = 0.8


def recommend(ctx: Context) -> list[RecommendationSpec]:
    out: list[RecommendationSpec] = []
    cache = ctx.bottleneck(CACHE_INEFFICIENCY)
    memory = ctx.bottleneck(MEMORY_PRESSURE)
    if cache is not None:
        out += _cache_inefficiency(ctx, cache)
    if memory is not None:
        out += _memory_pressure(ctx, memory)
    return out


def enable_prefix_caching(ctx: Context, why: str, source: dict[str, object]) -> RecommendationSpec | None:
    """The change that turns prefix caching / KV reuse on for this engine; None if already on."""
    if ctx.engine == "vllm":
        if ctx.settings.value("--enable-prefix-caching") is True:
            return None
        changes = [ctx.change("--enable-prefix-caching", True, why)]
        prereq = ["vLLM V1 engine (prefix caching is on by default there; it was turned off explicitly)"]
        effort = "vLLM restart with the new flag (seconds to minutes of downtime per replica)"
    elif ctx.engine == "triton":
        if ctx.settings.value("parameters.enable_kv_cache_reuse") is True:
            return None
        changes = [ctx.change("parameters.enable_kv_cache_reuse", True, why, apply="reload")]
        prereq = [
            "TensorRT-LLM engine built with --use_paged_context_fmha enable (else reuse is refused)",
            "Triton started with --model-control-mode=explicit to reload the model",
        ]
        effort = "Triton model reload with the new parameter; unload first on a full GPU (two executors)"
    elif ctx.engine == "sglang":
        if ctx.settings.value("--disable-radix-cache") is not True:
            return None
        changes = [ctx.change("--disable-radix-cache", False, why)]
        prereq = []
        effort = "SGLang restart without --disable-radix-cache"
    else:
        return None
    return RecommendationSpec(
        instance=ctx.instance,
        engine=ctx.engine,
        kind="kv_cache",
        title="Enable prefix caching / KV-cache reuse",
        description="Requests share prompt prefixes the server recomputes every time; with prefix caching the "
        "shared blocks are computed once and reused, cutting prefill work and TTFT.",
        changes=changes,
        expected_impact="high",
        estimated_improvement="TTFT and prefill compute drop roughly in proportion to the shared-prefix share "
        "of prompt tokens (up to ~7x faster prefill on a hit, as measured on the CPU test server)",
        effort="medium",
        effort_detail=effort,
        risks=[
            "Hashing every full block costs a little CPU per request",
            "Cached blocks compete with running requests for KV space (they are evicted first, LRU)",
        ],
        prerequisites=prereq,
        source=source,
    )


def _cache_inefficiency(ctx: Context, b: Bottleneck) -> list[RecommendationSpec]:
    out: list[RecommendationSpec] = []
    rate = b.evidence.get("prefix_hit_rate")
    why = (
        f"prefix-cache hit rate {rate:.0%} over the last window"
        if isinstance(rate, (int, float))
        else "low hit rate"
    )
    enable = enable_prefix_caching(ctx, why, ctx.source(b))
    if enable is not None:
        return [enable]
    kv = b.evidence.get("kv_cache_usage")
    if isinstance(kv, (int, float)) and kv >= KV_FULL:
        out += _more_kv_capacity(
            ctx,
            b,
            f"KV cache {kv:.0%} full while the hit rate is {rate:.0%}: reusable "
            "blocks are evicted before they are hit again",
        )
        return out
    block = ctx.settings.value("--block-size") if ctx.engine == "vllm" else None
    small = ctx.smallest_block()
    # A GPU's smallest block is offered only once the server's platform has been looked for: a CPU vLLM
    # refuses it, and a recommendation made before the poller read the process would stay (issue 15).
    platform_pending = small == GPU_SMALLEST_BLOCK and ctx.settings.value("platform") is None
    if isinstance(block, int) and block > small and not platform_pending:
        out.append(
            RecommendationSpec(
                instance=ctx.instance,
                engine=ctx.engine,
                kind="kv_cache",
                title=f"Use {small}-token KV blocks",
                description=f"Only full blocks are cached: with {block}-token blocks, up to {block - 1} tokens of every "
                "shared prefix are recomputed, and prefixes shorter than a block never hit.",
                changes=[
                    ctx.change(
                        "--block-size",
                        small,
                        f"{block}-token blocks waste the partial tail of each prefix",
                    )
                ],
                expected_impact="medium",
                estimated_improvement=f"hits on prefixes of {small}..{block} tokens; "
                f"up to {block - small} more cached tokens per request",
                effort="medium",
                effort_detail="vLLM restart with --block-size",
                risks=[
                    "Some attention backends require a minimum block size (the CPU backend picks 128 itself)",
                    "More blocks means a larger block table and slightly more scheduling overhead",
                ],
                prerequisites=[f"An attention backend that supports {small}-token blocks on this device"],
                source=ctx.source(b),
            )
        )
    out.append(
        RecommendationSpec(
            instance=ctx.instance,
            engine=ctx.engine,
            kind="prompt_layout",
            title="Put the shared prompt text first and per-request content last",
            description="Prefix caching is on and the cache has room, yet prompts hit it rarely: their shared text "
            "comes after something that differs per request (an id, a timestamp, the user's input), so "
            "no two prompts share a prefix. Reorder the prompt templates; the compiler's dynamic-prefix "
            "finding names the call sites.",
            changes=[
                ctx.change(
                    "prompt template order",
                    "static system/instructions first, dynamic fields last",
                    why,
                    apply="code",
                )
            ],
            expected_impact="high",
            estimated_improvement="on the CPU test server the same 24 requests went from 0% to "
            "87% of prompt tokens served from cache",
            effort="low",
            effort_detail="edit the agent's prompt templates (no server change)",
            risks=["Models can be sensitive to instruction order: re-check output quality"],
            prerequisites=["The dynamic content can be moved without changing the prompt's meaning"],
            source=ctx.source(b),
        )
    )
    return out


def _more_kv_capacity(ctx: Context, b: Bottleneck, why: str) -> list[RecommendationSpec]:
    out: list[RecommendationSpec] = []
    if ctx.engine == "vllm":
        util = ctx.settings.value("--gpu-memory-utilization")
        if isinstance(util, (int, float)) and util < 0.9:
            target = round(min(0.95, util + 0.05), 2)
            out.append(
                RecommendationSpec(
                    instance=ctx.instance,
                    engine=ctx.engine,
                    kind="kv_cache",
                    title=f"Give the KV cache more memory ({util} -> {target})",
                    description="Everything above the weights and activations inside gpu-memory-utilization becomes KV "
                    "blocks; raising it buys blocks directly.",
                    changes=[ctx.change("--gpu-memory-utilization", target, why)],
                    expected_impact="medium",
                    estimated_improvement=f"~{(target - util) / max(util, 0.01):.0%} more KV memory "
                    "(more, since weights are fixed)",
                    effort="medium",
                    effort_detail="vLLM restart",
                    risks=[
                        "Less headroom for other processes on the GPU; OOM at startup if something else holds memory"
                    ],
                    prerequisites=["No other process needs the extra GPU memory"],
                    source=ctx.source(b),
                )
            )
        if ctx.settings.value("--kv-cache-dtype") in ("auto", None):
            out.append(
                RecommendationSpec(
                    instance=ctx.instance,
                    engine=ctx.engine,
                    kind="kv_cache",
                    title="Store the KV cache in FP8",
                    description="FP8 KV halves the bytes per cached token versus FP16/BF16: twice the blocks in the same memory.",
                    changes=[ctx.change("--kv-cache-dtype", "fp8", why)],
                    expected_impact="high",
                    estimated_improvement="~2x KV capacity: fewer evictions and preemptions",
                    effort="medium",
                    effort_detail="vLLM restart; validate output quality on an eval set",
                    risks=[
                        "Small accuracy loss on some models (scales are per-tensor unless calibrated)",
                        "Not every attention backend supports FP8 KV",
                    ],
                    prerequisites=[
                        "GPU with FP8 support (Ada/Hopper or newer) and a backend that implements it"
                    ],
                    source=ctx.source(b),
                )
            )
    elif ctx.engine == "triton":
        frac = ctx.settings.value("parameters.kv_cache_free_gpu_mem_fraction")
        if isinstance(frac, (int, float)) and frac < 0.95:
            target = round(min(0.95, frac + 0.05), 2)
            out.append(
                RecommendationSpec(
                    instance=ctx.instance,
                    engine=ctx.engine,
                    kind="kv_cache",
                    title=f"Raise kv_cache_free_gpu_mem_fraction to {target}",
                    description="TRT-LLM sizes its KV pool as this fraction of the GPU memory free after loading the engine.",
                    changes=[
                        ctx.change("parameters.kv_cache_free_gpu_mem_fraction", target, why, apply="reload")
                    ],
                    expected_impact="medium",
                    estimated_improvement=f"~{(target - frac) / frac:.0%} more KV blocks",
                    effort="medium",
                    effort_detail="Triton model unload + load (a reload would hold two executors)",
                    risks=["Less memory left for activations and other models on the same GPU"],
                    prerequisites=["--model-control-mode=explicit"],
                    source=ctx.source(b),
                )
            )
        if not ctx.settings.value("parameters.kv_cache_host_memory_bytes"):
            out.append(
                RecommendationSpec(
                    instance=ctx.instance,
                    engine=ctx.engine,
                    kind="kv_cache",
                    title="Offload evicted KV blocks to host memory",
                    description="With a host pool, blocks evicted from the GPU stay reusable in CPU memory and are copied back on a hit.",
                    changes=[
                        ctx.change("parameters.kv_cache_host_memory_bytes", 16 * 1024**3, why, apply="reload")
                    ],
                    expected_impact="medium",
                    estimated_improvement="hit rate recovers for prefixes evicted under pressure",
                    effort="medium",
                    effort_detail="Triton model reload",
                    risks=["16 GiB of pinned host memory", "PCIe copies on each onboarded block"],
                    prerequisites=["Enough host RAM", "enable_kv_cache_reuse true"],
                    source=ctx.source(b),
                )
            )
    elif ctx.engine == "sglang":
        out.append(
            RecommendationSpec(
                instance=ctx.instance,
                engine=ctx.engine,
                kind="kv_cache",
                title="Use longest-prefix-match scheduling",
                description="lpm schedules requests sharing a cached prefix together, before the prefix is evicted.",
                changes=[ctx.change("--schedule-policy", "lpm", why)],
                expected_impact="medium",
                estimated_improvement="higher radix-cache hit rate under load",
                effort="medium",
                effort_detail="SGLang restart",
                risks=["Requests without shared prefixes can wait longer"],
                prerequisites=[],
                source=ctx.source(b),
            )
        )
    return out


def _memory_pressure(ctx: Context, b: Bottleneck) -> list[RecommendationSpec]:
    driver = b.evidence.get("driver")
    why = b.summary or "memory pressure"
    if driver == "gpu_memory" and ctx.engine != "triton":
        return []  # device memory full outside the KV pool: quantization, not KV tuning (quantization.py)
    return _more_kv_capacity(ctx, b, why)
