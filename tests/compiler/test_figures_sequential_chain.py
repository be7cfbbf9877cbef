"""SEQUENTIAL_CHAIN's figures, boundaries and wording, worked out by hand.

The detector's example programs check that it fires, not what it reports; the mutation run
(docs/mutation.md) showed that its depth, its 3-7 "optimal" range, `progressive_context`, the
variables named on each step and the handling of several independent chains in one file could change
without a test noticing.

A counter that counts the letter `w` gives each literal an exact, chosen token count (the prompts here
hold none: the chain's figures do not depend on tokens). The agents take the LLM as a parameter
(`call_generate`), so each `call_generate(...)` is one call site, numbered c1, c2, ... in source order.
"""

from __future__ import annotations

import pytest

from compiler.api import CompileOptions, compile_source
from compiler.model import Finding, PatternKind

from .hand_counts import count_w, line_of


def chains(source: str) -> list[Finding]:
    result = compile_source(
        source, "agent.py", token_counter=count_w, options=CompileOptions(with_fixes=False)
    )
    return [f for f in result.patterns if f.kind is PatternKind.SEQUENTIAL_CHAIN]


def chain_agent(depth: int) -> str:
    """`depth` calls, each reading the previous one's output: v1 -> v2 -> ... (c1 reads the question)."""
    lines = ['    v1 = call_generate("Step 1: " + question)']
    lines += [f'    v{i} = call_generate("Step {i}: " + v{i - 1})' for i in range(2, depth + 1)]
    body = "\n".join(lines)
    return f"""
def pipeline(question, call_generate):
{body}
    return v{depth}
"""


@pytest.mark.parametrize(("depth", "optimal"), [(2, False), (3, True), (7, True), (8, False)])
def test_depth_and_the_inclusive_three_to_seven_range(depth: int, optimal: bool) -> None:
    """The chain is every call in order; the spec calls 3 to 7 steps optimal, both ends included."""
    source = chain_agent(depth)
    [f] = chains(source)
    ids = [f"c{i}" for i in range(1, depth + 1)]
    assert f.calls == ids
    assert f.figures == {"depth": depth, "in_optimal_range": optimal, "progressive_context": False}
    # Each step names the variable carrying the previous output: c1 -[v1]-> c2 -[v2]-> ... -> c<depth>.
    steps = "".join(f"c{i} -[v{i}]-> " for i in range(1, depth))
    assert f.message == f"chain of {depth} calls: {steps}c{depth}"
    assert f.line == line_of(source, '"Step 1: "')
    assert not f.anti_pattern


def test_a_lone_call_before_two_chains_of_different_lengths() -> None:
    """c1 stands alone (skipped, and the search goes on); c2 -> c3 is carried by two variables (`x` and
    its alias `y`, listed sorted, joined by ", "); c4 -> c5 -> c6 is a separate chain of 3. Each chain is measured
    on its own calls: the 2-chain is not reported as the file's longest path."""
    source = """
def alone(question, call_generate):
    return call_generate("Solo: " + question)

def two(question, call_generate):
    x = call_generate("Q: " + question)
    y = x
    return call_generate("A: " + x + y)

def three(question, call_generate):
    a = call_generate("Q: " + question)
    b = call_generate("B: " + a)
    return call_generate("C: " + b)
"""
    found = chains(source)
    assert [(f.calls, f.figures["depth"]) for f in found] == [(["c2", "c3"], 2), (["c4", "c5", "c6"], 3)]
    two, three = found
    assert two.message == "chain of 2 calls: c2 -[x, y]-> c3"
    assert two.line == line_of(source, "x = call_generate")
    assert two.figures == {"depth": 2, "in_optimal_range": False, "progressive_context": False}
    assert three.message == "chain of 3 calls: c4 -[a]-> c5 -[b]-> c6"
    assert three.line == line_of(source, 'a = call_generate("Q: "')


def test_calls_without_a_data_edge_are_no_chain() -> None:
    source = """
def pair(question, call_generate):
    a = call_generate("A: " + question)
    b = call_generate("B: " + question)
    return a, b
"""
    assert chains(source) == []


def test_progressive_context_when_each_prompt_starts_with_the_whole_previous_one() -> None:
    """State that grows (SGLang style): c2's prompt is c1's prompt followed by c1's output."""
    source = """
def grow(question, call_generate):
    s = "Q: " + question
    a = call_generate(s)
    s = s + a
    return call_generate(s)
"""
    [f] = chains(source)
    assert f.calls == ["c1", "c2"]
    assert f.figures == {"depth": 2, "in_optimal_range": False, "progressive_context": True}


def test_progressive_context_needs_every_step_to_start_with_the_previous_prompt() -> None:
    """c1 -> c2 grows, but c3's prompt starts with other text: the chain as a whole is not progressive."""
    source = """
def grow(question, call_generate):
    s = "Q: " + question
    a = call_generate(s)
    s = s + a
    b = call_generate(s)
    return call_generate("Other: " + b)
"""
    [f] = chains(source)
    assert f.calls == ["c1", "c2", "c3"]
    assert f.figures == {"depth": 3, "in_optimal_range": True, "progressive_context": False}


def test_a_prompt_that_shares_only_part_of_the_previous_one_is_not_progressive() -> None:
    """c2 starts with the same "Q: {question}" as c1 but drops c1's tail: a shared prefix, not all of it."""
    source = """
def partial(question, call_generate):
    a = call_generate("Q: " + question + " tail")
    return call_generate("Q: " + question + a)
"""
    [f] = chains(source)
    assert f.figures["progressive_context"] is False
