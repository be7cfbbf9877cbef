"""The prefix simulator's parts (compiler/prefix.py), pinned by hand-worked values.

`tests/compiler/test_prefix_sim.py` checks the arithmetic of shares, blocks and branch weights; this
file pins what the mutation run (docs/mutation.md) found unchecked: the binary-search LCP, the cut
back to a run-time value's marker, the encoding's spans and suffixes, the tokens of a partly shared
unit, the units built from segments, and the weights and iterations of loop executions.

Token counts come from a counter that counts the letter `w`, so every literal has a chosen count.
"""

from __future__ import annotations

import itertools

import pytest

from compiler.api import compile_source
from compiler.model import Segment
from compiler.prefix import (
    MARK_CLOSE,
    MARK_OPEN,
    ExecutionResult,
    PrefixSimulator,
    Unit,
    _cut_to_marker,
    _lcp,
    cached_tokens,
    share,
    units_of,
)
from compiler.tokens import Tokenizer

from .hand_counts import count_w

O, C = MARK_OPEN, MARK_CLOSE


TOK = Tokenizer(count_w)


def compiled(source: str):
    return compile_source(source, "a.py", token_counter=count_w).calls


# --- _lcp --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("", "", 0),
        ("abc", "", 0),
        ("abc", "xbc", 0),  # differ at the first character
        ("abc", "abc", 3),
        ("ab", "abc", 2),  # one is a prefix of the other
        ("abcdefgh", "abcdexxx", 5),
        ("abcdefgh", "abcdefgx", 7),  # differ at the last character
        ("abcdefgh", "bbcdefgh", 0),
        ("a" * 100 + "b", "a" * 100 + "c", 100),
    ],
)
def test_lcp_worked_examples(a: str, b: str, expected: int) -> None:
    assert _lcp(a, b) == expected
    assert _lcp(b, a) == expected


def test_lcp_agrees_with_a_character_loop_at_every_divergence_point() -> None:
    """The binary search against the obvious loop, for every length up to 20 and every divergence point."""

    def naive(a: str, b: str) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    for length, cut in itertools.product(range(0, 21), range(0, 21)):
        a = "x" * length
        b = "x" * min(cut, length) + "y" * (length - min(cut, length))
        c = "x" * cut + "z"
        assert _lcp(a, b) == naive(a, b) == min(cut, length)
        assert _lcp(a, c) == naive(a, c)


# --- _cut_to_marker: never count half a run-time value -----------------------------------------

ENC = "ab" + O + "xy" + C + "cd"  # marker at 2..5 (open at 2, close at 5)


@pytest.mark.parametrize(
    ("enc", "n", "expected"),
    [
        (ENC, 0, 0),
        (ENC, 2, 2),  # just before the marker
        (ENC, 3, 2),  # after its open mark: cut back to 2
        (ENC, 5, 2),  # everything but the close mark
        (ENC, 6, 6),  # the whole marker
        (ENC, 7, 7),
        ("ab" + O + "x" + C, 1, 1),  # a marker after the prefix does not matter
        (O + "x" + C, 1, 0),  # a marker at 0, unfinished: nothing
        (O + "x" + C, 2, 0),
        (O + "x" + C, 3, 3),
        ("a" + O + "x" + C, 2, 1),  # a marker at 1, unfinished: 1
        # Closed marker 0..2, "z", second marker 4..6: inside the second -> its open (4), not 0.
        (O + "a" + C + "z" + O + "b" + C, 5, 4),
        (O + "a" + C + "z" + O + "b" + C, 3, 3),
        (O + "a" + C + "z" + O + "b" + C, 2, 0),
        ("abc", 2, 2),
    ],
)
def test_cut_to_marker(enc: str, n: int, expected: int) -> None:
    assert _cut_to_marker(enc, n) == expected


# --- units_of -------------------------------------------------------------------------------------


def test_units_of_marks_values_and_role_headers() -> None:
    segments = [
        Segment(kind="static", text="Hi w", tokens=1),
        Segment(kind="static", text="<|user|>\n", tokens=4, synthetic=True),
        Segment(kind="dynamic", text="{doc}", name="doc", key="param:f:doc", tokens=750),
        Segment(kind="dynamic", text="{it}", name="it", key="loop:1:it", tokens=40, varies_in_loop=True),
        Segment(kind="dynamic", text="{x}", name="x", tokens=40),  # no key: its text stands in
    ]
    assert units_of(segments) == [
        Unit("Hi w", 1),  # literal text: splittable
        Unit("<|user|>\n", 4, atomic=True),  # role header: all or nothing
        Unit(O + "param:f:doc" + C, 750, dynamic=True, atomic=True),
        Unit(O + "loop:1:it" + C, 40, dynamic=True, varies=True, atomic=True),
        Unit(O + "{x}" + C, 40, dynamic=True, atomic=True),
    ]


# --- _encode ------------------------------------------------------------------------------------

UNITS = [
    Unit("ww|", 2),
    Unit(O + "k" + C, 40, dynamic=True, varies=True, atomic=True),
    Unit(O + "q" + C, 40, dynamic=True, atomic=True),
    Unit("|w", 1),
]


def test_encode_marks_the_iteration_of_varying_values_and_spans_every_unit() -> None:
    sim = PrefixSimulator(TOK)
    text, spans = sim._encode(UNITS, 3)
    # "ww|" (3 chars), the varying value with its iteration (O k # 3 C: 5), the other value (3), "|w" (2).
    assert text == "ww|" + O + "k#3" + C + O + "q" + C + "|w"
    assert spans == [(0, 3, UNITS[0]), (3, 8, UNITS[1]), (8, 11, UNITS[2]), (11, 13, UNITS[3])]


def test_encode_marks_every_value_of_a_later_request() -> None:
    sim = PrefixSimulator(TOK)
    text, spans = sim._encode(UNITS, 3, 2)
    # Request 2: both values get "@2" (other inputs); the varying one keeps its iteration first.
    assert text == "ww|" + O + "k#3@2" + C + O + "q@2" + C + "|w"
    assert spans == [(0, 3, UNITS[0]), (3, 10, UNITS[1]), (10, 15, UNITS[2]), (15, 17, UNITS[3])]
    # Request 0 is the default: no request mark.
    assert sim._encode(UNITS, 0)[0] == "ww|" + O + "k#0" + C + O + "q" + C + "|w"


def test_values_whose_keys_differ_only_in_the_last_character_stay_apart() -> None:
    """`loop:1:ia` and `loop:1:ib` are different values: their encodings part inside the marker, so
    nothing after them is shared, in any iteration or request."""
    sim = PrefixSimulator(TOK)
    a = [Unit(O + "loop:1:ia" + C, 40, dynamic=True, varies=True, atomic=True), Unit("www", 3)]
    b = [Unit(O + "loop:1:ib" + C, 40, dynamic=True, varies=True, atomic=True), Unit("www", 3)]
    for it, req in ((0, 0), (1, 0), (0, 1), (1, 2)):
        ea, eb = sim._encode(a, it, req)[0], sim._encode(b, it, req)[0]
        assert _cut_to_marker(ea, _lcp(ea, eb)) == 0


# --- _tokens_upto: tokens of an encoding's first `upto` characters --------------------------------

PARTS = [
    Unit("w w ", 2),  # 0..4
    Unit(O + "k" + C, 40, dynamic=True, atomic=True),  # 4..7
    Unit("ww ww", 4),  # 7..12
    Unit("<|user|>w", 1, atomic=True),  # 12..21
    Unit("www", 3),  # 21..24
]


@pytest.mark.parametrize(
    ("upto", "expected"),
    [
        (0, 0),
        (2, 1),  # "w " of the first unit: 1
        (4, 2),  # the first unit whole
        (5, 2),  # inside the value: it counts nothing
        (7, 42),  # the value whole
        (10, 44),  # "ww " of "ww ww": 2 more
        (12, 46),
        (15, 46),  # inside the role header: nothing
        (21, 47),  # the header whole
        (22, 48),  # "w" of "www"
        (24, 50),
        (100, 50),
    ],
)
def test_tokens_upto(upto: int, expected: int) -> None:
    sim = PrefixSimulator(TOK)
    _, spans = sim._encode(PARTS, 0)
    assert [(s, e) for s, e, _ in spans] == [(0, 4), (4, 7), (7, 12), (12, 21), (21, 24)]
    assert sim._tokens_upto(spans, upto) == expected


def test_a_partial_unit_never_counts_more_than_the_whole_and_a_value_never_counts_in_part() -> None:
    sim = PrefixSimulator(TOK)
    # "www" of "wwww" counts 3 `w`, but the unit is said to be 2 tokens: at most 2.
    assert sim._tokens_upto(sim._encode([Unit("wwww", 2)], 0)[1], 3) == 2
    # A run-time value cut in two counts nothing, even when not flagged atomic.
    value = Unit(O + "www" + C, 40, dynamic=True)
    assert sim._tokens_upto(sim._encode([value], 0)[1], 3) == 0


# --- cached_tokens: the last prompt token is always recomputed -----------------------------------


def test_a_one_token_prompt_caches_nothing_even_at_token_granularity() -> None:
    # 1 token, all of it shared: only 0 tokens may be reused; with blocks of 1 token, 0.
    assert cached_tokens(1, 1, 1) == 0
    assert cached_tokens(2, 2, 1) == 1
    assert cached_tokens(0, 0, 1) == 0


# --- run: loop executions, their weights and iterations, the neighbours searched ----------------

POLICY = " ".join(["w"] * 40)  # 79 characters, 40 tokens

LOOP = f'''
from openai import OpenAI
client = OpenAI()
POLICY = "{POLICY}"

def f(items, flag):
    for it in items:
        client.completions.create(model="m", prompt=f"{{POLICY}}|{{it}}")
'''

LOOP_IN_BRANCH = f'''
from openai import OpenAI
client = OpenAI()
POLICY = "{POLICY}"

def f(items, flag):
    for it in items:
        if flag:
            client.completions.create(model="m", prompt=f"{{POLICY}}|{{it}}")
'''


def test_a_loop_call_runs_twice_with_the_second_execution_standing_for_the_other_nine() -> None:
    """Iteration 0 finds an empty cache; iteration 1 reuses "POLICY|" (40 tokens) and stops at the loop
    variable, which differs; it stands for iterations 1..9 (weight 9 at the default 10 iterations).
    Each execution is 40 static + 40 assumed for the loop variable = 80 tokens."""
    calls = compiled(LOOP)
    sim = PrefixSimulator(TOK)  # default: 10 iterations per loop
    assert sim.run(calls, ["c1"]) == [
        ExecutionResult("c1", 0, 80, 0, 0, 1.0),
        ExecutionResult("c1", 1, 80, 40, 0, 9.0),
    ]
    # Weighted: (0 * 1 + 32 * 9) cached of 80 * 10 = 288 / 800.
    assert share(sim.run(calls, ["c1"]), 16) == (288, 800, 0.36)
    # Three iterations: weights 1 and 2.
    assert [r.weight for r in PrefixSimulator(TOK, 3).run(calls, ["c1"])] == [1.0, 2.0]
    # One iteration: a single execution.
    assert PrefixSimulator(TOK, 1).run(calls, ["c1"]) == [ExecutionResult("c1", 0, 80, 0, 0, 1.0)]


def test_a_second_request_of_a_loop_reuses_the_static_prefix_in_every_iteration() -> None:
    """Request 1's values differ from request 0's, so both its iterations reuse "POLICY|" (40 tokens)."""
    calls = compiled(LOOP)
    runs = PrefixSimulator(TOK).run(calls, ["c1"], requests=2)
    assert runs == [
        ExecutionResult("c1", 0, 80, 0, 0, 1.0),
        ExecutionResult("c1", 1, 80, 40, 0, 9.0),
        ExecutionResult("c1", 0, 80, 40, 1, 1.0),
        ExecutionResult("c1", 1, 80, 40, 1, 9.0),
    ]
    # Request 1: 32 cached per execution (blocks of 16), ten executions of 80: 320 / 800.
    assert share(runs, 16, request=1) == (320, 800, 0.4)


def test_a_loop_call_in_one_arm_of_an_if_weighs_half() -> None:
    calls = compiled(LOOP_IN_BRANCH)
    assert PrefixSimulator(TOK).run(calls, ["c1"]) == [
        ExecutionResult("c1", 0, 80, 0, 0, 0.5),
        ExecutionResult("c1", 1, 80, 40, 0, 4.5),
    ]


def _two_calls(first: str, second: str) -> str:
    return f'''
from openai import OpenAI
client = OpenAI()
POLICY = "{POLICY}"

def f(question):
    a = client.completions.create(model="m", prompt=POLICY + "{first}" + question)
    b = client.completions.create(model="m", prompt=POLICY + "{second}" + question)
    return a, b
'''


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("a", "b"),  # the second sorts after the first: found as its predecessor
        ("b", "a"),  # the second sorts before: found as its successor
    ],
)
def test_a_later_call_reuses_the_earlier_ones_prefix_wherever_it_sorts(first: str, second: str) -> None:
    """Each call is POLICY (40) + a letter (0) + the question (40); the second reuses the 40 of POLICY."""
    calls = compiled(_two_calls(first, second))
    runs = PrefixSimulator(TOK).run(calls, ["c1", "c2"])
    assert [(r.call, r.total, r.reusable) for r in runs] == [("c1", 80, 0), ("c2", 80, 40)]


def test_the_best_of_both_neighbours_is_taken() -> None:
    """Sorted, the third call ("POLICYb...") falls between "POLICYa..." (40 shared) and "x" (nothing),
    and between "A" (nothing) and "POLICYc..." (40 shared) in the other case."""
    for prompts in (('POLICY + "a"', '"x"', 'POLICY + "b"'), ('"A"', 'POLICY + "c"', 'POLICY + "b"')):
        source = f'''
from openai import OpenAI
client = OpenAI()
POLICY = "{POLICY}"
client.completions.create(model="m", prompt={prompts[0]})
client.completions.create(model="m", prompt={prompts[1]})
client.completions.create(model="m", prompt={prompts[2]})
'''
        calls = compiled(source)
        runs = PrefixSimulator(TOK).run(calls, ["c1", "c2", "c3"])
        assert runs[2].call == "c3" and runs[2].reusable == 40


def test_shapes_replace_the_calls_units() -> None:
    calls = compiled(_two_calls("a", "b"))
    shapes = {"c1": [Unit("ww", 2)], "c2": [Unit("ww", 2), Unit("x", 5)]}
    runs = PrefixSimulator(TOK).run(calls, ["c1", "c2"], shapes)
    # c1 is "ww" (2 tokens); c2 is "ww" + "x" (7) and reuses the 2 of "ww".
    assert [(r.call, r.total, r.reusable) for r in runs] == [("c1", 2, 0), ("c2", 7, 2)]
