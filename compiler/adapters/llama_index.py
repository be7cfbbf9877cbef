"""LlamaIndex: LLM objects, chat messages, prompt templates and query/chat engines over an index.

- Objects: LLMs by constructor (`llama_index.llms.openai.OpenAI`, `.anthropic.Anthropic`,
  `.ollama.Ollama`, `.openai_like.OpenAILike`, `.vllm.Vllm`; `llm.as_structured_llm(M)` is still that
  LLM); `ChatMessage(role=..., content=...)`, `ChatMessage.from_str(content, role)` with `MessageRole.X`
  or a role string; `PromptTemplate("...{x}...")` with `.format(x=...)` (text) and `.format_messages(...)`
  (one user message); `ChatPromptTemplate.from_messages([...])` (or `message_templates=`) with
  `.format_messages(...)`; `index.as_query_engine(...)`, `index.as_chat_engine(...)`,
  `RetrieverQueryEngine.from_args(...)`.
- Calls: `complete/acomplete/stream_complete/astream_complete(prompt)`, read as a completion prompt (a
  chat model wraps it in one user message, whose role header is not counted);
  `chat/achat/stream_chat/astream_chat(messages)`; `predict/apredict/stream/astream(template, **x)` and
  `structured_predict/astructured_predict(Model, template, **x)`, the template filled with `x` (a
  `PromptTemplate` as text, a `ChatPromptTemplate` as its messages). `Settings.llm.<method>(...)` is a
  call of the global LLM, recognised by name: the interpreter does not follow the assignment
  `Settings.llm = OpenAI(...)` (an attribute of an imported name), so which LLM it is stays unknown.
- A query engine's `query/aquery(q)` and a chat engine's `chat/achat/stream_chat/astream_chat(msg)` are
  one call laid out as LlamaIndex's default text-QA prompt for chat models: a static system message,
  then a user message with a static header, the retrieved context (a run-time value), a static
  instruction and the query last. The words are a paraphrase of the documented default, not its exact
  text, so static token counts are approximate. A `text_qa_template=` replaces it (a `PromptTemplate`
  as one user message with `{context_str}` and `{query_str}` filled).

Not modelled: refine steps (further calls when the retrieved context does not fit one prompt, and
`response_mode="refine"`), other response modes' templates (`tree_summarize`), a chat engine's
condensing call, chat history and agent-mode tool calls, `update_prompts(...)`, `partial_format(...)`,
`ChatPromptTemplate.format(...)` as one string, and query rewriting or retrieval itself (no model call
is counted for embeddings).
"""

from __future__ import annotations

from compiler.adapters.base import Adapter, Expect, Read, SdkCall, static_text
from compiler.callsites import CallMatch
from compiler.model import CallStyle, SourceKind
from compiler.templates import format_text, messages_text, role_header
from compiler.values import (
    Client,
    Dyn,
    Mapping,
    ModuleRef,
    Seq,
    Static,
    Template,
    Text,
    Value,
    concat,
    text_of,
    varies_of,
)

NAME = "llama_index"
MARK = "__llama_index__"  # the first key of a Mapping built here; its value says what it is
LLMS = frozenset(
    {
        "llama_index.llms.openai.OpenAI",
        "llama_index.llms.anthropic.Anthropic",
        "llama_index.llms.ollama.Ollama",
        "llama_index.llms.openai_like.OpenAILike",
        "llama_index.llms.vllm.Vllm",
    }
)
COMPLETE = frozenset({"complete", "acomplete", "stream_complete", "astream_complete"})
CHAT = frozenset({"chat", "achat", "stream_chat", "astream_chat"})
PREDICT = frozenset({"predict", "apredict", "stream", "astream"})
STRUCTURED = frozenset({"structured_predict", "astructured_predict"})
LLM_METHODS = COMPLETE | CHAT | PREDICT | STRUCTURED
QUERY = frozenset({"query", "aquery"})
ENGINES = {"as_query_engine": "query_engine", "as_chat_engine": "chat_engine"}
TUPLE_ROLES = {"human": "user", "ai": "assistant"}

# The default text-QA prompt's layout (paraphrased): system, then header, context, instruction, query.
QA_SYSTEM = (
    "You are a question-answering assistant. Answer from the context information provided, not from "
    "prior knowledge, and do not mention the context itself in your answer."
)
QA_HEADER = "Context information:\n----------\n"
QA_INSTRUCTION = "\n----------\nUsing only the context above, answer the query.\nQuery: "
QA_TAIL = "\nAnswer: "


def _text(s: str) -> Text:
    return Text((Static(s),))


def _kind(value: Value | None) -> str | None:
    if isinstance(value, Mapping) and value.items and value.items[0][0] == MARK:
        return static_text(value.items[0][1])
    return None


def _role(value: Value | None) -> str:
    """`MessageRole.SYSTEM` or "system" -> "system"; anything else is the default, the user."""
    if isinstance(value, ModuleRef) and ".MessageRole." in value.qualname:
        return value.qualname.rsplit(".", 1)[-1].lower()
    role = static_text(value)
    return TUPLE_ROLES.get(role.lower(), role.lower()) if role else "user"


def _message(role: str, content: Value) -> Mapping:
    return Mapping((("role", _text(role)), ("content", content)))


def _template_messages(messages: Value | None) -> Template:
    """`ChatPromptTemplate.from_messages([...])`: `ChatMessage`s or `(role, text)` pairs."""
    out: list[tuple[str, Text]] = []
    for m in messages.items if isinstance(messages, Seq) else ():
        if isinstance(m, Mapping):
            out.append((_role(m.get("role")), text_of(m.get("content") or Text(()), "content")))
        elif isinstance(m, Seq) and len(m.items) == 2:
            out.append((_role(m.items[0]), text_of(m.items[1], "content")))
    return Template(tuple(out))


def _filled(template: Mapping, kwargs: dict[str, Value], star: Value | None) -> Seq:
    """A template's messages with their `{fields}` filled (`format_messages`)."""
    tmpl = template.get("template")
    messages = tmpl.messages if isinstance(tmpl, Template) else ()
    return Seq(tuple(_message(role, format_text(t, [], kwargs, star)) for role, t in messages))


def _rendered(prompt: Value | None, kwargs: dict[str, Value], star: Value | None) -> Text:
    """What `predict(prompt, **kwargs)` sends: a `PromptTemplate` as text, a chat template as messages."""
    kind = _kind(prompt)
    if isinstance(prompt, Mapping) and kind == "prompt":
        tmpl = prompt.get("template")
        if isinstance(tmpl, Template) and tmpl.messages:
            return format_text(tmpl.messages[0][1], [], kwargs, star)
    if isinstance(prompt, Mapping) and kind == "chat_prompt":
        return messages_text(_filled(prompt, kwargs, star))
    return text_of(prompt, "prompt") if prompt is not None else Text(())


def _question(engine: Mapping, call: SdkCall) -> Text:
    """A query engine's call: the text-QA prompt (or `text_qa_template=`) with the context and query."""
    args, kwargs = call.args, call.kwargs
    query = args[0] if args else (kwargs.get("str_or_query_bundle") or kwargs.get("message"))
    query = query if query is not None else Text(())
    # Retrieved at run time for this query: a value of its own per call site, varying where the query does.
    node = call.node
    context = Text(
        (
            Dyn(
                "retrieved_context",
                SourceKind.LOCAL,
                key=f"llama_index:context:{node.lineno}:{node.col_offset}",
                varies=varies_of(query),
            ),
        )
    )
    fields: dict[str, Value] = {"context_str": context, "query_str": query}
    custom = engine.get("text_qa_template")
    kind = _kind(custom)
    if isinstance(custom, Mapping) and kind == "prompt":
        return concat(Text((role_header("user"),)), _rendered(custom, fields, None))
    if isinstance(custom, Mapping) and kind == "chat_prompt":
        return messages_text(_filled(custom, fields, None))
    if custom is not None:  # a template built elsewhere: its text is run-time, filled at unknown places
        return concat(
            Text((role_header("user"),)), format_text(text_of(custom, "text_qa_template"), [], fields, None)
        )
    return Text(
        (
            role_header("system"),
            Static(QA_SYSTEM),
            role_header("user"),
            Static(QA_HEADER),
            *context.parts,
            Static(QA_INSTRUCTION),
            *text_of(query, "query").parts,
            Static(QA_TAIL),
        )
    )


def _settings_llm(qualified: str | None) -> bool:
    """`llama_index.core.Settings.llm.<method>`: the global LLM, however `Settings` was imported."""
    parts = qualified.split(".") if qualified else []
    return len(parts) >= 4 and parts[0] == "llama_index" and parts[-3:-1] == ["Settings", "llm"]


class LlamaIndexAdapter(Adapter):
    NAME = NAME
    HINT = (
        r"\.(?:a?(?:stream_)?(?:complete|chat)|a?query|a?(?:structured_)?predict|as_query_engine"
        r"|as_chat_engine)\s*\("
    )

    @staticmethod
    def construct(call: SdkCall) -> Value | None:
        receiver, method, args, kwargs = call.receiver, call.method, call.args, call.kwargs
        kind = _kind(receiver)
        if isinstance(receiver, Mapping) and kind in ("prompt", "chat_prompt"):
            if method == "format" and kind == "prompt":
                return _rendered(receiver, kwargs, call.star)
            if method == "format_messages":
                return _filled(receiver, kwargs, call.star)
            return None
        if method == "as_structured_llm" and isinstance(receiver, Client) and receiver.kind == NAME:
            return receiver  # `llm.as_structured_llm(Answer)` sends what `llm` sends
        if method in ENGINES:  # a method of an index, whatever built it (the names are LlamaIndex's own)
            return Mapping(((MARK, _text(ENGINES[method])), *kwargs.items()))
        qualified = call.qualified
        if qualified is None or not qualified.startswith("llama_index."):
            return None
        if qualified in LLMS:
            return Client(NAME, method)
        dotted = qualified.split(".")
        if dotted[-1] == "PromptTemplate" and (args or "template" in kwargs):
            template = args[0] if args else kwargs["template"]
            return Mapping(((MARK, _text("prompt")), ("template", Template((("user", text_of(template)),)))))
        if dotted[-2:] == ["ChatPromptTemplate", "from_messages"] or (
            dotted[-1] == "ChatPromptTemplate" and "message_templates" in kwargs
        ):
            messages = args[0] if args else (kwargs.get("message_templates") or kwargs.get("messages"))
            return Mapping(((MARK, _text("chat_prompt")), ("template", _template_messages(messages))))
        if dotted[-2:] == ["ChatMessage", "from_str"]:
            content = args[0] if args else kwargs.get("content", Text(()))
            return _message(_role(args[1] if len(args) > 1 else kwargs.get("role")), content)
        if dotted[-1] == "ChatMessage":
            return _message(
                _role(kwargs.get("role")), kwargs.get("content") or (args[0] if args else Text(()))
            )
        if dotted[-2:] == ["RetrieverQueryEngine", "from_args"]:
            return Mapping(((MARK, _text("query_engine")), *kwargs.items()))
        return None

    @staticmethod
    def recognise(call: SdkCall) -> CallMatch | None:
        method, receiver = call.method, call.receiver
        kind = _kind(receiver)
        engine = (kind == "query_engine" and method in QUERY) or (kind == "chat_engine" and method in CHAT)
        llm = method in LLM_METHODS and (
            (isinstance(receiver, Client) and receiver.kind == NAME) or _settings_llm(call.qualified)
        )
        if engine or llm:
            from compiler.interpreter.nodes import dotted_name

            return CallMatch(CallStyle.LLAMA_INDEX, dotted_name(call.node.func), NAME)
        return None

    @staticmethod
    def read(match: CallMatch, call: SdkCall) -> Read:
        args, kwargs, method, receiver = call.args, call.kwargs, call.method, call.receiver
        if isinstance(receiver, Mapping) and _kind(receiver) in ("query_engine", "chat_engine"):
            return _question(receiver, call), None
        if method in COMPLETE:
            prompt = args[0] if args else kwargs.get("prompt")
            return (text_of(prompt, "prompt") if prompt is not None else Text(())), None
        if method in CHAT:
            return messages_text(args[0] if args else kwargs.get("messages")), None
        skip = {"prompt", "output_cls", "llm_kwargs"}
        rest = {k: v for k, v in kwargs.items() if k not in skip}
        at = 1 if method in STRUCTURED else 0  # `structured_predict(Model, prompt, **x)`
        prompt = args[at] if len(args) > at else kwargs.get("prompt")
        return _rendered(prompt, rest, call.star), None

    VALID = (
        """
from llama_index.core import PromptTemplate, SimpleDirectoryReader, VectorStoreIndex
from llama_index.llms.openai import OpenAI

llm = OpenAI(model="gpt-4o-mini", temperature=0)
GLOSSARY = PromptTemplate("Define {term} for a first-year nursing student in two sentences.")

def build(folder):
    index = VectorStoreIndex.from_documents(SimpleDirectoryReader(folder).load_data())
    return index.as_query_engine(llm=llm, similarity_top_k=3)

def render(term):
    return GLOSSARY.format(term=term)
""",
        """
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.llms.ollama import Ollama

local = Ollama(model="llama3.1", request_timeout=60.0)

def opening(topic):
    return [
        ChatMessage(role=MessageRole.SYSTEM, content="You are a patient chess coach."),
        ChatMessage.from_str("Teach me the " + topic),
    ]
""",
    )
    INVALID = (
        Expect(  # complete, then chat with messages built from its output
            """
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.llms.anthropic import Anthropic

llm = Anthropic(model="claude-3-5-haiku-latest")
SORT = "Name the component this bug report is about: parser, renderer, network or storage.\\n\\n"

def first_reply(report):
    component = llm.complete(SORT + report)
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="You write the first reply to someone who filed a bug."),
        ChatMessage.from_str(f"Component: {component.text}\\nReport: {report}", role="user"),
    ]
    return llm.chat(messages).message.content
""",
            calls=((9, "llm.complete"), (14, "llm.chat")),
            prompt_contains=(
                "Name the component this bug report is about",
                "<|system|>\nYou write the first reply to someone who filed a bug.<|user|>\nComponent: ",
            ),
        ),
        Expect(  # query engines: the default text-QA layout, a custom template, a retriever engine
            """
from llama_index.core import PromptTemplate, Settings, VectorStoreIndex
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.llms.openai_like import OpenAILike

Settings.llm = OpenAILike(model="qwen2.5-7b", api_base="http://localhost:8000/v1", is_chat_model=True)
CITED = PromptTemplate(
    "Excerpts from the employee handbook:\\n{context_str}\\n"
    "Answer the question and quote the excerpt you used.\\nQuestion: {query_str}\\n"
)

def ask(index: VectorStoreIndex, question):
    return index.as_query_engine().query(question)

async def ask_cited(index, question):
    engine = index.as_query_engine(text_qa_template=CITED, similarity_top_k=4)
    return await engine.aquery(question)

def ask_retriever(retriever, question):
    return RetrieverQueryEngine.from_args(retriever, text_qa_template=CITED).query(question)

def chat_turn(index, message):
    return index.as_chat_engine(chat_mode="context").chat(message)
""",
            calls=(
                (13, "index.as_query_engine.().query"),
                (17, "engine.aquery"),
                (20, "RetrieverQueryEngine.from_args.().query"),
                (23, "index.as_chat_engine.().chat"),
            ),
            prompt_contains=(QA_HEADER, QA_INSTRUCTION, "Excerpts from the employee handbook:\n"),
        ),
        Expect(  # templates: predict, structured_predict, format_messages + achat, Settings.llm, streaming
            """
from llama_index.core import ChatPromptTemplate, PromptTemplate, Settings
from llama_index.core.llms import ChatMessage
from llama_index.llms.vllm import Vllm
from pydantic import BaseModel

class Trip(BaseModel):
    city: str
    days: int

PLAN = PromptTemplate("Suggest a {days}-day walking route through {city} for a first visit.")
EXTRACT = PromptTemplate("Extract the city and the number of days from this request: {request}")
TONE = ChatPromptTemplate.from_messages(
    [("system", "You rewrite travel notes in the voice of a {voice}."), ("user", "{notes}")]
)
llm = Vllm(model="mistralai/Mistral-7B-Instruct-v0.3")

async def plan(request, voice):
    trip = llm.structured_predict(Trip, EXTRACT, request=request)
    route = llm.predict(PLAN, days=trip.days, city=trip.city)
    styled = await Settings.llm.achat(TONE.format_messages(voice=voice, notes=route))
    for chunk in llm.stream_complete(PLAN.format(days=2, city="Lisbon")):
        print(chunk.delta)
    return styled
""",
            calls=(
                (19, "llm.structured_predict"),
                (20, "llm.predict"),
                (21, "Settings.llm.achat"),
                (22, "llm.stream_complete"),
            ),
            prompt_contains=(
                "Extract the city and the number of days from this request: ",
                "Suggest a 2-day walking route through Lisbon for a first visit.",
                "<|system|>\nYou rewrite travel notes in the voice of a ",
            ),
        ),
    )
