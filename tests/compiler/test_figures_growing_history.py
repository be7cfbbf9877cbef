"""GROWING_HISTORY's figures and boundaries, worked out by hand (token counts: `hand_counts`)."""

from __future__ import annotations

import pytest

from compiler.export import to_dot, to_mermaid, to_text
from compiler.model import PatternKind
from compiler.tokens import SMALL_VALUE_TOKENS

from .hand_counts import compiled, findings, line_of, words

GROWING = PatternKind.GROWING_HISTORY


def test_a_log_that_gains_one_item_per_iteration() -> None:
    """First prompt: the rubric (40) and one item (a run-time value, 40 assumed); each iteration adds an
    item. Over the 10 assumed iterations the prompts are 80, 120, ..., 440 tokens (2,600), and each one
    after the first starts with the whole previous prompt: 80 + ... + 400 = 2,160 reusable, 83.08%."""
    source = f'''
RUBRIC = "{words(40)}"

def chat(items, call_generate):
    log = RUBRIC
    for item in items:
        log = log + item
        call_generate(log, max_tokens=30)
'''
    [f] = findings(source, GROWING)
    assert SMALL_VALUE_TOKENS == 40
    assert f.calls == ["c1"] and f.line == line_of(source, "call_generate(log")
    assert f.figures == {
        "loop_line": line_of(source, "for item in"),
        "carried": [],
        "first_prompt_tokens": 80,
        "added_tokens_per_iteration": 40,
        "iterations": 10,
        "last_prompt_tokens": 440,
        "reused_share": round(2160 / 2600, 4),
    }
    assert "adds ~40 tokens per iteration" in f.message and "83%" in f.message
    assert findings(source, PatternKind.LOOP_INVARIANT) == [], "a prompt that grows is not invariant"


def test_the_output_fed_back_is_a_carried_edge_of_the_call_to_itself() -> None:
    """`s += generate(s)`: each iteration adds its output (max_tokens=30) and the next question (40)."""
    source = f'''
def multi_turn(s, questions, generate):
    s += "{words(50)}"
    for q in questions:
        s += q
        s += generate(s, max_tokens=30)
    return s
'''
    result = compiled(source)
    [f] = [p for p in result.patterns if p.kind is GROWING]
    assert [(e.source, e.target, e.variables, e.kind) for e in result.edges] == [
        ("c1", "c1", ["output"], "carried")
    ]
    assert f.figures["carried"] == ["output"]
    assert "c1 -> c1  via output  (carried into a later iteration)" in to_text(result)
    assert "c1 -.->" in to_mermaid(result) and "c1 -> c1 [" in to_dot(result)
    # `s` (40 assumed), the instructions (50), `q` (40); then the output (30) and the next `q` (40)
    assert (f.figures["first_prompt_tokens"], f.figures["added_tokens_per_iteration"]) == (130, 70)


def test_a_sliding_window_is_not_append_only() -> None:
    """Keeping the last messages drops the front: the next prompt does not start with the previous one,
    so the prefix cache cannot reuse it, and no growing history is claimed."""
    source = f'''
def chat(turns, call_generate):
    window = ["{words(40)}"]
    for t in turns:
        window = window[-4:] + [t]
        reply = call_generate("\\n".join(window), max_tokens=30)
        window = window + [reply]
'''
    assert findings(source, GROWING) == []


def test_a_loop_without_growth_is_no_history() -> None:
    source = f'''
def each(items, call_generate):
    for item in items:
        call_generate("{words(40)}" + item)
'''
    assert findings(source, GROWING) == []
    assert [f.kind for f in compiled(source).patterns] == [PatternKind.LOOP_INVARIANT]


def _growing(source: str, iterations: int = 10) -> list[dict[str, object]]:
    from compiler.api import CompileOptions, compile_source

    from .hand_counts import count_w

    result = compile_source(
        source,
        "agent.py",
        token_counter=count_w,
        options=CompileOptions(with_fixes=False, iterations=iterations),
    )
    return [dict(p.figures, calls=p.calls) for p in result.patterns if p.kind is GROWING]


ONE_TOKEN_OUTPUT = f'''
def chat(s, gen):
    s += "{words(40)}"
    for _ in range(5):
        s += gen(s, max_tokens=1)
'''

BESIDE_A_FLAT_CALL = f'''
def chat(items, gen):
    log = "{words(40)}"
    for item in items:
        gen("{words(20)}" + item, max_tokens=5)
        log = log + item
        gen(log, max_tokens=30)
'''


def test_one_token_per_iteration_is_still_growth() -> None:
    """The smallest growth there is: a 1-token output fed back. Prompts 80 (40 words + `s`, 40 assumed),
    81, ..., 89: 756 of 845 tokens are the previous prompt (89.47%)."""
    [f] = _growing(ONE_TOKEN_OUTPUT)
    assert f["added_tokens_per_iteration"] == 1 and f["last_prompt_tokens"] == 89
    assert f["reused_share"] == round(756 / 845, 4) and f["carried"] == ["output"]


def test_two_iterations_are_enough_and_one_is_not() -> None:
    """c1 (flat) comes before the growing c2: the detector goes on past it. Two iterations: prompts 80 and
    120, the second reuses the first: 80 / 200 = 40%. One iteration: nothing is ever re-sent."""
    [f] = _growing(BESIDE_A_FLAT_CALL, iterations=2)
    assert f["calls"] == ["c2"] and f["iterations"] == 2 and f["reused_share"] == 0.4
    assert _growing(BESIDE_A_FLAT_CALL, iterations=1) == []


def test_only_the_calls_own_output_counts_as_carried() -> None:
    """`note` comes from c2 of the previous iteration (a carried edge c2 -> c1): it grows c1's history but is
    not c1's own output fed back, so c1's `carried` stays empty."""
    source = f'''
def chat(items, gen):
    log = "{words(40)}"
    note = ""
    for item in items:
        log = log + note + item
        gen(log, max_tokens=30)
        note = gen("{words(20)}" + item, max_tokens=5)
'''
    result = compiled(source)
    assert [(e.source, e.target, e.kind) for e in result.edges] == [("c2", "c1", "carried")]
    [f] = _growing(source)
    assert f["calls"] == ["c1"] and f["carried"] == []


@pytest.mark.parametrize(
    ("update", "why"),
    [
        ({"added_tokens_per_iteration": 0}, "grows by nothing"),
        ({"loops": []}, "not in a loop"),
        ({"grows_per_iteration": False}, "does not grow"),
    ],
)
def test_the_detector_checks_each_precondition_itself(
    monkeypatch, update: dict[str, object], why: str
) -> None:
    """The DAG builder sets `added_tokens_per_iteration` only for a growing call and growth only inside a
    loop, so no agent source reaches these cases; the detector still refuses each one on its own, and the
    untouched call is found, so each refusal is that precondition's."""
    import compiler.api as api
    from compiler.patterns import growing_history

    captured = []

    def capture(*args: object, **kwargs: object):
        captured.append(api_context(*args, **kwargs))
        return captured[-1]

    api_context = api.Context
    monkeypatch.setattr(api, "Context", capture)
    compiled(BESIDE_A_FLAT_CALL)
    [ctx] = captured
    assert [f.calls for f in growing_history.detect(ctx)] == [["c2"]]
    ctx.calls = [c.model_copy(update=update) if c.id == "c2" else c for c in ctx.calls]
    assert growing_history.detect(ctx) == [], why
