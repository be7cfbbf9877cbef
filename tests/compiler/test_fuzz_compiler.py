"""Fuzz the compiler with hypothesis: agent-like programs from a grammar, and noise.

Valid programs (tests/compiler/agent_grammar.py: loops nested up to 10 deep, elif ladders, classes,
async functions, match, LLM calls in every style) must compile without raising at all; noise
(random bytes, unicode, flipped or cut programs) may only raise `CompileError`. Budgets are small
here; `benchmarks/fuzz_compiler.py N` runs the same grammar for as long as you like.
"""

from __future__ import annotations

import ast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.api import compile_source, decode_source
from compiler.errors import CompileError
from compiler.model import CompileResult
from tests.compiler.agent_grammar import noise, program

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@st.composite
def programs(draw: st.DrawFn) -> str:
    return program(lambda n: draw(st.integers(0, n - 1)), max_statements=40, max_depth=10)


@st.composite
def noisy(draw: st.DrawFn) -> bytes:
    return noise(lambda n: draw(st.integers(0, max(n - 1, 0))))


@FUZZ
@given(programs())
def test_valid_agent_programs_always_compile(source: str):
    ast.parse(source)  # the grammar makes valid Python only: then the compiler may not raise at all
    result = compile_source(source, "fuzz.py")
    CompileResult.model_validate_json(result.model_dump_json())
    ids = [c.id for c in result.calls]
    assert sorted(result.order, key=ids.index) == ids
    assert all(e.source != e.target for e in result.edges if e.kind != "carried")


@FUZZ
@given(
    st.one_of(
        noisy(),
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
)
def test_noise_raises_only_compile_error(data: bytes):
    try:
        compile_source(decode_source(data, "noise.py"), "noise.py")
    except CompileError as exc:
        assert str(exc).startswith("noise.py:") and "\n" not in str(exc)
