"""DSPy: signatures, the modules that call a model with them, and the chat request DSPy builds.

- Signatures: a string (`"context, question -> answer"`, typed `"question: str -> answer: int"`), a
  `dspy.Signature` subclass (its docstring is the objective, its `dspy.InputField`/`dspy.OutputField`
  attributes the fields, in order, base classes' fields first) or `dspy.Signature("q -> a", "objective")`.
  The interpreter hands a project class to a library constructor as its namespace
  (`calls._classes_described`), which is how its docstring and fields are read here.
- Modules: `dspy.Predict`; `dspy.ChainOfThought` (a `reasoning` output before the others);
  `dspy.ReAct(sig, tools=[...])` as one call, the step that picks the next tool: its loop (up to
  `max_iters` steps, the trajectory growing each step) and the final extraction call are not counted,
  and tools are listed by name only (their docstrings are not seen); `dspy.ProgramOfThought` as one
  call, the code-writing step (re-generation after an error and the answer step are not counted).
- Calls: a predictor called (`qa(question=q)`, `self.qa(...)`, `self.hops[i](...)`), or its
  `acall`/`aforward`/`forward`; a `dspy.LM` called on a prompt or messages. A `dspy.Module` subclass
  called as `program(...)` is not followed into its `forward`; `forward` is analysed on its own as an
  entry point. Predictors in a literal list are followed at a literal index only (`self.steps[0]`),
  not at a run-time index nor walked by `for p in self.steps` (a comprehension's list is followed).
- What is sent, laid out as DSPy's default ChatAdapter does (paraphrased, not byte-exact): a system
  message listing the input and output fields, the `[[ ## field ## ]]` structure and the objective, all
  static; a user message with each input's marker and its run-time value, then the request to answer
  with the output fields. Few-shot demos (filled in by an optimizer or `load` at run time), the JSON
  schema of structured output types and the JSON/XML adapters are not modelled.
"""

from __future__ import annotations

import re

from compiler.adapters.base import Adapter, Expect, Read, SdkCall, static_text
from compiler.callsites import CallMatch
from compiler.model import CallStyle, SourceKind
from compiler.templates import message_text, messages_text
from compiler.values import (
    Client,
    Const,
    Dyn,
    FuncRef,
    Mapping,
    Opaque,
    Part,
    Seq,
    Static,
    Text,
    Value,
    text_of,
)

MARK = "__dspy__"  # the key that makes a Mapping a DSPy object built here (its value: what it is)
MODULES = frozenset({"Predict", "ChainOfThought", "ReAct", "ProgramOfThought"})
CALL_METHODS = frozenset({"acall", "aforward", "forward"})
FIELD_KINDS = {"InputField": "input", "OutputField": "output"}
SIMPLE_TYPES = frozenset({"int", "float", "bool"})
INDENT = " " * 8


def _text(s: str) -> Text:
    return Text((Static(s),))


def _dspy_name(call: SdkCall) -> str | None:
    """`Predict` for `dspy.Predict` / `dspy.predict.Predict` / `from dspy import Predict`."""
    qualified = call.qualified
    if qualified is None or not (qualified == "dspy" or qualified.startswith("dspy.")):
        return None
    return qualified.rsplit(".", 1)[-1]


def _is_lm(value: Value | None) -> bool:
    return isinstance(value, Client) and value.kind == "dspy"


def _kind(value: Value | None) -> str | None:
    if isinstance(value, Mapping) and value.items and value.items[0][0] == MARK:
        return static_text(value.items[0][1])
    return None


# ----------------------------------------------------------------------------- signatures


def _field(name: str, type_: str, desc: Value | None) -> Mapping:
    return Mapping((("name", _text(name)), ("type", _text(type_)), ("desc", desc or Const(None))))


def _split_fields(text: str) -> list[tuple[str, str]] | None:
    """`"context, question: str"` -> [(context, str), (question, str)]; None when it is not a field list."""
    out: list[tuple[str, str]] = []
    depth, start = 0, 0
    pieces: list[str] = []
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    for piece in pieces:
        name, _, type_ = piece.partition(":")
        name, type_ = name.strip(), type_.strip() or "str"
        if not name.isidentifier():
            return None
        out.append((name, type_))
    return out


def _default_instructions(inputs: list[Mapping], outputs: list[Mapping]) -> str:
    """What DSPy writes as the objective of a signature that has no docstring."""
    ins = ", ".join(f"`{_name(f)}`" for f in inputs)
    outs = ", ".join(f"`{_name(f)}`" for f in outputs)
    return f"Given the fields {ins}, produce the fields {outs}."


def _signature(inputs: list[Mapping], outputs: list[Mapping], instructions: Value | None) -> Mapping:
    if instructions is None:
        instructions = _text(_default_instructions(inputs, outputs))
    return Mapping(
        (
            (MARK, _text("Signature")),
            ("instructions", instructions),
            ("inputs", Seq(tuple(inputs))),
            ("outputs", Seq(tuple(outputs))),
        )
    )


def _from_string(text: str, instructions: Value | None) -> Mapping | None:
    left, arrow, right = text.partition("->")
    if not arrow or "->" in right:
        return None
    ins, outs = _split_fields(left), _split_fields(right)
    if ins is None or outs is None:
        return None
    return _signature(
        [_field(n, t, None) for n, t in ins], [_field(n, t, None) for n, t in outs], instructions
    )


def _class_fields(namespace: Mapping, depth: int = 0) -> tuple[list[Mapping], list[Mapping], str | None]:
    """A `dspy.Signature` subclass's input and output fields (its bases' first) and docstring."""
    inputs: list[Mapping] = []
    outputs: list[Mapping] = []
    doc: str | None = None
    bases = namespace.get("__bases__")
    for base in bases.items if isinstance(bases, Seq) and depth < 10 else ():
        if isinstance(base, Mapping):
            base_ins, base_outs, base_doc = _class_fields(base, depth + 1)
            inputs += base_ins
            outputs += base_outs
            doc = doc or base_doc
    annotations = namespace.get("__annotations__")
    for name, value in namespace.items:
        if not isinstance(value, Mapping) or _kind(value) != "Field":
            continue
        type_ = static_text(annotations.get(name)) if isinstance(annotations, Mapping) else None
        field = _field(name, type_ or "str", value.get("desc"))
        (inputs if static_text(value.get("io")) == "input" else outputs).append(field)
    own_doc = namespace.get("__doc__")
    return inputs, outputs, static_text(own_doc) or doc


def _as_signature(value: Value | None, instructions: Value | None = None) -> Mapping | None:
    """The signature a string, a `dspy.Signature` subclass or a signature already built stands for."""
    if value is None:
        return None
    if _kind(value) == "Signature":
        assert isinstance(value, Mapping)
        return value
    text = static_text(value)
    if text is not None:
        return _from_string(text, instructions)
    if isinstance(value, Mapping) and value.get("__bases__") is not None:  # a class, as its namespace
        inputs, outputs, doc = _class_fields(value)
        if not inputs and not outputs:
            return None
        if instructions is None and doc is not None:
            instructions = _text(doc)
        return _signature(inputs, outputs, instructions)
    return None


def _name(field: Value) -> str:
    return (static_text(field.get("name")) if isinstance(field, Mapping) else None) or "?"


def _type(field: Value) -> str:
    return (static_text(field.get("type")) if isinstance(field, Mapping) else None) or "str"


def _fields(sig: Mapping, key: str) -> list[Mapping]:
    seq = sig.get(key)
    return [f for f in seq.items if isinstance(f, Mapping)] if isinstance(seq, Seq) else []


# ----------------------------------------------------------------------------- modules

REACT_OBJECTIVE = (
    "You are an agent. Each turn you are given the input fields {inputs} and the trajectory so far. "
    "Use one or more of the tools below to gather what you need to produce {outputs}.\n"
    "Each turn, write next_thought, then choose next_tool_name and next_tool_args; the tool's result "
    "is appended to the trajectory as an observation.\n"
    "The tool must be one of:\n"
)
POT_OBJECTIVE = (
    "You are given {inputs} and must produce {outputs}. Write executable Python code that computes "
    "{outputs}; call `final_answer()` with the result once the code has computed it."
)


def _ticks(fields: list[Mapping]) -> str:
    return ", ".join(f"`{_name(f)}`" for f in fields)


def _react(sig: Mapping, tools: Value | None) -> Mapping:
    """The signature of one ReAct step: the inputs and the trajectory in, the next tool to call out."""
    inputs, outputs = _fields(sig, "inputs"), _fields(sig, "outputs")
    head = REACT_OBJECTIVE.format(inputs=_ticks(inputs), outputs=_ticks(outputs))
    parts: list[Part] = []
    base = sig.get("instructions")
    if isinstance(base, Text):
        parts += [*base.parts, Static("\n\n")]
    parts.append(Static(head))
    items = tools.items if isinstance(tools, Seq) else ()
    names: list[str] = []
    for i, tool in enumerate(items, 1):
        name = tool.qualname.rpartition(":")[2].rsplit(".", 1)[-1] if isinstance(tool, FuncRef) else None
        parts.append(Static(f"({i}) "))
        if name is not None:
            names.append(name)
            parts.append(Static(f"{name}\n"))
        else:  # a tool object built at run time: its name is not known here
            parts.append(Dyn(f"tools[{i - 1}]", SourceKind.LOCAL, key=f"dspy:tool:{i - 1}"))
            parts.append(Static("\n"))
    if not isinstance(tools, Seq):
        parts.append(Dyn("tools", SourceKind.LOCAL, key="dspy:tools"))
        parts.append(Static("\n"))
    parts.append(
        Static(f"({len(items) + 1}) finish: marks the task done, once {_ticks(outputs)} can be produced")
    )
    choice = ", ".join(repr(n) for n in [*names, "finish"])
    return _signature(
        [*inputs, _field("trajectory", "str", None)],
        [
            _field("next_thought", "str", None),
            _field("next_tool_name", f"Literal[{choice}]", None),
            _field("next_tool_args", "dict[str, Any]", None),
        ],
        Text(tuple(parts)),
    )


def _program_of_thought(sig: Mapping) -> Mapping:
    """The signature of ProgramOfThought's code-writing step (a chain of thought)."""
    inputs, outputs = _fields(sig, "inputs"), _fields(sig, "outputs")
    objective = POT_OBJECTIVE.format(inputs=_ticks(inputs), outputs=_ticks(outputs))
    return _signature(
        inputs,
        [_field("reasoning", "str", None), _field("generated_code", "str", None)],
        _text(objective),
    )


def _module(kind: str, call: SdkCall) -> Value | None:
    args, kwargs = call.args, call.kwargs
    raw = args[0] if args else kwargs.get("signature")
    sig = _as_signature(raw)
    if sig is None:
        # A signature built at run time: its fields and objective are not known, its calls still are.
        sig = _signature([], [], Text((Dyn("signature", SourceKind.LOCAL, key="dspy:signature"),)))
    if kind == "ChainOfThought":
        sig = _signature(
            _fields(sig, "inputs"),
            [_field("reasoning", "str", None), *_fields(sig, "outputs")],
            sig.get("instructions"),
        )
    elif kind == "ReAct":
        sig = _react(sig, args[1] if len(args) > 1 else kwargs.get("tools"))
    elif kind == "ProgramOfThought":
        sig = _program_of_thought(sig)
    return Mapping(((MARK, _text(kind)), ("signature", sig)))


# ----------------------------------------------------------------------------- the request


def _marker(name: str) -> str:
    return f"[[ ## {name} ## ]]"


def _note(type_: str) -> str:
    if type_ == "str":
        return ""
    if type_ in SIMPLE_TYPES:
        return f"        # note: the value you produce must be a single {type_} value"
    return f"        # note: the value you produce must adhere to the type `{type_}`"


def _system(sig: Mapping) -> Text:
    inputs, outputs = _fields(sig, "inputs"), _fields(sig, "outputs")
    lines: list[str] = []
    for title, fields in (("input", inputs), ("output", outputs)):
        lines.append(f"Your {title} fields are:")
        for i, f in enumerate(fields, 1):
            desc = static_text(f.get("desc"))
            lines.append(f"{i}. `{_name(f)}` ({_type(f)})" + (f": {desc}" if desc else ""))
    lines.append(
        "All interactions will be structured in the following way, with the appropriate values filled in."
    )
    lines.append("")
    for f in inputs:
        lines += [_marker(_name(f)), "{" + _name(f) + "}", ""]
    for f in outputs:
        lines += [_marker(_name(f)), "{" + _name(f) + "}" + _note(_type(f)), ""]
    lines += [_marker("completed"), "In adhering to this structure, your objective is: "]
    parts: list[Part] = [Static("\n".join(lines) + "\n" + INDENT)]
    objective = sig.get("instructions")
    if isinstance(objective, Text):
        parts += _indented(objective.parts)
    return Text(tuple(parts))


def _indented(parts: tuple[Part, ...]) -> list[Part]:
    """The objective as DSPy writes it under its heading: every non-empty line indented."""
    out: list[Part] = []
    line_start = False  # the first line follows the heading's own indent
    for p in parts:
        if isinstance(p, Static):
            text = re.sub(r"\n(?=[^\n])", "\n" + INDENT, p.text)
            if line_start and text[:1] not in ("", "\n"):
                text = INDENT + text
            out.append(Static(text, p.build))
            line_start = text.endswith("\n") or (line_start and not text)
        else:
            if line_start:
                out.append(Static(INDENT))
            out.append(p)
            line_start = False
    return out


def _user(sig: Mapping, call: SdkCall) -> Text:
    inputs, outputs = _fields(sig, "inputs"), _fields(sig, "outputs")
    kwargs = call.kwargs
    parts: list[Part] = []
    names = [_name(f) for f in inputs] or list(kwargs)  # a run-time signature: the inputs as passed
    for name in names:
        value = kwargs.get(name)
        if value is None and call.star is not None:
            star = call.star
            value = Opaque(
                name,
                star.source if isinstance(star, Opaque) else SourceKind.LOCAL,
                key=f"{getattr(star, 'key', 'star')}[{name}]",
            )
        if value is None:
            continue  # not passed: DSPy leaves the field out
        parts.append(Static(f"{_marker(name)}\n"))
        parts += text_of(value, call.kw_source(name)).parts
        parts.append(Static("\n\n"))
    steps = [f"`{_marker(_name(f))}`" + _format(_type(f)) for f in outputs]
    if steps:
        order = "starting with the field " + steps[0]
        order += "".join(f", then {s}" for s in steps[1:])
        parts.append(
            Static(
                f"Respond with the corresponding output fields, {order}, and then ending with the "
                f"marker for `{_marker('completed')}`."
            )
        )
    return Text(tuple(parts))


def _format(type_: str) -> str:
    if type_ == "str":
        return ""
    return f" (must be formatted as a valid Python {type_})"


class DSPyAdapter(Adapter):
    NAME = "dspy"
    # A predictor's call looks like any call (`self.answer(question=q)`): functions that mention `dspy.`
    # or await `acall` are followed every time they are called, not summarised after a few.
    HINT = r"\.(?:acall|aforward)\s*\(|\bdspy\."

    @staticmethod
    def construct(call: SdkCall) -> Value | None:
        name = _dspy_name(call)
        if name is None:
            return None
        if name in MODULES:
            return _module(name, call)
        if name in FIELD_KINDS:
            desc = call.kwargs.get("desc") or Const(None)
            return Mapping(((MARK, _text("Field")), ("io", _text(FIELD_KINDS[name])), ("desc", desc)))
        if name == "Signature" and call.args:
            instructions = call.args[1] if len(call.args) > 1 else call.kwargs.get("instructions")
            return _as_signature(call.args[0], instructions)
        if name == "LM":
            return Client("dspy", "LM")
        return None

    @staticmethod
    def recognise(call: SdkCall) -> CallMatch | None:
        func, receiver, method = call.func_value, call.receiver, call.method
        kind = _kind(func)
        if kind in MODULES:
            return CallMatch(CallStyle.DSPY, f"dspy.{kind}", DSPyAdapter.NAME)
        if _is_lm(func):
            return CallMatch(CallStyle.DSPY, "dspy.LM", DSPyAdapter.NAME)
        if method not in CALL_METHODS:
            return None
        kind = _kind(receiver)
        if kind in MODULES:
            return CallMatch(CallStyle.DSPY, f"dspy.{kind}.{method}", DSPyAdapter.NAME)
        if _is_lm(receiver):
            return CallMatch(CallStyle.DSPY, f"dspy.LM.{method}", DSPyAdapter.NAME)
        return None

    @staticmethod
    def read(match: CallMatch, call: SdkCall) -> Read:
        """A predictor's request as the ChatAdapter lays it out; an `LM`'s own prompt or messages."""
        if match.api.startswith("dspy.LM"):
            messages = call.kwargs.get("messages")
            if messages is None:
                prompt = call.kwargs.get("prompt") or (call.args[0] if call.args else None)
                messages = Seq((prompt,)) if prompt is not None else None
            return messages_text(messages), None
        predictor = call.func_value if _kind(call.func_value) in MODULES else call.receiver
        sig = predictor.get("signature") if isinstance(predictor, Mapping) else None
        if not isinstance(sig, Mapping):
            sig = _signature([], [], None)
        system = Mapping((("role", _text("system")), ("content", _system(sig))))
        user = Mapping((("role", _text("user")), ("content", _user(sig, call))))
        return Text(message_text(system).parts + message_text(user).parts), None

    VALID = (
        """
import dspy

lm = dspy.LM("openai/gpt-4o-mini", temperature=0.2)
dspy.configure(lm=lm)


class Formality(dspy.Signature):
    \"\"\"Rate how formal a sentence is, from 1 (chatty) to 5 (legal).\"\"\"

    sentence = dspy.InputField()
    score: int = dspy.OutputField()


rate = dspy.Predict(Formality)
explain = dspy.ChainOfThought("sentence, score -> why")


class Rater(dspy.Module):
    def __init__(self):
        super().__init__()
        self.rate = dspy.ChainOfThought(Formality)

    def fields(self):
        return self.rate.signature


def last_prompts():
    return lm.inspect_history(n=2)
""",
    )
    INVALID = (
        Expect(  # multi-hop: one predictor per hop, in a list indexed by the hop, then the reply
            """
import dspy


class NextSearch(dspy.Signature):
    \"\"\"Given what has been found so far, write the next search that would close the remaining gap.\"\"\"

    found = dspy.InputField(desc="snippets collected in earlier hops")
    question = dspy.InputField()
    search = dspy.OutputField()


class HopReader(dspy.Module):
    def __init__(self, hops=3):
        super().__init__()
        self.fetch = dspy.Retrieve(k=5)
        self.next_search = [dspy.ChainOfThought(NextSearch) for _ in range(hops)]
        self.reply = dspy.ChainOfThought("found, question -> reply")
        self.hops = hops

    def forward(self, question):
        found = []
        for hop in range(self.hops):
            search = self.next_search[hop](found=found, question=question).search
            found = found + self.fetch(search).passages
        return self.reply(found=found, question=question)
""",
            calls=((24, "self.next_search.[]"), (26, "self.reply")),
            prompt_contains=(
                "Given what has been found so far, write the next search that would close the remaining gap.",
                "1. `found` (str): snippets collected in earlier hops\n2. `question` (str)\n",
                "Given the fields `found`, `question`, produce the fields `reply`.",
            ),
        ),
        Expect(  # a string signature, typed, called directly and with `acall`
            """
import dspy

classify = dspy.Predict("message: str -> label: str, urgency: int")


def triage(message):
    first = classify(message=message)
    return first.label


async def triage_async(message):
    result = await classify.acall(message=message)
    return result.urgency
""",
            calls=((8, "classify"), (13, "classify.acall")),
            prompt_contains=(
                "Given the fields `message`, produce the fields `label`, `urgency`.",
                "{urgency}        # note: the value you produce must be a single int value",
                "[[ ## message ## ]]\n",
            ),
        ),
        Expect(  # a chain of thought over a class signature: its docstring is the objective
            """
from dspy import ChainOfThought, InputField, OutputField, Signature


class ReviewDiff(Signature):
    \"\"\"You review a code diff for a Python service. Point out bugs first, then style.\"\"\"

    diff: str = InputField(desc="a unified diff")
    guidelines: str = InputField()
    review: str = OutputField(desc="numbered findings")


reviewer = ChainOfThought(ReviewDiff)


def review(diff, guidelines):
    return reviewer(diff=diff, guidelines=guidelines).review
""",
            calls=((17, "reviewer"),),
            prompt_contains=(
                "You review a code diff for a Python service. Point out bugs first, then style.",
                "Your output fields are:\n1. `reasoning` (str)\n2. `review` (str): numbered findings\n",
            ),
        ),
        Expect(  # ReAct (one call: its tool loop is not unrolled), ProgramOfThought, the LM itself
            """
import dspy


def search_tickets(query: str) -> list[str]:
    \"\"\"Search closed support tickets.\"\"\"
    return []


lm = dspy.LM("openai/gpt-4o-mini")
helper = dspy.ReAct("question -> answer", tools=[search_tickets], max_iters=5)
calc = dspy.ProgramOfThought("problem -> result: float")


def support(question):
    draft = helper(question=question)
    total = calc(problem=draft.answer)
    return lm(f"Rewrite politely: {total.result}")
""",
            calls=((16, "helper"), (17, "calc"), (18, "lm")),
            prompt_contains=("(1) search_tickets\n", "[[ ## generated_code ## ]]", "Rewrite politely: "),
        ),
    )
