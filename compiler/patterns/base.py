"""What every pattern rule gets to look at, the rule's shape, and the helpers rules share.

A rule is a `PatternRule` subclass, as a Fixit lint rule is a class: `KIND`, `detect(ctx)`, and examples
that document and test it at once. `VALID` are small agent programs the rule must not flag; each `INVALID`
carries the finding it must produce (its calls, line and every figure) and, for an anti-pattern, the file as
the automatic fix rewrites it. `tests/compiler/test_pattern_rules.py` runs every rule's examples. `detect`
stays a module function beside the class (mutation reports and the tests of figures name it there).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import networkx as nx

from compiler.model import CallSite, Edge, Finding, LoopContext, PatternKind, Segment
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

    def share_of(
        self, results: list[ExecutionResult], calls: set[str] | None = None, request: int | None = None
    ) -> float:
        return round(share(results, self.block_size, calls, request)[2], 4)

    def simulate(
        self, shapes: dict[str, list[Unit]], requests: int = 1, focus: set[str] | None = None
    ) -> list[ExecutionResult]:
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


FigureValue = float | int | str | bool | list[str]


@dataclass(frozen=True)
class Valid:
    """An agent program the rule must not flag."""

    code: str


@dataclass(frozen=True)
class Invalid:
    """An agent program the rule flags, with the one finding it must produce: its calls, its line and all its
    figures (exactly these). For an anti-pattern, `fixed` is the file as the automatic fix rewrites it (None:
    the rule expects no automatic rewrite)."""

    code: str
    calls: tuple[str, ...]
    line: int
    figures: Mapping[str, FigureValue]
    fixed: str | None = None


class PatternRule(ABC):
    """A memoization pattern: what it is (`KIND`), how it is found (`detect`), and examples of both."""

    KIND: ClassVar[PatternKind]
    VALID: ClassVar[tuple[Valid, ...]]
    INVALID: ClassVar[tuple[Invalid, ...]]

    @staticmethod
    @abstractmethod
    def detect(ctx: Context) -> list[Finding]:
        """Every finding of this pattern in the program `ctx` describes (each subclass binds its module's
        `detect`)."""


def exclusive(a: CallSite, b: CallSite) -> bool:
    """True when the two calls sit in different arms of the same if/match: only one of them runs."""
    arms = {br.line: (br.arm if br.arm != "case" else f"case:{br.test}") for br in a.branches}
    for br in b.branches:
        mine = br.arm if br.arm != "case" else f"case:{br.test}"
        if br.line in arms and arms[br.line] != mine:
            return True
    return False


def gathered_inputs(ctx: Context, cid: str) -> list[str]:
    """The calls whose outputs `cid` gathers, map -> reduce: several calls none of which leads to another
    (and which can run in the same request), or a call in a loop `cid` is not in whose output does not
    feed its own next iteration (every iteration's output is collected). Empty when `cid` continues
    from one earlier call, as a step of a chain does."""
    by_id = ctx.by_id
    preds = sorted(ctx.graph.predecessors(cid), key=lambda c: int(c[1:]))
    own_loops = ctx.agent_loops(by_id[cid])
    own_lines = {loop.line for loop in own_loops}
    looped = {
        p
        for p in preds
        if not by_id[p].loop_carried
        and any(l.line not in own_lines for l in ctx.agent_loops(by_id[p]))
        # `for sol in solutions: f(sol)` continues from each output in turn (a tree), gathers none
        and not any(p in loop.over_calls for loop in own_loops)
    }
    # A predecessor that leads to another one is continued through it (`c = f(a, b)` after `b = g(a)`
    # gathers nothing): only the latest inputs, which no other input follows, can be independent maps.
    latest = [p for p in preds if not any(o != p and nx.has_path(ctx.graph, p, o) for o in preds)]
    independent = [c.id for c in compatible([by_id[p] for p in latest])]
    gathered = looped | (set(independent) if len(independent) >= 2 else set())
    return sorted(gathered, key=lambda c: int(c[1:]))


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
            return head, [Unit(b, tok.count(b))] + units[i + 1 :]
        return head, units[i:]
    return head, []
