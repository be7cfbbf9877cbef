"""The cache doctor's waterfall: from what the code could reuse to what the server delivered, in points.

    ceiling (the compiler's estimate for the traffic)
      - capacity   the plan's working set does not fit the server's KV cache at the observed concurrency
      - resets     requests served right after a restart or a cache reset find it empty
      - routing    requests with the same prefix spread over replicas that do not share a cache
      - eviction   what is left between the steps above and the measurement, where it shows as eviction
                   (KV usage at the top, preemptions); else "unexplained", never hidden
      = delivered  the server's own prefix-cache hits / queries over the window

Each step says its evidence and whether it is measured or inferred, and names the lever that recovers
it. Pure: the caller gathers the inputs (store samples, the server's `cache_config_info`, the compiled
plan) and renders the result; nothing here reads a file or a socket.

The model is deliberately simple and says so: the capacity step assumes an LRU cache keeps the share
of the working set it can hold (so the hit share scales by capacity / working set); a reset costs the
hits of the requests in the first window after it; routing without affinity loses (replicas-1)/replicas
of the cross-request reuse. Each assumption is in the step's `evidence`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

StepName = Literal[
    "ceiling", "order", "capacity", "resets", "routing", "eviction", "unexplained", "delivered"
]
KV_FULL = 0.95  # KV usage at or above this share counts as a full cache (evictions likely)
MIB = 1 << 20


@dataclass(frozen=True)
class DoctorInputs:
    ceiling: float  # the compiler's estimate for this traffic (0..1)
    ceiling_source: str  # where the ceiling comes from, shown as its evidence
    hits: float  # the server's prefix-cache hits over the window (tokens)
    queries: float  # the server's prefix-cache queries over the window (tokens)
    kv_capacity_tokens: int | None = None  # the server's KV cache size (vLLM: kv_cache_size_tokens)
    working_set_tokens: int | None = None  # the plan's shared prefixes + per-request tokens in flight
    # The estimate's requests replayed in the order sent: on an unbounded cache (what the order allows),
    # and on an LRU cache of the server's size less what the requests running beside each one hold
    # (`bounded_cache_tokens`); `needed_tokens` is the smallest cache at which the two meet.
    order_estimate: float | None = None
    capacity_estimate: float | None = None
    bounded_cache_tokens: int | None = None
    needed_tokens: int | None = None
    concurrency: float | None = None  # mean requests running over the window
    queries_after_reset: float = 0.0  # queries in the first window after each restart or cache reset
    resets: int = 0
    replicas: int = 1
    kv_full_share: float | None = None  # share of the window's samples with KV usage >= KV_FULL
    preemptions: float = 0.0


@dataclass(frozen=True)
class Step:
    name: StepName
    points: float  # lost (positive) in percentage points; for ceiling/delivered, the level itself
    evidence: str
    inferred: bool
    lever: str | None = None


@dataclass
class Waterfall:
    steps: list[Step] = field(default_factory=list)

    @property
    def ceiling(self) -> float:
        return self.steps[0].points

    @property
    def delivered(self) -> float:
        return self.steps[-1].points

    def losses(self) -> list[Step]:
        return [s for s in self.steps if s.name not in ("ceiling", "delivered")]


def _pts(share: float) -> float:
    return round(share * 100, 1)


def waterfall(x: DoctorInputs) -> Waterfall:
    """The steps from ceiling to delivered; the losses add up to the gap (the last is the rest), up to the
    rounding of each to 0.1 point."""
    delivered = x.hits / x.queries if x.queries else 0.0
    steps = [Step("ceiling", _pts(x.ceiling), x.ceiling_source, inferred=False)]
    level = x.ceiling

    if x.order_estimate is not None:
        lost = max(0.0, level - x.order_estimate)
        steps.append(
            Step(
                "order",
                _pts(lost),
                f"in the order sent, {x.order_estimate:.1%} can hit even on an unbounded cache"
                + (": some requests come before the one that computes their prefix" if lost > 0 else ""),
                inferred=True,
                lever="the plan's order and warm-ups (charter-tui bench shows them)" if lost > 0 else None,
            )
        )
        level -= lost

    # Capacity: the working set against the cache, at the observed concurrency.
    if x.capacity_estimate is not None and x.kv_capacity_tokens:
        lost = max(0.0, level - x.capacity_estimate)
        bounded = x.bounded_cache_tokens if x.bounded_cache_tokens is not None else x.kv_capacity_tokens
        held = x.kv_capacity_tokens - bounded
        what = (
            f"the same requests replayed in order on an LRU cache of {bounded:,} tokens"
            + (
                f" (the server's {x.kv_capacity_tokens:,}, less {held:,} held by the {x.concurrency:.1f} "
                "requests running)"
                if held and x.concurrency
                else " (the server's KV cache)"
            )
            + f" hit {x.capacity_estimate:.1%}"
            + (f"; working set {x.working_set_tokens:,} tokens" if x.working_set_tokens else "")
            + (
                f"; a cache of {x.needed_tokens:,} tokens would keep them all"
                if lost > 0 and x.needed_tokens
                else ""
            )
        )
        lever = (
            "more KV memory (--kv-cache-memory-bytes, --gpu-memory-utilization, --num-gpu-blocks-override; "
            "VLLM_CPU_KVCACHE_SPACE)"
            if lost > 0
            else None
        )
        steps.append(Step("capacity", _pts(lost), what, inferred=True, lever=lever))
        level -= lost
    elif x.kv_capacity_tokens and x.working_set_tokens:
        fits = min(1.0, x.kv_capacity_tokens / x.working_set_tokens)
        lost = level * (1.0 - fits)
        what = (
            f"working set {x.working_set_tokens:,} tokens"
            + (f" at {x.concurrency:.1f} requests running" if x.concurrency is not None else "")
            + f" vs a KV cache of {x.kv_capacity_tokens:,} tokens"
        )
        if lost > 0:
            evidence = f"{what}: {fits:.0%} of it fits, LRU keeps that share (assumed)"
            lever = (
                "more KV memory (--gpu-memory-utilization, --kv-cache-memory-bytes; VLLM_CPU_KVCACHE_SPACE)"
            )
        else:
            evidence, lever = f"{what}: it fits", None
        steps.append(Step("capacity", _pts(lost), evidence, inferred=True, lever=lever))
        level -= lost
    else:
        steps.append(Step("capacity", 0.0, "the server's KV size or the plan's working set is unknown", True))

    # Resets: the first window after a restart starts cold.
    if x.resets and x.queries:
        lost = level * min(1.0, x.queries_after_reset / x.queries)
        steps.append(
            Step(
                "resets",
                _pts(lost),
                f"{x.resets} restart(s)/reset(s); {x.queries_after_reset:,.0f} of {x.queries:,.0f} queried "
                "tokens came in the first window after one (served cold)",
                inferred=True,
                lever="warm the shared prefixes after a restart (the plan's warm-ups)",
            )
        )
        level -= lost
    else:
        steps.append(Step("resets", 0.0, "no restart or cache reset in the window", inferred=False))

    # Routing: replicas without prefix affinity split the reuse.
    if x.replicas > 1:
        lost = level * (x.replicas - 1) / x.replicas
        steps.append(
            Step(
                "routing",
                _pts(lost),
                f"{x.replicas} replicas without prefix affinity: a prefix is cached on the one that served it",
                inferred=True,
                lever="route by prefix (session affinity / a prefix-aware router)",
            )
        )
        level -= lost
    else:
        steps.append(Step("routing", 0.0, "one replica", inferred=False))

    # What is left: eviction where the server shows it, else unexplained.
    rest = level - delivered
    full = x.kv_full_share or 0.0
    if rest > 0 and (full > 0 or x.preemptions > 0):
        steps.append(
            Step(
                "eviction",
                _pts(rest),
                f"KV usage at or over {KV_FULL:.0%} in {full:.0%} of the window, {x.preemptions:,.0f} preemptions "
                "(the engine exports no eviction counter: the rest of the gap, inferred)",
                inferred=True,
                lever="more KV memory, or retention for the shared prefixes where the engine takes it",
            )
        )
    else:
        steps.append(
            Step(
                "unexplained",
                _pts(rest),
                "the rest of the gap"
                + (" (negative: the server beat the modelled steps)" if rest < 0 else "")
                + "; no cache pressure seen",
                inferred=True,
            )
        )
    steps.append(
        Step("delivered", _pts(delivered), "the server's prefix-cache hits / queries", inferred=False)
    )
    return Waterfall(steps)


HEADROOM = (
    1.25  # on top of the replay's need: traffic varies, and a cache run at its edge evicts (1.5 changed
)
# nothing in the doctor scenario: 3.0 points unexplained after, vs 3.1 and 4.0 at 1.25, none of it eviction)


def capacity_change(cache_config: dict[str, str], needed_tokens: int) -> tuple[str, int | float, str] | None:
    """The engine setting that gives the KV cache `needed_tokens` (with headroom): (parameter, value, how it
    was worked out), from what `vllm:cache_config_info` says sized the cache; None when it is big enough
    or nothing says how it was sized."""

    def number(key: str) -> float | None:
        try:
            return float(cache_config.get(key, ""))
        except ValueError:
            return None

    size, block = number("kv_cache_size_tokens"), number("block_size")
    want = math.ceil(needed_tokens * HEADROOM)
    if not size or not block or want <= size:
        return None
    override = number("num_gpu_blocks_override")
    if override:
        blocks = math.ceil(want / block) + 1  # the pool keeps one null block back
        return "num_gpu_blocks_override", blocks, f"{blocks} blocks of {block:.0f} tokens"
    memory = number("kv_cache_memory_bytes")
    if memory:
        per_token = memory / size
        value = math.ceil((want + block) * per_token / MIB) * MIB  # + the null block, whole MiB
        return "kv_cache_memory_bytes", value, f"{per_token:,.0f} bytes per token x {want:,} tokens"
    util = number("gpu_memory_utilization")
    if util:
        # KV memory is what is left of util x device after the weights: raising util by the same factor
        # more than covers it (an upper bound; the weights do not grow).
        share = round(min(0.95, util * want / size), 2)
        if share > util:
            return "gpu_memory_utilization", share, f"at most {want / size:.1f}x the KV memory"
    return None
