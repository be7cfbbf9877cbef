"""Strings from a server never carry terminal escapes past the daemon's edge.

A real HTTP server on 127.0.0.1 answers /metrics with a model name, /version with a version and
/v1/models with an id that carry ESC[2J (clear screen), OSC 52 (write the clipboard), OSC 8 (a
link), BEL, CR and a bidi override; the real `Poller` polls it and runs its health check, and the
test reads what was kept, stored in SQLite and would be published: none of it may contain a control
character, and each place the escapes were shows the visible placeholder instead.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from daemon.config import parse_config
from daemon.models import Instance, InstanceState
from daemon.poller import Poller
from daemon.store import AsyncStore, Store
from daemon.text import PLACEHOLDER, clean, clean_json, is_clean
from tests.daemon.helpers import VLLM_IDLE, MetricsServer, Response, text_response

CLEAR = "\x1b[2J"
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4K\x07"  # OSC 52: "rm -rf ~" into the clipboard
LINK = "\x1b]8;;http://evil.example\x1b\\"
HOSTILE_MODEL = f"tiny{CLEAR}{CLIPBOARD}m\x07o\rd{LINK}el\u202e"
HOSTILE_VERSION = f"0.32.0{CLEAR}\x1b[31mred\x1b[0m{CLIPBOARD}\x07\r"


def hostile_vllm(n: int, path: str) -> Response:
    if path == "/metrics":
        return text_response(VLLM_IDLE.replace('model_name="tiny"', f'model_name="{HOSTILE_MODEL}"'))
    if path == "/version":
        return text_response(json.dumps({"version": HOSTILE_VERSION}))
    if path == "/v1/models":
        return text_response(json.dumps({"data": [{"id": HOSTILE_MODEL}]}))
    if path == "/health":
        return text_response("")
    return text_response("nope", status=404)


@pytest.mark.parametrize(
    "raw", [CLEAR, CLIPBOARD, LINK, "\x07", "\r", "\n", "\u202e", "\x9b31m", "\x1bc", "\x7f"]
)
def test_clean_removes_each_sequence_and_shows_a_placeholder(raw: str) -> None:
    out = clean(f"a{raw}b")
    assert is_clean(out) and out.startswith("a") and out.endswith("b") and PLACEHOLDER in out
    assert "\x1b" not in out and "]52" not in out and "[2J" not in out


def test_clean_bounds_length_and_nested_json() -> None:
    assert len(clean("x" * 10_000)) == 256
    deep: object = "leaf"
    for _ in range(50):
        deep = {"k\x1b[2J": [deep]}
    cleaned = clean_json(deep)
    assert "\x1b" not in json.dumps(cleaned)
    assert len(clean_json(list(range(10_000)))) == 256


async def test_hostile_model_name_and_version_are_cleaned_before_storage(tmp_path: Path) -> None:
    with MetricsServer(hostile_vllm) as server:
        config = parse_config(
            f'[[targets]]\nname = "evil"\nurl = "{server.url}"\nengine = "vllm"\ntimeout_s = 2\n'
        )
        store = AsyncStore(Store(f"sqlite:///{tmp_path / 'db.sqlite'}"))
        poller = Poller(config, store)
        target = poller.targets["evil"]
        try:
            assert await poller.poll_target(target)
            await poller.check_health_if_due(target)
            await poller.flush()
        finally:
            await poller.aclose()
        status = poller.status["evil"]
        assert status.state == InstanceState.UP
        models = status.info["models"]
        health = status.health
        assert health is not None and health.version is not None
        for text in (*models, health.version, *health.models):
            assert is_clean(text), repr(text)
            assert PLACEHOLDER in text and "[2J" not in text and "52;c" not in text
        assert models[0].startswith("tiny") and health.version.startswith("0.32.0")
        # What is stored (and published: the bus carries the same row) is the cleaned text.
        rows = store.store.all(Instance, Instance.name == "evil")
        row = rows[0] if rows else None
        assert row is not None and row.model is not None and is_clean(row.model)
        assert "\x1b" not in json.dumps(row.info) and "\\u001b" not in json.dumps(row.info)
        store.close()


def test_a_state_reason_is_cleaned_whatever_built_it() -> None:
    # Today's reasons quote responses through repr(); the poller cleans every reason anyway, so a
    # future message that interpolates server text raw cannot reach a terminal.
    config = parse_config('[[targets]]\nname = "evil"\nurl = "http://127.0.0.1:9"\n')
    poller = Poller(config, None)
    status = poller.status["evil"]
    poller._set_state(status, InstanceState.STALE, f"HTTP 500: {CLEAR}{CLIPBOARD}gone\r" + "x" * 5000)
    assert status.reason is not None and is_clean(status.reason) and "\x1b" not in status.reason
    assert status.reason.startswith("HTTP 500: " + PLACEHOLDER) and len(status.reason) <= 512


def test_detail_of_a_failed_health_check_is_cleaned() -> None:
    def failing(n: int, path: str) -> Response:
        return text_response(f"down {CLEAR}{CLIPBOARD}", status=503)

    async def run() -> None:
        import httpx

        from daemon.health import check_health

        with MetricsServer(failing) as server:
            config = parse_config(f'[[targets]]\nname = "evil"\nurl = "{server.url}"\nengine = "vllm"\n')
            async with httpx.AsyncClient() as client:
                view = await check_health(client, config.targets[0], "vllm")
        details = [c.detail for c in view.checks]
        assert details and all(is_clean(d) and "\x1b" not in d for d in details)
        assert any(PLACEHOLDER in d for d in details)

    asyncio.run(run())
