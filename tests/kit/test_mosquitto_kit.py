"""The private Mosquitto broker of the test kit: real round trips with aiomqtt, auth and ACL, cleanup."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import aiomqtt
import pytest

from testkit.mosquitto import MosquittoBroker, MosquittoMissing, find_mosquitto, start_mosquitto

pytestmark = pytest.mark.mqtt


async def round_trip(
    broker: MosquittoBroker, topic: str, payload: bytes, **client_args: object
) -> aiomqtt.Message:
    async with aiomqtt.Client(broker.host, broker.port, **client_args) as client:
        await client.subscribe(topic, qos=1)
        await client.publish(topic, payload, qos=1)
        async with asyncio.timeout(10):
            async for message in client.messages:
                return message
    raise AssertionError("the message stream ended without a message")


async def test_message_round_trips_through_the_private_broker(mosquitto_broker: MosquittoBroker) -> None:
    topic = f"charter/test/{uuid.uuid4().hex}"
    message = await round_trip(mosquitto_broker, topic, b'{"rollout": 7, "state": "CANARY"}')
    assert message.topic.matches(topic)
    assert message.payload == b'{"rollout": 7, "state": "CANARY"}'
    assert message.qos == 1
    # It is our broker, not the machine's shared one on 1883.
    assert mosquitto_broker.port != 1883
    assert "New client connected" in mosquitto_broker.log_tail(200)


async def test_retained_message_reaches_a_later_subscriber(mosquitto_broker: MosquittoBroker) -> None:
    topic = f"charter/status/{uuid.uuid4().hex}"
    async with aiomqtt.Client(mosquitto_broker.host, mosquitto_broker.port) as publisher:
        await publisher.publish(topic, b"online", qos=1, retain=True)
    async with aiomqtt.Client(mosquitto_broker.host, mosquitto_broker.port) as subscriber:
        await subscriber.subscribe(topic)
        async with asyncio.timeout(10):
            message = await anext(aiter(subscriber.messages))
    assert message.payload == b"online" and message.retain


async def test_broker_with_users_and_acl(tmp_path: Path) -> None:
    acl = "user charter\ntopic readwrite charter/#\n"
    with start_mosquitto(users={"charter": "s3cret"}, acl=acl, keep_dir=tmp_path) as broker:
        assert "allow_anonymous false" in broker.config_path.read_text()
        message = await round_trip(broker, "charter/acl", b"allowed", username="charter", password="s3cret")
        assert message.payload == b"allowed"

        for credentials in ({}, {"username": "charter", "password": "wrong"}):
            with pytest.raises(aiomqtt.MqttError):
                await round_trip(broker, "charter/acl", b"x", **credentials)

        # Outside its ACL the user's publish is dropped by the broker: nothing arrives within a second.
        async with aiomqtt.Client(broker.host, broker.port, username="charter", password="s3cret") as client:
            await client.subscribe("other/#")
            await client.publish("other/topic", b"forbidden", qos=1)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1):
                    await anext(aiter(client.messages))
    # The password file holds hashes written by mosquitto_passwd, never the plain password.
    assert "s3cret" not in (tmp_path / "passwd").read_text()


def test_stop_frees_the_port(tmp_path: Path) -> None:
    with start_mosquitto(keep_dir=tmp_path) as broker:
        port, process = broker.port, broker.process
        with socket.create_connection((broker.host, port), timeout=2):
            pass
    assert process.returncode is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_missing_binary_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(MosquittoMissing, match="apt-get install mosquitto"):
        find_mosquitto(tmp_path / "no-such-mosquitto")
    with pytest.raises(MosquittoMissing, match="no-such-mosquitto"):
        with start_mosquitto(binary=tmp_path / "no-such-mosquitto"):
            pass
