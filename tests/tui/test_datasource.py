"""The in-process DataSource over a real Bus and a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from charter_tui.compose import embedded_app
from charter_tui.datasource import BusSource, ReadOnlyError, decode
from charter_tui.state import LIVE_SIGNALS
from daemon.contract import AuthorizedCommand
from daemon.topics import DaemonReady
from daemon.views import read_history, read_snapshot
from daemon.bus import Bus, Event, topic
from daemon.models import MetricAggregate, MetricSample, Rollout
from daemon.store import AsyncStore, Store
from tests.tui import fixtures as fx
from tests.tui.helpers import settle, static_text, table_rows


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = AsyncStore(Store(f"sqlite:///{tmp_path / 'ds.db'}"))
    yield s
    s.close()


def fill(store: Store, running: bool = True) -> None:
    store.add_all(fx.instances())
    store.add_all(fx.samples("vllm-a", n=30))
    store.add_all([fx.compile_record()])
    # With the embedded daemon the real rollout manager would act on a running rollout whose
    # targets are not configured; those tests store only pending and finished ones.
    store.add_all([r for r in fx.rollouts() if running or r.state in ("PENDING_APPROVAL", "ROLLED_BACK")])
    store.add_all(fx.recommendations())
    store.add_all(fx.audit())
    store.add_all(
        [
            MetricAggregate(
                instance="vllm-a",
                minute=int(fx.NOW - 7200) // 60 * 60,
                samples=60,
                values={"ttft_p95_s": 0.5, "prefix_hit_rate": 0.4},
            )
        ]
    )


async def test_snapshot_reads_what_the_daemon_already_stored(store: AsyncStore) -> None:
    fill(store.store)
    events = await store.call(read_snapshot, store.store, time.time())  # what DaemonService.snapshot() runs
    kinds = [e.topic.split("/")[2] for e in events]
    assert kinds.count("instance") == 3 and kinds.count("rollout") == 3 and kinds.count("compile") == 1
    assert kinds.count("audit") == 3 and kinds.count("recommendation") == 2
    # Samples are recent-only (the store holds the last ten minutes for the sparklines).
    assert kinds.count("sample") == 0, "fixture samples end at NOW, long before this test's wall clock"


async def test_history_merges_aggregates_and_raw_samples_in_time_order(store: AsyncStore) -> None:
    fill(store.store)
    rows = await store.call(read_history, store.store, "vllm-a", fx.NOW - 86400, LIVE_SIGNALS)
    assert len(rows) == 31
    assert rows[0][1]["ttft_p95_s"] == 0.5, "the per-minute aggregate comes first"
    assert [t for t, _ in rows] == sorted(t for t, _ in rows)


async def test_commands_are_published_and_readonly_refuses() -> None:
    bus = Bus()
    sub = bus.subscribe("charter/v1/command/#")
    await BusSource(bus).send_command(4, "approve", actor="alice", comment="ok")
    event = sub.queue.get_nowait()
    assert event.topic == "charter/v1/command/rollout/approve", "one topic form: the action, never the id"
    assert isinstance(event.payload, AuthorizedCommand)
    assert (event.payload.identity, event.payload.via) == ("alice", "local")
    command = event.payload.command
    assert (command.action, command.id, command.comment) == ("approve", 4, "ok") and len(
        command.request_id
    ) == 32
    with pytest.raises(ReadOnlyError):
        await BusSource(bus, readonly=True).send_command(4, "approve", actor="alice")
    with pytest.raises(ValueError):
        await BusSource(bus).send_command(4, "delete", actor="alice")
    assert sub.queue.empty()


async def test_events_skip_commands_and_decode_json_payloads() -> None:
    bus = Bus()
    source = BusSource(bus)
    bus.publish(topic("command/rollout", "approve"), {"action": "approve"})
    sample = fx.samples(n=1)[0]
    bus.publish(topic("sample", "vllm-a"), json.loads(sample.model_dump_json()))  # as MQTT delivers it
    event = await asyncio.wait_for(anext(source.events()), 1)
    assert isinstance(event.payload, MetricSample) and event.payload.ttft_p95_s == sample.ttft_p95_s
    assert decode(Event("charter/v1/daemon/ready", {"targets": 1})).payload == DaemonReady(targets=1)
    assert decode(Event("charter/v1/unknown/x", {"x": 1})).payload == {"x": 1}, "no model: left as it is"
    source.close()
    assert source.subscription not in bus.subscriptions


async def test_app_with_embedded_daemon_starts_from_the_store(make_loaded, tmp_path: Path) -> None:
    loaded = make_loaded()
    s = Store(loaded.database_url)
    fill(s, running=False)
    s.close()
    app = embedded_app(loaded, clock=fx.fixed_clock)
    async with app.run_test(size=(120, 30)) as pilot:
        await app.daemon.ready.wait()
        await asyncio.wait_for(app.snapshot_loaded.wait(), 10)
        await settle(app, pilot)
        # Nothing is configured (and discovery is off in tests): the targets the store remembers are an
        # earlier config's, not shown as live (issue 15), while its rollouts and audit log are.
        assert table_rows(app, "#instances") == {}
        await pilot.press("5")
        await settle(app, pilot)
        assert list(table_rows(app, "#queue")) == ["11"] and list(table_rows(app, "#history")) == ["9"]
        assert "daemon   propose - → PENDING_APPROVAL" in (await _detail_of(app, pilot))
        # A live update after the snapshot still lands.
        app.source.bus.publish(
            topic("rollout", "11"),
            Rollout(id=11, state="REJECTED", updated_at=fx.NOW + 1, created_at=fx.NOW - 45, title="x"),
        )
        await settle(app, pilot)
        assert list(table_rows(app, "#queue")) == []
        await pilot.press("q")


async def _detail_of(app, pilot, *keys: str) -> str:  # type: ignore[no-untyped-def]
    if keys:
        await pilot.press(*keys)
    await settle(app, pilot)
    return static_text(app, "#rollout")


async def test_snapshot_leaves_out_targets_no_longer_configured(store: AsyncStore) -> None:
    """A target the database remembers from an earlier config (issue 15: the demo's `local-vllm`) is not
    shown as "UP", counted, or recommended for; rollouts and the audit log stay whole."""
    fill(store.store)
    everything = await store.call(read_snapshot, store.store, time.time())
    names = {e.payload.name for e in everything if e.topic.split("/")[2] == "instance"}
    keep = sorted(names)[:1]
    events = await store.call(read_snapshot, store.store, time.time(), set(keep))

    def of(kind: str, items: list) -> list:  # type: ignore[type-arg]
        return [e.payload for e in items if e.topic.split("/")[2] == kind]

    assert [i.name for i in of("instance", events)] == keep and len(names) == 3
    assert {b.instance for b in of("bottleneck", events)} <= set(keep)
    assert all(r.instance in (None, *keep) for r in of("recommendation", events))
    assert len(of("recommendation", events)) < len(of("recommendation", everything))
    assert len(of("rollout", events)) == len(of("rollout", everything)) == 3
    assert len(of("audit", events)) == len(of("audit", everything))
