"""LangGraph: a compiled `StateGraph` runs its node functions in graph order with a symbolic state, so the
calls its nodes make (in LangChain or google-genai style) are found with the edges the state carries
between them, a `Send` fan-out is a loop over the list it walks, router targets are branch arms and a
cycle of the graph is a bounded `while` loop.

The research graph is the sample project data/agents/projects/research_graph (the shape of a user trial
that gave 2 of 4 calls and no edge): a planner with `with_structured_output(...).invoke`, a search node
fanned out with `Send` that calls `client.models.generate_content`, a reviewer that may send the graph
back to search, a writer; prompts in prompts.py.
"""

from __future__ import annotations

import ast
import time
from collections import Counter
from pathlib import Path

import pytest

from compiler.adapters.langgraph import MAX_RUNS
from compiler.api import compile_source
from compiler.interpreter import Interpreter
from compiler.model import CompileResult
from compiler.prefix import branch_weights

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "agents" / "projects"


@pytest.fixture(scope="module")
def research() -> CompileResult:
    from daemon.project_files import ProjectFiles

    agent = SAMPLE / "research_graph" / "agent.py"
    project = ProjectFiles(SAMPLE).project_for(agent)
    assert sorted(project.modules) == ["research_graph", "research_graph.agent", "research_graph.prompts"]
    return compile_source(agent.read_text(), str(agent), project=project)


def static_text(result: CompileResult, call: str) -> str:
    return "".join(s.text for s in result.call(call).segments if s.kind == "static")


def dynamic(result: CompileResult, call: str) -> list[tuple[str | None, str | None, list[str], bool]]:
    return [
        (s.name, s.source.value if s.source else None, s.origin_calls, s.varies_in_loop)
        for s in result.call(call).segments
        if s.kind == "dynamic"
    ]


def loops(result: CompileResult, call: str) -> list[tuple[str, int, str | None, str, str | None]]:
    return [(lp.kind, lp.line, lp.target, lp.iterates, lp.over_call) for lp in result.call(call).loops]


# ----------------------------------------------------------------------------- the research graph


def test_the_research_graph_yields_all_four_calls(research: CompileResult) -> None:
    assert [(c.id, c.line, c.callee, c.style.value, c.function) for c in research.calls] == [
        ("c1", 41, "llm.with_structured_output.().invoke", "langchain", "plan"),
        ("c2", 50, "client.models.generate_content", "google_genai", "search"),
        ("c3", 61, "reviewer_llm.with_structured_output.().invoke", "langchain", "reflect"),
        ("c4", 73, "llm.invoke", "langchain", "write"),
    ]
    assert research.modules == ["research_graph.prompts"]
    assert research.diagnostics == []
    # The prompts are prompts.py's templates, folded to literal text around the state's values.
    assert static_text(research, "c1").startswith("<|user|>\nYou plan web research for an analyst.")
    assert "You are a search assistant. Answer with the key facts only" in static_text(research, "c2")
    assert "Search query: " in static_text(research, "c2")
    assert "You review research notes before a report is written." in static_text(research, "c3")
    assert "You write concise research reports." in static_text(research, "c4")


def test_the_state_carries_each_output_to_the_nodes_after_it(research: CompileResult) -> None:
    assert [(e.source, e.target, e.variables, e.kind) for e in research.edges] == [
        ("c1", "c2", ["query"], "fanout"),  # the planner's queries, one per search run (Send)
        ("c2", "c3", ["notes"], "data"),  # the searches' notes, gathered by operator.add
        ("c2", "c4", ["notes"], "data"),
        ("c3", "c2", ["query"], "carried"),  # the reviewer's follow-ups: the next round's queries
    ]
    assert research.order == ["c1", "c2", "c3", "c4"]
    # The graph's input (`topic`) is one value wherever a node reads it: a parameter, not a local.
    assert dynamic(research, "c1") == [("topic", "parameter", [], False)]
    assert dynamic(research, "c4") == [
        ("topic", "parameter", [], False),
        ("notes", "call_output", ["c2"], False),
    ]


def test_the_send_fan_out_is_a_loop_over_the_planners_queries(research: CompileResult) -> None:
    # Line 46 is `to_search`'s comprehension of Sends; the search node runs in it, over c1's output, and
    # in the cycle search -> reflect -> search, anchored at the reviewer's conditional edges (line 85).
    assert loops(research, "c2") == [
        ("while", 85, None, "graph cycle search -> reflect", None),
        ("comprehension", 46, "query", "state['queries']", "c1"),
    ]
    assert dynamic(research, "c2") == [("query", "loop_variable", ["c1"], True)]
    assert loops(research, "c3") == [("while", 85, None, "graph cycle search -> reflect", None)]
    assert research.call("c3").loop_carried == ["query"]
    assert loops(research, "c1") == [] and loops(research, "c4") == []
    # The router picks between another round of searches and the writer: the writer is one arm.
    assert [(b.line, b.arm, b.test) for b in research.call("c4").branches] == [
        (85, "case", "after_review -> write")
    ]
    reduces = sorted(tuple(f.calls) for f in research.patterns if f.kind.value == "MAP_REDUCE")
    assert reduces == [("c2", "c3"), ("c2", "c4")]


def test_a_modifier_on_a_model_of_an_unknown_class_is_still_that_model() -> None:
    """The trial's lost call: `reflection_llm.with_structured_output(M).invoke(...)` on a chat model whose
    class no adapter knows. `invoke` on a name like `reflection_llm` is an LLM call; the modified model
    (written `reflection_llm.with_structured_output.()`) must be one too."""
    code = (
        "from acme_models import ChatAcme\n\n"
        "def review(notes, Verdict):\n"
        "    reflection_llm = ChatAcme(model='m')\n"
        "    return reflection_llm.with_structured_output(Verdict).invoke('Are these notes complete? ' + notes)\n"
    )
    result = compile_source(code, "review.py")
    assert [(c.line, c.callee, c.style.value) for c in result.calls] == [
        (5, "reflection_llm.with_structured_output.().invoke", "langchain")
    ]
    # A receiver not named like a model stays unknown: `parser.bind(...)` is not a model.
    assert compile_source(code.replace("reflection_llm", "parser"), "review.py").calls == []


# ----------------------------------------------------------------------------- routers, Command, state forms

ROUTER = """
from typing import TypedDict

from langchain_openai import ChatOpenAI
from langgraph.graph import StateGraph

llm = ChatOpenAI(model="gpt-4o-mini")


class Claim(TypedDict):
    claim: str
    verdict: str
    reply: str


def triage(state: Claim):
    verdict = llm.invoke("Classify this insurance claim as approve or reject: " + state["claim"])
    return {"verdict": verdict.content}


def decide(state: Claim):
    if "approve" in state["verdict"]:
        return "approve"
    return "reject"


def approve(state: Claim):
    return {"reply": llm.invoke("Write an approval letter for: " + state["claim"]).content}


def reject(state: Claim):
    return {"reply": llm.invoke("Write a rejection letter citing: " + state["verdict"]).content}


builder = StateGraph(Claim)
builder.add_sequence([("triage", triage)])
builder.set_entry_point("triage")
builder.add_node(approve)
builder.add_node(reject)
builder.add_conditional_edges("triage", decide, {"approve": "approve", "reject": "reject"})
builder.set_finish_point("approve")
builder.set_finish_point("reject")
graph = builder.compile()
"""


def test_a_routers_targets_are_the_arms_of_a_choice() -> None:
    result = compile_source(ROUTER, "claims.py")
    assert [(c.id, c.line, c.function) for c in result.calls] == [
        ("c1", 17, "triage"),
        ("c2", 28, "approve"),
        ("c3", 32, "reject"),
    ]
    assert [[(b.line, b.arm, b.test) for b in c.branches] for c in result.calls] == [
        [],
        [(40, "case", "decide -> approve")],
        [(40, "case", "decide -> reject")],
    ]
    assert branch_weights(result.calls) == {"c1": 1.0, "c2": 0.5, "c3": 0.5}
    assert [(e.source, e.target, e.variables) for e in result.edges] == [("c1", "c3", ["verdict"])]
    # `approve` reads only the input claim: the same value the triage call read.
    assert [s.key for s in result.call("c2").segments if s.kind == "dynamic"] == [
        s.key for s in result.call("c1").segments if s.kind == "dynamic"
    ]


COMMAND = """
from langchain_openai import ChatOpenAI
from langgraph.graph import START, StateGraph
from langgraph.types import Command
from pydantic import BaseModel

llm = ChatOpenAI(model="gpt-4o-mini")


class Doc(BaseModel):
    topic: str
    draft: str = ""
    final: str = ""


def drafter(state: Doc):
    draft = llm.invoke("Draft a paragraph about " + state.topic)
    return Command(update={"draft": draft.content}, goto="editor")


def editor(state: Doc):
    edited = llm.invoke("Tighten this paragraph: " + state.get("draft", ""))
    return {"final": edited.content}


builder = StateGraph(Doc)
builder.add_node(drafter)
builder.add_node(editor)
builder.add_edge(START, "drafter")
graph = builder.compile()


def publish(topic):
    final = graph.invoke({"topic": topic})["final"]
    return llm.invoke("Write a headline for: " + final)
"""


def test_command_goto_attribute_state_and_the_graphs_result() -> None:
    """A pydantic state read as `state.topic` and `state.get(...)`, a node routing with `Command(goto=)`, and
    `graph.invoke(...)["final"]` feeding a call after the graph."""
    result = compile_source(COMMAND, "doc.py")
    assert [(c.id, c.line, c.function) for c in result.calls] == [
        ("c1", 17, "drafter"),
        ("c2", 22, "editor"),
        ("c3", 35, "publish"),
    ]
    assert [(e.source, e.target, e.variables) for e in result.edges] == [
        ("c1", "c2", ["draft"]),
        ("c2", "c3", ["final"]),
    ]
    assert dynamic(result, "c1") == [("topic", "parameter", [], False)]


IN_FUNCTION = """
from typing import TypedDict

from langchain_openai import ChatOpenAI
from langgraph.graph import START, StateGraph
from langgraph.types import Send

llm = ChatOpenAI(model="gpt-4o-mini")


class S(TypedDict):
    doc: str
    sections: list[str]
    summary: str


def outline(state: S):
    return {"sections": llm.invoke("List the section titles of: " + state["doc"]).content}


def per_section(state: S):
    return [Send("summarise", {"section": s}) for s in state["sections"]]


def summarise(state):
    return {"summary": llm.invoke("Summarise the section " + state["section"]).content}


def build_graph():
    builder = StateGraph(S)
    builder.add_node("outline", outline)
    builder.add_node("summarise", summarise)
    builder.add_edge(START, "outline")
    builder.add_conditional_edges("outline", per_section)
    return builder.compile()
"""


def test_a_graph_built_in_an_uncalled_function_still_drives_its_nodes() -> None:
    """`build_graph()` is an entry point defined after its nodes: it is analysed first among the entry
    points (`Adapter.DRIVES`), so `summarise` runs in the fan-out before anything analyses it alone."""
    result = compile_source(IN_FUNCTION, "sections.py")
    assert [(c.id, c.line, c.function) for c in result.calls] == [
        ("c1", 18, "outline"),
        ("c2", 26, "summarise"),
    ]
    assert loops(result, "c2") == [("comprehension", 22, "s", "state['sections']", "c1")]
    assert [(e.source, e.target, e.variables, e.kind) for e in result.edges] == [
        ("c1", "c2", ["section"], "fanout")
    ]


ONE_NODE = """
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph

llm = ChatOpenAI(model="gpt-4o-mini")


def chatbot(state: MessagesState):
    return {"messages": [llm.invoke(state["messages"])]}


def make_graph():
    builder = StateGraph(MessagesState)
    builder.add_node("chatbot", chatbot)
    builder.add_edge(START, "chatbot")
    builder.add_edge("chatbot", END)
    return builder.compile()


graph = make_graph()
"""


def test_a_function_compiling_a_one_call_graph_is_not_a_wrapper_of_that_call() -> None:
    """`make_graph()` reaches exactly one call, but through the graph: the call stays at its own line
    (a wrapper's call is reported at the wrapper's call site, line 20 here)."""
    result = compile_source(ONE_NODE, "chat.py")
    assert [(c.line, c.callee, c.function) for c in result.calls] == [(9, "llm.invoke", "chatbot")]
    # MessagesState's conversation is the graph's input.
    assert dynamic(result, "c1") == [("messages", "parameter", [], False)]


def test_a_node_that_is_no_function_of_the_agent_is_reported() -> None:
    code = ONE_NODE.replace(
        'builder.add_node("chatbot", chatbot)', 'builder.add_node("chatbot", lambda s: s)'
    )
    result = compile_source(code, "chat.py")
    assert [(d.line, d.message) for d in result.diagnostics] == [
        (17, "LangGraph node 'chatbot' is not a function of this agent: not followed")
    ]


# ----------------------------------------------------------------------------- cycles stay bounded


def ring(n: int) -> str:
    """n nodes in a ring (each calls the model), closed by an unconditional edge back to the first (LangGraph
    itself would stop at its recursion limit) and by a router from every node to any node or END."""
    nodes = "\n".join(
        f"def step{i}(state: S):\n"
        f'    return {{"text": llm.invoke("Step {i}: " + state["text"]).content}}\n\n\n'
        f"def route{i}(state: S):\n"
        f'    return state["text"]\n'
        for i in range(n)
    )
    names = ", ".join(f'"step{i}"' for i in range(n))
    edges = "\n".join(
        f'builder.add_node("step{i}", step{i})\n'
        f'builder.add_edge("step{i}", "step{(i + 1) % n}")\n'
        f'builder.add_conditional_edges("step{i}", route{i}, [{names}, END])'
        for i in range(n)
    )
    return (
        "from typing import TypedDict\n\nfrom langchain_openai import ChatOpenAI\n"
        "from langgraph.graph import END, START, StateGraph\n\nllm = ChatOpenAI()\n\n\n"
        "class S(TypedDict):\n    text: str\n\n\n"
        f"{nodes}\n\nbuilder = StateGraph(S)\n{edges}\n"
        'builder.add_edge(START, "step0")\ngraph = builder.compile()\n'
    )


@pytest.mark.parametrize("n", [1, 3, 40])
def test_a_graph_with_cycles_compiles_in_bounded_time(n: int) -> None:
    source = ring(n)
    started = time.perf_counter()
    occurrences = Interpreter(ast.parse(source), source=source).run()
    elapsed = time.perf_counter() - started
    # Every node runs exactly MAX_RUNS times however the graph loops: once, and once on the second pass.
    per_site = Counter(o.key[0] for o in occurrences)
    assert len(per_site) == n and set(per_site.values()) == {MAX_RUNS}
    assert elapsed < 60, f"{n} nodes took {elapsed:.1f}s"  # ~0.1 s for 40 nodes on a quiet machine
    result = compile_source(source, "ring.py")
    shown = (
        [f"step{i}" for i in range(n)] if n <= 4 else ["step0", "step1", "...", f"step{n - 1} ({n} nodes)"]
    )
    cycle = "graph cycle " + " -> ".join(shown)
    assert {(lp.kind, lp.iterates) for c in result.calls for lp in c.loops} == {("while", cycle)}
    assert len(result.order) == n  # the cycle's flow back is carried: the DAG keeps a topological order
    assert ("c1", "c1", ["text"], "carried") in [
        (e.source, e.target, e.variables, e.kind) for e in result.edges
    ]
    if n == 3:
        assert [(e.source, e.target, e.kind) for e in result.edges] == [
            ("c1", "c2", "data"),
            ("c1", "c3", "data"),
            ("c2", "c3", "data"),
            ("c1", "c1", "carried"),
            ("c2", "c2", "carried"),
            ("c3", "c2", "carried"),
            ("c3", "c3", "carried"),
        ]


def test_a_graph_too_large_to_hold_is_reported_not_lost_silently() -> None:
    """300 nodes with a router each need 1,200 builder items, more than a value holds (`MAX_VALUE_SIZE`)."""
    source = ring(300)
    result = compile_source(source, "ring.py")
    line = source.count("\n")  # `graph = builder.compile()`, the last line
    assert [(d.line, d.message) for d in result.diagnostics] == [
        (line, "LangGraph graph too large to follow: its later nodes and edges are not run")
    ]
