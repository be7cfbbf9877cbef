"""The TUI's model of the daemon: events in, what the screens read out (no Textual involved)."""

from __future__ import annotations

from charter_tui.state import RING_SIZE, DaemonState, topic_kind
from daemon.bus import Event, topic
from daemon.models import MetricSample, Rollout
from tests.tui import fixtures as fx


def state_with_everything() -> DaemonState:
    from daemon.bus import Bus

    bus = Bus()
    sub = bus.subscribe()
    fx.publish_all(bus)
    state = DaemonState()
    while not sub.queue.empty():
        state.apply(sub.queue.get_nowait())
    return state


def test_topic_kind() -> None:
    assert topic_kind("charter/v1/compile//agents/a.py") == "compile"
    assert topic_kind("charter/v1/command/rollout/3") == "command"


def test_every_kind_lands_where_the_screens_read_it() -> None:
    s = state_with_everything()
    assert s.instance_names() == ["sglang-c", "triton-b", "vllm-a"]
    assert s.latest["vllm-a"].ts == fx.NOW
    assert len(s.series["vllm-a"].ts) == 120
    assert [b.id for b in s.sorted_bottlenecks()] == [2, 1, 3]
    assert [r.id for r in s.pending_rollouts()] == [11, 10]
    assert [r.id for r in s.rollout_history()] == [9]
    assert [a.action for a in s.audit_for("rollout", "10")] == ["propose", "approve"]
    assert s.compiles[fx.AGENT_PATH].last_good is s.compiles[fx.AGENT_PATH].latest


def test_a_failed_compile_keeps_the_last_good_one() -> None:
    s = DaemonState()
    good = fx.compile_record(at=fx.NOW - 10)
    s.apply(Event(topic("compile", good.path), good))
    bad = fx.syntax_error_record(at=fx.NOW - 5)
    s.apply(Event(topic("compile", bad.path), bad))
    view = s.compiles[good.path]
    assert view.latest is bad and view.last_good is good
    # An older record arriving late (start-up snapshot after a live event) does not win.
    s.apply(Event(topic("compile", good.path), fx.compile_record(at=fx.NOW - 20)))
    assert s.compiles[good.path].latest is bad


def test_older_rollout_updates_do_not_overwrite_newer_ones() -> None:
    s = DaemonState()
    new = Rollout(id=1, state="CANARY", updated_at=20.0)
    s.apply(Event(topic("rollout", "1"), new))
    s.apply(Event(topic("rollout", "1"), Rollout(id=1, state="PENDING_APPROVAL", updated_at=10.0)))
    assert s.rollouts[1].state == "CANARY"


def test_sample_ring_is_bounded_and_monotonic() -> None:
    s = DaemonState()
    for i in range(RING_SIZE + 50):
        s.apply(Event(topic("sample", "a"), MetricSample(instance="a", ts=float(i), ttft_p95_s=float(i))))
    s.apply(
        Event(topic("sample", "a"), MetricSample(instance="a", ts=3.0, ttft_p95_s=-1.0))
    )  # a late duplicate
    series = s.series["a"]
    assert len(series.ts) == RING_SIZE and series.ts[-1] == RING_SIZE + 49
    assert series.column("ttft_p95_s")[-1] == RING_SIZE + 49
    assert series.column("ttft_p95_s", since=RING_SIZE + 45.0) == [645.0, 646.0, 647.0, 648.0, 649.0]


def test_unknown_topics_are_ignored() -> None:
    s = DaemonState()
    assert s.apply(Event("charter/v1/something/else", {"x": 1})) is None
    assert s.apply(Event(topic("daemon", "error"), {"loop": "poller"})) == "daemon"
    assert s.daemon_status == "error"
