"""The block-level ceiling: the most prefix-cache hits the prompts a run actually sent could get.

Same rules as vLLM's prefix cache (inference-servers.md 1.5) and the compiler's planner: only full
blocks are cached and matched, a block matches only when every block before it matches (the key of
a block is its whole prefix), and the last prompt token is always recomputed, so a prompt of L tokens
can hit at most floor((L-1)/B) blocks. Every distinct block must be computed once by some request;
a block that some request computes in its last, never-hittable full position comes for free, and
so does a block of generated text (the engine caches those too; a later prompt quoting an earlier
answer — a tree search, a growing history — can hit them).

    ceiling = Σ_p floor((L_p-1)/B)·B  -  B·|{blocks first needed in a hittable position}|

which is reached by any order in which each block's first user comes before its other users, so it
is the best an infinite cache could do for these exact prompts, whatever order or concurrency the
plan chose. It is computed on the server's own token ids (returned with each response, else `/tokenize`), not on
estimates.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

from daemon.bench.records import Ceiling


def block_keys(tokens: Sequence[int], block_size: int) -> list[bytes]:
    keys: list[bytes] = []
    parent = b""
    for i in range(len(tokens) // block_size):
        block = tokens[i * block_size : (i + 1) * block_size]
        parent = hashlib.blake2b(parent + b"|" + ",".join(map(str, block)).encode(), digest_size=16).digest()
        keys.append(parent)
    return keys


class CeilingTracker:
    """The ceiling over every prompt sent since the cache was last reset, run after run.

    The server's cache outlives a run (the next record's calls find the system prompt of the last
    one), so a run's ceiling is what *its* prompts add to the ceiling of the whole sequence so far;
    the per-run figures then sum to the ceiling of the mode, like the server's counters do.
    """

    def __init__(self, block_size: int) -> None:
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        self.block_size = block_size
        self.hittable_total = 0
        self.prompt_tokens = 0
        self.needed: set[bytes] = set()  # blocks that sit where some request could hit them
        self.free: set[bytes] = set()  # blocks some request computes in a position it can never hit

    def cached_tokens(self) -> int:
        return (self.hittable_total - len(self.needed - self.free)) * self.block_size

    def add(
        self, prompts: Sequence[Sequence[int]], generated: Sequence[Sequence[int]] | None = None
    ) -> Ceiling:
        """Add one run's prompts; returns that run's share of the ceiling.

        `generated[i]` are the tokens request i generated: the engine computes (and caches) their
        blocks too, except the last token's, so a later prompt that quotes the output can hit them.
        """
        before_cached, before_tokens = self.cached_tokens(), self.prompt_tokens
        for i, tokens in enumerate(prompts):
            extra = list(generated[i][:-1]) if generated is not None and generated[i] else []
            keys = block_keys([*tokens, *extra], self.block_size)
            hittable = max(0, len(tokens) - 1) // self.block_size
            self.hittable_total += hittable
            self.prompt_tokens += len(tokens)
            self.needed.update(keys[:hittable])
            self.free.update(keys[hittable:])
        return Ceiling(
            block_size=self.block_size,
            prompt_tokens=self.prompt_tokens - before_tokens,
            cached_tokens=self.cached_tokens() - before_cached,
        )


def block_ceiling(prompts: Sequence[Sequence[int]], block_size: int) -> Ceiling:
    """The ceiling of one sequence of prompts on a cache that starts empty."""
    return CeilingTracker(block_size).add(prompts)


class LruTracker:
    """The prefix-cache hits of the same prompts on a cache of `capacity_blocks`, evicting least recently
    used blocks first: what the server's KV size allows for this order of requests.

    As vLLM's block pool does: a request hits its leading cached blocks (up to its last token), then every
    full block it computed, its generated text's included, stays cached; freed blocks are evicted oldest
    first, and of one request's blocks the tail goes before the head (they are freed in reverse).
    Requests are taken one at a time; `beside` requests running next to each one (the server's mean
    concurrency less one) hold blocks of their own, taken as the mean request's, out of the capacity.
    """

    def __init__(self, block_size: int, capacity_blocks: int, beside: float = 0.0) -> None:
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        self.block_size = block_size
        self.capacity = max(0, capacity_blocks)
        self.beside = max(0.0, beside)
        self.cache: OrderedDict[bytes, None] = OrderedDict()
        self.prompt_tokens = 0
        self.cached = 0
        self.requests = 0
        self.request_blocks = 0

    def held_blocks(self) -> int:
        """Blocks the requests running beside one hold (mean request size so far x `beside`)."""
        if not self.requests:
            return 0
        return min(self.capacity, round(self.beside * self.request_blocks / self.requests))

    def cached_tokens(self) -> int:
        return self.cached

    def add(
        self, prompts: Sequence[Sequence[int]], generated: Sequence[Sequence[int]] | None = None
    ) -> Ceiling:
        before_cached, before_tokens = self.cached, self.prompt_tokens
        for i, tokens in enumerate(prompts):
            extra = list(generated[i][:-1]) if generated is not None and generated[i] else []
            keys = block_keys([*tokens, *extra], self.block_size)
            hittable = max(0, len(tokens) - 1) // self.block_size
            hits = 0
            while hits < hittable and keys[hits] in self.cache:
                hits += 1
            self.cached += hits * self.block_size
            self.prompt_tokens += len(tokens)
            self.requests += 1
            self.request_blocks += len(keys)
            for key in reversed(keys):  # the head ends most recent: the tail is evicted first
                self.cache[key] = None
                self.cache.move_to_end(key)
            while self.cache and len(self.cache) > self.capacity - self.held_blocks():
                self.cache.popitem(last=False)
        return Ceiling(
            block_size=self.block_size,
            prompt_tokens=self.prompt_tokens - before_tokens,
            cached_tokens=self.cached - before_cached,
        )
