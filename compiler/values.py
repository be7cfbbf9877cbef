"""Symbolic values the interpreter computes for Python expressions.

A prompt is never known at compile time, only its shape: which parts are literal text and which come
from somewhere else. `Text` is that shape, an ordered tuple of `Static` and `Dyn` parts. The other
value kinds exist so that prompts can be followed through the containers and objects agent code
builds them with (message lists, dicts, LangChain templates, client objects).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from compiler.model import SourceKind

Loc = tuple[int, int, int, int]  # line, col, end_line, end_col (ast conventions, 1-based lines)


@dataclass(frozen=True, slots=True)
class Static:
    text: str
    build: Loc | None = None  # the f-string / `+` expression that first placed this text


@dataclass(frozen=True, slots=True)
class Dyn:
    """A part of a prompt whose text is only known at run time."""

    name: str
    source: SourceKind
    origins: frozenset[int] = frozenset()  # occurrence ids of LLM calls whose output flows in
    key: str = ""  # identity: two parts with the same key carry the same text
    varies: frozenset[int] = frozenset()  # ids of the loops (by line) it changes in
    fills: tuple[str, ...] = ()  # `.format(**x)` substitutions made at unknown places inside it
    build: Loc | None = None

    @property
    def ident(self) -> str:
        return self.key or f"{self.source.value}:{self.name}"


Part = Static | Dyn


# A prompt shape longer than this is cut: `h = h + h` doubles a shape with every line, so thirty lines
# would otherwise build a billion parts. The cut-off tail becomes one run-time part that keeps the
# data flow (origins, loops) of what it replaces. No real prompt comes near either bound.
MAX_TEXT_PARTS = 2048
MAX_TEXT_CHARS = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Text:
    parts: tuple[Part, ...]
    # Data flow of the parts, worked out once: read for every value on every statement, it was the
    # hot spot of a compile once prompts grew to thousands of parts.
    origins: frozenset[int] = field(default=frozenset(), init=False, compare=False, repr=False)
    varies: frozenset[int] = field(default=frozenset(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # One part is either a literal of the source or made from a Text already checked here.
        parts = self.parts
        if len(parts) > 1 and (
            len(parts) > MAX_TEXT_PARTS
            or sum(len(p.text) for p in parts if type(p) is Static) > MAX_TEXT_CHARS
        ):
            parts = _cut(parts)
            object.__setattr__(self, "parts", parts)
        dyn = [p for p in parts if type(p) is Dyn]
        if dyn:
            object.__setattr__(self, "origins", frozenset().union(*(p.origins for p in dyn)))
            object.__setattr__(self, "varies", frozenset().union(*(p.varies for p in dyn)))


def _cut(parts: tuple[Part, ...]) -> tuple[Part, ...]:
    keep: list[Part] = []
    chars = 0
    for p in parts[: MAX_TEXT_PARTS - 1]:
        if type(p) is Static:
            chars += len(p.text)
            if chars > MAX_TEXT_CHARS:
                break
        keep.append(p)
    rest = parts[len(keep) :]
    origins: frozenset[int] = frozenset().union(*(p.origins for p in rest if type(p) is Dyn))
    varies: frozenset[int] = frozenset().union(*(p.varies for p in rest if type(p) is Dyn))
    return (*keep, Dyn("truncated", SourceKind.LOCAL, origins, "truncated", varies))


@dataclass(frozen=True, slots=True)
class Opaque:
    """Something not text-like (an object, a number, a call result) that may still carry data."""

    name: str
    source: SourceKind
    origins: frozenset[int] = frozenset()
    key: str = ""
    varies: frozenset[int] = frozenset()
    payload: tuple[Text, ...] = ()  # texts stored into it, e.g. `InferInput.set_data_from_numpy`
    fanout: int | str | None = None  # set on the result of a call made with `n=`


# Containers that hold themselves (`msgs.append(msgs)`, `r := msgs` then both appended) share
# structure, but everything that reads them (origins, equality, hashing) walks them as trees, which
# doubles with each such line. A container whose tree would be larger than this keeps its leaves and
# summarises its nested containers as opaque values that keep their data flow (origins, loops).
MAX_VALUE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Value, ...]
    elem: Value | None = None  # for comprehensions: the value of any one element
    elem_loops: frozenset[int] = frozenset()  # the comprehension loops its elements vary in
    size: int = field(default=1, init=False, compare=False, repr=False)  # nodes in it as a tree
    origins: frozenset[int] = field(default=frozenset(), init=False, compare=False, repr=False)
    varies: frozenset[int] = field(default=frozenset(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        size = 1 + sum(_size(v) for v in self.items) + _size(self.elem)
        if size > MAX_VALUE_SIZE:
            object.__setattr__(self, "items", tuple(_summary(v) for v in self.items))
            object.__setattr__(self, "elem", _summary(self.elem))
            if len(self.items) >= MAX_VALUE_SIZE:  # `xs = xs + xs` doubles even a flat list
                object.__setattr__(
                    self,
                    "items",
                    (*self.items[: MAX_VALUE_SIZE - 1], _rest(self.items[MAX_VALUE_SIZE - 1 :])),
                )
            size = 1 + len(self.items) + _size(self.elem)
        object.__setattr__(self, "size", size)
        values = (*self.items, self.elem)
        object.__setattr__(self, "origins", frozenset().union(*(origins_of(v) for v in values)))
        object.__setattr__(self, "varies", frozenset().union(*(varies_of(v) for v in values)))


@dataclass(frozen=True, slots=True)
class Mapping:
    items: tuple[tuple[str, Value], ...]
    size: int = field(default=1, init=False, compare=False, repr=False)
    origins: frozenset[int] = field(default=frozenset(), init=False, compare=False, repr=False)
    varies: frozenset[int] = field(default=frozenset(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        size = 1 + sum(_size(v) for _, v in self.items)
        if size > MAX_VALUE_SIZE:
            object.__setattr__(self, "items", tuple((k, _summary(v)) for k, v in self.items))
            if len(self.items) >= MAX_VALUE_SIZE:  # `d = {**d, **d}` doubles the pairs
                rest = _rest(tuple(v for _, v in self.items[MAX_VALUE_SIZE - 1 :]))
                object.__setattr__(self, "items", (*self.items[: MAX_VALUE_SIZE - 1], ("...", rest)))
            size = 1 + len(self.items)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "origins", frozenset().union(*(origins_of(v) for _, v in self.items)))
        object.__setattr__(self, "varies", frozenset().union(*(varies_of(v) for _, v in self.items)))

    def get(self, key: str) -> Value | None:
        for k, v in self.items:
            if k == key:
                return v
        return None


@dataclass(frozen=True, slots=True)
class Client:
    """An LLM client object: OpenAI/AsyncOpenAI, a LangChain chat model, tritonclient, httpx/requests."""

    kind: str  # "openai", "langchain", "triton", "http", "litellm"
    name: str = ""


@dataclass(frozen=True, slots=True)
class Template:
    """A LangChain prompt template: messages of text with `{field}` holes, optionally piped into a model."""

    messages: tuple[tuple[str, Text], ...]
    has_model: bool = False


@dataclass(frozen=True, slots=True)
class FuncRef:
    qualname: str
    bound_self: str | None = None  # class name when bound to an instance


@dataclass(frozen=True, slots=True)
class Instance:
    cls: str


@dataclass(frozen=True, slots=True)
class ModuleRef:
    qualname: str  # e.g. "openai", "datetime.datetime"


@dataclass(frozen=True, slots=True)
class Const:
    value: object


Value = Text | Opaque | Seq | Mapping | Client | Template | FuncRef | Instance | ModuleRef | Const


@dataclass(slots=True)
class Occurrence:
    """One time the interpreter reached an LLM call (a call site inside a loop is reached twice)."""

    id: int
    key: Loc  # the call site node it belongs to (re-keyed to a wrapper's call site)
    site: Loc  # where the LLM call really is
    module: str  # the project module `key` is in ('' = the compiled file)
    function: str
    style: str
    api: str
    callee: str  # what the code calls at `key` (the wrapper's name when re-keyed)
    is_async: bool
    prompt: Text
    loops: tuple[object, ...]  # LoopFrame
    branches: tuple[object, ...]  # BranchFrame
    fanout: int | str | None = None
    max_tokens: int | None = None
    output_var: str | None = None
    via: list[Loc] = field(default_factory=list)
    iteration: int = 0  # 0 on the first pass over an enclosing loop, 1 on the second


def text_of(value: Value, name: str = "value") -> Text:
    """The value as it would appear inside an f-string."""
    if isinstance(value, Text):
        return value
    if isinstance(value, Const):
        return Text((Static(str(value.value)),))
    if isinstance(value, Opaque):
        if value.payload and len(value.payload) == 1:
            return value.payload[0]
        return Text((Dyn(value.name or name, value.source, value.origins, value.key, value.varies),))
    if isinstance(value, Seq):
        # str(list) is rare in prompts; keep the data flow, drop the structure.
        parts: list[Part] = []
        for item in value.items:
            parts.extend(text_of(item).parts)
        if value.elem is not None:
            parts.extend(text_of(value.elem).parts)
        return Text(tuple(parts)) if parts else Text((Dyn(name, SourceKind.LOCAL),))
    if isinstance(value, Mapping):
        parts = []
        for _, v in value.items:
            parts.extend(text_of(v).parts)
        return Text(tuple(parts))
    return Text((Dyn(name, SourceKind.UNKNOWN),))


def texts_in(value: Value) -> Text:
    """All the text a value holds (a list's items, an object's payload), as one shape; empty if none."""
    if isinstance(value, Text):
        return value
    if isinstance(value, Seq):
        parts: list[Part] = []
        for item in value.items:
            parts.extend(texts_in(item).parts)
        if value.elem is not None:
            parts.extend(texts_in(value.elem).parts)
        return Text(tuple(parts))
    if isinstance(value, Opaque) and value.payload:
        return Text(tuple(p for t in value.payload for p in t.parts))
    return Text(())


def origins_of(value: Value | None) -> frozenset[int]:
    if value is None:
        return frozenset()
    if isinstance(value, Text | Seq | Mapping):
        return value.origins  # worked out when it was made
    if isinstance(value, Opaque):
        out = value.origins
        for t in value.payload:
            out |= t.origins
        return out
    if isinstance(value, Template):
        out = frozenset()
        for _, t in value.messages:
            out |= t.origins
        return out
    return frozenset()


def varies_of(value: Value | None) -> frozenset[int]:
    if isinstance(value, Text | Seq | Mapping):
        return value.varies
    if isinstance(value, Opaque):
        return value.varies
    return frozenset()


def _size(value: object) -> int:
    if value is None:
        return 0
    return value.size if isinstance(value, Seq | Mapping) else 1


def _rest(values: tuple[Value, ...]) -> Value:
    return Opaque(
        "truncated",
        SourceKind.LOCAL,
        frozenset().union(*(origins_of(v) for v in values)),
        "truncated",
        frozenset().union(*(varies_of(v) for v in values)),
    )


def _summary(value: Value | None) -> Value | None:
    if isinstance(value, Seq | Mapping) and value.size > 1:
        return Opaque("nested", SourceKind.LOCAL, origins_of(value), "nested", varies_of(value))
    return value


def concat(a: Text, b: Text) -> Text:
    return Text(a.parts + b.parts)


def tag_build(text: Text, loc: Loc | None) -> Text:
    """Mark parts not yet placed by a string-building expression as placed by `loc` (for codemods).
    None: the expression is in another file of the project, which the codemods do not rewrite."""
    if loc is None:
        return text
    parts = tuple(p if p.build is not None else replace(p, build=loc) for p in text.parts)
    return Text(parts)


def simplify(text: Text) -> Text:
    """Merge adjacent static parts built by the same expression and drop empty ones."""
    out: list[Part] = []
    for p in text.parts:
        if isinstance(p, Static):
            if not p.text:
                continue
            if out and isinstance(out[-1], Static) and out[-1].build == p.build:
                out[-1] = Static(out[-1].text + p.text, p.build)
                continue
        out.append(p)
    return Text(tuple(out))


def merge_values(a: Value | None, b: Value | None, name: str) -> Value | None:
    """The value of a variable after two branches assigned it `a` and `b`."""
    if a is None:
        return b
    if b is None or a == b:
        return a
    # `x or ""`, `x if ok else "n/a"`: the literal alternative carries no data; keep the one that does.
    if isinstance(a, Opaque) and _inert(b):
        return a
    if isinstance(b, Opaque) and _inert(a):
        return b
    if isinstance(a, Text) and isinstance(b, Text):
        common: list[Part] = []
        for pa, pb in zip(a.parts, b.parts):
            if pa == pb:
                common.append(pa)
            elif (
                isinstance(pa, Dyn) and isinstance(pb, Dyn) and pa.ident == pb.ident and pa.fills == pb.fills
            ):
                # The same value reached twice (e.g. two loop iterations): one part, both histories.
                common.append(replace(pa, origins=pa.origins | pb.origins, varies=pa.varies | pb.varies))
            else:
                break
        if len(common) == len(a.parts) == len(b.parts):
            return Text(tuple(common))
        rest_origins = origins_of(Text(a.parts[len(common) :])) | origins_of(Text(b.parts[len(common) :]))
        rest_varies = varies_of(Text(a.parts[len(common) :])) | varies_of(Text(b.parts[len(common) :]))
        tail = Dyn(name, SourceKind.LOCAL, rest_origins, f"branch:{name}", rest_varies)
        return Text(tuple(common) + (tail,))
    if isinstance(a, Seq) and isinstance(b, Seq):
        return a if len(a.items) >= len(b.items) else b
    if type(a) is type(b) and isinstance(a, Client | Instance | Template | FuncRef | ModuleRef):
        return a
    return Opaque(
        name, SourceKind.LOCAL, origins_of(a) | origins_of(b), f"branch:{name}", varies_of(a) | varies_of(b)
    )


def _inert(v: Value) -> bool:
    if isinstance(v, Const):
        return True
    return (
        isinstance(v, Text)
        and all(isinstance(p, Static) for p in v.parts)
        and sum(len(p.text) for p in v.parts if isinstance(p, Static)) < 16
    )
