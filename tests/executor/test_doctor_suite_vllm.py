"""The cache doctor's waterfall on the real vLLM CPU server with ample KV memory (issue 18, Done-when (a)):
two of the suite's workloads benched naive and optimized; in each mode every step is labelled, capacity
costs nothing (the kit's 262,144-token cache holds everything), and the modelled steps leave at most 5
points of the gap between the estimate and the server's delivered hit share unexplained. All six
workloads: benchmarks/doctor_suite.py, benchmarks/results/doctor_suite.md."""

from __future__ import annotations

import pytest

from benchmarks.doctor_suite import WITHIN, WORKLOADS, rest, run

pytestmark = pytest.mark.vllm


@pytest.mark.parametrize("name", ["chain", "fewshot"])
def test_the_steps_account_for_the_gap_within_five_points(vllm_server, name: str) -> None:
    workload = next(w for w in WORKLOADS if w.name == name)
    result = run([workload], 1, vllm_server.url)[name]
    assert result.error is None, result.error
    assert set(result.waterfalls) == {"naive", "optimized"}
    for mode, waterfall in result.waterfalls.items():
        steps = {s.name: s for s in waterfall}
        assert [s.name for s in waterfall][:3] == ["ceiling", "order", "capacity"]
        assert waterfall[-1].name == "delivered" and all(s.evidence for s in waterfall)
        assert steps["capacity"].points == 0.0, steps["capacity"].evidence
        assert "LRU cache of 262,144 tokens" in steps["capacity"].evidence
        # The delivered share is the server's own, over the mode's runs.
        runs = [r.server for r in result.runs_of(mode) if r.server and r.server.prefix_queries]
        hits = sum(w.prefix_hits or 0 for w in runs) / sum(w.prefix_queries or 0 for w in runs)
        assert steps["delivered"].points == round(hits * 100, 1)
        points = {s.name: s.points for s in waterfall}
        assert abs(rest(points)) <= WITHIN, (mode, [(s.name, s.points, s.evidence) for s in waterfall])
