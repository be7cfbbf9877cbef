"""The sample project data/agents/projects/support_desk in the TUI: saving its prompts module (which no
watched agent's own content changes) redraws the DAG and calls of the agent that imports it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.widgets import DataTable

from charter_tui.compose import embedded_app
from daemon.config import load_config
from tests.tui.helpers import static_text, table_rows, wait_until, write_config

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "agents" / "projects" / "support_desk"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "desk"
    shutil.copytree(SAMPLE, root / "support_desk")
    (root / "pyproject.toml").write_text("")  # the project root: `.prompts` resolves in support_desk
    config = write_config(tmp_path, f'[watch]\npaths = ["{root / "support_desk"}"]\n')
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", f"sqlite:///{tmp_path / 'tui.db'}")
    return root / "support_desk", load_config(config)


async def test_saving_the_prompts_module_redraws_the_agent_that_imports_it(project) -> None:
    package, config = project
    agent = str(package / "agent.py")
    app = embedded_app(config)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.daemon.ready.wait()
        await pilot.press("2")
        await wait_until(
            app, pilot, lambda: table_rows(app, "#files").get(agent, ["", ""])[1] == "✓ ok", what="compile"
        )
        files = app.screen.query_one("#files", DataTable)
        files.move_cursor(row=files.get_row_index(agent))
        await wait_until(app, pilot, lambda: "c1 handle" in static_text(app, "#dag"), what="the agent's DAG")
        assert table_rows(app, "#files")[agent][2] == "2", "two chains, both reading prompts.py's templates"
        before = table_rows(app, "#calls")["c1"][2]

        prompts = package / "prompts.py"
        longer = prompts.read_text().replace(
            '"day. Keep a friendly, plain tone and never blame the customer."',
            '"day. Keep a friendly, plain tone and never blame the customer. " * 4',
        )
        assert longer != prompts.read_text()
        prompts.write_text(longer)
        await wait_until(
            app,
            pilot,
            lambda: table_rows(app, "#calls").get("c1", ["", "", before])[2] != before,
            timeout=60,
            what="the prompt of c1 re-read from the saved prompts.py",
        )
        after = table_rows(app, "#calls")["c1"][2]
        # the policy (one implicitly joined literal, ~90 tokens) now four times over: ~270 tokens more
        assert int(after) >= int(before) + 250
        assert "c1 handle" in static_text(app, "#dag") and "c2 handle" in static_text(app, "#dag")
        await pilot.press("q")
