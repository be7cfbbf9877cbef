"""`RolloutRepo.mutate`, the path every command and every manager step takes, on a real SQLite store.

An illegal transition sent through the repository is refused under the row lock: nothing is written,
no audit event, the callback never runs. Legal ones write the row and their event together.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from daemon.models import Rollout
from daemon.rollouts.machine import TRANSITIONS, IllegalTransition
from daemon.rollouts.model import Change
from daemon.rollouts.model import RolloutState as S
from daemon.rollouts.repo import RolloutNotFound, RolloutRepo, StateChanged
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
    row = repo.create(title="t", targets=["a"], changes=[Change(param="max_num_seqs", value="8")], actor="test")
    # Put it straight into `state` (as if earlier steps had happened), bypassing the repository.
    with repo.store.session() as s:
        s.execute(sa.update(Rollout).where(Rollout.id == row.id).values(state=state.value))
        s.commit()
    return row.id


def test_the_lists_cover_the_machine() -> None:
    assert len(ILLEGAL) > 50 and len(LEGAL) == sum(len(t) for t in TRANSITIONS.values())


@pytest.mark.parametrize(("a", "b"), ILLEGAL, ids=[f"{a.value}->{b.value}" for a, b in ILLEGAL])
def test_illegal_transition_through_the_repo_is_refused_and_writes_nothing(repo: RolloutRepo, a: S, b: S) -> None:
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
        "alice", "step", a.value, b.value, "why")


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
