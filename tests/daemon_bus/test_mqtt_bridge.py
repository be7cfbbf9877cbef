"""The bus <-> MQTT bridge against a real private Mosquitto broker."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import json

import aiomqtt
import pytest

from daemon.auth import CommandSigner, CommandVerifier
from daemon.bus import Bus, topic
from daemon.config import AuthConfig, IdentityConfig, MqttConfig
from daemon.contract import AuthorizedCommand, RolloutCommand
from daemon.models import Instance, InstanceState, MetricSample
from daemon.mqtt_bridge import MqttBridge
from daemon.exporter import DaemonMetrics
from prometheus_client import CollectorRegistry, generate_latest
from testkit.mosquitto import start_mosquitto
from testkit.ports import free_port

pytestmark = pytest.mark.mqtt


async def _next_message(client: aiomqtt.Client, timeout: float = 5.0) -> aiomqtt.Message:
    """The next message other than the daemon's retained online status (its own test is below)."""

    async def first() -> aiomqtt.Message:
        async for message in client.messages:
            if not str(message.topic).endswith("/daemon/online"):
                return message
        raise AssertionError("subscription ended")

    return await asyncio.wait_for(first(), timeout)


async def test_events_go_out_and_commands_come_in_with_auth(tmp_path) -> None:
    key = tmp_path / "ops.key"
    key.write_text("ops-secret-0123456789abcdef")
    key.chmod(0o600)
    auth = AuthConfig(identities=[IdentityConfig(name="ops", secret_file=str(key), actions=["approve"])])
    with start_mosquitto(users={"charter": "s3cret"}, keep_dir=tmp_path / "broker") as broker:
        bus = Bus()
        commands = bus.subscribe(topic("command", "#"))
        cfg = MqttConfig(
            enabled=True,
            host=broker.host,
            port=broker.port,
            topic_prefix="site/charter/v1",
            username="charter",
            password="s3cret",
        )
        bridge = MqttBridge(bus, cfg, "box-1", verifier=CommandVerifier(auth, "box-1"))
        stop = asyncio.Event()
        task = asyncio.create_task(bridge.run(stop))
        try:
            await asyncio.wait_for(bridge.connected.wait(), 10)
            async with aiomqtt.Client(
                broker.host, broker.port, username="charter", password="s3cret"
            ) as remote:
                await remote.subscribe(
                    "site/charter/v1/+/+/+"
                )  # events, not the command/rollout/<action> level
                bus.publish(topic("sample", "vllm-a"), MetricSample(instance="vllm-a", ts=1.0, waiting=7))
                message = await _next_message(remote)
                assert str(message.topic) == "site/charter/v1/box-1/sample/vllm-a"
                body = json.loads(message.payload)
                assert body["instance"] == "vllm-a" and body["waiting"] == 7

                signer = CommandSigner("ops", b"ops-secret-0123456789abcdef")
                approve = RolloutCommand(action="approve", id=3, comment="go")
                # Signed for another daemon, on this daemon's topic: refused (a replay across the fleet).
                await remote.publish(
                    "site/charter/v1/box-1/command/rollout/approve", signer.encode(approve, "box-2"), qos=1
                )
                # On another daemon's topic: not this bridge's business at all (not even received).
                await remote.publish(
                    "site/charter/v1/box-2/command/rollout/approve", signer.encode(approve, "box-2"), qos=1
                )
                await remote.publish(
                    "site/charter/v1/box-1/command/rollout/approve", signer.encode(approve, "box-1"), qos=1
                )
                event = await asyncio.wait_for(commands.get(), 5)
                assert event.topic == "charter/v1/command/rollout/approve"
                assert isinstance(event.payload, AuthorizedCommand)
                assert (event.payload.command, event.payload.identity, event.payload.via) == (
                    approve,
                    "ops",
                    "mqtt",
                )

                # A command is not echoed back out; garbage is refused without killing the bridge.
                await remote.publish("site/charter/v1/box-1/command/rollout/approve", b"\xff not json", qos=1)
                bus.publish(topic("rollout", "3"), {"id": 3, "state": "APPROVED"})
                message = await _next_message(remote)
                assert str(message.topic) == "site/charter/v1/box-1/rollout/3"
            assert (bridge.received, bridge.refused) == (1, 2)
            assert bridge.published == 2, "the sample and the rollout went out; the command was not echoed"
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def test_wrong_password_is_retried_not_fatal(tmp_path) -> None:
    with start_mosquitto(users={"charter": "right"}, keep_dir=tmp_path) as broker:
        bus = Bus()
        cfg = MqttConfig(
            enabled=True, host=broker.host, port=broker.port, username="charter", password="wrong"
        )
        bridge = MqttBridge(bus, cfg, "box-1")
        stop = asyncio.Event()
        task = asyncio.create_task(bridge.run(stop))
        await asyncio.sleep(1.5)
        assert not bridge.connected.is_set() and not task.done(), "keeps retrying in the background"
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_reconnects_when_the_broker_comes_up_later(tmp_path) -> None:
    port = free_port()
    bus = Bus()
    bridge = MqttBridge(bus, MqttConfig(enabled=True, host="127.0.0.1", port=port), "box-1")
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        await asyncio.sleep(1.0)
        assert not bridge.connected.is_set()
        with start_mosquitto(port=port, keep_dir=tmp_path):
            await asyncio.wait_for(bridge.connected.wait(), 20)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_events_published_while_the_broker_is_away_wait_bounded_and_state_is_retained(tmp_path) -> None:
    """Issue 17 items 1 and 3: the broker is away while 15 targets change state with an outbox of 10. The
    oldest 5 are dropped and counted; on reconnect the 10 newest go out retained (QoS 1), so a UI that
    subscribes only afterwards receives exactly them at once; a sample (a stream) is not retained."""
    port = free_port()
    bus = Bus()
    bridge = MqttBridge(bus, MqttConfig(enabled=True, host="127.0.0.1", port=port, outbox_events=10), "box-1")
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        await asyncio.sleep(0.5)
        assert not bridge.connected.is_set()
        for i in range(15):
            bus.publish(
                topic("instance", f"t{i}"),
                Instance(name=f"t{i}", url="http://127.0.0.1:9", state=InstanceState.UP),
            )
        assert bridge.dropped == 5
        metrics = DaemonMetrics(registry=CollectorRegistry())
        metrics.watch_mqtt_outbox(lambda: bridge.dropped)  # as the service wires it
        assert b"charter_mqtt_outbox_dropped_events 5.0" in generate_latest(metrics.registry)
        with start_mosquitto(port=port, keep_dir=tmp_path):
            await asyncio.wait_for(bridge.connected.wait(), 30)

            async def published(n: int) -> None:
                while bridge.published < n:
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(published(10), 10)
            bus.publish(topic("sample", "t14"), MetricSample(instance="t14", ts=1.0, waiting=3))
            await asyncio.wait_for(published(11), 10)
            assert bridge.dropped == 5
            async with aiomqtt.Client("127.0.0.1", port) as late:  # joins after everything was published
                await late.subscribe("charter/v1/#")
                seen: dict[str, bool] = {}
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        async for message in late.messages:
                            seen[str(message.topic)] = bool(message.retain)
        assert seen == {
            **{f"charter/v1/box-1/instance/t{i}": True for i in range(5, 15)},
            "charter/v1/box-1/daemon/online": True,
        }
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


LIVENESS_SCRIPT = """
import asyncio, sys
from daemon.bus import Bus
from daemon.config import MqttConfig
from daemon.mqtt_bridge import MqttBridge
from daemon.exporter import DaemonMetrics
from prometheus_client import CollectorRegistry, generate_latest

async def main() -> None:
    bridge = MqttBridge(Bus(), MqttConfig(enabled=True, host="127.0.0.1", port=int(sys.argv[1])), "box-1")
    task = asyncio.create_task(bridge.run(asyncio.Event()))
    await bridge.connected.wait()
    print("connected", flush=True)
    await task

asyncio.run(main())
"""


async def _liveness(port: int) -> dict[str, object]:
    async with aiomqtt.Client("127.0.0.1", port) as late:
        await late.subscribe("charter/v1/box-1/daemon/online")
        return json.loads(bytes((await _any_message(late)).payload))


async def _any_message(client: aiomqtt.Client) -> aiomqtt.Message:
    async def first() -> aiomqtt.Message:
        async for message in client.messages:
            return message
        raise AssertionError("subscription ended")

    return await asyncio.wait_for(first(), 10)


async def test_liveness_is_retained_said_on_a_clean_stop_and_sent_by_the_broker_when_the_daemon_dies(
    tmp_path,
) -> None:
    """Issue 17 item 1: `daemon/online` is retained; a clean stop says "stopped"; a SIGKILLed daemon's
    connection dies without a goodbye and the broker publishes its Last Will, "connection lost"."""
    with start_mosquitto(keep_dir=tmp_path) as broker:
        bus = Bus()
        bridge = MqttBridge(bus, MqttConfig(enabled=True, host=broker.host, port=broker.port), "box-1")
        stop = asyncio.Event()
        task = asyncio.create_task(bridge.run(stop))
        await asyncio.wait_for(bridge.connected.wait(), 30)
        await asyncio.sleep(0.2)
        assert await _liveness(broker.port) == {"online": True, "reason": "connected"}
        stop.set()
        await asyncio.wait_for(task, 10)
        assert await _liveness(broker.port) == {"online": False, "reason": "stopped"}

        daemon = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LIVENESS_SCRIPT, str(broker.port), stdout=asyncio.subprocess.PIPE
        )
        try:
            assert daemon.stdout is not None
            assert (await asyncio.wait_for(daemon.stdout.readline(), 60)).strip() == b"connected"
            await asyncio.sleep(0.2)
            assert await _liveness(broker.port) == {"online": True, "reason": "connected"}
        finally:
            daemon.kill()
            await daemon.wait()
        deadline = asyncio.get_running_loop().time() + 10
        while (state := await _liveness(broker.port))[
            "online"
        ] and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        assert state == {"online": False, "reason": "connection lost"}
