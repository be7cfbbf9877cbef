"""The TUI attached to a daemon's bus through a real Mosquitto broker and the daemon's MQTT bridge.

Only the data source differs from the in-process app: the same fixtures go in on the daemon's
bus, cross the broker as JSON, and the same widgets show them; `a` `y` sends the command back.
"""

from __future__ import annotations

import asyncio

import pytest

from charter_tui.app import CharterApp
from charter_tui.commands.tui import connect_config
from charter_tui.mqtt_source import MqttSource
from daemon.auth import CommandSigner, CommandVerifier
from daemon.bus import Bus
from daemon.config import AuthConfig, IdentityConfig, MqttConfig
from daemon.errors import UserError
from daemon.mqtt_bridge import MqttBridge
from tests.tui import fixtures as fx
from tests.tui.helpers import settle, table_rows, wait_until

pytestmark = pytest.mark.mqtt


def test_connect_names_the_broker_as_a_url_or_host_and_port() -> None:
    base = MqttConfig(username="from-config", password="pw")

    def broker(value: str) -> tuple[str, int, str | None, bool]:
        c = connect_config(value, base)
        return c.host, c.port, c.username, c.uses_tls

    assert broker("broker.lan") == ("broker.lan", 1883, "from-config", False)
    assert broker("10.0.0.5:2883") == ("10.0.0.5", 2883, "from-config", False)
    assert broker("mqtt://ops@broker.lan:1884") == ("broker.lan", 1884, "ops", False)
    assert broker("mqtts://broker.lan") == ("broker.lan", 8883, "from-config", True)
    assert connect_config("mqtt://ops@broker.lan", base).password == "pw"  # the password stays the config's
    for bad, why in (
        ("host:http", "port"),
        ("mqtt://ops:hunter2@broker.lan", "password_file"),
        ("http://broker.lan", "scheme"),
        ("mqtt://broker.lan:99999", "port"),
        ("mqtt://broker.lan/charter", "no path"),
    ):
        with pytest.raises(UserError, match=why):
            connect_config(bad, base)


async def test_remote_tui_over_mqtt_shows_daemon_data_and_sends_commands(
    mosquitto_broker, make_loaded, tmp_path
) -> None:
    cfg = MqttConfig(enabled=True, host=mosquitto_broker.host, port=mosquitto_broker.port)
    key = tmp_path / "alice.key"
    key.write_text("alice-secret-0123456789abcdef")
    key.chmod(0o600)
    auth = AuthConfig(
        identities=[IdentityConfig(name="alice", secret_file=str(key), actions=["approve"])],
        client={"identity": "alice", "secret_file": str(key)},
    )
    daemon_bus = Bus()
    bridge = MqttBridge(
        daemon_bus, cfg, "box-1", client_id="daemon-under-test", verifier=CommandVerifier(auth, "box-1")
    )
    commands = daemon_bus.subscribe("charter/v1/command/#")
    stop = asyncio.Event()
    bridge_task = asyncio.create_task(bridge.run(stop))
    source = MqttSource(cfg, signer=CommandSigner.from_config(auth))
    app = CharterApp(make_loaded(), source, clock=fx.fixed_clock)
    try:
        await asyncio.wait_for(bridge.connected.wait(), 10)
        async with app.run_test(size=(120, 30)) as pilot:
            await asyncio.wait_for(source.connected.wait(), 10)
            await asyncio.sleep(0.3)  # the subscription is live once connected; give the broker a beat
            fx.publish_all(daemon_bus, with_samples=True)
            await wait_until(
                app,
                pilot,
                lambda: "vllm-a" in table_rows(app, "#instances"),
                timeout=15,
                what="instances over MQTT",
            )
            row = table_rows(app, "#instances")["vllm-a"]
            assert row[1:4] == ["● UP", "vllm", "tiny-llama"] and row[4].split()[0] == "162ms"
            await pilot.press("5")
            await wait_until(
                app, pilot, lambda: list(table_rows(app, "#queue")) == ["11", "10"], what="rollouts"
            )
            await pilot.press("a")
            await settle(app, pilot)
            await pilot.press("y")
            event = await asyncio.wait_for(commands.get(), 10)
            assert event.topic == "charter/v1/command/rollout/approve"
            assert event.payload.identity == "alice", "signed by [auth.client] and verified by the daemon"
            command = event.payload.command
            assert (command.action, command.id) == ("approve", 11)
            assert command.request_id.startswith(source.client_id)
            await pilot.press("2")
            await wait_until(
                app,
                pilot,
                lambda: "c4 write_report:41" in str(app.screen.query_one("#dag").content),
                what="the DAG from a CompileRecord sent as JSON",
            )
            await pilot.press("3")
            research = f"{fx.AGENT_PATH}@http://127.0.0.1:8000"
            await wait_until(
                app,
                pilot,
                lambda: research in table_rows(app, "#cache-bench"),
                what="a bench run sent as JSON",
            )
            assert table_rows(app, "#cache-bench")[research][3:8] == ["31%", "88%", "92%", "96%", "1.42×"]
    finally:
        stop.set()
        await asyncio.wait_for(bridge_task, 10)


async def test_source_refuses_commands_while_away_and_reconnects_when_the_broker_returns(tmp_path) -> None:
    """Started before any broker: not connected, a command is refused with the reason (not
    dropped). The broker comes up: it connects and delivers a daemon's event. The broker goes and
    comes back on the same port: the same `events()` stream carries on."""
    from daemon.models import Instance
    from daemon.mqtt_bridge import encode
    from testkit.mosquitto import start_mosquitto
    from testkit.ports import free_port

    import aiomqtt

    port = free_port()
    cfg = MqttConfig(enabled=True, host="127.0.0.1", port=port)
    source = MqttSource(cfg, signer=CommandSigner("t", b"t-secret-0123456789"))
    received: asyncio.Queue = asyncio.Queue()

    async def consume() -> None:
        async for event in source.events():
            received.put_nowait(event)

    async def publish_instance(name: str) -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"fake-daemon-{name}") as daemon:
            await daemon.publish(
                f"{cfg.topic_prefix}/box-1/instance/{name}", encode(Instance(name=name, url="http://x:1"))
            )

    consumer = asyncio.create_task(consume())
    try:
        await asyncio.sleep(1.0)
        assert not source.connected.is_set()
        with pytest.raises(RuntimeError, match=f"not connected to 127.0.0.1:{port}"):
            await source.send_command(1, "approve", actor="t")
        for round_ in ("first", "second"):
            with start_mosquitto(port=port, keep_dir=tmp_path / round_):
                await asyncio.wait_for(source.connected.wait(), 20)
                await publish_instance(round_)
                event = await asyncio.wait_for(received.get(), 10)
                assert event.topic == f"charter/v1/instance/{round_}" and isinstance(event.payload, Instance)
                assert event.daemon == "box-1"
            await asyncio.sleep(0.5)
            assert not source.connected.is_set(), "the broker went: disconnected, retrying"
        assert not consumer.done(), "the stream survives the broker going away"
    finally:
        source.close()
        await asyncio.wait_for(consumer, 10)
