"""The bottleneck detector: rules + hysteresis, per instance and kind, producing open/update/clear events.

    analyzer = Analyzer(config)
    analyzer.restore(store.all(Bottleneck, Bottleneck.active == True))   # after a restart
    events = analyzer.observe(sample, extras)   # every new MetricSample (poller's on_sample)
    persist_events(store, events)               # Store (sync; call through AsyncStore.call)

Suspect samples (values rejected at the edge, `daemon.collectors.checks`) are ignored: a server
exporting `KV +Inf` must not raise a CRITICAL memory-pressure bottleneck.

Hysteresis: a bottleneck opens when its value crosses the threshold, and clears only when the value
is back past the threshold by `thresholds.hysteresis` (relative) for `clear_after_samples`
consecutive samples — a value hovering at 0.90 KV usage opens once and stays open rather than
flapping every poll. While open, a change of severity is reported as an update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from daemon.analysis.rules import KINDS, RULES, Measurement
from daemon.config import Config
from daemon.models import Bottleneck, MetricSample
from daemon.store import Store

EventKind = Literal["opened", "updated", "cleared"]


@dataclass(slots=True)
class BottleneckEvent:
    kind: EventKind
    bottleneck: Bottleneck


@dataclass(slots=True)
class _Track:
    active: Bottleneck | None = None
    clear_streak: int = 0
    last: Measurement | None = None


def _is_bad(m: Measurement) -> bool:
    return m.value > m.threshold if m.direction == "above" else m.value < m.threshold


def _is_clear(m: Measurement, hysteresis: float) -> bool:
    if m.force_clear:
        return True
    if m.direction == "above":
        return m.value < m.threshold * (1 - hysteresis)
    return m.value >= m.threshold * (1 + hysteresis)


@dataclass
class Analyzer:
    config: Config
    _tracks: dict[tuple[str, str], _Track] = field(default_factory=dict)

    def restore(self, active: list[Bottleneck]) -> None:
        """Adopt bottlenecks left open by a previous run so they are cleared, not duplicated."""
        for b in active:
            if b.active:
                self._tracks[(b.instance, b.kind)] = _Track(active=b)

    def active(self, instance: str | None = None) -> list[Bottleneck]:
        return [
            t.active
            for (inst, _), t in self._tracks.items()
            if t.active is not None and (instance is None or inst == instance)
        ]

    def observe(self, sample: MetricSample, extras: dict[str, float] | None = None) -> list[BottleneckEvent]:
        if sample.suspect:
            # The server reported values its signals cannot take: nothing in this sample is
            # trusted to open, escalate or clear a bottleneck (the state stays as it was).
            return []
        cfg = self.config
        h = cfg.thresholds.hysteresis
        events: list[BottleneckEvent] = []
        for kind in KINDS:
            m = RULES[kind](sample, extras or {}, cfg.thresholds, cfg.slo)
            if m is None:
                continue
            track = self._tracks.setdefault((sample.instance, kind), _Track())
            track.last = m
            evidence = m.evidence | {
                "value": round(m.value, 6),
                "threshold": m.threshold,
                "direction": m.direction,
                "hysteresis": h,
            }
            if track.active is None:
                if _is_bad(m) and not m.force_clear:
                    track.active = Bottleneck(
                        instance=sample.instance,
                        kind=kind,
                        severity=m.severity,
                        started_at=sample.ts,
                        summary=m.summary,
                        evidence=evidence,
                    )
                    track.clear_streak = 0
                    events.append(BottleneckEvent("opened", track.active))
                continue
            if _is_clear(m, h):
                track.clear_streak += 1
                if track.clear_streak >= cfg.thresholds.clear_after_samples or m.force_clear:
                    b = track.active
                    b.active, b.cleared_at = False, sample.ts
                    b.evidence = dict(b.evidence) | {"cleared_by": evidence}
                    track.active, track.clear_streak = None, 0
                    events.append(BottleneckEvent("cleared", b))
                continue
            track.clear_streak = 0
            b = track.active
            if _is_bad(m) and m.severity != b.severity:
                b.severity, b.summary = m.severity, m.summary
                b.evidence = evidence | {"peak_value": max(m.value, b.evidence.get("peak_value", m.value))}
                events.append(BottleneckEvent("updated", b))
            elif _is_bad(m):
                # Keep the newest evidence without an event: the TUI reads it from the row.
                b.summary, b.evidence = m.summary, evidence
        return events


def persist_events(store: Store, events: list[BottleneckEvent]) -> None:
    """Write the events' rows in one transaction; new rows get their ids back for later updates."""
    if not events:
        return
    with store.session() as s:
        merged = [(e, s.merge(e.bottleneck)) for e in events]
        s.commit()
        for e, row in merged:
            e.bottleneck.id = row.id
