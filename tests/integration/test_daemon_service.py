"""The wired daemon on a real vLLM server and real agent files: samples, instances, compiles, events."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest

from daemon.bus import topic
from daemon.config import load_config
from daemon.models import CompileRecord, Instance, InstanceState, MetricSample
from daemon.service import DaemonService

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.vllm


async def wait_for(predicate, timeout: float = 120.0, every: float = 0.2):  # noqa: ANN001, ANN201
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


async def test_daemon_polls_vllm_and_recompiles_agents_on_save(
    vllm_server, tmp_path: Path, monkeypatch
) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    shutil.copy(REPO / "data" / "agents" / "document_processor.py", agents / "document_processor.py")
    config = tmp_path / "c.toml"
    config.write_text(
        f'[daemon]\nmetrics_port = 0\npoll_interval_s = 0.5\n[watch]\npaths = ["{agents}"]\ndebounce_ms = 50\n'
        f'[[targets]]\nname = "kit-vllm"\nurl = "{vllm_server.url}"\n'
    )
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", f"sqlite:///{tmp_path / 'd.db'}")
    service = DaemonService(load_config(config))
    events = service.bus.subscribe()
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.ready.wait(), 30)
        store = service.store.store
        # Traffic, so the window has something to measure.
        async with httpx.AsyncClient(timeout=120) as client:
            await client.post(
                f"{vllm_server.url}/v1/completions",
                json={"model": vllm_server.model, "prompt": "hello " * 50, "max_tokens": 2},
            )
        samples = await wait_for(lambda: store.all(MetricSample, MetricSample.instance == "kit-vllm"))
        assert samples[-1].engine == "vllm"
        instance = await wait_for(
            lambda: next((i for i in store.all(Instance) if i.state == InstanceState.UP), None)
        )
        assert instance.name == "kit-vllm"

        first = await wait_for(lambda: store.all(CompileRecord))
        assert first[0].ok and len(first[0].result["calls"]) == 3

        # Save an edit that breaks the file: the error is recorded with its position, the last good
        # result is kept.
        agent = agents / "document_processor.py"
        broken = agent.read_text() + "\ndef broken(:\n"
        agent.write_text(broken)
        broken_line = len(broken.splitlines())  # the line we just wrote, counted from the file itself
        bad = await wait_for(lambda: [r for r in store.all(CompileRecord) if not r.ok])
        assert f"document_processor.py:{broken_line}:" in bad[0].error, bad[0].error
        assert len(bad[0].result["calls"]) == 3

        topics = set()
        while not events.queue.empty():
            topics.add(events.queue.get_nowait().topic)
        # The topics subscribers (TUI, MQTT bridge) build with `topic()` are the ones actually published.
        assert {topic("sample", "kit-vllm"), topic("instance", "kit-vllm")} <= topics, topics
        assert any(t.startswith(topic("compile", "")) for t in topics), topics
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("charter:")]
