"""Framework adapters, one module each (`base.Adapter` says what one is and how users add theirs).

OpenAI, LiteLLM, tritonclient and HTTP endpoints are recognised by
`compiler/callsites.py` and read by `compiler/interpreter/sdk.py`; the frameworks here plug into the
same three steps (construct, recognise, read) and are consulted first.
"""

from __future__ import annotations

from compiler.adapters.anthropic import AnthropicAdapter
from compiler.adapters.base import Adapter
from compiler.adapters.google_genai import GoogleGenaiAdapter
from compiler.adapters.langchain import LangChainAdapter
from compiler.adapters.openai_agents import OpenAIAgentsAdapter

ADAPTERS: tuple[type[Adapter], ...] = (
    AnthropicAdapter,
    GoogleGenaiAdapter,
    LangChainAdapter,
    OpenAIAgentsAdapter,
)

__all__ = ["ADAPTERS", "Adapter"]
