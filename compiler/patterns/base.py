"""What every pattern detector gets to look at, and the helpers they share.

A detector is a module with `KIND`, `POSITIVE_EXAMPLES`, `NEGATIVE_EXAMPLES` (small agent programs
that must / must not produce the finding; `tests/compiler/test_patterns.py` runs them, as Fixit runs
a lint rule's examples) and `detect(ctx) -> list[Finding]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from compiler.model import CallSite, Edge, LoopContext, Segment
from compiler.prefix import (
    MARK_CLOSE,
    MARK_OPEN,
    ExecutionResult,
    PrefixSimulator,
    Unit,
    _lcp,
    share,
    units_of,
)
from compiler.tokens import FILL_TOKENS, Tokenizer

MIN_SHARED_PREFIX_TOKENS = 32  # below two vLLM blocks a shared prefix saves nothing worth a finding
MIN_LARGE_INPUT_TOKENS = 64
MIN_LONG_STATIC_TOKENS = 64
DEFAULT_BLOCK_SIZE = 16  # vLLM's default block size: figures in findings are at this granularity


@dataclass
class Context:
    calls: list[CallSite]
    edges: list[Edge]
    order: list[str]
    graph: nx.DiGraph[str]  # nodes are call ids
    tok: Tokenizer
    sim: PrefixSimulator
    baseline: list[ExecutionResult]
    block_size: int = DEFAULT_BLOCK_SIZE
    two_requests: list[ExecutionResult] | None = None  # baseline plus a second request (steady state)
    _enc: dict[str, tuple[str, list[tuple[int, int, Unit]]]] = field(default_factory=dict)
    _unit_cache: dict[str, list[Unit]] = field(default_factory=dict)
    _by_id: dict[str, CallSite] = field(default_factory=dict)

    @property
    def by_id(self) -> dict[str, CallSite]:
        if len(self._by_id) != len(self.calls):
            self._by_id = {c.id: c for c in self.calls}
        return self._by_id

    def encoding(self, cid: str) -> tuple[str, list[tuple[int, int, Unit]]]:
        if cid not in self._enc:
            self._enc[cid] = self.sim._encode(units_of(self.by_id[cid].segments), 0)
        return self._enc[cid]

    def tokens_upto(self, cid: str, chars: int) -> int:
        return self.sim._tokens_upto(self.encoding(cid)[1], chars)

    def share_of(self, results: list[ExecutionResult], calls: set[str] | None = None,
                 request: int | None = None) -> float:
        return round(share(results, self.block_size, calls, request)[2], 4)

    def simulate(self, shapes: dict[str, list[Unit]], requests: int = 1,
                 focus: set[str] | None = None) -> list[ExecutionResult]:
        """Re-run the simulation with some calls reshaped. With `focus`, only those calls and the calls
        they depend on run: per-finding figures stay local, and the cost stays linear in findings."""
        calls, order = self.calls, self.order
        if focus is not None:
            keep = set(focus)
            for cid in focus:
                keep |= nx.ancestors(self.graph, cid)
            calls = [c for c in self.calls if c.id in keep]
            order = [c for c in self.order if c in keep]
        full = {c.id: self._units(c) for c in calls}
        full.update(shapes)
        return self.sim.run(calls, order, full, requests)

    def _units(self, call: CallSite) -> list[Unit]:
        if call.id not in self._unit_cache:
            self._unit_cache[call.id] = units_of(call.segments)
        return self._unit_cache[call.id]

    def agent_loops(self, call: CallSite) -> list[LoopContext]:
        return [l for l in call.loops if not l.request_loop]


def exclusive(a: CallSite, b: CallSite) -> bool:
    """True when the two calls sit in different arms of the same if/match: only one of them runs."""
    arms = {br.line: (br.arm if br.arm != "case" else f"case:{br.test}") for br in a.branches}
    for br in b.branches:
        mine = br.arm if br.arm != "case" else f"case:{br.test}"
        if br.line in arms and arms[br.line] != mine:
            return True
    return False


def compatible(calls: list[CallSite]) -> list[CallSite]:
    """The calls in order, dropping any that cannot run in the same request as an earlier one kept."""
    kept: list[CallSite] = []
    for c in calls:
        if not any(exclusive(c, k) for k in kept):
            kept.append(c)
    return kept


def lcp_chars(a: str, b: str) -> int:
    """Longest common prefix in characters, never ending inside a run-time value's marker."""
    i = _lcp(a, b)
    opened = a.rfind(MARK_OPEN, 0, i)
    if opened != -1 and a.find(MARK_CLOSE, opened, i) == -1:
        return opened
    return i


def readable(encoded: str, limit: int = 80) -> str:
    """An encoded prefix for people: run-time values shown as `{key}`."""
    out = encoded.replace(MARK_OPEN, "{").replace(MARK_CLOSE, "}")
    out = out.replace("\n", "\\n")
    return out if len(out) <= limit else out[: limit - 3] + "..."


def delta_tokens(seg: Segment) -> int:
    """Tokens of a segment that change between loop iterations."""
    if not seg.varies_in_loop:
        return 0
    if seg.fills:
        return min(seg.tokens, FILL_TOKENS)
    return seg.tokens


def split_units(units: list[Unit], chars: int, tok: Tokenizer) -> tuple[list[Unit], list[Unit]]:
    """Split a unit list at a character position of its encoding (literal text may be split)."""
    head: list[Unit] = []
    pos = 0
    for i, u in enumerate(units):
        end = pos + len(u.text)
        if end <= chars:
            head.append(u)
            pos = end
            continue
        if pos < chars and not u.dynamic and not u.atomic:
            cut = chars - pos
            a, b = u.text[:cut], u.text[cut:]
            head.append(Unit(a, tok.count(a)))
            return head, [Unit(b, tok.count(b))] + units[i + 1:]
        return head, units[i:]
    return head, []
