"""BRANCHING's figures, boundaries and wording, worked out by hand.

The detector's example programs check that it fires, not what it reports; the mutation run
(docs/mutation.md) showed that its branch factor, its 2-4 "optimal" range, the way it keeps only the
children no other child leads to, the order it lists them in and its message could change without a
test noticing.

A counter that counts the letter `w` gives each literal an exact, chosen token count (the prompts here
hold none: BRANCHING's figures do not depend on tokens). The agents take the LLM as a parameter
(`call_generate`), so each `call_generate(...)` is one call site, numbered c1, c2, ... in source order.
"""

from __future__ import annotations

import pytest

from compiler.api import CompileOptions, compile_source
from compiler.model import Finding, PatternKind

from .hand_counts import count_w, line_of


def branching(source: str) -> list[Finding]:
    result = compile_source(
        source, "agent.py", token_counter=count_w, options=CompileOptions(with_fixes=False)
    )
    return [f for f in result.patterns if f.kind is PatternKind.BRANCHING]


def fanout_agent(n: int) -> str:
    """One call sampled `n` times; a loop runs one call per sample (c2 reads the loop variable)."""
    return f"""
def tree(question, call_generate):
    plans = call_generate("Plan: " + question, n={n})
    results = []
    for plan in plans:
        results.append(call_generate("Execute: " + plan))
    return results
"""


@pytest.mark.parametrize(("n", "optimal"), [(2, True), (3, True), (4, True), (5, False), (6, False)])
def test_fanout_factor_and_the_inclusive_two_to_four_range(n: int, optimal: bool) -> None:
    """`n=` is the branch factor; the spec calls 2 to 4 optimal, both ends included: 5 is out."""
    source = fanout_agent(n)
    [f] = branching(source)
    assert f.figures == {"branch_factor": n, "children": ["c2"], "in_optimal_range": optimal}
    assert f.calls == ["c1", "c2"]
    assert f.line == line_of(source, "n=")
    assert f.message == f"c1 branches by `n={n}` into c2"
    assert not f.anti_pattern


def test_a_fanout_not_known_at_compile_time_has_no_range_and_no_children() -> None:
    """`n=k`: the factor is the expression's text, so no in/out-of-range verdict can be given; nothing
    reads the samples, so the message names no children (no dangling " into")."""
    source = """
def fan(question, k, call_generate):
    samples = call_generate("Q: " + question, n=k)
    return samples
"""
    [f] = branching(source)
    assert f.figures == {"branch_factor": "k", "children": []}
    assert f.calls == ["c1"]
    assert f.message == "c1 branches by `n=k`"
    assert f.line == line_of(source, "n=k")


def test_fanout_lists_only_the_calls_the_samples_feed_directly() -> None:
    """c1's samples reach c2 (`plan`) and c3 (`plan` and c2's `step`). c3 is also reached through c2,
    so it is downstream of a branch, not a branch itself: the children are [c2] only."""
    source = """
def tree(question, call_generate):
    plans = call_generate("Plan: " + question, n=3)
    for plan in plans:
        step = call_generate("Do: " + plan)
        check = call_generate("Check: " + plan + step)
    return check
"""
    [f] = branching(source)
    assert f.figures == {"branch_factor": 3, "children": ["c2"], "in_optimal_range": True}
    assert f.calls == ["c1", "c2"]
    assert f.message == "c1 branches by `n=3` into c2"


def dependents_agent(k: int) -> str:
    """c1's output read by k independent calls c2..c(k+1)."""
    body = "\n".join(f'    r.append(call_generate("Step {i}: " + a))' for i in range(k))
    return f"""
def many(question, call_generate):
    a = call_generate("Q: " + question)
    r = []
{body}
    return r
"""


def test_two_dependent_calls_are_a_branch_and_one_is_not() -> None:
    """Without `n=`, it takes at least two independent children: exactly 2 is in, 1 is out."""
    source = dependents_agent(2)
    [f] = branching(source)
    assert f.figures == {"branch_factor": 2, "children": ["c2", "c3"], "in_optimal_range": True}
    assert f.calls == ["c1", "c2", "c3"]
    assert f.line == line_of(source, '"Q: "')
    assert f.message == "c1 branches by 2 dependent calls into c2, c3"
    assert branching(dependents_agent(1)) == []


def test_children_are_in_call_order_past_nine() -> None:
    """Ten children c2..c11: listed by number (c2 before c10), not as strings ("c10" < "c2");
    10 is out of the 2-4 range."""
    [f] = branching(dependents_agent(10))
    children = [f"c{i}" for i in range(2, 12)]
    assert f.figures == {"branch_factor": 10, "children": children, "in_optimal_range": False}
    assert f.calls == ["c1", *children]
    assert f.message == "c1 branches by 10 dependent calls into " + ", ".join(children)


def test_a_chain_with_a_shortcut_is_not_a_branch() -> None:
    """A -> B -> C with A -> C too: C is reached through B, so A has one independent child: no finding."""
    source = """
def diamond(question, call_generate):
    a = call_generate("Q: " + question)
    b = call_generate("B: " + a)
    c = call_generate("C: " + a + b)
    return c
"""
    assert branching(source) == []


def test_only_the_children_no_other_child_leads_to_count() -> None:
    """c1 feeds c2, c3 and c4; c2 also feeds c4. Independent: c2 and c3, a factor of 2 (not 3);
    c2 itself has one child (c4): no finding for it."""
    source = """
def three(question, call_generate):
    a = call_generate("Q: " + question)
    b = call_generate("B: " + a)
    c = call_generate("C: " + a)
    d = call_generate("D: " + a + b)
    return c, d
"""
    [f] = branching(source)
    assert f.figures == {"branch_factor": 2, "children": ["c2", "c3"], "in_optimal_range": True}
    assert f.calls == ["c1", "c2", "c3"]
    assert f.message == "c1 branches by 2 dependent calls into c2, c3"


def test_every_branching_call_in_a_file_is_reported() -> None:
    """A call without children comes first; both branching calls after it are still found."""
    source = """
def solo(question, call_generate):
    return call_generate("Solo: " + question)

def first(question, call_generate):
    plans = call_generate("Plan: " + question, n=4)
    return [call_generate("Do: " + p) for p in plans]

def second(question, call_generate):
    a = call_generate("Q: " + question)
    return call_generate("B: " + a), call_generate("C: " + a)
"""
    found = branching(source)
    assert [(f.calls, f.figures["branch_factor"]) for f in found] == [
        (["c2", "c3"], 4),
        (["c4", "c5", "c6"], 2),
    ]
