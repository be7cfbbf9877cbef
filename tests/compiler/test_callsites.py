"""Call-site styles beyond the fixtures, name patterns, and injected token counters."""

from __future__ import annotations

from compiler.api import CompileOptions, compile_source
from compiler.model import CallStyle, SourceKind


def test_httpx_async_client_post_to_chat_completions():
    src = """
import httpx

async def ask(question):
    async with httpx.AsyncClient(base_url="http://127.0.0.1:8000") as http:
        r = await http.post("/v1/chat/completions", json={"model": "m", "messages": [
            {"role": "system", "content": "Answer briefly."}, {"role": "user", "content": question}]})
    return r.json()
"""
    [call] = compile_source(src).calls
    assert call.style is CallStyle.HTTP and call.is_async
    assert [s.role for s in call.segments if s.synthetic] == ["system", "user"]
    assert [s.name for s in call.segments if s.kind == "dynamic"] == ["question"]


def test_posts_to_other_urls_are_not_llm_calls():
    src = """
import requests

def save(doc):
    requests.post("http://example.com/api/documents", json={"text": doc})
"""
    assert compile_source(src).calls == []


def test_user_name_patterns_extend_the_defaults():
    src = """
from acme import ask_model

def run(q):
    return ask_model("Question: " + q)
"""
    assert compile_source(src).calls == []
    opts = CompileOptions(name_patterns=("ask_*",))
    [call] = compile_source(src, options=opts).calls
    assert call.style is CallStyle.NAMED_FUNCTION and call.callee == "ask_model"


def test_callable_parameter_needs_generation_arguments():
    src = """
def step(s, call_fn, log):
    log(s)
    return call_fn(s + "Continue.", max_tokens=64)
"""
    [call] = compile_source(src).calls
    assert call.style is CallStyle.CALLABLE_PARAMETER and call.callee == "call_fn"
    assert call.max_tokens == 64


def test_volatile_sources_and_loop_variables():
    src = """
import random, time
from uuid import uuid4
from openai import OpenAI
client = OpenAI()

def run(items):
    for item in items:
        client.completions.create(model="m", prompt=f"{time.time()} {uuid4()} {random.random()} {item}")
"""
    [call] = compile_source(src).calls
    sources = [s.source for s in call.segments if s.kind == "dynamic"]
    assert sources == [SourceKind.VOLATILE] * 3 + [SourceKind.LOOP_VARIABLE]
    assert all(s.varies_in_loop for s in call.segments if s.kind == "dynamic")


def test_injected_counter_counts_static_text_and_labels_it():
    seen: list[str] = []

    def words(text: str) -> int:
        seen.append(text)
        return len(text.split())

    src = """
from openai import OpenAI
client = OpenAI()
def run(q):
    return client.completions.create(model="m", prompt="one two three four " + q)
"""
    r = compile_source(src, token_counter=words, tokenizer_name="words")
    assert r.estimates.tokens_estimated is False and r.estimates.tokenizer == "words"
    static = next(s for s in r.calls[0].segments if s.kind == "static")
    assert (static.tokens, static.tokens_basis) == (4, "counted")
    assert "one two three four " in seen
    estimated = compile_source(src)
    assert estimated.estimates.tokens_estimated is True
    assert next(s for s in estimated.calls[0].segments if s.kind == "static").tokens_basis == "estimated"


def test_langchain_async_methods_and_triton_async_infer():
    src = """
import tritonclient.grpc.aio as grpcclient
from langchain_openai import ChatOpenAI

async def run(q):
    model = ChatOpenAI()
    a = await model.ainvoke("Answer: " + q)
    b = await model.abatch(["Short answer: " + q, "Long answer: " + q])
    triton_client = grpcclient.InferenceServerClient("localhost:8001")
    c = await triton_client.async_infer("ensemble", inputs=[a])
    return a, b, c
"""
    calls = compile_source(src).calls
    assert [(c.style, c.callee, c.is_async, c.fanout) for c in calls] == [
        (CallStyle.LANGCHAIN, "model.ainvoke", True, None),
        (CallStyle.LANGCHAIN, "model.abatch", True, 2),
        (CallStyle.TRITON, "triton_client.async_infer", True, None),
    ]


def test_local_named_helper_with_an_opaque_body_takes_its_prompt_argument():
    src = """
import backend

SYSTEM = "You summarise support tickets for engineers in three plain sentences, quoting errors."

def llm_summarize(prompt, max_tokens=64):
    return backend.run(prompt, max_tokens)

def handle(ticket):
    return llm_summarize(prompt=SYSTEM + "\\n" + ticket, max_tokens=32)
"""
    [call] = compile_source(src).calls
    assert call.style is CallStyle.NAMED_FUNCTION and call.callee == "llm_summarize"
    assert call.segments[0].text.startswith("You summarise support tickets")
    assert [s.name for s in call.segments if s.kind == "dynamic"] == ["ticket"]
