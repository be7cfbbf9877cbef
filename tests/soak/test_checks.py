"""The soak's own checks can fail: each invariant is fed the bad case it exists to catch.

A soak that reports zero violations proves something only if its checks see violations when there
are some; these tests build each one (on a real SQLite store with the daemon's schema, real knob
files, the real replay templates) and assert it is reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.soak.checks import Observer
from benchmarks.soak.replay import Replay, Template, fixtures_dir
from benchmarks.soak.rig import DaemonProc, plan_targets, prepare_knobs
from daemon.models import AuditEvent, Rollout
from daemon.store import Store


def observer(tmp_path: Path) -> tuple[Observer, Store]:
    daemon = DaemonProc(tmp_path, tmp_path / "config.toml", metrics_port=9)
    store = Store(f"sqlite:///{daemon.db}")
    prepare_knobs(tmp_path)
    return Observer(daemon, plan_targets(20, tmp_path), started=0.0, stuck_bound_s=10.0), store


def rollout(
    rid: int, state: str, value: str, previous: str | None, targets: tuple[str, ...] = ("knob-a",)
) -> Rollout:
    prev = {t: {"values": {"batch": previous}} for t in targets} if previous is not None else {}
    return Rollout(
        id=rid,
        state=state,
        targets=list(targets),
        changes=[{"param": "batch", "value": value}],
        previous_config=prev,
    )


def approve(rid: int, actor: str = "ops") -> AuditEvent:
    return AuditEvent(actor=actor, entity="rollout", entity_id=str(rid), action="approve")


def kinds(o: Observer) -> list[str]:
    return [v.kind for v in o.violations]


def set_knob(tmp_path: Path, name: str, value: str) -> None:
    (tmp_path / f"{name}.json").write_text(json.dumps({"batch": value}))


def test_a_consistent_history_has_no_violation(tmp_path: Path) -> None:
    o, store = observer(tmp_path)
    store.add_all(
        [
            rollout(1, "COMPLETED", "16", "8"),
            approve(1),
            rollout(2, "ROLLED_BACK", "64", "16"),
            approve(2),
            rollout(3, "REJECTED", "32", None),
        ]
    )
    set_knob(tmp_path, "knob-a", "16")
    o.final_checks(tmp_path, {"ops", "daemon"})
    assert o.violations == []


def test_a_knob_that_does_not_run_what_the_record_says_is_reported(tmp_path: Path) -> None:
    o, store = observer(tmp_path)
    store.add_all([rollout(1, "COMPLETED", "16", "8"), approve(1)])
    # knob-a still runs 8: the rollout says COMPLETED with 16
    o.final_checks(tmp_path, {"ops", "daemon"})
    assert kinds(o) == ["knob_mismatch"]


def test_a_rolled_back_rollout_whose_record_disagrees_with_the_past_is_reported(tmp_path: Path) -> None:
    o, store = observer(tmp_path)
    store.add_all([rollout(1, "ROLLED_BACK", "16", "4"), approve(1)])  # it ran 8 before, not 4
    o.final_checks(tmp_path, {"ops", "daemon"})
    assert kinds(o) == ["record"]


def test_an_approved_rollout_left_unfinished_is_reported(tmp_path: Path) -> None:
    o, store = observer(tmp_path)
    store.add_all(
        [
            rollout(1, "CANARY", "16", "8"),
            approve(1),
            rollout(2, "REJECTED", "16", None),
            rollout(3, "REJECTED", "16", None),
            approve(3),
        ]
    )  # approved, then ended as if never run
    o.final_checks(tmp_path, {"ops", "daemon"})
    assert kinds(o) == ["not_final", "not_final"]
    assert "approved rollout 3 ended REJECTED" in o.violations[1].text


def test_a_rollout_changed_by_someone_not_allowed_is_reported(tmp_path: Path) -> None:
    o, store = observer(tmp_path)
    store.add_all(
        [
            rollout(1, "REJECTED", "16", None),
            AuditEvent(actor="mallory", entity="rollout", entity_id="1", action="reject"),
            rollout(2, "REJECTED", "16", None),
            AuditEvent(actor="team", entity="rollout", entity_id="2", action="reject"),
        ]
    )
    o.final_checks(tmp_path, {"ops", "daemon", "team"})
    assert kinds(o) == ["foreign_actor", "foreign_actor"]


def test_a_rollout_stuck_in_an_active_state_is_reported_counting_only_daemon_up_time(tmp_path: Path) -> None:
    o, store = observer(tmp_path)
    store.add_all([rollout(1, "CANARY", "16", "8")])
    for _ in range(30):
        o._check_stuck(0.0)  # the daemon is down: no time counts
    assert o.violations == []
    for _ in range(6):
        o._check_stuck(2.0)
    assert kinds(o) == ["stuck"], "12 s of up-time over the 10 s bound"
    o._check_stuck(2.0)
    assert len(o.violations) == 1, "reported once"


def test_missed_polls_after_start_up_are_violations_and_start_up_ones_are_reported_apart(
    tmp_path: Path,
) -> None:
    o, _ = observer(tmp_path)
    healthy = next(s.name for s in o.specs if s.healthy)
    hostile = next(s.name for s in o.specs if s.kind == "hang")
    o.lives = {
        1: {
            "first": {healthy: (10.0, 3.0), hostile: (2.0, 0.0)},
            "last": {healthy: (100.0, 3.0), hostile: (9.0, 5.0)},
        }
    }
    o.check_polls()
    assert o.violations == [], (
        "misses of a hostile target, and those of the start-up window, are not violations"
    )
    figures = o.poll_figures()
    assert (figures["healthy_polls"], figures["healthy_missed"], figures["startup_missed"]) == (90, 0, 3)
    o.lives[2] = {"first": {healthy: (5.0, 0.0)}, "last": {healthy: (50.0, 2.0)}}
    o.check_polls()
    assert kinds(o) == ["missed_polls"]


def test_replayed_counters_advance_and_histograms_stay_monotone() -> None:
    t = Template((fixtures_dir() / "vllm-0.32.0-cpu.prom").read_text())
    from prometheus_client.parser import text_string_to_metric_families

    def values(elapsed: float) -> dict[tuple[str, tuple], float]:
        out = {}
        for fam in text_string_to_metric_families(t.render(elapsed).decode()):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    a, b = values(10.0), values(20.0)
    grown = [k for k in a if b[k] > a[k]]
    assert any(k[0] == "vllm:generation_tokens_total" for k in grown)
    assert any(k[0].endswith("_bucket") for k in grown)
    assert all(b[k] >= a[k] for k in a if k[0].endswith(("_total", "_count", "_bucket"))), (
        "counters never fall"
    )
    buckets = sorted(
        (
            (float(dict(k[1])["le"]), v)
            for k, v in b.items()
            if k[0] == "vllm:time_to_first_token_seconds_bucket"
        )
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets), "cumulative in le"


def test_the_knob_regression_halves_the_token_rate_without_a_counter_reset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    knob = tmp_path / "knob.json"
    knob.write_text(json.dumps({"batch": "8"}))
    clock = [1000.0]
    monkeypatch.setattr("benchmarks.soak.replay.time.time", lambda: clock[0])
    replay = Replay({"epoch": 0.0, "targets": []})
    target = {"name": "k", "kind": "knob", "knob": str(knob)}

    def tokens() -> float:
        line = next(
            ln
            for ln in replay.body(target).decode().splitlines()
            if ln.startswith("vllm:generation_tokens_total")
        )
        return float(line.rsplit(" ", 1)[1])

    first = tokens()
    clock[0] += 10
    good = tokens() - first
    knob.write_text(json.dumps({"batch": "64"}))
    before = tokens()
    clock[0] += 10
    bad = tokens() - before
    assert good == pytest.approx(1000.0) and bad == pytest.approx(500.0)
