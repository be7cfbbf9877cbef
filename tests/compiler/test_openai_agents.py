"""OpenAI Agents SDK runs with handoffs and agents used as tools: the calls the model may add are
recorded as arms of a choice at the run's call site, with edges from the run's first call."""

from __future__ import annotations

from compiler.adapters.openai_agents import OpenAIAgentsAdapter
from compiler.api import compile_source
from compiler.model import CallSite, CompileResult
from compiler.patterns.base import exclusive
from compiler.prefix import branch_weights

HANDOFFS, AS_TOOL = OpenAIAgentsAdapter.INVALID[1].code, OpenAIAgentsAdapter.INVALID[2].code


def _segments(call: CallSite) -> list[tuple[str, str]]:
    return [(s.kind, s.text) for s in call.segments]


def _edges(result: CompileResult) -> list[tuple[str, str, list[str], str]]:
    return [(e.source, e.target, e.variables, e.kind) for e in result.edges]


def test_each_handoff_target_may_continue_the_conversation() -> None:
    result = compile_source(HANDOFFS, "desk.py")
    assert [(c.id, c.line, c.callee, c.is_async) for c in result.calls] == [
        ("c1", 14, "Runner.run", True),
        ("c2", 14, "Runner.run handoff to Refunds", True),
        ("c3", 14, "Runner.run handoff to Repairs desk", True),
    ]
    assert [[(b.line, b.test, b.arm) for b in c.branches] for c in result.calls] == [
        [],
        [(14, "handoff to Refunds", "case")],
        [(14, "handoff to Repairs desk", "case")],
    ]
    assert _edges(result) == [
        ("c1", "c2", ["transfer_to_refunds"], "data"),
        ("c1", "c3", ["transfer_to_repairs_desk"], "data"),
    ]
    # the target's instructions as system prompt, then the conversation so far
    assert _segments(result.call("c2")) == [
        ("static", "<|system|>\n"),
        ("static", "You handle refund requests for a bike-rental shop. Ask for the rental number first."),
        ("static", "<|user|>\n"),
        ("dynamic", "{message}"),
        ("static", "<|assistant|>\n"),
        ("dynamic", "{transfer_to_refunds}"),
    ]
    by_id = {c.id: c for c in result.calls}
    assert branch_weights(result.calls) == {"c1": 1.0, "c2": 0.5, "c3": 0.5}
    assert exclusive(by_id["c2"], by_id["c3"]) and not exclusive(by_id["c1"], by_id["c2"])


def test_an_agent_used_as_a_tool_is_called_and_then_the_caller_again() -> None:
    result = compile_source(AS_TOOL, "chef.py")
    assert [(c.id, c.line, c.callee, c.is_async) for c in result.calls] == [
        ("c1", 12, "Runner.run_sync", False),
        ("c2", 12, "Runner.run_sync tool to_metric", False),
        ("c3", 12, "Runner.run_sync Chef after to_metric", False),
    ]
    assert _edges(result) == [
        ("c1", "c2", ["to_metric.input"], "data"),
        ("c1", "c3", ["to_metric.call"], "data"),
        ("c2", "c3", ["to_metric.output"], "data"),
    ]
    assert _segments(result.call("c2")) == [
        ("static", "<|system|>\n"),
        ("static", "Convert the quantity you are given to metric units. Reply with the number only."),
        ("static", "<|user|>\n"),
        ("dynamic", "{to_metric.input}"),
    ]
    assert _segments(result.call("c3")) == [
        ("static", "<|system|>\n"),
        ("static", "You adapt American recipes for European kitchens."),
        ("static", "<|user|>\n"),
        ("dynamic", "{recipe}"),
        ("static", "<|assistant|>\n"),
        ("dynamic", "{to_metric.call}"),
        ("static", "<|tool|>\n"),
        ("dynamic", "{to_metric.output}"),
    ]
    # the tool's call and the call after it are one arm: they run together or not at all
    assert branch_weights(result.calls) == {"c1": 1.0, "c2": 0.5, "c3": 0.5}
    assert not exclusive(result.call("c2"), result.call("c3"))


def test_handoffs_and_tools_are_arms_of_one_choice_and_the_run_returns_any_of_them() -> None:
    code = """
from agents import Agent, Runner

poet = Agent(name="Poet", instructions="You write a four-line poem.")
critic = Agent(name="Critic", instructions="You judge a poem in one sentence.")
host = Agent(
    name="Host",
    instructions="You run a poetry evening.",
    handoffs=[poet, critic],
    tools=[critic.as_tool(tool_name="judge", tool_description="Judge a poem.")],
)
summary = Agent(name="Summary", instructions="You summarise an evening in one line.")

def evening(theme):
    night = Runner.run_sync(host, theme)
    return Runner.run_sync(summary, night.final_output)
"""
    result = compile_source(code, "evening.py")
    assert [(c.id, c.line, c.callee) for c in result.calls] == [
        ("c1", 15, "Runner.run_sync"),
        ("c2", 15, "Runner.run_sync handoff to Poet"),
        ("c3", 15, "Runner.run_sync handoff to Critic"),
        ("c4", 15, "Runner.run_sync tool judge"),
        ("c5", 15, "Runner.run_sync Host after judge"),
        ("c6", 16, "Runner.run_sync"),
    ]
    # three arms (two handoffs, one tool): each weighs a third, the tool's two calls together
    third = 1 / 3
    assert branch_weights(result.calls) == {
        "c1": 1.0,
        "c2": third,
        "c3": third,
        "c4": third,
        "c5": third,
        "c6": 1.0,
    }
    # the summary reads the evening's final output, which any call of the run may have written
    into_summary = [(e.source, e.variables) for e in result.edges if e.target == "c6"]
    assert into_summary == [(c, ["night.final_output"]) for c in ("c1", "c2", "c3", "c4", "c5")]


def test_an_agent_without_handoffs_or_agent_tools_is_one_call() -> None:
    code = """
from agents import Agent, Runner, function_tool

@function_tool
def weather(city: str) -> str:
    return "sunny"

guide = Agent(name="Guide", instructions="You plan a day out.", tools=[weather])

def plan(city):
    return Runner.run_sync(guide, city).final_output
"""
    [call] = compile_source(code, "guide.py").calls
    assert (call.callee, call.branches) == ("Runner.run_sync", [])
