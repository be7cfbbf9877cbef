"""What a UI reads from the daemon's store, as one place: the start-up snapshot and a target's history.

A UI shows the daemon's state; it never queries the store itself. `DaemonService.snapshot()` and
`.history()` run these on the store's thread; a remote UI gets the same models over MQTT instead.
Rows meant for display are the redacted views (`public_view`, `public_event`): the store keeps what a
rollback needs, a screen never shows it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from pydantic import BaseModel
from sqlmodel import col

from daemon.bus import Event, topic
from daemon.bench.publisher import latest_runs
from daemon.models import AuditEvent, Bottleneck, CompileRecord, Instance, Recommendation, Rollout
from daemon.rollouts.repo import public_event, public_view
from daemon.store import Store

SNAPSHOT_SAMPLES_S = 600.0  # prime the sparklines with the last ten minutes from the store

History = list[tuple[float, dict[str, float | None]]]


def read_snapshot(store: Store, now: float, targets: Collection[str] | None = None) -> list[Event]:
    """Runs on the store thread: everything a freshly started TUI should show at once.

    With `targets` (the names the daemon polls now), a target the database remembers from an earlier
    config is left out with its samples, bottlenecks and recommendations: its last state ("UP") is
    history, not the present, and a recommendation for it could not be carried out. Rollouts and the
    audit log stay whole: they are the record of what was done.
    """
    events: list[Event] = []

    def add(kind: str, key: Any, row: BaseModel) -> None:
        events.append(Event(topic(kind, str(key)), row))

    def current(name: str | None) -> bool:
        return targets is None or name is None or name in targets

    for inst in store.all(Instance):
        if not current(inst.name):
            continue
        add("instance", inst.name, inst)
        for sample in store.samples(inst.name, now - SNAPSHOT_SAMPLES_S):
            add("sample", inst.name, sample)
    for b in store.all(Bottleneck, order_by=col(Bottleneck.started_at).desc(), limit=200):
        if current(b.instance):
            add("bottleneck", b.instance, b)
    for rec in store.all(CompileRecord, order_by=CompileRecord.compiled_at):
        add("compile", rec.path, rec)
    for r in store.all(Recommendation, order_by=col(Recommendation.updated_at).desc(), limit=200):
        if current(r.instance):
            add("recommendation", r.id, r)
    for ro in store.all(Rollout, order_by=col(Rollout.updated_at).desc(), limit=200):
        add("rollout", ro.id, public_view(ro))  # shown, so redacted: the row keeps what a rollback needs
    for a in reversed(store.all(AuditEvent, order_by=col(AuditEvent.ts).desc(), limit=1000)):
        add("audit", a.entity, public_event(a))
    # Bench runs come from another process (`charter-tui bench`); the daemon publishes only those
    # stored after it started, so the newest per agent and target is read here.
    for run in latest_runs(store):
        add("bench", run.agent, run)
    return events


def read_history(store: Store, instance: str, since: float, signals: Sequence[str]) -> History:
    """Runs on the store thread: per-minute aggregates (older than raw retention) then raw samples."""
    rows: History = []
    for agg in store.aggregates(instance, since):
        rows.append((float(agg.minute) + 30.0, {k: agg.values.get(k) for k in signals}))
    for s in store.samples(instance, since):
        rows.append((s.ts, {k: getattr(s, k) for k in signals}))
    rows.sort(key=lambda r: r[0])
    return rows
