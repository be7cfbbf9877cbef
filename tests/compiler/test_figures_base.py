"""The detectors' shared helpers (compiler/patterns/base.py), pinned by hand-worked values.

The detectors' example programs only reach the easy paths of these helpers: prefixes that end on
static text, previews shorter than the limit, splits at unit boundaries. The mutation run
(docs/mutation.md) showed that their edges could change without a test noticing; each test here
works its expected value out by hand and says how.

Token counts come from a counter that counts the letter `w`, so every literal has a chosen count.
"""

from __future__ import annotations

import networkx as nx
import pytest

from compiler.api import compile_source
from compiler.model import BranchContext, CallSite, Segment
from compiler.patterns.base import (
    Context,
    delta_tokens,
    exclusive,
    lcp_chars,
    readable,
    split_units,
)
from compiler.prefix import MARK_CLOSE, MARK_OPEN, ExecutionResult, PrefixSimulator, Unit
from compiler.tokens import FILL_TOKENS, Tokenizer

from .hand_counts import count_w

O, C = MARK_OPEN, MARK_CLOSE


TOK = Tokenizer(count_w)


# --- lcp_chars: never end inside a run-time value's marker -------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # Plain text: the common prefix, whatever it is ("ab" of "abc"/"abd").
        ("abc", "abd", 2),
        ("abc", "abc", 3),
        ("", "abc", 0),
        ("xbc", "abc", 0),
        # A closed marker inside the prefix is kept: "ab" + 3-char marker, then "c" vs "d" -> 5.
        ("ab" + O + "k" + C + "c", "ab" + O + "k" + C + "d", 5),
        # Two values diverging inside the marker: the raw LCP (3) ends after the open mark, cut back to 2.
        ("ab" + O + "x" + C, "ab" + O + "y" + C, 2),
        # The same with the marker at position 1 and at position 0 (both valid cut points, 1 and 0).
        ("a" + O + "x" + C, "a" + O + "y" + C, 1),
        (O + "x" + C, O + "y" + C, 0),
        # A closed marker (0..2), "zz", then a second marker diverging inside: raw LCP 7 ends inside the
        # second marker, which opens at 5 -> 5 (the first marker's close does not count).
        (O + "k" + C + "zz" + O + "ab" + C, O + "k" + C + "zz" + O + "ac" + C, 5),
        # A marker after the divergence point does not matter: "a" shared, the marker starts at 2.
        ("ab" + O + "x" + C, "ac" + O + "x" + C, 1),
        # A marker opening exactly where the strings diverge is not inside the prefix: 2.
        ("ab" + O + "x" + C, "abc", 2),
    ],
)
def test_lcp_chars(a: str, b: str, expected: int) -> None:
    assert lcp_chars(a, b) == expected


# --- readable: the preview text users read in SHARED_PREFIX findings ----------------------------


def test_readable_shows_markers_as_braces_and_escapes_newlines() -> None:
    enc = O + "param:f:doc" + C + "\nSummarise:\n"
    assert readable(enc) == "{param:f:doc}\\nSummarise:\\n"


def test_readable_keeps_exactly_the_limit_and_cuts_one_more() -> None:
    """80 characters is shown whole; 81 becomes the first 77 and "..." (80 in all)."""
    assert readable("a" * 80) == "a" * 80
    assert readable("a" * 79 + "bc") == "a" * 77 + "..."
    assert len(readable("a" * 200)) == 80


def test_readable_limit_counts_the_escaped_text() -> None:
    """The limit applies after escaping: 40 newlines become 80 characters (kept), 41 become 82 (cut)."""
    assert readable("\n" * 40) == "\\n" * 40
    assert readable("\n" * 41) == "\\n" * 38 + "\\" + "..."
    # A custom limit: 10 -> 7 characters and "...".
    assert readable("abcdefghijk", limit=10) == "abcdefg..."
    assert readable("abcdefghij", limit=10) == "abcdefghij"


# --- split_units: cut a unit list at a character position (MISPLACED_SHARED_CONTEXT's rewrite) ---

HEAD = Unit("ww ", 2)  # chars 0..3
BODY = Unit("www", 3)  # chars 3..6
DOC = Unit(O + "param:f:doc" + C, 750, dynamic=True, atomic=True)  # chars 6..19
HEADER = Unit("<|user|>ww\n", 2, atomic=True)
UNITS = [HEAD, BODY, DOC, Unit("w tail", 1)]


def test_split_inside_literal_text_cuts_the_unit_and_recounts_both_halves() -> None:
    # 5 chars: "ww " whole (2 tokens) and "ww" of "www" (2 tokens); the rest starts with "w" (1 token).
    head, rest = split_units(UNITS, 5, TOK)
    assert head == [HEAD, Unit("ww", 2)]
    assert rest == [Unit("w", 1), DOC, Unit("w tail", 1)]


def test_split_at_a_unit_boundary_keeps_units_whole() -> None:
    # 3 chars is exactly the end of "ww ": nothing is cut, no empty unit appears on either side.
    assert split_units(UNITS, 3, TOK) == ([HEAD], [BODY, DOC, Unit("w tail", 1)])
    assert split_units(UNITS, 6, TOK) == ([HEAD, BODY], [DOC, Unit("w tail", 1)])
    assert split_units(UNITS, 0, TOK) == ([], UNITS)


def test_split_inside_a_run_time_value_or_role_header_does_not_cut_it() -> None:
    # 10 chars falls inside the marker (6..19): the marker goes whole to the rest.
    assert split_units(UNITS, 10, TOK) == ([HEAD, BODY], [DOC, Unit("w tail", 1)])
    # Inside a role header (atomic literal text): not cut either.
    assert split_units([HEADER, BODY], 4, TOK) == ([], [HEADER, BODY])


def test_split_past_the_end_keeps_everything_in_the_head() -> None:
    total = sum(len(u.text) for u in UNITS)
    assert split_units(UNITS, total, TOK) == (UNITS, [])
    assert split_units(UNITS, total + 5, TOK) == (UNITS, [])


def test_split_in_the_last_unit_after_a_marker() -> None:
    # 19 chars ends the marker; 21 cuts "w tail" after "w " (1 token), leaving "tail" (0 tokens).
    head, rest = split_units(UNITS, 21, TOK)
    assert head == [HEAD, BODY, DOC, Unit("w ", 1)]
    assert rest == [Unit("tail", 0)]


# --- delta_tokens: tokens of a segment that change between loop iterations ---------------------


def _seg(tokens: int, varies: bool, fills: list[str] | None = None) -> Segment:
    return Segment(
        kind="dynamic", text="{x}", name="x", key="k", tokens=tokens, varies_in_loop=varies, fills=fills or []
    )


def test_delta_tokens() -> None:
    assert delta_tokens(_seg(40, varies=False)) == 0  # does not change between iterations
    assert delta_tokens(_seg(40, varies=True)) == 40  # changes whole
    # A template filled with `.format(**x)`: only the fills change, at most FILL_TOKENS (50).
    assert FILL_TOKENS == 50
    assert delta_tokens(_seg(550, varies=True, fills=["x"])) == 50
    assert delta_tokens(_seg(30, varies=True, fills=["x"])) == 30


# --- exclusive: two calls in different arms of one if/match ------------------------------------

_BASE = compile_source(
    """
from openai import OpenAI
client = OpenAI()
client.completions.create(model="m", prompt="hello")
""",
    "base.py",
).calls[0]


def _call(cid: str, *branches: tuple[int, str, str]) -> CallSite:
    return _BASE.model_copy(
        update={
            "id": cid,
            "branches": [BranchContext(line=line, arm=arm, test=test) for line, arm, test in branches],
        }
    )


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([(5, "if", "x")], [(5, "else", "x")], True),  # if and its else
        ([(5, "else", "x")], [(5, "if", "x")], True),
        ([(5, "if", "x")], [(5, "if", "x")], False),  # the same arm
        ([(5, "if", "x")], [(7, "else", "y")], False),  # arms of different ifs: both may run
        ([(9, "case", "'a'")], [(9, "case", "'b'")], True),  # two cases of one match
        ([(9, "case", "'a'")], [(9, "case", "'a'")], False),  # the same case
        ([], [(5, "if", "x")], False),
        ([(5, "if", "x")], [], False),
        # Nested: same outer arm, different inner arms -> exclusive; found on the second branch of b.
        ([(5, "if", "x"), (6, "if", "y")], [(5, "if", "x"), (6, "else", "y")], True),
    ],
)
def test_exclusive(a: list[tuple[int, str, str]], b: list[tuple[int, str, str]], expected: bool) -> None:
    assert exclusive(_call("c1", *a), _call("c2", *b)) is expected


# --- Context: the figures every detector reports ------------------------------------------------


def _bare_context(block_size: int = 16) -> Context:
    return Context(
        calls=[],
        edges=[],
        order=[],
        graph=nx.DiGraph(),
        tok=TOK,
        sim=PrefixSimulator(TOK),
        baseline=[],
        block_size=block_size,
    )


def test_share_of_rounds_to_four_places_and_passes_its_filters() -> None:
    results = [
        ExecutionResult("c1", 0, total=48, reusable=20, request=0),  # 16 of 48 cached (16-token blocks)
        ExecutionResult("c2", 0, total=30, reusable=30, request=0),  # limit 29 -> 16 of 30
        ExecutionResult("c1", 0, total=48, reusable=48, request=1),  # limit 47 -> 32 of 48
    ]
    ctx = _bare_context()
    # All: (16 + 16 + 32) / (48 + 30 + 48) = 64 / 126 = 0.507936... -> 0.5079.
    assert ctx.share_of(results) == 0.5079
    # c1 only: (16 + 32) / 96 = 0.5.
    assert ctx.share_of(results, {"c1"}) == 0.5
    # c1 in request 0: 16 / 48 = 0.33333... -> 0.3333 (not 0.33333).
    assert ctx.share_of(results, {"c1"}, request=0) == 0.3333
    # Request 0, both calls: 32 / 78 = 0.410256... -> 0.4103.
    assert ctx.share_of(results, request=0) == 0.4103
    # Token granularity (block 1): c1 in request 0 caches 20 of 48 = 0.416666... -> 0.4167.
    assert _bare_context(block_size=1).share_of(results, {"c1"}, request=0) == 0.4167


SOURCE = """
from openai import OpenAI
client = OpenAI()
POLICY = "%s"

def f(question):
    a = client.completions.create(model="m", prompt=POLICY + question)
    b = client.completions.create(model="m", prompt=f"{POLICY}{a}")
    c = client.completions.create(model="m", prompt=POLICY + "other")
    return b, c
""" % " ".join(["w"] * 40)


def _context(source: str) -> Context:
    from compiler.api import parse
    from compiler.callsites import DEFAULT_NAME_PATTERNS
    from compiler.dag import build_dag
    from compiler.interpreter import Interpreter

    interp = Interpreter(parse(source, "a.py"), DEFAULT_NAME_PATTERNS, source)
    dag = build_dag(interp.run(), TOK)
    sim = PrefixSimulator(TOK)
    return Context(dag.calls, dag.edges, dag.order, dag.graph, TOK, sim, sim.run(dag.calls, dag.order))


def test_simulate_runs_one_request_by_default_and_focus_keeps_the_calls_depended_on() -> None:
    ctx = _context(SOURCE)
    assert ctx.order == ["c1", "c2", "c3"]
    # One request unless asked: three executions, all of request 0.
    assert [(r.call, r.request) for r in ctx.simulate({})] == [("c1", 0), ("c2", 0), ("c3", 0)]
    assert [(r.call, r.request) for r in ctx.simulate({}, requests=2)] == [
        ("c1", 0),
        ("c2", 0),
        ("c3", 0),
        ("c1", 1),
        ("c2", 1),
        ("c3", 1),
    ]
    # Focus on c2: c2 and c1, whose output it sends, run; c3 does not.
    assert [r.call for r in ctx.simulate({}, focus={"c2"})] == ["c1", "c2"]
    assert [r.call for r in ctx.simulate({}, focus={"c3"})] == ["c3"]
    # Focus alone, not the calls depended on: c1 has no ancestors.
    assert [r.call for r in ctx.simulate({}, focus={"c1"})] == ["c1"]


def test_simulate_uses_the_given_shapes_for_their_calls_only() -> None:
    """c3 reshaped to the policy (40 tokens) and a 7-token tail: it reuses c1's first 40 tokens, of 47."""
    ctx = _context(SOURCE)
    policy = ctx.by_id["c1"].segments[0]
    assert policy.tokens == 40
    shaped = ctx.simulate({"c3": [Unit(policy.text, 40), Unit("x", 7)]}, focus={"c1", "c3"})
    assert [(r.call, r.total, r.reusable) for r in shaped] == [("c1", 80, 0), ("c3", 47, 40)]
    # Unshaped, c3 is the policy + "other" (40 tokens, "other" has no `w`) and reuses the same 40.
    plain = ctx.simulate({}, focus={"c1", "c3"})
    assert [(r.call, r.total, r.reusable) for r in plain] == [("c1", 80, 0), ("c3", 40, 40)]


def test_tokens_upto_counts_on_the_calls_own_encoding() -> None:
    ctx = _context(SOURCE)
    text, spans = ctx.encoding("c1")
    # c1 is the policy (79 chars: 40 `w` and 39 spaces) then the question's marker.
    assert text.startswith(" ".join(["w"] * 40) + O)
    assert ctx.tokens_upto("c1", 79) == 40
    assert ctx.tokens_upto("c1", 9) == 5  # "w w w w w"
    assert ctx.tokens_upto("c1", 80) == 40  # inside the marker: the value counts nothing
    assert ctx.tokens_upto("c1", len(text)) == 80
