"""Client-SDK knowledge: what LLM client libraries and agent frameworks do, where their adapters plug in.

Everything else in the interpreter is about Python; this module is about OpenAI, LiteLLM, LangChain,
tritonclient and HTTP endpoints. The interpreter evaluates a call's callee and arguments to symbolic
values, wraps them in an `SdkCall`, and asks, in this order:

1. `construct(call)`: does the call build an SDK object (a client, a LangChain prompt template or
   chat message)? Its value is what later calls on it are recognised by.
2. `is_volatile(call)`: does it read something that differs on every request (clock, uuid, random)?
   Its text becomes a `volatile` segment, which no prefix cache can reuse.
3. `recognise(call, patterns)`: is it an LLM call, and in which style? (`compiler/callsites.py`
   holds the recognition rules: client constructors, OpenAI suffixes, LangChain and Triton methods,
   HTTP endpoints, named helpers.)
4. `read_request(match, call)`: what the recognised call sends: the prompt read from its arguments
   by the `PROMPT_READERS` entry for `match.kind`, its fan-out (`n=`), `max_tokens` and whether it is
   async.

Adding a framework (an adapter): its client constructors in `callsites.CLIENT_CONSTRUCTORS`, its call
shapes in `callsites.classify` (a `CallMatch` whose `kind` names a prompt reader), a reader in
`PROMPT_READERS` if no existing one fits, the objects its API builds in `construct`, and its method
names in `LLM_HINT` so that functions calling it are followed every time. An adapter reads only
`SdkCall` and the symbolic values (`compiler/values.py`, `compiler/templates.py`); it never runs the
agent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from compiler.adapters import ADAPTERS
from compiler.adapters.base import Adapter, SdkCall
from compiler.callsites import CLIENT_CONSTRUCTORS, CallMatch, classify
from compiler.interpreter.nodes import dotted_name
from compiler.model import CallStyle
from compiler.templates import message_text, messages_text
from compiler.values import (
    Client,
    Const,
    Mapping,
    Seq,
    Static,
    Text,
    Value,
    concat,
    text_of,
    texts_in,
)

# Calls whose result differs on every request, by qualified name (after import resolution).
VOLATILE_FUNCTIONS = frozenset(
    {
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.perf_counter",
        "time.strftime",
        "time.ctime",
        "time.localtime",
        "time.gmtime",
        "uuid.uuid1",
        "uuid.uuid4",
        "random.random",
        "random.randint",
        "random.choice",
        "random.uniform",
        "random.sample",
        "random.getrandbits",
        "secrets.token_hex",
        "secrets.token_urlsafe",
        "os.urandom",
        "os.getpid",
    }
)
# Text that hints a function makes an LLM call: such functions (and their callers) are followed every
# time they are called; others are followed a few times and then summarised (`core.py`).
LLM_HINT = re.compile(
    r"\.(?:create|parse|invoke|ainvoke|batch|abatch|stream|astream|infer|async_infer|post)\s*\("
    r"|\b(?:completion|acompletion|text_completion)\s*\("
    r"|\b(?:max_tokens|max_new_tokens|max_completion_tokens|temperature)\s*="
)
ASYNC_METHODS = frozenset({"acompletion", "ainvoke", "abatch", "astream", "async_infer"})
MAX_TOKENS_KWARGS = ("max_tokens", "max_new_tokens", "max_completion_tokens")  # the last one given wins


@dataclass(frozen=True, slots=True)
class Request:
    """What a recognised LLM call sends."""

    prompt: Text
    fanout: int | str | None  # `n=` (or a LangChain batch's length): an int, or the expression that gives it
    max_tokens: int | None
    is_async: bool


PromptReader = Callable[[CallMatch, SdkCall], tuple[Text, int | str | None]]


def construct(call: SdkCall, adapters: tuple[type[Adapter], ...] = ADAPTERS) -> Value | None:
    """The SDK object the call builds (a client, a LangChain template or message), else None."""
    for adapter in adapters:  # first: an adapter may build from a method call (`llm.bind_tools(...)`)
        built = adapter.construct(call)
        if built is not None:
            return built
    qualified = call.qualified
    if qualified is None:
        return None
    kind = CLIENT_CONSTRUCTORS.get(qualified)
    if kind is not None:
        return Client(kind, call.method)
    return None


def is_volatile(call: SdkCall) -> bool:
    return call.qualified in VOLATILE_FUNCTIONS


def recognise(
    call: SdkCall, patterns: tuple[str, ...], adapters: tuple[type[Adapter], ...] = ADAPTERS
) -> CallMatch | None:
    """Whether the call is an LLM call, and in which style: a framework adapter's, else
    `callsites.classify` (OpenAI, LiteLLM, LangChain, Triton, HTTP, named helpers, callables)."""
    for adapter in adapters:
        match = adapter.recognise(call)
        if match is not None:
            return match
    args, kwargs = call.args, call.kwargs
    url_text = ""
    if args and isinstance(args[0], Text):
        url_text = "".join(p.text for p in args[0].parts if isinstance(p, Static))
    elif "url" in kwargs and isinstance(kwargs["url"], Text):
        url_text = "".join(p.text for p in kwargs["url"].parts if isinstance(p, Static))
    return classify(
        dotted_name(call.node.func),
        call.qualified,
        call.receiver,
        call.func_value,
        frozenset(kwargs),
        url_text,
        patterns,
    )


def read_request(match: CallMatch, call: SdkCall, adapters: tuple[type[Adapter], ...] = ADAPTERS) -> Request:
    """The prompt, fan-out, max_tokens and asynchrony of a recognised call."""
    adapter = next((a for a in adapters if a.NAME == match.kind), None)
    reader = adapter.read if adapter is not None else PROMPT_READERS.get(match.kind, _from_args)
    prompt, fanout = reader(match, call)
    kwargs = call.kwargs
    n = kwargs.get("n")
    if n is not None:
        fanout = n.value if isinstance(n, Const) and isinstance(n.value, int) else call.kw_source("n")
    max_tokens = None
    for k in MAX_TOKENS_KWARGS:
        mt = kwargs.get(k)
        if isinstance(mt, Const) and isinstance(mt.value, int):
            max_tokens = mt.value
    method = match.api.rsplit(".", 1)[-1]
    is_async = call.awaited or method in ASYNC_METHODS
    if isinstance(call.receiver, Client) and call.receiver.name.startswith("Async"):
        is_async = True
    return Request(prompt, fanout, max_tokens, is_async)


# ----------------------------------------------------------------------------- prompt readers


def _chat(match: CallMatch, call: SdkCall) -> tuple[Text, int | str | None]:
    """`messages=[...]` (also inside an HTTP `json=` body), else the messages positional."""
    args, kwargs = call.args, call.kwargs
    msgs = kwargs.get("messages")
    if msgs is None:
        body = kwargs.get("json")
        if isinstance(body, Mapping):
            msgs = body.get("messages")
    if msgs is None and args:
        msgs = args[-1] if match.style is CallStyle.HTTP else args[0]
    return messages_text(msgs), None


def _completion(match: CallMatch, call: SdkCall) -> tuple[Text, int | str | None]:
    """`prompt=` or the first positional."""
    args = call.args
    p = call.kwargs.get("prompt") or (args[0] if args else None)
    return (text_of(p, "prompt") if p is not None else Text(())), None


def _responses(match: CallMatch, call: SdkCall) -> tuple[Text, int | str | None]:
    """OpenAI Responses: `instructions=` as a system message, then `input=`."""
    args, kwargs = call.args, call.kwargs
    out = Text(())
    if "instructions" in kwargs:
        out = Text(
            message_text(
                Mapping((("role", Text((Static("system"),))), ("content", kwargs["instructions"])))
            ).parts
        )
    inp = kwargs.get("input") or (args[0] if args else None)
    return concat(out, messages_text(inp)), None


def _triton(match: CallMatch, call: SdkCall) -> tuple[Text, int | str | None]:
    """The texts stored into the `inputs=` tensors (`set_data_from_numpy`)."""
    args = call.args
    inputs = call.kwargs.get("inputs") or (args[1] if len(args) > 1 else None)
    return texts_in(inputs) if inputs is not None else Text(()), None


def _http(match: CallMatch, call: SdkCall) -> tuple[Text, int | str | None]:
    """A JSON body's prompt field (`prompt`, `text_input`, `input`, `inputs`) or its messages."""
    body = call.kwargs.get("json")
    if isinstance(body, Mapping):
        for key in ("prompt", "text_input", "input", "inputs"):
            field_value = body.get(key)
            if field_value is not None:
                return text_of(field_value, key), None
        if body.get("messages") is not None:
            return messages_text(body.get("messages")), None
    return (texts_in(body) if body is not None else Text(())), None


def _from_args(match: CallMatch, call: SdkCall) -> tuple[Text, int | str | None]:
    """Named helpers and callables: prompt=/messages=/... or the first positional."""
    args, kwargs = call.args, call.kwargs
    for key in ("prompt", "messages", "input", "text", "query", "s"):
        if key in kwargs:
            v = kwargs[key]
            return (messages_text(v) if isinstance(v, Seq) else text_of(v, key)), None
    if args:
        v = args[0]
        return (messages_text(v) if isinstance(v, Seq) else text_of(v, "prompt")), None
    return Text(()), None


# How each `CallMatch.kind` reads its prompt; any other kind (`args`) reads it like a named helper.
PROMPT_READERS: dict[str, PromptReader] = {
    "chat": _chat,
    "completion": _completion,
    "responses": _responses,
    "triton": _triton,
    "http": _http,
    "args": _from_args,
}
