"""The LlamaIndex adapter on whole programs: a completion whose output feeds a query engine (calls, edge,
the text-QA layout in order), a custom `text_qa_template`, chat templates, and what stays LangChain's."""

from __future__ import annotations

from compiler.adapters.llama_index import QA_HEADER, QA_INSTRUCTION, QA_SYSTEM, QA_TAIL
from compiler.api import compile_source
from compiler.model import CallSite, CallStyle, SourceKind

TWO_STEPS = """
from llama_index.core import VectorStoreIndex
from llama_index.llms.openai import OpenAI

llm = OpenAI(model="gpt-4o-mini")
REWRITE = "Rewrite this customer question as a short search query for our product manual:\\n"

def answer(index: VectorStoreIndex, question):
    search = llm.complete(REWRITE + question)
    engine = index.as_query_engine(llm=llm, similarity_top_k=2)
    return engine.query(search.text)
"""


def _segments(call: CallSite) -> list[tuple[str, str]]:
    return [(s.kind, s.text) for s in call.segments]


def test_a_completion_feeding_a_query_engine() -> None:
    result = compile_source(TWO_STEPS, "rag.py")
    assert [(c.id, c.line, c.callee, c.style, c.is_async) for c in result.calls] == [
        ("c1", 9, "llm.complete", CallStyle.LLAMA_INDEX, False),
        ("c2", 11, "engine.query", CallStyle.LLAMA_INDEX, False),
    ]
    assert [(e.source, e.target, e.variables, e.kind) for e in result.edges] == [
        ("c1", "c2", ["search.text"], "data")
    ]
    assert result.order == ["c1", "c2"]
    # complete: a completion prompt, no role header
    assert _segments(result.call("c1")) == [
        ("static", "Rewrite this customer question as a short search query for our product manual:\n"),
        ("dynamic", "{question}"),
    ]
    # query: the default text-QA layout, the retrieved context before the query
    query = result.call("c2")
    assert _segments(query) == [
        ("static", "<|system|>\n"),
        ("static", QA_SYSTEM),
        ("static", "<|user|>\n"),
        ("static", QA_HEADER),
        ("dynamic", "{retrieved_context}"),
        ("static", QA_INSTRUCTION),
        ("dynamic", "{search.text}"),
        ("static", QA_TAIL),
    ]
    context, asked = [s for s in query.segments if s.kind == "dynamic"]
    assert (context.source, context.origin_calls) == (SourceKind.LOCAL, [])
    assert (asked.source, asked.origin_calls) == (SourceKind.CALL_OUTPUT, ["c1"])
    assert context.tokens == 750, "retrieved chunks are sized as a large input, not a small value"


def test_a_completion_feeding_a_chat() -> None:
    code = """
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.llms.openai import OpenAI

llm = OpenAI(model="gpt-4o-mini")

async def reply(ticket):
    mood = await llm.acomplete("One word for the customer's mood in this ticket: " + ticket)
    msgs = [
        ChatMessage(role=MessageRole.SYSTEM, content="You answer support tickets kindly."),
        ChatMessage.from_str(mood.text, role=MessageRole.ASSISTANT),
        ChatMessage(role="user", content=ticket),
    ]
    return await llm.achat(msgs)
"""
    result = compile_source(code, "chat.py")
    assert [(c.id, c.line, c.callee, c.is_async) for c in result.calls] == [
        ("c1", 8, "llm.acomplete", True),
        ("c2", 14, "llm.achat", True),
    ]
    assert [(e.source, e.target, e.variables) for e in result.edges] == [("c1", "c2", ["mood.text"])]
    assert _segments(result.call("c2")) == [
        ("static", "<|system|>\n"),
        ("static", "You answer support tickets kindly."),
        ("static", "<|assistant|>\n"),
        ("dynamic", "{mood.text}"),
        ("static", "<|user|>\n"),
        ("dynamic", "{ticket}"),
    ]


def test_a_text_qa_template_replaces_the_default_layout() -> None:
    code = """
from llama_index.core import PromptTemplate

QA = PromptTemplate("Notes:\\n{context_str}\\nQ: {query_str}\\nA:")

def ask(index, q):
    return index.as_query_engine(text_qa_template=QA).query(q)
"""
    [call] = compile_source(code, "qa.py").calls
    assert _segments(call) == [
        ("static", "<|user|>\n"),
        ("static", "Notes:\n"),
        ("dynamic", "{retrieved_context}"),
        ("static", "\nQ: "),
        ("dynamic", "{q}"),
        ("static", "\nA:"),
    ]


def test_the_retrieved_context_varies_where_the_query_does() -> None:
    code = """
def ask_all(index, questions):
    engine = index.as_query_engine()
    return [engine.query("Question: " + q) for q in questions]
"""
    [call] = compile_source(code, "loop.py").calls
    context = next(s for s in call.segments if s.name == "retrieved_context")
    assert context.varies_in_loop


def test_chat_templates_predict_and_the_global_llm() -> None:
    code = """
from llama_index.core import ChatPromptTemplate, PromptTemplate, Settings

GRADE = ChatPromptTemplate.from_messages(
    [("system", "You grade essays on {subject}. Reply with a letter."), ("user", "{essay}")]
)
TITLE = PromptTemplate("Give this essay a title: {essay}")

def grade(essay):
    title = Settings.llm.predict(TITLE, essay=essay)
    return Settings.llm.chat(GRADE.format_messages(subject="history", essay=title))
"""
    result = compile_source(code, "grade.py")
    assert [(c.id, c.callee) for c in result.calls] == [
        ("c1", "Settings.llm.predict"),
        ("c2", "Settings.llm.chat"),
    ]
    assert _segments(result.call("c1")) == [("static", "Give this essay a title: "), ("dynamic", "{essay}")]
    assert _segments(result.call("c2")) == [
        ("static", "<|system|>\n"),
        ("static", "You grade essays on history. Reply with a letter."),
        ("static", "<|user|>\n"),
        ("dynamic", "{title}"),
    ]
    assert [(e.source, e.target, e.variables) for e in result.edges] == [("c1", "c2", ["title"])]


def test_a_structured_llm_is_still_the_llm_and_other_objects_are_not_models() -> None:
    code = """
from llama_index.llms.openai import OpenAI

llm = OpenAI(model="gpt-4o-mini")

def label(text, Label, notes):
    notes.query("not a model")  # not a query engine built here
    return llm.as_structured_llm(Label).complete("Label this review: " + text)
"""
    [call] = compile_source(code, "s.py").calls
    assert (call.line, call.callee, call.style) == (
        8,
        "llm.as_structured_llm.().complete",
        CallStyle.LLAMA_INDEX,
    )


def test_langchain_templates_stay_langchains() -> None:
    """LlamaIndex runs before LangChain (which takes any `...PromptTemplate` by name); LangChain's own
    template must still be a template a LangChain model fills."""
    code = """
from langchain_core.prompts import PromptTemplate
from langchain_openai import ChatOpenAI

chain = PromptTemplate.from_template("Translate to Dutch: {text}") | ChatOpenAI()

def translate(text):
    return chain.invoke({"text": text})
"""
    [call] = compile_source(code, "lc.py").calls
    assert call.style is CallStyle.LANGCHAIN
    assert _segments(call) == [
        ("static", "<|user|>\n"),
        ("static", "Translate to Dutch: "),
        ("dynamic", "{text}"),
    ]
