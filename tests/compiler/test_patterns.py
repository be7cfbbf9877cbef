"""Each detector's own positive and negative example programs, run like Fixit runs a rule's examples."""

from __future__ import annotations

import pytest

from compiler.api import compile_source
from compiler.patterns import DETECTORS

CASES = [(d, i, src, True) for d in DETECTORS for i, src in enumerate(d.POSITIVE_EXAMPLES)] + [
    (d, i, src, False) for d in DETECTORS for i, src in enumerate(d.NEGATIVE_EXAMPLES)
]


def test_every_detector_has_examples():
    assert len(DETECTORS) == 7
    for d in DETECTORS:
        assert d.POSITIVE_EXAMPLES and d.NEGATIVE_EXAMPLES, d.__name__


@pytest.mark.parametrize(("detector", "index", "source", "positive"), CASES,
                         ids=[f"{d.KIND.value}-{'pos' if p else 'neg'}{i}" for d, i, _, p in CASES])
def test_detector_example(detector, index, source, positive):
    result = compile_source(source, f"{detector.KIND.value.lower()}_example.py")
    assert result.calls, "the example must contain LLM calls for the detector to look at"
    found = [f for f in result.patterns if f.kind is detector.KIND]
    if positive:
        assert found, f"{detector.KIND} not found in its positive example; got {result.pattern_kinds()}"
        for f in found:
            assert f.figures, "every finding reports its figures"
            assert f.anti_pattern == (detector.KIND.value in ("DYNAMIC_PREFIX", "MISPLACED_SHARED_CONTEXT"))
    else:
        assert not found, f"{detector.KIND} wrongly found in its negative example: {found}"
