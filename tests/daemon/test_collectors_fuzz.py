"""Property tests of the collectors behind the parser: whatever numbers a server sends for the names
each engine reads (NaN, ±Inf, negatives, 1e308, fractions over 1), the windowed sample holds only
finite values in range, and it is marked suspect exactly when something was rejected."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon import prom
from daemon.collectors import ENGINES, read, wanted_names
from daemon.collectors.checks import SAMPLE_RANGES
from daemon.collectors.window import CounterWindow
from daemon.models import SIGNAL_FIELDS, MetricSample

VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-5.0, -1.0, 0.0, 0.5, 1.0, 1.5, 100.0, 1e308]),
)
LABELS = st.sampled_from(
    [
        "",
        'model_name="m"',
        'model="m",version="1"',
        'engine="0"',
        'engine="1"',
        'finished_reason="stop"',
        'finished_reason="error"',
        'request_type="active"',
        'request_type="scheduled"',
        'kv_cache_block_type="fraction"',
        'kv_cache_block_type="used"',
        'kv_cache_block_type="max"',
    ]
)


def _line(name: str, labels: str, value: float, bound: str | None) -> str:
    parts = [p for p in (labels, f'le="{bound}"' if bound else "") if p]
    text = repr(value).replace("inf", "Inf").replace("nan", "NaN")
    return f"{name}{{{','.join(parts)}}} {text}" if parts else f"{name} {text}"


@st.composite
def expositions(draw: st.DrawFn) -> tuple[str, str]:
    engine = draw(st.sampled_from(ENGINES))
    lines = []
    for name in sorted(wanted_names(engine)):
        for _ in range(draw(st.integers(0, 2))):
            labels = draw(LABELS)
            bound = draw(st.sampled_from(["0.1", "1.0", "+Inf", "NaN"])) if name.endswith("_bucket") else None
            if name.endswith(("_summary_us", "_duration")) and draw(st.booleans()):
                labels = ",".join(
                    p for p in (labels, f'quantile="{draw(st.sampled_from(["0.5", "0.95"]))}"') if p
                )
            lines.append(_line(name, labels, draw(VALUES), bound))
    return engine, "\n".join(lines) + "\n"


def _assert_trustworthy(sample: MetricSample) -> None:
    for field in SIGNAL_FIELDS:
        value = getattr(sample, field)
        if value is None:
            continue
        lo, hi = SAMPLE_RANGES.get(field, (0.0, math.inf))
        assert math.isfinite(value) and lo <= value <= hi, (field, value, sample.suspect_reason)


@settings(max_examples=150, deadline=None)
@given(st.lists(expositions(), min_size=2, max_size=3))
def test_any_numbers_give_a_trustworthy_or_suspect_sample(polls: list[tuple[str, str]]) -> None:
    window = CounterWindow("t", 60)
    for i, (engine, text) in enumerate(polls):
        try:
            expo = prom.parse(text)
        except prom.ExpositionError as exc:  # duplicate `le="NaN"` etc. are fine to refuse, clearly
            assert str(exc)
            continue
        reading = read(expo, engine, 1000.0 + i)
        rejected = list(reading.rejected)
        sample = window.update(reading).sample
        _assert_trustworthy(sample)
        assert sample.suspect == bool(sample.suspect_reason)
        if rejected:
            assert sample.suspect and rejected[0] in (sample.suspect_reason or "")
