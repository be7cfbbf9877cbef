"""SLO compliance per target over the last 5 minutes and the last hour.

A sample counts only if its window carried traffic for the SLO's signal (a p95 exists, or requests
finished); it complies when TTFT p95, ITL p95 and the error rate are all within the config's SLOs.
Compliance = compliant samples / counted samples, weighted by each sample's window length so a
burst of short windows does not outvote a long one. `meeting` compares it with
`slo.compliance_target`.

    monitor = SloMonitor(config.slo)
    monitor.observe(sample)               # every new sample
    monitor.report("vllm-a", now)         # {"5m": SloWindow, "1h": SloWindow}
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pydantic import BaseModel

from daemon.config import SloConfig
from daemon.models import MetricSample

WINDOWS = {"5m": 300.0, "1h": 3600.0}


class SloWindow(BaseModel):
    window: str
    samples: int
    compliance: float | None  # None: no traffic in the window
    meeting: bool | None
    worst_ttft_p95_s: float | None = None
    worst_itl_p95_s: float | None = None
    worst_error_rate: float | None = None
    violations: dict[str, int] = {}


class SloUpdate(BaseModel):
    """`charter/v1/slo/<instance>`: the 5 min and 1 h compliance of one instance."""

    instance: str
    ts: float
    windows: dict[str, SloWindow]


@dataclass(slots=True)
class _Point:
    ts: float
    weight: float
    ok: bool
    ttft: float | None
    itl: float | None
    err: float | None
    failed: tuple[str, ...]


@dataclass
class SloMonitor:
    slo: SloConfig
    _points: dict[str, deque[_Point]] = field(default_factory=dict)

    def observe(self, s: MetricSample) -> None:
        if s.suspect:  # values rejected at the edge: neither compliant nor violating
            return
        failed: list[str] = []
        counted = False
        if s.ttft_p95_s is not None:
            counted = True
            if s.ttft_p95_s * 1000 > self.slo.ttft_p95_ms:
                failed.append("ttft_p95")
        if s.itl_p95_s is not None:
            counted = True
            if s.itl_p95_s * 1000 > self.slo.itl_p95_ms:
                failed.append("itl_p95")
        err = None
        ok_rate, bad_rate = s.requests_success_per_s or 0.0, s.requests_failure_per_s or 0.0
        if ok_rate + bad_rate > 0:
            counted = True
            err = bad_rate / (ok_rate + bad_rate)
            if err > self.slo.error_rate_max:
                failed.append("error_rate")
        if not counted:
            return
        points = self._points.setdefault(s.instance, deque())
        points.append(
            _Point(s.ts, s.window_s or 1.0, not failed, s.ttft_p95_s, s.itl_p95_s, err, tuple(failed))
        )
        horizon = s.ts - max(WINDOWS.values())
        while points and points[0].ts < horizon:
            points.popleft()

    def report(self, instance: str, now: float) -> dict[str, SloWindow]:
        points = self._points.get(instance, deque())
        out: dict[str, SloWindow] = {}
        for name, length in WINDOWS.items():
            sel = [p for p in points if p.ts >= now - length]
            if not sel:
                out[name] = SloWindow(window=name, samples=0, compliance=None, meeting=None)
                continue
            total = sum(p.weight for p in sel)
            good = sum(p.weight for p in sel if p.ok)
            compliance = good / total
            violations: dict[str, int] = {}
            for p in sel:
                for f in p.failed:
                    violations[f] = violations.get(f, 0) + 1
            out[name] = SloWindow(
                window=name,
                samples=len(sel),
                compliance=round(compliance, 6),
                meeting=compliance >= self.slo.compliance_target,
                worst_ttft_p95_s=max((p.ttft for p in sel if p.ttft is not None), default=None),
                worst_itl_p95_s=max((p.itl for p in sel if p.itl is not None), default=None),
                worst_error_rate=max((p.err for p in sel if p.err is not None), default=None),
                violations=violations,
            )
        return out
