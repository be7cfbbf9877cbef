"""Recompile agent files when they change: used by `charter-tui watch` and by the daemon.

`AgentWatcher.events()` is an async iterator of `CompileEvent`s: first one per file, then one per
real change. Changes are debounced by watchfiles, files whose content hash did not change are not
recompiled (editors touch files without changing them), and a file that stops parsing keeps its last
good result while the event reports the error as `file:line:col: message`.

No file can stop the loop: compilation runs in a child process with a time budget
(`daemon.compile_worker`), so the event loop (a UI on it, SIGTERM handling) never waits on it. A file
over the size cap, or one whose compile runs past the budget, is reported as `too complex: <reason>`
and keeps its last good result, while the other files go on compiling. Only a caller-supplied
`compile_fn` or token counter (which cannot cross to another process) runs in a thread instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchfiles import Change, awatch

from compiler.api import CompileOptions, compile_source, decode_source
from compiler.errors import CompileError
from compiler.model import MAX_SOURCE_BYTES, CompileResult
from compiler.project import Project
from compiler.tokens import TokenCounter
from daemon.compile_worker import CompileLimits, CompileTooComplex, CompileWorker, size_reason
from daemon.project_files import ProjectFiles, project_root

RESCAN_AFTER_MS = 300  # the first wake-up after the OS watch is in place rescans every file once


@dataclass(frozen=True)
class PatternChange:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)

    def describe(self) -> str:
        return (
            " ".join([f"+{a}" for a in self.added] + [f"-{r}" for r in self.removed]) or "patterns unchanged"
        )


@dataclass(frozen=True)
class CompileEvent:
    path: Path
    result: CompileResult | None  # the current result; the last good one when `error` is set
    error: str | None = None  # `file:line:col: message` when the current content does not compile
    changed_patterns: PatternChange = field(default_factory=PatternChange)
    compile_ms: float = 0.0
    initial: bool = False

    @property
    def stale(self) -> bool:
        return self.error is not None and self.result is not None

    def summary(self) -> str:
        stamp = time.strftime("%H:%M:%S")
        if self.error is not None:
            kept = (
                f"; keeping last good result ({len(self.result.calls)} calls)"
                if self.result is not None
                else ""
            )
            return f"{stamp} {self.error}{kept}"
        assert self.result is not None
        r = self.result
        share = next((b.hit_share for b in r.plan.block_shares if b.engine == r.plan.engine), 0.0)
        kinds = ",".join(sorted(r.pattern_kinds())) or "no patterns"
        change = "" if self.initial else f"; {self.changed_patterns.describe()}"
        return (
            f"{stamp} {self.path}: {len(r.calls)} calls, {len(r.edges)} edges, {kinds}, "
            f"hit share {share:.0%}, {self.compile_ms:.0f} ms{change}"
        )


def _pattern_keys(result: CompileResult | None) -> set[str]:
    if result is None:
        return set()
    return {f"{f.kind.value}[{','.join(f.calls)}]" for f in result.patterns}


def diff_patterns(old: CompileResult | None, new: CompileResult | None) -> PatternChange:
    a, b = _pattern_keys(old), _pattern_keys(new)
    return PatternChange(added=sorted(b - a), removed=sorted(a - b))


def compile_bytes(
    path: Path,
    data: bytes,
    options: CompileOptions | None = None,
    token_counter: TokenCounter | None = None,
    max_bytes: int = MAX_SOURCE_BYTES,
    project: Project | None = None,
) -> CompileResult:
    """Compile one file's content. Raises CompileError (file:line:col) for input that cannot be read."""
    if len(data) > max_bytes:
        raise CompileError(
            str(path),
            1,
            1,
            f"file is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit for agent files",
        )
    source = decode_source(data, str(path))
    return compile_source(source, str(path), token_counter, options=options, project=project)


def compile_file(
    path: Path,
    options: CompileOptions | None = None,
    token_counter: TokenCounter | None = None,
    max_bytes: int = MAX_SOURCE_BYTES,
    project: Project | None = None,
) -> CompileResult:
    """Read and compile one file (with `project`, following imports of its modules). Raises CompileError
    or OSError."""
    size = path.stat().st_size
    if size > max_bytes:  # refuse before reading a huge file into memory
        raise CompileError(
            str(path),
            1,
            1,
            f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit for agent files",
        )
    return compile_bytes(path, path.read_bytes(), options, token_counter, max_bytes, project)


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, directories as the `.py` files under them (sorted)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*.py") if q.is_file()))
        else:
            out.append(p)
    return out


def read_capped(path: Path, cap: int) -> bytes:
    """A regular file's bytes, refusing more than `cap` (CompileTooComplex) and anything but a file.

    Opened non-blocking and checked with fstat, so a FIFO or device named `*.py` cannot block the read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"not a regular file ({stat.filemode(info.st_mode)})")
        if info.st_size > cap:  # refuse before reading it into memory
            raise CompileTooComplex(size_reason(info.st_size, cap))
        data = fh.read(cap + 1)  # the file may have grown since fstat
    if len(data) > cap:
        raise CompileTooComplex(size_reason(len(data), cap))
    return data


class AgentWatcher:
    def __init__(
        self,
        paths: list[Path],
        options: CompileOptions | None = None,
        token_counter: TokenCounter | None = None,
        debounce_ms: int = 200,
        compile_fn: Callable[[Path, bytes], CompileResult] | None = None,
        limits: CompileLimits | None = None,
    ) -> None:
        self.roots = [p.resolve() for p in paths]
        self.options = options
        self.token_counter = token_counter
        self.debounce_ms = debounce_ms
        self.limits = limits or CompileLimits()
        self.worker = CompileWorker(self.limits)
        self._compile_fn = compile_fn  # tests inject one; otherwise the time-boxed worker compiles
        self.hashes: dict[Path, str] = {}
        self.results: dict[Path, CompileResult] = {}
        self.projects: dict[Path, ProjectFiles] = {}  # by project root

    def _project_files(self, path: Path) -> ProjectFiles:
        root = project_root(path)
        if root not in self.projects:
            self.projects[root] = ProjectFiles(root)
        return self.projects[root]

    async def _compile(self, path: Path, data: bytes) -> CompileResult:
        if self._compile_fn is not None:
            return await asyncio.to_thread(self._compile_fn, path, data)
        # Read now: a module the agent imports may have changed since the last compile.
        project = await asyncio.to_thread(self._project_files(path).project_for, path)
        return await self.worker.compile(path, data, self.options, self.token_counter, project)

    def dependents(self, path: Path) -> list[Path]:
        """The compiled files that read `path`'s module, which a save of `path` must recompile."""
        files = self._project_files(path)
        module = files.module_of(path)
        if module is None:
            return []
        return sorted(
            p
            for p, r in self.results.items()
            if p != path and module in r.modules and project_root(p) == files.root
        )

    def close(self) -> None:
        """Stop the compile worker process (also done when `events()` ends)."""
        self.worker.close()

    def _wanted(self, path: Path) -> bool:
        if path.suffix != ".py":
            return False
        return any(path == r or (r.is_dir() and r in path.parents) for r in self.roots)

    async def _compile_path(self, path: Path, initial: bool, force: bool = False) -> CompileEvent | None:
        try:
            data = await asyncio.to_thread(read_capped, path, self.limits.max_file_bytes)
        except CompileTooComplex as exc:
            self.hashes.pop(path, None)  # whatever it held before, it is not that content any more
            return CompileEvent(path, self.results.get(path), f"{path}: too complex: {exc}", initial=initial)
        except OSError as exc:
            return CompileEvent(path, self.results.get(path), f"{path}: cannot read: {exc.strerror or exc}")
        digest = hashlib.sha256(data).hexdigest()
        if not initial and not force and self.hashes.get(path) == digest:
            return None  # touched, not changed
        self.hashes[path] = digest
        started = time.perf_counter()
        try:
            result = await self._compile(path, data)
        except CompileTooComplex as exc:
            return CompileEvent(path, self.results.get(path), f"{path}: too complex: {exc}", initial=initial)
        except CompileError as exc:
            return CompileEvent(path, self.results.get(path), str(exc), initial=initial)
        except OSError as exc:
            return CompileEvent(path, self.results.get(path), f"{path}: cannot read: {exc.strerror or exc}")
        elapsed = (time.perf_counter() - started) * 1000
        change = diff_patterns(self.results.get(path), result)
        self.results[path] = result
        return CompileEvent(path, result, None, change, elapsed, initial)

    async def events(self, stop_event: asyncio.Event | None = None) -> AsyncIterator[CompileEvent]:
        try:
            async for event in self._events(stop_event):
                yield event
        finally:
            self.close()  # ended, stopped or cancelled: no compile outlives the watcher

    async def _events(self, stop_event: asyncio.Event | None) -> AsyncIterator[CompileEvent]:
        for path in expand(self.roots):
            event = await self._compile_path(path.resolve(), initial=True)
            if event is not None:
                yield event
        # Watch directories, not files: editors replace files by rename, which ends a watch on the file.
        dirs = sorted({r if r.is_dir() else r.parent for r in self.roots})
        if not dirs:
            # Nothing to watch (e.g. every configured path is missing): idle until stopped.
            if stop_event is not None:
                await stop_event.wait()
            return
        rescanned = False
        async for changes in awatch(
            *dirs,
            debounce=self.debounce_ms,
            stop_event=stop_event,
            watch_filter=lambda _c, p: self._wanted(Path(p)),
            step=20,
            rust_timeout=RESCAN_AFTER_MS,
            yield_on_timeout=True,
        ):
            if not rescanned:
                # The OS watch starts only now: pick up saves made while the first compile ran.
                rescanned = True
                for path in expand(self.roots):
                    initial = path.resolve() not in self.hashes
                    async for event in self._compile_with_dependents(path.resolve(), initial):
                        yield event
            for path in sorted({Path(p) for _, p in changes}):
                if not path.exists():
                    if any(c == Change.deleted and Path(p) == path for c, p in changes):
                        yield CompileEvent(path, self.results.get(path), f"{path}: deleted")
                    continue
                async for event in self._compile_with_dependents(path, initial=False):
                    yield event

    async def _compile_with_dependents(self, path: Path, initial: bool) -> AsyncIterator[CompileEvent]:
        """`path`'s event if its content changed, then, when it compiled, its dependents' (a saved
        prompts.py changes every agent that imports it; one that no longer parses leaves them as they
        were, their last good results standing)."""
        event = await self._compile_path(path, initial=initial)
        if event is None:
            return
        yield event
        if initial or event.error is not None:
            return
        for dependent in self.dependents(path):
            again = await self._compile_path(dependent, initial=False, force=True)
            if again is not None:
                yield again
