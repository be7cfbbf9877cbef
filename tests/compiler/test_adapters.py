"""Every framework adapter's example programs: the VALID ones yield no call of the framework, the
INVALID ones exactly the calls (line, callee) they list, each prompt holding the text the framework
builds from the code. Plus a user's own adapter passed in `CompileOptions.adapters`."""

from __future__ import annotations

import pytest

from compiler.adapters import ADAPTERS
from compiler.adapters.base import Adapter, Expect, Read, SdkCall
from compiler.api import CompileOptions, compile_source
from compiler.callsites import CallMatch
from compiler.model import CallStyle
from compiler.templates import messages_text

VALID = [(a, i, code) for a in ADAPTERS for i, code in enumerate(a.VALID)]
INVALID = [(a, i, case) for a in ADAPTERS for i, case in enumerate(a.INVALID)]


def test_every_adapter_has_examples_both_ways() -> None:
    for adapter in ADAPTERS:
        assert adapter.VALID and adapter.INVALID, adapter.NAME


@pytest.mark.parametrize(("adapter", "index", "code"), VALID, ids=[f"{a.NAME}-valid{i}" for a, i, _ in VALID])
def test_valid_example_yields_no_call(adapter: type[Adapter], index: int, code: str) -> None:
    result = compile_source(code, f"{adapter.NAME}_valid.py")
    assert result.calls == [], f"VALID example {index} of {adapter.NAME} must yield no call"


@pytest.mark.parametrize(
    ("adapter", "index", "case"), INVALID, ids=[f"{a.NAME}-invalid{i}" for a, i, _ in INVALID]
)
def test_invalid_example_yields_its_calls(adapter: type[Adapter], index: int, case: Expect) -> None:
    result = compile_source(case.code, f"{adapter.NAME}_invalid.py")
    assert [(c.line, c.callee) for c in result.calls] == list(case.calls)
    assert {c.style.value for c in result.calls} == {adapter.NAME}
    for text in case.prompt_contains:
        holders = [
            c.id for c in result.calls if text in "".join(s.text for s in c.segments if s.kind == "static")
        ]
        assert holders, f"no call's static prompt holds {text!r}"


def test_the_openai_agents_chain_has_its_edges_and_instructions() -> None:
    case = [a for a in ADAPTERS if a.NAME == "openai_agents"][0].INVALID[0]
    result = compile_source(case.code, "agents_chain.py")
    assert [(e.source, e.target, e.variables) for e in result.edges] == [
        ("c1", "c2", ["notes.final_output"]),
        ("c2", "c3", ["draft.final_output"]),
    ]
    writer = "".join(s.text for s in result.call("c2").segments if s.kind == "static")
    assert writer.startswith("<|system|>\nYou turn research notes into a short article")
    assert writer.endswith("<|user|>\n"), "the run's input is the user turn"
    assert {c.is_async for c in result.calls} == {True, False}


class EchoAdapter(Adapter):
    """A user's adapter for an in-house client: `echo.ask(question=...)`."""

    NAME = "echo"

    @staticmethod
    def recognise(call: SdkCall) -> CallMatch | None:
        if call.qualified == "inhouse.echo.ask":
            return CallMatch(CallStyle.ADAPTER, "inhouse.echo.ask", EchoAdapter.NAME)
        return None

    @staticmethod
    def read(match: CallMatch, call: SdkCall) -> Read:
        return messages_text(call.kwargs.get("question")), None


def test_a_users_adapter_is_consulted_when_passed_in_the_options() -> None:
    code = "from inhouse import echo\n\ndef run(q):\n    return echo.ask(question='Reply in French: ' + q)\n"
    assert compile_source(code, "a.py").calls == []
    result = compile_source(code, "a.py", options=CompileOptions(adapters=(EchoAdapter,)))
    [call] = result.calls
    assert call.style is CallStyle.ADAPTER and call.api == "inhouse.echo.ask"
    assert "Reply in French: " in "".join(s.text for s in call.segments)


# The first INVALID program of every adapter, with the edges and patterns it must yield exactly (issue 14:
# "exact calls, edges and patterns for each adapter"). Each claim was read against its program: a chain
# where a call's output feeds the next, a shared prefix where two calls open with the same text.
DATAFLOW = {
    "anthropic": ([("c1", "c2", ["first.content.text"])], [("SEQUENTIAL_CHAIN", ["c1", "c2"])]),
    "dspy": (
        [("c1", "c2", ["fetch.passages"]), ("c1", "c1", ["fetch.passages"])],
        [("LOOP_INVARIANT", ["c1"]), ("SEQUENTIAL_CHAIN", ["c1", "c2"])],
    ),
    "google_genai": ([], []),  # two entry points, each one call: nothing flows, nothing is shared
    "llama_index": (
        [("c1", "c2", ["component.text"])],
        [("SEQUENTIAL_CHAIN", ["c1", "c2"]), ("MISPLACED_SHARED_CONTEXT", ["c1", "c2"])],
    ),
    "langchain": ([("c1", "c2", ["verdict"])], [("SEQUENTIAL_CHAIN", ["c1", "c2"])]),
    "langgraph": ([], [("SHARED_PREFIX", ["c1", "c2"])]),
    "openai_agents": (
        [("c1", "c2", ["notes.final_output"]), ("c2", "c3", ["draft.final_output"])],
        [("SEQUENTIAL_CHAIN", ["c1", "c2", "c3"]), ("SHARED_PREFIX", ["c1", "c4"])],
    ),
}


def test_every_adapter_is_pinned_to_its_edges_and_patterns() -> None:
    assert set(DATAFLOW) == {a.NAME for a in ADAPTERS}


@pytest.mark.parametrize("adapter", ADAPTERS, ids=[a.NAME for a in ADAPTERS])
def test_first_invalid_program_yields_exactly_its_edges_and_patterns(adapter: type[Adapter]) -> None:
    edges, patterns = DATAFLOW[adapter.NAME]
    result = compile_source(adapter.INVALID[0].code, f"{adapter.NAME}_dataflow.py")
    assert [(e.source, e.target, e.variables) for e in result.edges] == edges
    assert [(f.kind.value, f.calls) for f in result.patterns] == patterns
