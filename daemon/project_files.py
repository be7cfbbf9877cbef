"""Read the modules an agent file imports from its project, for the compiler (which reads no files).

The project root of a file is the nearest directory above it holding `pyproject.toml`, `setup.py`,
`setup.cfg` or `.git`; without one, the file's own directory. Modules are named by their path under
the root (`pkg/prompts.py` -> `pkg.prompts`). Starting from the agent file, its imports are followed
from module to module (only import statements are read: the code is never run), each resolved as
Python would from the root or, script-style, from the importing file's directory; the packages on the
way (`pkg/__init__.py`) come too, for their re-exports. Only what is imported is read, so a large
repository costs what the agent uses; what is read is still bounded (`MAX_PROJECT_MODULES` modules,
`MAX_PROJECT_BYTES` in all, each file under the agent-file cap) and what is left out is said in
`problems`. Files are re-read only when their size or modification time changed, so a watcher can ask
again on every save.
"""

from __future__ import annotations

import ast
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from compiler.api import decode_source
from compiler.errors import CompileError
from compiler.model import MAX_SOURCE_BYTES
from compiler.project import MAX_PROJECT_BYTES, MAX_PROJECT_MODULES, Project, module_name

ROOT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


def project_root(path: Path) -> Path:
    """The nearest directory at or above `path` with a project marker; else `path`'s own directory."""
    start = path if path.is_dir() else path.parent
    for d in (start, *start.parents):
        if any((d / marker).exists() for marker in ROOT_MARKERS):
            return d
    return start


def imported_names(source: str, module: str, is_package: bool) -> list[str]:
    """The dotted names `source`'s import statements may refer to (a module, or a member of one)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # the compile reports it; here it only has no imports to follow
    package = module if is_package else module.rpartition(".")[0]
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            out.extend(f"{base}.{a.name}" if base else a.name for a in node.names)
    return out


@dataclass
class ProjectFiles:
    """The modules an agent imports under one project root, kept current by size and modification time."""

    root: Path
    max_modules: int = MAX_PROJECT_MODULES
    max_bytes: int = MAX_PROJECT_BYTES
    problems: list[str] = field(default_factory=list)  # modules left out, and why
    _cache: dict[Path, tuple[int, int, str]] = field(default_factory=dict)  # path -> size, mtime, text
    _import_cache: dict[tuple[Path, str], tuple[str, list[str]]] = field(default_factory=dict)

    def module_of(self, path: Path) -> str | None:
        try:
            return module_name(path.resolve().relative_to(self.root.resolve()).as_posix())
        except ValueError:
            return None  # not under this root

    def project_for(self, path: Path) -> Project:
        """`path`'s module name and every project module it imports, directly or through others."""
        self.problems = []
        own = self.module_of(path) or ""
        modules: dict[str, str] = {}
        total = 0
        queue: list[tuple[str, Path]] = [(own, path)]
        queued = {own}
        while queue:
            name, file = queue.pop(0)
            text = self._text(file)
            if text is None:
                continue
            if name:
                if len(modules) >= self.max_modules or total + len(text) > self.max_bytes:
                    self.problems.append(
                        f"{file}: not followed (over {self.max_modules} modules or {self.max_bytes} bytes)"
                    )
                    continue
                modules[name] = text
                total += len(text)
            for dotted in self._imports(file, text, name):
                for found, found_file in self._modules_for(name, file, dotted):
                    if found not in queued:
                        queued.add(found)
                        queue.append((found, found_file))
        return Project(modules, own)

    def _imports(self, file: Path, text: str, name: str) -> list[str]:
        """`imported_names`, worked out once per content of the file (parsing is most of a re-read)."""
        key = (file, name)
        cached = self._import_cache.get(key)
        if cached is None or cached[0] is not text:
            cached = self._import_cache[key] = (text, imported_names(text, name, file.name == "__init__.py"))
        return cached[1]

    def _modules_for(self, importer: str, importer_file: Path, dotted: str) -> list[tuple[str, Path]]:
        """The module `dotted` starts with (from the root, else beside the importer) and its packages."""
        package = importer if importer_file.name == "__init__.py" else importer.rpartition(".")[0]
        for base in ["", package] if package else [""]:
            full = f"{base}.{dotted}" if base else dotted
            parts = full.split(".")
            least = len(base.split(".")) + 1 if base else 1
            for i in range(len(parts), least - 1, -1):
                file = self._file_of(parts[:i])
                if file is not None:
                    out = [(".".join(parts[:i]), file)]
                    for j in range(1, i):  # the packages on the way run first and may re-export
                        init = self._file_of(parts[:j])
                        if init is not None and init.name == "__init__.py":
                            out.append((".".join(parts[:j]), init))
                    return out
        return []

    def _file_of(self, parts: list[str]) -> Path | None:
        if not all(p.isidentifier() for p in parts):
            return None
        base = self.root.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def _text(self, path: Path) -> str | None:
        try:
            st = path.stat()
        except OSError as exc:
            self.problems.append(f"{path}: cannot read: {exc.strerror or exc}")
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SOURCE_BYTES:
            self.problems.append(
                f"{path}: not followed (not a regular file, or over the agent-file size cap)"
            )
            return None
        cached = self._cache.get(path)
        if cached is not None and cached[:2] == (st.st_size, st.st_mtime_ns):
            return cached[2]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO named *.py cannot block the read
            with os.fdopen(fd, "rb") as fh:
                data = fh.read(MAX_SOURCE_BYTES + 1)
            text = decode_source(data, str(path))
        except CompileError as exc:
            self.problems.append(str(exc))
            return None
        except OSError as exc:
            self.problems.append(f"{path}: cannot read: {exc.strerror or exc}")
            return None
        self._cache[path] = (st.st_size, st.st_mtime_ns, text)
        return text
