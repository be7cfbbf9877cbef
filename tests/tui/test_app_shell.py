"""The TUI starts with the daemon embedded, shows targets and watched files, and quits on q."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from textual.widgets import DataTable

from charter_tui.app import CharterApp
from daemon.config import load_config


@pytest.fixture
def loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "c.toml"
    config.write_text(
        '[daemon]\nmetrics_port = 0\n[watch]\npaths = ["data/agents"]\n'
        '[[targets]]\nname = "vllm-a"\nurl = "http://127.0.0.1:9"\nengine = "vllm"\n'
    )
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", f"sqlite:///{tmp_path / 'tui.db'}")
    return load_config(config)


async def test_shows_targets_and_watched_files_then_quits_on_q(loaded, tmp_path: Path) -> None:
    app = CharterApp(loaded)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.daemon.ready.wait()
        targets = app.query_one("#targets", DataTable)
        assert targets.get_row("vllm-a") == ["vllm-a", "vllm", "http://127.0.0.1:9"]
        watched = app.query_one("#watched", DataTable)
        assert watched.get_row("data/agents") == ["data/agents"]
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    with sqlite3.connect(tmp_path / "tui.db") as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_event ORDER BY id")]
    assert actions == ["start", "stop"], "the embedded daemon started and shut down cleanly"
