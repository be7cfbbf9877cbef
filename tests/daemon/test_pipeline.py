"""The wired performance loop: a real poller, a real SQLite file, a scripted server whose queue grows."""

from __future__ import annotations

import asyncio
import time

from daemon.pipeline import PerformancePipeline
from daemon.bus import Bus
from daemon.config import parse_config
from daemon.exporter import DaemonMetrics
from daemon.models import Bottleneck, Recommendation
from daemon.poller import Poller
from daemon.store import AsyncStore, Store
from tests.daemon.helpers import VLLM_LOAD, MetricsServer, Response, set_counter, text_response


def queueing(n: int, path: str) -> Response:
    if path != "/metrics":
        return text_response("", 404)
    text = set_counter(VLLM_LOAD, "vllm:num_requests_waiting", 40.0)  # capture: 3 running, KV nearly empty
    return text_response(set_counter(text, "vllm:num_requests_running", 256.0))


async def test_queue_buildup_flows_to_a_stored_recommendation(sqlite_url: str) -> None:
    with MetricsServer(queueing) as server:
        config = parse_config(
            f'[daemon]\npoll_interval_s = 0.2\n[[targets]]\nname = "a"\nurl = "{server.url}"\n'
            '[targets.launch]\nargv = ["vllm", "--max-num-seqs", "256"]\n'
        )
        store = AsyncStore(Store(sqlite_url))
        bus, metrics = Bus(), DaemonMetrics()
        sub = bus.subscribe("charter/v1/#")
        pipeline = PerformancePipeline(config, store, bus=bus, metrics=metrics)
        await pipeline.restore()
        poller = Poller(
            config, store, on_sample=pipeline.on_sample, on_status=pipeline.on_status, metrics=metrics
        )
        pipeline.attach(poller)
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        # Until the queue is found and acted on (a state, not a fixed sleep: a loaded machine polls late),
        # then a few more samples that must not add a second recommendation.
        deadline = time.monotonic() + 60
        while not store.store.all(Recommendation) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        stop.set()
        await task
    (b,) = store.store.all(Bottleneck)
    assert b.kind == "QUEUE_BUILDUP" and b.active and b.evidence["waiting"] == 40.0
    recs = store.store.all(Recommendation)
    assert len(recs) == 1, [r.title for r in recs]  # de-duplicated across every sample that saw the queue
    change = recs[0].detail["changes"][0]
    assert (
        change["parameter"],
        change["current_value"],
        change["current_source"],
        change["recommended_value"],
    ) == ("--max-num-seqs", 256, "launch argv", 512)
    topics = []
    while not sub.queue.empty():
        topics.append((await sub.get()).topic)
    assert "charter/v1/bottleneck/a" in topics and "charter/v1/sample/a" in topics
    assert any(t.startswith("charter/v1/recommendation/") for t in topics)
    assert (
        metrics.registry.get_sample_value(
            "charter_bottlenecks_active", {"kind": "QUEUE_BUILDUP", "severity": "CRITICAL"}
        )
        == 1
    )
    assert metrics.registry.get_sample_value("charter_recommendations_pending") == 1
    store.close()
