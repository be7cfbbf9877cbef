"""The benchmark against the real vLLM CPU server of the test kit (session fixture `vllm_server`).

Small inputs and `--max-tokens 4`, so each test costs seconds; timing is only asserted where the
plan's effect is structural (warm-up before the siblings, siblings in flight together), never as a
speed ratio: the box is shared and the committed suite (benchmarks/) is where speed is measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charter_tui.cli import main
from executor.bench import BenchOptions, compile_agent, run_bench
from executor.binding import BindOptions
from executor.errors import TargetDown
from executor.inputs import load_inputs
from daemon.bench.records import BenchRun
from executor.runner import RunOptions
from executor.targets import connect_target
from daemon.store import Store
from testkit.ports import free_port
from tests.executor.conftest import DELTA_AGENT, DOC_AGENT, document, write_jsonl

pytestmark = pytest.mark.vllm


def _bench(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["bench", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_optimized_beats_naive_on_hit_share_and_reaches_the_ceiling(
    vllm_server, doc_inputs: Path, tmp_path: Path, sqlite_url: str, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", sqlite_url)
    code, out, err = _bench(
        [
            str(DOC_AGENT),
            "--inputs",
            str(doc_inputs),
            "--target",
            vllm_server.url,
            "--report",
            str(tmp_path / "rep"),
            "--max-tokens",
            "4",
        ],
        capsys,
    )
    assert code == 0, err
    assert "optimized" in out and "hit share" in out
    result = json.loads((tmp_path / "rep" / "result.json").read_text())
    assert result["fixes_applied"], "the document agent's MISPLACED_SHARED_CONTEXT fix should be applied"
    runs = {m: [r for r in result["runs"] if r["mode"] == m] for m in ("naive", "optimized")}
    assert len(runs["naive"]) == len(runs["optimized"]) == 2

    def share(mode: str, key: str) -> float:
        hits = sum(
            r["server"]["prefix_hits"] if key == "hits" else r["ceiling"]["cached_tokens"] for r in runs[mode]
        )
        queries = sum(
            r["server"]["prefix_queries"] if key == "hits" else r["ceiling"]["prompt_tokens"]
            for r in runs[mode]
        )
        return hits / queries

    assert share("optimized", "hits") > share("naive", "hits") + 0.2
    # The compiler's estimate for this traffic, made before anything was sent (issue 14): within 5
    # points of what the server then counted, and its token-level ceiling never below it.
    measured = share("optimized", "hits")
    assert abs(result["traffic_estimate"] - measured) <= 0.05, (result["traffic_estimate"], measured)
    assert result["traffic_ceiling"] >= measured
    assert share("optimized", "hits") >= 0.95 * share("optimized", "ceiling")
    for r in result["runs"]:
        # The window holds exactly this run's requests: nothing before or after leaked into it.
        assert r["server"]["requests"] == len(r["calls"])
        assert r["server"]["prefix_queries"] == r["ceiling"]["prompt_tokens"]
        for c in r["calls"]:  # the first token, not the first visible text, ends the TTFT (issue 15 item 8)
            assert c["ttft_s"] is not None and c["ttft_s"] < c["latency_s"], c
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "![hit_share](./hit_share.svg)" in report and (tmp_path / "rep" / "ttft.svg").exists()

    store = Store(sqlite_url)
    try:
        [row] = store.all(BenchRun)
    finally:
        store.close()
    assert row.agent.endswith("document_processor.py") and row.error is None
    assert row.optimized_hit_share is not None and row.naive_hit_share is not None
    assert row.optimized_hit_share > row.naive_hit_share


async def test_delta_loop_warms_the_shared_prefix_once_then_runs_the_iterations_together(
    vllm_server, delta_inputs: Path
) -> None:
    target = await connect_target(vllm_server.url)
    # Count the requests awaiting the server at each send: a state of the client, unlike timestamps,
    # which on a loaded 2-core box can show a sibling finishing before the next one was sent.
    in_flight_at_send: list[int] = []
    in_flight = 0
    complete = target.complete

    async def counting_complete(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal in_flight
        in_flight += 1
        in_flight_at_send.append(in_flight)
        try:
            return await complete(*args, **kwargs)
        finally:
            in_flight -= 1

    target.complete = counting_complete  # type: ignore[method-assign]
    try:
        compiled = compile_agent(DELTA_AGENT.read_text(), str(DELTA_AGENT), target, apply_fixes=True)
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
    for run in result.runs_of("optimized"):
        warmups = [c for c in run.calls if c.kind == "warmup"]
        calls = run.agent_calls
        assert len(warmups) == 1 and len(calls) == 6
        warm_end = warmups[0].sent_s + warmups[0].latency_s
        assert all(c.sent_s >= warm_end - 1e-3 for c in calls), "siblings must follow their warmed prefix"
    for run in result.runs_of("naive"):
        assert not any(c.kind == "warmup" for c in run.calls)
        ends = [c.sent_s + c.latency_s for c in run.calls]
        assert all(nxt.sent_s >= end - 1e-3 for nxt, end in zip(run.calls[1:], ends)), (
            "naive is one at a time"
        )
    # Naive sends one at a time (in flight: 1); only the optimized siblings, released together by
    # their warm-up, can be awaiting the server at once: all six of them.
    assert max(in_flight_at_send) == 6, in_flight_at_send
    opt = result.summary("optimized")
    assert opt.hit_share is not None and opt.ceiling_share
    assert opt.hit_share >= 0.95 * opt.ceiling_share


def test_missing_variable_names_run_call_and_line_and_keeps_finished_runs(
    vllm_server, tmp_path: Path, sqlite_url: str, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", sqlite_url)
    inputs = write_jsonl(
        tmp_path / "in.jsonl",
        [{"document": document(1)}, {"doc": "misspelled key"}],
        comment="second record lacks `document`",
    )
    code, out, err = _bench(
        [
            str(DOC_AGENT),
            "--inputs",
            str(inputs),
            "--target",
            vllm_server.url,
            "--report",
            str(tmp_path / "rep"),
            "--max-tokens",
            "4",
            "--mode",
            "naive",
        ],
        capsys,
    )
    assert code == 2
    assert f"naive run 1 ({inputs}:3), call c1: the input record has no value for `document`" in err
    result = json.loads((tmp_path / "rep" / "result.json").read_text())
    assert [(r["mode"], r["run"], r["input_line"]) for r in result["runs"]] == [("naive", 0, 2)]
    assert "Stopped:" in (tmp_path / "rep" / "report.md").read_text()
    store = Store(sqlite_url)
    try:
        [row] = store.all(BenchRun)
    finally:
        store.close()
    assert row.error and "input record has no value" in row.error and len(row.result["runs"]) == 1


def test_target_down_is_one_clear_line(doc_inputs: Path, capsys) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = _bench([str(DOC_AGENT), "--inputs", str(doc_inputs), "--target", url], capsys)
    assert code == 2
    assert err.startswith(f"charter-tui: target {url} is not answering") and "Traceback" not in err


async def test_target_down_from_the_api(doc_inputs: Path) -> None:
    with pytest.raises(TargetDown, match="is not answering"):
        await connect_target(f"http://127.0.0.1:{free_port()}", engine="vllm")


async def test_a_call_that_times_out_names_the_mode_run_call_and_line(vllm_server, tmp_path: Path) -> None:
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"document": document(3, words=900)}])
    target = await connect_target(vllm_server.url)
    try:
        compiled = compile_agent(DOC_AGENT.read_text(), str(DOC_AGENT), target, apply_fixes=False)
        result = await run_bench(
            "doc",
            compiled,
            load_inputs(inputs),
            target,
            BenchOptions(
                modes=("naive",),
                server_warmup=False,
                bind=BindOptions(max_tokens_cap=64),
                run=RunOptions(timeout_s=0.005),
            ),
            inputs_name=str(inputs),
        )
    finally:
        await target.aclose()
    assert result.runs == []
    assert result.error == f"naive run 0 ({inputs}:1), call c1: timed out: no complete answer within 0.005 s"


def test_tracing_client_derives_cached_tokens_from_the_servers_counters(
    vllm_server, delta_inputs: Path
) -> None:
    """The session server does not put cached tokens in `usage`; a synchronous agent has one call in
    flight, so the counters read around each call give its cached tokens exactly."""
    import sys

    from compiler.api import compile_source
    from executor.tracing import TracingOpenAI

    sys.path.insert(0, str(DELTA_AGENT.parent))
    try:
        import delta_processor
    finally:
        sys.path.remove(str(DELTA_AGENT.parent))
    client = TracingOpenAI(
        base_url=f"{vllm_server.url}/v1",
        api_key="EMPTY",
        plan=compile_source(DELTA_AGENT.read_text(), str(DELTA_AGENT)),
    )
    record = json.loads(delta_inputs.read_text().splitlines()[1])
    delta_processor.DeltaProcessor(client, vllm_server.model).batch_process(
        record["template"], record["variables"][:3]
    )
    calls = [r for r in client.tracer.records if r.kind == "call"]
    assert len(calls) == 3 and all(r.cached_source == "counters" for r in calls)
    # The later iterations share the system prompt and the template's head with the first.
    assert all((r.cached_tokens or 0) >= 64 for r in calls[1:])
    assert all(r.cached_tokens % 32 == 0 for r in calls if r.cached_tokens is not None)


def test_cli_baseline_pass_and_json_output(vllm_server, doc_inputs: Path, capsys) -> None:
    """`--nocache-target` adds one naive pass on a second server (here the same one: the code path is
    what is checked; the suite runs it against a real caching-off server) and `--json` prints the result."""
    code, out, err = _bench(
        [
            str(DOC_AGENT),
            "--inputs",
            str(doc_inputs),
            "--target",
            vllm_server.url,
            "--nocache-target",
            vllm_server.url,
            "--max-tokens",
            "2",
            "--mode",
            "naive",
            "--no-store",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads(out)
    assert [r["mode"] for r in result["runs"]] == ["naive", "naive", "naive-nocache", "naive-nocache"]
    assert all(c["completion_tokens"] == 2 for r in result["runs"] for c in r["calls"])
    assert "2/4 runs (naive)" in err and "4/4 runs (naive-nocache)" in err  # the progress lines


CHAT_LOOP = '''
from openai import OpenAI

client = OpenAI()
RULES = """You label support tickets. Labels: billing, outage, account, data, other. Reply with the label only.
A ticket about money, invoices, refunds or charges is billing. A ticket about something not working is an
outage. A ticket about logins, owners, emails or members is account. A ticket about personal data is data."""


def label_all(tickets: list[str]) -> list[str]:
    out = []
    for ticket in tickets:
        reply = client.chat.completions.create(
            model="default", max_tokens=4,
            messages=[{"role": "system", "content": RULES}, {"role": "user", "content": ticket}])
        out.append(reply.choices[0].message.content)
    return out
'''


async def test_chat_calls_go_through_the_servers_chat_template_and_warm_as_token_ids(
    vllm_server, tmp_path: Path
) -> None:
    agent = tmp_path / "labeler.py"
    agent.write_text(CHAT_LOOP)
    inputs = write_jsonl(
        tmp_path / "tickets.jsonl",
        [
            {
                "tickets": [
                    "I was charged twice",
                    "The API is down in Frankfurt",
                    "Change my login email",
                    "Delete my data",
                ]
            }
        ],
    )
    target = await connect_target(vllm_server.url)
    try:
        compiled = compile_agent(agent.read_text(), str(agent), target, apply_fixes=True)
        result = await run_bench(
            "labeler",
            compiled,
            load_inputs(inputs),
            target,
            BenchOptions(modes=("optimized",), bind=BindOptions(max_tokens_cap=2)),
        )
        # What the server makes of one ticket's messages: the chat template, then the generation prompt.
        system_only = await target.tokenize("", [{"role": "system", "content": "x"}])
    finally:
        await target.aclose()
    assert result.error is None and system_only
    [run] = result.runs
    [warmup] = [c for c in run.calls if c.kind == "warmup"]
    calls = run.agent_calls
    assert len(calls) == 4
    # The warm-up is the tickets' common prefix in the server's own token ids: the templated system
    # message (about 100 tokens) and the start of the user message, less than any whole prompt.
    assert warmup.prompt_tokens is not None and 64 <= warmup.prompt_tokens < min(
        c.prompt_tokens or 0 for c in calls
    )
    assert run.server is not None and run.server.prefix_hits is not None
    # Every ticket then found the warmed blocks: hits = 4 x the warm-up's full blocks (+ none for the warm-up).
    assert run.server.prefix_hits >= 4 * (warmup.prompt_tokens // 32) * 32
    assert run.ceiling is not None and run.server.prefix_hits >= 0.95 * run.ceiling.cached_tokens


async def test_async_tracing_client_shares_one_warmup_between_concurrent_callers(
    vllm_server, monkeypatch
) -> None:
    """The async example agent asks four questions about one report with `asyncio.gather`: the plan's
    warm-up (the system message) goes out once, and all four calls wait for it instead of each
    prefilling the shared prefix at the same moment."""
    import sys

    from compiler.api import compile_source
    from executor.tracing import AsyncTracingOpenAI

    agent_file = DOC_AGENT.parent / "examples" / "openai_async_fanout.py"
    plan = compile_source(agent_file.read_text(), str(agent_file))
    assert plan.plan.warmups, "the example's plan warms the shared system message"
    sys.path.insert(0, str(agent_file.parent))
    try:
        import openai_async_fanout
    finally:
        sys.path.remove(str(agent_file.parent))
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")  # the agent builds its own AsyncOpenAI() first
    qa = openai_async_fanout.ReportQA(vllm_server.model)
    client = AsyncTracingOpenAI(base_url=f"{vllm_server.url}/v1", api_key="EMPTY", plan=plan)
    qa.client = client  # the agent's own client, swapped for the tracing one: the agent code is unchanged
    report = document(11, words=150)
    await qa.run(report, ["What is the revenue?", "Who signed?", "When does it end?", "What are the fees?"])
    records = client.tracer.records
    warmups = [r for r in records if r.kind == "warmup"]
    calls = [r for r in records if r.kind == "call"]
    assert len(warmups) == 1 and warmups[0].api == "chat.completions" and warmups[0].error is None
    assert [r.call_id for r in calls] == ["c1"] * 4 + ["c2"]
    warm_done = warmups[0].started_at + warmups[0].latency_s
    assert all(r.started_at >= warm_done - 0.01 for r in calls[:4])
    assert all(r.prompt.startswith("<|system|>\nYou are an analyst") for r in calls[:4])
    # The plan's prefix runs into the user message (the report, shared by the four questions): the
    # warm-up holds it, so each question has only its own few tokens left to prefill.
    assert report in warmups[0].prompt and (warmups[0].prompt_tokens or 0) > 150
