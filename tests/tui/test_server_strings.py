"""The TUI over the real embedded daemon polling a hostile server: escapes never reach the screen.

A real HTTP server on 127.0.0.1 serves a vLLM exposition whose model name carries ESC[2J, OSC 52,
BEL, CR and Rich markup. The app's embedded daemon polls it; the Instances table, its panel and the
detail header must show the visible placeholder where the escapes were, the markup literally, and
no control character anywhere on the screen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from charter_tui.compose import embedded_app
from daemon.config import load_config
from daemon.text import PLACEHOLDER, is_clean
from tests.daemon.helpers import VLLM_IDLE, MetricsServer, Response, text_response
from tests.tui.helpers import screen_text, static_text, table_rows, wait_until, write_config

HOSTILE_MODEL = "tiny\x1b[2J\x1b]52;c;cm0gLXJmIH4K\x07[bold red]x[/bold red]\rz"


def hostile(n: int, path: str) -> Response:
    if path == "/metrics":
        return text_response(VLLM_IDLE.replace('model_name="tiny"', f'model_name="{HOSTILE_MODEL}"'))
    return text_response("{}")


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    with MetricsServer(hostile) as s:
        yield s


async def test_hostile_model_name_shows_a_placeholder(
    server: MetricsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", f"sqlite:///{tmp_path / 'live.db'}")
    config = write_config(
        tmp_path,
        f'poll_interval_s = 0.5\n[[targets]]\nname = "evil"\nurl = "{server.url}"\nengine = "vllm"\n',
    )
    app = embedded_app(load_config(config))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(
            app,
            pilot,
            lambda: table_rows(app, "#instances")["evil"][1] == "● UP",
            timeout=60,
            what="the hostile server UP",
        )
        await wait_until(
            app,
            pilot,
            lambda: table_rows(app, "#instances")["evil"][3].startswith("tiny"),
            timeout=60,
            what="its model name",
        )
        model = table_rows(app, "#instances")["evil"][3]
        assert PLACEHOLDER in model and is_clean(model), repr(model)
        shown = screen_text(app)
        assert "[bold red]x[/bold red]" in shown  # markup shown as text, never interpreted
        assert "\x1b[2J" not in shown and "52;c;" not in shown and "\x07" not in shown
        assert PLACEHOLDER in shown
        await pilot.press("enter")
        await wait_until(
            app,
            pilot,
            lambda: static_text(app, "#detail-header").startswith("evil"),
            what="the detail header",
        )
        header = static_text(app, "#detail-header")
        assert PLACEHOLDER in header and "\x1b" not in header and "\r" not in header and "\x07" not in header
        await pilot.press("q")
