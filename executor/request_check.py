"""Predicted vs delivered, per request: which requests of a traced run missed the prefix cache, and why.

For each request the prediction is what a warm cache of unbounded size would serve it: the leading
full blocks of its prompt (same rules as vLLM's prefix cache, `executor/ceiling.py`: full blocks only,
a block matches only when every block before it matches, the last prompt token is always computed)
that some *other* request of the run also sends. That is the plan's steady state for this traffic —
the traffic recurs, so a prefix two requests share is there to be hit — and it is computed on the
server's own token ids, so a difference from the delivered `cached_tokens` is the server's doing, not
an estimate's.

A request that got at least one block less than predicted is a miss, and the first block it missed
tells the reason, from the requests sent before it that compute that block:

- first    none did: the first request with this prefix (a cold cache; a warm-up would have served it);
- in flight  they had, but none had finished its prefill when this one was sent (siblings sent together
             each compute the shared prefix: the plan's ordering or a warm-up avoids it);
- replica  the ones that finished went to another server (no shared cache between replicas);
- evicted  one finished on the same server, and the block was gone: evicted (or the cache reset) —
           with the tokens sent in between against the server's KV size, when that is known.

Pure: the caller gathers the records and the token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from executor.ceiling import block_keys

Cause = Literal["first", "in_flight", "replica", "evicted"]


@dataclass(frozen=True)
class SentRequest:
    """One request as the server's cache saw it."""

    seq: int
    call_id: str | None
    replica: str  # the server it went to (base URL)
    started_at: float  # seconds, any common clock
    prefilled_at: float  # when its prompt was computed: first token when streamed, else the answer
    tokens: Sequence[int]  # the prompt's token ids, as the server tokenized it
    delivered: int | None  # the server's cached_tokens for it; None when it did not say
    checked: bool = True  # False for a warm-up: it computes blocks, it is not judged


@dataclass(frozen=True)
class RequestCheck:
    seq: int
    call_id: str | None
    prompt_tokens: int
    predicted: int
    delivered: int | None
    cause: Cause | None = None
    reason: str | None = None

    @property
    def missed(self) -> int:
        return max(0, self.predicted - (self.delivered or 0)) if self.delivered is not None else 0


def check_requests(
    sent: Sequence[SentRequest], block_size: int, kv_capacity_tokens: int | None = None
) -> list[RequestCheck]:
    """One check per judged request, in the order they were sent."""
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    order = sorted(sent, key=lambda r: (r.started_at, r.seq))
    keys = {r.seq: block_keys(r.tokens, block_size) for r in order}
    senders: dict[bytes, set[int]] = {}
    for r in order:
        for k in keys[r.seq]:
            senders.setdefault(k, set()).add(r.seq)
    out: list[RequestCheck] = []
    for pos, r in enumerate(order):
        if not r.checked:
            continue
        hittable = max(0, len(r.tokens) - 1) // block_size
        shared = 0
        for k in keys[r.seq][:hittable]:
            if not senders[k] - {r.seq}:
                break
            shared += 1
        predicted = shared * block_size
        check = RequestCheck(r.seq, r.call_id, len(r.tokens), predicted, r.delivered)
        if r.delivered is not None and predicted - r.delivered >= block_size:
            first_missed = max(0, r.delivered) // block_size
            cause, reason = _why(r, order[:pos], keys, keys[r.seq][first_missed], first_missed, block_size)
            if cause == "evicted" and kv_capacity_tokens:
                reason += _pressure(r, order[:pos], keys[r.seq][first_missed], keys, kv_capacity_tokens)
            check = RequestCheck(r.seq, r.call_id, len(r.tokens), predicted, r.delivered, cause, reason)
        out.append(check)
    return out


def _why(
    r: SentRequest,
    before: Sequence[SentRequest],
    keys: dict[int, list[bytes]],
    key: bytes,
    block: int,
    block_size: int,
) -> tuple[Cause, str]:
    where = f"block {block} (tokens {block * block_size}..{(block + 1) * block_size - 1})"
    computed = [b for b in before if key in keys[b.seq]]
    if not computed:
        return "first", f"first request with this prefix: no request before it sent {where}"
    done = [b for b in computed if b.prefilled_at <= r.started_at]
    if not done:
        b = computed[-1]
        return "in_flight", (
            f"sent {r.started_at - b.started_at:.2f}s after #{b.seq}, which computes {where}, "
            f"before its prefill had finished ({b.prefilled_at - b.started_at:.2f}s)"
        )
    same = [b for b in done if b.replica == r.replica]
    if not same:
        return "replica", f"#{done[-1].seq} computed {where} on another server ({done[-1].replica})"
    b = same[-1]
    return "evicted", (
        f"#{b.seq} computed {where} {r.started_at - b.prefilled_at:.2f}s earlier on this server, and it was gone "
        "(evicted, or the cache was reset)"
    )


def _pressure(
    r: SentRequest, before: Sequence[SentRequest], key: bytes, keys: dict[int, list[bytes]], capacity: int
) -> str:
    """The tokens sent between the last computation of the block and this request, against the cache."""
    last = max((i for i, b in enumerate(before) if key in keys[b.seq]), default=None)
    if last is None:
        return ""
    between = sum(len(b.tokens) for b in before[last + 1 :] if b.replica == r.replica)
    verdict = "more than" if between > capacity else "within"
    return f"; {between:,} tokens sent in between, {verdict} the KV cache's {capacity:,}"


def summary(checks: Sequence[RequestCheck]) -> dict[str, int]:
    """Totals: predicted and delivered tokens over the requests that reported, misses by cause."""
    known = [c for c in checks if c.delivered is not None]
    out = {
        "requests": len(checks),
        "reported": len(known),
        "prompt": sum(c.prompt_tokens for c in known),
        "predicted": sum(c.predicted for c in known),
        "delivered": sum(c.delivered or 0 for c in known),
        "misses": sum(1 for c in known if c.cause),
    }
    for c in known:
        if c.cause:
            out[c.cause] = out.get(c.cause, 0) + 1
    return out
