"""The daemon's own metrics page: own registry, loopback, the documented families."""

from __future__ import annotations

import httpx

from daemon import prom
from daemon.exporter import DaemonMetrics


def test_metrics_page_serves_the_daemon_families_on_loopback() -> None:
    m = DaemonMetrics()
    m.observe_scrape("vllm-a", 0.012)
    m.observe_scrape("vllm-a", 0.5, "timeout")
    m.set_state("vllm-a", "STALE")
    m.samples_stored.inc(7)
    m.set_bottlenecks({("QUEUE_BUILDUP", "WARNING"): 1})
    m.set_bottlenecks({("CACHE_INEFFICIENCY", "CRITICAL"): 2})  # replaces, does not accumulate
    m.recommendations_pending.set(3)
    m.set_rollouts({"PENDING_APPROVAL": 1, "CANARY": 1})
    server, thread = m.serve(0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
        server.server_close()
    expo = prom.parse(text)  # our own parser reads our own page
    assert expo.total("charter_scrape_duration_seconds_count", {"target": "vllm-a"}) == 2
    assert expo.total("charter_scrape_errors_total", {"target": "vllm-a", "reason": "timeout"}) == 1
    assert expo.total("charter_target_state", {"target": "vllm-a", "state": "STALE"}) == 1
    assert expo.total("charter_target_state", {"target": "vllm-a", "state": "UP"}) == 0
    assert expo.total("charter_samples_stored_total") == 7
    assert expo.total("charter_bottlenecks_active") == 2
    assert expo.total("charter_bottlenecks_active", {"kind": "QUEUE_BUILDUP"}) is None
    assert expo.total("charter_recommendations_pending") == 3
    assert expo.total("charter_rollouts") == 2
    assert not any(n.startswith("python_gc") for n in expo.names())  # own registry, not the global one


def test_two_instances_do_not_collide() -> None:
    a = DaemonMetrics()
    b = DaemonMetrics()  # on the global registry this would raise "Duplicated timeseries"
    a.samples_stored.inc(3)
    assert a.registry is not b.registry
    assert b.registry.get_sample_value("charter_samples_stored_total") == 0.0
