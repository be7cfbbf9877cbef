"""The daemon's own Prometheus metrics, on its own registry, served on a loopback port.

Own `CollectorRegistry` (not the process-global one) so that tests and an embedded daemon never
collide on metric names, and so the page shows only the daemon's metrics. Bound to 127.0.0.1 by
default: the metrics name every target, which is not something to publish on all interfaces.

    metrics = DaemonMetrics()
    server = metrics.serve(port=config.daemon.metrics_port)   # port 0 in config = off: don't call
    poller = Poller(config, store, metrics=metrics)
    metrics.set_rollouts({"PENDING_APPROVAL": 2, "CANARY": 1})   # from the rollout manager
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

SCRAPE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STALL_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class DaemonMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.scrape_duration = Histogram(
            "charter_scrape_duration_seconds",
            "Time to fetch and parse a target's /metrics",
            ["target"],
            buckets=SCRAPE_BUCKETS,
            registry=r,
        )
        self.scrape_errors = Counter(
            "charter_scrape_errors", "Failed scrapes by target and reason", ["target", "reason"], registry=r
        )
        self.polls_missed = Counter(
            "charter_polls_missed", "Poll slots skipped because a poll overran", ["target"], registry=r
        )
        self.target_state = Gauge(
            "charter_target_state",
            "1 for the target's current state (UP/STALE/DOWN)",
            ["target", "state"],
            registry=r,
        )
        self.samples_stored = Counter(
            "charter_samples_stored", "Normalized samples written to the store", registry=r
        )
        self.store_write_errors = Counter(
            "charter_store_write_errors", "Batch writes that failed and were retried", registry=r
        )
        self.bottlenecks_active = Gauge(
            "charter_bottlenecks_active",
            "Open bottlenecks by kind and severity",
            ["kind", "severity"],
            registry=r,
        )
        self.recommendations_pending = Gauge(
            "charter_recommendations_pending", "Open recommendations", registry=r
        )
        self.rollouts = Gauge("charter_rollouts", "Rollouts by state", ["state"], registry=r)
        self.ceiling = Gauge(
            "charter_prefix_cache_ceiling",
            "The watched agents' best steady-state prefix-cache hit share at the target's block size, as the "
            "compiler computed it (absent: no agent compiled, or the target has no prefix cache)",
            ["target"],
            registry=r,
        )
        self.slo_compliance = Gauge(
            "charter_slo_compliance",
            "Share of the window's samples meeting every SLO (absent: no traffic)",
            ["target", "window"],
            registry=r,
        )
        self.loop_crashes = Counter(
            "charter_daemon_loop_crashes", "Daemon loops that raised and were restarted", ["loop"], registry=r
        )
        self.degraded = Gauge("charter_daemon_degraded", "1 while a daemon loop keeps crashing", registry=r)
        # Read from the MQTT bridge at scrape time (`watch_mqtt_outbox`): a gauge, as it is a count kept elsewhere.
        self.mqtt_outbox_dropped = Gauge(
            "charter_mqtt_outbox_dropped_events",
            "Events dropped (oldest first) from the bounded MQTT outbox while the broker was away, since start",
            registry=r,
        )
        self.loop_stalls = Histogram(
            "charter_daemon_loop_stall_seconds",
            "Times the daemon's event loop was held past the stall threshold, by length",
            buckets=STALL_BUCKETS,
            registry=r,
        )
        self._lock = threading.Lock()

    def watch_mqtt_outbox(self, dropped: Callable[[], int]) -> None:
        self.mqtt_outbox_dropped.set_function(dropped)

    # --- called by the poller -------------------------------------------------------------
    def observe_scrape(self, target: str, seconds: float, error_kind: str | None = None) -> None:
        self.scrape_duration.labels(target).observe(seconds)
        if error_kind:
            self.scrape_errors.labels(target, error_kind).inc()

    def set_state(self, target: str, state: str) -> None:
        with self._lock:
            for s in ("UP", "STALE", "DOWN", "UNKNOWN"):
                self.target_state.labels(target, s).set(1.0 if s == state else 0.0)

    # --- called by analysis / optimizer / rollouts ----------------------------------------
    def set_bottlenecks(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace the open-bottleneck gauge with `{(kind, severity): count}` (absent = 0)."""
        with self._lock:
            self.bottlenecks_active.clear()
            for (kind, severity), n in counts.items():
                self.bottlenecks_active.labels(kind, severity).set(n)

    def set_rollouts(self, counts: Mapping[str, int]) -> None:
        from daemon.rollouts.model import RolloutState

        with self._lock:
            self.rollouts.clear()
            # Every state, zeros included: a dashboard's "rollouts by state" and its annotations need the
            # series to exist before the first rollout, and to drop to 0 rather than vanish.
            for state in sorted({s.value for s in RolloutState} | set(counts)):
                self.rollouts.labels(state).set(counts.get(state, 0))

    def set_ceilings(self, ceilings: Mapping[str, float | None]) -> None:
        with self._lock:
            self.ceiling.clear()
            for target, value in ceilings.items():
                if value is not None:
                    self.ceiling.labels(target).set(value)

    def set_slo(self, target: str, compliance: Mapping[str, float | None]) -> None:
        """`{window: compliance}` for one target; a window without traffic drops its series."""
        with self._lock:
            for window, value in compliance.items():
                if value is None:
                    try:
                        self.slo_compliance.remove(target, window)
                    except KeyError:
                        pass
                else:
                    self.slo_compliance.labels(target, window).set(value)

    def serve(self, port: int, addr: str = "127.0.0.1") -> tuple[WSGIServer, threading.Thread]:
        """Serve /metrics on `addr:port` in a daemon thread; `server.shutdown()` stops it."""
        return start_http_server(port, addr=addr, registry=self.registry)
