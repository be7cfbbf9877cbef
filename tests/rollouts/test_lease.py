"""Rollout leases on the machine's real PostgreSQL (daemon/rollouts/lease.py): one holder, expiry by the
database's clock, compare-and-swap takeover, fenced writes; and on SQLite, a restarted daemon is its own
successor. The two-daemon SIGKILL takeover is tests/rollouts/test_fleet_lease.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from daemon.actuators.change import Change
from daemon.models import RolloutLease
from daemon.rollouts.lease import Leases, LeaseLost
from daemon.rollouts.repo import RolloutRepo
from daemon.store import Store

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[Store]:
    store = Store(postgres_url)
    yield store
    store.close()


def a_rollout(store: Store) -> int:
    row = RolloutRepo(store).create(
        title="t", targets=["a"], changes=[Change(param="x", value="1")], actor="a"
    )
    assert row.id is not None
    return row.id


def test_one_holder_until_the_lease_expires_then_a_takeover_naming_the_dead_holder(pg_store: Store) -> None:
    rid = a_rollout(pg_store)
    box_a, box_b = Leases(pg_store, "box-a", 1.5), Leases(pg_store, "box-b", 1.5)
    first = box_a.acquire(rid)
    assert first.held and first.new and first.taken_from is None
    refused = box_b.acquire(rid)
    assert not refused.held and refused.holder == box_a.holder
    renewed = box_a.acquire(rid)
    assert renewed.held and not renewed.new  # the holder renews; nothing changes hands
    time.sleep(1.7)  # box-a stops renewing (it died)
    taken = box_b.acquire(rid)
    assert taken.held and taken.new and taken.taken_from == box_a.holder
    with pg_store.session() as s:
        lease = s.get(RolloutLease, rid)
        assert lease is not None and lease.holder == box_b.holder and lease.takeovers == 1
    assert not box_a.acquire(rid).held  # the old holder, back, is refused: the lease is box-b's now


def test_two_daemons_with_one_id_are_still_two_holders(pg_store: Store) -> None:
    """Two daemons left at the default id (one host name) must not both believe they hold the lease."""
    rid = a_rollout(pg_store)
    first, second = Leases(pg_store, "gpu-box", 30), Leases(pg_store, "gpu-box", 30)
    assert first.acquire(rid).held
    assert not second.acquire(rid).held


def race(store: Store, rid: int, daemons: int = 8) -> dict[str, bool]:
    """`daemons` daemons acquire the lease on `rid` at the same instant (a barrier); holder -> won."""
    racers = [Leases(store, f"box-{i}", 30) for i in range(daemons)]
    barrier = threading.Barrier(len(racers))
    grants: dict[str, bool] = {}

    def acquire(leases: Leases) -> None:
        barrier.wait()
        grants[leases.holder] = leases.acquire(rid).held

    threads = [threading.Thread(target=acquire, args=(leases,)) for leases in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return grants


def test_of_many_daemons_racing_for_one_lease_exactly_one_wins(pg_store: Store) -> None:
    """Real concurrent transactions on PostgreSQL: for a new lease (the primary key decides) and for an
    expired one (the compare-and-swap UPDATE decides), one winner each time."""
    for _ in range(3):
        for expired_first in (False, True):
            rid = a_rollout(pg_store)
            if expired_first:
                Leases(pg_store, "gone", 1.0).acquire(rid)
                time.sleep(1.1)
            grants = race(pg_store, rid)
            assert sum(grants.values()) == 1, grants
            with pg_store.session() as s:
                lease = s.get(RolloutLease, rid)
                assert lease is not None and grants[lease.holder]


def test_a_write_by_a_daemon_whose_lease_was_taken_over_is_refused(pg_store: Store) -> None:
    """The fence: a daemon that stalled past its lease (a paused VM) cannot write over its successor."""
    rid = a_rollout(pg_store)
    repo = RolloutRepo(pg_store)
    stalled, successor = Leases(pg_store, "box-a", 1.0), Leases(pg_store, "box-b", 30)
    assert stalled.acquire(rid).held
    repo.mutate(rid, None, actor="daemon", action="note", audit=False, fence=stalled.fence)  # still its own
    time.sleep(1.2)
    assert successor.acquire(rid).taken_from == stalled.holder
    before = repo.get(rid).updated_at
    with pytest.raises(LeaseLost, match="driven by box-b"):
        repo.mutate(rid, None, actor="daemon", action="note", audit=False, fence=stalled.fence)
    assert repo.get(rid).updated_at == before  # nothing written
    repo.mutate(rid, None, actor="daemon", action="note", audit=False, fence=successor.fence)


def test_expiry_is_the_databases_clock_not_the_daemons(pg_store: Store) -> None:
    rid = a_rollout(pg_store)
    leases = Leases(pg_store, "box-a", 30)
    grant = leases.acquire(rid)
    with pg_store.session() as s:
        db_now = leases.now(s)
    assert grant.expires_at == pytest.approx(db_now + 30, abs=1.0)


def test_renewal_extends_only_this_daemons_leases_and_release_hands_them_on(pg_store: Store) -> None:
    mine, theirs = a_rollout(pg_store), a_rollout(pg_store)
    box_a, box_b = Leases(pg_store, "box-a", 2.0), Leases(pg_store, "box-b", 2.0)
    box_a.acquire(mine)
    box_b.acquire(theirs)
    time.sleep(1.0)
    assert box_a.renew_all() == 1
    time.sleep(1.3)  # box-b's lease expired; box-a's renewed one has not
    assert not Leases(pg_store, "box-c", 2.0).acquire(mine).held
    assert Leases(pg_store, "box-c", 2.0).acquire(theirs).held
    box_a.release()
    assert box_a.held() == set()
    assert Leases(pg_store, "box-d", 2.0).acquire(mine).held  # at once, no expiry to wait out


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_on_sqlite_a_restarted_daemon_resumes_its_own_rollouts_at_once(sqlite_url: str, dialect: str) -> None:
    """One machine, one acting daemon per SQLite file (daemon/single.py): the holder is the id alone, so
    the daemon restarted after a crash does not wait out its own lease."""
    store = Store(sqlite_url)
    try:
        rid = a_rollout(store)
        before_crash = Leases(store, "gpu-box", 30)
        assert not before_crash.shared and before_crash.acquire(rid).held
        after_restart = Leases(store, "gpu-box", 30)
        grant = after_restart.acquire(rid)
        assert grant.held and grant.taken_from is None
    finally:
        store.close()
