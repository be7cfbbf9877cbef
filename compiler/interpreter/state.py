"""What the interpreter knows and where it is: the state its parts share, and what each part offers.

The interpreter is one class (`core.Interpreter`) assembled from parts, one module each: `scopes`
(names, classes, binding), `statements`, `expressions`, `calls`, with the client-SDK knowledge in
`sdk`. They call one another (an expression inlines a function, whose statements evaluate
expressions), so this base class declares the state they share and, as abstract methods, the entry
points each part provides to the others: a part reaches another only through these.
"""

from __future__ import annotations

import ast
from abc import ABC, abstractmethod
from typing import Literal

from compiler.callsites import DEFAULT_NAME_PATTERNS
from compiler.interpreter.frames import BranchFrame, Frame, FunctionInfo, LoopFrame, ModuleScope
from compiler.model import Diagnostic
from compiler.adapters import ADAPTERS, Adapter
from compiler.adapters.base import SdkCall
from compiler.project import Project
from compiler.values import Loc, Occurrence, Value

DRIVER_FUNCTIONS = frozenset({"main", "_main", "cli", "run_cli"})
BASE_STATEMENTS = 50_000  # interpretation budget, plus STATEMENTS_PER_LINE per source line
STATEMENTS_PER_LINE = 20


class State(ABC):
    """The interpreter's memory: the module collected, where it is now, what it found, what it may still spend."""

    def __init__(
        self,
        tree: ast.Module,
        patterns: tuple[str, ...] = DEFAULT_NAME_PATTERNS,
        source: str = "",
        project: Project | None = None,
        adapters: tuple[type[Adapter], ...] = ADAPTERS,
    ) -> None:
        self.tree = tree
        self.adapters = adapters
        self.source = source
        self.patterns = patterns
        self.project = project or Project()
        self.imports: dict[str, str] = {}
        self.functions: dict[str, FunctionInfo] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self.class_bases: dict[str, list[str]] = {}
        self.class_attrs: dict[str, dict[str, Value]] = {}
        self.initialised: set[str] = set()
        self.module_env: dict[str, Value] = {}
        # Globals by module: '' is the compiled file; other project modules are added as they load.
        self.scopes: dict[str, ModuleScope] = {
            "": ModuleScope(self.project.module, "", self.module_env, self.imports, source)
        }
        self.modules_read: list[str] = []  # project modules loaded, in load order
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
        self._loop_reps: dict[
            tuple[object, ...], Value | None
        ] = {}  # (loop's list items, name) -> merged element
        self.budget = BASE_STATEMENTS + STATEMENTS_PER_LINE * source.count("\n")
        self.relevant: set[str] = set()  # functions that may (transitively) make an LLM call
        self._plain_inlines: dict[str, int] = {}
        self._memo: dict[tuple[object, ...], Value] = {}
        self.referenced: set[str] = set()
        self._warned: set[tuple[int, str]] = set()
        # Adapters that run agent code (`Adapter.drive`, `drive.py`), and what driving needs to keep.
        self.drivers = tuple(a for a in adapters if a.drive is not Adapter.drive)
        self.loop_frames: dict[int, LoopFrame] = {}  # loops an adapter may re-enter (`Host.loops`)
        self.driven: set[int] = set()  # occurrences reached while an adapter drove agent code
        self.drive_roots: set[str] = set()  # entry points that hint at driving (`Adapter.DRIVES`)

    def _diag(self, level: Literal["info", "warning"], line: int, message: str) -> None:
        if (line, message) in self._warned:
            return
        self._warned.add((line, message))
        self.diagnostics.append(Diagnostic(level=level, line=line, message=message))

    # ----------------------------------------------------------------------------- scopes.py

    @abstractmethod
    def _import(self, st: ast.Import | ast.ImportFrom, scope: ModuleScope) -> None:
        """Bind the names an import statement brings in, in the module `scope`."""

    @abstractmethod
    def _module_member(self, module: str, attr: str) -> Value:
        """`module.attr`: a project module's global, function, class or submodule; else a `ModuleRef`."""

    @abstractmethod
    def _scope(self, fr: Frame) -> ModuleScope:
        """The globals of the module whose code runs in `fr`."""

    @abstractmethod
    def _lookup(self, name: str, fr: Frame) -> Value:
        """The value of a bare name in frame `fr` (local, class, module, function, class, import)."""

    @abstractmethod
    def _class_attr(self, cls: str, attr: str, seen: int = 0) -> Value | None:
        """A class attribute or method, looked up through the bases."""

    @abstractmethod
    def _ensure_init(self, cls: str) -> None:
        """Run a class's `__init__` once, so `self.x` attributes have values."""

    @abstractmethod
    def _bind(self, target: ast.AST, value: Value, fr: Frame, rename: bool = True) -> None:
        """Assign `value` to an assignment target (name, tuple, `self.x`, `d["k"]`)."""

    @abstractmethod
    def _renamed(self, value: Value, name: str) -> Value:
        """The value as it reads once bound to `name`."""

    @abstractmethod
    def _loop_value(self, it: Value, target: ast.AST, loop_id: int, request: bool = False) -> Value:
        """The value a loop variable takes over `it`."""

    # ----------------------------------------------------------------------------- statements.py

    @abstractmethod
    def _exec_block(self, body: list[ast.stmt], fr: Frame) -> None:
        """Run statements in frame `fr`, within the budget."""

    # ----------------------------------------------------------------------------- expressions.py

    @abstractmethod
    def _eval(self, node: ast.expr | None, fr: Frame) -> Value:
        """The symbolic value of an expression."""

    @abstractmethod
    def _attribute(self, node: ast.Attribute, fr: Frame) -> Value:
        """The value of `x.attr`."""

    @abstractmethod
    def _add(self, values: list[Value], loc: Loc | None, target: ast.AST | None) -> Value:
        """The value of `a + b + ...` (text concatenation, list concatenation, numbers)."""

    # ----------------------------------------------------------------------------- drive.py

    @abstractmethod
    def _drive(self, call: SdkCall, fr: Frame) -> Value | None:
        """The value of a call an adapter drives (agent code a framework runs), else None."""

    # ----------------------------------------------------------------------------- calls.py

    @abstractmethod
    def _call(self, node: ast.Call, fr: Frame, awaited: bool = False) -> Value:
        """The value of a call: an LLM call recorded, a module function inlined, a library call modelled."""

    @abstractmethod
    def _inline(
        self,
        info: FunctionInfo,
        args: list[Value],
        kwargs: dict[str, Value],
        self_cls: str | None,
        node: ast.Call | None,
        fr: Frame,
        star: Value | None = None,
    ) -> Value:
        """Run a function of the module with these arguments; its merged return value."""
