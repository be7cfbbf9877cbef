"""The compiler's estimate for traffic (executor/estimate.py), worked by hand with the stand-in
tokenizer (one id per word with its leading space): block sizes, the cache carried between requests,
outputs the same for the same prompt. The estimate on the real vLLM server's tokenizer is checked
against the server's own counters in tests/executor/test_bench_vllm.py."""

from __future__ import annotations

import asyncio

from compiler.api import compile_source
from executor.binding import BindOptions
from executor.estimate import ModelledTarget, estimate_traffic, word_ids
from executor.inputs import InputRecord

PREFIX = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 "  # 12 words: 12 stand-in tokens

ONE_CALL = f'''
from openai import OpenAI

client = OpenAI()
PREFIX = "{PREFIX}"

def answer(question):
    return client.completions.create(model="m", prompt=PREFIX + question, max_tokens=4)
'''

CHAIN = f'''
from openai import OpenAI

client = OpenAI()
PREFIX = "{PREFIX}"

def answer(question):
    draft = client.completions.create(model="m", prompt=PREFIX + question, max_tokens=4)
    text = draft.choices[0].text
    return client.completions.create(model="m", prompt=PREFIX + question + text, max_tokens=4)
'''


def records(*questions: str) -> list[InputRecord]:
    return [InputRecord(line=i + 1, values={"question": q}) for i, q in enumerate(questions)]


def estimate(code: str, recs: list[InputRecord], block_size: int):  # noqa: ANN201
    result = compile_source(code, "agent.py")
    return asyncio.run(estimate_traffic(result, recs, block_size=block_size, bind=BindOptions()))


def test_the_second_request_finds_the_first_ones_prefix_in_whole_blocks() -> None:
    # Each prompt: 12 prefix + 3 question tokens = 15; hittable floor(14/4) = 3 blocks.
    # Request 1 computes blocks 0-2 (cold); request 2's blocks 0-2 are the shared prefix: 12 cached.
    e = estimate(ONE_CALL, records("q a b", "q c d"), block_size=4)
    assert (e.prompt_tokens, e.cached_tokens) == (30, 12)
    assert e.estimate == 12 / 30 and e.first_request_share == 0.0
    # Token level: request 2 also shares "q" (13 tokens), which a 4-token block cannot hold.
    assert e.token_level_cached == 13 and e.ceiling == 13 / 30


def test_one_request_alone_reuses_nothing_and_a_third_adds_its_share() -> None:
    assert estimate(ONE_CALL, records("q a b"), block_size=4).cached_tokens == 0
    e = estimate(ONE_CALL, records("q a b", "q c d", "x y z"), block_size=4)
    assert (e.prompt_tokens, e.cached_tokens, e.token_level_cached) == (45, 24, 25)


def test_a_repeated_prompt_gets_the_same_output_so_the_whole_chain_is_reused() -> None:
    # Call 1: 15 tokens; call 2 quotes call 1's 4-token output: 19 tokens. Request 1 alone: call 2
    # finds call 1's prompt and its generated blocks (15 + 3 generated tokens computed = 18 -> 4
    # blocks of 4 = 16 tokens). The same question again sends the same prompts and (greedy) gets the
    # same outputs: request 2 hits floor(14/4)*4 = 12 and floor(18/4)*4 = 16 more.
    e = estimate(CHAIN, records("q a b", "q a b"), block_size=4)
    assert e.prompt_tokens == 2 * (15 + 19)
    assert e.first_request_share == 16 / 34
    assert e.cached_tokens == 16 + 12 + 16


def test_the_modelled_output_has_exactly_the_requested_tokens_and_depends_only_on_the_prompt() -> None:
    async def go() -> tuple[list[int], list[int], list[int]]:
        target = ModelledTarget(block_size=4)
        a = await target.complete("w1 w2", 6, 1.0)
        b = await target.complete("w1 w2", 6, 1.0)
        c = await target.complete("w1 w3", 6, 1.0)
        assert word_ids(a.text) == a.output_ids
        return a.output_ids or [], b.output_ids or [], c.output_ids or []

    a, b, c = asyncio.run(go())
    assert len(a) == 6 and a == b and a != c
