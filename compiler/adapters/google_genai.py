"""google-genai: `client.models.generate_content(model=..., contents=..., config=...)`, and the same
under `client.aio` (async). `config=types.GenerateContentConfig(system_instruction=...)` is the prompt's
static head; `contents` is a string, a list of strings or of `{"role", "parts"}` contents.
"""

from __future__ import annotations

from compiler.adapters.base import Adapter, Expect, Read, SdkCall
from compiler.callsites import CallMatch
from compiler.model import CallStyle
from compiler.templates import message_text
from compiler.values import Client, Mapping, Seq, Static, Text, Value, concat, text_of

CONFIGS = ("types.GenerateContentConfig", "genai.types.GenerateContentConfig")
METHODS = frozenset({"generate_content", "generate_content_stream"})


def _role(role: str) -> Text:
    return Text((Static(role),))


class GoogleGenaiAdapter(Adapter):
    NAME = "google_genai"
    HINT = r"\bgenerate_content(?:_stream)?\s*\("

    @staticmethod
    def construct(call: SdkCall) -> Value | None:
        qualified = call.qualified or ""
        if qualified == "google.genai.Client":
            return Client("google_genai", call.method)
        if qualified.endswith(CONFIGS):
            return Mapping(tuple(call.kwargs.items()))  # read for its system_instruction
        return None

    @staticmethod
    def recognise(call: SdkCall) -> CallMatch | None:
        receiver = call.receiver
        if call.method in METHODS and isinstance(receiver, Client) and receiver.kind == "google_genai":
            from compiler.interpreter.nodes import dotted_name

            return CallMatch(CallStyle.GOOGLE_GENAI, dotted_name(call.node.func), GoogleGenaiAdapter.NAME)
        return None

    @staticmethod
    def read(match: CallMatch, call: SdkCall) -> Read:
        head = Text(())
        config = call.kwargs.get("config")
        system = config.get("system_instruction") if isinstance(config, Mapping) else None
        if system is not None:
            head = message_text(Mapping((("role", _role("system")), ("content", system))))
        contents = call.kwargs.get("contents")
        if contents is None and len(call.args) > 1:
            contents = call.args[1]
        return concat(head, _contents(contents)), None

    VALID = (
        """
from google import genai

client = genai.Client()

def size(text):
    return client.models.count_tokens(model="gemini", contents=text)
""",
    )
    INVALID = (
        Expect(
            """
from google import genai
from google.genai import types

client = genai.Client()
RULES = "You label support tickets. Answer with one of: outage, billing, how-to, bug, other."

def label(ticket):
    return client.models.generate_content(
        model="gemini", contents="Ticket:\\n" + ticket, config=types.GenerateContentConfig(system_instruction=RULES)
    )

async def label_async(ticket):
    return await client.aio.models.generate_content(model="gemini", contents=["Ticket:\\n", ticket])
""",
            calls=((9, "client.models.generate_content"), (14, "client.aio.models.generate_content")),
            prompt_contains=("You label support tickets.", "Ticket:\n"),
        ),
    )


def _contents(contents: Value | None) -> Text:
    if contents is None:
        return Text(())
    if isinstance(contents, Seq) and contents.elem is None:
        out = Text(())
        for item in contents.items:
            if isinstance(item, Mapping):  # {"role": "user", "parts": [{"text": ...}]}
                parts = item.get("parts")
                role = item.get("role") or _role("user")
                out = concat(out, message_text(Mapping((("role", role), ("content", parts or Text(()))))))
            else:
                out = concat(out, text_of(item, "contents"))
        return concat(
            Text(message_text(Mapping((("role", _role("user")), ("content", Text(()))))).parts), out
        )
    return message_text(Mapping((("role", _role("user")), ("content", contents))))
