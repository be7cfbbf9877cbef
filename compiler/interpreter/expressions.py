"""Expressions: the symbolic value of each Python expression the interpreter meets.

Text-building is followed exactly (constants, f-strings, `+` chains, `%`, comprehensions over
constant lists), containers keep their items, and everything else becomes an `Opaque` value that
still carries its data flow: which LLM calls' outputs flow into it and which loops it varies in.
Calls are `calls.py`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeGuard

from compiler.interpreter.frames import Frame, LoopFrame, local_key, set_env
from compiler.interpreter.nodes import label, loc_of, short_source
from compiler.interpreter.state import State
from compiler.interpreter.statements import MAX_UNROLL_PRODUCT, constant_seq
from compiler.model import SourceKind
from compiler.templates import percent_text
from compiler.values import (
    MAX_TEXT_CHARS,
    Client,
    Const,
    FuncRef,
    Instance,
    Loc,
    Mapping,
    ModuleRef,
    Opaque,
    Part,
    Seq,
    Static,
    Template,
    Text,
    Value,
    merge_values,
    origins_of,
    tag_build,
    text_of,
    varies_of,
)


class Expressions(State):
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
                    parts.extend(text_of(self._renamed(inner, label(v.value)), label(v.value)).parts)
            return tag_build(Text(tuple(parts)), self._build_loc(node, fr))
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
                    pairs.append((label(k), val))
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

    @staticmethod
    def _build_loc(node: ast.AST, fr: Frame) -> Loc | None:
        """Where an expression builds text, for the codemods: None in another module of the project."""
        return None if fr.module else loc_of(node)

    def _attribute(self, node: ast.Attribute, fr: Frame) -> Value:
        base = self._eval(node.value, fr)
        if isinstance(base, ModuleRef):
            return self._module_member(base.qualname, node.attr)
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
        if isinstance(base, Mapping):
            # An object built from named values (a graph's state, an SDK config): its attribute is the value
            # by that name; a dict has no such attributes, so this only ever reads an object's fields.
            found = base.get(node.attr)
            if found is not None:
                return found
        if isinstance(base, Opaque):
            return Opaque(
                base.name + "." + node.attr,
                base.source,
                base.origins,
                base.key,
                base.varies,
                base.payload,
                base.fanout,
            )
        return Opaque(
            label(node), SourceKind.LOCAL, origins_of(base), local_key(fr, label(node)), varies_of(base)
        )

    def _subscript(self, node: ast.Subscript, fr: Frame) -> Value:
        base = self._eval(node.value, fr)
        idx = self._eval(node.slice, fr)
        if isinstance(base, Seq):
            if base.elem is not None:
                return base.elem
            if (
                isinstance(idx, Const)
                and isinstance(idx.value, int)
                and -len(base.items) <= idx.value < len(base.items)
            ):
                return base.items[idx.value]
        if (
            isinstance(base, Mapping)
            and isinstance(idx, Text)
            and len(idx.parts) == 1
            and isinstance(idx.parts[0], Static)
        ):
            found = base.get(idx.parts[0].text)
            if found is not None:
                return found
        if isinstance(base, Opaque):
            literal = _literal_index(idx)
            if literal is not None and base.source is not SourceKind.CALL_OUTPUT:
                # `info["shared"]` and `info["diverged"]` are two values, each the same wherever it is read
                # (a call's output keeps its identity: `r.choices[0]` is that call's output)
                return Opaque(
                    f"{base.name}[{literal}]",
                    base.source,
                    base.origins,
                    f"{base.key}[{literal}]",
                    base.varies,
                    base.payload,
                    base.fanout,
                )
            return Opaque(
                base.name,
                base.source,
                base.origins,
                base.key,
                base.varies | varies_of(idx),
                base.payload,
                base.fanout,
            )
        return Opaque(
            label(node),
            SourceKind.LOCAL,
            origins_of(base),
            local_key(fr, label(node)),
            varies_of(base) | varies_of(idx),
        )

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
            return self._add([self._eval(o, fr) for o in operands], self._build_loc(node, fr), None)
        left = self._eval(node.left, fr)
        right = self._eval(node.right, fr)
        if isinstance(node.op, ast.Mult):
            repeated = _repeat(left, right) or _repeat(right, left)
            if repeated is not None:
                return tag_build(repeated, self._build_loc(node, fr))
        if isinstance(node.op, ast.Mod) and isinstance(left, Text):
            return tag_build(percent_text(left, right), self._build_loc(node, fr))
        if isinstance(node.op, ast.BitOr) and isinstance(left, Template):
            return replace(left, has_model=left.has_model or isinstance(right, Client | Opaque))
        if isinstance(node.op, ast.BitOr) and isinstance(right, Client) and isinstance(left, Text):
            return Template((("user", left),), has_model=True)
        if (
            isinstance(left, Const)
            and isinstance(right, Const)
            and _is_number(left.value)
            and _is_number(right.value)
            and abs(left.value) < 1e12
            and abs(right.value) < 1e12
        ):
            op = _ARITH.get(type(node.op))  # shifts, bit operations, @: no value we need for prompts
            if op is None:
                return Const(None)
            try:
                return Const(op(left.value, right.value))
            except (ArithmeticError, TypeError, ValueError):  # e.g. 1 / 0 in dead code
                return Const(None)
        return Opaque(
            "expr",
            SourceKind.LOCAL,
            origins_of(left) | origins_of(right),
            local_key(fr, short_source(node, 40)),
            varies_of(left) | varies_of(right),
        )

    def _add(self, values: list[Value], loc: Loc | None, target: ast.AST | None) -> Value:
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

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, fr: Frame
    ) -> Value:
        gens = node.generators
        saved_env = dict(fr.env)
        first_it = self._eval(gens[0].iter, fr)
        if (
            len(gens) == 1
            and constant_seq(first_it)
            and not gens[0].ifs
            and not isinstance(node, ast.DictComp)
            and self.unrolled * len(first_it.items) <= MAX_UNROLL_PRODUCT
        ):
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
            set_env(fr, saved_env)
            if len(self.occurrences) == n_occ:
                return Seq(tuple(items))
            del self.occurrences[n_occ:]
        pushed = 0
        try:
            for i, gen in enumerate(gens):
                it = first_it if i == 0 else self._eval(gen.iter, fr)
                loop_id = gen.target.lineno * 10_000 + gen.target.col_offset
                self.loops.append(
                    LoopFrame(
                        loop_id,
                        "comprehension",
                        gen.target.lineno,
                        short_source(gen.target),
                        gen.iter,
                        origins_of(it),
                        request_loop=fr.driver,
                        target_node=gen.target,
                    )
                )
                pushed += 1
                self._bind(gen.target, self._loop_value(it, gen.target, loop_id, fr.driver), fr)
                for cond in gen.ifs:
                    self._eval(cond, fr)
            if isinstance(node, ast.DictComp):
                k = self._eval(node.key, fr)
                v = self._eval(node.value, fr)
                elem: Value = Opaque(
                    "dict",
                    SourceKind.LOCAL,
                    origins_of(k) | origins_of(v),
                    local_key(fr, "dictcomp"),
                    varies_of(k) | varies_of(v),
                )
            else:
                elem = self._eval(node.elt, fr)
        finally:
            for _ in range(pushed):
                self.loops.pop()
            set_env(fr, saved_env)
        return Seq(
            (), elem=elem, elem_loops=frozenset(g.target.lineno * 10_000 + g.target.col_offset for g in gens)
        )


# `"""rules""" * 3` is folded up to this count; a larger repeat is a run-time value of unknown text.
MAX_TEXT_REPEAT = 64


def _repeat(text: Value, count: Value) -> Text | None:
    """`text * count` when count is a small literal integer (a negative count gives "", as in Python)."""
    if not isinstance(text, Text) or not isinstance(count, Const) or type(count.value) is not int:
        return None
    if count.value > MAX_TEXT_REPEAT:
        return None
    return Text(text.parts * max(count.value, 0))


def _literal_index(idx: Value) -> str | None:
    """`idx` as source text when it is a literal string or integer (a dict key, a fixed position)."""
    if isinstance(idx, Text) and len(idx.parts) == 1 and isinstance(idx.parts[0], Static):
        return repr(idx.parts[0].text)
    if isinstance(idx, Const) and type(idx.value) is int:
        return str(idx.value)
    return None


def _is_number(value: object) -> TypeGuard[int | float]:
    return type(value) in (int, float)  # exactly: a bool is not folded as a number


def _all_const(values: list[Value]) -> TypeGuard[list[Const]]:
    return all(isinstance(v, Const) for v in values)


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
