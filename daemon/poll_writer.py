"""The poller's storage: samples and instance rows queued by the polls, written in batches by one task.

Polls never wait on the database: each queues its sample (and its target's instance row when that changed)
here, and one writer task stores them through `AsyncStore`. The guarantees (the retry and the final flush are
tested in tests/daemon/test_poller_faults.py, which counts every sample a poll took in the store):
- a batch is one transaction: its samples and the instance rows land together or not at all;
- a batch is written every `WRITE_EVERY_S`, or at once when `WRITE_BATCH` samples are queued;
- a failed write is kept queued and retried on the next flush (counted in `store_write_errors`);
- `flush()` writes everything queued, and the poller calls it after the writer stops: no sample is dropped;
- an unchanged target's row is rewritten at most every `INSTANCE_REFRESH_S` (its `last_seen`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import sqlalchemy as sa

from daemon.models import Instance, MetricSample
from daemon.store import AsyncStore, Store

log = logging.getLogger(__name__)

WRITE_BATCH = 500
WRITE_EVERY_S = 1.0
INSTANCE_REFRESH_S = 30.0  # last_seen is rewritten at most this often when nothing else changed

_SAMPLE_TABLE: sa.Table = MetricSample.__table__  # type: ignore[attr-defined]  # set by SQLAlchemy, undeclared in sqlmodel
_SAMPLE_COLUMNS = tuple(c.name for c in _SAMPLE_TABLE.columns if c.name != "id")


def _write_batch(store: Store, samples: list[MetricSample], instances: list[Instance]) -> None:
    """One transaction: the samples and the instance rows land together or not at all.

    Samples go in as one executemany INSERT rather than through the ORM unit of work: at 100
    targets per second the ORM's per-object bookkeeping was a large share of the daemon's CPU.
    """
    with store.session() as s:
        if samples:
            s.execute(
                sa.insert(_SAMPLE_TABLE), [{c: getattr(m, c) for c in _SAMPLE_COLUMNS} for m in samples]
            )
        for row in instances:
            s.merge(row)
        s.commit()


class SampleWriter:
    def __init__(self, store: AsyncStore | None, metrics: Any | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self.pending_samples: list[MetricSample] = []
        self._dirty_instances: dict[str, Instance] = {}
        self._instance_written_at: dict[str, float] = {}
        self._wake = asyncio.Event()
        self.samples_written = 0

    def add_sample(self, sample: MetricSample) -> None:
        self.pending_samples.append(sample)
        if len(self.pending_samples) >= WRITE_BATCH:
            self._wake.set()

    def set_instance(self, row: Instance) -> None:
        """The target's row as it is now; an older queued one for the same target is replaced."""
        self._dirty_instances[row.name] = row

    def instance_due(self, name: str) -> bool:
        """Whether an unchanged target's row is due to be rewritten (to refresh `last_seen`)."""
        return time.time() - self._instance_written_at.get(name, 0.0) >= INSTANCE_REFRESH_S

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every `WRITE_EVERY_S`, or when woken, until `stop` is set (the poller flushes once more)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), WRITE_EVERY_S)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued; on failure keep it queued (retried on the next flush)."""
        if self.store is None:
            self.pending_samples.clear()
            return
        while self.pending_samples or self._dirty_instances:
            samples = self.pending_samples[:WRITE_BATCH]
            instances = list(self._dirty_instances.values())
            try:
                await self.store.call(_write_batch, self.store.store, samples, instances)
            except Exception:
                log.exception("writing %d samples failed; keeping them for the next flush", len(samples))
                if self.metrics:
                    self.metrics.store_write_errors.inc()
                return
            del self.pending_samples[: len(samples)]
            now = time.time()
            for row in instances:
                if self._dirty_instances.get(row.name) is row:
                    del self._dirty_instances[row.name]
                self._instance_written_at[row.name] = now
            self.samples_written += len(samples)
            if self.metrics:
                self.metrics.samples_stored.inc(len(samples))
