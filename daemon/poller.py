"""The poller: every target's `/metrics` on one event loop, where a sick server cannot hurt the rest.

Entry point for the daemon service:

    poller = Poller(config, store, on_sample=analyzer_callback, metrics=daemon_metrics)
    await poller.run(stop)          # until `stop` is set (or the task is cancelled); flushes on exit
    poller.status["vllm-a"]         # live TargetStatus: state, reason, engine, health, counters

`on_sample(target_name, WindowResult)` is called (sync or async) for every successful poll, after
the sample has been queued for storage; `on_status(TargetStatus)` whenever a target changes state or
a health check learns a new fact of it.

This module is the scheduler and each target's state; a failing target's next poll is decided in
`daemon/poll_breaker.py` and storage is `daemon/poll_writer.py`. Guarantees, each with a test in
tests/daemon/test_poller_faults.py:
- one task per target, each poll awaited before the next is scheduled: polls of a target never
  overlap; a slow target only delays itself (slots it overran are counted as missed, not queued);
- the whole fetch (`daemon.fetch`, one kept-alive connection per target) is under
  `asyncio.timeout(target.timeout_s)` (a server trickling bytes included), and the body is read
  incrementally and abandoned past `daemon.max_response_bytes` (tests/daemon/test_fetch.py);
- an exposition over `daemon.max_exposition_lines` is refused unparsed, and a large one is parsed
  in slices that yield to the loop, within `target.timeout_s` of CPU (`prom.parse_async`): the
  target is DOWN/STALE with the reason ("exposition too large: ...") and the others keep their
  schedule (benchmarks/results/poll_hostile.md);
- health/readiness checks (`daemon.health`, httpx) run beside the polls, never delaying them;
- failures back off exponentially with jitter (capped), and after `BREAKER_THRESHOLD` consecutive
  failures a circuit breaker opens for `BREAKER_COOLDOWN_S`, then lets one trial poll through
  (`poll_breaker.Breaker`, `backoff_delay`);
- a target is UP after a good poll, STALE when polls fail after it was seen, DOWN when it refuses
  connections, was never seen, or its breaker is open — always with the reason;
- samples are written in batches by one writer task through `AsyncStore` (`poll_writer.SampleWriter`);
  a failed write is kept and retried, and `run()` flushes everything queued before it returns: no
  sample is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import math
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from daemon import prom
from daemon.actuators import procs
from daemon.gpu import GpuDevice, fill_sample
from daemon.collectors import COLLECTORS, detect_engine, read, wanted_names
from daemon.collectors.promql import PromqlError
from daemon.collectors.window import CounterWindow, WindowResult
from daemon.identity import daemon_id
from daemon.config import Config, TargetConfig
from daemon.fetch import FetchError, MetricsFetcher
from daemon.health import HealthView, check_health
from daemon.models import Instance, InstanceState
from daemon.poll_breaker import BREAKER_COOLDOWN_S, BREAKER_THRESHOLD, Breaker
from daemon.poll_writer import SampleWriter
from daemon.prometheus_source import PromqlReader
from daemon.redaction import redact_text, redact_url
from daemon.store import AsyncStore
from daemon.text import clean
from daemon.supervisor import cancel_and_wait

log = logging.getLogger(__name__)

HEALTH_EVERY_S = 60.0  # while the target answers /metrics (that alone proves liveness)
# Instance facts learnt beside the polls (health checks), published to the screens when they change.
STATIC_INFO = ("model_configs", "platform")
PLATFORM_EVERY_S = 600.0  # a vLLM whose platform could not be read is tried again after this
HEALTH_EVERY_FAILING_S = 15.0  # while it does not: the health view is what explains why
REASON_CHARS = 512  # a state reason is one line on a screen, not a response body


@dataclass
class TargetStatus:
    name: str
    url: str
    daemon: str | None = None  # the polling daemon's id, stamped on the stored row
    engine: str | None = None  # configured, or detected from the exposition
    state: InstanceState = InstanceState.UNKNOWN
    reason: str | None = None
    last_seen: float | None = None  # wall clock of the last good poll
    last_attempt: float | None = None
    last_duration_s: float | None = None
    consecutive_failures: int = 0  # the breaker's state (daemon/poll_breaker.py)
    breaker_open_until: float | None = None  # loop time
    polls: int = 0
    failures: int = 0
    missed: int = 0  # scheduled slots skipped because a poll overran
    max_lateness_s: float = 0.0  # worst delay between a slot and the poll that served it
    health: HealthView | None = None
    info: dict[str, Any] = field(default_factory=dict)  # cache config, model configs, latest extras

    def instance_row(self) -> Instance:
        info = dict(self.info)
        if self.health is not None:
            info["health"] = self.health.model_dump(mode="json")
        return Instance(
            name=self.name,
            url=redact_url(self.url),
            engine=self.engine or "auto",
            model=(info.get("models") or [None])[0],
            state=self.state,
            state_reason=redact_text(self.reason) if self.reason else None,
            last_seen=self.last_seen,
            info=info,
            daemon=self.daemon,
        )


def _refusal(exc: prom.ExpositionError) -> str:
    """A cap's refusal, naming the setting that decides it (so the user knows what to raise)."""
    text = str(exc)
    setting = (
        "daemon.max_exposition_lines"
        if "line cap" in text
        else "daemon.max_response_bytes"
        if "byte cap" in text
        else "the target's timeout_s"
    )
    return f"{text} ({setting})"


class PollError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class Poller:
    def __init__(
        self,
        config: Config,
        store: AsyncStore | None,
        *,
        on_sample: Callable[[str, WindowResult], Any] | None = None,
        on_status: Callable[[TargetStatus], Any] | None = None,
        metrics: Any | None = None,
        client: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
        breaker_threshold: int = BREAKER_THRESHOLD,
        breaker_cooldown_s: float = BREAKER_COOLDOWN_S,
        device_of: Callable[[str], GpuDevice | None] | None = None,
    ) -> None:
        self.config = config
        # The GPU a target's processes hold memory on, from NVML (daemon/gpu.py): its memory, utilization,
        # temperature and power go into the target's samples where the engine exports none (vLLM), so they
        # are stored and downsampled with the rest, and MEMORY_PRESSURE sees the device too.
        self.device_of = device_of
        self.breaker = Breaker(breaker_threshold, breaker_cooldown_s)
        self.store = store
        self.on_sample = on_sample
        self.on_status = on_status
        self.metrics = metrics
        self._client = client  # one shared client when the caller provides it (tests, probe)
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._ssl: ssl.SSLContext | None = None
        self._fetchers: dict[str, MetricsFetcher] = {}  # the poll path: one kept-alive connection each
        self._promql: dict[str, PromqlReader] = {}  # targets read through PromQL (`source = "prometheus"`)
        self.rng = rng or random.Random()
        self.max_bytes = config.daemon.max_response_bytes
        self.max_lines = config.daemon.max_exposition_lines
        self.targets: dict[str, TargetConfig] = {t.name: t for t in config.targets}
        self.status: dict[str, TargetStatus] = {
            t.name: TargetStatus(
                name=t.name,
                url=t.url,
                engine=None if t.engine == "auto" else t.engine,
                daemon=daemon_id(config.daemon),
            )
            for t in config.targets
        }
        self.windows: dict[str, CounterWindow] = {
            t.name: CounterWindow(t.name, config.thresholds.window_s) for t in config.targets
        }
        self.writer = SampleWriter(store, metrics)
        self._next_health: dict[str, float] = {}
        self._next_platform: dict[str, float] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._health_tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def samples_written(self) -> int:
        return self.writer.samples_written

    async def flush(self) -> None:
        """Write everything queued (`SampleWriter.flush`)."""
        await self.writer.flush()

    # --- lifecycle ----------------------------------------------------------------------------
    def client_for(self, name: str) -> httpx.AsyncClient:
        """httpx for the health checks: one small connection pool per target. A shared pool would make every request scan every
        target's connections (httpcore checks each one for expiry: O(targets) per poll, most of the
        daemon's CPU at 100 targets), and a hung target could hold slots the others need."""
        if self._client is not None:
            return self._client
        client = self._clients.get(name)
        if client is None:
            client = httpx.AsyncClient(
                verify=self._ssl_context(),
                limits=httpx.Limits(max_connections=8, max_keepalive_connections=2),
                headers={"Accept": "text/plain;version=0.0.4", "User-Agent": "charter-tui"},
                follow_redirects=False,
            )
            self._clients[name] = client
        return client

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            # Building an SSL context loads the CA bundle (~40 ms): once, not per target.
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        fetchers, self._fetchers = list(self._fetchers.values()), {}
        for client in clients:
            await client.aclose()
        for fetcher in fetchers:
            await fetcher.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every target until `stop` is set, then flush the queued writes and return."""
        # Move what is alive now (modules, classes, the app) out of the cyclic GC's reach: a full
        # collection otherwise walks ~100,000 such objects, a 100-200 ms stall of the loop that a
        # large exposition's allocations would trigger on every poll (measured; see
        # benchmarks/results/poll_hostile.md). Frozen objects are still freed by refcounting; the
        # collect first keeps today's garbage out of the frozen set.
        gc.collect()
        gc.freeze()
        writer = asyncio.create_task(self.writer.run(stop), name="charter:poll-writer")
        tasks = [
            asyncio.create_task(self._target_loop(t, stop), name=f"charter:poll:{t.name}")
            for t in self.targets.values()
        ]
        try:
            await stop.wait()
        finally:
            tasks += [t for t in self._health_tasks.values() if not t.done()]
            await cancel_and_wait(tasks)
            self.writer.wake()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await self.writer.flush()
            await self.aclose()

    # --- one target ---------------------------------------------------------------------------
    async def _target_loop(self, target: TargetConfig, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        interval = target.poll_interval_s or self.config.daemon.poll_interval_s
        status = self.status[target.name]
        # Spread first polls over one interval so 100 targets do not fire in the same millisecond.
        next_due = loop.time() + self.rng.uniform(0, min(interval, 1.0))
        while not stop.is_set():
            delay = next_due - loop.time()
            if delay > interval:
                # Backing off, or the circuit is open: `wake` (a rollout just relaunched the server) ends
                # the wait, so a server that is back is polled at once, not up to 30 s later.
                wake = self._wakes.setdefault(target.name, asyncio.Event())
                try:
                    await asyncio.wait_for(wake.wait(), delay)
                    wake.clear()
                    next_due = loop.time()
                except TimeoutError:
                    pass
                if stop.is_set():
                    return
            elif delay > 0:
                # A plain sleep: run() cancels this task when `stop` is set, so waiting on the
                # event here (a new task and timer handle per poll) would buy nothing.
                await asyncio.sleep(delay)
                if stop.is_set():
                    return
            started = loop.time()
            lateness = started - next_due
            status.max_lateness_s = max(status.max_lateness_s, lateness)
            open_until = self.breaker.open_until(status, started)
            if open_until is not None:
                next_due = open_until
                continue
            ok = await self.poll_target(target)
            self._spawn_health_check(target)
            now = loop.time()
            if ok:
                next_due += interval
                if next_due <= now:  # the poll overran its slot(s): skip them, never queue a burst
                    skipped = math.floor((now - next_due) / interval) + 1
                    status.missed += skipped
                    if self.metrics:
                        self.metrics.polls_missed.labels(target.name).inc(skipped)
                    next_due += skipped * interval
            else:
                next_due, opened = self.breaker.retry_at(status, now, interval, self.rng)
                if opened:
                    self._set_state(
                        status,
                        InstanceState.DOWN,
                        f"circuit open for {self.breaker.cooldown_s:g}s after {status.consecutive_failures} "
                        f"consecutive failures; last: {status.reason}",
                    )

    def wake(self, name: str) -> None:
        """Poll `name` now: its server was just changed on purpose (a relaunch, a reload), so the failures
        that backed its polls off, or opened its circuit, say nothing about it any more."""
        status = self.status.get(name)
        if status is None:
            return
        self.breaker.succeeded(status)
        self._wakes.setdefault(name, asyncio.Event()).set()

    async def poll_target(self, target: TargetConfig) -> bool:
        """Fetch, parse and window one target's metrics; record the outcome. Never raises for the
        target's faults (they become the status' reason)."""
        status = self.status[target.name]
        status.last_attempt = time.time()
        started = time.perf_counter()
        try:
            try:
                result = await self._poll(target, status)
            except PollError:
                raise
            except Exception as exc:  # a collector bug costs this target one poll, never its loop
                log.exception("reading %s failed unexpectedly", target.name)
                raise PollError(
                    "internal", f"internal error reading the metrics: {type(exc).__name__}: {exc}"
                ) from exc
        except PollError as exc:
            duration = time.perf_counter() - started
            status.last_duration_s = duration
            status.failures += 1
            self.breaker.failed(status)
            if self.metrics:
                self.metrics.observe_scrape(target.name, duration, exc.kind)
            if exc.kind == "refused" or status.last_seen is None:
                new_state = InstanceState.DOWN
            else:
                new_state = InstanceState.STALE
            self._set_state(status, new_state, str(exc))
            return False
        duration = time.perf_counter() - started
        status.last_duration_s = duration
        status.polls += 1
        self.breaker.succeeded(status)
        status.last_seen = result.sample.ts
        if self.metrics:
            self.metrics.observe_scrape(target.name, duration)
        if self.device_of is not None:
            fill_sample(result.sample, self.device_of(target.name))
        self.writer.add_sample(result.sample)
        status.info["latest_extras"] = result.extras
        changed = status.state != InstanceState.UP
        # UP (it answered), but a sample with rejected values says so: "UP" alone would vouch for them.
        suspect = result.sample.suspect_reason
        self._set_state(status, InstanceState.UP, f"suspect values ignored: {suspect}" if suspect else None)
        if not changed and self.writer.instance_due(target.name):
            self._mark_dirty(status)
        if self.on_sample is not None:
            try:
                out = self.on_sample(target.name, result)
                if inspect.isawaitable(out):
                    await out
            except Exception:  # a consumer's bug must not stop polling
                log.exception("on_sample callback failed for %s", target.name)
        return True

    async def _poll(self, target: TargetConfig, status: TargetStatus) -> WindowResult:
        if target.source == "prometheus":
            return await self._poll_promql(target, status)
        url = target.metrics_endpoint
        fetcher = self._fetchers.get(target.name)
        if fetcher is None:
            fetcher = self._fetchers[target.name] = MetricsFetcher(url, ssl_context=self._ssl_context())
        try:
            code, body = await fetcher.get(target.timeout_s, self.max_bytes)
        except FetchError as exc:
            if exc.kind == "too_large":  # refused while reading: never parsed, never buffered whole
                raise PollError(
                    exc.kind, f"exposition too large: {exc} (daemon.max_response_bytes)"
                ) from None
            raise PollError(exc.kind, str(exc)) from None
        if code != 200:
            raise PollError("http", f"HTTP {code} from {url}")
        engine = status.engine
        expo = None
        # Large expositions are parsed in slices that yield to the loop (`prom.parse_async`), with
        # the target's timeout as their CPU budget: one server's 8 MB must not stall the others.
        if engine is not None:
            # Known engine: parse only the samples its collector reads (most of the CPU of a poll
            # otherwise goes to `_created` series and histograms nobody reads).
            try:
                expo = await prom.parse_async(
                    body,
                    self.max_bytes,
                    wanted_names(engine),
                    max_lines=self.max_lines,
                    budget_s=target.timeout_s,
                )
            except prom.ExpositionError as exc:
                if exc.kind == "too_large":
                    raise PollError("too_large", _refusal(exc)) from None
                # nothing we read: parse fully below to say why
        if expo is None:
            try:
                expo = await prom.parse_async(
                    body, self.max_bytes, None, max_lines=self.max_lines, budget_s=target.timeout_s
                )
            except prom.ExpositionError as exc:
                if exc.kind == "too_large":
                    raise PollError("too_large", _refusal(exc)) from None
                raise PollError("parse", f"unparseable /metrics: {exc}") from None
        if engine is None or (
            self.targets[target.name].engine == "auto" and COLLECTORS[engine].score(expo) == 0
        ):
            engine = detect_engine(expo)
            if engine is None:
                raise PollError(
                    "engine",
                    "no vLLM/Triton/SGLang/TGI/llama.cpp metrics in the exposition "
                    f"({len(expo.samples)} sample names); set `engine` for this target",
                )
            status.engine = engine
        elif COLLECTORS[engine].score(expo) == 0:
            raise PollError(
                "engine",
                f"the target is configured as {engine} but exports no {engine} metrics "
                f"({len(expo.samples)} other sample names); check `engine` and the URL",
            )
        reading = read(expo, engine, time.time())
        if reading.info:
            status.info.update(reading.info)
        return self.windows[target.name].update(reading)

    async def _poll_promql(self, target: TargetConfig, status: TargetStatus) -> WindowResult:
        reader = self._promql.get(target.name)
        if reader is None:
            reader = self._promql[target.name] = PromqlReader(
                target, self.config.thresholds.window_s, self.max_bytes
            )
        try:
            result = await reader.read(self.client_for(target.name))
        except PromqlError as exc:
            raise PollError(exc.kind, str(exc)) from None
        status.engine = reader.engine
        status.info.update(reader.info)
        return result

    def _spawn_health_check(self, target: TargetConfig) -> None:
        """Health checks run beside the polls, one at a time per target, so a slow /health or
        /v2/models/<m>/config never delays a metrics poll."""
        running = self._health_tasks.get(target.name)
        if running is not None and not running.done():
            return
        if time.monotonic() < self._next_health.get(target.name, 0.0):
            return
        self._health_tasks[target.name] = asyncio.create_task(
            self.check_health_if_due(target), name=f"charter:health:{target.name}"
        )

    async def check_health_if_due(self, target: TargetConfig) -> None:
        status = self.status[target.name]
        now = time.monotonic()
        if now < self._next_health.get(target.name, 0.0):
            return
        up = status.state == InstanceState.UP
        self._next_health[target.name] = now + (HEALTH_EVERY_S if up else HEALTH_EVERY_FAILING_S)
        try:
            status.health = await check_health(
                self.client_for(target.name), target, status.engine or target.engine, 1 << 20
            )
        except Exception:  # check_health reports a sick server in its view; this is a bug, not a fault
            log.exception("health check of %s failed", target.name)
            return
        before = {k: status.info.get(k) for k in STATIC_INFO}
        if status.health.model_configs:
            status.info["model_configs"] = status.health.model_configs
        await self.read_platform(target, status)
        self._mark_dirty(status)
        if any(status.info.get(k) != v for k, v in before.items()):
            # Facts the screens and the optimizer read (a Triton model's config, a vLLM's platform) are
            # published when they are learnt, not only at the target's next change of state.
            self._report(status)

    async def read_platform(self, target: TargetConfig, status: TargetStatus) -> None:
        """CPU or GPU decides which KV block sizes a vLLM accepts, and its metrics do not say which: read
        from the local server process (`procs.local_vllm_platform`), once it is known, and otherwise at
        most every PLATFORM_EVERY_S (finding the process scans /proc)."""
        if (status.engine or target.engine) != "vllm" or status.info.get("platform") in ("cpu", "gpu"):
            return
        if status.state != InstanceState.UP:
            return  # nothing to read yet: looked for when it answers (a server started after charter-tui)
        now = time.monotonic()
        if now < self._next_platform.get(target.name, 0.0):
            return
        self._next_platform[target.name] = now + PLATFORM_EVERY_S
        platform = await asyncio.to_thread(procs.local_vllm_platform, target.url)
        # "unknown": looked for and not found (a remote server, another build). Until it has been looked
        # for, the optimizer offers no block size that only a GPU backend takes (optimizer/kv_cache.py).
        status.info["platform"] = platform or "unknown"

    # --- state --------------------------------------------------------------------------------
    def _set_state(self, status: TargetStatus, state: InstanceState, reason: str | None) -> None:
        if reason is not None:
            # Reasons quote responses (status lines, bodies, parser errors): cleaned before they are
            # stored, published or logged, since each of those ends on somebody's terminal.
            reason = clean(reason, limit=REASON_CHARS)
        changed = state != status.state or reason != status.reason
        status.state, status.reason = state, reason
        if changed:
            if state != InstanceState.UP:
                log.warning("target %s is %s: %s", status.name, state.value, reason)
            if self.metrics:
                self.metrics.set_state(status.name, state.value)
            self._mark_dirty(status)
            self._report(status)

    def _report(self, status: TargetStatus) -> None:
        if self.on_status is not None:
            try:
                self.on_status(status)
            except Exception:
                log.exception("on_status callback failed for %s", status.name)

    def _mark_dirty(self, status: TargetStatus) -> None:
        self.writer.set_instance(status.instance_row())
