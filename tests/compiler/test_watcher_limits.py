"""The watcher's limits on real files (issue 13): no agent file can stop the daemon.

A file whose compile runs past `compile_timeout_s`, or larger than `max_file_bytes`, is reported as
`too complex: <reason>` and keeps its last good result, while the other files in the folder still
compile; the compile runs in a child process that is killed, so stopping never waits for it. The
last test runs `charter-tui daemon` on a folder with such a file and stops it with SIGTERM.

The pathological file is nested loops over constant lists: even with the compiler's caps it spends
the interpreter's whole statement budget (about 15 s for 12 lines on this machine, and the budget
grows with the file's length), so it stands for any input that is slow to analyse. No assert here
is on elapsed time: the tests wait on events with generous timeouts, and "killed" is read from the
child's exit status (-SIGKILL), which a compile that finished on its own would not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compiler.api import compile_source
from compiler.errors import CompileError
from daemon.compile_worker import CompileLimits, CompileWorker
from daemon.config import WatchConfig
from daemon.watcher import AgentWatcher, CompileEvent
from tests.compiler.conftest import AGENTS

WAIT = 120.0  # generous: a fresh worker imports the compiler first, on a loaded 2-core machine
CHARTER = Path(sys.executable).parent / "charter-tui"


def pathological(functions: int = 1) -> str:
    items = "[" + ", ".join(f"'i{i}'" for i in range(32)) + "]"
    out = ["import litellm", ""]
    for f in range(functions):
        out.append(f"def agent{f}(q):")
        pad = "    "
        for i in range(6):
            out.append(f"{pad}for a{i} in {items}:")
            pad += "    "
        out.append(f"{pad}q = q + 't0' + 't1' + 't2' + 't3' + 't4' + 't5' + 't6'")
        out += ["    return litellm.completion(model='m', messages=[{'role': 'user', 'content': q}])", ""]
    return "\n".join(out) + "\n"


async def _next(events, timeout: float = WAIT) -> CompileEvent:
    return await asyncio.wait_for(events.__anext__(), timeout)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "agents"
    d.mkdir()
    shutil.copy(AGENTS / "document_processor.py", d / "good.py")
    return d


async def test_slow_file_is_too_complex_good_one_compiles_and_a_fix_is_picked_up(folder: Path):
    bad = folder / "bad.py"
    bad.write_text(pathological())
    stop = asyncio.Event()
    watcher = AgentWatcher([folder], debounce_ms=50, limits=CompileLimits(timeout_s=2.0))
    events = watcher.events(stop)
    try:
        first, second = await _next(events), await _next(events)
        assert (first.path.name, second.path.name) == ("bad.py", "good.py")  # sorted: bad compiles first
        assert first.error == f"{bad}: too complex: compiling took longer than 2 s (watch.compile_timeout_s)"
        assert first.result is None
        assert watcher.worker.restarts == 1  # the worker was killed, and a fresh one compiled good.py
        assert second.error is None and len(second.result.calls) == 3

        # The bad file is replaced by a good one: it compiles.
        bad.write_text((folder / "good.py").read_text())
        fixed = await _next(events)
        assert fixed.path == bad.resolve() and fixed.error is None and len(fixed.result.calls) == 3

        # Made pathological again: too complex, and the last good result is kept.
        bad.write_text(pathological() + "# again\n")
        again = await _next(events)
        assert again.error is not None and "too complex: compiling took longer than 2 s" in again.error
        assert again.stale and again.result is fixed.result
        assert "keeping last good result (3 calls)" in again.summary()
    finally:
        stop.set()
        await events.aclose()


async def test_file_over_the_size_cap_is_too_complex_without_being_read(folder: Path):
    big = folder / "big.py"
    big.write_text("x = 1\n" * 1000)  # 6,000 bytes; good.py is 3,800
    stop = asyncio.Event()
    watcher = AgentWatcher([folder], debounce_ms=50, limits=CompileLimits(max_file_bytes=5000))
    events = watcher.events(stop)
    try:
        first, second = await _next(events), await _next(events)
        assert (
            first.error
            == f"{big}: too complex: file is 6,000 bytes, over the 5,000-byte cap (watch.max_file_bytes)"
        )
        assert second.path.name == "good.py" and second.error is None
        big.write_text("x = 1\n")  # under the cap now
        shrunk = await _next(events)
        assert shrunk.path == big.resolve() and shrunk.error is None
    finally:
        stop.set()
        await events.aclose()


async def test_fifo_named_like_an_agent_does_not_block_the_watcher(folder: Path):
    fifo = folder / "pipe.py"
    os.mkfifo(fifo)
    stop = asyncio.Event()
    watcher = AgentWatcher([fifo, folder / "good.py"], debounce_ms=50)
    events = watcher.events(stop)
    try:
        first, second = await _next(events), await _next(events)
        assert first.path == fifo.resolve() and first.error is not None
        assert first.error.startswith(f"{fifo.resolve()}: cannot read: not a regular file (p")
        assert second.error is None
    finally:
        stop.set()
        await events.aclose()


async def test_stopping_mid_compile_kills_the_worker(folder: Path):
    """A cancelled watcher (daemon shutdown) leaves no compile running: the child is SIGKILLed."""
    (folder / "good.py").unlink()
    (folder / "bad.py").write_text(pathological(300))  # minutes of work, with a budget of 10 minutes
    watcher = AgentWatcher(
        [folder], debounce_ms=50, limits=CompileLimits(timeout_s=600, max_file_bytes=8 << 20)
    )
    events = watcher.events(asyncio.Event())
    task = asyncio.ensure_future(events.__anext__())
    deadline = time.monotonic() + WAIT
    while not watcher.worker._ready and time.monotonic() < deadline:  # the compile has been sent
        await asyncio.sleep(0.05)
    proc = watcher.worker._proc
    assert proc is not None and proc.poll() is None
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    await events.aclose()
    assert proc.wait(timeout=WAIT) == -signal.SIGKILL  # killed, not finished
    assert watcher.worker._proc is None


async def test_worker_reports_compile_errors_and_survives_them():
    worker = CompileWorker(CompileLimits(timeout_s=60))
    try:
        with pytest.raises(CompileError) as info:
            await worker.compile(Path("x.py"), b"def (:\n")
        assert str(info.value).startswith("x.py:1:")
        with pytest.raises(CompileError) as info:
            await worker.compile(Path("y.py"), b'p = "caf\xe9"\n')
        assert str(info.value) == "y.py:1:9: not valid utf-8 text (byte 0xe9)"
        ok = await worker.compile(Path("z.py"), (AGENTS / "document_processor.py").read_bytes())
        assert ok == compile_source((AGENTS / "document_processor.py").read_text(), "z.py")
        assert worker.restarts == 0  # errors are answers, not crashes
    finally:
        worker.close()


@pytest.mark.parametrize(
    "bad",
    [
        {"compile_timeout_s": 0},
        {"compile_timeout_s": float("inf")},
        {"compile_timeout_s": float("nan")},
        {"max_file_bytes": 0},
    ],
)
def test_config_refuses_limits_that_do_not_limit(bad: dict):
    with pytest.raises(ValueError):
        WatchConfig(**bad)
    key, value = next(iter(bad.items()))
    with pytest.raises(ValueError):
        CompileLimits(**{"timeout_s" if key == "compile_timeout_s" else key: value})


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out |= {int(c) for c in (task / "children").read_text().split()}
    return out


def test_daemon_watching_a_pathological_file_stops_promptly_on_sigterm(tmp_path: Path):
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "bad.py").write_text(pathological(300))
    log = tmp_path / "daemon.log"
    config = tmp_path / "c.toml"
    config.write_text(f'[watch]\npaths = ["{agents}"]\ncompile_timeout_s = 600\nmax_file_bytes = 8388608\n')
    env = {
        **os.environ,
        "CHARTER_TUI_DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}",
        "CHARTER_TUI_LOG_FILE": str(log),
    }
    proc = subprocess.Popen(
        [str(CHARTER), "--config", str(config), "daemon"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT
        while (
            time.monotonic() < deadline
            and proc.poll() is None
            and not (log.exists() and "daemon running" in log.read_text())
        ):
            time.sleep(0.2)
        assert proc.poll() is None and "daemon running" in log.read_text()
        time.sleep(2.0)  # the watcher starts compiling right after "daemon running": let it get going
        workers = _children(proc.pid)
        assert workers, "the compile runs in a worker process"
        proc.send_signal(signal.SIGTERM)
        # The compile alone takes minutes: returning at all, within the stop grace, shows it was not waited for.
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "daemon stopped" in log.read_text()
    for pid in workers:  # the compile worker did not outlive the daemon
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_a_server_tokenizer_travels_to_the_worker_without_its_connection() -> None:
    """Pickled for the compile worker: base URL, model and timeout; a fresh client on the other side."""
    import pickle

    from daemon.tokenize import VllmTokenCounter

    counter = VllmTokenCounter("http://127.0.0.1:9/v1", model="tiny", timeout=3.0)
    copy = pickle.loads(pickle.dumps(counter))
    try:
        assert (copy.base, copy.model, copy.timeout, copy.name) == (
            "http://127.0.0.1:9",
            "tiny",
            3.0,
            "vLLM /tokenize (tiny at http://127.0.0.1:9)",
        )
        assert copy._client is not counter._client and not copy._client.is_closed
    finally:
        counter.close()
        copy.close()


@pytest.mark.vllm
async def test_watch_with_a_server_tokenizer_is_time_boxed_too(folder: Path, vllm_server) -> None:
    """`charter-tui watch --target` once compiled in a thread with no bound: a pathological file then
    held a core for good. Now the counter goes to the worker: the slow file is killed at its budget,
    and the good one is counted by the real server's tokenizer inside the worker."""
    from daemon.tokenize import VllmTokenCounter

    bad = folder / "bad.py"
    bad.write_text(pathological())
    counter = VllmTokenCounter(vllm_server.url)
    stop = asyncio.Event()
    watcher = AgentWatcher(
        [folder], token_counter=counter, debounce_ms=50, limits=CompileLimits(timeout_s=2.0)
    )
    events = watcher.events(stop)
    try:
        first, second = await _next(events), await _next(events)
        assert first.path.name == "bad.py" and first.error is not None
        assert "too complex: compiling took longer than 2 s" in first.error
        assert watcher.worker.restarts == 1
        assert second.error is None and second.result is not None
        assert second.result.estimates.tokens_estimated is False
        assert (
            second.result.estimates.tokenizer == f"vLLM /tokenize ({vllm_server.model} at {vllm_server.url})"
        )
    finally:
        stop.set()
        await events.aclose()
        counter.close()
