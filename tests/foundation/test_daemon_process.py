"""`charter-tui daemon` as a real process: writes its database, logs to a file, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from testkit.ports import free_port

CHARTER = Path(sys.executable).parent / "charter-tui"


def test_daemon_writes_database_and_stops_within_5s_of_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    log = tmp_path / "daemon.log"
    config = tmp_path / "c.toml"
    metrics_port = free_port()
    config.write_text(
        f'[daemon]\nmetrics_port = {metrics_port}\n[[targets]]\nname = "nowhere"\nurl = "http://127.0.0.1:9"\n'
    )
    env = {**os.environ, "CHARTER_TUI_DATABASE_URL": f"sqlite:///{db}", "CHARTER_TUI_LOG_FILE": str(log)}
    proc = subprocess.Popen(
        [str(CHARTER), "--config", str(config), "daemon"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (log.exists() and "daemon running" in log.read_text()):
            time.sleep(0.2)
        assert "daemon running" in log.read_text()
        # Its own metrics, on loopback: the refused target is DOWN, the rollout gauge is exported.
        deadline = time.monotonic() + 15
        page = ""
        while time.monotonic() < deadline and 'state="DOWN"} 1.0' not in page:
            page = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
            time.sleep(0.3)
        assert 'charter_target_state{state="DOWN",target="nowhere"} 1.0' in page
        assert "# TYPE charter_rollouts gauge" in page
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert "daemon stopped" in log.read_text()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name, url FROM instance").fetchall() == [
            ("nowhere", "http://127.0.0.1:9")
        ]
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_event ORDER BY id")]
    assert actions[0] == "start" and actions[-1] == "stop", "the shutdown path ran to the end"
    stderr = proc.stderr.read() if proc.stderr else ""
    assert "Traceback" not in stderr
