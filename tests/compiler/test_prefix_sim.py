"""The prefix simulator's arithmetic, worked by hand: block flooring, the recomputed last token,
weighted shares, branch probabilities, loop executions, and the simulated second request.

The compiler's example tests check these only through whole findings; the mutation run
(docs/mutation.md) showed that many of their parts could change without a test noticing.
"""

from __future__ import annotations

import pytest

from compiler.api import compile_source
from compiler.model import BranchContext, CallSite, LoopContext
from compiler.prefix import (
    MAX_EXECUTIONS_PER_CALL,
    ExecutionResult,
    PrefixSimulator,
    branch_weights,
    cached_tokens,
    executions_of,
    share,
)
from compiler.tokens import Tokenizer


@pytest.mark.parametrize(
    ("reusable", "total", "block", "expected"),
    [
        (100, 200, 16, 96),  # floored to whole blocks
        (96, 200, 16, 96),  # exactly on a block boundary
        (200, 200, 16, 192),  # all of it shared: the last token is recomputed, 199 -> 192
        (64, 65, 16, 64),  # 64 reusable of 65: the limit is 64, a whole number of blocks
        (64, 64, 16, 48),  # 64 of 64: only 63 may be reused -> 48
        (5, 1, 16, 0),
        (0, 0, 16, 0),
        (33, 100, 1, 33),  # SGLang's radix cache: token granularity
    ],
)
def test_cached_tokens(reusable: int, total: int, block: int, expected: int) -> None:
    assert cached_tokens(reusable, total, block) == expected
    assert isinstance(cached_tokens(reusable, total, block), int)


def test_share_weights_each_execution_and_filters_by_call_and_request() -> None:
    results = [
        ExecutionResult("c1", 0, total=100, reusable=0, request=0, weight=1.0),
        ExecutionResult("c1", 0, total=100, reusable=100, request=1, weight=1.0),  # 96 cached (16-blocks)
        ExecutionResult("c2", 0, total=200, reusable=160, request=1, weight=0.5),  # 160 cached, half weight
    ]
    assert share(results, 16) == (176, 300, pytest.approx(176 / 300))
    assert share(results, 16, calls={"c2"}) == (80, 100, pytest.approx(0.8))
    assert share(results, 16, request=1) == (176, 200, pytest.approx(0.88))
    assert share(results, 16, calls={"c3"}) == (0, 0, 0.0)


_BASE = compile_source(
    """
from openai import OpenAI
client = OpenAI()
client.completions.create(model="m", prompt="hello")
""",
    "base.py",
).calls[0]


def _call(cid: str, *, branches: list[BranchContext] = (), loops: list[LoopContext] = ()) -> CallSite:
    return _BASE.model_copy(update={"id": cid, "branches": list(branches), "loops": list(loops)})


def test_branch_weights_split_each_if_and_match_evenly() -> None:
    calls = [
        _call("c1", branches=[BranchContext(line=5, arm="if", test="x")]),
        _call("c2", branches=[BranchContext(line=5, arm="else", test="x")]),
        _call("c3", branches=[BranchContext(line=9, arm="case", test="'a'")]),
        _call("c4", branches=[BranchContext(line=9, arm="case", test="'b'")]),
        _call("c5", branches=[BranchContext(line=9, arm="case", test="'c'")]),
        _call(
            "c6",
            branches=[BranchContext(line=20, arm="if", test="y"), BranchContext(line=22, arm="if", test="z")],
        ),
        _call("c7"),
    ]
    w = branch_weights(calls)
    assert w["c1"] == w["c2"] == 0.5
    assert w["c3"] == w["c4"] == w["c5"] == pytest.approx(1 / 3)  # three cases of one match
    assert w["c6"] == 0.25  # an if with its call in one arm only is still two arms, twice
    assert w["c7"] == 1.0


def test_executions_multiply_per_loop_except_request_loops_and_are_capped() -> None:
    inner = LoopContext(kind="for", line=3)
    outer = LoopContext(kind="for", line=2)
    per_request = LoopContext(kind="for", line=1, request_loop=True)
    assert executions_of(_call("c1"), 10) == 1
    assert executions_of(_call("c1", loops=[outer, inner]), 3) == 9
    assert executions_of(_call("c1", loops=[per_request, inner]), 5) == 5
    assert executions_of(_call("c1", loops=[outer, inner]), 10) == MAX_EXECUTIONS_PER_CALL


def test_a_second_request_reuses_the_static_prefix_only() -> None:
    """Two requests of one call: the first caches nothing; the second reuses the static text up to
    the first run-time value, floored to blocks by `share`."""
    policy = " ".join(["w"] * 40)
    source = f'''
from openai import OpenAI
client = OpenAI()
POLICY = "{policy}"

def answer(question):
    return client.completions.create(model="m", prompt=POLICY + question)
'''
    result = compile_source(source, "a.py", token_counter=lambda t: t.count("w"))
    call = result.calls[0]
    sim = PrefixSimulator(Tokenizer(lambda t: t.count("w")))
    runs = sim.run(result.calls, [call.id], requests=2)
    first = [r for r in runs if r.request == 0]
    second = [r for r in runs if r.request == 1]
    assert [(r.reusable, r.total) for r in first] == [(0, 40 + 40)]  # 40 static + 40 assumed question
    assert [(r.reusable, r.total) for r in second] == [(40, 80)]
    assert share(runs, 16, request=1)[:2] == (32, 80)
