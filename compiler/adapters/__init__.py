"""Framework adapters, one module each (`base.Adapter` says what one is and how users add theirs).

OpenAI, LiteLLM, tritonclient and HTTP endpoints are recognised by
`compiler/callsites.py` and read by `compiler/interpreter/sdk.py`; the frameworks here plug into the
same three steps (construct, recognise, read) and are consulted first.
"""

from __future__ import annotations

from compiler.adapters.anthropic import AnthropicAdapter
from compiler.adapters.base import Adapter
from compiler.adapters.dspy import DSPyAdapter
from compiler.adapters.google_genai import GoogleGenaiAdapter
from compiler.adapters.langchain import LangChainAdapter
from compiler.adapters.langgraph import LangGraphAdapter
from compiler.adapters.llama_index import LlamaIndexAdapter
from compiler.adapters.openai_agents import OpenAIAgentsAdapter

ADAPTERS: tuple[type[Adapter], ...] = (
    AnthropicAdapter,
    DSPyAdapter,
    GoogleGenaiAdapter,
    # Before LangChain, whose `construct` takes any `...PromptTemplate` by name; this one takes only
    # `llama_index.` names, so LangChain's own templates are unaffected.
    LlamaIndexAdapter,
    LangChainAdapter,
    LangGraphAdapter,
    OpenAIAgentsAdapter,
)

__all__ = ["ADAPTERS", "Adapter"]
