"""Executor parts that need no server: inputs, the ceiling, binding compiled agents to records,
source order, counter windows and the report."""

from __future__ import annotations

import json
import textwrap

import pytest

from compiler.api import compile_source
from daemon.collectors import base as b
from daemon.errors import UserError
from executor.binding import Binder, BindOptions
from executor.ceiling import CeilingTracker, block_ceiling
from executor.counters import window
from executor.errors import BindingError
from executor.inputs import InputRecord, parse_inputs
from daemon.bench.records import BenchResult, CallRecord, Ceiling, RunResult, ServerWindow
from executor.report import markdown, write_report
from executor.schedule import common_prefix, groups, naive_order
from executor.workload import HistoryRef, OutputRef, VolatileRef, render

# --- inputs -------------------------------------------------------------------------------------


def test_inputs_skip_blank_and_comment_lines_and_keep_file_line_numbers() -> None:
    records = parse_inputs('# docs\n\n{"document": "a"}\n{"document": "b"}\n')
    assert [(r.line, r.values["document"]) for r in records] == [(3, "a"), (4, "b")]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('{"a": 1}\n{"a": \n', "in.jsonl:2: not JSON"),
        ("[1, 2]\n", "in.jsonl:1: expected a JSON object"),
        ("\n# nothing\n", "no input records"),
    ],
)
def test_bad_inputs_name_the_line(text: str, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        parse_inputs(text, "in.jsonl")


# --- ceiling ------------------------------------------------------------------------------------


def test_ceiling_counts_full_shared_blocks_and_recomputes_the_last_token() -> None:
    shared = list(range(64))
    # Two prompts sharing 2 full blocks (64 tokens) then differing: the second can hit both blocks.
    c = block_ceiling([shared + [1000, 1001], shared + [2000, 2001]], 32)
    assert (c.prompt_tokens, c.cached_tokens) == (132, 64)
    # An identical prompt of exactly 64 tokens can hit only 1 block: the last token is always recomputed.
    c = block_ceiling([shared, shared], 32)
    assert c.cached_tokens == 32
    # A partial block never counts.
    assert block_ceiling([list(range(40)), list(range(40)) + [7]], 32).cached_tokens == 32


def test_ceiling_is_the_same_in_any_order_and_a_block_first_needed_twice_costs_one_miss() -> None:
    a, b_, c = list(range(96)), list(range(64)) + [500] * 40, list(range(32)) + [900] * 40
    values = {block_ceiling(order, 32).cached_tokens for order in ([a, b_, c], [c, b_, a], [b_, c, a])}
    assert len(values) == 1
    # hittable: a 2 blocks (95//32), b 3 (103//32), c 2 (71//32) = 7 blocks; distinct needed blocks:
    # [0:32], [0:64], a's nothing else... ; b's [64:96 of 500s]; c's [32:64 of 900s] -> 4 misses.
    assert values == {(7 - 4) * 32}


def test_ceiling_tracker_carries_the_cache_across_runs() -> None:
    system = list(range(64))
    tracker = CeilingTracker(32)
    first = tracker.add([system + [1] * 10])
    second = tracker.add([system + [2] * 10])
    assert first.cached_tokens == 0
    assert second.cached_tokens == 64  # the second run finds the system prompt of the first


# --- binding ------------------------------------------------------------------------------------

CHAIN = textwrap.dedent("""
    from openai import OpenAI
    client = OpenAI()
    SYSTEM = "You are a precise analyst. Answer briefly and only from the document."

    def process(document: str):
        entities = client.completions.create(model="m", prompt=f"{SYSTEM}\\nExtract entities:\\n{document}",
                                             max_tokens=32).choices[0].text
        summary = client.completions.create(model="m", prompt=f"{SYSTEM}\\nSummarize {entities} in:\\n{document}",
                                            max_tokens=8).choices[0].text
        return summary
""")

LOOP = textwrap.dedent("""
    from openai import OpenAI
    client = OpenAI()
    SYSTEM = "You write company profiles."

    def batch(template: str, variables: list[dict]):
        base = f"{SYSTEM}\\n{template}"
        out = []
        for i, vars in enumerate(variables):
            out.append(client.completions.create(model="m", prompt=base.format(**vars), max_tokens=16).choices[0].text)
        return out
""")

FANOUT = textwrap.dedent("""
    from openai import OpenAI
    client = OpenAI()

    def solve(problem: str):
        branches = client.completions.create(model="m", prompt=f"Solve: {problem}\\nIdea:", max_tokens=8, n=3)
        scores = []
        for b in branches.choices:
            scores.append(client.completions.create(model="m", prompt=f"Solve: {problem}\\nRate: {b.text}",
                                                    max_tokens=2).choices[0].text)
        return scores
""")

GROWING = textwrap.dedent("""
    from openai import OpenAI
    client = OpenAI()

    def run(question: str, max_steps: int = 4):
        history = f"You are an agent.\\nQuestion: {question}\\n"
        for step in range(max_steps):
            out = client.completions.create(model="m", prompt=history + "Thought:", max_tokens=8).choices[0].text
            history += f"Thought:{out}\\n"
        return history
""")


def _bind(source: str, values: dict, **opts: object):
    result = compile_source(source, "agent.py")
    return Binder(result, BindOptions(**opts)).bind(InputRecord(line=7, values=values), 0)  # type: ignore[arg-type]


def test_chain_renders_the_record_and_waits_for_the_previous_output() -> None:
    w = _bind(CHAIN, {"document": "DOC-TEXT"})
    first, second = w.executions
    assert render(first.pieces, {}).endswith("Extract entities:\nDOC-TEXT")
    assert second.deps == {first.id}
    assert render(second.pieces, {first.id: ["E1"]}).endswith("Summarize E1 in:\nDOC-TEXT")
    assert (first.max_tokens, second.max_tokens) == (32, 8)


def test_missing_variable_names_the_call_and_the_variable() -> None:
    with pytest.raises(BindingError) as err:
        _bind(CHAIN, {"doc": "typo"})
    assert err.value.call == "c1" and err.value.variable == "document"
    assert "no value for `document`" in str(err.value)


def test_loop_iterates_over_the_records_list_and_fills_the_template() -> None:
    w = _bind(
        LOOP,
        {
            "template": "Co {company} earns {revenue}.",
            "variables": [
                {"company": "A", "revenue": "$1M"},
                {"company": "B", "revenue": "$2M"},
                {"company": "C", "revenue": "$3M"},
            ],
        },
        max_tokens_cap=4,
    )
    assert [e.id for e in w.executions] == ["c1#0", "c1#1", "c1#2"]
    assert render(w.executions[1].pieces, {}) == "You write company profiles.\nCo B earns $2M."
    assert {e.group for e in w.executions} == {"c1"}  # independent iterations: one warm-up group
    assert all(e.max_tokens == 4 for e in w.executions)  # capped
    assert not any(e.deps for e in w.executions)


def test_loop_over_a_list_that_is_not_there_is_a_binding_error() -> None:
    with pytest.raises(BindingError, match="no `variables`"):
        _bind(LOOP, {"template": "x"})


def test_binding_evaluates_the_compilers_references_not_its_strings() -> None:
    import executor.binding

    assert "ast" not in vars(executor.binding)  # nothing re-parses what the compiler emitted
    result = compile_source(LOOP, "agent.py")
    loop = result.calls[0].loops[0]
    assert (loop.iterates, loop.target) == ("enumerate(variables)", "(i, vars)")
    loop.iterates, loop.target = "<shown to users only>", "<shown to users only>"
    record = InputRecord(
        line=1, values={"template": "T {company}", "variables": [{"company": "A"}, {"company": "B"}]}
    )
    w = Binder(result, BindOptions()).bind(record, 0)
    assert [render(e.pieces, {}) for e in w.executions] == [
        "You write company profiles.\nT A",
        "You write company profiles.\nT B",
    ]


def test_a_record_may_name_a_value_by_the_expressions_exact_text() -> None:
    source = textwrap.dedent("""
        from openai import OpenAI
        client = OpenAI()
        def run(cfg, rows):
            for r in rows:
                client.completions.create(model="m", prompt=f"{cfg.title}: {r['q']}", max_tokens=4)
    """)
    w = _bind(source, {"cfg.title": "Quiz", "rows": [{"q": "one"}, {"q": "two"}]})
    assert [render(e.pieces, {}) for e in w.executions] == ["Quiz: one", "Quiz: two"]
    with pytest.raises(BindingError, match="no value for `r\\['q'\\]`"):
        _bind(source, {"cfg.title": "Quiz", "rows": [{"x": 1}]})


def test_fanout_siblings_bind_one_output_each() -> None:
    w = _bind(FANOUT, {"problem": "P"})
    parent, *children = w.executions
    assert parent.n == 3 and len(children) == 3
    assert [c.pieces for c in children][1][-1] == OutputRef(parent.id, 1)
    assert all(c.deps == {parent.id} for c in children)


def test_growing_history_replays_earlier_outputs_in_order() -> None:
    w = _bind(GROWING, {"question": "Q", "max_steps": 3})
    ids = [e.id for e in w.executions]
    assert ids == ["c1#0", "c1#1", "c1#2"]
    third = w.executions[2]
    assert HistoryRef(("c1#0", "c1#1")) in third.pieces
    assert third.deps >= {"c1#1"}
    text = render(third.pieces, {"c1#0": ["T0"], "c1#1": ["T1"]})
    assert text.index("T0") < text.index("T1") < text.index("Thought:")
    assert any("growing histories" in n for n in w.notes)


def test_volatile_values_are_fresh_on_every_render() -> None:
    pieces = ["id ", VolatileRef("uuid4()")]
    assert render(pieces, {}) != render(pieces, {})


# --- schedule -----------------------------------------------------------------------------------


def test_naive_order_interleaves_calls_of_one_loop_like_python_would() -> None:
    source = textwrap.dedent("""
        from openai import OpenAI
        client = OpenAI()
        def run(items: list[str]):
            for it in items:
                a = client.completions.create(model="m", prompt=f"Draft about {it}", max_tokens=4).choices[0].text
                b = client.completions.create(model="m", prompt=f"Check {a}", max_tokens=4).choices[0].text
    """)
    w = _bind(source, {"items": ["x", "y"]})
    assert [e.id for e in naive_order(w.executions)] == ["c1#0", "c2#0", "c1#1", "c2#1"]


def test_groups_and_common_prefix() -> None:
    w = _bind(LOOP, {"template": "T {company}", "variables": [{"company": "A"}, {"company": "B"}]})
    assert list(groups(w.executions)) == ["c1"]
    assert common_prefix(["abcX", "abcY", "abZ"]) == "ab"


# --- counters and report ------------------------------------------------------------------------


def _reading(hits: float, queries: float, requests: float, ttft_counts: list[float]) -> b.RawReading:
    r = b.RawReading(engine="vllm", ts=0.0)
    r.counters.update(
        {
            b.PREFIX_HITS: hits,
            b.PREFIX_QUERIES: queries,
            b.REQUESTS_SUCCESS: requests,
            b.PROMPT_TOKENS: queries,
        }
    )
    bounds = [0.01, 0.1, 1.0, float("inf")]
    r.histograms[b.TTFT] = b.Histogram(buckets=dict(zip(bounds, ttft_counts)), count=ttft_counts[-1], sum=0.0)
    return r


def test_window_is_the_difference_over_the_run_only() -> None:
    before = _reading(100, 1000, 5, [1, 3, 5, 5])
    after = _reading(400, 1600, 8, [1, 6, 8, 8])  # 3 requests, all with TTFT in (0.01, 0.1]
    w = window(before, after)
    assert w is not None
    assert (w.prefix_hits, w.prefix_queries, w.requests) == (300, 600, 3)
    assert w.hit_share == pytest.approx(0.5)
    assert 0.01 < (w.ttft_p50_s or 0) <= 0.1


def test_report_has_the_table_the_charts_and_the_error(tmp_path) -> None:
    def run(mode: str, makespan: float, hits: float) -> RunResult:
        return RunResult(
            mode=mode,
            run=0,
            input_line=1,
            makespan_s=makespan,  # type: ignore[arg-type]
            calls=[
                CallRecord(
                    execution="c1",
                    call_id="c1",
                    prompt_chars=10,
                    prompt_tokens=100,
                    cached_tokens=int(hits),
                    sent_s=0.0,
                    ttft_s=0.1,
                    latency_s=makespan,
                )
            ],
            server=ServerWindow(engine="vllm", prefix_hits=hits, prefix_queries=100),
            ceiling=Ceiling(block_size=32, prompt_tokens=100, cached_tokens=64),
        )

    result = BenchResult(
        agent="a.py",
        inputs="in.jsonl",
        target="http://x",
        engine="vllm",
        block_size=32,
        runs=[run("naive", 2.0, 0), run("optimized", 1.0, 64)],
        error="optimized run 1: boom",
    )
    assert result.speedup() == pytest.approx(2.0)
    assert result.summary("optimized").of_ceiling == pytest.approx(1.0)
    text = markdown(result)
    assert "| optimized | 1 | 1.00 s | 2.00x | 64.0% | 64.0% | 100.0% |" in text
    assert "**Stopped:** optimized run 1: boom" in text
    # A server whose cache was warm before the run (it could not be reset) hits more than the run itself
    # can reuse: no share of the ceiling is shown (a new user saw "537.5%").
    warm = result.model_copy(update={"runs": [run("naive", 2.0, 0), run("optimized", 1.0, 96)]})
    assert "| optimized | 1 | 1.00 s | 2.00x | 96.0% | 64.0% | over (warm) |" in markdown(warm)
    # Why the speed-up is what it is: 0.1 s of 2.0 s (naive) and of 1.0 s (optimized) before the first token.
    assert (
        "- time to first token (queueing + prefill, what the cache can shorten): 5% of call time naive, "
        "10% optimized; the rest is decoding, which caching leaves as it is (a decode-bound run: expect a "
        "small speed-up)"
    ) in text
    path = write_report(result, tmp_path / "rep")
    assert {p.name for p in path.parent.iterdir()} == {
        "report.md",
        "result.json",
        "ttft.svg",
        "hit_share.svg",
        "makespan.svg",
    }
    assert json.loads((tmp_path / "rep" / "result.json").read_text())["runs"][1]["mode"] == "optimized"
    assert (tmp_path / "rep" / "hit_share.svg").read_text().startswith("<svg")


def test_ceiling_counts_blocks_of_generated_text_that_a_later_prompt_quotes() -> None:
    prompt = list(range(40))
    answer = list(range(100, 140))  # 40 generated tokens
    follow_up = prompt + answer + [7] * 5  # the next prompt quotes the answer
    without = block_ceiling([prompt, follow_up], 32)
    tracker = CeilingTracker(32)
    with_generated = tracker.add([prompt, follow_up], [answer, [1]])
    # Without the generated tokens only the prompt's first block is reusable; with them the engine has
    # also cached blocks [32:64) of prompt+answer (computed during decode).
    assert without.cached_tokens == 32
    assert with_generated.cached_tokens == 64


TREE = textwrap.dedent("""
    def step(s, n, call_generate):
        s += "Next step:"
        comps = call_generate(s, max_tokens=8, n=n)
        return [s + comp for comp in comps]

    def search(question, n, call_generate):
        firsts = step("Q: " + question, n, call_generate)
        leaves = []
        for f in firsts:
            leaves.extend(step(f, n, call_generate))
        finals = []
        for leaf in leaves:
            finals.append(step(leaf, n, call_generate))
        return finals
""")


def test_tree_search_keeps_each_leaf_on_its_own_branch() -> None:
    w = _bind(TREE, {"question": "Q", "n": 2})
    outputs = {e.id: [f"<{e.id}/{i}>" for i in range(e.n)] for e in w.executions}
    level3 = [e for e in w.executions if e.call_id == "c3"]
    assert len(level3) == 4  # one per output of the second level (2 executions x n=2)
    for e in level3:
        text = render(e.pieces, outputs)
        parent = next(p for p in e.pieces if isinstance(p, OutputRef) and p.execution.startswith("c2"))
        grand = next(p for p in e.pieces if isinstance(p, OutputRef) and p.execution == "c1")
        # The second-level execution this leaf extends was itself built on the same first-level output.
        c2 = next(x for x in w.executions if x.id == parent.execution)
        assert OutputRef("c1", grand.index) in c2.pieces
        assert text.index(f"<c1/{grand.index}>") < text.index(f"<{parent.execution}/{parent.index}>")


def test_warmup_prefix_cuts_the_concrete_prompt_where_the_plans_prefix_ends() -> None:
    pytest.importorskip("openai")
    from compiler.model import Warmup
    from executor.tracing import flatten_messages, warmup_prefix

    def warmup(prompt: str) -> Warmup:
        return Warmup(
            before_call="c1",
            reason="",
            prefix_segments=[],
            prefix_tokens=0,
            request={"prompt": prompt, "max_tokens": 1},
        )

    prompt = 'SYSTEM rules {"a": 1}\nQuestion: what now?\nPlan: step one\nIdea:'
    # Literal text, then a run-time value, then more literal text: the prefix ends after the last literal.
    assert (
        warmup_prefix(warmup('SYSTEM rules {"a": 1}\nQuestion: {param:f:q}\nPlan:'), prompt)
        == 'SYSTEM rules {"a": 1}\nQuestion: what now?\nPlan:'
    )
    # A trailing run-time value has no known end: the prefix stops before it.
    assert warmup_prefix(warmup("SYSTEM rules {template}"), prompt) == "SYSTEM rules "
    # A plan that does not match this prompt warms nothing rather than something wrong.
    assert warmup_prefix(warmup("OTHER text"), prompt) == ""
    assert (
        flatten_messages([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
        == "<|system|>\nS<|user|>\nU"
    )


def test_chat_warmups_send_the_messages_the_prefix_covers_with_the_last_one_left_open() -> None:
    pytest.importorskip("openai")
    from executor.tracing import flatten_messages, warmup_body

    messages = [
        {"role": "system", "content": "RULES " * 20},
        {"role": "user", "content": "Report: R\nQuestion: q"},
    ]
    flat = flatten_messages(messages)
    # A prefix ending inside the user message: system whole, user cut there and left open, so the
    # server's own template renders exactly the shared prefix.
    api, body = warmup_body("chat.completions", {"model": "m", "messages": messages}, flat[:-2])  # type: ignore[misc]
    assert api == "chat.completions" and body["max_tokens"] == 1
    assert body["messages"] == [messages[0], {"role": "user", "content": "Report: R\nQuestion:"}]
    assert body["extra_body"] == {"continue_final_message": True, "add_generation_prompt": False}
    # A prefix covering whole messages only needs no open message.
    api, body = warmup_body(
        "chat.completions",
        {"model": "m", "messages": messages},  # type: ignore[misc]
        flatten_messages(messages[:1]),
    )
    assert body["messages"] == messages[:1] and "extra_body" not in body
    assert warmup_body("chat.completions", {"model": "m", "messages": messages}, "<|sys") is None
    api, body = warmup_body("completions", {"model": "m", "prompt": "P Q"}, "P ")  # type: ignore[misc]
    assert api == "completions" and body["prompt"] == "P "


def test_a_prefix_groups_requests_share_the_place_its_first_request_took() -> None:
    """vLLM serves by (priority, arrival): a later sibling gets its group's first-seen time, so it goes
    before a request of a group seen after its own; a request in no group takes its own time."""
    from executor.hints import PriorityLine

    now = iter([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    line = PriorityLine(clock=lambda: next(now), remember=2)
    assert line.place("report A") == 1000
    assert line.place("report B") == 2000
    assert line.place(None) == 3000  # no group: first come, first served
    assert line.place("report A") == 1000  # a sibling joins its group's place
    assert line.place("report C") == 4000  # B, the least recently used, is forgotten (remember=2)
    assert line.place("report B") == 5000  # seen again after it was forgotten: a new place; A goes
    assert line.place("report C") == 4000 and line.place("report A") == 6000


def test_the_priority_goes_in_extra_body_unless_the_agent_set_one() -> None:
    from executor.hints import with_priority

    kwargs = {"model": "m", "extra_body": {"top_k": 5}}
    assert with_priority(kwargs, 7) == {"model": "m", "extra_body": {"top_k": 5, "priority": 7}}
    assert kwargs == {"model": "m", "extra_body": {"top_k": 5}}  # the agent's arguments are not edited
    own = {"model": "m", "extra_body": {"priority": -1}}
    assert with_priority(own, 7) is own


def test_a_warm_up_keeps_its_calls_place_in_line() -> None:
    """A warm-up sent with priority 0 would jump ahead of every hinted request and evict the prefixes of
    the groups before it: it carries its call's priority, and nothing else of the call's extra_body."""
    from executor.tracing import flatten_messages, warmup_body

    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Report: x y z"}]
    flat = flatten_messages(messages)
    extra = {"priority": 1234, "top_k": 3}
    api, body = warmup_body(
        "chat.completions", {"model": "m", "messages": messages, "extra_body": extra}, flat[:-2]
    )  # type: ignore[misc]
    assert body["extra_body"] == {
        "priority": 1234,
        "continue_final_message": True,
        "add_generation_prompt": False,
    }
    api, body = warmup_body("completions", {"model": "m", "prompt": flat, "extra_body": extra}, flat[:10])  # type: ignore[misc]
    assert body == {
        "model": "m",
        "max_tokens": 1,
        "temperature": 0.0,
        "prompt": flat[:10],
        "extra_body": {"priority": 1234},
    }
    assert "extra_body" not in warmup_body("completions", {"model": "m"}, "abc")[1]  # type: ignore[index]


async def test_ttft_ends_at_the_first_token_even_when_it_decodes_to_no_text() -> None:
    """vLLM streams each token with its `token_ids` (return_token_ids); a token can decode to "" (the kit's
    random model does it often; so does half of a multi-byte character). The kit's server shows it in about
    a third of calls, but not on demand, so this feeds the documented chunk format through httpx's
    MockTransport: two empty-text tokens arrive 50 ms apart, then visible text 200 ms later. TTFT is the
    first token's time, well before the text."""
    import asyncio as aio
    import json as js

    import httpx

    from executor.targets import VllmTarget

    def chunk(text: str, ids: list[int]) -> bytes:
        body = {"choices": [{"index": 0, "text": text, "token_ids": ids}]}
        return f"data: {js.dumps(body)}\n\n".encode()

    async def stream():
        yield chunk("", [5])
        await aio.sleep(0.05)
        yield chunk("", [6])
        await aio.sleep(0.2)
        yield chunk("hi", [7])
        yield b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3}}\n\n'
        yield b"data: [DONE]\n\n"

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=stream(), headers={"content-type": "text/event-stream"})

    target = VllmTarget("http://vllm.test", model="tiny")
    target._http = httpx.AsyncClient(base_url="http://vllm.test", transport=httpx.MockTransport(answer))
    outcome = await target.complete("a b c", max_tokens=3, timeout_s=10)
    await target._http.aclose()
    assert outcome.text == "hi" and outcome.completion_tokens == 3
    assert outcome.ttft_s is not None and outcome.ttft_s < 0.1 and outcome.latency_s >= 0.25
