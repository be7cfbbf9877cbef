"""The `Interpreter`: its parts assembled, and the entry points that run a module through them.

`run()` collects the module, runs its top level as the driver, then analyses on its own every
function that nothing in the module calls (the entry points of a library-style agent), within one
statement budget for the whole file.
"""

from __future__ import annotations

import re

from compiler.callsites import match_name
from compiler.interpreter.calls import Calls
from compiler.interpreter.drive import Drive
from compiler.interpreter.expressions import Expressions
from compiler.interpreter.frames import Frame, FunctionInfo
from compiler.interpreter.nodes import short_name
from compiler.interpreter.scopes import Scopes
from compiler.interpreter.sdk import LLM_HINT
from compiler.interpreter.state import DRIVER_FUNCTIONS
from compiler.interpreter.statements import Statements
from compiler.model import SourceKind
from compiler.values import Instance, Occurrence, Opaque, Value

_CALLED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_DEFINED = re.compile(r"\bdef\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(")


class Interpreter(Statements, Expressions, Calls, Scopes, Drive):
    """Runs a parsed module symbolically, once; `run()` returns every LLM call reached (`Occurrence`s)."""

    def run(self) -> list[Occurrence]:
        self._collect(self.tree.body, prefix="", cls=None)
        self._load_imports(self.scopes[""])  # project modules run first, as Python imports them
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
        # Functions nothing in the module calls are entry points of a library-style agent. Those that
        # hint at driving agent code (`Adapter.DRIVES`: building a graph) go first, so the functions a
        # framework runs are run with its inputs before they could be analysed alone.
        roots = sorted(self.functions.items(), key=lambda item: item[0] not in self.drive_roots)
        for qualname, info in roots:
            if info.module or qualname in self.analysed or self.budget <= 0:
                continue  # another project module's functions are followed where this file calls them
            short = qualname.rsplit(".", 1)[-1]
            if short in self.referenced or (short.startswith("__") and short.endswith("__")):
                continue
            self._analyse_root(info)
        for qualname, info in list(self.functions.items()):
            if info.module:
                continue
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
        # as `ast` counts lines (\r\n leaves a harmless \r)
        lines = {key: scope.source.split("\n") for key, scope in self.scopes.items()}
        hints = [a.HINT for a in self.adapters if a.HINT]
        hint = re.compile("|".join([LLM_HINT.pattern, *hints])) if hints else LLM_HINT
        drives = [a.DRIVES for a in self.adapters if a.DRIVES]
        drive_hint = re.compile("|".join(drives)) if drives else None
        called: dict[str, set[str]] = {}
        for qual, info in self.functions.items():
            source = lines[info.module]
            text = "\n".join(source[info.node.lineno - 1 : info.node.end_lineno or info.node.lineno])
            names = set(_CALLED.findall(text))
            called[qual] = names
            if drive_hint is not None and drive_hint.search(text):
                self.drive_roots.add(qual)
            if hint.search(text) or any(match_name(n, self.patterns) for n in names):
                self.relevant.add(qual)
        changed = True
        while changed:
            changed = False
            short = {short_name(q) for q in self.relevant}
            for qual, names in called.items():
                if qual not in self.relevant and names & short:
                    self.relevant.add(qual)
                    changed = True

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
                env[star.arg] = Opaque(
                    star.arg, SourceKind.PARAMETER, key=f"param:{info.qualname}:{star.arg}"
                )
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
