"""Server-side counters agree with the client-side cached-token counts, request by request.

vLLM reports `usage.prompt_tokens_details.cached_tokens` only with `--enable-prompt-tokens-details`,
which the shared session server does not set, so this module starts its own (about a minute). The
executor's per-run window (`vllm:prefix_cache_hits/queries`) must then equal the sum of what the
responses said, in both modes, warm-ups included; and the tracing client's records must too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from compiler.api import compile_source
from executor.bench import BenchOptions, compile_agent, run_bench
from executor.binding import BindOptions
from executor.inputs import load_inputs
from executor.targets import connect_target
from testkit.ports import StartupError
from testkit.vllm import VllmServer, start_vllm
from tests.executor.conftest import DELTA_AGENT, DOC_AGENT

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def vllm_with_details(vllm_kit_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    try:
        with start_vllm(
            vllm_kit_dir,
            log_dir=tmp_path_factory.mktemp("vllm-details"),
            extra_args=["--enable-prompt-tokens-details"],
        ) as server:
            yield server
    except StartupError as exc:
        pytest.fail(f"the vLLM test server (with prompt token details) did not start: {exc}", pytrace=False)


@pytest.mark.parametrize("agent, inputs", [(DOC_AGENT, "doc_inputs"), (DELTA_AGENT, "delta_inputs")])
async def test_window_hits_equal_the_responses_cached_tokens(
    vllm_with_details, agent: Path, inputs: str, request: pytest.FixtureRequest
) -> None:
    target = await connect_target(vllm_with_details.url)
    try:
        compiled = compile_agent(agent.read_text(), str(agent), target, apply_fixes=True)
        result = await run_bench(
            agent.name,
            compiled,
            load_inputs(request.getfixturevalue(inputs)),
            target,
            BenchOptions(bind=BindOptions(max_tokens_cap=4)),
        )
    finally:
        await target.aclose()
    assert result.error is None and len(result.runs) == 4
    for run in result.runs:
        assert run.server is not None
        assert all(c.cached_tokens is not None for c in run.calls)
        assert run.client_cached_tokens() == run.server.prefix_hits, (run.mode, run.run)
        assert run.client_prompt_tokens() == run.server.prefix_queries, (run.mode, run.run)
    assert result.summary("optimized").cached_tokens > 0


def test_tracing_client_records_prompts_timings_and_cached_tokens(
    vllm_with_details, delta_inputs: Path
) -> None:
    from executor.tracing import TracingOpenAI

    sys.path.insert(0, str(DELTA_AGENT.parent))
    try:
        import delta_processor  # the real agent, unchanged, with the tracing client handed in
    finally:
        sys.path.remove(str(DELTA_AGENT.parent))
    plan = compile_source(DELTA_AGENT.read_text(), str(DELTA_AGENT))
    client = TracingOpenAI(base_url=f"{vllm_with_details.url}/v1", api_key="EMPTY", plan=plan)
    record = json.loads(delta_inputs.read_text().splitlines()[0])
    agent = delta_processor.DeltaProcessor(client, vllm_with_details.model)
    profiles = agent.batch_process(record["template"], record["variables"][:3])
    assert len(profiles) == 3

    records = client.tracer.records
    calls = [r for r in records if r.kind == "call"]
    warmups = [r for r in records if r.kind == "warmup"]
    assert [r.call_id for r in calls] == ["c1"] * 3
    # The site is the agent's own `.create(` line, found here by reading the file (not by the compiler
    # or the tracer, whose agreement is what is being tested).
    [create_line] = [
        n for n, text in enumerate(DELTA_AGENT.read_text().splitlines(), 1) if ".create(" in text
    ]
    assert all(r.site.endswith(f"delta_processor.py:{create_line}") for r in calls), [r.site for r in calls]
    assert calls[1].prompt.endswith(record["template"].format(**record["variables"][1])), (
        "the prompt is recorded as sent"
    )
    assert all(r.latency_s > 0 and r.prompt_tokens for r in calls)
    assert all(r.cached_source == "usage" for r in calls)
    if plan.plan.warmups:
        # The plan's warm-up went out once, before the first call, and every call hit at least its prefix.
        assert len(warmups) == 1 and records.index(warmups[0]) == 0
        assert all((r.cached_tokens or 0) >= (warmups[0].prompt_tokens or 0) // 32 * 32 - 32 for r in calls)
    assert (calls[2].cached_tokens or 0) > 0
    assert client.tracer.hit_share() is not None
