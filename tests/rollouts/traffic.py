"""Real traffic against real servers, measured client-side and stored as `MetricSample`s.

Why client-side: Triton core exports request latency only as cumulative duration counters (no
histogram for a non-decoupled model), and the collector keeps their window mean out of the stored
sample; vLLM's histograms are fine but coarse at these latencies. Each request's wall time is a
real measurement of the server under test, and writing the windows into the store is exactly what
the validation reads in production (where the poller writes them).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

import httpx

from daemon.models import MetricSample
from daemon.store import Store

Request = Callable[[httpx.Client], None]


def triton_request(url: str, max_tokens: int = 4) -> Request:
    def send(client: httpx.Client) -> None:
        r = client.post(
            f"{url}/v2/models/textgen/generate",
            json={"text_input": "a b c d", "max_tokens": max_tokens},
            timeout=30,
        )
        r.raise_for_status()

    return send


def vllm_request(url: str, model: str = "tiny") -> Request:
    def send(client: httpx.Client) -> None:
        r = client.post(
            f"{url}/v1/completions",
            json={"model": model, "prompt": "charter test " * 8, "max_tokens": 4, "temperature": 0},
            timeout=60,
        )
        r.raise_for_status()

    return send


class LoadSampler:
    """`concurrency` client threads per target; every `window_s` one sample per target is stored."""

    def __init__(
        self, store: Store, targets: dict[str, Request], *, window_s: float = 0.5, concurrency: int = 2
    ) -> None:
        self.store, self.targets, self.window_s, self.concurrency = store, targets, window_s, concurrency
        self._lock = threading.Lock()
        self._latencies: dict[str, list[float]] = {t: [] for t in targets}
        self._failures: dict[str, int] = {t: 0 for t in targets}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.samples_written = 0
        self.failed_total = 0  # every failed request, whichever window it fell in
        self.failure_reasons: list[str] = []

    def _client_loop(self, name: str, send: Request) -> None:
        with httpx.Client() as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    send(client)
                    with self._lock:
                        self._latencies[name].append(time.perf_counter() - started)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self._failures[name] += 1
                        self.failed_total += 1
                        if len(self.failure_reasons) < 20:
                            self.failure_reasons.append(f"{time.strftime('%X')} {type(exc).__name__}: {exc}")
                    self._stop.wait(0.2)  # a down server: do not spin

    def _window_loop(self) -> None:
        while not self._stop.wait(self.window_s):
            now = time.time()
            with self._lock:
                taken = {t: (self._latencies[t], self._failures[t]) for t in self.targets}
                self._latencies = {t: [] for t in self.targets}
                self._failures = {t: 0 for t in self.targets}
            rows = []
            for name, (lat, failed) in taken.items():
                row = MetricSample(
                    instance=name,
                    ts=now,
                    engine="client",
                    window_s=self.window_s,
                    requests_success_per_s=len(lat) / self.window_s,
                    requests_failure_per_s=failed / self.window_s,
                )
                if lat:
                    ordered = sorted(lat)
                    row.e2e_p50_s = statistics.median(ordered)
                    row.e2e_p95_s = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
                rows.append(row)
            self.store.add_all(rows)
            self.samples_written += len(rows)

    def __enter__(self) -> LoadSampler:
        for name, send in self.targets.items():
            for _ in range(self.concurrency):
                self._threads.append(
                    threading.Thread(target=self._client_loop, args=(name, send), daemon=True)
                )
        self._threads.append(threading.Thread(target=self._window_loop, daemon=True))
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
