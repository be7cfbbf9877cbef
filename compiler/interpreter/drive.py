"""Driving: agent code a framework runs, followed by running it here (`Adapter.drive`, `base.Host`).

A framework that calls the agent's own functions (a LangGraph graph runs its node functions in graph
order, handing each the state) hides the data flow between them from a plain reading: nothing in the
agent calls them. An adapter whose `drive` recognises such a call runs those functions through the
`Host` below, in the framework's order and with the values the framework would hand them, so the
values they return carry their LLM calls' outputs (`Opaque.origins`) to the next ones, and `dag.py`
derives the edges from that provenance as for any other call.

Everything stays bounded as the rest of the interpreter is: a driven function is run like an inlined
call (the recursion guard, `MAX_INLINE_DEPTH`, the statement budget), loops an adapter opens run at
most the two passes `statements._loop` gives a loop body, and the adapter bounds how often it drives.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager

from compiler.adapters.base import SdkCall
from compiler.interpreter.calls import MAX_INLINE_DEPTH
from compiler.interpreter.frames import BranchFrame, Frame, LoopFrame
from compiler.interpreter.state import State
from compiler.model import SourceKind
from compiler.values import FuncRef, Instance, Opaque, Value


class Drive(State):
    def _drive(self, call: SdkCall, fr: Frame) -> Value | None:
        if not self.drivers:
            return None
        start = len(self.occurrences)
        host = _Host(self, fr, call)
        for adapter in self.drivers:
            value = adapter.drive(call, host)
            if value is not None:
                # Calls reached through a framework are not the calling function's own: a function that
                # builds and compiles a one-node graph is not a wrapper of that node's call (`_inline`).
                self.driven.update(range(start, len(self.occurrences)))
                return value
        return None

    def _run_driven(self, fn: Value, args: list[Value]) -> list[Value] | None:
        """Run a function of the agent with positional `args`; parameters left over are the framework's
        other inputs (a LangGraph node's `config`), unknown. Defaults are not evaluated."""
        if not isinstance(fn, FuncRef):
            return None
        info = self.functions.get(fn.qualname)
        qual = fn.qualname
        if info is None or qual in self.stack or len(self.stack) >= MAX_INLINE_DEPTH or self.budget <= 0:
            return None
        a = info.node.args
        params = [*a.posonlyargs, *a.args]
        env: dict[str, Value] = {}
        self_cls = fn.bound_self
        if self_cls is not None and params and params[0].arg in ("self", "cls"):
            env[params[0].arg] = Instance(self_cls)
            params = params[1:]
        for i, p in enumerate([*params, *a.kwonlyargs]):
            env[p.arg] = (
                args[i]
                if i < len(params) and i < len(args)
                else Opaque(p.arg, SourceKind.PARAMETER, key=f"param:{qual}:{p.arg}")
            )
        for star in (a.vararg, a.kwarg):
            if star is not None:
                env[star.arg] = Opaque(star.arg, SourceKind.PARAMETER, key=f"param:{qual}:{star.arg}")
        frame = Frame(qual, self_cls, env, driver=False, module=info.module)
        self.analysed.add(qual)
        self.stack.append(qual)
        try:
            self._exec_block(info.node.body, frame)
        finally:
            self.stack.pop()
        return list(frame.returns)


class _Host:
    """`base.Host` for one driven call: the interpreter, the caller's frame and the call."""

    __slots__ = ("call", "fr", "interp")

    def __init__(self, interp: Drive, fr: Frame, call: SdkCall) -> None:
        self.interp, self.fr, self.call = interp, fr, call

    def run(self, fn: Value, args: list[Value]) -> list[Value] | None:
        return self.interp._run_driven(fn, args)

    def function_node(self, fn: Value) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        info = self.interp.functions.get(fn.qualname) if isinstance(fn, FuncRef) else None
        return info.node if info is not None else None

    def rebind(self, value: Value) -> None:
        func = self.call.node.func
        if isinstance(func, ast.Attribute):
            # `_bind` assigns names, `self.x` and `d["k"]`; any other receiver keeps its old value.
            self.interp._bind(func.value, value, self.fr, rename=False)

    def loops(self) -> frozenset[int]:
        for frame in self.interp.loops:
            self.interp.loop_frames[frame.id] = frame
        return frozenset(frame.id for frame in self.interp.loops)

    @contextmanager
    def reenter(self, loop_ids: frozenset[int]) -> Iterator[None]:
        interp = self.interp
        active = {frame.id for frame in interp.loops}
        frames = sorted(
            (interp.loop_frames[i] for i in loop_ids if i in interp.loop_frames and i not in active),
            key=lambda f: (f.line, f.id),
        )
        interp.loops.extend(frames)
        try:
            yield
        finally:
            del interp.loops[len(interp.loops) - len(frames) :]

    @contextmanager
    def loop(self, line: int, col: int, label: str, iteration: int) -> Iterator[None]:
        interp = self.interp
        frame = LoopFrame(line * 10_000 + col, "while", line, None, ast.Name(id=label), frozenset(), False)
        interp.loops.append(frame)
        saved = (interp.iteration, interp.second_passes)
        interp.iteration = min(iteration, 1)
        interp.second_passes += interp.iteration
        try:
            yield
        finally:
            interp.loops.pop()
            interp.iteration, interp.second_passes = saved

    @contextmanager
    def branch(self, line: int, label: str) -> Iterator[None]:
        self.interp.branches.append(BranchFrame(line, ast.Name(id=label), "case"))
        try:
            yield
        finally:
            self.interp.branches.pop()

    def diag(self, line: int, message: str) -> None:
        self.interp._diag("info", line, message)
