"""The data that leaves the compiler: `CompileResult` and everything it holds.

These models cross process boundaries: the daemon stores `CompileResult.model_dump_json()` in its
database and the TUI renders it, so every field is plain JSON-serializable data (no AST nodes, no
callables). Bump `SCHEMA_VERSION` whenever a field changes meaning or disappears; adding an optional
field is a minor bump.

Schema 1.0 (all token figures are estimates unless `estimates.tokens_estimated` is false, and
dynamic segments always carry an *assumed* size, see `Segment.tokens_basis`):

- `calls`: one `CallSite` per LLM call site, ids `c1..cN` in source order.
- `edges`: data flow between calls, labelled by the variables that carry it.
- `order`: a topological order of the call ids.
- `patterns`: memoization patterns and anti-patterns found (`Finding`), each with its figures.
- `plan`: the cache plan (`CachePlan`): hit share per engine block size, warm-ups, schedule,
  engine settings with reasons, TRT-LLM retention configs.
- `fixes`: restructurings for the anti-patterns, as unified diffs with the expected gain.
- `estimates`: how tokens were counted and the totals.
- `diagnostics`: things the compiler could not follow (with line numbers), never fatal.

Schema 1.2 adds structured references (`Ref`) beside the expression strings a replay needs: a
dynamic segment's `name` and `.format(**x)` fills, a loop's iterable and target, a fan-out's `n=`.
The strings stay as they were (shown to users); `executor/binding.py` evaluates the trees and never
parses the strings. A reference is at most `MAX_REF_NODES` nodes and `MAX_REF_DEPTH` deep; a larger
expression (or a label the compiler cut short) has none, and a replay reports it missing by its string.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = "1.3"  # 1.1: BlockShare.steady_state_share(_after_fixes); 1.2: structured references (Ref);
# 1.3: MAP_REDUCE and GROWING_HISTORY, LoopContext.over_calls, carried edges, added_tokens_per_iteration,
# projects (CallSite.module, CompileResult.modules)
Engine = Literal["vllm", "trtllm", "sglang"]
ENGINES: tuple[Engine, ...] = ("vllm", "trtllm", "sglang")
MAX_SOURCE_BYTES = 8 * 1024 * 1024  # the largest agent file the compile/watch tools accept


class _Model(BaseModel):
    model_config = ConfigDict(frozen=False, extra="forbid")


class SourceKind(StrEnum):
    """Where a dynamic prompt segment comes from; decides whether a prefix cache can reuse it."""

    PARAMETER = "parameter"  # an input of the agent (function parameter, request field)
    CALL_OUTPUT = "call_output"  # the output of another (or the same, in a loop) LLM call
    LOOP_VARIABLE = "loop_variable"  # changes on every iteration of an enclosing loop
    VOLATILE = "volatile"  # differs on every request: clock, uuid, random
    LOCAL = "local"  # computed locally from something the compiler could not follow
    UNKNOWN = "unknown"


class CallStyle(StrEnum):
    OPENAI = "openai"
    LITELLM = "litellm"
    LANGCHAIN = "langchain"
    TRITON = "triton"
    HTTP = "http"
    ANTHROPIC = "anthropic"
    GOOGLE_GENAI = "google_genai"
    OPENAI_AGENTS = "openai_agents"
    LANGGRAPH = "langgraph"  # a prebuilt LangGraph agent's run (`create_react_agent(...).invoke`)
    DSPY = "dspy"
    LLAMA_INDEX = "llama_index"
    ADAPTER = "adapter"  # a user's own adapter (`compiler.adapters.base.Adapter`)
    NAMED_FUNCTION = "named_function"  # `llm_*`, `call_llm`, ... (user-configurable patterns)
    CALLABLE_PARAMETER = "callable_parameter"  # e.g. `call_generate(s, n=4)` received as a parameter


# --------------------------------------------------------------------------- structured references

MAX_REF_NODES = 64  # an expression a replay evaluates is a name, `self.doc`, `vars['k']`, `enumerate(xs)`
MAX_REF_DEPTH = 16


class _RefNode(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")  # frozen: one tree may be shared by segments


class RefName(_RefNode):
    kind: Literal["name"] = "name"
    name: str


class RefConstant(_RefNode):
    kind: Literal["constant"] = "constant"
    value: bool | int | float | str | None


class RefAttribute(_RefNode):
    kind: Literal["attribute"] = "attribute"
    value: Ref
    attr: str


class RefSubscript(_RefNode):
    kind: Literal["subscript"] = "subscript"
    value: Ref
    index: Ref


class RefCall(_RefNode):
    """`func(args)`; keyword arguments are not kept (no replayed builtin takes one)."""

    kind: Literal["call"] = "call"
    func: Ref
    args: list[Ref] = Field(default_factory=list)


class RefTuple(_RefNode):
    kind: Literal["tuple"] = "tuple"
    elts: list[Ref] = Field(default_factory=list)
    is_list: bool = Field(default=False, description="written `[a, b]` rather than `(a, b)`")


class RefBinOp(_RefNode):
    kind: Literal["binop"] = "binop"
    op: Literal["+", "-", "*"]
    left: Ref
    right: Ref


class RefOther(_RefNode):
    """An expression a replay cannot evaluate (a lambda, a slice, `x if c else y`), by its source."""

    kind: Literal["other"] = "other"
    text: str


Ref = Annotated[
    RefName | RefConstant | RefAttribute | RefSubscript | RefCall | RefTuple | RefBinOp | RefOther,
    Field(discriminator="kind"),
]
for _m in (RefAttribute, RefSubscript, RefCall, RefTuple, RefBinOp):
    _m.model_rebuild()


def ref_children(ref: Ref) -> tuple[Ref, ...]:
    if isinstance(ref, RefAttribute):
        return (ref.value,)
    if isinstance(ref, RefSubscript):
        return (ref.value, ref.index)
    if isinstance(ref, RefCall):
        return (ref.func, *ref.args)
    if isinstance(ref, RefTuple):
        return tuple(ref.elts)
    if isinstance(ref, RefBinOp):
        return (ref.left, ref.right)
    return ()


def ref_within_bounds(ref: Ref) -> bool:
    """At most MAX_REF_NODES nodes and MAX_REF_DEPTH levels (walked without recursion)."""
    stack: list[tuple[Ref, int]] = [(ref, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_REF_NODES or depth > MAX_REF_DEPTH:
            return False
        stack.extend((child, depth + 1) for child in ref_children(node))
    return True


def _bounded(value: Ref | list[Ref | None] | None) -> Ref | list[Ref | None] | None:
    """Field validator: refuse a reference over the bounds (a stored or received result is input too)."""
    refs: list[Ref | None] = value if isinstance(value, list) else [value]
    for ref in refs:
        if ref is not None and not ref_within_bounds(ref):
            raise ValueError(f"reference larger than {MAX_REF_NODES} nodes or deeper than {MAX_REF_DEPTH}")
    return value


_BINOP_PRECEDENCE = {"+": 1, "-": 1, "*": 2}


def ref_source(ref: Ref, in_index: bool = False) -> str:
    """The reference as Python source, as `ast.unparse` writes it (to name it in a message)."""
    if isinstance(ref, RefName):
        return ref.name
    if isinstance(ref, RefConstant):
        return repr(ref.value)
    if isinstance(ref, RefOther):
        return ref.text
    if isinstance(ref, RefAttribute):
        return f"{_operand(ref.value, 3)}.{ref.attr}"
    if isinstance(ref, RefSubscript):
        return f"{_operand(ref.value, 3)}[{ref_source(ref.index, in_index=True)}]"
    if isinstance(ref, RefCall):
        return f"{_operand(ref.func, 3)}({', '.join(ref_source(a) for a in ref.args)})"
    if isinstance(ref, RefTuple):
        inner = ", ".join(ref_source(e) for e in ref.elts)
        if ref.is_list:
            return f"[{inner}]"
        if len(ref.elts) == 1:
            inner += ","
        return inner if in_index and ref.elts else f"({inner})"
    precedence = _BINOP_PRECEDENCE[ref.op]
    return f"{_operand(ref.left, precedence)} {ref.op} {_operand(ref.right, precedence + 1)}"


def _operand(ref: Ref, precedence: int) -> str:
    """An operand in parentheses where the operator binds tighter than it (`(a + b).c`, `a - (b - c)`)."""
    text = ref_source(ref)
    if isinstance(ref, RefBinOp) and _BINOP_PRECEDENCE[ref.op] < precedence:
        return f"({text})"
    return text


class Segment(_Model):
    """One piece of a prompt, in the order the model sees it."""

    kind: Literal["static", "dynamic"]
    text: str = Field(description="static: the literal text (constants folded); dynamic: `{name}`")
    name: str | None = Field(default=None, description="dynamic: the expression it comes from")
    source: SourceKind | None = None
    key: str | None = Field(default=None, description="dynamic: equal keys carry the same run-time text")
    fills: list[str] = Field(
        default_factory=list, description="`.format(**x)` fills at unknown places inside"
    )
    origin_calls: list[str] = Field(default_factory=list, description="calls whose output flows in")
    role: str | None = Field(default=None, description="chat role of the message holding it")
    varies_in_loop: bool = Field(default=False, description="changes between iterations of a loop")
    tokens: int = 0
    tokens_basis: Literal["counted", "estimated", "assumed"] = "estimated"
    synthetic: bool = Field(default=False, description="chat-template overhead added by the compiler")
    ref: Ref | None = Field(default=None, description="dynamic: `name` as an expression tree (for replays)")
    fill_refs: list[Ref | None] = Field(
        default_factory=list, description="`fills` as expression trees, in order"
    )

    _bounded_refs = field_validator("ref", "fill_refs")(_bounded)


LoopKind = Literal["for", "while", "comprehension"]
BranchArm = Literal["if", "else", "case"]


class LoopContext(_Model):
    kind: LoopKind
    line: int
    target: str | None = None
    iterates: str = Field(default="", description="source of the iterable or the while test")
    over_call: str | None = Field(default=None, description="call whose outputs the loop iterates over")
    over_calls: list[str] = Field(
        default_factory=list,
        description="every call whose outputs the iterable carries (over_call is the first)",
    )
    request_loop: bool = Field(
        default=False, description="a driver loop over input records (main/__main__), one request each"
    )
    target_ref: Ref | None = Field(default=None, description="`target` as an expression tree")
    iterates_ref: Ref | None = Field(default=None, description="`iterates` as an expression tree")

    _bounded_refs = field_validator("target_ref", "iterates_ref")(_bounded)


class BranchContext(_Model):
    line: int
    test: str
    arm: BranchArm


class CallSite(_Model):
    id: str
    module: str = Field(
        default="", description="the project module the call site is in, when not the compiled file"
    )
    line: int
    col: int
    end_line: int
    end_col: int
    function: str = Field(description="qualified name of the enclosing function, `<module>` at top level")
    style: CallStyle
    api: str = Field(description="the LLM API reached, e.g. `self.client.chat.completions.create`")
    callee: str = Field(description="what the code calls at this site, e.g. `self.llm_extract_entities`")
    via: list[str] = Field(default_factory=list, description="inner call sites reached through wrappers")
    is_async: bool = False
    output_var: str | None = None
    loops: list[LoopContext] = Field(default_factory=list)
    branches: list[BranchContext] = Field(default_factory=list)
    fanout: int | str | None = Field(default=None, description="`n=` value (int when constant)")
    fanout_ref: Ref | None = Field(default=None, description="`fanout` as an expression tree when it is one")
    max_tokens: int | None = None
    segments: list[Segment] = Field(default_factory=list)
    prompt_tokens: int = 0
    static_prefix_tokens: int = Field(default=0, description="tokens before the first dynamic segment")
    loop_carried: list[str] = Field(
        default_factory=list, description="variables carrying this call's output into its next iteration"
    )
    grows_per_iteration: bool = Field(
        default=False, description="the prompt keeps its old content and appends (growing history)"
    )
    added_tokens_per_iteration: int = Field(
        default=0, description="tokens a growing prompt adds per iteration (second iteration's minus first's)"
    )

    _bounded_refs = field_validator("fanout_ref")(_bounded)


class Edge(_Model):
    source: str
    target: str
    variables: list[str]
    # data: the target reads the source's output; fanout: one output of several (`n=`, a loop over them);
    # carried: the source's output reaches a later iteration of the target (itself, or an earlier call
    # of the same loop). Carried edges are not in the DAG's order: they close a loop.
    kind: Literal["data", "fanout", "carried"] = "data"


class PatternKind(StrEnum):
    SHARED_PREFIX = "SHARED_PREFIX"
    SEQUENTIAL_CHAIN = "SEQUENTIAL_CHAIN"
    MAP_REDUCE = "MAP_REDUCE"
    GROWING_HISTORY = "GROWING_HISTORY"
    BRANCHING = "BRANCHING"
    LOOP_INVARIANT = "LOOP_INVARIANT"
    DELTA_MATCHING = "DELTA_MATCHING"
    DYNAMIC_PREFIX = "DYNAMIC_PREFIX"
    MISPLACED_SHARED_CONTEXT = "MISPLACED_SHARED_CONTEXT"


ANTI_PATTERNS = frozenset({PatternKind.DYNAMIC_PREFIX, PatternKind.MISPLACED_SHARED_CONTEXT})


class Finding(_Model):
    kind: PatternKind
    calls: list[str]
    message: str
    figures: dict[str, float | int | str | bool | list[str]] = Field(default_factory=dict)
    anti_pattern: bool = False
    line: int | None = None

    def number(self, key: str, default: float = 0.0) -> float:
        """A numeric figure; `default` when absent (figures also hold names and flags)."""
        value = self.figures.get(key, default)
        return float(value) if isinstance(value, int | float) else default


class BlockShare(_Model):
    """Best reachable prefix-cache hit share at one engine block size (full blocks only)."""

    engine: Engine
    block_size: int
    prompt_tokens: int
    cached_tokens: int
    hit_share: float
    hit_share_after_fixes: float | None = None
    steady_state_share: float | None = Field(
        default=None,
        description="the same on a second request, with the first one's blocks still cached "
        "(what repeated traffic sees: shared static prefixes hit across requests)",
    )
    steady_state_share_after_fixes: float | None = None


class Warmup(_Model):
    before_call: str
    reason: str
    prefix_segments: list[str] = Field(description="segment texts/names forming the prefix to warm")
    prefix_tokens: int
    request: dict[str, object] = Field(description="prefill-only request body to send")


class ScheduleStage(_Model):
    stage: int
    calls: list[str]
    concurrent: bool
    note: str


class EngineSetting(_Model):
    engine: Engine
    where: Literal["flag", "config.pbtxt", "engine_build"]
    name: str
    value: str
    reason: str
    applies: Literal["restart", "model_reload", "engine_rebuild"]


class RetentionConfig(_Model):
    """A TRT-LLM `TokenRangeRetentionConfig` for a shared prefix (per-request `retention_*` inputs)."""

    calls: list[str]
    token_start: int
    token_end: int
    priority: int = Field(ge=0, le=100)
    duration_ms: int | None
    reason: str


class CachePlan(_Model):
    engine: Engine
    block_shares: list[BlockShare] = Field(default_factory=list)
    warmups: list[Warmup] = Field(default_factory=list)
    schedule: list[ScheduleStage] = Field(default_factory=list)
    settings: list[EngineSetting] = Field(default_factory=list)
    retention: list[RetentionConfig] = Field(default_factory=list)
    assumptions: list[str] = Field(default_factory=list)


class Fix(_Model):
    pattern: PatternKind
    calls: list[str]
    description: str
    diff: str = Field(description="unified diff of the file; empty when the rewrite is not automatic")
    cacheable_share_before: float
    cacheable_share_after: float
    warning: str


class Estimates(_Model):
    tokens_estimated: bool
    tokenizer: str = Field(description="`estimate (chars/4)` or the target's tokenizer")
    prompt_tokens_total: int = 0
    static_tokens_total: int = 0
    dynamic_tokens_assumed: int = 0
    assumed_iterations: int = Field(default=10, description="iterations assumed for each loop")


class Diagnostic(_Model):
    level: Literal["info", "warning"]
    line: int
    col: int = 0
    message: str


class CompileResult(_Model):
    """What `charter-tui compile --format json` prints and the daemon stores: one compiled agent file."""

    schema_version: str = SCHEMA_VERSION
    path: str
    source_sha256: str
    calls: list[CallSite] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    order: list[str] = Field(default_factory=list)
    patterns: list[Finding] = Field(default_factory=list)
    plan: CachePlan
    fixes: list[Fix] = Field(default_factory=list)
    estimates: Estimates
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    modules: list[str] = Field(
        default_factory=list,
        description="the project modules this compile read (a save of one recompiles it)",
    )

    def pattern_kinds(self) -> set[str]:
        return {f.kind.value for f in self.patterns}

    def call(self, call_id: str) -> CallSite:
        for c in self.calls:
            if c.id == call_id:
                return c
        raise KeyError(call_id)
