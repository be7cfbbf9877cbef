"""The Anthropic SDK: `client.messages.create(system=..., messages=[...])`, sync and async.

`system=` is the static head of the prompt (a string or a list of text blocks); message contents may be
block lists too. A `cache_control` block marks where the caller declared a cache breakpoint: the text
up to it is what Anthropic's prompt caching keeps, and it is read here like any other text (vLLM's and
SGLang's automatic prefix caching need no markers).
"""

from __future__ import annotations

from compiler.adapters.base import Adapter, Expect, Read, SdkCall
from compiler.callsites import CallMatch
from compiler.model import CallStyle
from compiler.templates import message_text, messages_text
from compiler.values import Client, Mapping, Static, Text, Value, concat

CLIENTS = frozenset({"anthropic.Anthropic", "anthropic.AsyncAnthropic", "anthropic.AnthropicBedrock"})


class AnthropicAdapter(Adapter):
    NAME = "anthropic"
    HINT = r"\bmessages\.create\s*\("

    @staticmethod
    def construct(call: SdkCall) -> Value | None:
        if call.qualified in CLIENTS:
            return Client("anthropic", call.method)
        return None

    @staticmethod
    def recognise(call: SdkCall) -> CallMatch | None:
        receiver = call.receiver
        if (
            call.method in ("create", "stream")
            and isinstance(receiver, Client)
            and receiver.kind == "anthropic"
        ):
            from compiler.interpreter.nodes import dotted_name

            dotted = dotted_name(call.node.func)
            if dotted.endswith(("messages.create", "messages.stream")):
                return CallMatch(CallStyle.ANTHROPIC, dotted, AnthropicAdapter.NAME)
        return None

    @staticmethod
    def read(match: CallMatch, call: SdkCall) -> Read:
        head = Text(())
        system = call.kwargs.get("system")
        if system is not None:
            head = message_text(Mapping((("role", Text((Static("system"),))), ("content", system))))
        return concat(head, messages_text(call.kwargs.get("messages"))), None

    VALID = (
        """
import anthropic

client = anthropic.Anthropic()

def count(text):
    return client.messages.count_tokens(model="m", messages=[{"role": "user", "content": text}])
""",
    )
    INVALID = (
        Expect(
            """
import anthropic

client = anthropic.Anthropic()
GUIDE = "You review pull requests for a payments service. Flag anything touching money movement."

def review(diff, question):
    first = client.messages.create(
        model="claude", max_tokens=512,
        system=[{"type": "text", "text": GUIDE, "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": diff}],
    )
    return client.messages.create(
        model="claude", max_tokens=256, system=GUIDE,
        messages=[{"role": "user", "content": question + first.content[0].text}],
    )
""",
            calls=((8, "client.messages.create"), (13, "client.messages.create")),
            prompt_contains=("You review pull requests for a payments service.",),
        ),
        Expect(
            """
from anthropic import AsyncAnthropic

client = AsyncAnthropic()

async def summarise(doc):
    return await client.messages.create(model="claude", max_tokens=200, messages=[{"role": "user", "content": "Summarise:\\n" + doc}])
""",
            calls=((7, "client.messages.create"),),
            prompt_contains=("Summarise:\n",),
        ),
    )
