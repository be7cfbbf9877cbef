"""The interpreter's frames: where it is (a function, a loop, a branch) while it runs the module.

A `Frame` holds one function's (or the module's, or a class body's) bindings; `LoopFrame` and
`BranchFrame` are pushed while a loop body or a branch arm runs, and every LLM call reached records
the stack of them (`dag.py` turns them into `LoopContext` and `BranchContext`). Records only: how
names bind and resolve in frames is `scopes.py`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from compiler.model import BranchArm, LoopKind
from compiler.values import Value


@dataclass(slots=True)
class LoopFrame:
    """A loop being run: `node` is its iterable (or `while` test), `over` the calls whose outputs it walks."""

    id: int
    kind: LoopKind
    line: int
    target: str | None
    node: ast.AST
    over: frozenset[int]
    request_loop: bool
    target_node: ast.AST | None = None  # what `target` is the source of (for its structured reference)


@dataclass(slots=True)
class BranchFrame:
    """A branch arm being run: `node` is the test (or the `case` pattern)."""

    line: int
    node: ast.AST
    arm: BranchArm


@dataclass(slots=True)
class Frame:
    """One function's bindings (`<module>` and `<class>` frames share their dict with the interpreter)."""

    func: str
    cls: str | None
    env: dict[str, Value]
    driver: bool
    returns: list[Value] = field(default_factory=list)
    module: str = ""  # the project module whose code runs in this frame ('' = the compiled file)


@dataclass(slots=True)
class FunctionInfo:
    """A function or method of the module, by qualified name (`Class.method`, `outer.inner`)."""

    qualname: str
    node: ast.FunctionDef | ast.AsyncFunctionDef
    cls: str | None
    module: str = ""  # the project module defining it ('' = the compiled file)


@dataclass(slots=True)
class ModuleScope:
    """One module's globals: the compiled file's (`prefix` '') or another project module's, whose
    functions and classes are collected under `prefix` (`pkg.prompts:`) so their names never clash."""

    name: str
    prefix: str
    env: dict[str, Value]
    imports: dict[str, str]
    source: str


def set_env(fr: Frame, env: dict[str, Value]) -> None:
    """Replace a frame's bindings in place: module and class frames share their dict with the interpreter."""
    if env is not fr.env:
        fr.env.clear()
        fr.env.update(env)


def local_key(fr: Frame, what: str) -> str:
    """The identity of a value computed in `fr` from `what` (its source text): the same text in two
    functions (a sync and an async twin both reading `comps[i]`) is two different values."""
    return f"local:{fr.func}:{what}"
