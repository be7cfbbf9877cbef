"""Secrets never reach MQTT, and a rollback still restores them: the wired daemon, a real private Mosquitto.

The daemon polls a target whose URL carries a password, logs in to the broker with a password, and
carries out a rollout on a vLLM-launched target (tests/redaction/stub_vllm.py: a real process on a real
port, relaunched by the real actuator) whose `[targets.launch]` has `env = {HF_TOKEN = ...}` and an
`--api-key` in its argv (recorded in the rollout's previous config). A client subscribed to `#` records
every message. No secret's bytes may appear in any of them; the rollout and instance messages that would
have carried them must have gone out (redacted); the in-process feed of the TUI and the stored instance
row must be redacted too; and the rollback must relaunch the server with the real token and argv.
A second test drives the bridge alone: whatever is put on the bus, `encode` lets nothing secret out.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import httpx
import pytest

from daemon.actuators import procs
from daemon.bus import Bus, topic
from daemon.config import MqttConfig, load_config
from daemon.models import Instance, Rollout
from daemon.mqtt_bridge import MqttBridge
from daemon.redaction import MASK, forget_all, remember
from daemon.rollouts import commands as cmd
from daemon.rollouts.repo import RolloutRepo, stage_of
from daemon.service import DaemonService
from daemon.store import Store
from testkit.mosquitto import start_mosquitto
from testkit.ports import free_port, stop_listeners
from tests.rollouts.helpers import events

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

STUB = Path(__file__).with_name("stub_vllm.py")
HF_TOKEN = "hf_SECRETtoken0123456789abcdef"
URL_PASSWORD = "urlpw-SECRET-4242"
BROKER_PASSWORD = "brokerpw-SECRET-7777"
API_KEY = "sk-SECRETkey-31337"
SECRETS = (HF_TOKEN, URL_PASSWORD, BROKER_PASSWORD, API_KEY)


async def wait_for(predicate, timeout: float, what: str, detail=lambda: ""):  # noqa: ANN001, ANN201
    """Poll until `predicate()` is truthy; generous timeouts, since the box is shared and loaded."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s {detail()}")


def applied(repo: RolloutRepo, rollout_id: int) -> bool:
    row = repo.get(rollout_id)
    assert row.state not in ("FAILED", "ROLLED_BACK"), [
        (e.action, e.comment) for e in events(repo.store, rollout_id)
    ]
    progress = stage_of(row).progress.get("stub")
    return progress is not None and progress.status == "applied"


def stub_env(port: int) -> dict:
    with httpx.Client(timeout=5) as client:
        return client.get(f"http://127.0.0.1:{port}/env").json()


@pytest.fixture
def stub_server(tmp_path: Path):  # noqa: ANN201
    """The stub started as a user would have started vLLM: with the token in its environment."""
    port = free_port()
    argv = [sys.executable, str(STUB), "--port", str(port), "--max-num-seqs", "8", "--api-key", API_KEY]
    with open(tmp_path / "stub.log", "wb") as log:
        process = subprocess.Popen(
            argv,
            env={**os.environ, "HF_TOKEN": HF_TOKEN},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        for _ in range(100):
            try:
                stub_env(port)
                break
            except httpx.HTTPError:
                assert process.poll() is None, (tmp_path / "stub.log").read_text()
                time.sleep(0.1)
        yield port, argv
    finally:
        # The actuator's relaunches outlive the daemon (own session): stop whatever serves the port.
        stop_listeners(port, grace_s=5)
        if process.poll() is None:
            procs.stop(process.pid, 5)
        process.wait(5)
        forget_all()


async def test_no_secret_reaches_the_broker_and_rollback_restores_the_real_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_server: tuple[int, list[str]]
) -> None:
    port, argv = stub_server
    db = f"sqlite:///{tmp_path / 'd.db'}"
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", db)
    with start_mosquitto(users={"charter": BROKER_PASSWORD}, keep_dir=tmp_path) as broker:
        config_file = tmp_path / "c.toml"
        config_file.write_text(
            f'[daemon]\nid = "box-1"\nmetrics_port = 0\npoll_interval_s = 0.5\n'
            f'[mqtt]\nenabled = true\nhost = "{broker.host}"\nport = {broker.port}\n'
            f'username = "charter"\npassword = "{BROKER_PASSWORD}"\n'
            f"[rollouts]\nwarmup_s = 0.0\ncanary_window_s = 600.0\nstep_interval_s = 0.2\n"
            f"apply_timeout_s = 60.0\nstop_grace_s = 5.0\n"
            f'[[targets]]\nname = "stub"\nurl = "http://alice:{URL_PASSWORD}@127.0.0.1:{port}"\nengine = "vllm"\n'
            f'[targets.launch]\nargv = {json.dumps(argv)}\nenv = {{ HF_TOKEN = "{HF_TOKEN}" }}\n'
            "allow_root = true\n"  # tests run as root here; the actuator launches as root only on purpose
        )
        loaded = load_config(config_file)
        messages: list[tuple[str, bytes]] = []

        async with aiomqtt.Client(
            broker.host, broker.port, username="charter", password=BROKER_PASSWORD
        ) as remote:
            await remote.subscribe("#")

            async def record() -> None:
                async for message in remote.messages:
                    messages.append((str(message.topic), bytes(message.payload)))

            recorder = asyncio.create_task(record())
            service = DaemonService(loaded)
            in_process = service.bus.subscribe(topic("rollout", "#"))
            stop = asyncio.Event()
            task = asyncio.create_task(service.run(stop))
            try:
                await asyncio.wait_for(service.ready.wait(), 60)
                await wait_for(
                    lambda: any("/instance/stub" in t for t, _ in messages), 60, "an instance message"
                )

                repo = RolloutRepo(Store(db))
                row = cmd.propose(
                    repo,
                    loaded.config,
                    targets=["stub"],
                    changes=[{"param": "max_num_seqs", "value": 16}],
                    actor="alice",
                )
                cmd.apply_command(repo, "approve", row.id, actor="bob")
                await wait_for(
                    lambda: applied(repo, row.id),
                    120,
                    "the canary applied",
                    lambda: [(e.action, e.comment) for e in events(repo.store, row.id)],
                )
                assert stub_env(port) == {"HF_TOKEN": HF_TOKEN, "max_num_seqs": 16}, (
                    "relaunched with the change"
                )

                cmd.apply_command(repo, "rollback", row.id, actor="bob")
                await wait_for(
                    lambda: repo.get(row.id).state == "ROLLED_BACK",
                    120,
                    "the rollback",
                    lambda: [(e.action, e.comment) for e in events(repo.store, row.id)],
                )
                # The rollback relaunched the recorded argv with the recorded, real, environment.
                assert stub_env(port) == {"HF_TOKEN": HF_TOKEN, "max_num_seqs": 8}
                stored = repo.get(row.id).previous_config["stub"]
                assert API_KEY in stored["argv"], (
                    "the stored previous config is the real one, kept for rollbacks"
                )
                assert stored.get("env", {"HF_TOKEN": HF_TOKEN}) == {"HF_TOKEN": HF_TOKEN}
                await wait_for(
                    lambda: any(b'"ROLLED_BACK"' in p and "/rollout/" in t for t, p in messages),
                    30,
                    "the final rollout message",
                )
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
                recorder.cancel()

    assert messages, "the daemon published nothing"
    for topic_, payload in messages:
        for secret in SECRETS:
            assert secret.encode() not in payload, f"{secret!r} went out on {topic_}: {payload[:300]!r}"

    # The messages that would have carried the secrets did go out, redacted.
    rollouts = [json.loads(p) for t, p in messages if t.startswith("charter/v1/box-1/rollout/")]
    recorded = [r["previous_config"]["stub"] for r in rollouts if r.get("previous_config")]
    assert recorded, "a rollout message with the recorded previous config went out"
    assert recorded[-1].get("env", {"HF_TOKEN": MASK}) == {"HF_TOKEN": MASK}
    assert recorded[-1]["argv"][recorded[-1]["argv"].index("--api-key") + 1] == MASK
    instances = [json.loads(p) for t, p in messages if t == "charter/v1/box-1/instance/stub"]
    assert instances and {i["url"] for i in instances} == {f"http://alice:{MASK}@127.0.0.1:{port}"}

    # In-process (the embedded TUI's feed) the rollout is the redacted view too.
    seen: list[Rollout] = []
    while not in_process.queue.empty():
        seen.append(in_process.queue.get_nowait().payload)
    with_config = [r for r in seen if isinstance(r, Rollout) and r.previous_config]
    assert with_config and all(API_KEY not in json.dumps(r.previous_config) for r in with_config)
    assert all(
        r.previous_config["stub"].get("env", {"HF_TOKEN": MASK}) == {"HF_TOKEN": MASK} for r in with_config
    )
    # And the instance row stored for display carries no credentials either.
    assert {i.url for i in Store(db).all(Instance)} == {f"http://alice:{MASK}@127.0.0.1:{port}"}


async def test_the_bridge_redacts_whatever_is_published(tmp_path: Path) -> None:
    """`encode` is the one way out to the broker: a part of the daemon that publishes a raw row or an error
    text quoting a secret (no view of its own) still sends nothing secret."""
    remember([HF_TOKEN])  # as load_config does with the config's secret values
    try:
        with start_mosquitto(keep_dir=tmp_path) as broker:
            bus = Bus()
            bridge = MqttBridge(bus, MqttConfig(enabled=True, host=broker.host, port=broker.port), "box-1")
            stop = asyncio.Event()
            task = asyncio.create_task(bridge.run(stop))
            try:
                await asyncio.wait_for(bridge.connected.wait(), 30)
                async with aiomqtt.Client(broker.host, broker.port) as remote:
                    await remote.subscribe("#")
                    url = f"http://alice:{URL_PASSWORD}@127.0.0.1:1"
                    bus.publish(
                        topic("rollout", "1"),
                        Rollout(
                            id=1,
                            state="CANARY",
                            previous_config={
                                "a": {"env": {"HF_TOKEN": HF_TOKEN}, "argv": ["vllm", "--api-key", API_KEY]}
                            },
                        ),
                    )
                    bus.publish(
                        topic("instance", "a"), Instance(name="a", url=url, state_reason=f"refused ({url})")
                    )
                    bus.publish(
                        topic("daemon", "error"), {"loop": "x", "error": f"login with {HF_TOKEN} failed"}
                    )
                    got: dict[str, bytes] = {}

                    async def three() -> None:
                        async for message in remote.messages:
                            got[str(message.topic)] = bytes(message.payload)
                            if len(got) == 4:  # the three and the daemon's retained online status
                                return

                    await asyncio.wait_for(three(), 30)
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
    finally:
        forget_all()
    for topic_, payload in got.items():
        for secret in SECRETS:
            assert secret.encode() not in payload, f"{secret!r} went out on {topic_}: {payload!r}"
    rollout = json.loads(got["charter/v1/box-1/rollout/1"])
    assert rollout["previous_config"]["a"] == {"env": {"HF_TOKEN": MASK}, "argv": ["vllm", "--api-key", MASK]}
    instance = json.loads(got["charter/v1/box-1/instance/a"])
    assert instance["url"] == f"http://alice:{MASK}@127.0.0.1:1" and instance["name"] == "a"
    assert json.loads(got["charter/v1/box-1/daemon/error"]) == {
        "loop": "x",
        "error": f"login with {MASK} failed",
    }
