"""Which calls are LLM calls, and in which style.

A call is recognised from its dotted name (`client.chat.completions.create`), from what the receiver
was bound to (an `OpenAI()` client, a LangChain chat model, a tritonclient), from the import that
brought the name in (`from litellm import completion`), or from user-configurable name patterns
(`llm_*`, `call_llm`, ...). A callable received as a parameter counts when it is called with
generation arguments (`max_tokens=`, `n=`, `temperature=`...), the SGLang benchmark style.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from compiler.model import CallStyle
from compiler.values import Client, Opaque, Value

DEFAULT_NAME_PATTERNS: tuple[str, ...] = (
    "llm_*",
    "*_llm",
    "call_llm",
    "call_model",
    "generate",
    "agenerate",
    "call_generate",
    "complete",
    "acomplete",
    "chat",
    "achat",
)

# Keyword arguments only generation calls take; a parameter called with one of them is an LLM call.
GENERATION_KWARGS = frozenset(
    {"max_tokens", "max_new_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop"}
)

_OPENAI_SUFFIXES = (
    ("chat", "completions", "create"),
    ("chat", "completions", "parse"),
    ("completions", "create"),
    ("responses", "create"),
)
_TRITON_METHODS = frozenset({"infer", "async_infer"})
_HTTP_METHODS = frozenset({"post"})
_HTTP_PATH_MARKERS = ("/v1/completions", "/v1/chat/completions", "/generate")

# Constructors whose result is an LLM client, by qualified name (after import resolution).
CLIENT_CONSTRUCTORS: dict[str, str] = {
    "openai.OpenAI": "openai",
    "openai.AsyncOpenAI": "openai",
    "openai.AzureOpenAI": "openai",
    "openai.AsyncAzureOpenAI": "openai",
    "tritonclient.http.InferenceServerClient": "triton",
    "tritonclient.grpc.InferenceServerClient": "triton",
    "tritonclient.http.aio.InferenceServerClient": "triton",
    "tritonclient.grpc.aio.InferenceServerClient": "triton",
    "httpx.Client": "http",
    "httpx.AsyncClient": "http",
    "requests.Session": "http",
    "requests.session": "http",
}

LITELLM_FUNCTIONS = frozenset({"litellm.completion", "litellm.acompletion", "litellm.text_completion"})
HTTP_FUNCTIONS = frozenset({"httpx.post", "requests.post"})


@dataclass(frozen=True, slots=True)
class CallMatch:
    style: CallStyle
    api: str
    kind: str  # how to read the prompt: chat, completion, responses, langchain, triton, http, args


def match_name(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pat) for pat in patterns)


def classify(
    dotted: str,
    qualified: str | None,
    receiver: Value | None,
    func_value: Value | None,
    kwarg_names: frozenset[str],
    url_text: str,
    patterns: tuple[str, ...],
) -> CallMatch | None:
    """Decide whether a call is an LLM call.

    dotted: the call's function as written (`self.client.chat.completions.create`);
    qualified: the same after import resolution (`litellm.completion`), if it resolves;
    receiver: the value of the object the method is called on; func_value: value of the callee;
    url_text: static text of the first argument (for HTTP POSTs).
    """
    parts = dotted.split(".") if dotted else []
    for suffix in _OPENAI_SUFFIXES:
        if len(parts) > len(suffix) and tuple(parts[-len(suffix) :]) == suffix:
            # `x.completions.create` is specific enough on its own, whatever `x` was bound to.
            kind = {"chat": "chat", "completions": "completion", "responses": "responses"}[suffix[0]]
            return CallMatch(CallStyle.OPENAI, dotted, kind)
    if qualified in LITELLM_FUNCTIONS:
        kind = "completion" if qualified.endswith("text_completion") else "chat"
        return CallMatch(CallStyle.LITELLM, qualified, kind)
    method = parts[-1] if parts else ""
    triton_receiver = len(parts) >= 2 and (
        (isinstance(receiver, Client) and receiver.kind == "triton") or "triton" in parts[-2].lower()
    )
    if method in _TRITON_METHODS and triton_receiver:
        return CallMatch(CallStyle.TRITON, dotted, "triton")
    if method in _HTTP_METHODS and any(m in url_text for m in _HTTP_PATH_MARKERS):
        is_http = qualified in HTTP_FUNCTIONS or (isinstance(receiver, Client) and receiver.kind == "http")
        if is_http or (len(parts) >= 2 and receiver is None):
            kind = "chat" if "/chat/" in url_text else "http"
            return CallMatch(CallStyle.HTTP, dotted, kind)
    if (
        isinstance(func_value, Opaque)
        and func_value.key.startswith("param:")
        and kwarg_names & GENERATION_KWARGS
    ):
        return CallMatch(CallStyle.CALLABLE_PARAMETER, dotted, "args")
    if method and match_name(method, patterns):
        return CallMatch(CallStyle.NAMED_FUNCTION, dotted, "args")
    return None
