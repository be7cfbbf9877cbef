"""The bridge over TLS to a real private Mosquitto that requires client certificates ([mqtt] ca_file,
cert_file, key_file), with certificates made here by the openssl command line."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import aiomqtt
import pytest

from daemon.bus import Bus, topic
from daemon.config import MqttConfig
from daemon.errors import ConfigError
from daemon.models import MetricSample
from daemon.mqtt_bridge import MqttBridge
from daemon.mqtt_session import broker_options
from testkit.mosquitto import TlsFiles, start_mosquitto

pytestmark = [pytest.mark.mqtt, pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")]


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(d: Path, name: str) -> tuple[Path, Path]:
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    )
    return cert, key


def make_cert(d: Path, name: str, ca: tuple[Path, Path], san: str | None = None) -> tuple[Path, Path]:
    key, csr, cert = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem"
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr)
    )
    extra: list[str] = []
    if san:
        ext = d / f"{name}.ext"
        ext.write_text(f"subjectAltName={san}\n")
        extra = ["-extfile", str(ext)]
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        str(cert),
        *extra,
    )
    key.chmod(0o600)
    return cert, key


async def test_bridge_connects_over_tls_with_a_client_certificate_and_nothing_else_does(
    tmp_path: Path,
) -> None:
    ca = make_ca(tmp_path, "charter-ca")
    server = make_cert(tmp_path, "broker", ca, san="IP:127.0.0.1")
    client = make_cert(tmp_path, "daemon", ca)
    tls = TlsFiles(ca_file=ca[0], cert_file=server[0], key_file=server[1], require_certificate=True)
    with start_mosquitto(tls=tls, keep_dir=tmp_path / "broker") as broker:
        cfg = MqttConfig(
            enabled=True,
            host=broker.host,
            port=broker.port,
            ca_file=str(ca[0]),
            cert_file=str(client[0]),
            key_file=str(client[1]),
        )
        bus = Bus()
        bridge = MqttBridge(bus, cfg, "box-1")
        stop = asyncio.Event()
        task = asyncio.create_task(bridge.run(stop))
        try:
            await asyncio.wait_for(bridge.connected.wait(), 15)
            async with aiomqtt.Client(broker.host, broker.port, **broker_options(cfg)) as watcher:
                await watcher.subscribe("charter/v1/box-1/sample/+")
                await asyncio.sleep(0.2)
                bus.publish(topic("sample", "a"), MetricSample(instance="a", ts=1.0, waiting=3))
                message = await asyncio.wait_for(anext(aiter(watcher.messages)), 10)
                assert str(message.topic) == "charter/v1/box-1/sample/a", (
                    "events flow over the TLS connection"
                )

            # Plain TCP to the TLS listener, and TLS without a client certificate, are both refused.
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client(broker.host, broker.port, timeout=5):
                    pass
            no_cert = MqttConfig(enabled=True, host=broker.host, port=broker.port, ca_file=str(ca[0]))
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client(broker.host, broker.port, timeout=5, **broker_options(no_cert)):
                    pass
            # A broker certificate from another CA is not trusted (a man in the middle).
            other_ca = make_ca(tmp_path, "other-ca")
            wrong = MqttConfig(
                enabled=True,
                host=broker.host,
                port=broker.port,
                ca_file=str(other_ca[0]),
                cert_file=str(client[0]),
                key_file=str(client[1]),
            )
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client(broker.host, broker.port, timeout=5, **broker_options(wrong)):
                    pass
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


def test_bad_tls_or_password_files_are_config_errors_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot set up TLS"):
        broker_options(MqttConfig(ca_file=str(tmp_path / "missing.pem")))
    loose = tmp_path / "pw"
    loose.write_text("s3cret\n")
    loose.chmod(0o644)
    with pytest.raises(ConfigError, match="password_file.*readable by others"):
        broker_options(MqttConfig(password_file=str(loose)))
    loose.chmod(0o600)
    assert broker_options(MqttConfig(username="u", password_file=str(loose)))["password"] == "s3cret"
    with pytest.raises(ValueError, match="cert_file and key_file go together"):
        MqttConfig(cert_file="x.pem")


def test_secrets_read_from_files_are_masked_in_log_text(tmp_path: Path) -> None:
    """The broker password and a signing secret are read at run time, not from the config text: they are
    remembered when read, so a log line or message quoting one is masked (daemon/redaction.py)."""
    from daemon.auth import read_secret
    from daemon.config import IdentityConfig
    from daemon.redaction import redact_text

    pw = tmp_path / "pw"
    pw.write_text("broker-pw-7f3a9c\n")
    pw.chmod(0o600)
    broker_options(MqttConfig(username="u", password_file=str(pw)))
    key = tmp_path / "ops.key"
    key.write_text("ops-signing-secret-5d2e8b91\n")
    key.chmod(0o600)
    read_secret(IdentityConfig(name="ops", secret_file=str(key)), "[auth.identities] ops")
    line = redact_text("connect failed with broker-pw-7f3a9c; key ops-signing-secret-5d2e8b91")
    assert "broker-pw-7f3a9c" not in line and "ops-signing-secret-5d2e8b91" not in line
