"""LangChain: chat models, prompt templates, LCEL pipes, chained receivers and legacy chains.

- Objects: chat models and LLMs by constructor (`ChatOpenAI`, `init_chat_model`, ...); a model with a
  modifier applied (`with_structured_output(M)`, `bind_tools(...)`, `bind(...)`, `with_retry()`) is still
  that model (on an unknown receiver named like a model, `reflection_llm.with_structured_output(M)`, a
  model too); `ChatPromptTemplate.from_messages`, `PromptTemplate(.from_template)` and the message
  classes; a legacy `LLMChain(llm=..., prompt=...)` is its template bound to a model. The `|` of LCEL
  (`prompt | llm | parser`) is an operator: the interpreter (`expressions._binop`) makes it a template
  bound to a model.
- Calls: `invoke/ainvoke/stream/astream/batch/abatch` on a model or a bound template (and, by name, on
  an unknown receiver called `llm`, `chain`, `model`, ...); `run/arun/predict/apredict` on a legacy chain.
- What is sent: the template filled with the input's variables, or the input's messages; `batch` fans
  out by the number of inputs.
"""

from __future__ import annotations

from compiler.adapters.base import Adapter, Expect, Read, SdkCall
from compiler.callsites import CallMatch
from compiler.model import CallStyle
from compiler.templates import message_text, messages_text, template_text
from compiler.values import Client, Mapping, Opaque, Seq, Static, Template, Text, Value, text_of

CONSTRUCTORS = frozenset(
    {
        "langchain_openai.ChatOpenAI",
        "langchain_openai.AzureChatOpenAI",
        "langchain_openai.OpenAI",
        "langchain_anthropic.ChatAnthropic",
        "langchain_community.chat_models.ChatOpenAI",
        "langchain_community.llms.OpenAI",
        "langchain.chat_models.ChatOpenAI",
        "langchain.llms.OpenAI",
        "langchain_ollama.ChatOllama",
        "langchain_google_genai.ChatGoogleGenerativeAI",
        "langchain_google_vertexai.ChatVertexAI",
        "langchain.chat_models.init_chat_model",
    }
)
MODIFIERS = frozenset(
    {"with_structured_output", "bind_tools", "bind", "with_retry", "with_config", "with_fallbacks"}
)
RUNNABLE_METHODS = frozenset({"invoke", "ainvoke", "batch", "abatch", "stream", "astream"})
LEGACY_METHODS = frozenset({"run", "arun", "predict", "apredict"})
RECEIVER_HINTS = ("llm", "chat_model", "model", "chain", "chat")
MESSAGE_ROLES = {"SystemMessage": "system", "HumanMessage": "user", "AIMessage": "assistant"}


def _bound(receiver: Value | None) -> bool:
    return (isinstance(receiver, Client) and receiver.kind == "langchain") or (
        isinstance(receiver, Template) and receiver.has_model
    )


class LangChainAdapter(Adapter):
    NAME = "langchain"

    @staticmethod
    def construct(call: SdkCall) -> Value | None:
        receiver = call.receiver
        if call.method in MODIFIERS and _bound(receiver):
            return receiver  # `llm.with_structured_output(Answer)` sends what `llm` sends
        if call.method in MODIFIERS and (receiver is None or isinstance(receiver, Opaque)):
            # A model of a class we do not know, named like one (`reflection_llm.with_structured_output(M)`):
            # `invoke` is recognised on such a name, and must be on the modified model too (its name is `()`).
            from compiler.interpreter.nodes import dotted_name

            parts = dotted_name(call.node.func).split(".")
            if len(parts) >= 2 and any(parts[-2].lower().endswith(h) for h in RECEIVER_HINTS):
                return Client("langchain", call.method)
        qualified = call.qualified
        if qualified is None:
            return None
        args, kwargs = call.args, call.kwargs
        if qualified in CONSTRUCTORS or qualified.endswith("init_chat_model"):
            return Client("langchain", call.method)
        if qualified.endswith(("ChatPromptTemplate.from_messages", "ChatPromptTemplate")) and args:
            msgs = args[0]
            out = []
            for m in msgs.items if isinstance(msgs, Seq) else ():
                t = message_text(m)
                role = t.parts[0].text[2:-3] if t.parts and isinstance(t.parts[0], Static) else "user"
                out.append((role, Text(t.parts[1:])))
            return Template(tuple(out))
        if qualified.endswith(("PromptTemplate.from_template", "PromptTemplate")) and (
            args or "template" in kwargs
        ):
            return Template((("user", text_of(args[0] if args else kwargs["template"])),))
        if qualified.endswith("LLMChain"):
            prompt = kwargs.get("prompt")
            if isinstance(prompt, Template):
                return Template(prompt.messages, has_model=True)
            return None
        message_role = MESSAGE_ROLES.get(qualified.rsplit(".", 1)[-1])
        if message_role is not None:
            content = kwargs.get("content") or (args[0] if args else Text(()))
            return Mapping((("role", Text((Static(message_role),))), ("content", content)))
        return None

    @staticmethod
    def recognise(call: SdkCall) -> CallMatch | None:
        from compiler.interpreter.nodes import dotted_name

        dotted = dotted_name(call.node.func)
        parts = dotted.split(".") if dotted else []
        method, receiver = call.method, call.receiver
        if len(parts) < 2:
            return None
        if method in LEGACY_METHODS and isinstance(receiver, Template) and receiver.has_model:
            return CallMatch(CallStyle.LANGCHAIN, dotted, LangChainAdapter.NAME)
        if method not in RUNNABLE_METHODS:
            return None
        if _bound(receiver):
            return CallMatch(CallStyle.LANGCHAIN, dotted, LangChainAdapter.NAME)
        unknown = receiver is None or isinstance(receiver, Opaque)
        if unknown and any(parts[-2].lower().endswith(h) for h in RECEIVER_HINTS):
            return CallMatch(CallStyle.LANGCHAIN, dotted, LangChainAdapter.NAME)
        return None

    @staticmethod
    def read(match: CallMatch, call: SdkCall) -> Read:
        """`invoke(input)` on a chat model or a template bound to one; `batch(inputs)` fans out; a
        legacy chain's `run(x)`/`predict(**variables)`."""
        from compiler.interpreter.nodes import label

        args, node, kwargs = call.args, call.node, call.kwargs
        fanout: int | str | None = None
        method = match.api.rsplit(".", 1)[-1]
        arg = args[0] if args else kwargs.get("input")
        if method in ("predict", "apredict") or (method in ("run", "arun") and not args and kwargs):
            arg = Mapping(tuple(kwargs.items()))
        if method in ("batch", "abatch"):
            if isinstance(arg, Seq):
                fanout = len(arg.items) if arg.elem is None else "len(inputs)"
                arg = arg.elem if arg.elem is not None else (arg.items[0] if arg.items else None)
            else:
                fanout = label(node.args[0]) if node.args else "inputs"
        if isinstance(call.receiver, Template):
            return template_text(call.receiver, arg), fanout
        return messages_text(arg), fanout

    VALID = (
        """
from langchain_core.prompts import ChatPromptTemplate

prompt = ChatPromptTemplate.from_messages([("system", "You are terse."), ("human", "{q}")])

def render(q):
    return prompt.invoke({"q": q})
""",
    )
    INVALID = (
        Expect(  # a model with structured output and one with tools: still the model's calls
            """
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

class Verdict(BaseModel):
    label: str

llm = ChatOpenAI(model="m")
RULES = "You sort incoming contracts into: NDA, MSA, SOW, other. Answer with the label only."

def classify(contract, tools):
    verdict = llm.with_structured_output(Verdict).invoke([("system", RULES), ("human", contract)])
    return llm.bind_tools(tools).invoke([("system", RULES), ("human", f"Summarise the {verdict}")])
""",
            calls=((12, "llm.with_structured_output.().invoke"), (13, "llm.bind_tools.().invoke")),
            prompt_contains=("You sort incoming contracts into",),
        ),
        Expect(  # legacy chains: LLMChain(...).run / .predict / .arun, `langchain.chat_models`
            """
from langchain.chains import LLMChain
from langchain.chat_models import ChatOpenAI
from langchain.prompts import PromptTemplate

llm = ChatOpenAI(temperature=0)
summary_prompt = PromptTemplate.from_template("Summarise this support ticket in one sentence:\\n{ticket}")
reply_prompt = PromptTemplate(template="Write a reply to: {summary}", input_variables=["summary"])
summarise = LLMChain(llm=llm, prompt=summary_prompt)
reply = LLMChain(llm=llm, prompt=reply_prompt)

def handle(ticket):
    summary = summarise.run(ticket)
    return reply.predict(summary=summary)

async def handle_async(ticket):
    return await summarise.arun(ticket)
""",
            calls=((13, "summarise.run"), (14, "reply.predict"), (17, "summarise.arun")),
            prompt_contains=("Summarise this support ticket in one sentence:\n", "Write a reply to: "),
        ),
    )
