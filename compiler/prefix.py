"""Prefix-cache simulation over the calls of one request, at engine block granularity.

Every execution of every call (a call in a loop runs once per assumed iteration) is encoded as a
string: literal text as itself, each run-time value as a private-use marker holding its identity, with
an iteration suffix when it changes between iterations. The longest prefix an execution shares with
any earlier one is then a string LCP, found among the two sorted neighbours of the new string (the
longest common prefix with a set of strings is always reached by a sorted neighbour), so the whole
simulation is O(n log n) in executions. Engines only reuse full blocks and always recompute the last
prompt token (vLLM `num_tokens - 1`), so the reusable length is floored to the block size.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from compiler.model import CallSite, Segment
from compiler.tokens import Tokenizer

MARK_OPEN, MARK_CLOSE = "\ue000", "\ue001"
MAX_EXECUTIONS_PER_CALL = 64


@dataclass(frozen=True, slots=True)
class Unit:
    text: str  # literal text, or the marker of a run-time value
    tokens: int
    dynamic: bool = False
    varies: bool = False
    atomic: bool = False  # role headers and markers: a partial match counts nothing


def units_of(segments: list[Segment]) -> list[Unit]:
    out: list[Unit] = []
    for s in segments:
        if s.kind == "static":
            out.append(Unit(s.text, s.tokens, atomic=s.synthetic))
        else:
            out.append(
                Unit(
                    MARK_OPEN + (s.key or s.text) + MARK_CLOSE,
                    s.tokens,
                    dynamic=True,
                    varies=s.varies_in_loop,
                    atomic=True,
                )
            )
    return out


def executions_of(call: CallSite, iterations: int) -> int:
    n = 1
    for loop in call.loops:
        if loop.request_loop:
            continue
        n *= iterations
    return min(n, MAX_EXECUTIONS_PER_CALL)


@dataclass
class ExecutionResult:
    call: str
    iteration: int
    total: int
    reusable: int  # longest prefix (tokens) shared with an earlier execution, before block flooring
    request: int = 0
    weight: float = 1.0  # probability the call runs: branch arms count as equally likely


class PrefixSimulator:
    def __init__(self, tok: Tokenizer, iterations: int = 10) -> None:
        self.tok = tok
        self.iterations = iterations

    def _encode(
        self, units: list[Unit], iteration: int, request: int = 0
    ) -> tuple[str, list[tuple[int, int, Unit]]]:
        pieces: list[str] = []
        spans: list[tuple[int, int, Unit]] = []
        pos = 0
        for u in units:
            text = u.text
            if u.dynamic and u.varies:
                text = text[:-1] + f"#{iteration}" + MARK_CLOSE
            if u.dynamic and request:
                text = text[:-1] + f"@{request}" + MARK_CLOSE  # another request: other inputs, other outputs
            pieces.append(text)
            spans.append((pos, pos + len(text), u))
            pos += len(text)
        return "".join(pieces), spans

    def _tokens_upto(self, spans: list[tuple[int, int, Unit]], upto: int) -> int:
        total = 0
        for start, end, u in spans:
            if end <= upto:
                total += u.tokens
                continue
            if start < upto and not u.atomic and not u.dynamic:
                total += min(u.tokens, self.tok.count(u.text[: upto - start]))
            break
        return total

    def run(
        self,
        calls: list[CallSite],
        order: list[str],
        shapes: dict[str, list[Unit]] | None = None,
        requests: int = 1,
    ) -> list[ExecutionResult]:
        """Executions of `requests` consecutive requests; later ones find the earlier ones' blocks cached."""
        by_id = {c.id: c for c in calls}
        weights = branch_weights(calls)
        seen: list[str] = []
        results: list[ExecutionResult] = []
        for request, cid in ((r, c) for r in range(requests) for c in order):
            call = by_id[cid]
            units = shapes[cid] if shapes is not None else units_of(call.segments)
            total = sum(u.tokens for u in units)
            runs = executions_of(call, self.iterations)
            # Iterations 2..n see exactly what iteration 1 sees (earlier iterations of the same shape, and
            # the same-numbered iteration of calls before it in the loop), so simulate two and weight the
            # second by n - 1: same figures, and the cost no longer grows with the assumed loop count.
            for it in range(min(runs, 2)):
                repeat = 1 if it == 0 else runs - 1
                enc, spans = self._encode(units, it, request)
                best = 0
                i = bisect.bisect_left(seen, enc)
                for j in (i - 1, i):
                    if 0 <= j < len(seen):
                        best = max(best, _lcp(seen[j], enc))
                best = _cut_to_marker(enc, best)
                reusable = self._tokens_upto(spans, best) if best else 0
                results.append(ExecutionResult(cid, it, total, reusable, request, weights[cid] * repeat))
                bisect.insort(seen, enc)
        return results


def branch_weights(calls: list[CallSite]) -> dict[str, float]:
    """How likely each call is to run, taking every arm of an if/elif/else/match as equally likely.

    An `if` has two arms even when only one holds calls (the other may be empty or implicit).
    """
    arms: dict[int, set[str]] = {}
    for c in calls:
        for b in c.branches:
            arms.setdefault(b.line, set()).add(b.arm if b.arm != "case" else f"case:{b.test}")
    out: dict[str, float] = {}
    for c in calls:
        w = 1.0
        for b in c.branches:
            w /= max(2, len(arms[b.line]))
        out[c.id] = w
    return out


def _lcp(a: str, b: str) -> int:
    """Length of the common prefix of two strings."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # binary search on slice equality: C-speed comparisons instead of a Python char loop
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _cut_to_marker(enc: str, n: int) -> int:
    """Never count half a run-time value: cut back to the start of an unfinished marker."""
    opened = enc.rfind(MARK_OPEN, 0, n)
    if opened != -1 and enc.find(MARK_CLOSE, opened, n) == -1:
        return opened
    return n


def cached_tokens(reusable: int, total: int, block_size: int) -> int:
    limit = max(0, total - 1)  # the last prompt token is always recomputed to produce logits
    usable = min(reusable, limit)
    return (usable // block_size) * block_size


def share(
    results: list[ExecutionResult], block_size: int, calls: set[str] | None = None, request: int | None = None
) -> tuple[int, int, float]:
    """(cached tokens, prompt tokens, share) over the executions of `calls` (all) in `request` (all)."""
    cached: float = 0  # weighted sums: an execution's weight may be fractional
    total: float = 0
    for r in results:
        if calls is not None and r.call not in calls:
            continue
        if request is not None and r.request != request:
            continue
        cached += cached_tokens(r.reusable, r.total, block_size) * r.weight
        total += r.total * r.weight
    return round(cached), round(total), (cached / total if total else 0.0)
