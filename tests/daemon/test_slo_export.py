"""SLO compliance leaves the pipeline: on the bus (`charter/v1/slo/<name>`) and on the daemon's /metrics."""

from __future__ import annotations

import httpx

from daemon.pipeline import PerformancePipeline
from daemon.bus import Bus, topic
from daemon.collectors.window import WindowResult
from daemon.config import parse_config
from daemon.exporter import DaemonMetrics
from daemon.models import MetricSample
from daemon.store import AsyncStore, Store
from testkit.ports import free_port


async def test_compliance_is_published_and_exported(sqlite_url: str) -> None:
    config = parse_config('[slo]\nttft_p95_ms = 100\n[[targets]]\nname = "a"\nurl = "http://127.0.0.1:9"\n')
    store = AsyncStore(Store(sqlite_url))
    bus = Bus()
    slo_events = bus.subscribe(topic("slo", "+"))
    metrics = DaemonMetrics()
    pipeline = PerformancePipeline(config, store, bus=bus, metrics=metrics)
    # Three windows meeting the TTFT SLO, one missing it: 75% compliance over both windows.
    for i, ttft in enumerate([0.05, 0.05, 0.05, 0.5]):
        sample = MetricSample(instance="a", ts=1000.0 + i, window_s=1.0, ttft_p95_s=ttft)
        await pipeline.on_sample("a", WindowResult(sample=sample))
    await pipeline.on_sample("a", WindowResult(sample=MetricSample(instance="a", ts=1006.0, window_s=1.0)))

    events = []
    while not slo_events.queue.empty():
        events.append(slo_events.queue.get_nowait().payload)
    assert [e.ts for e in events] == [1000.0, 1006.0], "reported at most every few seconds"
    last = events[-1].windows
    assert last["5m"].compliance == 0.75 and last["1h"].compliance == 0.75
    assert last["5m"].violations == {"ttft_p95": 1}

    port = free_port()
    server, thread = metrics.serve(port)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        server.shutdown()
        thread.join(1)
    assert 'charter_slo_compliance{target="a",window="5m"} 0.75' in text
    store.close()
