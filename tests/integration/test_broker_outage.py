"""The broker stopped for 30 s and restarted (issue 17's second "Done when").

A real daemon (`DaemonService`, MQTT bridge on) polls a replayed vLLM every 0.5 s; a TUI (Pilot, the real
`remote_app`) watches it through a private Mosquitto. The broker goes away for 30 s: the daemon keeps polling
(samples keep landing in its store), the TUI says its data may be stale, the bridge keeps what it could not
send in its bounded outbox (nothing dropped at this rate). The broker comes back on the same port: the TUI
reconnects by itself and shows live data again, and every sample taken while the broker was away is sent,
and received by a client that was listening when the bridge came back.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiomqtt
import pytest

from charter_tui.compose import remote_app
from charter_tui.mqtt_source import MqttSource
from daemon.config import load_config
from daemon.models import MetricSample
from daemon.service import DaemonService
from testkit.mosquitto import start_mosquitto
from testkit.ports import free_port
from tests.daemon.helpers import replaying
from tests.tui.helpers import screen_text, table_rows, wait_until

pytestmark = pytest.mark.mqtt

OUTAGE_S = 30.0


def topbar(app) -> str:  # type: ignore[no-untyped-def]
    return screen_text(app).splitlines()[0]


async def test_a_30_s_broker_outage_loses_no_polling_no_event_and_the_tui_reconnects_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    with replaying() as vllm:
        daemon_toml = tmp_path / "daemon.toml"
        daemon_toml.write_text(
            '[daemon]\nid = "box-1"\nmetrics_port = 0\npoll_interval_s = 0.5\n'
            f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
            f'[[targets]]\nname = "vllm-1"\nurl = "{vllm.url}"\n'
        )
        tui_toml = tmp_path / "tui.toml"
        tui_toml.write_text(f"[mqtt]\nport = {port}\n")
        monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", f"sqlite:///{tmp_path / 'box-1.db'}")
        service = DaemonService(load_config(str(daemon_toml)))
        stop = asyncio.Event()
        daemon = asyncio.create_task(service.run(stop))
        app = remote_app(load_config(str(tui_toml)), f"127.0.0.1:{port}")
        source: MqttSource = app.source  # type: ignore[assignment]
        try:
            await asyncio.wait_for(service.ready.wait(), 30)
            bridge = service.mqtt_bridge
            assert bridge is not None
            async with app.run_test(size=(160, 48)) as pilot:
                with start_mosquitto(port=port, keep_dir=tmp_path / "before"):
                    await asyncio.wait_for(bridge.connected.wait(), 30)
                    await wait_until(
                        app,
                        pilot,
                        lambda: table_rows(app, "#instances").get("vllm-1", ["", ""])[1] == "● UP",
                        timeout=30,
                        what="the daemon's target over MQTT",
                    )
                    assert "box-1 · ● 1/1 up" in topbar(app)
                went = time.time()

                # The broker is away.
                await wait_until(
                    app,
                    pilot,
                    lambda: "broker unreachable" in topbar(app),
                    timeout=10,
                    what="the stale banner",
                )
                assert "data may be stale" in topbar(app)
                published_before = bridge.published
                await asyncio.sleep(OUTAGE_S)
                polled = [
                    s
                    for s in service.store.store.samples("vllm-1", went)
                    if s.ts <= time.time()  # type: ignore[union-attr]
                ]
                print(f"while the broker was away ({OUTAGE_S:.0f} s): {len(polled)} polls stored")
                assert len(polled) >= OUTAGE_S / 0.5 * 0.8, "the daemon kept polling"
                assert bridge.dropped == 0 and bridge.published == published_before
                waiting = bridge.outbox.queue.qsize()  # type: ignore[union-attr]
                assert waiting >= len(polled), (waiting, len(polled))

                with start_mosquitto(port=port, keep_dir=tmp_path / "after"):
                    back = time.monotonic()
                    # A client listening from the moment the broker is back, before the bridge's next retry.
                    samples: dict[float, bool] = {}
                    heard_connect = False
                    async with aiomqtt.Client("127.0.0.1", port) as listener:
                        await listener.subscribe("charter/v1/box-1/#")
                        await asyncio.wait_for(bridge.connected.wait(), 30)
                        reconnect_s = time.monotonic() - back
                        try:
                            async with asyncio.timeout(5):
                                async for message in listener.messages:
                                    topic = str(message.topic)
                                    body = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                                    if topic.endswith("/daemon/online") and not message.retain:
                                        heard_connect = heard_connect or body["online"]
                                    elif "/sample/" in topic:
                                        samples[MetricSample.model_validate(body).ts] = True
                                    if bridge.outbox.queue.empty() and all(s.ts in samples for s in polled):  # type: ignore[union-attr]
                                        break
                        except TimeoutError:
                            pass
                    print(
                        f"the bridge reconnected {reconnect_s:.1f} s after the broker came back; "
                        f"{len(samples)} samples received ({'every' if heard_connect else 'not checked:'} "
                        f"one of the {len(polled)} from the outage)"
                    )
                    assert bridge.dropped == 0 and bridge.outbox.queue.empty()  # type: ignore[union-attr]
                    assert bridge.published - published_before >= waiting  # the outbox went out, all of it
                    if heard_connect:  # listening before the bridge connected (nearly always): every sample
                        missing = [s.ts for s in polled if s.ts not in samples]
                        assert not missing, (
                            f"{len(missing)} of {len(polled)} samples from the outage never arrived"
                        )

                    # The TUI comes back by itself: no stale banner, live samples again.
                    await wait_until(
                        app,
                        pilot,
                        lambda: source.connected.is_set() and "broker unreachable" not in topbar(app),
                        timeout=30,
                        what="the TUI to reconnect",
                    )
                    assert source.connected_at is not None
                    print(
                        f"the TUI reconnected {source.connected_at - back:.1f} s after the broker came back"
                    )

                    def samples_seen() -> int:  # none yet if the TUI came back after the outbox went out
                        series = app.state.series.get("vllm-1")
                        return len(series.ts) if series is not None else 0

                    seen = samples_seen()
                    await wait_until(
                        app,
                        pilot,
                        lambda: samples_seen() > seen + 2,
                        timeout=15,
                        what="live samples after the reconnect",
                    )
        finally:
            stop.set()
            await asyncio.wait_for(daemon, 30)
