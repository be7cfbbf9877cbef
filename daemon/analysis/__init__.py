"""Analysis: bottleneck detection with hysteresis (`detector.Analyzer`) and SLO compliance (`slo.SloMonitor`).

Both consume the `MetricSample`s the poller produces (plus its `extras`), keep only in-memory state
per instance, and hand back plain rows/events: storing them is `detector.persist_events`.
"""

from daemon.analysis.detector import Analyzer, BottleneckEvent, persist_events
from daemon.analysis.rules import KINDS
from daemon.analysis.slo import SloMonitor, SloWindow

__all__ = ["KINDS", "Analyzer", "BottleneckEvent", "SloMonitor", "SloWindow", "persist_events"]
