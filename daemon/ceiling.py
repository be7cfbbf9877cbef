"""Which compiler ceiling a target is measured against: one rule for the Cache screen and the exporter.

The ceiling is the best hit share the watched agents' prompts allow at the engine's block size, for a
server with traffic: the steady state (a request on the cache the one before it left), not one request
on an empty cache, which a live server's measurement beats. A target's block size and whether it has a
prefix cache at all come from what its server reports (`served_cache`).
"""

from __future__ import annotations

from collections.abc import Mapping

from compiler.model import BlockShare, CompileResult
from daemon.models import Instance

# The compiler plans for these engines; a target's engine maps onto one of them.
PLAN_ENGINE = {"vllm": "vllm", "triton": "trtllm", "trtllm": "trtllm", "sglang": "sglang"}


def steady(share: BlockShare) -> float:
    """The share a server with traffic can reach: the steady state where the plan computed it."""
    return share.steady_state_share if share.steady_state_share is not None else share.hit_share


def ceiling_for(
    engine: str, block_size: int | None, results: Mapping[str, CompileResult]
) -> tuple[BlockShare, str] | None:
    """The highest agent ceiling for the target's engine, at its block size when known."""
    plan_engine = PLAN_ENGINE.get(engine)
    best: tuple[BlockShare, str] | None = None
    for path, result in results.items():
        shares = [b for b in result.plan.block_shares if b.engine == plan_engine]
        if block_size is not None:
            shares = [b for b in shares if b.block_size == block_size] or shares
        for b in shares[:1] if block_size is None else shares:
            if best is None or steady(b) > steady(best[0]):
                best = (b, path)
    return best


def served_cache(inst: Instance | None) -> tuple[int | None, bool]:
    """(block size, whether the target has a prefix cache at all), as the server reports them: vLLM's
    `cache_config_info` (a target at block 32 is compared with the agents' block-32 ceiling, not 16's);
    a Triton model serves a prefix cache only through TensorRT-LLM (its KV-cache metrics show it)."""
    info = (inst.info or {}) if inst is not None else {}
    if inst is not None and inst.engine == "triton":
        return None, info.get("backend") == "tensorrtllm"
    cache = info.get("cache_config") or {}
    raw = cache.get("block_size") if isinstance(cache, dict) else None
    block = int(raw) if isinstance(raw, (int, str)) and str(raw).isdigit() else None
    enabled = (
        str(cache.get("enable_prefix_caching", "True")).lower() != "false"
        if isinstance(cache, dict)
        else True
    )
    return block, enabled


def target_ceiling(inst: Instance | None, results: Mapping[str, CompileResult]) -> float | None:
    """The steady-state ceiling a target is measured against, or None (no agent, no prefix cache)."""
    if inst is None:
        return None
    block, has_cache = served_cache(inst)
    found = ceiling_for(inst.engine, block, results) if has_cache else None
    return steady(found[0]) if found is not None else None
