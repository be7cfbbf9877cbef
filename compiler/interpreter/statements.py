"""Statements: running a block within the budget, assignments, branches and loops.

What makes the interpreter terminate on any input lives here: every statement is charged against a
budget by its size, loops run their body twice (once at depth), constant loops are unrolled only
while the product of their lengths stays small, and the arms of a branch are run one after the other
from the same bindings and merged.
"""

from __future__ import annotations

import ast
from typing import TypeGuard

from compiler.interpreter.frames import BranchFrame, Frame, LoopFrame, local_key, set_env
from compiler.interpreter.nodes import label, loc_of, short_source
from compiler.interpreter.state import State
from compiler.model import BranchArm, LoopKind, SourceKind
from compiler.values import (
    Const,
    Dyn,
    FuncRef,
    Mapping,
    Opaque,
    Seq,
    Text,
    Value,
    merge_values,
    origins_of,
    varies_of,
)

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


class Statements(State):
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
                while (
                    isinstance(st, ast.If)
                    and _terminates(st.body)
                    and not fr.driver
                    and not _is_main_guard(st.test)
                ):
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
                new = self._add([current, value], None if fr.module else loc_of(st), st.target)
            else:
                new = Opaque(
                    label(st.target),
                    SourceKind.LOCAL,
                    origins_of(current) | origins_of(value),
                    local_key(fr, label(st.target)),
                    varies_of(current) | varies_of(value),
                )
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
                qual = self._scope(fr).prefix + st.name
                attrs = self.class_attrs.setdefault(qual, {})
                self._exec_block(st.body, Frame("<class>", qual, attrs, driver=False, module=fr.module))
        elif isinstance(st, ast.Match):
            self._eval(st.subject, fr)
            self._branches(fr, [(case.body, "case", case.pattern) for case in st.cases], st.lineno)
        elif isinstance(st, ast.Import | ast.ImportFrom):
            self._import(st, self._scope(fr))

    def _branches(self, fr: Frame, arms: list[tuple[list[ast.stmt], BranchArm, ast.AST]], line: int) -> None:
        before = dict(fr.env)
        results: list[dict[str, Value]] = []
        main_guard = _is_main_guard(arms[0][2]) if arms else False
        for body, arm, test in arms:
            set_env(fr, dict(before))
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
        set_env(fr, merged)

    def _for(self, st: ast.For | ast.AsyncFor, fr: Frame) -> None:
        it = self._eval(st.iter, fr)
        if constant_seq(it) and st.orelse == [] and self.unrolled * len(it.items) <= MAX_UNROLL_PRODUCT:
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
            set_env(fr, snapshot[0])
            del self.occurrences[snapshot[1] :]
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

    def _loop(
        self,
        st: ast.stmt,
        kind: LoopKind,
        target: ast.AST | None,
        it_node: ast.AST,
        it: Value,
        fr: Frame,
        body: list[ast.stmt],
    ) -> None:
        loop_id = st.lineno * 10_000 + st.col_offset
        frame = LoopFrame(
            loop_id,
            kind,
            st.lineno,
            short_source(target) if target is not None else None,
            it_node,
            origins_of(it),
            request_loop=fr.driver,
            target_node=target,
        )
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


def constant_seq(value: Value) -> TypeGuard[Seq]:
    """A short list of values known at compile time: a loop over it can be unrolled."""
    if not isinstance(value, Seq) or value.elem is not None or not 0 < len(value.items) <= MAX_UNROLL:
        return False
    return all(not origins_of(v) and not varies_of(v) and not has_dyn(v) for v in value.items)


def has_dyn(value: Value) -> bool:
    if isinstance(value, Text):
        return any(isinstance(p, Dyn) for p in value.parts)
    if isinstance(value, Seq):
        return any(has_dyn(v) for v in value.items)
    if isinstance(value, Mapping):
        return any(has_dyn(v) for _, v in value.items)
    return isinstance(value, Opaque)


def _terminates(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return | ast.Raise | ast.Continue | ast.Break)


def _is_main_guard(test: ast.AST) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )
