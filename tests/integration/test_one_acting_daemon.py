"""One acting daemon per database (daemon/single.py): a second `charter-tui daemon` is refused with the
first one's pid, the TUI's embedded daemon beside it only watches, and the lock goes with the process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import load_config
from daemon.service import DaemonService
from daemon.single import AnotherDaemon, DaemonLock


def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[storage]\nurl = "sqlite:///{tmp_path / "charter.db"}"\n[daemon]\nmetrics_port = 0\n')
    return path


def test_a_second_lock_on_the_same_database_names_the_holder_and_another_database_is_free(
    tmp_path: Path,
) -> None:
    first = DaemonLock(tmp_path, "sqlite:////x/charter.db")
    first.acquire()
    try:
        with pytest.raises(
            AnotherDaemon, match=rf"another charter-tui daemon \(pid {os.getpid()}\) already acts"
        ):
            DaemonLock(tmp_path, "sqlite:////x/charter.db").acquire()
        other = DaemonLock(tmp_path, "sqlite:////y/charter.db")
        other.acquire()
        other.release()
    finally:
        first.release()
    again = DaemonLock(tmp_path, "sqlite:////x/charter.db")
    again.acquire()  # released: free again
    again.release()


def test_a_second_daemon_is_refused_and_the_tuis_own_only_watches(tmp_path: Path) -> None:
    loaded = load_config(str(config(tmp_path)))

    async def run() -> None:
        first = DaemonService(loaded)
        stop = asyncio.Event()
        task = asyncio.create_task(first.run(stop))
        await asyncio.wait_for(first.ready.wait(), 30)
        try:
            with pytest.raises(AnotherDaemon, match="already acts on sqlite"):
                await DaemonService(loaded).run(asyncio.Event())
            embedded = DaemonService(loaded, watch_if_taken=True)
            stop2 = asyncio.Event()
            task2 = asyncio.create_task(embedded.run(stop2))
            await asyncio.wait_for(embedded.ready.wait(), 30)
            assert embedded.readonly and embedded.rollouts is not None and embedded.rollouts.readonly
            assert embedded.taken_by is not None and f"pid {os.getpid()}" in embedded.taken_by
            stop2.set()
            await asyncio.wait_for(task2, 30)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        # The first one stopped: its lock went with it.
        third = DaemonService(loaded)
        stop3 = asyncio.Event()
        task3 = asyncio.create_task(third.run(stop3))
        await asyncio.wait_for(third.ready.wait(), 30)
        assert not third.readonly
        stop3.set()
        await asyncio.wait_for(task3, 30)

    asyncio.run(run())


def test_the_cli_daemon_beside_a_running_one_exits_2_with_one_line(tmp_path: Path) -> None:
    path = config(tmp_path)
    loaded = load_config(str(path))
    lock = DaemonLock(loaded.locations.state_dir, loaded.database_url)
    lock.acquire()  # as a running daemon holds it
    try:
        done = subprocess.run(
            [sys.executable, "-m", "charter_tui.cli", "--config", str(path), "daemon"],
            capture_output=True,
            text=True,
            timeout=60,
            env=os.environ.copy(),
        )
    finally:
        lock.release()
    assert done.returncode == 2, done.stderr
    assert "another charter-tui daemon" in done.stderr and "Traceback" not in done.stderr
