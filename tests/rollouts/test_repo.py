"""`RolloutRepo.mutate`, the path every command and every manager step takes, on a real SQLite store.

An illegal transition sent through the repository is refused under the row lock: nothing is written,
no audit event, the callback never runs. Legal ones write the row and their event together.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from daemon.models import AuditEvent, Rollout
from daemon.rollouts.machine import TRANSITIONS, IllegalTransition
from daemon.actuators.change import Change
from daemon.rollouts.model import RolloutState as S
from daemon.rollouts.repo import (
    RolloutNotFound,
    RolloutRepo,
    StateChanged,
    changes_of,
    public_event,
    public_view,
)
from daemon.store import Store

PAIRS = sorted(itertools.product(S, S))
ILLEGAL = [(a, b) for a, b in PAIRS if a != b and b not in TRANSITIONS[a]]
LEGAL = [(a, b) for a, b in PAIRS if b in TRANSITIONS[a]]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolloutRepo]:
    # One database for the module: a store per case would spend most of the run on migrations.
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('repo') / 'charter.db'}")
    yield RolloutRepo(store)
    store.close()


def rollout_in(repo: RolloutRepo, state: S) -> int:
    row = repo.create(
        title="t", targets=["a"], changes=[Change(param="max_num_seqs", value="8")], actor="test"
    )
    # Put it straight into `state` (as if earlier steps had happened), bypassing the repository.
    with repo.store.session() as s:
        s.execute(sa.update(Rollout).where(Rollout.id == row.id).values(state=state.value))
        s.commit()
    return row.id


def test_the_lists_cover_the_machine() -> None:
    assert len(ILLEGAL) > 50 and len(LEGAL) == sum(len(t) for t in TRANSITIONS.values())


@pytest.mark.parametrize(("a", "b"), ILLEGAL, ids=[f"{a.value}->{b.value}" for a, b in ILLEGAL])
def test_illegal_transition_through_the_repo_is_refused_and_writes_nothing(
    repo: RolloutRepo, a: S, b: S
) -> None:
    rid = rollout_in(repo, a)
    events_before = len(repo.events(rid))
    called: list[bool] = []
    with pytest.raises(IllegalTransition, match=f"cannot go from {a.value} to {b.value}"):
        repo.mutate(rid, lambda d: called.append(True), actor="alice", action="step", to_state=b)
    assert called == []
    assert repo.get(rid).state == a.value
    assert len(repo.events(rid)) == events_before


@pytest.mark.parametrize(("a", "b"), LEGAL, ids=[f"{a.value}->{b.value}" for a, b in LEGAL])
def test_legal_transition_writes_the_row_and_its_audit_event(repo: RolloutRepo, a: S, b: S) -> None:
    rid = rollout_in(repo, a)
    row = repo.mutate(rid, actor="alice", action="step", to_state=b, comment="why")
    assert row.state == b.value and repo.get(rid).state == b.value
    last = repo.events(rid)[-1]
    assert (last.actor, last.action, last.from_state, last.to_state, last.comment) == (
        "alice",
        "step",
        a.value,
        b.value,
        "why",
    )


def test_expect_is_checked_before_anything_runs(repo: RolloutRepo) -> None:
    rid = rollout_in(repo, S.PAUSED)
    with pytest.raises(StateChanged, match=f"rollout {rid} is PAUSED, expected CANARY/VALIDATING"):
        repo.mutate(rid, actor="m", action="step", to_state=S.ROLLING_OUT, expect=[S.VALIDATING, S.CANARY])
    assert repo.get(rid).state == S.PAUSED.value


def test_a_failing_callback_writes_nothing(repo: RolloutRepo) -> None:
    rid = rollout_in(repo, S.APPROVED)
    events_before = len(repo.events(rid))

    def boom(draft) -> None:
        draft.stage.reason = "half-written"
        raise RuntimeError("actuator said no")

    with pytest.raises(RuntimeError):
        repo.mutate(rid, boom, actor="m", action="step", to_state=S.CANARY)
    row = repo.get(rid)
    assert row.state == S.APPROVED.value and (row.stage_detail or {}).get("reason") != "half-written"
    assert len(repo.events(rid)) == events_before


def test_unknown_rollout_is_not_found(repo: RolloutRepo) -> None:
    with pytest.raises(RolloutNotFound, match="no rollout 999999"):
        repo.mutate(999999, actor="m", action="step", to_state=S.APPROVED)


def test_audit_records_an_event_without_changing_the_row(repo: RolloutRepo) -> None:
    rid = rollout_in(repo, S.CANARY)
    before = repo.get(rid)
    repo.audit(rid, "bob", "refused", comment="rollback needs ...")
    last = repo.events(rid)[-1]
    assert (last.actor, last.action, last.from_state, last.to_state, last.comment) == (
        "bob",
        "refused",
        "CANARY",
        "CANARY",
        "rollback needs ...",
    )
    after = repo.get(rid)
    assert (after.state, after.updated_at) == (before.state, before.updated_at)


def test_audit_of_an_unknown_rollout_still_records_who_tried(repo: RolloutRepo) -> None:
    repo.audit(888888, "bob", "approve", comment="no such rollout")
    [event] = repo.events(888888)
    assert (event.actor, event.from_state, event.to_state) == ("bob", None, None)


def test_changed_since_returns_rows_updated_after_ts_oldest_first(repo: RolloutRepo) -> None:
    a = rollout_in(repo, S.APPROVED)
    b = rollout_in(repo, S.APPROVED)
    cut = max(repo.get(a).updated_at, repo.get(b).updated_at)
    repo.mutate(b, actor="m", action="step", to_state=S.CANARY)
    repo.mutate(a, actor="m", action="step", to_state=S.CANARY)
    changed = [r.id for r in repo.changed_since(cut)]
    assert changed[-2:] == [b, a]
    assert repo.changed_since(repo.get(a).updated_at) == []
    assert len(repo.changed_since(0, limit=1)) == 1


def test_list_filters_by_state_newest_first(repo: RolloutRepo) -> None:
    rollout_in(repo, S.CANARY)  # so the filter has something to leave out even when this test runs alone
    a = rollout_in(repo, S.REJECTED)
    b = rollout_in(repo, S.REJECTED)
    ids = [r.id for r in repo.list([S.REJECTED])]
    assert ids.index(b) < ids.index(a)
    assert all(r.state == S.REJECTED.value for r in repo.list([S.REJECTED]))
    assert len(repo.list(limit=2)) == 2 and len(repo.list()) >= 3


def test_public_view_masks_secrets_and_leaves_the_stored_row_alone(repo: RolloutRepo) -> None:
    row = repo.create(
        title="relaunch with --api-key sk-live-123",
        targets=["a"],
        changes=[Change(param="max_num_seqs", value="8")],
        actor="test",
    )

    def remember_config(d) -> None:
        d.previous_config = {
            "argv": ["vllm", "serve", "--api-key", "sk-live-123"],
            "env": {"HF_TOKEN": "hf_abc"},
        }

    repo.mutate(row.id, remember_config, actor="m", action="snapshot")
    stored = repo.get(row.id)
    shown = public_view(stored)
    text = shown.model_dump_json()
    assert "sk-live-123" not in text and "hf_abc" not in text and "***" in text
    assert shown.title == "relaunch with --api-key ***"
    assert changes_of(shown) == changes_of(stored) == [Change(param="max_num_seqs", value="8")]
    # What a rollback restores is untouched.
    again = repo.get(row.id)
    assert (
        again.previous_config["argv"][-1] == "sk-live-123"
        and again.previous_config["env"]["HF_TOKEN"] == "hf_abc"
    )


def test_public_event_masks_the_comment_only(repo: RolloutRepo) -> None:
    rid = rollout_in(repo, S.CANARY)
    repo.audit(rid, "m", "failed", comment="relaunch failed: vllm serve --api-key sk-live-9 exited 1")
    event = repo.events(rid)[-1]
    shown = public_event(event)
    assert shown.comment == "relaunch failed: vllm serve --api-key *** exited 1"
    assert (shown.actor, shown.action, shown.id) == (event.actor, event.action, event.id)
    assert event.comment.endswith("sk-live-9 exited 1")  # the original is not changed in place
    quiet = repo.events(rid)[0]  # the proposal, without a comment: nothing to mask
    assert quiet.comment is None and public_event(quiet) is quiet


def test_create_stores_the_proposal_and_its_audit_event(repo: RolloutRepo) -> None:
    row = repo.create(
        title="more seqs",
        targets=["a", "b"],
        changes=[Change(param="max_num_seqs", value=64)],
        actor="optimizer",
        reason="queue builds up",
        signals=["QUEUE_BUILDUP"],
        recommendation_id=None,
    )
    stored = repo.get(row.id)
    assert (stored.state, stored.title, stored.targets) == ("PENDING_APPROVAL", "more seqs", ["a", "b"])
    assert changes_of(stored) == [Change(param="max_num_seqs", value=64)]
    stage = stored.stage_detail
    assert (stage["signals"], stage["reason"], stage["proposed_by"]) == (
        ["QUEUE_BUILDUP"],
        "queue builds up",
        "optimizer",
    )
    [event] = repo.events(row.id)
    assert (event.actor, event.action, event.from_state, event.to_state, event.comment, event.entity_id) == (
        "optimizer",
        "propose",
        None,
        "PENDING_APPROVAL",
        "queue builds up",
        str(row.id),
    )


def test_events_come_back_in_the_order_they_happened(repo: RolloutRepo) -> None:
    rid = rollout_in(repo, S.APPROVED)
    for action in ("one", "two", "three"):
        repo.audit(rid, "m", action)
    assert [e.action for e in repo.events(rid)] == ["propose", "one", "two", "three"]


def test_a_callback_edits_the_drafts_json_in_place_and_it_is_saved(repo: RolloutRepo) -> None:
    rid = rollout_in(repo, S.APPROVED)

    def step(d) -> None:
        assert d.state is S.APPROVED and d.changes == [Change(param="max_num_seqs", value="8")]
        d.previous_config["max_num_seqs"] = 4  # in place: the draft starts from the stored dicts (or {})
        d.comparison["ttft_p95_s"] = {"baseline": 0.2}
        d.stage.reason = "canary started"

    repo.mutate(rid, step, actor="m", action="step", to_state=S.CANARY)
    row = repo.get(rid)
    assert row.previous_config == {"max_num_seqs": 4} and row.comparison == {"ttft_p95_s": {"baseline": 0.2}}
    assert row.stage_detail["reason"] == "canary started"

    def more(d) -> None:
        d.previous_config["block_size"] = 16  # the second draft starts from what the first one saved

    repo.mutate(rid, more, actor="m", action="step")
    assert repo.get(rid).previous_config == {"max_num_seqs": 4, "block_size": 16}
    assert repo.get(rid).comparison == {"ttft_p95_s": {"baseline": 0.2}}  # untouched JSON is kept


def test_events_out_receives_the_written_event_and_audit_false_writes_none(repo: RolloutRepo) -> None:
    rid = rollout_in(repo, S.APPROVED)
    out: list = []
    repo.mutate(rid, actor="m", action="step", to_state=S.CANARY, events_out=out)
    [event] = out
    assert event.id is not None and (event.action, event.to_state) == ("step", "CANARY")
    assert repo.events(rid)[-1].id == event.id
    before = len(repo.events(rid))
    quiet: list = []
    repo.mutate(rid, actor="m", action="tick", audit=False, events_out=quiet)
    assert quiet == [] and len(repo.events(rid)) == before


def test_events_are_only_this_rollouts(repo: RolloutRepo) -> None:
    rid = rollout_in(repo, S.APPROVED)
    with repo.store.session() as s:  # another kind of entity that happens to share the id
        s.add(AuditEvent(actor="x", entity="recommendation", entity_id=str(rid), action="dismiss"))
        s.commit()
    assert [e.entity for e in repo.events(rid)] == ["rollout"]


def test_recommendation_id_is_kept_and_unknown_ids_are_named(repo: RolloutRepo) -> None:
    row = repo.create(
        title="t",
        targets=["a"],
        changes=[Change(param="max_num_seqs", value="8")],
        actor="o",
        recommendation_id=42,
    )
    assert repo.get(row.id).recommendation_id == 42
    with pytest.raises(RolloutNotFound, match="^no rollout 777777$"):
        repo.get(777777)


def test_events_after_an_id_are_the_rollouts_newer_ones_oldest_first(repo: RolloutRepo) -> None:
    """What the daemon publishes of the audit log written by another process (the CLI): rollout events
    only, strictly after the last one it saw, in the order they happened, a page at a time."""
    rid = rollout_in(repo, S.CANARY)
    seen = repo.last_event_id()
    assert seen == max(e.id or 0 for e in repo.events(rid))  # the `create` event just written
    repo.audit(rid, "alice", "first")
    with repo.store.session() as s:  # another kind of entity's event, between the two
        s.add(AuditEvent(actor="ops", entity="config", entity_id="1", action="reload"))
        s.commit()
    repo.audit(rid, "bob", "second")
    repo.audit(rid, "carol", "third")
    newer = repo.events_after(seen)
    assert [(e.actor, e.action) for e in newer] == [("alice", "first"), ("bob", "second"), ("carol", "third")]
    assert [e.id for e in newer] == sorted(e.id for e in newer) and all((e.id or 0) > seen for e in newer)
    assert [e.action for e in repo.events_after(newer[0].id or 0)] == ["second", "third"]  # strictly after
    assert [e.action for e in repo.events_after(seen, limit=2)] == ["first", "second"]
    assert repo.last_event_id() == newer[-1].id and repo.events_after(repo.last_event_id()) == []


def test_the_last_event_id_of_an_empty_log_is_zero(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        empty = RolloutRepo(store)
        assert empty.last_event_id() == 0
        rid = empty.create(title="t", targets=["a"], changes=[Change(param="x", value="1")], actor="a").id
        [created] = empty.events(rid)
        assert empty.last_event_id() == created.id
    finally:
        store.close()


@pytest.fixture
def pg_repo(postgres_url: str) -> Iterator[RolloutRepo]:
    """The repository on PostgreSQL, in a schema of its own (tests/conftest.py)."""
    store = Store(postgres_url)
    try:
        yield RolloutRepo(store)
    finally:
        store.close()


@pytest.mark.postgres
def test_events_come_back_by_id_on_postgresql_whatever_order_they_were_stored_in(
    pg_repo: RolloutRepo,
) -> None:
    """SQLite scans a table in id order, so a query without ORDER BY passes there by luck; PostgreSQL
    returns rows in the order they were stored. Events stored with falling ids must still read back
    oldest (lowest id) first, from `events` and from `events_after`."""
    rid = pg_repo.create(title="t", targets=["a"], changes=[Change(param="x", value="1")], actor="a").id
    first = pg_repo.last_event_id()
    with pg_repo.store.session() as s:
        for offset, action in ((3, "third"), (2, "second"), (1, "first")):
            s.add(
                AuditEvent(
                    id=first + 100 + offset, actor="t", entity="rollout", entity_id=str(rid), action=action
                )
            )
            s.commit()  # one by one: stored in this (falling) order
    assert [e.action for e in pg_repo.events(rid)] == ["propose", "first", "second", "third"]
    assert [e.action for e in pg_repo.events_after(first)] == ["first", "second", "third"]
    assert pg_repo.last_event_id() == first + 103
