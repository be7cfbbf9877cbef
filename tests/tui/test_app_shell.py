"""The TUI starts with the daemon embedded, shows configured targets and watched files, quits on q."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from charter_tui.compose import embedded_app
from daemon.config import load_config
from tests.tui.helpers import settle, table_rows, write_config


@pytest.fixture
def loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "summarize.py").write_text("def run():\n    return 1\n")
    config = write_config(
        tmp_path,
        f'[watch]\npaths = ["{agents}"]\n'
        '[[targets]]\nname = "vllm-a"\nurl = "http://127.0.0.1:9"\nengine = "vllm"\n',
    )
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", f"sqlite:///{tmp_path / 'tui.db'}")
    return load_config(config)


async def test_shows_targets_and_watched_files_then_quits_on_q(loaded, tmp_path: Path) -> None:
    app = embedded_app(loaded)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.daemon.ready.wait()
        await settle(app, pilot)
        row = table_rows(app, "#instances")["vllm-a"]
        assert row[0] == "vllm-a" and row[2] == "vllm"
        assert row[1] in ("● UNKNOWN", "● DOWN", "● STALE"), "an unreachable target never shows UP"
        await pilot.press("2")
        await settle(app, pilot)
        files = table_rows(app, "#files")
        path = str(tmp_path / "agents" / "summarize.py")
        assert files[path][0] == "summarize.py"
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    with sqlite3.connect(tmp_path / "tui.db") as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_event ORDER BY id")]
    assert actions[0] == "start" and actions[-1] == "stop", (
        "the embedded daemon started and shut down cleanly"
    )
