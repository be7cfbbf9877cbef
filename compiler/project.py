"""An agent's project: its modules as source text, by dotted name, so imports resolve across files.

The compiler stays pure: the caller reads the files (`charter_tui`, `daemon`) and hands over their text;
nothing here imports or runs the agent. A module is named by its path under the project root
(`pkg/prompts.py` -> `pkg.prompts`, `pkg/__init__.py` -> `pkg`). Imports resolve as Python would from
the root (absolute and relative, package `__init__` re-exports), and also from the importing file's
own directory, as a script run from there finds its neighbours (`import prompts` beside `agent.py`).
Anything else (the standard library, third-party packages) stays opaque.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePosixPath

# A project is read whole for every compile: these bound what a hostile or huge tree can cost.
MAX_PROJECT_MODULES = 500
MAX_PROJECT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Project:
    """The project's modules (dotted name -> source text) and the compiled file's own dotted name."""

    modules: Mapping[str, str] = field(default_factory=dict)
    module: str = ""  # the compiled file's dotted name; '' when it is not part of a project

    def package_of(self, module: str) -> str:
        """The package a module's relative imports start from (a package's `__init__` is its own)."""
        if self.is_package(module):
            return module
        return module.rpartition(".")[0]

    def is_package(self, module: str) -> bool:
        return module in self._packages if module else False

    @cached_property
    def _packages(self) -> frozenset[str]:
        """Every dotted name some module lies under: asked for on every import the interpreter resolves,
        so computed once (a scan of all modules per question cost ~15% of a 50-module compile)."""
        return frozenset(m.rsplit(".", k)[0] for m in self.modules for k in range(1, m.count(".") + 1))

    def resolve_from(self, importer: str, level: int, target: str) -> str:
        """The dotted name `from <level dots><target> import ...` in `importer` refers to."""
        if level == 0:
            return target
        base = self.package_of(importer).split(".") if importer else []
        base = base[: len(base) - (level - 1)] if level > 1 else base
        return ".".join([*[b for b in base if b], *([target] if target else [])])

    def find(self, importer: str, dotted: str) -> tuple[str, list[str]] | None:
        """The project module a dotted name starts with (from the root, then beside the importer), and the
        attribute path after it; None when no project module matches."""
        candidates = [("", dotted)]
        package = self.package_of(importer) if importer else ""
        if package:
            candidates.append((package, f"{package}.{dotted}"))
        for base, name in candidates:
            parts = name.split(".")
            # beside the importer, the name's own first part must be a module there (`pkg.openai`, not `pkg`)
            least = len(base.split(".")) + 1 if base else 1
            for i in range(len(parts), least - 1, -1):
                module = ".".join(parts[:i])
                if module in self.modules:
                    return module, parts[i:]
        return None


def module_name(relative_path: str) -> str | None:
    """`pkg/prompts.py` -> `pkg.prompts`, `pkg/__init__.py` -> `pkg`; None for a path that is no module."""
    path = PurePosixPath(relative_path)
    if path.suffix != ".py" or any(not p.isidentifier() for p in path.with_suffix("").parts):
        return None
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or None
