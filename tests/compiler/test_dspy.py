"""The DSPy adapter on a multi-hop program: its calls, the data edges between hops, the loop the hop
call is in, and the static system prompt DSPy's ChatAdapter builds from the signature."""

from __future__ import annotations

from typing import ClassVar

from compiler.adapters.base import Adapter, Read, SdkCall
from compiler.api import CompileOptions, compile_source
from compiler.callsites import CallMatch
from compiler.model import CallSite, CallStyle, CompileResult
from compiler.values import Const, Mapping, Seq, Static, Text, Value
from .hand_counts import line_of

MULTI_HOP = '''
import dspy


class FollowUp(dspy.Signature):
    """Read the passages so far and write the next search query for the question."""

    passages = dspy.InputField(desc="passages retrieved in earlier hops")
    question = dspy.InputField()
    query = dspy.OutputField()


class Answer(dspy.Signature):
    """Answer the question from the passages in a few words."""

    passages = dspy.InputField(desc="passages retrieved in earlier hops")
    question = dspy.InputField()
    answer = dspy.OutputField(desc="a few words")


class MultiHop(dspy.Module):
    def __init__(self, max_hops=2):
        super().__init__()
        self.search = dspy.Retrieve(k=3)
        self.follow_up = [dspy.ChainOfThought(FollowUp) for _ in range(max_hops)]
        self.answer = dspy.Predict(Answer)
        self.max_hops = max_hops

    def forward(self, question):
        passages = []
        for hop in range(self.max_hops):
            pred = self.follow_up[hop](passages=passages, question=question)
            passages = passages + self.search(pred.query).passages
        return self.answer(passages=passages, question=question)
'''

HOP_LINE = line_of(MULTI_HOP, "pred = self.follow_up[hop](")
ANSWER_LINE = line_of(MULTI_HOP, "return self.answer(")
LOOP_LINE = line_of(MULTI_HOP, "for hop in range(")

FOLLOW_UP_SYSTEM = (
    "<|system|>\n"
    "Your input fields are:\n"
    "1. `passages` (str): passages retrieved in earlier hops\n"
    "2. `question` (str)\n"
    "Your output fields are:\n"
    "1. `reasoning` (str)\n"
    "2. `query` (str)\n"
    "All interactions will be structured in the following way, with the appropriate values filled in.\n"
    "\n"
    "[[ ## passages ## ]]\n{passages}\n\n"
    "[[ ## question ## ]]\n{question}\n\n"
    "[[ ## reasoning ## ]]\n{reasoning}\n\n"
    "[[ ## query ## ]]\n{query}\n\n"
    "[[ ## completed ## ]]\n"
    "In adhering to this structure, your objective is: \n"
    "        Read the passages so far and write the next search query for the question."
)


def _compiled(source: str) -> CompileResult:
    return compile_source(source, "agent.py", options=CompileOptions(with_fixes=False))


def _static_prefix(call: CallSite) -> str:
    """The prompt's text before its first run-time segment."""
    out = []
    for seg in call.segments:
        if seg.kind == "dynamic":
            break
        out.append(seg.text)
    return "".join(out)


def _rendered(call: CallSite) -> str:
    return "".join(s.text if s.kind == "static" else "{" + (s.name or "") + "}" for s in call.segments)


def test_the_multi_hop_program_has_one_call_per_predictor_site() -> None:
    result = _compiled(MULTI_HOP)
    assert [(c.id, c.line, c.callee, c.api, c.function) for c in result.calls] == [
        ("c1", HOP_LINE, "self.follow_up.[]", "dspy.ChainOfThought", "MultiHop.forward"),
        ("c2", ANSWER_LINE, "self.answer", "dspy.Predict", "MultiHop.forward"),
    ]
    assert {c.style for c in result.calls} == {CallStyle.DSPY}
    assert [c.output_var for c in result.calls] == ["pred", None]
    assert [c.is_async for c in result.calls] == [False, False]


def test_each_hops_query_feeds_the_next_hop_and_the_answer() -> None:
    result = _compiled(MULTI_HOP)
    # The query of hop k is searched, and the passages found are the input of hop k+1 (a carried edge:
    # the same call site in the next iteration) and of the final answer call.
    assert [(e.source, e.target, e.variables, e.kind) for e in result.edges] == [
        ("c1", "c2", ["search.passages"], "data"),
        ("c1", "c1", ["search.passages"], "carried"),
    ]
    assert result.call("c1").loop_carried == ["search.passages"]
    answer_inputs = [s for s in result.call("c2").segments if s.kind == "dynamic"]
    assert [(s.name, s.origin_calls) for s in answer_inputs] == [
        ("search.passages", ["c1"]),
        ("search.passages", ["c1"]),
        ("question", []),
    ]


def test_the_hop_call_is_in_the_hop_loop_and_the_answer_call_is_not() -> None:
    result = _compiled(MULTI_HOP)
    [loop] = result.call("c1").loops
    assert (loop.kind, loop.line, loop.target, loop.iterates) == (
        "for",
        LOOP_LINE,
        "hop",
        "range(self.max_hops)",
    )
    assert result.call("c2").loops == []


def test_the_static_prompt_is_the_system_text_built_from_the_signature() -> None:
    result = _compiled(MULTI_HOP)
    hop = result.call("c1")
    assert _static_prefix(hop) == FOLLOW_UP_SYSTEM + "<|user|>\n[[ ## passages ## ]]\n"
    # Run-time inputs are only in the user message, after all of the static system text.
    assert {s.role for s in hop.segments if s.kind == "dynamic"} == {"user"}
    assert {s.role for s in hop.segments if "Read the passages so far" in s.text} == {"system"}
    assert _rendered(hop).endswith(
        "<|user|>\n[[ ## passages ## ]]\n{passages}\n\n[[ ## question ## ]]\n{question}\n\n"
        "Respond with the corresponding output fields, starting with the field `[[ ## reasoning ## ]]`, "
        "then `[[ ## query ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."
    )
    answer = _static_prefix(result.call("c2"))
    assert answer.startswith(
        "<|system|>\nYour input fields are:\n1. `passages` (str): passages retrieved in earlier hops\n"
        "2. `question` (str)\nYour output fields are:\n1. `answer` (str): a few words\n"
    ), "Predict adds no reasoning field"
    assert answer.endswith(
        "your objective is: \n        Answer the question from the passages in a few words."
        "<|user|>\n[[ ## passages ## ]]\n"
    )


INHERITED_AND_ASYNC = '''
import dspy


class Labelled(dspy.Signature):
    """Label the ticket."""

    ticket: str = dspy.InputField()


class WithPriority(Labelled):
    team: str = dspy.OutputField()
    priority: int = dspy.OutputField(desc="1 is the most urgent")


class Router(dspy.Module):
    def __init__(self):
        self.route = dspy.Predict(WithPriority)

    async def aforward(self, ticket):
        first = await self.route.acall(ticket=ticket)
        return await self.route.acall(ticket=first.team + ticket)
'''


def test_an_inherited_signature_keeps_its_bases_fields_doc_and_types_and_acall_is_async() -> None:
    result = _compiled(INHERITED_AND_ASYNC)
    assert [(c.id, c.line, c.callee, c.api, c.is_async) for c in result.calls] == [
        ("c1", 21, "self.route.acall", "dspy.Predict.acall", True),
        ("c2", 22, "self.route.acall", "dspy.Predict.acall", True),
    ]
    assert [(e.source, e.target, e.variables) for e in result.edges] == [("c1", "c2", ["first.team"])]
    system = _static_prefix(result.call("c1"))
    assert system.startswith(
        "<|system|>\nYour input fields are:\n1. `ticket` (str)\nYour output fields are:\n"
        "1. `team` (str)\n2. `priority` (int): 1 is the most urgent\n"
    )
    assert "{priority}        # note: the value you produce must be a single int value\n" in system
    assert system.endswith("your objective is: \n        Label the ticket.<|user|>\n[[ ## ticket ## ]]\n")


def test_a_signature_built_at_run_time_still_gives_the_call_with_its_inputs() -> None:
    source = (
        "import dspy\n\ndef ask(spec, q):\n"
        "    predict = dspy.Predict(spec)\n    return predict(question=q).answer\n"
    )
    [call] = _compiled(source).calls
    assert (call.line, call.callee, call.api) == (5, "predict", "dspy.Predict")
    assert [(s.name, s.role) for s in call.segments if s.kind == "dynamic"] == [
        ("signature", "system"),
        ("q", "user"),
    ]


def test_predictors_that_are_never_called_and_other_dspy_calls_give_no_call() -> None:
    source = (
        "import dspy\n\n"
        "qa = dspy.Predict('question -> answer')\n"
        "retrieve = dspy.Retrieve(k=3)\n\n"
        "def passages(q):\n    return retrieve(q).passages\n\n"
        "def signature():\n    return qa.signature\n"
    )
    assert _compiled(source).calls == []


class Capture(Adapter):
    """Records what `lib.build(...)` is handed, to see a project class as the interpreter describes it."""

    NAME = "capture"
    seen: ClassVar[list[SdkCall]] = []

    @staticmethod
    def construct(call: SdkCall) -> Value | None:
        if call.qualified == "lib.build":
            Capture.seen.append(call)
        return None

    @staticmethod
    def recognise(call: SdkCall) -> CallMatch | None:
        return None

    @staticmethod
    def read(match: CallMatch, call: SdkCall) -> Read:
        raise AssertionError("never recognised")


def test_a_project_class_handed_to_a_library_is_described_by_its_namespace() -> None:
    source = '''
import lib


class Base(lib.Model):
    kind = "base"


class Spec(Base):
    """What the spec says."""

    name: str = "n"
    size = 3

    def method(self):
        return 1


lib.build(Spec, other=Base, n=1)
'''
    Capture.seen.clear()
    compile_source(source, "a.py", options=CompileOptions(adapters=(Capture,), with_fixes=False))
    [call] = Capture.seen
    base = Mapping(
        (
            ("__name__", Text((Static("Base"),))),
            ("__doc__", Const(None)),
            ("__annotations__", Mapping(())),
            ("__bases__", Seq((Text((Static("lib.Model"),)),))),
            ("kind", Text((Static("base"),))),
        )
    )
    spec = Mapping(
        (
            ("__name__", Text((Static("Spec"),))),
            ("__doc__", Text((Static("What the spec says."),))),
            ("__annotations__", Mapping((("name", Text((Static("str"),))),))),
            ("__bases__", Seq((base,))),
            ("name", Text((Static("n"),))),
            ("size", Const(3)),
        )
    )
    assert call.args == [spec]
    assert call.kwargs == {"other": base, "n": Const(1)}
