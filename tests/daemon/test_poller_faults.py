"""The poller against real local HTTP servers that misbehave: refuse, hang, 500, 50 MB, restart.

Each test runs the real `Poller` on the real event loop against `ThreadingHTTPServer`s on
127.0.0.1 and a real SQLite file, and checks both sides of the promise: the sick target is marked
with the right state and reason, and the healthy ones keep their cadence and lose no sample.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Iterator

import pytest

from daemon.config import parse_config
from daemon.exporter import DaemonMetrics
from daemon.models import Instance, InstanceState, MetricSample
from daemon.poll_breaker import backoff_delay
from daemon.poller import Poller
from daemon.store import AsyncStore, Store
from tests.daemon.helpers import (
    VLLM_IDLE,
    MetricsServer,
    Response,
    closed_port_url,
    set_counter,
    text_response,
)

INTERVAL = 0.2
WAIT_S = 120.0  # generous: state waits, not timing claims (speed is measured in benchmarks/)


async def until(check, what: str, timeout: float = WAIT_S) -> None:  # type: ignore[no-untyped-def]
    """Wait for a state, polling; fail naming it. No assertion here depends on how fast the box is."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


def growing_vllm(n: int, path: str) -> Response:
    """A vLLM whose counters grow by 100 queries / 50 hits per scrape."""
    text = set_counter(VLLM_IDLE, "vllm:prefix_cache_queries_total", 3828.0 + 100 * n)
    return text_response(set_counter(text, "vllm:prefix_cache_hits_total", 2304.0 + 50 * n))


def restarting_vllm(n: int, path: str) -> Response:
    """Counters grow, then at scrape 6 the 'server restarts' (counters and start time reset)."""
    if n < 6:
        return growing_vllm(n, path)
    text = set_counter(VLLM_IDLE, "vllm:prefix_cache_queries_total", 10.0 * (n - 5))
    text = set_counter(text, "vllm:prefix_cache_hits_total", 5.0 * (n - 5))
    text = set_counter(text, "vllm:prompt_tokens_total", 10.0 * (n - 5))
    return text_response(set_counter(text, "process_start_time_seconds", 1.9e9))


def config_for(urls: dict[str, str], timeout_s: float = 0.5) -> str:
    toml = (
        f"[daemon]\npoll_interval_s = {INTERVAL}\nmax_response_bytes = 4194304\n[thresholds]\nwindow_s = 5\n"
    )
    for name, url in urls.items():
        toml += f'[[targets]]\nname = "{name}"\nurl = "{url}"\ntimeout_s = {timeout_s}\n'
    return toml


@pytest.fixture
def servers() -> Iterator[dict[str, MetricsServer]]:
    hang_release: list[MetricsServer] = []

    def hang(n: int, path: str) -> Response:
        hang_release[0].release.wait(30)  # holds the connection until teardown
        return text_response(VLLM_IDLE)

    def error500(n: int, path: str) -> Response:
        return text_response("internal error\n", status=500)

    def huge(n: int, path: str) -> Response:
        # 50 MB, no Content-Length (HTTP/1.0, delimited by close): the cap must stop the read itself.
        chunk = b"# " + b"x" * (1 << 20) + b"\n"
        return 200, {"Content-Type": "text/plain"}, itertools.repeat(chunk, 50)

    def garbage(n: int, path: str) -> Response:
        return text_response("<html><body>login required</body></html>\n")

    built = {
        "good1": MetricsServer(growing_vllm),
        "good2": MetricsServer(growing_vllm),
        "hang": MetricsServer(hang),
        "err500": MetricsServer(error500),
        "huge": MetricsServer(huge),
        "restart": MetricsServer(restarting_vllm),
        "garbage": MetricsServer(garbage),
    }
    hang_release.append(built["hang"])
    for s in built.values():
        s.__enter__()
    try:
        yield built
    finally:
        for s in built.values():
            s.__exit__(None, None, None)


async def test_sick_targets_do_not_hurt_healthy_ones(
    servers: dict[str, MetricsServer], sqlite_url: str
) -> None:
    urls = {name: s.url for name, s in servers.items()} | {"refused": closed_port_url()}
    config = parse_config(config_for(urls))
    store = AsyncStore(Store(sqlite_url))
    metrics = DaemonMetrics()
    seen: dict[str, list[MetricSample]] = {}
    poller = Poller(
        config,
        store,
        metrics=metrics,
        rng=random.Random(1),
        on_sample=lambda name, res: seen.setdefault(name, []).append(res.sample),
    )
    stop = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(poller.run(stop))
    st = poller.status
    sick = ("refused", "hang", "err500", "huge", "garbage")
    # Until the healthy targets have served ten polls each (and the restart one has restarted), and every
    # sick target has failed at least twice: a state, however long a loaded box takes to get there.
    await until(
        lambda: (
            all(st[n].polls >= 10 for n in ("good1", "good2", "restart"))
            and all(st[n].failures >= 2 for n in sick)
        ),
        "10 good polls and 2 failures of each sick target",
    )
    stop.set()
    await asyncio.wait_for(task, 30)
    elapsed = time.monotonic() - started

    # Healthy targets: UP, and their samples in time order (how punctual they were is a benchmark's
    # question: benchmarks/results/poll.md and poll_hostile.md, not a timed assert).
    for name in ("good1", "good2"):
        assert st[name].state == InstanceState.UP, st[name].reason
        ts = [s.ts for s in seen[name]]
        assert ts == sorted(ts) and len(ts) == st[name].polls
    # Sick targets: right state, a reason a user can act on.
    assert st["refused"].state == InstanceState.DOWN and "refused" in (st["refused"].reason or "")
    assert st["hang"].state == InstanceState.DOWN and "within 0.5s" in (st["hang"].reason or "")
    assert "HTTP 500" in (st["err500"].reason or "")
    assert "exposition too large:" in (st["huge"].reason or "") and "byte cap" in (st["huge"].reason or "")
    assert servers["huge"].requests >= 1
    assert "no vLLM/Triton/SGLang/TGI/llama.cpp metrics" in (st["garbage"].reason or "") or "unparseable" in (
        st["garbage"].reason or ""
    )
    for name in sick:
        assert st[name].polls == 0 and st[name].failures >= 2
        # Backoff: far fewer attempts than the slots that passed (a slow box only widens the margin).
        assert st[name].failures < elapsed / INTERVAL / 2, (name, st[name].failures, elapsed)

    # Restart: one sample flagged, no negative rate anywhere.
    restart = seen["restart"]
    assert sum(s.counter_reset for s in restart) == 1
    for s in restart:
        assert s.prefix_queries is None or s.prefix_queries >= 0
        assert s.prompt_tokens_per_s is None or s.prompt_tokens_per_s >= 0

    # No sample lost: every good poll is in the database, exactly once.
    stored = store.store.all(MetricSample)
    for name in urls:
        assert sum(1 for s in stored if s.instance == name) == st[name].polls == len(seen.get(name, []))
    rows = {i.name: i for i in store.store.all(Instance)}
    assert rows["refused"].state == InstanceState.DOWN and "refused" in (rows["refused"].state_reason or "")
    assert rows["good1"].state == InstanceState.UP and rows["good1"].last_seen is not None
    page = metrics.registry.get_sample_value("charter_samples_stored_total")
    assert page == len(stored)
    assert (
        metrics.registry.get_sample_value(
            "charter_scrape_errors_total", {"target": "err500", "reason": "http"}
        )
        >= 1
    )
    store.close()


async def test_circuit_breaker_opens_then_recovers(sqlite_url: str) -> None:
    state = {"fail": True}

    def flaky(n: int, path: str) -> Response:
        return text_response("down\n", 503) if state["fail"] else growing_vllm(n, path)

    with MetricsServer(flaky) as server:
        config = parse_config(config_for({"flaky": server.url}))
        cooldown = 4.0
        poller = Poller(config, None, rng=random.Random(2), breaker_threshold=3, breaker_cooldown_s=cooldown)
        st = poller.status["flaky"]
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        await until(lambda: st.breaker_open_until is not None, "the circuit to open")
        assert "circuit open" in (st.reason or "")
        assert st.state == InstanceState.DOWN and st.failures == 3
        requests_when_opened = server.requests
        state["fail"] = False
        # While the circuit is open nothing is sent: watch until shortly before it may close.
        loop = asyncio.get_running_loop()
        while loop.time() < st.breaker_open_until - 0.5:
            assert server.requests == requests_when_opened, "a request went out while the circuit was open"
            await asyncio.sleep(0.05)
        # Cooldown over: the trial poll succeeds and closes the circuit.
        await until(
            lambda: st.state == InstanceState.UP and st.polls >= 1, "the trial poll to close the circuit"
        )
        stop.set()
        await task
        assert st.consecutive_failures == 0 and st.breaker_open_until is None


async def test_wake_polls_a_server_that_is_back_without_waiting_out_the_circuit() -> None:
    """A rollout that relaunched the server wakes its poller (issue 15 item 6: a relaunched vLLM showed DOWN
    for up to the cooldown after it was healthy, and a canary window saw no samples)."""
    state = {"fail": True}

    def flaky(n: int, path: str) -> Response:
        return text_response("down\n", 503) if state["fail"] else growing_vllm(n, path)

    with MetricsServer(flaky) as server:
        config = parse_config(config_for({"flaky": server.url}))
        poller = Poller(config, None, rng=random.Random(2), breaker_threshold=3, breaker_cooldown_s=3600.0)
        st = poller.status["flaky"]
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        await until(lambda: st.breaker_open_until is not None, "the circuit to open")
        state["fail"] = False
        assert st.state == InstanceState.DOWN
        poller.wake("flaky")
        poller.wake("not-a-target")  # unknown names are ignored
        await until(lambda: st.state == InstanceState.UP, "the woken poll, an hour before the cooldown ends")
        assert st.consecutive_failures == 0 and st.breaker_open_until is None
        stop.set()
        await task


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    rng = random.Random(3)
    for failures in range(1, 12):
        full = min(30.0, 1.0 * 2 ** (failures - 1))
        for _ in range(50):
            d = backoff_delay(1.0, failures, rng)
            assert full / 2 <= d <= full
    delays = {round(backoff_delay(1.0, 4, rng), 6) for _ in range(20)}
    assert len(delays) > 10  # jittered, not lockstep


async def test_no_sample_lost_when_the_database_is_briefly_unwritable(sqlite_url: str) -> None:
    with MetricsServer(growing_vllm) as server:
        config = parse_config(config_for({"a": server.url}))
        store = AsyncStore(Store(sqlite_url))
        poller = Poller(config, store)
        real = store.store.session
        broken = {"on": True}

        def flaky_session():  # the first writes fail as if the disk were full
            if broken["on"]:
                raise OSError("disk full")
            return real()

        store.store.session = flaky_session  # type: ignore[method-assign]
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        await until(lambda: poller.status["a"].polls >= 3, "three polls while the database refuses writes")
        assert poller.samples_written == 0
        broken["on"] = False
        await until(
            lambda: poller.samples_written >= poller.status["a"].polls >= 4, "the backlog to be written"
        )
        stop.set()
        await task
        assert len(store.store.all(MetricSample)) == poller.status["a"].polls == poller.samples_written
        store.close()


def many_engines_vllm(copies: int) -> str:
    """A valid vLLM exposition `copies` times over, each copy's series with its own `engine` label
    (no label set repeats, so nothing is a cache hit): big, legal, and expensive to parse."""
    lines = [line for line in VLLM_IDLE.splitlines() if line and not line.startswith("#")]
    out = []
    for i in range(copies):
        for line in lines:
            if "{" in line:
                out.append(line.replace("{", f'{{copy="{i}",', 1))
            else:
                name, value = line.split(" ", 1)
                out.append(f'{name}{{copy="{i}"}} {value}')
    return "\n".join(out) + "\n"


async def test_an_exposition_over_the_line_cap_is_refused_unparsed(monkeypatch: pytest.MonkeyPatch) -> None:
    from daemon import prom

    body = many_engines_vllm(3)  # ~1,800 lines
    parsed: list[int] = []
    real_steps = prom._parse_steps

    def counting(text, out, only, **kw):  # type: ignore[no-untyped-def]
        parsed.append(len(text))
        return real_steps(text, out, only, **kw)

    monkeypatch.setattr(prom, "_parse_steps", counting)
    with MetricsServer(lambda n, path: text_response(body)) as server:
        toml = config_for({"long": server.url}).replace(
            "[thresholds]", "max_exposition_lines = 1000\n[thresholds]"
        )
        poller = Poller(parse_config(toml), None)
        try:
            assert not await poller.poll_target(poller.targets["long"])
        finally:
            await poller.aclose()
    st = poller.status["long"]
    assert st.state == InstanceState.DOWN
    assert (
        st.reason
        == f"exposition too long: {body.count(chr(10))} lines > 1000-line cap (daemon.max_exposition_lines)"
    )
    assert parsed == []  # refused by counting newlines: the parser never saw it


async def test_a_large_exposition_does_not_stall_healthy_targets(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from daemon import prom

    big = many_engines_vllm(150).encode()  # ~90,000 lines, ~6 MB: legal under raised caps
    assert 5_000_000 < len(big) < 8_000_000
    # Whether the loop ran other work *while* each big exposition was parsed, counted in loop turns
    # (a ticker task), not in seconds: a parse that never yields gives 0 turns however fast the box.
    turns = {"n": 0}
    during: list[int] = []
    real = prom.parse_async

    async def watched(text, *args, **kw):  # type: ignore[no-untyped-def]
        before = turns["n"]
        try:
            return await real(text, *args, **kw)
        finally:
            if len(text) > 1_000_000:  # the big one (the healthy body is 50 KB)
                during.append(turns["n"] - before)

    monkeypatch.setattr(prom, "parse_async", watched)

    async def ticker() -> None:
        while True:
            turns["n"] += 1
            await asyncio.sleep(0.001)

    with (
        MetricsServer(growing_vllm) as good,
        MetricsServer(lambda n, path: (200, {"Content-Length": str(len(big))}, [big])) as huge,
    ):
        toml = (
            f"[daemon]\npoll_interval_s = {INTERVAL}\nmax_response_bytes = 8388608\n"
            f"max_exposition_lines = 100000\n[thresholds]\nwindow_s = 5\n"
            f'[[targets]]\nname = "good"\nurl = "{good.url}"\ntimeout_s = 5\n'
            f'[[targets]]\nname = "huge"\nurl = "{huge.url}"\ntimeout_s = 30\n'
        )
        poller = Poller(parse_config(toml), AsyncStore(Store(sqlite_url)), rng=random.Random(4))
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker())
        task = asyncio.create_task(poller.run(stop))
        deadline = time.monotonic() + 120
        while len(during) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert gc.get_freeze_count() > 0  # start-up objects moved out of the full GC passes' way
        stop.set()
        await asyncio.wait_for(task, 30)
        tick.cancel()
    st = poller.status
    assert len(during) >= 3 and st["huge"].polls >= 2, (during, st["huge"].reason)
    # Every big parse let the loop turn while it ran (sliced); one-go parsing would show zeros.
    assert all(n >= 1 for n in during), during
    assert st["good"].state == InstanceState.UP and st["good"].failures == 0, st["good"].reason
