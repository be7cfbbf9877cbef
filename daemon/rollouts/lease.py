"""Rollout leases: of the daemons sharing one database, exactly one drives each rollout.

A lease is a row (`rollout_lease`: holder, expires_at) written in the shared store, PostgreSQL for a fleet.
The manager acquires it before each step of a running rollout and a background task renews every lease it
holds a few times per `[rollouts] lease_s`, so a step that takes minutes (a vLLM relaunch) keeps it. When the
holder dies, its lease runs out and the next daemon that can drive the rollout takes it over, reconciling what
the targets really run first (`recovery.recover_one`), as a restarted daemon does.

Three rules make "exactly one" hold without trusting anyone's wall clock or timing:
- acquiring is compare-and-swap: the UPDATE names the holder and expiry it read, so of two daemons racing for
  an expired lease one changes the row and the other changes nothing (PostgreSQL re-checks the WHERE after the
  first commits; SQLite serialises writers); of two racing to create it, the primary key refuses the second;
- expiry is the database's clock (PostgreSQL's `clock_timestamp()`), not each machine's, so skewed clocks on
  two boxes cannot make both think they hold it;
- every write a step makes is fenced (`fence`): in the same transaction as the write, a live lease held by
  someone else refuses it (`LeaseLost`), so a daemon that paused past its lease (a stalled VM, a partition)
  cannot write over the daemon that took over.
On a shared database the holder is `<daemon id>/<process nonce>`: two daemons given one id (the default host
name, on one box) are still two holders, and a restarted daemon waits out its dead predecessor's lease like
anyone else. On SQLite (one machine, one acting daemon: daemon/single.py) the holder is the id alone.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from daemon.models import RolloutLease
from daemon.rollouts.repo import StateChanged
from daemon.store import Store


class LeaseLost(StateChanged):
    """Another daemon holds this rollout's live lease: this one must not write or act on it."""


@dataclass(frozen=True)
class Grant:
    held: bool
    holder: str  # who holds it now (this daemon when held)
    expires_at: float
    taken_from: str | None = None  # a previous holder whose lease had expired: this is a takeover
    new: bool = False  # this daemon did not hold it before this call (first acquisition or takeover)


def daemon_of(holder: str) -> str:
    """`gpu-box-2/3f9a...` -> `gpu-box-2`: the daemon's id, for messages."""
    return holder.split("/", 1)[0]


class Leases:
    """This daemon's side of the leases in `store`; sync methods, called through `asyncio.to_thread`."""

    def __init__(self, store: Store, daemon_id: str, lease_s: float) -> None:
        self.store = store
        # A SQLite file is one machine's, and one acting daemon per database there is the local lock's rule
        # (daemon/single.py): a restarted daemon is its own successor and resumes at once. A shared database
        # may have two daemons with one id (the default host name): there each process is its own holder.
        self.shared = store.shared
        self.holder = f"{daemon_id}/{secrets.token_hex(6)}" if self.shared else daemon_id
        self.lease_s = lease_s

    def now(self, s: Session) -> float:
        if self.shared:
            return float(s.execute(sa.text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())
        return time.time()  # SQLite: one machine, one clock

    def acquire(self, rollout_id: int) -> Grant:
        """Take or renew the lease on `rollout_id`; `held=False` names the daemon that holds it."""
        try:
            with self.store.session() as s:
                now = self.now(s)
                current = s.get(RolloutLease, rollout_id)
                if current is None:
                    s.add(
                        RolloutLease(
                            rollout_id=rollout_id,
                            holder=self.holder,
                            expires_at=now + self.lease_s,
                            acquired_at=now,
                        )
                    )
                    s.commit()
                    return Grant(True, self.holder, now + self.lease_s, new=True)
                if current.holder != self.holder and current.expires_at > now:
                    return Grant(False, current.holder, current.expires_at)
                # Read now: the commit below expires the ORM object, which would then read the new values.
                previous, previous_expiry = current.holder, current.expires_at
                mine = previous == self.holder
                values: dict[str, Any] = {"holder": self.holder, "expires_at": now + self.lease_s}
                if not mine:
                    values |= {"acquired_at": now, "takeovers": current.takeovers + 1}
                swapped = cast(
                    sa.CursorResult[Any],
                    s.execute(
                        sa.update(RolloutLease)
                        .where(
                            col(RolloutLease.rollout_id) == rollout_id,
                            col(RolloutLease.holder) == previous,
                            col(RolloutLease.expires_at) == previous_expiry,
                        )
                        .values(**values)
                    ),
                )
                s.commit()
        except (IntegrityError, OperationalError):
            # Another daemon created or swapped it between our read and write (SQLite reports the latter as
            # a busy snapshot): it won; say who, as read now.
            return self._lost(rollout_id)
        if swapped.rowcount != 1:
            return self._lost(rollout_id)
        return Grant(
            True, self.holder, now + self.lease_s, taken_from=None if mine else previous, new=not mine
        )

    def _lost(self, rollout_id: int) -> Grant:
        with self.store.session() as s:
            current = s.get(RolloutLease, rollout_id)
        if current is None:  # released in between: nobody drives it; the next step tries again
            return Grant(False, "", 0.0)
        return Grant(current.holder == self.holder, current.holder, current.expires_at)

    def renew_all(self) -> int:
        """Extend every lease this daemon holds (the background renewal); returns how many."""
        with self.store.session() as s:
            now = self.now(s)
            result = cast(
                sa.CursorResult[Any],
                s.execute(
                    sa.update(RolloutLease)
                    .where(col(RolloutLease.holder) == self.holder, col(RolloutLease.expires_at) > now)
                    .values(expires_at=now + self.lease_s)
                ),
            )
            s.commit()
            return result.rowcount

    def release(self, rollout_id: int | None = None) -> None:
        """Give up the lease on `rollout_id` (over, or no longer ours), or every lease held (a clean stop)."""
        where = [col(RolloutLease.holder) == self.holder]
        if rollout_id is not None:
            where.append(col(RolloutLease.rollout_id) == rollout_id)
        with self.store.session() as s:
            s.execute(sa.delete(RolloutLease).where(*where))
            s.commit()

    def held(self) -> set[int]:
        with self.store.session() as s:
            return set(
                s.exec(select(RolloutLease.rollout_id).where(RolloutLease.holder == self.holder)).all()
            )

    def fence(self, s: Session, rollout_id: int) -> None:
        """Inside a write's transaction: refuse it when another daemon holds a live lease on the rollout."""
        # FOR SHARE (PostgreSQL): a takeover's UPDATE of this lease waits for our commit, so it cannot slip in
        # between this check and the write it guards.
        current = s.exec(
            select(RolloutLease).where(RolloutLease.rollout_id == rollout_id).with_for_update(read=True)
        ).first()
        if current is not None and current.holder != self.holder and current.expires_at > self.now(s):
            raise LeaseLost(
                f"rollout {rollout_id} is driven by {daemon_of(current.holder)} now (its lease runs until "
                f"{time.strftime('%H:%M:%S', time.localtime(current.expires_at))}); this daemon stops acting on it"
            )
