"""Pathological agent shapes compile to the right result, not just quickly (issue 13).

Each of these used to cost exponential or quadratic time (or memory) in its depth or length: 20
nested loops never finished (loop bodies ran twice per level and `_grows` compared every pair of
the 2^depth occurrences), `h = h + h` lines doubled the prompt shape, nested loops over constant
lists unrolled into 32^depth iterations. The tests assert the content of the result; a compile that
regresses to exponential time does not finish within the session's pytest timeout, so there is no
wall-clock assert to flake on a loaded machine.
"""

from __future__ import annotations

import ast

import pytest

from compiler import dag
from compiler.api import compile_source
from compiler.interpreter import NODES_PER_CHARGE, Interpreter
from compiler.model import SourceKind
from compiler.values import MAX_TEXT_PARTS, Dyn, Occurrence, Static, Text

CALL = "litellm.completion(model='m', messages=[{{'role': 'user', 'content': {}}}])"


def _nested_loops(depth: int, keyword: str = "for") -> str:
    lines = ["import litellm", "", "", "def agent(items, more):", "    history = 'You are helpful.\\n'"]
    pad = "    "
    for i in range(depth):
        lines.append(f"{pad}for x{i} in items:" if keyword == "for" else f"{pad}while more({i}):")
        pad += "    "
    lines.append(f"{pad}r = {CALL.format('history')}")
    lines.append(f"{pad}history += f'Q: {{x0}}\\nA: {{r}}\\n'" if keyword == "for" else f"{pad}history += r")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("keyword", ["for", "while"])
def test_thirty_nested_loops_around_one_call(keyword: str):
    result = compile_source(_nested_loops(30, keyword), "deep.py")
    assert [c.id for c in result.calls] == ["c1"]
    call = result.calls[0]
    assert call.line == 36 and call.function == "agent"
    assert len(call.loops) == 30
    assert [loop.line for loop in call.loops] == list(range(6, 36))
    assert {loop.kind for loop in call.loops} == {"while" if keyword == "while" else "for"}
    # The second pass of the innermost loop still sees the history the first pass grew.
    assert call.grows_per_iteration
    assert call.loop_carried == ["r"]
    assert [(e.source, e.target, e.variables, e.kind) for e in result.edges] == [
        ("c1", "c1", ["r"], "carried")
    ]
    assert result.order == ["c1"]
    # Nothing was given up on: the interpreter's budget was not exhausted.
    assert not any("too large" in d.message for d in result.diagnostics)


def test_same_result_for_shallow_nests_as_full_unrolling():
    """Up to FULL_NEST levels every loop runs twice, as before: the result is the full one."""
    result = compile_source(_nested_loops(4), "four.py")
    call = result.calls[0]
    assert len(call.loops) == 4 and call.grows_per_iteration and call.loop_carried == ["r"]


def test_deep_if_else_chain_finds_every_call():
    lines = ["import litellm", "", "", "def agent(q, c):"]
    pad = "    "
    for i in range(40):
        lines += [
            f"{pad}if c({i}):",
            f"{pad}    q = q + 'a{i}'",
            f"{pad}else:",
            f"{pad}    q = {CALL.format('q')}",
        ]
        lines.append(f"{pad}    if c({i}, 1):")
        pad += "        "
    lines.append(f"{pad}q = {CALL.format('q')}")
    result = compile_source("\n".join(lines) + "\n", "ifs.py")
    assert len(result.calls) == 41
    assert [len(c.branches) for c in result.calls] == [2 * i + 1 for i in range(40)] + [80]
    # Each call's output flows into the next one down the chain.
    assert [(e.source, e.target) for e in result.edges] == [(f"c{i}", f"c{i + 1}") for i in range(1, 41)]


def test_long_elif_ladder():
    lines = [
        "import litellm",
        "",
        "",
        "def agent(q, kind):",
        "    if kind == 0:",
        f"        r = {CALL.format('q')}",
    ]
    for i in range(1, 300):
        lines += [f"    elif kind == {i}:", f"        r = {CALL.format(repr(f'arm {i}: ') + ' + q')}"]
    lines += ["    else:", "        r = q", f"    return {CALL.format('r')}"]
    result = compile_source("\n".join(lines) + "\n", "ladder.py")
    assert len(result.calls) == 301
    last = result.calls[-1]
    # The final call depends on all 300 arms, each of which is its own branch.
    assert {e.source for e in result.edges if e.target == last.id} == {f"c{i}" for i in range(1, 301)}
    assert all(len(c.branches) >= 1 for c in result.calls[:-1])


def test_many_sequential_calls_form_one_chain():
    lines = ["import litellm", "", "", "def agent(q):", "    r0 = q"]
    for i in range(1, 501):
        lines.append(f"    r{i} = {CALL.format(repr(f'Step {i}: ') + f' + r{i - 1}')}")
    result = compile_source("\n".join(lines) + "\n", "chain.py")
    assert len(result.calls) == 500
    assert len(result.edges) == 499 and result.order == [f"c{i}" for i in range(1, 501)]
    assert "SEQUENTIAL_CHAIN" in result.pattern_kinds()


def test_deeply_nested_expression():
    inner = "q"
    for i in range(90):
        inner = f"wrap{i % 3}('(' + {inner} + ') {i}')"
    src = f"import litellm\n\n\ndef agent(q):\n    p = {inner}\n    return {CALL.format('p')}\n"
    result = compile_source(src, "expr.py")
    assert len(result.calls) == 1
    dynamic = [s for s in result.calls[0].segments if s.kind == "dynamic"]
    assert [s.key for s in dynamic] == ["param:agent:q"]  # the data flow through 90 calls is kept


def test_doubling_prompt_is_cut_not_exponential():
    src = (
        "import litellm\n\n\ndef agent(q):\n    h = 'Context: ' + q\n"
        + "    h = h + h\n" * 60
        + f"    return {CALL.format('h')}\n"
    )
    result = compile_source(src, "double.py")
    call = result.calls[0]
    assert len(call.segments) <= MAX_TEXT_PARTS
    assert call.segments[0].synthetic and call.segments[1].text.startswith("Context: ")
    assert call.segments[-1].name == "truncated"


def test_nested_constant_loops_do_not_unroll_into_their_product():
    items = "[" + ", ".join(f"'i{i}'" for i in range(32)) + "]"
    expr = " + ".join(["q"] + [f"'t{i}'" for i in range(10)])
    lines = ["import litellm", "", "", "def agent(q):"]
    pad = "    "
    for i in range(4):  # 32^4 iterations if every level were unrolled: the budget would run out first
        lines.append(f"{pad}for a{i} in {items}:")
        pad += "    "
    lines.append(f"{pad}x = {expr}")
    lines.append(f"    return {CALL.format('q')}")
    result = compile_source("\n".join(lines) + "\n", "unroll.py")
    assert len(result.calls) == 1 and result.calls[0].loops == []
    assert not any("too large" in d.message for d in result.diagnostics)


def _occ(i: int, iteration: int, parts: tuple) -> Occurrence:
    return Occurrence(
        id=i,
        key=(1, 0, 1, 1),
        site=(1, 0, 1, 1),
        module="",
        function="f",
        style="litellm",
        api="completion",
        callee="litellm.completion",
        is_async=False,
        prompt=Text(parts),
        loops=(),
        branches=(),
        iteration=iteration,
    )


@pytest.mark.parametrize(
    ("second", "grows"),
    [
        (
            (Static("sys "), Dyn("h", SourceKind.LOCAL, key="h"), Static("more")),
            True,
        ),  # a first prompt plus more
        ((Static("sys "), Dyn("h", SourceKind.LOCAL, key="h")), False),  # the same length: not growing
        ((Static("sys "), Dyn("other", SourceKind.LOCAL, key="o"), Static("more")), False),  # differs inside
    ],
)
def test_grows_reads_each_prompt_once(monkeypatch: pytest.MonkeyPatch, second: tuple, grows: bool):
    """`_grows` over the 2 x 300 occurrences of one call site: each prompt simplified once, not once per pair."""
    calls = []
    real = dag.simplify
    monkeypatch.setattr(dag, "simplify", lambda t: calls.append(1) or real(t))
    first = (Static("sys "), Dyn("h", SourceKind.LOCAL, key="h"))
    noise = [_occ(i, 0, (Static(f"other {i}"),)) for i in range(299)]
    occs = [*noise, _occ(299, 0, first), *[_occ(300 + i, 1, second) for i in range(300)]]
    assert dag._grows(occs) is grows
    assert len(calls) <= len(occs)  # quadratic: 2 x 300 x 300 calls


def test_a_huge_statement_costs_more_of_the_budget():
    src = "x = " + " + ".join(["'a'"] * 1000) + "\ny = 1\n"
    interp = Interpreter(ast.parse(src), source=src)
    big, small = ast.parse(src).body
    assert interp._charge(small) == 1
    nodes = sum(1 for _ in ast.walk(big)) - 1  # its expressions' nodes: ~3,000 (constants, BinOps, operators)
    assert interp._charge(big) == 1 + nodes // NODES_PER_CHARGE > 100


def test_containers_holding_themselves_do_not_double():
    """`m = [m, m]` on every line: a DAG of 60 nodes, a tree of 2^60 to anything walking it."""
    src = (
        "import litellm\n\n\ndef agent(q):\n    m = [{'role': 'user', 'content': q}]\n"
        + "    m = [m, m]\n" * 30
        + "    d = {'a': m, 'b': m}\n" * 30
        + "    return litellm.completion(model='m', messages=m)\n"
    )
    result = compile_source(src, "selfish.py")
    assert len(result.calls) == 1 and result.calls[0].line == 66
    assert not any("too large" in d.message for d in result.diagnostics)


def test_flat_lists_and_dicts_that_double():
    """`m = m + m` and `d = {**d, **d}`: flat, but 2^40 items by the last line without the cut."""
    src = (
        "import litellm\n\n\ndef agent(q):\n    m = [{'role': 'user', 'content': q}]\n"
        + "    m = m + m\n" * 40
        + "    d = {'content': q}\n"
        + "    d = {**d, **d}\n" * 40
        + "    return litellm.completion(model='m', messages=m, extra=d)\n"
    )
    result = compile_source(src, "flat.py")
    assert len(result.calls) == 1 and result.calls[0].line == 87
    assert len(result.calls[0].segments) <= MAX_TEXT_PARTS
