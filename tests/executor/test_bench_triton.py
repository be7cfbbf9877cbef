"""The benchmark against the real Triton server of the test kit (`textgen` on the Python backend).

textgen has no KV cache, so there is no hit share to compare here; what is checked is that the
executor drives Triton's `generate` endpoint in both modes and that the server's own counters over
each run's window (requests, queue and request time) match what the client sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.bench import BenchOptions, compile_agent, run_bench
from executor.binding import BindOptions
from executor.inputs import load_inputs
from executor.targets import connect_target
from testkit.triton import TEST_MODEL
from tests.executor.conftest import DELTA_AGENT

pytestmark = pytest.mark.triton


async def test_both_modes_on_triton_with_the_servers_own_window(triton_textgen, delta_inputs: Path) -> None:
    target = await connect_target(
        triton_textgen.http_url, model=TEST_MODEL, metrics_url=triton_textgen.metrics_url
    )
    assert target.engine == "triton"
    try:
        compiled = compile_agent(DELTA_AGENT.read_text(), str(DELTA_AGENT), None, apply_fixes=True)
        result = await run_bench(
            "delta",
            compiled,
            load_inputs(delta_inputs),
            target,
            BenchOptions(bind=BindOptions(max_tokens_cap=4)),
        )
    finally:
        await target.aclose()
    assert result.error is None
    assert [r.mode for r in result.runs] == ["naive", "naive", "optimized", "optimized"]
    assert any("could not be reset" in n for n in result.notes)  # said, not silently assumed
    for run in result.runs:
        assert run.server is not None and run.server.engine == "triton"
        assert run.server.requests == len(run.calls)
        assert run.server.e2e_mean_s is not None and run.server.e2e_mean_s > 0
        assert run.server.queue_mean_s is not None
        assert run.hit_share is None and run.ceiling is None  # nothing to claim without a KV cache
        assert all(c.completion_tokens == 4 and c.ttft_s is None for c in run.agent_calls)
