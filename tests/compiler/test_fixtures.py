"""Exact calls, edges and patterns for every fixture agent under data/agents/examples/.

The table pins what the compiler finds today; each entry was checked by hand against the agent's
code. A change in any of them is a behaviour change that must be deliberate.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from compiler.model import CallStyle, SourceKind
from tests.compiler.conftest import EXAMPLES


@dataclass(frozen=True)
class Expect:
    calls: list[tuple[int, str, str, str | None]]  # line, style, callee as written, output variable
    edges: list[tuple[str, str, tuple[str, ...]]]
    patterns: list[tuple[str, tuple[str, ...]]]


EXPECTED: dict[str, Expect] = {
    "branch_router": Expect(
        calls=[
            (16, "openai", "chat", "intent"),
            (18, "openai", "chat", None),
            (20, "openai", "chat", None),
            (21, "openai", "chat", None),
        ],
        edges=[("c1", "c2", ("intent",)), ("c1", "c3", ("intent",)), ("c1", "c4", ("intent",))],
        patterns=[("BRANCHING", ("c1", "c2", "c3", "c4")), ("SEQUENTIAL_CHAIN", ("c1", "c2"))],
    ),
    "dynamic_prefix_agent": Expect(
        calls=[(18, "openai", "client.chat.completions.create", "resp")],
        edges=[],
        patterns=[("DYNAMIC_PREFIX", ("c1",))],
    ),
    "few_shot_classifier": Expect(
        calls=[(25, "openai", "client.completions.create", "out")],
        edges=[],
        patterns=[("LOOP_INVARIANT", ("c1",))],
    ),
    "http_endpoints": Expect(
        calls=[
            (13, "http", "httpx.post", "scored"),
            (16, "http", "requests.post", "feedback"),
            (23, "http", "requests.post", "tldr"),
        ],
        edges=[("c1", "c2", ("scores",)), ("c2", "c3", ("feedback.text",))],
        patterns=[("SEQUENTIAL_CHAIN", ("c1", "c2", "c3"))],
    ),
    "langchain_batch": Expect(
        calls=[
            (13, "langchain", "chat_model.batch", "labels"),
            (15, "langchain", "chat_model.invoke", "report"),
        ],
        edges=[("c1", "c2", ("digest",))],
        patterns=[("BRANCHING", ("c1", "c2")), ("SEQUENTIAL_CHAIN", ("c1", "c2"))],
    ),
    "langchain_chain": Expect(
        calls=[
            (25, "langchain", "outline_chain.invoke", "outline"),
            (26, "langchain", "draft_chain.invoke", None),
        ],
        edges=[("c1", "c2", ("outline",))],
        patterns=[("SEQUENTIAL_CHAIN", ("c1", "c2"))],
    ),
    "legacy_percent_format": Expect(
        calls=[(17, "openai", "openai.completions.create", None)],
        edges=[],
        patterns=[],
    ),
    "litellm_pipeline": Expect(
        calls=[(12, "litellm", "litellm.completion", "draft"), (18, "litellm", "acompletion", "checked")],
        edges=[("c1", "c2", ("draft_text",))],
        patterns=[("SEQUENTIAL_CHAIN", ("c1", "c2")), ("SHARED_PREFIX", ("c1", "c2"))],
    ),
    "map_reduce": Expect(
        calls=[(18, "openai", "summarise_chunk", None), (20, "openai", "client.completions.create", "final")],
        edges=[("c1", "c2", ("joined",))],
        patterns=[("LOOP_INVARIANT", ("c1",)), ("MAP_REDUCE", ("c1", "c2"))],
    ),
    "named_helpers": Expect(
        calls=[
            (11, "named_function", "llm_summarize", "summary"),
            (12, "named_function", "call_llm", "draft"),
        ],
        edges=[("c1", "c2", ("summary",))],
        patterns=[("SEQUENTIAL_CHAIN", ("c1", "c2"))],
    ),
    "openai_async_fanout": Expect(
        calls=[
            (31, "openai", "self.ask", None),
            (33, "openai", "self.client.chat.completions.create", "final"),
        ],
        edges=[("c1", "c2", ("merged",))],
        patterns=[
            ("DELTA_MATCHING", ("c1",)),
            ("LOOP_INVARIANT", ("c1",)),
            ("MAP_REDUCE", ("c1", "c2")),
        ],
    ),
    "openai_module_client": Expect(
        calls=[
            (16, "openai", "client.chat.completions.create", "summary"),
            (23, "openai", "client.chat.completions.create", "title"),
        ],
        edges=[("c1", "c2", ("summary",))],
        patterns=[("SEQUENTIAL_CHAIN", ("c1", "c2")), ("SHARED_PREFIX", ("c1", "c2"))],
    ),
    "react_agent": Expect(
        calls=[(21, "openai", "client.chat.completions.create", "reply")],
        edges=[("c1", "c1", ("action", "arg", "content"))],  # carried: the history re-sends the reply
        patterns=[("GROWING_HISTORY", ("c1",))],  # not invariant: the history grows every step
    ),
    "responses_client_param": Expect(
        calls=[
            (11, "openai", "client.responses.create", "first"),
            (13, "openai", "client.responses.create", "followup"),
        ],
        edges=[("c1", "c2", ("first.output_text",))],
        patterns=[("SEQUENTIAL_CHAIN", ("c1", "c2")), ("SHARED_PREFIX", ("c1", "c2"))],
    ),
    "self_refine": Expect(
        calls=[
            (16, "openai", "complete", "draft"),
            (18, "openai", "complete", "critique"),
            (19, "openai", "complete", "draft"),
        ],
        edges=[
            ("c1", "c2", ("draft",)),
            ("c1", "c3", ("draft",)),
            ("c2", "c3", ("critique",)),
            ("c3", "c2", ("draft",)),  # carried: each revision is the next round's critique input
            ("c3", "c3", ("draft",)),  # and the next round's draft
        ],
        patterns=[
            ("MISPLACED_SHARED_CONTEXT", ("c2", "c3")),
            ("SEQUENTIAL_CHAIN", ("c1", "c2", "c3")),
        ],  # the draft changes every round: nothing is loop-invariant
    ),
    "sglang_tree_of_thought": Expect(
        calls=[
            (60, "callable_parameter", "propose_plan", None),
            (63, "callable_parameter", "execute_plan", None),
            (67, "callable_parameter", "reflect_solution", None),
            (71, "callable_parameter", "get_final_answer", None),
        ],
        edges=[
            ("c1", "c2", ("comp",)),
            ("c1", "c3", ("comp",)),
            ("c1", "c4", ("comp",)),
            ("c2", "c3", ("comp",)),
            ("c2", "c4", ("comp",)),
            ("c3", "c4", ("comp",)),
        ],
        patterns=[
            ("BRANCHING", ("c1", "c2")),
            ("BRANCHING", ("c2", "c3")),
            ("BRANCHING", ("c3", "c4")),
            ("BRANCHING", ("c4",)),
            ("DELTA_MATCHING", ("c2",)),
            ("LOOP_INVARIANT", ("c2",)),
            ("LOOP_INVARIANT", ("c3",)),
            ("LOOP_INVARIANT", ("c4",)),
            ("SEQUENTIAL_CHAIN", ("c1", "c2", "c3", "c4")),
            ("SHARED_PREFIX", ("c1", "c2", "c3", "c4")),
        ],
    ),
    "triton_infer": Expect(
        calls=[(17, "triton", "triton_client.infer", "result")],
        edges=[],
        patterns=[],
    ),
}


def test_every_fixture_has_an_expectation():
    names = {p.stem for p in EXAMPLES.glob("*.py")}
    assert names == set(EXPECTED)
    assert len(names) >= 15


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_calls_edges_patterns(compiled, name):
    r = compiled[name]
    want = EXPECTED[name]
    assert [(c.line, c.style.value, c.callee, c.output_var) for c in r.calls] == want.calls
    assert [(e.source, e.target, tuple(e.variables)) for e in r.edges] == want.edges
    assert sorted((f.kind.value, tuple(f.calls)) for f in r.patterns) == want.patterns
    assert r.diagnostics == []


def _static_text(call) -> str:
    return "".join(s.text for s in call.segments if s.kind == "static" and not s.synthetic)


def test_sglang_state_grows_through_four_functions(compiled):
    r = compiled["sglang_tree_of_thought"]
    calls = r.calls
    assert [c.style for c in calls] == [CallStyle.CALLABLE_PARAMETER] * 4
    assert [c.fanout for c in calls] == ["num_branches"] * 4
    # Each step's prompt contains every earlier step's instruction and one sampled output per step.
    for i, marker in enumerate(
        [
            "Please generate a high-level plan",
            "The plan looks good!",
            "evaluate your own solution",
            "do you change your mind?",
        ]
    ):
        for later in calls[i:]:
            assert marker in _static_text(later)
    assert [sum(1 for s in c.segments if s.name == "comp") for c in calls] == [0, 1, 2, 3]
    chain = next(f for f in r.patterns if f.kind.value == "SEQUENTIAL_CHAIN")
    assert chain.figures["depth"] == 4
    # The state is only ever appended to: each prompt starts with all of the previous one.
    assert chain.figures["progressive_context"] is True


def test_react_history_grows_and_is_loop_carried(compiled):
    [call] = compiled["react_agent"].calls
    assert call.grows_per_iteration is True
    assert "content" in call.loop_carried
    assert [l.kind for l in call.loops] == ["for"]


def test_few_shot_examples_are_folded_into_static_text(compiled):
    [call] = compiled["few_shot_classifier"].calls
    text = _static_text(call)
    assert "Message: I was charged twice this month\nLabel: billing" in text
    assert text.startswith("Classify the customer message into one of")  # textwrap.dedent applied
    assert [s.name for s in call.segments if s.kind == "dynamic"] == ["message"]


def test_dynamic_prefix_names_the_volatile_values(compiled):
    [call] = compiled["dynamic_prefix_agent"].calls
    volatile = [s.name for s in call.segments if s.source is SourceKind.VOLATILE]
    assert volatile == ["datetime.now().isoformat()", "uuid.uuid4()"]
    [f] = compiled["dynamic_prefix_agent"].patterns
    assert f.figures["volatile"] is True
    assert f.figures["cacheable_share_before"] == 0.0 and f.figures["cacheable_share_after"] > 0.5


def test_triton_prompt_comes_from_the_infer_input_data(compiled):
    [call] = compiled["triton_infer"].calls
    assert call.style is CallStyle.TRITON
    assert _static_text(call).startswith("You are a SQL assistant")
    assert "text_input" not in _static_text(call)


def test_async_styles_are_marked(compiled):
    assert [c.is_async for c in compiled["openai_async_fanout"].calls] == [True, True]
    assert [c.is_async for c in compiled["litellm_pipeline"].calls] == [False, True]


def test_langchain_templates_are_rendered_with_invoke_arguments(compiled):
    c1, c2 = compiled["langchain_chain"].calls
    assert [s.role for s in c1.segments if s.synthetic] == ["system", "user"]
    assert [s.name for s in c1.segments if s.kind == "dynamic"] == ["topic", "audience"]
    assert [s.name for s in c2.segments if s.kind == "dynamic"] == ["outline", "audience"]


def test_branch_arms_are_exclusive(compiled):
    r = compiled["branch_router"]
    assert [[b.arm for b in c.branches] for c in r.calls] == [[], ["if"], ["else", "if"], ["else", "else"]]
    # The three specialists never run together, so their shared `intent` is not misplaced context.
    assert "MISPLACED_SHARED_CONTEXT" not in r.pattern_kinds()
