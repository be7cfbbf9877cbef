"""The OpenAI Agents SDK: `Agent(name=..., instructions=...)` run by `Runner.run/run_sync/run_streamed`.

An agent's `instructions` are the static system prompt of every model call its run makes; the run's
input is the user turn. A run is one call here: what a model decides at run time (tool calls, handoffs
to other agents, agents used as tools) cannot be seen in the code, so the calls it may add are not
counted. An `instructions` function (dynamic instructions) is a run-time value.
"""

from __future__ import annotations

from compiler.adapters.base import Adapter, Expect, Read, SdkCall
from compiler.callsites import CallMatch
from compiler.model import CallStyle
from compiler.templates import message_text, messages_text
from compiler.values import Mapping, Seq, Static, Text, Value, concat

RUNS = frozenset({"agents.Runner.run", "agents.Runner.run_sync", "agents.Runner.run_streamed"})


class OpenAIAgentsAdapter(Adapter):
    NAME = "openai_agents"
    HINT = r"\bRunner\.run(?:_sync|_streamed)?\s*\("

    @staticmethod
    def construct(call: SdkCall) -> Value | None:
        if call.qualified == "agents.Agent":
            return Mapping((("__agent__", Text((Static("agent"),))), *call.kwargs.items()))
        return None

    @staticmethod
    def recognise(call: SdkCall) -> CallMatch | None:
        if call.qualified in RUNS:
            from compiler.interpreter.nodes import dotted_name

            return CallMatch(CallStyle.OPENAI_AGENTS, dotted_name(call.node.func), OpenAIAgentsAdapter.NAME)
        return None

    @staticmethod
    def read(match: CallMatch, call: SdkCall) -> Read:
        agent = call.args[0] if call.args else call.kwargs.get("starting_agent")
        head = Text(())
        instructions = agent.get("instructions") if isinstance(agent, Mapping) else None
        if instructions is not None:
            head = message_text(Mapping((("role", Text((Static("system"),))), ("content", instructions))))
        turn = call.args[1] if len(call.args) > 1 else call.kwargs.get("input")
        if turn is None:
            return head, None
        if isinstance(turn, Seq):  # a list of input items (earlier turns): messages
            return concat(head, messages_text(turn)), None
        return concat(
            head, message_text(Mapping((("role", Text((Static("user"),))), ("content", turn))))
        ), None

    VALID = (
        """
from agents import Agent

helper = Agent(name="helper", instructions="Answer briefly.")

def describe():
    return helper.name
""",
    )
    INVALID = (
        Expect(
            """
import asyncio

from agents import Agent, Runner

RESEARCH = "You research a topic and list the five facts a newcomer most needs, each with its source."
researcher = Agent(name="researcher", instructions=RESEARCH)
writer = Agent(name="writer", instructions="You turn research notes into a short article for newcomers.")
editor = Agent(name="editor", instructions="You edit articles for clarity. Keep the facts unchanged.")

async def article(topic):
    notes = await Runner.run(researcher, "Topic: " + topic)
    draft = await Runner.run(writer, notes.final_output)
    final = await Runner.run(editor, draft.final_output)
    return final.final_output

def article_sync(topic):
    return Runner.run_sync(researcher, input="Topic: " + topic).final_output
""",
            calls=((12, "Runner.run"), (13, "Runner.run"), (14, "Runner.run"), (18, "Runner.run_sync")),
            prompt_contains=("You research a topic and list the five facts",),
        ),
    )
