"""Names, scopes and binding: what a name means in a frame, and what assigning to a target does.

The module is collected first (its functions, classes and imports by qualified name); then a name
resolves through the frame's bindings, the class body, the module, the module's functions and
classes, and the imports, in that order. Binding covers every assignment target the interpreter
follows (names, tuples, `self.x`, `d["k"]`) and the value a loop variable takes.
"""

from __future__ import annotations

import ast
from dataclasses import replace

from compiler.interpreter.frames import Frame, FunctionInfo, ModuleScope, local_key
from compiler.interpreter.nodes import dotted_name, label, short_source
from compiler.interpreter.state import STATEMENTS_PER_LINE, State
from compiler.model import SourceKind
from compiler.values import (
    Dyn,
    FuncRef,
    Instance,
    Mapping,
    ModuleRef,
    Opaque,
    Seq,
    Static,
    Text,
    Value,
    merge_values,
    origins_of,
    varies_of,
)


class Scopes(State):
    # ----------------------------------------------------------------------------- collection

    def _collect(
        self, body: list[ast.stmt], prefix: str, cls: str | None, scope: ModuleScope | None = None
    ) -> None:
        scope = scope or self.scopes[""]
        for st in body:
            if isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef):
                qual = f"{prefix}{st.name}"
                self.functions[qual] = FunctionInfo(qual, st, cls, self._scope_key(scope))
                self._collect(st.body, prefix=f"{qual}.", cls=None, scope=scope)
            elif isinstance(st, ast.ClassDef):
                qual = f"{prefix}{st.name}"
                self.classes[qual] = st
                self.class_bases[qual] = [dotted_name(b) for b in st.bases]
                self.class_attrs.setdefault(qual, {})
                self._collect(st.body, prefix=f"{qual}.", cls=qual, scope=scope)
            elif isinstance(st, ast.Import | ast.ImportFrom):
                self._import(st, scope)
            else:
                for child in ast.iter_child_nodes(st):
                    if isinstance(child, ast.stmt):
                        self._collect([child], prefix, cls, scope)

    @staticmethod
    def _scope_key(scope: ModuleScope) -> str:
        return scope.name if scope.prefix else ""

    def _import(self, st: ast.Import | ast.ImportFrom, scope: ModuleScope) -> None:
        if isinstance(st, ast.Import):
            for alias in st.names:
                if alias.asname:
                    scope.imports[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    scope.imports[root] = root
        else:
            mod = self.project.resolve_from(scope.name, st.level, st.module or "")
            for alias in st.names:
                scope.imports[alias.asname or alias.name] = f"{mod}.{alias.name}" if mod else alias.name

    # ----------------------------------------------------------------------------- project modules

    def _scope(self, fr: Frame) -> ModuleScope:
        return self.scopes.get(fr.module) or self.scopes[""]

    def _resolve_import(self, dotted: str, scope: ModuleScope) -> Value:
        """What an imported dotted name is: a project module's member (followed), else an opaque module."""
        found = self.project.find(scope.name, dotted)
        if found is None:
            return ModuleRef(dotted)
        module, attrs = found
        value: Value = ModuleRef(module)
        for attr in attrs:
            if not isinstance(value, ModuleRef):
                return Opaque(attr, SourceKind.UNKNOWN, key=f"global:{dotted}")
            value = self._module_member(value.qualname, attr)
        return value

    def _module_member(self, module: str, attr: str) -> Value:
        if module not in self.project.modules:
            return ModuleRef(f"{module}.{attr}")
        found = self._global(self._load(module), attr)
        if found is not None:
            return found
        if f"{module}.{attr}" in self.project.modules:
            return ModuleRef(f"{module}.{attr}")
        return Opaque(attr, SourceKind.UNKNOWN, key=f"global:{module}.{attr}")

    def _load(self, module: str) -> ModuleScope:
        """A project module's globals, run once on first use (as Python runs a module on first import)."""
        if module == self.project.module:
            return self.scopes[""]
        if module in self.scopes:
            return self.scopes[module]  # loaded, or loading (an import cycle sees it half-built)
        source = self.project.modules[module]
        scope = ModuleScope(module, f"{module}:", {}, {}, source)
        self.scopes[module] = scope
        self.modules_read.append(module)
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            self._diag(
                "warning", 1, f"project module {module} does not parse ({exc}); its names stay unknown"
            )
            return scope
        self.budget += STATEMENTS_PER_LINE * source.count("\n")
        self._collect(tree.body, prefix=scope.prefix, cls=None, scope=scope)
        self._load_imports(scope)
        saved = (self.loops, self.branches, self.iteration, self.second_passes, self.unrolled, self.stack)
        self.loops, self.branches, self.iteration, self.second_passes, self.unrolled = [], [], 0, 0, 1
        self.stack = [f"{module}:<module>"]
        try:
            self._exec_block(tree.body, Frame("<module>", None, scope.env, driver=False, module=module))
        finally:
            self.loops, self.branches, self.iteration, self.second_passes, self.unrolled, self.stack = saved
        return scope

    def _load_imports(self, scope: ModuleScope) -> None:
        """Load every project module `scope` imports, before anything runs (relevance needs them all)."""
        for dotted in list(scope.imports.values()):
            found = self.project.find(scope.name, dotted)
            if found is not None:
                self._load(found[0])

    def static_names(self) -> dict[str, str]:
        """Module and class constants whose value is fully literal text (codemods need them)."""
        out: dict[str, str] = {}
        envs = [("", self.module_env)] + [(f"{c}.", a) for c, a in self.class_attrs.items()]
        for prefix, env in envs:
            for name, value in env.items():
                if (
                    isinstance(value, Text)
                    and value.parts
                    and all(isinstance(p, Static) for p in value.parts)
                ):
                    out[prefix + name] = "".join(p.text for p in value.parts if isinstance(p, Static))
        return out

    # ----------------------------------------------------------------------------- resolution

    def _lookup(self, name: str, fr: Frame) -> Value:
        if name in fr.env:
            return fr.env[name]
        if fr.cls is not None and fr.func == "<class>" and name in self.class_attrs.get(fr.cls, {}):
            return self.class_attrs[fr.cls][name]
        found = self._global(self._scope(fr), name)
        return found if found is not None else Opaque(name, SourceKind.UNKNOWN, key=f"global:{name}")

    def _global(self, scope: ModuleScope, name: str) -> Value | None:
        """A module's global `name`: bound at its top level, a function or class of it, or imported."""
        if name in scope.env:
            return scope.env[name]
        qual = scope.prefix + name
        if qual in self.functions or qual in self.classes:
            return FuncRef(qual)
        if name in scope.imports:
            return self._resolve_import(scope.imports[name], scope)
        return None

    def _class_attr(self, cls: str, attr: str, seen: int = 0) -> Value | None:
        if seen > 10:
            return None
        attrs = self.class_attrs.get(cls, {})
        if attr in attrs:
            return attrs[attr]
        if f"{cls}.{attr}" in self.functions:
            return FuncRef(f"{cls}.{attr}", bound_self=cls)
        prefix = cls.partition(":")[0] + ":" if ":" in cls else ""
        for base in self.class_bases.get(cls, []):
            base = base if base in self.classes else prefix + base  # a base of the same project module
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

    # ----------------------------------------------------------------------------- binding

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
                    name = label(elt)
                    src = value.source if isinstance(value, Opaque) else SourceKind.LOCAL
                    key = f"{value.key}[{i}]" if isinstance(value, Opaque) else local_key(fr, name)
                    self._bind(elt, Opaque(name, src, origins_of(value), key, varies_of(value)), fr)
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            base = fr.env.get(target.value.id)
            if isinstance(base, Instance):
                self.class_attrs.setdefault(base.cls, {})[target.attr] = value
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
            base = fr.env.get(target.value.id)
            sub = target.slice.value if isinstance(target.slice, ast.Constant) else None
            if isinstance(base, Mapping) and isinstance(sub, str):
                fr.env[target.value.id] = Mapping(
                    tuple((k, v) for k, v in base.items if k != sub) + ((sub, value),)
                )

    def _renamed(self, value: Value, name: str) -> Value:
        if isinstance(value, Opaque):
            return replace(value, name=name)
        if isinstance(value, Text) and len(value.parts) == 1 and isinstance(value.parts[0], Dyn):
            part = value.parts[0]
            if not part.fills:
                return Text((replace(part, name=name),))
        return value

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
            return Text(
                tuple(
                    replace(p, varies=p.varies | {loop_id})
                    if isinstance(p, Dyn)
                    and ((-1 in per_element and p.ident.startswith("branch:")) or p.varies & per_element)
                    else p
                    for p in rep.parts
                )
            )
        if isinstance(rep, Mapping | Seq):
            return rep
        source = SourceKind.LOOP_VARIABLE
        return Opaque(name, source, origins_of(it), f"loop:{loop_id}:{name}", varies_of(it) | {loop_id})
