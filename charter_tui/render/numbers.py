"""Formatting of the numbers the screens show: short, fixed-width-friendly, `-` for unknown."""

from __future__ import annotations

import math
from collections.abc import Sequence

DASH = "-"


def seconds(v: float | None) -> str:
    """A latency: `850ms`, `1.24s`, `-`."""
    if v is None or math.isnan(v):
        return DASH
    if v < 1.0:
        return f"{v * 1000:.0f}ms"
    return f"{v:.2f}s"


def rate(v: float | None, unit: str = "") -> str:
    """A rate or count: `0.5`, `12.3`, `1.2k`."""
    if v is None or math.isnan(v):
        return DASH
    if abs(v) >= 10_000:
        return f"{v / 1000:.0f}k{unit}"
    if abs(v) >= 1000:
        return f"{v / 1000:.1f}k{unit}"
    if abs(v) >= 100 or v == int(v):
        return f"{v:.0f}{unit}"
    return f"{v:.1f}{unit}"


def percent(v: float | None) -> str:
    """A 0..1 fraction as `87%`."""
    if v is None or math.isnan(v):
        return DASH
    return f"{v * 100:.0f}%"


def age(ts: float | None, now: float) -> str:
    """How long ago: `4s`, `3m`, `2h`, `5d`."""
    if ts is None:
        return DASH
    d = max(0.0, now - ts)
    if d < 60:
        return f"{d:.0f}s"
    if d < 3600:
        return f"{d / 60:.0f}m"
    if d < 86400:
        return f"{d / 3600:.0f}h"
    return f"{d / 86400:.0f}d"


def clock(ts: float | None) -> str:
    """A UTC wall-clock time `14:03:07` (UTC, so captures and snapshots do not depend on TZ)."""
    if ts is None:
        return DASH
    import time

    return time.strftime("%H:%M:%S", time.gmtime(ts))


def last_known(values: Sequence[float | None]) -> float | None:
    for v in reversed(values):
        if v is not None:
            return v
    return None


FORMATTERS = {
    "ttft_p95_s": seconds,
    "generation_tokens_per_s": rate,
    "kv_cache_usage": percent,
    "prefix_hit_rate": percent,
    "waiting": rate,
}
