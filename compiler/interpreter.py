"""Data flow: an abstract interpreter over the module's `ast` that records every LLM call it reaches.

Why `ast` and not libcst here: the compiler must stay within 2x of a bare libcst parse, and libcst's
position metadata alone costs ~1.8x a parse, while CPython's `ast` gives exact positions for free and
parses ~10x faster. libcst is used where its lossless tree matters: the codemods (`codemods.py`).

The interpreter runs the module symbolically, once:
- module and class constants are folded to their literal text;
- top-level code and `main()` run as the *driver*: their loops iterate over requests, not inside one;
- a call to a function or method of this module is inlined with the caller's argument values, so
  prompts are followed across functions (`s += ...` through four functions, SGLang style);
- a function that nothing in the module calls is analysed on its own with symbolic parameters;
- loop bodies run twice, so what the second iteration sees (a growing history, the previous call's
  output) is visible; loops over constant lists are unrolled when they make no LLM call;
- branches run both arms and merge what they assigned.

A wrapper that makes exactly one LLM call (`def llm_extract(self, prompt): return client...create()`)
is reported at the wrapper's call site, so three stages through one helper stay three calls.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeGuard

from compiler.callsites import CLIENT_CONSTRUCTORS, DEFAULT_NAME_PATTERNS, CallMatch, classify, match_name
from compiler.model import BranchArm, CallStyle, Diagnostic, LoopKind, SourceKind
from compiler.templates import (
    dedent_text,
    format_text,
    join_text,
    map_static,
    message_text,
    messages_text,
    percent_text,
    strip_text,
    template_text,
)
from compiler.values import (
    Client,
    Const,
    Dyn,
    FuncRef,
    Instance,
    Loc,
    Mapping,
    ModuleRef,
    Occurrence,
    Opaque,
    Part,
    Seq,
    Static,
    Template,
    Text,
    Value,
    MAX_TEXT_CHARS,
    concat,
    merge_values,
    origins_of,
    tag_build,
    text_of,
    varies_of,
)

VOLATILE_FUNCTIONS = frozenset(
    {
        "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today", "datetime.date.today",
        "time.time", "time.time_ns", "time.monotonic", "time.perf_counter", "time.strftime", "time.ctime",
        "time.localtime", "time.gmtime", "uuid.uuid1", "uuid.uuid4", "random.random", "random.randint",
        "random.choice", "random.uniform", "random.sample", "random.getrandbits", "secrets.token_hex",
        "secrets.token_urlsafe", "os.urandom", "os.getpid",
    }
)
DRIVER_FUNCTIONS = frozenset({"main", "_main", "cli", "run_cli"})
MAX_INLINE_DEPTH = 16
BASE_STATEMENTS = 50_000  # interpretation budget, plus STATEMENTS_PER_LINE per source line
STATEMENTS_PER_LINE = 20
MAX_PLAIN_INLINES = 4  # a function that cannot reach an LLM call is followed this often, then summarised
MAX_UNROLL = 32
# Loops at most this deep all run their body twice. A deeper loop runs twice only while no enclosing
# loop is in its second pass, else once: running every level twice costs 2^depth (a 20-deep nest
# ran the innermost body a million times), this costs at most 2^FULL_NEST * (depth + 1).
FULL_NEST = 4
# Nested loops over constant lists unroll into the product of their lengths (32^3 for three): unroll
# only while that product stays at most this, then interpret the loop like any other.
MAX_UNROLL_PRODUCT = 1024
# A statement is charged 1 + (its own expression nodes) // NODES_PER_CHARGE against the budget, so a
# budget of statements also bounds the work when each statement is a 5,000-term expression.
NODES_PER_CHARGE = 16
_BODY_FIELDS = frozenset({"body", "orelse", "finalbody", "handlers", "cases"})
_STR_CASE = {"lower": str.lower, "upper": str.upper, "title": str.title, "capitalize": str.capitalize}
_LIST_MUTATORS = frozenset({"append", "extend", "insert"})


def loc_of(node: ast.AST) -> Loc:
    return (
        getattr(node, "lineno", 0),
        getattr(node, "col_offset", 0),
        getattr(node, "end_lineno", 0) or 0,
        getattr(node, "end_col_offset", 0) or 0,
    )


def dotted_name(node: ast.AST) -> str:
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            break
        elif isinstance(node, ast.Call):
            parts.append("()")
            node = node.func
        elif isinstance(node, ast.Subscript):
            parts.append("[]")
            node = node.value
        else:
            parts.append("?")
            break
    return ".".join(reversed(parts))


def short_source(node: ast.AST, limit: int = 80) -> str:
    try:
        text = ast.unparse(node)
    except (ValueError, TypeError, AttributeError, RecursionError):  # a label is not worth a crash
        text = type(node).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(slots=True)
class LoopFrame:
    id: int
    kind: LoopKind
    line: int
    target: str | None
    node: ast.AST
    over: frozenset[int]
    request_loop: bool


@dataclass(slots=True)
class BranchFrame:
    line: int
    node: ast.AST
    arm: BranchArm


@dataclass(slots=True)
class Frame:
    func: str
    cls: str | None
    env: dict[str, Value]
    driver: bool
    returns: list[Value] = field(default_factory=list)


@dataclass(slots=True)
class FunctionInfo:
    qualname: str
    node: ast.FunctionDef | ast.AsyncFunctionDef
    cls: str | None


class Interpreter:
    def __init__(self, tree: ast.Module, patterns: tuple[str, ...] = DEFAULT_NAME_PATTERNS,
                 source: str = "") -> None:
        self.tree = tree
        self.source = source
        self.patterns = patterns
        self.imports: dict[str, str] = {}
        self.functions: dict[str, FunctionInfo] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self.class_bases: dict[str, list[str]] = {}
        self.class_attrs: dict[str, dict[str, Value]] = {}
        self.initialised: set[str] = set()
        self.module_env: dict[str, Value] = {}
        self.occurrences: list[Occurrence] = []
        self.diagnostics: list[Diagnostic] = []
        self.analysed: set[str] = set()
        self.stack: list[str] = []
        self.loops: list[LoopFrame] = []
        self.branches: list[BranchFrame] = []
        self.iteration = 0
        self.second_passes = 0  # enclosing loops now in their second iteration
        self.unrolled = 1  # product of the lengths of the constant loops being unrolled now
        self._charges: dict[int, int] = {}  # id(statement) -> what running it costs of the budget
        self._loop_reps: dict[tuple[object, ...], Value | None] = {}  # (loop's list items, name) -> merged element
        self.budget = BASE_STATEMENTS + STATEMENTS_PER_LINE * source.count("\n")
        self.relevant: set[str] = set()  # functions that may (transitively) make an LLM call
        self._plain_inlines: dict[str, int] = {}
        self._memo: dict[tuple[object, ...], Value] = {}
        self.referenced: set[str] = set()
        self._warned: set[tuple[int, str]] = set()

    # ----------------------------------------------------------------------------- entry points

    def run(self) -> list[Occurrence]:
        self._collect(self.tree.body, prefix="", cls=None)
        # A function is an entry point when nothing calls it. Calls are found by a regex over the text
        # (`name(` minus its own `def name(`), at C speed instead of walking every node. A function only
        # passed around as a value (`map(f, xs)`) is never inlined, so analysing it as an entry is right.
        counts: dict[str, int] = {}
        for ident in _CALLED.findall(self.source):
            counts[ident] = counts.get(ident, 0) + 1
        for ident in _DEFINED.findall(self.source):
            counts[ident] = counts.get(ident, 0) - 1
        self.referenced = {name for name, n in counts.items() if n > 0}
        self._find_relevant()
        module = Frame("<module>", None, self.module_env, driver=True)
        self._exec_block(self.tree.body, module)
        # Functions nothing in the module calls are entry points of a library-style agent.
        for qualname, info in list(self.functions.items()):
            if qualname in self.analysed or self.budget <= 0:
                continue
            short = qualname.rsplit(".", 1)[-1]
            if short in self.referenced or (short.startswith("__") and short.endswith("__")):
                continue
            self._analyse_root(info)
        for qualname, info in list(self.functions.items()):
            if qualname not in self.analysed and self.budget > 0 and not qualname.endswith("__init__"):
                self._analyse_root(info)
        if self.budget <= 0:
            self._diag("warning", 1, "module too large to follow completely; some paths were not analysed")
        return self.occurrences

    def _find_relevant(self) -> None:
        """Functions whose text hints at an LLM call, and the functions that call them (fixpoint).

        Only these are followed every time they are called; others (parsers, helpers) are followed a few
        times for the text they return and then summarised, which keeps big non-agent modules linear.
        """
        lines = self.source.split("\n")  # as `ast` counts lines (\r\n leaves a harmless \r)
        called: dict[str, set[str]] = {}
        for qual, info in self.functions.items():
            text = "\n".join(lines[info.node.lineno - 1: info.node.end_lineno or info.node.lineno])
            names = set(_CALLED.findall(text))
            called[qual] = names
            if _LLM_HINT.search(text) or any(match_name(n, self.patterns) for n in names):
                self.relevant.add(qual)
        changed = True
        while changed:
            changed = False
            short = {q.rsplit(".", 1)[-1] for q in self.relevant}
            for qual, names in called.items():
                if qual not in self.relevant and names & short:
                    self.relevant.add(qual)
                    changed = True

    def static_names(self) -> dict[str, str]:
        """Module and class constants whose value is fully literal text (codemods need them)."""
        out: dict[str, str] = {}
        envs = [("", self.module_env)] + [(f"{c}.", a) for c, a in self.class_attrs.items()]
        for prefix, env in envs:
            for name, value in env.items():
                if isinstance(value, Text) and value.parts and all(isinstance(p, Static) for p in value.parts):
                    out[prefix + name] = "".join(p.text for p in value.parts if isinstance(p, Static))
        return out

    def _analyse_root(self, info: FunctionInfo) -> None:
        env: dict[str, Value] = {}
        args = info.node.args
        params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        for i, a in enumerate(params):
            if i == 0 and info.cls is not None and a.arg in ("self", "cls"):
                self._ensure_init(info.cls)
                env[a.arg] = Instance(info.cls)
                continue
            env[a.arg] = Opaque(a.arg, SourceKind.PARAMETER, key=f"param:{info.qualname}:{a.arg}")
        for star in (args.vararg, args.kwarg):
            if star is not None:
                env[star.arg] = Opaque(star.arg, SourceKind.PARAMETER, key=f"param:{info.qualname}:{star.arg}")
        frame = Frame(info.qualname, info.cls, env, driver=info.qualname in DRIVER_FUNCTIONS)
        self.analysed.add(info.qualname)
        self.stack.append(info.qualname)
        saved = (self.loops, self.branches, self.iteration, self.second_passes, self.unrolled)
        self.loops, self.branches, self.iteration, self.second_passes, self.unrolled = [], [], 0, 0, 1
        try:
            self._exec_block(info.node.body, frame)
        finally:
            self.stack.pop()
            self.loops, self.branches, self.iteration, self.second_passes, self.unrolled = saved

    # ----------------------------------------------------------------------------- collection

    def _collect(self, body: list[ast.stmt], prefix: str, cls: str | None) -> None:
        for st in body:
            if isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef):
                qual = f"{prefix}{st.name}"
                self.functions[qual] = FunctionInfo(qual, st, cls)
                self._collect(st.body, prefix=f"{qual}.", cls=None)
            elif isinstance(st, ast.ClassDef):
                qual = f"{prefix}{st.name}"
                self.classes[qual] = st
                self.class_bases[qual] = [dotted_name(b) for b in st.bases]
                self.class_attrs.setdefault(qual, {})
                self._collect(st.body, prefix=f"{qual}.", cls=qual)
            elif isinstance(st, ast.Import | ast.ImportFrom):
                self._import(st)
            else:
                for child in ast.iter_child_nodes(st):
                    if isinstance(child, ast.stmt):
                        self._collect([child], prefix, cls)


    def _import(self, st: ast.Import | ast.ImportFrom) -> None:
        if isinstance(st, ast.Import):
            for alias in st.names:
                if alias.asname:
                    self.imports[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    self.imports[root] = root
        else:
            mod = st.module or ""
            for alias in st.names:
                self.imports[alias.asname or alias.name] = f"{mod}.{alias.name}" if mod else alias.name

    # ----------------------------------------------------------------------------- statements

    def _exec_block(self, body: list[ast.stmt], fr: Frame) -> None:
        pushed = 0
        try:
            for st in body:
                if self.budget <= 0:
                    return
                self.budget -= self._charge(st)
                try:
                    self._exec(st, fr)
                except RecursionError:
                    self._diag("warning", st.lineno, "statement too deeply nested to follow; skipped")
                # After `if a: return ...` (and `elif b: return ...`) the rest runs only in the else arms.
                while (isinstance(st, ast.If) and _terminates(st.body) and not fr.driver
                       and not _is_main_guard(st.test)):
                    self.branches.append(BranchFrame(st.lineno, st.test, "else"))
                    pushed += 1
                    if len(st.orelse) == 1 and isinstance(st.orelse[0], ast.If):
                        st = st.orelse[0]
                    else:
                        break
        finally:
            for _ in range(pushed):
                self.branches.pop()

    def _exec(self, st: ast.stmt, fr: Frame) -> None:
        if isinstance(st, ast.Assign):
            value = self._eval(st.value, fr)
            for target in st.targets:
                self._bind(target, value, fr)
        elif isinstance(st, ast.AnnAssign):
            if st.value is not None:
                self._bind(st.target, self._eval(st.value, fr), fr)
        elif isinstance(st, ast.AugAssign):
            current = self._eval(st.target, fr)
            value = self._eval(st.value, fr)
            if isinstance(st.op, ast.Add):
                new = self._add([current, value], loc_of(st), st.target)
            else:
                new = Opaque(self._name(st.target), SourceKind.LOCAL, origins_of(current) | origins_of(value),
                             f"local:{self._name(st.target)}", varies_of(current) | varies_of(value))
            self._bind(st.target, new, fr, rename=False)
        elif isinstance(st, ast.Expr):
            self._eval(st.value, fr)
        elif isinstance(st, ast.Return):
            fr.returns.append(self._eval(st.value, fr) if st.value is not None else Const(None))
        elif isinstance(st, ast.If):
            self._eval(st.test, fr)
            self._branches(fr, [(st.body, "if", st.test), (st.orelse, "else", st.test)], st.lineno)
        elif isinstance(st, ast.For | ast.AsyncFor):
            self._for(st, fr)
        elif isinstance(st, ast.While):
            self._loop(st, "while", None, st.test, Opaque("while", SourceKind.LOCAL), fr, st.body)
            self._exec_block(st.orelse, fr)
        elif isinstance(st, ast.With | ast.AsyncWith):
            for item in st.items:
                value = self._eval(item.context_expr, fr)
                if item.optional_vars is not None:
                    self._bind(item.optional_vars, value, fr)
            self._exec_block(st.body, fr)
        elif isinstance(st, ast.Try | ast.TryStar):
            self._exec_block(st.body, fr)
            for handler in st.handlers:
                if handler.name:
                    fr.env[handler.name] = Opaque(handler.name, SourceKind.LOCAL)
                self._exec_block(handler.body, fr)
            self._exec_block(st.orelse, fr)
            self._exec_block(st.finalbody, fr)
        elif isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef):
            if fr.func == "<module>" or fr.func == "<class>":
                return
            qual = f"{fr.func}.{st.name}"
            if qual in self.functions:
                fr.env[st.name] = FuncRef(qual)
        elif isinstance(st, ast.ClassDef):
            if fr.func == "<module>":
                cls_frame = Frame("<class>", st.name, self.class_attrs.setdefault(st.name, {}), driver=False)
                self._exec_block(st.body, cls_frame)
        elif isinstance(st, ast.Match):
            self._eval(st.subject, fr)
            self._branches(fr, [(case.body, "case", case.pattern) for case in st.cases], st.lineno)
        elif isinstance(st, ast.Import | ast.ImportFrom):
            self._import(st)

    def _branches(self, fr: Frame, arms: list[tuple[list[ast.stmt], BranchArm, ast.AST]], line: int) -> None:
        before = dict(fr.env)
        results: list[dict[str, Value]] = []
        main_guard = _is_main_guard(arms[0][2]) if arms else False
        for body, arm, test in arms:
            _set_env(fr, dict(before))
            if body and (main_guard or fr.driver):
                # `if __name__ == "__main__":` and the argument checks of main() decide whether a request
                # runs at all, not which calls it makes: not branches of the agent.
                self._exec_block(body, fr)
            elif body:
                self.branches.append(BranchFrame(line, test, arm))
                try:
                    self._exec_block(body, fr)
                finally:
                    self.branches.pop()
            results.append(dict(fr.env))
        if len(results) == 1 or (arms and arms[-1][1] == "case"):
            results.append(before)
        merged: dict[str, Value] = {}
        for env in results:
            for k in env:
                if k in merged:
                    continue
                value: Value | None = None
                for other in results:
                    value = merge_values(value, other.get(k), k)
                if value is not None:
                    merged[k] = value
        _set_env(fr, merged)

    def _for(self, st: ast.For | ast.AsyncFor, fr: Frame) -> None:
        it = self._eval(st.iter, fr)
        if self._constant_seq(it) and st.orelse == [] and self.unrolled * len(it.items) <= MAX_UNROLL_PRODUCT:
            snapshot = (dict(fr.env), len(self.occurrences))
            saved_unrolled = self.unrolled
            self.unrolled *= len(it.items)
            try:
                for item in it.items:
                    self._bind(st.target, item, fr, rename=False)
                    self._exec_block(st.body, fr)
            finally:
                self.unrolled = saved_unrolled
            if len(self.occurrences) == snapshot[1]:
                return  # fully unrolled at compile time: e.g. few-shot examples folded into the prompt
            _set_env(fr, snapshot[0])
            del self.occurrences[snapshot[1]:]
        self._loop(st, "for", st.target, st.iter, it, fr, st.body)
        self._exec_block(st.orelse, fr)

    def _charge(self, st: ast.stmt) -> int:
        """Budget cost of running `st` once, by the size of its own expressions (bodies are charged as they run)."""
        charge = self._charges.get(id(st))
        if charge is None:
            nodes = 0
            for name, value in ast.iter_fields(st):
                if name in _BODY_FIELDS:
                    continue
                for node in value if isinstance(value, list) else (value,):
                    if isinstance(node, ast.AST):
                        nodes += sum(1 for _ in ast.walk(node))  # iterative: deep expressions are fine
            charge = self._charges[id(st)] = 1 + nodes // NODES_PER_CHARGE
        return charge

    def _constant_seq(self, value: Value) -> TypeGuard[Seq]:
        if not isinstance(value, Seq) or value.elem is not None or not 0 < len(value.items) <= MAX_UNROLL:
            return False
        return all(not origins_of(v) and not varies_of(v) and not self._has_dyn(v) for v in value.items)

    def _has_dyn(self, value: Value) -> bool:
        if isinstance(value, Text):
            return any(isinstance(p, Dyn) for p in value.parts)
        if isinstance(value, Seq):
            return any(self._has_dyn(v) for v in value.items)
        if isinstance(value, Mapping):
            return any(self._has_dyn(v) for _, v in value.items)
        return isinstance(value, Opaque)

    def _loop(self, st: ast.stmt, kind: LoopKind, target: ast.AST | None, it_node: ast.AST, it: Value,
              fr: Frame, body: list[ast.stmt]) -> None:
        loop_id = st.lineno * 10_000 + st.col_offset
        frame = LoopFrame(loop_id, kind, st.lineno, short_source(target) if target is not None else None,
                          it_node, origins_of(it), request_loop=fr.driver)
        self.loops.append(frame)
        saved_iter, saved_second = self.iteration, self.second_passes
        passes = (0, 1) if len(self.loops) <= FULL_NEST or not self.second_passes else (0,)
        try:
            for iteration in passes:
                self.iteration = iteration
                self.second_passes = saved_second + iteration
                if target is not None:
                    self._bind(target, self._loop_value(it, target, loop_id, fr.driver), fr)
                self._exec_block(body, fr)
        finally:
            self.loops.pop()
            self.iteration, self.second_passes = saved_iter, saved_second

    def _loop_value(self, it: Value, target: ast.AST, loop_id: int, request: bool = False) -> Value:
        """The value a loop variable takes: what all elements have in common, the rest varying."""
        name = short_source(target)
        if request:
            # A driver loop over input records: each record is one request's input, not a loop inside it.
            return Opaque(name, SourceKind.PARAMETER, origins_of(it), f"input:{name}", varies_of(it))
        rep: Value | None = it.elem if isinstance(it, Seq) else None
        per_element = it.elem_loops if isinstance(it, Seq) else frozenset()
        if isinstance(it, Seq) and rep is None and it.items and all(isinstance(v, Text) for v in it.items):
            # Merged once per list and name: a loop nested in others is entered again and again.
            rep = self._loop_reps.get((it.items, name))
            if rep is None:
                rep = it.items[0]
                for other in it.items[1:]:
                    rep = merge_values(rep, other, name)
                self._loop_reps[(it.items, name)] = rep
            per_element = frozenset({-1})  # what differs between the elements merged into `branch:` parts
        if isinstance(rep, Text):
            return Text(tuple(
                replace(p, varies=p.varies | {loop_id})
                if isinstance(p, Dyn) and ((-1 in per_element and p.ident.startswith("branch:"))
                                           or p.varies & per_element) else p
                for p in rep.parts))
        if isinstance(rep, Mapping | Seq):
            return rep
        source = SourceKind.LOOP_VARIABLE
        return Opaque(name, source, origins_of(it), f"loop:{loop_id}:{name}", varies_of(it) | {loop_id})

    def _bind(self, target: ast.AST, value: Value, fr: Frame, rename: bool = True) -> None:
        if isinstance(target, ast.Name):
            if rename:
                value = self._renamed(value, target.id)
                key = value.key if isinstance(value, Opaque) else ""
                if key.startswith("call:"):
                    occ = self.occurrences[int(key[5:])]
                    if occ.output_var is None:
                        occ.output_var = target.id
            fr.env[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            for i, elt in enumerate(target.elts):
                if isinstance(value, Seq) and value.elem is None and i < len(value.items):
                    self._bind(elt, value.items[i], fr)
                elif isinstance(elt, ast.Starred):
                    self._bind(elt.value, value, fr)
                else:
                    name = self._name(elt)
                    src = value.source if isinstance(value, Opaque) else SourceKind.LOCAL
                    key = f"{value.key}[{i}]" if isinstance(value, Opaque) else f"local:{name}"
                    self._bind(elt, Opaque(name, src, origins_of(value), key, varies_of(value)), fr)
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            base = fr.env.get(target.value.id)
            if isinstance(base, Instance):
                self.class_attrs.setdefault(base.cls, {})[target.attr] = value
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
            base = fr.env.get(target.value.id)
            sub = target.slice.value if isinstance(target.slice, ast.Constant) else None
            if isinstance(base, Mapping) and isinstance(sub, str):
                fr.env[target.value.id] = Mapping(tuple((k, v) for k, v in base.items if k != sub) + ((sub, value),))

    def _renamed(self, value: Value, name: str) -> Value:
        if isinstance(value, Opaque):
            return replace(value, name=name)
        if isinstance(value, Text) and len(value.parts) == 1 and isinstance(value.parts[0], Dyn):
            part = value.parts[0]
            if not part.fills:
                return Text((replace(part, name=name),))
        return value

    def _name(self, node: ast.AST) -> str:
        return short_source(node, 40)

    # ----------------------------------------------------------------------------- expressions

    def _eval(self, node: ast.expr | None, fr: Frame) -> Value:
        if node is None:
            return Const(None)
        # Dispatch on the exact type (the hot path of the compiler); `t is X` does not narrow `node` for the
        # type checker, so each branch asserts what `t` has already established.
        t = type(node)
        if t is ast.Constant:
            assert isinstance(node, ast.Constant)
            constant = node.value
            return Text((Static(constant),)) if isinstance(constant, str) else Const(constant)
        if t is ast.Name:
            assert isinstance(node, ast.Name)
            return self._lookup(node.id, fr)
        if t is ast.JoinedStr:
            assert isinstance(node, ast.JoinedStr)
            parts: list[Part] = []
            for v in node.values:
                if isinstance(v, ast.Constant):
                    parts.append(Static(str(v.value)))
                elif isinstance(v, ast.FormattedValue):
                    inner = self._eval(v.value, fr)
                    parts.extend(text_of(self._renamed(inner, self._name(v.value)), self._name(v.value)).parts)
            return tag_build(Text(tuple(parts)), loc_of(node))
        if t is ast.BinOp:
            assert isinstance(node, ast.BinOp)
            return self._binop(node, fr)
        if t is ast.Call:
            assert isinstance(node, ast.Call)
            return self._call(node, fr)
        if t is ast.Await:
            assert isinstance(node, ast.Await)
            awaited = node.value
            if isinstance(awaited, ast.Call):
                return self._call(awaited, fr, awaited=True)
            return self._eval(awaited, fr)
        if t is ast.Attribute:
            assert isinstance(node, ast.Attribute)
            return self._attribute(node, fr)
        if t is ast.Subscript:
            assert isinstance(node, ast.Subscript)
            return self._subscript(node, fr)
        if t in (ast.List, ast.Tuple, ast.Set):
            assert isinstance(node, ast.List | ast.Tuple | ast.Set)
            items: list[Value] = []
            for elt in node.elts:
                if isinstance(elt, ast.Starred):
                    inner = self._eval(elt.value, fr)
                    if isinstance(inner, Seq) and inner.elem is None:
                        items.extend(inner.items)
                    else:
                        items.append(inner)
                else:
                    items.append(self._eval(elt, fr))
            return Seq(tuple(items))
        if t is ast.Dict:
            assert isinstance(node, ast.Dict)
            pairs: list[tuple[str, Value]] = []
            for k, v in zip(node.keys, node.values):
                val = self._eval(v, fr)
                if k is None:
                    if isinstance(val, Mapping):
                        pairs.extend(val.items)
                elif isinstance(k, ast.Constant) and isinstance(k.value, str):
                    pairs.append((k.value, val))
                else:
                    self._eval(k, fr)
                    pairs.append((self._name(k), val))
            return Mapping(tuple(pairs))
        if t in (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp):
            assert isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp)
            return self._comprehension(node, fr)
        if t is ast.IfExp:
            assert isinstance(node, ast.IfExp)
            self._eval(node.test, fr)
            a = self._eval(node.body, fr)
            b = self._eval(node.orelse, fr)
            return merge_values(a, b, "ifexp") or Const(None)
        if t is ast.BoolOp:
            assert isinstance(node, ast.BoolOp)
            value: Value | None = None
            for v in node.values:
                value = merge_values(value, self._eval(v, fr), "boolop")
            return value or Const(None)
        if t is ast.NamedExpr:
            assert isinstance(node, ast.NamedExpr)
            value = self._eval(node.value, fr)
            self._bind(node.target, value, fr)
            return value
        if t in (ast.Compare, ast.UnaryOp):
            assert isinstance(node, ast.Compare | ast.UnaryOp)
            subs = [node.left, *node.comparators] if isinstance(node, ast.Compare) else [node.operand]
            vals = [self._eval(s, fr) for s in subs]
            return Opaque("cmp", SourceKind.LOCAL, frozenset().union(*(origins_of(v) for v in vals)))
        if t is ast.Starred:
            assert isinstance(node, ast.Starred)
            return self._eval(node.value, fr)
        if t is ast.Lambda:
            return Opaque("lambda", SourceKind.LOCAL)
        return Opaque(type(node).__name__, SourceKind.UNKNOWN)

    def _lookup(self, name: str, fr: Frame) -> Value:
        if name in fr.env:
            return fr.env[name]
        if fr.cls is not None and fr.func == "<class>" and name in self.class_attrs.get(fr.cls, {}):
            return self.class_attrs[fr.cls][name]
        if name in self.module_env:
            return self.module_env[name]
        if name in self.functions:
            return FuncRef(name)
        if name in self.classes:
            return FuncRef(name)
        if name in self.imports:
            return ModuleRef(self.imports[name])
        return Opaque(name, SourceKind.UNKNOWN, key=f"global:{name}")

    def _class_attr(self, cls: str, attr: str, seen: int = 0) -> Value | None:
        if seen > 10:
            return None
        attrs = self.class_attrs.get(cls, {})
        if attr in attrs:
            return attrs[attr]
        if f"{cls}.{attr}" in self.functions:
            return FuncRef(f"{cls}.{attr}", bound_self=cls)
        for base in self.class_bases.get(cls, []):
            if base in self.classes:
                found = self._class_attr(base, attr, seen + 1)
                if found is not None:
                    return found
        return None

    def _ensure_init(self, cls: str) -> None:
        if cls in self.initialised:
            return
        self.initialised.add(cls)
        init = self._class_attr(cls, "__init__")
        if isinstance(init, FuncRef) and init.qualname in self.functions:
            info = self.functions[init.qualname]
            self._inline(info, [], {}, cls, None, Frame("<init>", cls, {}, driver=False))

    def _attribute(self, node: ast.Attribute, fr: Frame) -> Value:
        base = self._eval(node.value, fr)
        if isinstance(base, ModuleRef):
            return ModuleRef(f"{base.qualname}.{node.attr}")
        if isinstance(base, Instance):
            self._ensure_init(base.cls)
            found = self._class_attr(base.cls, node.attr)
            if found is not None:
                return found
            return Opaque(f"self.{node.attr}", SourceKind.LOCAL, key=f"attr:{base.cls}.{node.attr}")
        if isinstance(base, FuncRef) and base.qualname in self.classes:
            found = self._class_attr(base.qualname, node.attr)
            if found is not None:
                return found
        if isinstance(base, Client):
            return base
        if isinstance(base, Opaque):
            return Opaque(base.name + "." + node.attr, base.source, base.origins, base.key, base.varies,
                          base.payload, base.fanout)
        return Opaque(self._name(node), SourceKind.LOCAL, origins_of(base), f"local:{self._name(node)}",
                      varies_of(base))

    def _subscript(self, node: ast.Subscript, fr: Frame) -> Value:
        base = self._eval(node.value, fr)
        idx = self._eval(node.slice, fr)
        if isinstance(base, Seq):
            if base.elem is not None:
                return base.elem
            if isinstance(idx, Const) and isinstance(idx.value, int) and -len(base.items) <= idx.value < len(base.items):
                return base.items[idx.value]
        if isinstance(base, Mapping) and isinstance(idx, Text) and len(idx.parts) == 1 and isinstance(idx.parts[0], Static):
            found = base.get(idx.parts[0].text)
            if found is not None:
                return found
        if isinstance(base, Opaque):
            return Opaque(base.name, base.source, base.origins, base.key, base.varies | varies_of(idx),
                          base.payload, base.fanout)
        return Opaque(self._name(node), SourceKind.LOCAL, origins_of(base), f"local:{self._name(node)}",
                      varies_of(base) | varies_of(idx))

    def _binop(self, node: ast.BinOp, fr: Frame) -> Value:
        if isinstance(node.op, ast.Add):
            # Flatten left-nested `a + b + c + ...` iteratively: long chains must not recurse.
            operands: list[ast.expr] = []
            cur: ast.expr = node
            while isinstance(cur, ast.BinOp) and isinstance(cur.op, ast.Add):
                operands.append(cur.right)
                cur = cur.left
            operands.append(cur)
            operands.reverse()
            return self._add([self._eval(o, fr) for o in operands], loc_of(node), None)
        left = self._eval(node.left, fr)
        right = self._eval(node.right, fr)
        if isinstance(node.op, ast.Mod) and isinstance(left, Text):
            return tag_build(percent_text(left, right), loc_of(node))
        if isinstance(node.op, ast.BitOr) and isinstance(left, Template):
            return replace(left, has_model=left.has_model or isinstance(right, Client | Opaque))
        if isinstance(node.op, ast.BitOr) and isinstance(right, Client) and isinstance(left, Text):
            return Template((("user", left),), has_model=True)
        if (isinstance(left, Const) and isinstance(right, Const) and _is_number(left.value)
                and _is_number(right.value) and abs(left.value) < 1e12 and abs(right.value) < 1e12):
            op = _ARITH.get(type(node.op))  # shifts, bit operations, @: no value we need for prompts
            if op is None:
                return Const(None)
            try:
                return Const(op(left.value, right.value))
            except (ArithmeticError, TypeError, ValueError):  # e.g. 1 / 0 in dead code
                return Const(None)
        return Opaque("expr", SourceKind.LOCAL, origins_of(left) | origins_of(right),
                      f"local:{short_source(node, 40)}", varies_of(left) | varies_of(right))

    def _add(self, values: list[Value], loc: Loc, target: ast.AST | None) -> Value:
        if any(isinstance(v, Seq) for v in values) and not any(isinstance(v, Text) for v in values):
            items: list[Value] = []
            elem = None
            for v in values:
                if isinstance(v, Seq):
                    items.extend(v.items)
                    elem = elem or v.elem
                else:
                    items.append(v)
            return Seq(tuple(items), elem)
        if any(isinstance(v, Text) for v in values):
            # One tuple for the whole chain: concatenating operand by operand copied the prefix each
            # time, quadratic in the chain's length.
            return tag_build(Text(tuple(p for v in values for p in text_of(v, "value").parts)), loc)
        if _all_const(values):
            try:
                total: Any = values[0].value  # folded as Python would add them; a TypeError is caught below
                for c in values[1:]:
                    total = total + c.value
                    if isinstance(total, bytes | tuple) and len(total) > MAX_TEXT_CHARS:
                        return Const(None)  # `b = b + b` on every line doubles it: not a value we need
                return Const(total)
            except (ArithmeticError, TypeError, ValueError):  # e.g. None + 1 in dead code
                return Const(None)
        origins = frozenset().union(*(origins_of(v) for v in values))
        varies = frozenset().union(*(varies_of(v) for v in values))
        first = values[0]
        if isinstance(first, Opaque):
            # `history + x` where history is unknown text: keep it text-like so prompts still flow.
            return tag_build(Text(tuple(p for v in values for p in text_of(v).parts)), loc)
        return Opaque("sum", SourceKind.LOCAL, origins, "local:sum", varies)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, fr: Frame) -> Value:
        gens = node.generators
        saved_env = dict(fr.env)
        first_it = self._eval(gens[0].iter, fr)
        if (len(gens) == 1 and self._constant_seq(first_it) and not gens[0].ifs and not isinstance(node, ast.DictComp)
                and self.unrolled * len(first_it.items) <= MAX_UNROLL_PRODUCT):
            n_occ = len(self.occurrences)
            items = []
            saved_unrolled = self.unrolled
            self.unrolled *= len(first_it.items)
            try:
                for item in first_it.items:
                    self._bind(gens[0].target, item, fr, rename=False)
                    items.append(self._eval(node.elt, fr))
            finally:
                self.unrolled = saved_unrolled
            _set_env(fr, saved_env)
            if len(self.occurrences) == n_occ:
                return Seq(tuple(items))
            del self.occurrences[n_occ:]
        pushed = 0
        try:
            for i, gen in enumerate(gens):
                it = first_it if i == 0 else self._eval(gen.iter, fr)
                loop_id = gen.target.lineno * 10_000 + gen.target.col_offset
                self.loops.append(LoopFrame(loop_id, "comprehension", gen.target.lineno, short_source(gen.target),
                                            gen.iter, origins_of(it), request_loop=fr.driver))
                pushed += 1
                self._bind(gen.target, self._loop_value(it, gen.target, loop_id, fr.driver), fr)
                for cond in gen.ifs:
                    self._eval(cond, fr)
            if isinstance(node, ast.DictComp):
                k = self._eval(node.key, fr)
                v = self._eval(node.value, fr)
                elem: Value = Opaque("dict", SourceKind.LOCAL, origins_of(k) | origins_of(v), "local:dictcomp",
                                     varies_of(k) | varies_of(v))
            else:
                elem = self._eval(node.elt, fr)
        finally:
            for _ in range(pushed):
                self.loops.pop()
            _set_env(fr, saved_env)
        return Seq((), elem=elem, elem_loops=frozenset(g.target.lineno * 10_000 + g.target.col_offset for g in gens))

    # ----------------------------------------------------------------------------- calls

    def _call(self, node: ast.Call, fr: Frame, awaited: bool = False) -> Value:
        func = node.func
        receiver: Value | None = None
        func_value: Value | None = None
        qualified: str | None = None
        if isinstance(func, ast.Attribute):
            receiver = self._eval(func.value, fr)
            if isinstance(receiver, ModuleRef):
                qualified = f"{receiver.qualname}.{func.attr}"
            elif isinstance(receiver, Instance | FuncRef):
                func_value = self._attribute(func, fr)
        elif isinstance(func, ast.Name):
            func_value = self._lookup(func.id, fr)
            if isinstance(func_value, ModuleRef):
                qualified = func_value.qualname
        else:
            func_value = self._eval(func, fr)
        args: list[Value] = []
        for a in node.args:
            v = self._eval(a, fr)
            if isinstance(a, ast.Starred) and isinstance(v, Seq) and v.elem is None:
                args.extend(v.items)
            else:
                args.append(v)
        kwargs: dict[str, Value] = {}
        star: Value | None = None
        for kw in node.keywords:
            v = self._eval(kw.value, fr)
            if kw.arg is None:
                if isinstance(v, Mapping):
                    kwargs.update(dict(v.items))
                else:
                    star = v
            else:
                kwargs[kw.arg] = v
        method = func.attr if isinstance(func, ast.Attribute) else (func.id if isinstance(func, ast.Name) else "")

        if qualified in CLIENT_CONSTRUCTORS:
            return Client(CLIENT_CONSTRUCTORS[qualified], method)
        if qualified in VOLATILE_FUNCTIONS:
            varies = frozenset(l.id for l in self.loops)
            return Opaque(f"{method}()", SourceKind.VOLATILE, frozenset(), f"volatile:{node.lineno}:{node.col_offset}",
                          varies)
        special = self._library_call(qualified, method, receiver, args, kwargs, star, node, fr)
        if special is not None:
            return special
        if isinstance(func_value, FuncRef):
            if func_value.qualname in self.classes:
                self._ensure_init(func_value.qualname)
                return Instance(func_value.qualname)
            info = self.functions.get(func_value.qualname)
            if info is not None:
                self_cls = func_value.bound_self or (info.cls if isinstance(receiver, Instance) else None)
                if isinstance(receiver, Instance):
                    self_cls = receiver.cls
                return self._inline(info, args, kwargs, self_cls, node, fr, star)

        url_text = ""
        if args and isinstance(args[0], Text):
            url_text = "".join(p.text for p in args[0].parts if isinstance(p, Static))
        elif "url" in kwargs and isinstance(kwargs["url"], Text):
            url_text = "".join(p.text for p in kwargs["url"].parts if isinstance(p, Static))
        match = classify(dotted_name(func), qualified, receiver, func_value,
                         frozenset(kwargs), url_text, self.patterns)
        if match is not None:
            return self._record(match, node, fr, args, kwargs, receiver, awaited)
        return self._generic_call(method, receiver, args, kwargs, star, node, fr)

    def _library_call(self, qualified: str | None, method: str, receiver: Value | None, args: list[Value],
                      kwargs: dict[str, Value], star: Value | None, node: ast.Call, fr: Frame) -> Value | None:
        """Calls whose effect on text we model: str methods, textwrap, list mutation, LangChain templates."""
        if qualified in ("textwrap.dedent", "inspect.cleandoc") and args and isinstance(args[0], Text):
            return dedent_text(args[0])
        if qualified and qualified.endswith(("ChatPromptTemplate.from_messages", "ChatPromptTemplate")) and args:
            msgs = args[0]
            items = msgs.items if isinstance(msgs, Seq) else ()
            out = []
            for m in items:
                t = message_text(m)
                role = t.parts[0].text[2:-3] if t.parts and isinstance(t.parts[0], Static) else "user"
                out.append((role, Text(t.parts[1:])))
            return Template(tuple(out))
        if qualified and qualified.endswith(("PromptTemplate.from_template", "PromptTemplate")) and (args or "template" in kwargs):
            return Template((("user", text_of(args[0] if args else kwargs["template"])),))
        if qualified and qualified.rsplit(".", 1)[-1] in ("SystemMessage", "HumanMessage", "AIMessage"):
            role = {"SystemMessage": "system", "HumanMessage": "user", "AIMessage": "assistant"}[qualified.rsplit(".", 1)[-1]]
            content = kwargs.get("content") or (args[0] if args else Text(()))
            return Mapping((("role", Text((Static(role),))), ("content", content)))
        if qualified and qualified.endswith("init_chat_model"):
            return Client("langchain", method)
        if qualified == "str" or (method == "str" and receiver is None and qualified is None):
            return text_of(args[0]) if args else Text(())
        if isinstance(receiver, Text):
            if method == "format":
                return format_text(receiver, args, kwargs, star)
            if method == "format_map" and args:
                arg = args[0]
                return format_text(receiver, [], dict(arg.items) if isinstance(arg, Mapping) else {},
                                   None if isinstance(arg, Mapping) else arg)
            if method == "join" and args:
                return join_text(receiver, args[0], self._name(node.args[0]) if node.args else "items")
            if method in ("strip", "lstrip", "rstrip") and not args:
                return strip_text(receiver, method)
            if method in _STR_CASE:
                return map_static(receiver, _STR_CASE[method])
            if method in ("replace", "encode", "removeprefix", "removesuffix", "center", "ljust", "rjust"):
                return receiver
        if method in _LIST_MUTATORS and isinstance(node.func, ast.Attribute):
            self._mutate_list(node.func.value, method, args, fr)
            return Const(None)
        if method == "update" and isinstance(receiver, Mapping) and args and isinstance(args[0], Mapping):
            target = node.func.value if isinstance(node.func, ast.Attribute) else None
            if target is not None:
                self._bind(target, Mapping(receiver.items + args[0].items), fr, rename=False)
            return Const(None)
        return None

    def _mutate_list(self, target: ast.expr, method: str, args: list[Value], fr: Frame) -> None:
        current = self._eval(target, fr)
        new_elem = args[0] if method == "append" and args else None
        if method == "extend" and args and isinstance(args[0], Seq) and args[0].elem is not None:
            new_elem = args[0].elem
        if new_elem is not None and (method == "extend" or (isinstance(current, Seq) and current.elem is not None)):
            # Accumulating elements in a loop (`states.extend(forks)`): keep one representative element;
            # what differs between elements is what varies in the loops active now or in the comprehension.
            active = frozenset(l.id for l in self.loops)
            old = current.elem if isinstance(current, Seq) else None
            loops = (current.elem_loops if isinstance(current, Seq) else frozenset()) | active
            if method == "extend" and isinstance(args[0], Seq):
                loops |= args[0].elem_loops
            base = current.items if isinstance(current, Seq) else ()
            elem = merge_values(old, new_elem, "item") or new_elem
            self._bind(target, Seq(base, elem=elem, elem_loops=loops), fr, rename=False)
            return
        if isinstance(current, Seq) and current.elem is None:
            items = list(current.items)
        elif isinstance(current, Seq) and current.elem is not None:  # (elem None: the branch above)
            items = [*current.items, current.elem]
        else:
            items = [current]
        if method == "append" and args:
            items.append(args[0])
        elif method == "insert" and len(args) == 2:
            items.append(args[1])
        elif method == "extend" and args:
            new = args[0]
            if isinstance(new, Seq) and new.elem is None:
                items.extend(new.items)
            elif isinstance(new, Seq) and not items:
                self._bind(target, new, fr, rename=False)  # `acc = []; acc.extend(comprehension)`
                return
            else:
                items.append(new.elem if isinstance(new, Seq) and new.elem is not None else new)
        self._bind(target, Seq(tuple(items)), fr, rename=False)

    def _generic_call(self, method: str, receiver: Value | None, args: list[Value], kwargs: dict[str, Value],
                      star: Value | None, node: ast.Call, fr: Frame) -> Value:
        """A call we know nothing about: its result carries the data of everything passed in."""
        values = [v for v in (receiver, *args, *kwargs.values(), star) if v is not None]
        origins = frozenset().union(*(origins_of(v) for v in values))
        varies = frozenset().union(*(varies_of(v) for v in values))
        is_constructor = method[:1].isupper()
        payload = () if is_constructor else tuple(self._texts_in(v) for v in args if self._texts_in(v).parts)
        if isinstance(receiver, Opaque) and args and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            # `inp.set_data_from_numpy(np.array([prompt]))`: the object now holds the prompt.
            texts = tuple(self._texts_in(v) for v in args if self._texts_in(v).parts)
            if texts:
                fr.env[node.func.value.id] = replace(receiver, payload=receiver.payload + texts,
                                                     origins=receiver.origins | origins, varies=receiver.varies | varies)
        source = SourceKind.LOCAL
        key = f"local:{dotted_name(node.func)}:{node.lineno}"
        if isinstance(receiver, Opaque):
            source, key = receiver.source, receiver.key  # `x.strip()`, `resp.json()`: same data as `x`
        elif len(args) == 1 and isinstance(args[0], Opaque) and not kwargs:
            source, key = args[0].source, args[0].key  # `str(x)`, `json.loads(x)`
        if source is SourceKind.LOCAL and origins:
            source = SourceKind.CALL_OUTPUT  # e.g. `asyncio.gather(*calls)`: it is the calls' outputs
        return Opaque(method or "call", source, origins, key, varies, payload)

    def _texts_in(self, value: Value) -> Text:
        if isinstance(value, Text):
            return value
        if isinstance(value, Seq):
            parts: list[Part] = []
            for item in value.items:
                parts.extend(self._texts_in(item).parts)
            if value.elem is not None:
                parts.extend(self._texts_in(value.elem).parts)
            return Text(tuple(parts))
        if isinstance(value, Opaque) and value.payload:
            return Text(tuple(p for t in value.payload for p in t.parts))
        return Text(())

    def _inline(self, info: FunctionInfo, args: list[Value], kwargs: dict[str, Value], self_cls: str | None,
                node: ast.Call | None, fr: Frame, star: Value | None = None) -> Value:
        qual = info.qualname
        plain = qual not in self.relevant
        memo_key: tuple[object, ...] | None = None
        if plain and node is not None:
            try:
                memo_key = (qual, self_cls, tuple(args), tuple(sorted(kwargs.items())), star)
                hash(memo_key)
            except TypeError:
                memo_key = None
            if memo_key is not None and memo_key in self._memo:
                return self._memo[memo_key]
        over_budget = plain and self._plain_inlines.get(qual, 0) >= MAX_PLAIN_INLINES
        if over_budget or qual in self.stack or len(self.stack) >= MAX_INLINE_DEPTH or self.budget <= 0:
            values = [*args, *kwargs.values()]
            return Opaque(qual, SourceKind.LOCAL, frozenset().union(*(origins_of(v) for v in values)),
                          f"local:{qual}", frozenset().union(*(varies_of(v) for v in values)))
        if plain:
            self._plain_inlines[qual] = self._plain_inlines.get(qual, 0) + 1
        call_kwargs = dict(kwargs)  # binding pops from `kwargs`; the fallback below needs them all
        env: dict[str, Value] = {}
        a = info.node.args
        positional = [*a.posonlyargs, *a.args]
        if self_cls is not None and positional and positional[0].arg in ("self", "cls"):
            env[positional[0].arg] = Instance(self_cls)
            positional = positional[1:]
        defaults = list(a.defaults)
        first_default = len(positional) - len(defaults)
        for i, p in enumerate(positional):
            if i < len(args):
                value = args[i]
            elif p.arg in kwargs:
                value = kwargs.pop(p.arg)
            elif i >= first_default:
                value = self._eval(defaults[i - first_default], fr)
            else:
                value = self._param_from_star(star, p.arg, qual)
            env[p.arg] = self._as_param(value, p.arg, qual)
        for p, d in zip(a.kwonlyargs, a.kw_defaults):
            value = kwargs.pop(p.arg) if p.arg in kwargs else (self._eval(d, fr) if d is not None else self._param_from_star(star, p.arg, qual))
            env[p.arg] = self._as_param(value, p.arg, qual)
        if a.vararg is not None:
            env[a.vararg.arg] = Seq(tuple(args[len(positional):]))
        if a.kwarg is not None:
            env[a.kwarg.arg] = Mapping(tuple(kwargs.items())) if star is None else star
        callee = Frame(qual, self_cls, env, driver=qual in DRIVER_FUNCTIONS)
        self.analysed.add(qual)
        start = len(self.occurrences)
        depth_loops = len(self.loops)
        self.stack.append(qual)
        try:
            self._exec_block(info.node.body, callee)
        finally:
            self.stack.pop()
        new = self.occurrences[start:]
        short = qual.rsplit(".", 1)[-1]
        if node is not None and not new and match_name(short, self.patterns):
            # A named LLM helper whose body we cannot see into (it calls some other library).
            match = CallMatch(CallStyle.NAMED_FUNCTION, dotted_name(node.func), "args")
            return self._record(match, node, fr, args, call_kwargs, None, False)
        if node is not None and len(new) == 1 and len(new[0].loops) == depth_loops:
            occ = new[0]
            occ.via.append(occ.key)
            occ.key = loc_of(node)
            occ.callee = dotted_name(node.func)
            occ.function = fr.func
            occ.branches = tuple(self.branches)
            occ.output_var = None
        result: Value | None = None
        for r in callee.returns:
            result = merge_values(result, r, short)
        value = result if result is not None else Const(None)
        if memo_key is not None and not new:
            self._memo[memo_key] = value
        return value

    def _param_from_star(self, star: Value | None, name: str, qual: str) -> Value:
        if star is not None:
            return Opaque(name, star.source if isinstance(star, Opaque) else SourceKind.LOCAL, origins_of(star),
                          f"{getattr(star, 'key', 'star')}[{name}]", varies_of(star))
        return Opaque(name, SourceKind.PARAMETER, key=f"param:{qual}:{name}")

    def _as_param(self, value: Value, name: str, qual: str) -> Value:
        """An argument seen from inside the callee: inputs take the parameter's (more telling) name."""
        if isinstance(value, Opaque) and value.source in (SourceKind.UNKNOWN, SourceKind.LOCAL, SourceKind.PARAMETER):
            return replace(value, name=name, source=SourceKind.PARAMETER if value.source is not SourceKind.LOCAL or not value.origins else value.source)
        return value

    # ----------------------------------------------------------------------------- recording

    def _record(self, match: CallMatch, node: ast.Call, fr: Frame, args: list[Value], kwargs: dict[str, Value],
                receiver: Value | None, awaited: bool) -> Value:
        prompt, fanout = self._prompt(match, args, kwargs, receiver, node)
        n = kwargs.get("n")
        if n is not None:
            fanout = n.value if isinstance(n, Const) and isinstance(n.value, int) else self._kw_source(node, "n")
        max_tokens = None
        for k in ("max_tokens", "max_new_tokens", "max_completion_tokens"):
            mt = kwargs.get(k)
            if isinstance(mt, Const) and isinstance(mt.value, int):
                max_tokens = mt.value
        method = match.api.rsplit(".", 1)[-1]
        is_async = awaited or method in ("acompletion", "ainvoke", "abatch", "astream", "async_infer")
        if isinstance(receiver, Client) and receiver.name.startswith("Async"):
            is_async = True
        occ_id = len(self.occurrences)
        self.occurrences.append(
            Occurrence(
                id=occ_id, key=loc_of(node), site=loc_of(node), function=fr.func, style=match.style.value,
                api=match.api, callee=dotted_name(node.func), is_async=is_async, prompt=prompt, loops=tuple(self.loops),
                branches=tuple(self.branches), fanout=fanout, max_tokens=max_tokens, iteration=self.iteration,
            )
        )
        varies = frozenset(l.id for l in self.loops)
        return Opaque("output", SourceKind.CALL_OUTPUT, frozenset({occ_id}), f"call:{occ_id}", varies,
                      fanout=fanout)

    def _kw_source(self, node: ast.Call, name: str) -> str:
        for kw in node.keywords:
            if kw.arg == name:
                return short_source(kw.value, 40)
        return name

    def _prompt(self, match: CallMatch, args: list[Value], kwargs: dict[str, Value], receiver: Value | None,
                node: ast.Call) -> tuple[Text, int | str | None]:
        kind = match.kind
        fanout: int | str | None = None
        if kind == "chat":
            msgs = kwargs.get("messages")
            if msgs is None:
                body = kwargs.get("json")
                if isinstance(body, Mapping):
                    msgs = body.get("messages")
            if msgs is None and args:
                msgs = args[-1] if match.style is CallStyle.HTTP else args[0]
            return messages_text(msgs), None
        if kind == "completion":
            p = kwargs.get("prompt") or (args[0] if args else None)
            return (text_of(p, "prompt") if p is not None else Text(())), None
        if kind == "responses":
            out = Text(())
            if "instructions" in kwargs:
                out = Text(message_text(Mapping((("role", Text((Static("system"),))), ("content", kwargs["instructions"])))).parts)
            inp = kwargs.get("input") or (args[0] if args else None)
            return concat(out, messages_text(inp)), None
        if kind == "langchain":
            method = match.api.rsplit(".", 1)[-1]
            arg = args[0] if args else kwargs.get("input")
            if method in ("batch", "abatch"):
                if isinstance(arg, Seq):
                    fanout = len(arg.items) if arg.elem is None else "len(inputs)"
                    arg = arg.elem if arg.elem is not None else (arg.items[0] if arg.items else None)
                else:
                    fanout = self._name(node.args[0]) if node.args else "inputs"
            if isinstance(receiver, Template):
                return template_text(receiver, arg), fanout
            if isinstance(arg, Text):
                return messages_text(arg), fanout
            return messages_text(arg), fanout
        if kind == "triton":
            inputs = kwargs.get("inputs") or (args[1] if len(args) > 1 else None)
            return self._texts_in(inputs) if inputs is not None else Text(()), None
        if kind == "http":
            body = kwargs.get("json")
            if isinstance(body, Mapping):
                for key in ("prompt", "text_input", "input", "inputs"):
                    field_value = body.get(key)
                    if field_value is not None:
                        return text_of(field_value, key), None
                if body.get("messages") is not None:
                    return messages_text(body.get("messages")), None
            return (self._texts_in(body) if body is not None else Text(())), None
        # Named helpers and callables: prompt=/messages=/first positional.
        for key in ("prompt", "messages", "input", "text", "query", "s"):
            if key in kwargs:
                v = kwargs[key]
                return (messages_text(v) if isinstance(v, Seq) else text_of(v, key)), None
        if args:
            v = args[0]
            return (messages_text(v) if isinstance(v, Seq) else text_of(v, "prompt")), None
        return Text(()), None

    def _diag(self, level: Literal["info", "warning"], line: int, message: str) -> None:
        if (line, message) in self._warned:
            return
        self._warned.add((line, message))
        self.diagnostics.append(Diagnostic(level=level, line=line, message=message))


def _is_number(value: object) -> TypeGuard[int | float]:
    return type(value) in (int, float)  # exactly: a bool is not folded as a number


def _all_const(values: list[Value]) -> TypeGuard[list[Const]]:
    return all(isinstance(v, Const) for v in values)


def _terminates(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return | ast.Raise | ast.Continue | ast.Break)


def _set_env(fr: Frame, env: dict[str, Value]) -> None:
    """Replace a frame's bindings in place: module and class frames share their dict with the interpreter."""
    if env is not fr.env:
        fr.env.clear()
        fr.env.update(env)


def _is_main_guard(test: ast.AST) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


_LLM_HINT = re.compile(
    r"\.(?:create|parse|invoke|ainvoke|batch|abatch|stream|astream|infer|async_infer|post)\s*\("
    r"|\b(?:completion|acompletion|text_completion)\s*\("
    r"|\b(?:max_tokens|max_new_tokens|max_completion_tokens|temperature)\s*="
)
_CALLED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_DEFINED = re.compile(r"\bdef\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(")

# Folded at compile time on int/float constants: whatever the operator does at run time (errors caught).
_ARITH: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b if abs(b) < 64 else None,
}
