"""Bench runs stored by another process reach the bus: the publisher over a real SQLite store.

`charter-tui bench` writes a `bench_run` row through its own `Store` (its own connection, as a
separate process would); the daemon's publisher must publish it once, with the summaries the TUI
shows, and never again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from daemon.bus import Bus, topic
from daemon.config import load_config
from daemon.bench import publisher as pub
from daemon.bench.records import (
    BenchResult,
    BenchRun,
    BenchRunView,
    CallRecord,
    Ceiling,
    RunResult,
    ServerWindow,
)
from daemon.service import DaemonService
from daemon.store import AsyncStore, Store

AGENT = "data/agents/document_processor.py"
TARGET = "http://127.0.0.1:8000"


def result(
    *,
    at: float,
    naive_hits: float = 300,
    opt_hits: float = 900,
    naive_s: float = 6.0,
    opt_s: float = 4.0,
    agent: str = AGENT,
    target: str = TARGET,
) -> BenchResult:
    """Two runs per mode over 1000 prompt tokens each, the same 950-token ceiling in both modes."""

    def run(mode: str, i: int, hits: float, makespan: float, ttft: float) -> RunResult:
        calls = [
            CallRecord(
                execution="c1",
                call_id="c1",
                prompt_chars=4000,
                sent_s=0.0,
                ttft_s=ttft,
                latency_s=makespan / 2,
            )
        ]
        return RunResult(
            mode=mode,
            round=i,
            run=0,
            input_line=1,
            makespan_s=makespan + i,  # type: ignore[arg-type]
            calls=calls,
            server=ServerWindow(engine="vllm", prefix_queries=1000, prefix_hits=hits),
            ceiling=Ceiling(block_size=32, prompt_tokens=1000, cached_tokens=950),
        )

    runs = [run("naive", i, naive_hits, naive_s, 0.5) for i in range(2)]
    runs += [run("optimized", i, opt_hits, opt_s, 0.2) for i in range(2)]
    return BenchResult(
        agent=agent,
        inputs="in.jsonl",
        target=target,
        engine="vllm",
        model="tiny",
        block_size=32,
        started_at=at,
        runs=runs,
    )


def write(url: str, *results: BenchResult) -> None:
    """As `charter-tui bench` does: its own Store, one row per result, closed afterwards."""
    store = Store(url)
    try:
        store.add_all([BenchRun.from_result(r) for r in results])
    finally:
        store.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bench.db'}"


@pytest.fixture
def store(url: str):  # type: ignore[no-untyped-def]
    s = AsyncStore(Store(url))
    yield s
    s.close()


def drain(sub) -> list:  # type: ignore[no-untyped-def]
    out = []
    while not sub.queue.empty():
        out.append(sub.queue.get_nowait())
    return out


async def test_a_stored_run_is_published_once_with_its_summaries(store: AsyncStore, url: str) -> None:
    write(url, result(at=1000.0))  # stored before the daemon started: the TUI's snapshot has it
    bus = Bus()
    sub = bus.subscribe("charter/v1/bench/#")
    publisher = pub.BenchPublisher(store, bus)
    await publisher.start()
    assert await publisher.poll() == 0 and drain(sub) == [], "runs older than the daemon are not re-sent"

    write(url, result(at=2000.0))
    assert await publisher.poll() == 1
    [event] = drain(sub)
    assert event.topic == topic("bench", AGENT) == f"charter/v1/bench/{AGENT}"
    view = event.payload
    assert isinstance(view, BenchRunView)
    assert (view.id, view.started_at, view.agent, view.target, view.engine, view.model) == (
        2,
        2000.0,
        AGENT,
        TARGET,
        "vllm",
        "tiny",
    )
    assert view.modes == ["naive", "optimized"] and view.error is None
    naive, opt = view.summaries["naive"], view.summaries["optimized"]
    assert (naive.runs, naive.hit_share, naive.ceiling_share) == (2, 0.3, 0.95)
    assert (opt.runs, opt.hit_share, opt.ceiling_share) == (2, 0.9, 0.95)
    # Makespans 6 and 7 s naive, 4 and 5 s optimized: medians 6.5 and 4.5, speedup 6.5/4.5.
    assert (naive.makespan_median_s, opt.makespan_median_s) == (6.5, 4.5)
    assert (naive.ttft_median_s, opt.ttft_median_s) == (0.5, 0.2)
    assert view.speedup == pytest.approx(6.5 / 4.5)
    assert view.of_ceiling == pytest.approx(0.9 / 0.95)

    assert await publisher.poll() == 0 and drain(sub) == [], "a published run is not published again"
    write(url, result(at=3000.0, opt_hits=500))
    assert await publisher.poll() == 1
    [event] = drain(sub)
    assert event.payload.id == 3 and event.payload.summaries["optimized"].hit_share == 0.5
    assert publisher.published == 2


async def test_the_loop_publishes_runs_as_they_are_stored_and_stops(store: AsyncStore, url: str) -> None:
    bus = Bus()
    sub = bus.subscribe("charter/v1/bench/#")
    publisher = pub.BenchPublisher(store, bus, every_s=0.05)
    await publisher.start()
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    try:
        await asyncio.to_thread(write, url, result(at=10.0, agent="a.py"), result(at=11.0, agent="b.py"))
        first = await asyncio.wait_for(sub.get(), 5)
        second = await asyncio.wait_for(sub.get(), 5)
        assert [first.topic, second.topic] == [topic("bench", "a.py"), topic("bench", "b.py")]
        await asyncio.sleep(0.3)  # several more polls
        assert sub.queue.empty() and publisher.published == 2
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)


def test_latest_runs_is_the_newest_per_agent_and_target(url: str) -> None:
    write(
        url,
        result(at=1.0, opt_hits=100),
        result(at=2.0, opt_hits=200),
        result(at=3.0, opt_hits=300, target="http://other:8000"),
        result(at=4.0, opt_hits=400, agent="b.py"),
    )
    store = Store(url)
    try:
        views = pub.latest_runs(store)
    finally:
        store.close()
    assert [(v.agent, v.target, v.summaries["optimized"].hit_share) for v in views] == [
        (AGENT, TARGET, 0.2),
        (AGENT, "http://other:8000", 0.3),
        ("b.py", TARGET, 0.4),
    ]


def test_a_database_without_the_bench_table_has_no_runs_until_the_publisher_creates_it(url: str) -> None:
    store = Store(url)
    try:
        BenchRun.__table__.drop(store.engine)  # type: ignore[attr-defined]  # as a daemon-only database
        assert pub.latest_runs(store) == []
        pub.ensure_table(store)
        assert pub.newest_id(store) == 0 and pub.runs_after(store, 0) == []
    finally:
        store.close()


def test_a_row_without_a_readable_result_falls_back_on_its_summary_columns() -> None:
    row = BenchRun(
        id=5,
        started_at=9.0,
        agent="x.py",
        target=TARGET,
        engine="vllm",
        modes="naive,optimized",
        naive_hit_share=0.2,
        optimized_hit_share=0.6,
        ceiling_share=0.8,
        speedup=1.3,
        error="boom",
        result={"agent": 1},
    )
    view = BenchRunView.from_row(row)
    assert view.summaries["naive"].hit_share == 0.2 and view.summaries["optimized"].ceiling_share == 0.8
    assert view.speedup == 1.3 and view.error == "boom" and view.of_ceiling == pytest.approx(0.75)


async def test_the_daemon_publishes_runs_that_another_process_stores(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[daemon]\nmetrics_port = 0\n")
    url = f"sqlite:///{tmp_path / 'd.db'}"
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", url)
    monkeypatch.setattr(pub, "POLL_S", 0.1)
    service = DaemonService(load_config(config))
    sub = service.bus.subscribe("charter/v1/bench/#")
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        await asyncio.to_thread(write, url, result(at=50.0, naive_s=3.0, opt_s=1.0))
        event = await asyncio.wait_for(sub.get(), 10)
        assert event.topic == topic("bench", AGENT)
        assert event.payload.speedup == pytest.approx(3.5 / 1.5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
