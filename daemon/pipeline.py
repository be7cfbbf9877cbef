"""The performance agent's loop, wired: samples -> bottlenecks -> recommendations, stored and published.

For the daemon service (one object, two hooks):

    pipeline = PerformancePipeline(config, store, bus=bus, metrics=metrics)
    await pipeline.restore()                                   # adopt bottlenecks left open
    poller = Poller(config, store, on_sample=pipeline.on_sample, on_status=pipeline.on_status, metrics=metrics)
    pipeline.attach(poller)                                    # for server settings (cache config, model configs)
    ... await poller.run(stop)
    await pipeline.on_compile(compile_record.result)           # after each compile of a watched agent

On every sample it publishes `charter/v1/sample/<name>`, runs the analyzer and the SLO monitor;
when a bottleneck opens, escalates or clears it stores the row (`charter/v1/bottleneck/<name>`) and
re-runs the optimizer for that target, upserting de-duplicated recommendations
(`charter/v1/recommendation/<id>`). Recommendations are computed on events, not on every sample:
the inputs only change when a bottleneck does.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from daemon.analysis.detector import Analyzer, BottleneckEvent, persist_events
from daemon.analysis.slo import SloMonitor, SloUpdate, SloWindow
from daemon.collectors.window import WindowResult
from daemon.config import Config
from daemon.models import Bottleneck, Recommendation, RecommendationStatus
from daemon.optimizer import Context, read_settings, recommend, recommend_from_compile, upsert_recommendations
from daemon.optimizer.models import RecommendationSpec
from daemon.store import AsyncStore, Store

log = logging.getLogger(__name__)

SLO_REPORT_EVERY_S = 5.0  # compliance moves slowly; per-sample reports would only add bus traffic


def _open_recommendations(store: Store) -> list[Recommendation]:
    return store.all(Recommendation, Recommendation.status == RecommendationStatus.OPEN)


class PerformancePipeline:
    def __init__(
        self, config: Config, store: AsyncStore, *, bus: Any | None = None, metrics: Any | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        self.metrics = metrics
        self.analyzer = Analyzer(config)
        self.slo = SloMonitor(config.slo)
        self._poller: Any | None = None
        self._latest: dict[str, WindowResult] = {}
        self.targets = {t.name: t for t in config.targets}
        self._slo_reported: dict[str, float] = {}

    def attach(self, poller: Any) -> None:
        self._poller = poller

    async def restore(self) -> None:
        active = await self.store.call(self.store.store.all, Bottleneck, Bottleneck.active == True)  # noqa: E712
        self.analyzer.restore(active)
        self._update_gauges()

    # --- hooks ------------------------------------------------------------------------------
    async def on_sample(self, name: str, result: WindowResult) -> None:
        self._latest[name] = result
        self._publish("sample", name, result.sample.model_dump(mode="json"))
        self.slo.observe(result.sample)
        self._report_slo(name, result.sample.ts)
        events = self.analyzer.observe(result.sample, result.extras)
        if not events:
            return
        await self.store.call(persist_events, self.store.store, events)
        for e in events:
            self._publish("bottleneck", name, e.bottleneck.model_dump(mode="json"))
        self._update_gauges()
        await self._recommend(name, events)

    def on_status(self, status: Any) -> None:
        self._publish("instance", status.name, status.instance_row().model_dump(mode="json"))

    async def on_compile(
        self, result: dict[str, Any], targets: list[str] | None = None
    ) -> list[RecommendationSpec]:
        """Recommendations from one compile's cache plan, for the given targets (default: all)."""
        specs: list[RecommendationSpec] = []
        for name in targets or list(self.targets):
            ctx = self.context(name)
            if ctx is not None:
                specs += recommend_from_compile(result, ctx)
        await self._store_specs(specs)
        return specs

    # --- queries ----------------------------------------------------------------------------
    def context(self, name: str) -> Context | None:
        status = self._poller.status.get(name) if self._poller is not None else None
        engine = (status.engine if status is not None else None) or getattr(
            self.targets.get(name), "engine", None
        )
        if engine in (None, "auto"):
            return None  # engine unknown until the first good poll
        info = status.info if status is not None else {}
        latest = self._latest.get(name)
        return Context(
            instance=name,
            engine=engine,
            settings=read_settings(self.targets.get(name), engine, info),
            bottlenecks=self.analyzer.active(name),
            sample=latest.sample if latest else None,
        )

    def slo_report(self, name: str, now: float) -> dict[str, SloWindow]:
        return self.slo.report(name, now)

    def _report_slo(self, name: str, now: float) -> None:
        """Publish the 5 min / 1 h compliance (`charter/v1/slo/<name>`) and export it, at most every few s."""
        if now - self._slo_reported.get(name, float("-inf")) < SLO_REPORT_EVERY_S:
            return
        self._slo_reported[name] = now
        report = self.slo_report(name, now)
        self._publish("slo", name, SloUpdate(instance=name, ts=now, windows=report))
        if self.metrics is not None and hasattr(self.metrics, "set_slo"):
            self.metrics.set_slo(name, {w: r.compliance for w, r in report.items()})

    # --- internals --------------------------------------------------------------------------
    async def _recommend(self, name: str, events: list[BottleneckEvent]) -> None:
        if not any(e.kind in ("opened", "updated") for e in events):
            return
        ctx = self.context(name)
        if ctx is None:
            return
        await self._store_specs(recommend(ctx))

    async def _store_specs(self, specs: list[RecommendationSpec]) -> None:
        if not specs:
            return
        try:
            await self.store.call(upsert_recommendations, self.store.store, specs)
        except Exception:  # storage trouble must not stop the analysis loop
            log.exception("storing %d recommendations failed", len(specs))
            return
        rows = await self.store.call(_open_recommendations, self.store.store)
        fingerprints = {s.fingerprint for s in specs}
        for row in rows:
            if row.fingerprint in fingerprints:
                self._publish("recommendation", str(row.id), row.model_dump(mode="json"))
        if self.metrics is not None:
            self.metrics.recommendations_pending.set(len(rows))

    def _update_gauges(self) -> None:
        if self.metrics is None:
            return
        counts = Counter((b.kind, b.severity.value) for b in self.analyzer.active())
        self.metrics.set_bottlenecks(dict(counts))

    def _publish(self, kind: str, key: str, payload: Any) -> None:
        if self.bus is None:
            return
        from daemon.bus import topic

        self.bus.publish(topic(kind, key), payload)
