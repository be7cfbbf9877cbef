"""The OpenAI Agents SDK: `Agent(name=..., instructions=...)` run by `Runner.run/run_sync/run_streamed`.

An agent's `instructions` are the static system prompt of every model call its run makes; the run's
input is the user turn. A run's first call is the starting agent's. What the model may decide next
is recorded as calls that may run (`follow_ups`, each an arm of a choice at the run's call site,
weighed like the cases of a `match`):

- a handoff (`handoffs=[billing, handoff(shipping)]`): the target agent's call, its instructions as
  system prompt, then the conversation so far (the run's input and the first call's reply, the
  `transfer_to_...` tool call);
- an agent used as a tool (`tools=[other.as_tool(tool_name=..., ...)]`): the tool agent's call on the
  input the model chose, then the first agent's call again with the tool's result appended.

Not modelled: the handoff targets' and tool agents' own handoffs and tools (one step is followed),
repeated tool calls or several tools in one turn, function tools (they run code, not a model), tool
schemas and handoff descriptions (sent beside the messages), `handoff(input_filter=...)` trimming the
history, and output guardrails. An `instructions` function (dynamic instructions) is a run-time value.
"""

from __future__ import annotations

import re
from collections.abc import Generator

from compiler.adapters.base import Adapter, Expect, FollowUp, Read, SdkCall, static_text
from compiler.callsites import CallMatch
from compiler.model import CallStyle, SourceKind
from compiler.templates import message_text, messages_text, role_header
from compiler.values import (
    Dyn,
    Mapping,
    Opaque,
    Seq,
    Static,
    Text,
    Value,
    concat,
    origins_of,
    varies_of,
)

RUNS = frozenset({"agents.Runner.run", "agents.Runner.run_sync", "agents.Runner.run_streamed"})
AGENT = "__agent__"  # the first key of an agent built here
AGENT_TOOL = "__agent_tool__"  # the first key of `agent.as_tool(...)`; its value is the agent


def _agent(value: Value | None) -> Mapping | None:
    if isinstance(value, Mapping) and value.items and value.items[0][0] == AGENT:
        return value
    return None


def _name(agent: Mapping) -> str:
    return static_text(agent.get("name")) or "agent"


def _function_style(name: str) -> str:
    """A name as the SDK makes a tool name of it (`Billing desk` -> `billing_desk`)."""
    return re.sub(r"\W+", "_", name).strip("_").lower() or "agent"


def _system(agent: Mapping | None) -> Text:
    instructions = agent.get("instructions") if agent is not None else None
    if instructions is None:
        return Text(())
    return message_text(Mapping((("role", Text((Static("system"),))), ("content", instructions))))


def _turns(call: SdkCall) -> Text:
    """The run's input: a user turn, or the input items (earlier turns) as messages."""
    turn = call.args[1] if len(call.args) > 1 else call.kwargs.get("input")
    if turn is None:
        return Text(())
    if isinstance(turn, Seq):
        return messages_text(turn)
    return message_text(Mapping((("role", Text((Static("user"),))), ("content", turn))))


def _reply(output: Opaque, name: str) -> Dyn:
    """The first call's reply (a tool call), named as the model's choice."""
    return Dyn(name, SourceKind.CALL_OUTPUT, output.origins, output.key, output.varies)


class OpenAIAgentsAdapter(Adapter):
    NAME = "openai_agents"
    HINT = r"\bRunner\.run(?:_sync|_streamed)?\s*\("

    @staticmethod
    def construct(call: SdkCall) -> Value | None:
        if call.qualified == "agents.Agent":
            return Mapping(((AGENT, Text((Static("agent"),))), *call.kwargs.items()))
        if call.qualified == "agents.handoff":  # `handoff(agent, ...)`: a handoff to that agent
            return _agent(call.args[0] if call.args else call.kwargs.get("agent"))
        agent = _agent(call.receiver)
        if call.method == "as_tool" and agent is not None:
            tool_name = call.args[0] if call.args else call.kwargs.get("tool_name")
            name = static_text(tool_name) or _function_style(_name(agent))
            return Mapping(((AGENT_TOOL, agent), ("tool_name", Text((Static(name),)))))
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
        return concat(_system(agent if isinstance(agent, Mapping) else None), _turns(call)), None

    @staticmethod
    def follow_ups(match: CallMatch, call: SdkCall, output: Value) -> Generator[FollowUp, Value, None]:
        """A handoff target's call per handoff; per agent tool, its call and the first agent's again."""
        agent = _agent(call.args[0] if call.args else call.kwargs.get("starting_agent"))
        if agent is None or not isinstance(output, Opaque):
            return
        run, turns = match.api, _turns(call)
        handoffs = agent.get("handoffs")
        for target in handoffs.items if isinstance(handoffs, Seq) else ():
            other = _agent(target)
            if other is None:
                continue
            name = _name(other)
            choice = Text((role_header("assistant"), _reply(output, f"transfer_to_{_function_style(name)}")))
            yield FollowUp(
                f"handoff to {name}",
                f"{run} handoff to {name}",
                concat(_system(other), concat(turns, choice)),
            )
        tools = agent.get("tools")
        for tool in tools.items if isinstance(tools, Seq) else ():
            if not (isinstance(tool, Mapping) and tool.items and tool.items[0][0] == AGENT_TOOL):
                continue
            tool_agent, tool_name = _agent(tool.items[0][1]), static_text(tool.get("tool_name")) or "tool"
            # The model writes the tool's input: run-time text made by the first call.
            chosen = Dyn(
                f"{tool_name}.input",
                SourceKind.CALL_OUTPUT,
                output.origins,
                f"{output.key}:{tool_name}.input",
                output.varies,
            )
            result = yield FollowUp(
                f"tool {tool_name}",
                f"{run} tool {tool_name}",
                concat(_system(tool_agent), Text((role_header("user"), chosen))),
            )
            back = Text(
                (
                    role_header("assistant"),
                    _reply(output, f"{tool_name}.call"),
                    role_header("tool"),
                    Dyn(
                        f"{tool_name}.output",
                        SourceKind.CALL_OUTPUT,
                        origins_of(result),
                        result.key if isinstance(result, Opaque) else "",
                        varies_of(result),
                    ),
                )
            )
            yield FollowUp(
                f"tool {tool_name}",
                f"{run} {_name(agent)} after {tool_name}",
                concat(_system(agent), concat(turns, back)),
            )

    VALID = (
        """
from agents import Agent

helper = Agent(name="helper", instructions="Answer briefly.")

def describe():
    return helper.name
""",
        """
from agents import Agent

dictionary = Agent(name="Dictionary", instructions="Give the plain meaning of one word.")
editor = Agent(
    name="Editor",
    instructions="You tighten prose.",
    handoffs=[dictionary],
    tools=[dictionary.as_tool(tool_name="define", tool_description="Define a word.")],
)

def describe():
    return editor.name
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
        Expect(  # handoffs, one through `handoff(...)`: each target's call may follow the triage call
            """
from agents import Agent, Runner, handoff

REFUNDS = "You handle refund requests for a bike-rental shop. Ask for the rental number first."
refunds = Agent(name="Refunds", instructions=REFUNDS)
repairs = Agent(name="Repairs desk", instructions="You book repairs for rented bikes and quote a date.")
front = Agent(
    name="Front desk",
    instructions="You greet customers of a bike-rental shop and pass them to the right desk.",
    handoffs=[refunds, handoff(repairs)],
)

async def serve(message):
    reply = await Runner.run(front, message)
    return reply.final_output
""",
            calls=(
                (14, "Runner.run"),
                (14, "Runner.run handoff to Refunds"),
                (14, "Runner.run handoff to Repairs desk"),
            ),
            prompt_contains=(
                "You greet customers of a bike-rental shop",
                "You handle refund requests for a bike-rental shop.",
                "You book repairs for rented bikes",
            ),
        ),
        Expect(  # an agent used as a tool: its call, then the calling agent's again with its result
            """
from agents import Agent, Runner

units = Agent(name="Units", instructions="Convert the quantity you are given to metric units. Reply with the number only.")
chef = Agent(
    name="Chef",
    instructions="You adapt American recipes for European kitchens.",
    tools=[units.as_tool(tool_name="to_metric", tool_description="Convert a quantity to metric.")],
)

def adapt(recipe):
    return Runner.run_sync(chef, recipe).final_output
""",
            calls=(
                (12, "Runner.run_sync"),
                (12, "Runner.run_sync tool to_metric"),
                (12, "Runner.run_sync Chef after to_metric"),
            ),
            prompt_contains=(
                "Convert the quantity you are given to metric units.",
                "You adapt American recipes",
            ),
        ),
    )
