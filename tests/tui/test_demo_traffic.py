"""The demo's traffic (issue 15 item 6): a bundled agent run against the demo's real vLLM server.

`make run` used to start a server and send it nothing, so every latency and hit-rate column stayed
'-'. Here the real `DemoTraffic` drives data/agents/document_processor.py at the kit's vLLM: the
server counts its requests, `t` stops them, and the screens show measured numbers within a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from charter_tui.app import CharterApp
from charter_tui.commands import demo_cmd
from charter_tui.compose import embedded_app
from daemon.config import load_config
from executor.demo_traffic import DemoTraffic
from tests.tui.helpers import screen_text, table_rows, wait_until, write_config

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

AGENTS = Path(__file__).resolve().parents[2] / "data" / "agents"


def demo_traffic(url: str, interval_s: float = 0.5) -> DemoTraffic:
    return DemoTraffic(
        AGENTS / "document_processor.py",
        AGENTS / "inputs" / "document_processor.jsonl",
        url,
        target_name="local-vllm",
        interval_s=interval_s,
        retry_s=0.5,
    )


def requests_finished(url: str) -> float:
    """vLLM's own count of finished requests (`vllm:request_success_total`, every reason summed)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "vllm:request_success_total"
    )


async def eventually(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


async def test_runs_reach_the_server_and_pause_stops_them(vllm_server) -> None:  # type: ignore[no-untyped-def]
    traffic = demo_traffic(vllm_server.url)
    before = await asyncio.to_thread(requests_finished, vllm_server.url)
    stop = asyncio.Event()
    task = asyncio.create_task(traffic.run(stop))
    try:
        await eventually(lambda: traffic.status.runs >= 2, 120, "two demo runs")
        assert traffic.status.state == "running" and traffic.status.failed_runs == 0
        # Every call of a run is a request the server finished (the agent has several per run).
        assert traffic.status.calls >= 2 * 2
        served = await asyncio.to_thread(requests_finished, vllm_server.url)
        assert served - before >= traffic.status.calls - 1  # the last call may still be counted
        traffic.pause()
        assert traffic.status.state == "paused"
        runs_at_pause = traffic.status.runs
        await asyncio.sleep(20)  # a run under way finishes (well under 20 s here), then nothing
        paused_runs = traffic.status.runs
        assert paused_runs <= runs_at_pause + 1
        quiet_from = await asyncio.to_thread(requests_finished, vllm_server.url)
        await asyncio.sleep(3 * traffic.status.interval_s + 1)
        assert await asyncio.to_thread(requests_finished, vllm_server.url) == quiet_from
        assert traffic.status.runs == paused_runs
        traffic.resume()
        await eventually(lambda: traffic.status.runs > paused_runs, 120, "a run after resuming")
        assert traffic.status.state == "running"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=130)


async def test_a_server_that_goes_away_counts_failed_runs_and_the_loop_goes_on(tmp_path: Path) -> None:
    # A port nothing listens on: the demo target before its server answers, or during a relaunch.
    traffic = demo_traffic("http://127.0.0.1:9")
    stop = asyncio.Event()
    task = asyncio.create_task(traffic.run(stop))
    try:
        await eventually(lambda: "127.0.0.1:9" in traffic.status.last_error, 30, "the connection error")
        assert traffic.status.runs == 0 and not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert task.exception() is None


async def test_the_demo_screens_show_numbers_within_a_minute_and_t_pauses(
    vllm_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.db'}")
    config = write_config(
        tmp_path,
        f'poll_interval_s = 1.0\n[[targets]]\nname = "local-vllm"\nurl = "{vllm_server.url}"\nengine = "vllm"\n',
    )
    traffic = demo_traffic(vllm_server.url, interval_s=1.0)
    app: CharterApp = embedded_app(load_config(config), traffic=traffic)
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        # Said on screen (a toast, wrapped to its width): what is sent, where, and the key that stops it.
        await wait_until(
            app, pilot, lambda: any("Demo traffic:" in str(n.message) for n in app._notifications)
        )
        told = next(str(n.message) for n in app._notifications if "Demo traffic:" in str(n.message))
        assert "document_processor.py" in told and "local-vllm" in told and "Press t to pause" in told
        assert "Press t to pause" in screen_text(app).replace("\n", " ")
        started = time.monotonic()
        # Nothing but the demo's own traffic reaches the server here: the row fills from it.
        await wait_until(
            app,
            pilot,
            lambda: all(table_rows(app, "#instances")["local-vllm"][i].split()[0] != "-" for i in (4, 5)),
            timeout=90,
            what="TTFT and tok/s from the demo traffic",
        )
        await pilot.press("3")
        await wait_until(
            app,
            pilot,
            lambda: table_rows(app, "#cache-targets")["local-vllm"][2] != "-",
            timeout=60,
            what="a measured hit rate",
        )
        # On an unloaded 2-core box this took ~20-40 s; the bound is the "within a minute"
        # with room for a loaded CI runner (the first run also compiles the agent).
        assert time.monotonic() - started < 120
        top = screen_text(app).splitlines()[0]
        assert "DEMO traffic" in top and "runs" in top
        await pilot.press("t")
        assert traffic.paused
        await wait_until(app, pilot, lambda: "Send traffic" in screen_text(app).splitlines()[-1])
        assert "paused" in screen_text(app).splitlines()[0]
        await pilot.press("t")
        assert not traffic.paused
        await wait_until(app, pilot, lambda: "Pause traffic" in screen_text(app).splitlines()[-1])
        await pilot.press("q")


def test_configured_servers_never_get_demo_traffic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With targets in the config, `demo` is the plain TUI plus the sample agents: no synthetic requests."""
    config = write_config(
        tmp_path, '[[targets]]\nname = "prod"\nurl = "http://127.0.0.1:9"\nengine = "vllm"\n'
    )
    built: dict[str, object] = {}

    class Recorder:
        def run(self) -> None:
            pass

    def fake_embedded_app(loaded, *, readonly=False, traffic=None):  # type: ignore[no-untyped-def]
        built["traffic"], built["watch"] = traffic, loaded.config.watch.paths
        return Recorder()

    monkeypatch.setattr("charter_tui.compose.embedded_app", fake_embedded_app)
    args = argparse.Namespace(config=str(config), readonly=False, no_traffic=False, traffic_interval=2.0)
    assert demo_cmd.run(args) == 0
    assert built["traffic"] is None
    assert str(AGENTS) in built["watch"]  # type: ignore[operator]


@pytest.mark.parametrize("value", ["0", "-1", "x", "7200"])
def test_a_bad_traffic_interval_is_refused_with_the_reason(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="seconds|outside"):
        demo_cmd._interval(value)
