"""Compile agent files in a child process with a time budget: no agent file can stop the daemon.

The compiler is pure CPU work on hostile input; a thread running it cannot be stopped, pins a core
and keeps `asyncio.run` from returning (it waits for its executor's threads), so SIGTERM would wait
for the compile. Here the compile runs in one long-lived child process; the event loop waits on the
child's pipe (`loop.add_reader`, no thread), and a compile that runs past its budget, or a caller
that is cancelled (shutdown), kills the child. The next compile starts a fresh one.

The child is a fresh interpreter (`subprocess`, not `fork`: a fork of a process with threads can
deadlock; and not multiprocessing's `spawn`, which re-runs the parent's main script) started with
the parent's `sys.path`, talking over a socket pair with `multiprocessing.connection` framing. It
ignores SIGINT (Ctrl-C reaches the whole process group; the parent decides) and exits when the
parent's end of the socket closes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from compiler.errors import CompileError

if TYPE_CHECKING:
    from compiler.api import CompileOptions
    from compiler.model import CompileResult
    from compiler.project import Project
    from compiler.tokens import TokenCounter

DEFAULT_COMPILE_TIMEOUT_S = 10.0
DEFAULT_MAX_FILE_BYTES = 1024 * 1024
START_TIMEOUT_S = 60.0  # importing the compiler in a fresh process, on a loaded machine


class CompileTooComplex(Exception):
    """The file is over the size cap, or compiling it ran past the time budget; `str()` is the reason."""


@dataclass(frozen=True)
class CompileLimits:
    timeout_s: float = DEFAULT_COMPILE_TIMEOUT_S
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    def __post_init__(self) -> None:
        # NaN and inf are not budgets: a compile could then run forever.
        if not (0 < self.timeout_s < float("inf")):
            raise ValueError(
                f"compile timeout must be a finite number of seconds > 0, not {self.timeout_s!r}"
            )
        if self.max_file_bytes <= 0:
            raise ValueError(f"max file bytes must be > 0, not {self.max_file_bytes!r}")


_CHILD = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from daemon.compile_worker import child_main; child_main(int(sys.argv[2]))"
)


def child_main(fd: int) -> None:
    """Entry point of the child process: serve compiles on the socket `fd` until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _serve(Connection(fd))


def _serve(conn: Connection) -> None:
    """The child: compile each (path, data, options) it receives and send back the outcome."""
    from compiler.api import compile_source, decode_source  # the import cost is paid once, before "ready"

    conn.send(("ready", None))
    while True:
        try:
            path, data, options, token_counter, project = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        try:
            source = decode_source(data, path)
            result = compile_source(source, path, token_counter, options=options, project=project)
            outcome: tuple[str, Any] = ("ok", result)
        except CompileError as exc:
            outcome = ("compile_error", (exc.path, exc.line, exc.col, exc.message))
        except RecursionError:
            outcome = ("too_complex", "nested too deeply to analyse")
        except MemoryError:
            outcome = ("too_complex", "ran out of memory")
        except Exception as exc:  # a compiler bug must not look like a hang: say what it was
            outcome = ("failed", f"{type(exc).__name__}: {exc}"[:500])
        try:
            conn.send(outcome)
        except (EOFError, OSError):
            return


class CompileWorker:
    """One child process compiling one file at a time, killed and replaced when over its budget."""

    def __init__(self, limits: CompileLimits | None = None) -> None:
        self.limits = limits or CompileLimits()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._lock = asyncio.Lock()
        self.restarts = 0  # children killed mid-compile (over budget, cancelled, died): for tests and logs

    async def compile(
        self,
        path: Path,
        data: bytes,
        options: CompileOptions | None = None,
        token_counter: TokenCounter | None = None,
        project: Project | None = None,
    ) -> CompileResult:
        """The result, or CompileError (unreadable source) or CompileTooComplex (cap, budget, crash).

        `token_counter` goes to the child pickled (a server's tokenizer: `daemon.tokenize`), so a
        compile that counts through a server is under the same budget as one that estimates.
        """
        if len(data) > self.limits.max_file_bytes:
            raise CompileTooComplex(size_reason(len(data), self.limits.max_file_bytes))
        async with self._lock:
            conn = await self._started()
            done = False
            try:
                conn.send((str(path), data, options, token_counter, project))
                try:
                    await self._readable(conn, self.limits.timeout_s)
                except TimeoutError:
                    raise CompileTooComplex(
                        f"compiling took longer than {self.limits.timeout_s:g} s (watch.compile_timeout_s)"
                    ) from None
                kind, payload = conn.recv()
                done = True
            except (EOFError, OSError):
                code = self._proc.poll() if self._proc is not None else None
                raise CompileTooComplex(f"the compile worker died (exit code {code})") from None
            finally:
                if not done:  # over budget, cancelled (shutdown) or dead: never leave a child computing
                    self.restarts += 1
                    self._kill()
        if kind == "ok":
            return cast("CompileResult", payload)  # the child answers ("ok", CompileResult)
        if kind == "compile_error":
            raise CompileError(*payload)
        if kind == "too_complex":
            raise CompileTooComplex(payload)
        raise CompileTooComplex(f"the compiler failed: {payload}")

    async def _started(self) -> Connection:
        if self._proc is not None and self._conn is not None and self._proc.poll() is None and self._ready:
            return self._conn
        self._kill()
        mine, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, json.dumps(sys.path), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError as exc:
            mine.close()
            raise CompileTooComplex(f"the compile worker did not start: {exc}") from None
        finally:
            theirs.close()
        parent = Connection(mine.detach())
        self._proc, self._conn = proc, parent
        try:
            await self._readable(parent, START_TIMEOUT_S)
            kind, _ = parent.recv()
        except (TimeoutError, EOFError, OSError) as exc:
            self._kill()
            raise CompileTooComplex(f"the compile worker did not start: {type(exc).__name__}") from None
        except BaseException:
            self._kill()
            raise
        self._ready = kind == "ready"
        return parent

    @staticmethod
    async def _readable(conn: Connection, timeout: float) -> None:
        """Wait until the child has written to the pipe, without a thread (so nothing outlives a cancel)."""
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        fd = conn.fileno()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await asyncio.wait_for(ready, timeout)
        finally:
            loop.remove_reader(fd)

    def _kill(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self._ready = False
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=5)  # SIGKILL cannot be ignored: this returns at once (and reaps it)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        """Stop the child (idempotent)."""
        self._kill()


def size_reason(size: int, cap: int) -> str:
    return f"file is {size:,} bytes, over the {cap:,}-byte cap (watch.max_file_bytes)"
