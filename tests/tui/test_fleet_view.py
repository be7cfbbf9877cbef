"""The TUI attached to several daemons (charter_tui/fleet.py): each daemon's state apart, Instances grouped by
daemon with a summary row per box, the per-daemon screens on the selected one, a dead daemon said so.

Events carry their daemon as the MQTT source gives them (`Event.daemon`); here they are applied directly, the
broker path itself is tests/integration/test_fleet.py."""

from __future__ import annotations

from charter_tui.fleet import Fleet, row_key, split_row_key
from daemon.bus import Event, topic
from daemon.models import Instance, InstanceState, MetricSample, Rollout
from daemon.topics import LIVENESS_TOPIC, DaemonOnline
from tests.tui.fixtures import NOW
from tests.tui.helpers import screen_text, settle, table_rows


def box_events(daemon: str, names: list[str], rollout_state: str = "PENDING_APPROVAL") -> list[Event]:
    events = []
    for name in names:
        events.append(
            Event(
                topic("instance", name), Instance(name=name, url="http://x:1", state=InstanceState.UP), daemon
            )
        )
        events.append(
            Event(topic("sample", name), MetricSample(instance=name, ts=NOW, window_s=1.0, waiting=3), daemon)
        )
    events.append(
        Event(
            topic("rollout", "1"),
            Rollout(id=1, title=f"{daemon} change", targets=names[:1], state=rollout_state),
            daemon,
        )
    )
    return events


def test_two_daemons_with_the_same_names_and_rollout_ids_stay_apart() -> None:
    fleet = Fleet()
    for event in box_events("box-b", ["vllm"], "COMPLETED") + box_events("box-a", ["vllm"]):
        fleet.apply(event)
    assert fleet.ids() == ["box-a", "box-b"] and fleet.is_fleet
    assert fleet.current_id == "box-a"  # the first by id until one is chosen
    assert fleet.state_of("box-a").rollouts[1].state == "PENDING_APPROVAL"
    assert fleet.state_of("box-b").rollouts[1].state == "COMPLETED"
    assert fleet.select_next() == "box-b" and fleet.current.rollouts[1].title == "box-b change"
    assert fleet.select_next() == "box-a"
    assert split_row_key(row_key("box-a", "vllm")) == ("box-a", "vllm")
    assert split_row_key(row_key("box-a")) == ("box-a", "")


def test_in_process_there_is_one_daemon_and_no_fleet() -> None:
    fleet = Fleet()
    fleet.apply(Event(topic("instance", "vllm"), Instance(name="vllm", url="http://x:1")))
    assert fleet.ids() == [] and not fleet.is_fleet and fleet.current_id is None
    assert list(fleet.current.instances) == ["vllm"]


async def test_instances_group_by_daemon_and_d_switches_the_rollouts_screen(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(data=False)
    async with app.run_test(size=(160, 48)) as pilot:
        for event in box_events("box-a", ["vllm", "knob"]) + box_events("box-b", ["vllm"], "COMPLETED"):
            app._apply(event)
        app._apply(Event(LIVENESS_TOPIC, DaemonOnline(online=False, reason="connection lost"), "box-b"))
        await settle(app, pilot)
        rows = table_rows(app, "#instances")
        assert list(rows) == ["box-a/", "box-a/knob", "box-a/vllm", "box-b/", "box-b/vllm"]
        assert rows["box-a/"][1] == "● online" and rows["box-a/"][2] == "2/2 up · 1 to approve"
        assert rows["box-b/"][1] == "○ connection lost"
        assert screen_text(app).splitlines()[0].rstrip().endswith("box-a 1/2 · ● 2/2 up")

        await pilot.press("5")
        await settle(app, pilot)
        assert list(table_rows(app, "#queue")) == ["1"]  # box-a's rollout 1, waiting
        await pilot.press("d")
        await settle(app, pilot)
        assert app.fleet.current_id == "box-b"
        assert list(table_rows(app, "#queue")) == [] and "1" in table_rows(app, "#history")
        assert "box-b 2/2 · ▲ box-b offline (connection lost)" in screen_text(app).splitlines()[0]

        # Filtering by a daemon's id shows that box and all its targets.
        await pilot.press("1")
        await pilot.press("slash")
        await pilot.press(*"box-b")
        await pilot.press("enter")
        await settle(app, pilot)
        assert list(table_rows(app, "#instances")) == ["box-b/", "box-b/vllm"]
