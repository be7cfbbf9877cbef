"""Outgoing webhooks (issue 16 item 4, first half), received by a real HTTP server on loopback.

The receiver is Python's own `http.server` in a thread: it answers 503 to the first requests it is told
to refuse, then 200, and keeps every request's headers and body. The rollouts are real: the knob command
actuator's rollouts driven by the real manager, whose state changes reach the notifier over the bus.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from daemon.config import ConfigError, WebhookConfig, parse_config
from daemon.models import Rollout
from daemon.rollouts import commands as cmd
from daemon.rollouts.manager import RolloutManager
from daemon.rollouts.model import RolloutState as S
from daemon.store import Store
from daemon.webhooks import Delivery, WebhookNotifier, payload
from tests.rollouts.helpers import drive, knob_config

SECRET = b"0123456789abcdef0123456789abcdef"


class Receiver:
    def __init__(self, refuse_first: int = 0, status: int = 503) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.refuse_left, self.refuse_status = refuse_first, status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(({k: v for k, v in self.headers.items()}, body))
                if receiver.refuse_left > 0:
                    receiver.refuse_left -= 1
                    self.send_response(receiver.refuse_status)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN-in-the-path"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(refuse_first=2) as r:
        yield r


def rollout(state: str, title: str = "Bigger batches") -> Rollout:
    return Rollout(id=7, state=state, title=title, targets=["vllm-a"], updated_at=10.0**10)


async def test_a_refused_delivery_is_retried_with_backoff_until_the_receiver_takes_it(
    receiver: Receiver,
) -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    hook = WebhookConfig(url=receiver.url, max_attempts=5)
    notifier = WebhookNotifier([hook], bus=None, secrets={0: SECRET}, sleep=sleep)  # type: ignore[arg-type]
    body = json.dumps(payload("approval_needed", rollout("PENDING_APPROVAL"), "slack")).encode()
    async with httpx.AsyncClient() as client:
        assert await notifier.deliver(client, Delivery(0, "approval_needed", body))
    assert len(receiver.requests) == 3 and waits == [1.0, 2.0]  # 503, 503, then 200
    headers, got = receiver.requests[-1]
    assert got == body and headers["X-Charter-Event"] == "approval_needed"
    text = json.loads(got)["text"]
    assert text.startswith("charter-tui: rollout #7 waits for approval: Bigger batches (vllm-a)")
    assert "charter-tui rollouts approve 7" in text
    # The receiver can check it came from us, over this very body and timestamp.
    mac = hmac.new(SECRET, headers["X-Charter-Timestamp"].encode() + b"." + got, hashlib.sha256).hexdigest()
    assert headers["X-Charter-Signature"] == f"sha256={mac}"


async def test_a_4xx_is_not_retried_and_the_url_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    with Receiver(refuse_first=1, status=404) as receiver:
        hook = WebhookConfig(url=receiver.url, max_attempts=5)
        notifier = WebhookNotifier([hook], bus=None)  # type: ignore[arg-type]
        with caplog.at_level(logging.INFO, logger="daemon.webhooks"):
            async with httpx.AsyncClient() as client:
                assert not await notifier.deliver(client, Delivery(0, "failed", b"{}"))
        assert len(receiver.requests) == 1 and notifier.failed == 1
    assert "webhook 0: failed not delivered after 1 attempt(s): HTTP 404" in caplog.text
    assert "T0KEN" not in caplog.text


async def test_an_unreachable_receiver_is_given_up_after_max_attempts() -> None:
    async def sleep(s: float) -> None:
        pass

    hook = WebhookConfig(url="http://127.0.0.1:9/hook", max_attempts=3)  # nothing listens on port 9
    notifier = WebhookNotifier([hook], bus=None, sleep=sleep)  # type: ignore[arg-type]
    async with httpx.AsyncClient() as client:
        assert not await notifier.deliver(client, Delivery(0, "failed", b"{}"))
    assert notifier.failed == 1


async def test_a_rollout_tells_the_team_when_it_waits_and_when_it_completes(
    receiver: Receiver, tmp_path: Path, sqlite_url: str
) -> None:
    receiver.refuse_left = 0
    store = Store(sqlite_url)
    config, _ = knob_config(tmp_path, ["a"], canary_window_s=0.5, min_samples=1)
    hooks = [
        WebhookConfig(url=receiver.url),
        WebhookConfig(url=receiver.url, format="json", events=["promoted", "rolled_back"]),
    ]
    manager = RolloutManager(config, store, state_dir=tmp_path)
    notifier = WebhookNotifier(hooks, manager.bus, clock=lambda: 0.0)
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    await asyncio.sleep(0.05)  # subscribed
    try:
        row = cmd.propose(
            manager.repo, config, targets=["a"], changes=[{"param": "batch", "value": "16"}], actor="al"
        )
        await manager.step_all()  # publishes the new proposal
        cmd.apply_command(manager.repo, "approve", row.id, actor="bob")
        final = await drive(manager, row.id, {S.COMPLETED, S.PAUSED, S.ROLLED_BACK})
        if final.state == "PAUSED":  # no traffic samples: undecided, a person accepts it
            cmd.apply_command(manager.repo, "resume", row.id, actor="bob")
        await drive(manager, row.id, {S.COMPLETED})
        await manager.step_all()
        for _ in range(100):
            if len(receiver.requests) >= 3:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        store.close()
    events = [(h["X-Charter-Event"], json.loads(b)) for h, b in receiver.requests]
    assert [e for e, _ in events] == ["approval_needed", "promoted", "promoted"], events
    assert events[0][1]["text"].startswith(f"charter-tui: rollout #{row.id} waits for approval")
    structured = events[2][1] if "event" in events[2][1] else events[1][1]
    assert structured["event"] == "promoted" and structured["rollout"] == row.id
    assert structured["state"] == "COMPLETED" and structured["targets"] == ["a"]


def test_history_is_not_announced_again_after_a_restart() -> None:
    notifier = WebhookNotifier([WebhookConfig(url="http://127.0.0.1:9/h")], bus=None, clock=lambda: 2000.0)  # type: ignore[arg-type]
    old = Rollout(id=3, state="COMPLETED", title="t", targets=["a"], updated_at=1000.0)
    notifier.observe(old)
    assert notifier.queue.empty()
    notifier.observe(old.model_copy(update={"state": "ROLLING_BACK", "updated_at": 2001.0}))
    notifier.observe(old.model_copy(update={"state": "ROLLED_BACK", "updated_at": 2002.0}))
    assert notifier.queue.qsize() == 1 and notifier.queue.get_nowait().event == "rolled_back"


def test_a_flood_is_dropped_and_counted_not_queued_without_bound() -> None:
    notifier = WebhookNotifier([WebhookConfig(url="http://127.0.0.1:9/h")], bus=None, clock=lambda: 0.0)  # type: ignore[arg-type]
    for i in range(300):
        notifier.observe(
            Rollout(id=i + 1, state="PENDING_APPROVAL", title="t", targets=["a"], updated_at=1.0)
        )
    assert notifier.queue.qsize() == 256 and notifier.dropped == 44


def test_hostile_titles_are_cleaned_and_config_mistakes_named() -> None:
    body = payload("failed", rollout("FAILED", title="x\x1b]52;c;ZXZpbA==\x07y"), "slack")
    assert "\x1b" not in body["text"] and "\x07" not in body["text"]
    with pytest.raises(ConfigError, match="at most one of secret_file and secret_env"):
        parse_config('[[webhooks]]\nurl = "https://hooks.example/x"\nsecret_file = "/a"\nsecret_env = "B"\n')
    with pytest.raises(ConfigError, match="webhooks"):
        parse_config('[[webhooks]]\nurl = "ftp://hooks.example/x"\n')
    with pytest.raises(ConfigError, match="events"):
        parse_config('[[webhooks]]\nurl = "https://hooks.example/x"\nevents = ["deployed"]\n')


@pytest.mark.parametrize("readonly", [False, True])
async def test_the_acting_daemon_tells_of_a_cli_proposal_and_a_read_only_one_stays_silent(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, readonly: bool
) -> None:
    """The whole path: `charter-tui rollouts propose` writes the store, the daemon publishes the new rollout,
    its notifier posts. A read-only daemon (the TUI's beside an acting one) must not post a second time."""
    from charter_tui.cli import main
    from daemon.config import load_config
    from daemon.service import DaemonService
    from tests.rollouts.helpers import KNOB

    receiver.refuse_left = 0
    secret = tmp_path / "hook.secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    state = tmp_path / "knob.json"
    state.write_text('{"batch": "8"}')
    config = tmp_path / "c.toml"
    config.write_text(
        "[daemon]\nmetrics_port = 0\n"
        f'[[webhooks]]\nurl = "{receiver.url}"\nsecret_file = "{secret}"\n'
        '[[targets]]\nname = "knob"\nurl = "http://127.0.0.1:9"\n'
        f'[rollouts.commands.knob]\napply = ["python3", "{KNOB}", "{state}", "set", "{{param}}", "{{value}}"]\n'
        f'read = ["python3", "{KNOB}", "{state}", "get", "{{param}}"]\n'
        '[rollouts.commands.knob.params.batch]\ntype = "int"\nmin = 1\nmax = 512\n'
    )
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", f"sqlite:///{tmp_path / 'd.db'}")
    service = DaemonService(load_config(config), readonly=readonly)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.ready.wait(), 30)
        await asyncio.sleep(0.5)
        assert (
            main(["--config", str(config), "rollouts", "propose", "--target", "knob", "--set", "batch=16"])
            == 0
        )
        for _ in range(100):
            if receiver.requests:
                break
            await asyncio.sleep(0.05)
        if readonly:
            await asyncio.sleep(2.0)  # several rollout steps: nothing may arrive
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    if readonly:
        assert receiver.requests == []
        return
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert headers["X-Charter-Event"] == "approval_needed"
    mac = hmac.new(SECRET, headers["X-Charter-Timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Charter-Signature"] == f"sha256={mac}"


def test_config_show_masks_a_webhook_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from charter_tui.cli import main

    config = tmp_path / "c.toml"
    config.write_text('[[webhooks]]\nurl = "https://hooks.slack.com/services/T000/B000/SeCrEtToKeN"\n')
    assert main(["--config", str(config), "config", "show"]) == 0
    out = capsys.readouterr().out
    assert 'url = "***"' in out and "SeCrEtToKeN" not in out
