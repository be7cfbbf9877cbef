"""LangGraph: a `StateGraph` runs the agent's own functions as its nodes; a prebuilt agent is one call.

Graphs. The LLM calls of a graph are made by its node functions in the SDKs they use (LangChain,
google-genai, OpenAI, ...), and those adapters recognise them; what LangGraph adds is the order the
nodes run in and the state that carries one node's output to the next. So the builder is followed as
the agent builds it (`StateGraph(State)`, `add_node(name, fn)` / `add_node(fn)` / `add_sequence`,
`add_edge` (a list of sources is a join), `set_entry_point`, `set_finish_point`,
`add_conditional_edges(source, router, path_map)`, `set_conditional_entry_point`), and `compile()`
runs the nodes (`drive`, through the interpreter's `Host`) in graph order, superstep by superstep, with
a symbolic state: a `Mapping` from state key to value. A node reads `state["key"]`, `state.key` or
`state.get("key")`; the dict it returns (or a `Command(update=...)`) updates the state, keys with a
reducer (`Annotated[list, operator.add]`, `add_messages`, `MessagesState`) accumulating, others
replaced. The values stored are the interpreter's own, so an LLM call's output returned by one node
is, in the prompt of a node after it, a part whose origins name that call: `dag.py` draws the edge,
labelled by the state key (values are renamed to the key they are stored under).

- The input state: every declared key (TypedDict / pydantic / dataclass annotations of the state
  class and its project bases; `MessagesState`'s `messages`) is an input of the graph, except keys with
  a plain reducer (`operator.add`: results gathered by the nodes), which start empty; `add_messages`
  keys (the conversation) are inputs. A key read but never declared nor written is an unknown value.
- A superstep runs each node it triggers once (a join, or an edge and a router arm to the same node:
  plainly if any trigger is plain, else on the first arm), with the state before the step; `Send`s
  run their node once per `Send` written out. The step's writes are applied together.
- Routers (`add_conditional_edges`) are run on the state after their node's step. Each value a
  router returns is one alternative (a node name, mapped through `path_map`; `END`; a list of
  `Send`s); with two or more, each runs as an arm (`case`) of a choice at the `add_conditional_edges`
  line, which `prefix.branch_weights` weighs as equally likely. A router whose outcome is not a
  literal (or that is not a function of the agent) takes every `path_map` target (else every node
  its body names) as an arm.
- `Send(node, arg)`: the node runs with `arg` as its whole input. Sends built by a comprehension or a
  loop (`[Send("search", {"query": q}) for q in state["queries"]]`) run their node inside that loop
  again (`Host.reenter`): a map, one run per element, which the call's `LoopContext` shows (the loop
  walks the outputs of the call that produced the list, so the edge is a fan-out).
- Cycles: nodes on a cycle of the graph (an edge, a router's possible target or a `Command` target back
  to an earlier node) run inside a `while` loop anchored at the last-declared edge of that cycle, and
  every node runs in at most `MAX_RUNS` (two) supersteps per compile: the second is the loop's second
  pass (what a node sees once the cycle has gone round: the later nodes' outputs, carried edges in
  `dag.py`), and the walk stops there, so any cycle ends after at most 2 x nodes supersteps.
- `graph.invoke/ainvoke/stream/astream/batch/abatch` on the compiled graph give the state the drive
  ended with (`graph.invoke(x)["report"]` is the report's value); the input passed there is not
  related to the compile-time run (the nodes ran once, at `compile()`, with symbolic inputs).

Not modelled: a node that is not a function of the agent (a lambda, a LangChain runnable, a prebuilt
agent) runs nothing (a compiled subgraph gives its end state); input/output schemas narrowing the
state; nodes after a conditional target are not marked conditional themselves; a builder changed in
only one arm of an `if` (the arms' builders merge into an unknown value); `interrupt`, checkpointers,
`Command(graph=PARENT)`, retries, `defer`. Node functions' default arguments are not evaluated. A
builder holds at most `values.MAX_VALUE_SIZE` items (a node, an edge: one each; a router: two): a larger
graph is reported at `compile()` and its later nodes and edges are not run.

Prebuilt agents: `create_react_agent(model, tools, prompt=...)` run by `invoke/ainvoke/stream/astream`
is one call (style `langgraph`): the prompt is the system message, the input's `messages` the
conversation. The tool-calling loop the model drives at run time adds calls not counted here.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace

from compiler.adapters.base import Adapter, Expect, Host, Read, SdkCall, static_text
from compiler.callsites import CallMatch
from compiler.model import CallStyle, SourceKind
from compiler.templates import message_text, messages_text
from compiler.values import (
    Const,
    Dyn,
    FuncRef,
    Mapping,
    ModuleRef,
    Opaque,
    Seq,
    Static,
    Text,
    Value,
    concat,
    merge_values,
)

MARK = "__langgraph__"  # the key that makes a Mapping a LangGraph object built here (its value: what it is)
START, END = "__start__", "__end__"
RUNS = frozenset({"invoke", "ainvoke", "stream", "astream", "batch", "abatch"})
# A node runs at most this often in one drive: once, and once more on a cycle's second pass. This is what
# bounds a graph with cycles (each superstep runs at least one node that has runs left, or it is the last).
MAX_RUNS = 2
MESSAGES_REDUCERS = ("add_messages",)


def _text(s: str) -> Text:
    return Text((Static(s),))


def _kind(value: Value | None) -> str | None:
    """What a LangGraph object built here is (`graph`, `compiled`, `send`, `command`, `react_agent`)."""
    return static_text(value.get(MARK)) if isinstance(value, Mapping) else None


def _short(qualname: str) -> str:
    return qualname.rpartition(":")[2].rsplit(".", 1)[-1]


def _node_name(value: Value | None) -> str | None:
    """A node as the graph names it: a literal string, `START`/`END`, or a function (its own name)."""
    if isinstance(value, ModuleRef) and value.qualname.startswith("langgraph."):
        last = value.qualname.rsplit(".", 1)[-1]
        return START if last == "START" else END if last == "END" else None
    if isinstance(value, FuncRef):
        return _short(value.qualname)
    return static_text(value)


def _langgraph(qualified: str | None, name: str) -> bool:
    return qualified is not None and qualified.startswith("langgraph.") and qualified.endswith("." + name)


@dataclass(frozen=True)
class _Route:
    source: str
    router: Value
    path_map: (
        dict[str, str] | None
    )  # path_map as {what the router returns: node}; a list maps names to themselves
    line: int
    col: int


@dataclass
class _Graph:
    """The graph as built: what the builder `Mapping` holds, read back."""

    schema: Value | None = None
    nodes: dict[str, Value] = field(default_factory=dict)
    edges: list[tuple[str, str, int, int]] = field(default_factory=list)  # source, target, line, col
    routes: list[_Route] = field(default_factory=list)

    @staticmethod
    def of(builder: Mapping) -> _Graph:
        """Read back from the builder's flat items (`_build` writes them): `node:<name>` -> the action;
        `edge` -> Const((source, target, line, col)); `route` -> Const((source, path_map pairs or None,
        line, col)) followed by `router` -> the router."""
        g = _Graph(schema=builder.get("schema"))
        route: tuple[str, tuple[tuple[str, str], ...] | None, int, int] | None = None
        for key, value in builder.items:
            static = value.value if isinstance(value, Const) else None
            if key.startswith("node:"):
                g.nodes[key[5:]] = value
            elif key == "edge" and isinstance(static, tuple):
                g.edges.append(static)
            elif key == "route" and isinstance(static, tuple):
                route = static
            elif key == "router" and route is not None:
                source, pairs, line, col = route
                g.routes.append(_Route(source, value, dict(pairs) if pairs is not None else None, line, col))
                route = None
        return g


def _path_map(value: Value) -> dict[str, str] | None:
    if isinstance(value, Seq):
        names = [_node_name(v) for v in value.items]
        return {n: n for n in names if n is not None}
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k, v in value.items:
            name = _node_name(v)
            if name is not None:
                out[k] = name
        return out
    return None


@dataclass(frozen=True)
class _Task:
    """One node to run in a superstep."""

    node: str
    arg: Value | None = None  # a `Send`'s argument: the node's whole input instead of the state
    loops: frozenset[int] = frozenset()  # the loops that built the `Send` (the node runs once per element)
    arm: str | None = None  # the router alternative it is on (a branch arm's label)
    line: int = 0  # the router's line (where the branch is)


class LangGraphAdapter(Adapter):
    NAME = "langgraph"
    HINT = r"\bStateGraph\s*\(|\bcreate_react_agent\s*\("
    DRIVES = r"\bStateGraph\s*\("

    @staticmethod
    def drive(call: SdkCall, host: Host) -> Value | None:
        receiver = call.receiver
        kind = _kind(receiver)
        if kind == "graph" and isinstance(receiver, Mapping):
            return _build(receiver, call, host)
        if kind == "compiled" and isinstance(receiver, Mapping) and call.method in RUNS:
            return receiver.get("output")
        if _langgraph(call.qualified, "Send"):
            node = call.args[0] if call.args else call.kwargs.get("node")
            arg = call.args[1] if len(call.args) > 1 else call.kwargs.get("arg")
            name = _node_name(node)
            if name is None or arg is None:
                return None
            host.loops()  # remembered: the node this sends to runs inside them (`_Task.loops`)
            return Mapping(((MARK, _text("send")), ("node", _text(name)), ("arg", arg)))
        return None

    @staticmethod
    def construct(call: SdkCall) -> Value | None:
        qualified, args, kwargs = call.qualified, call.args, call.kwargs
        if _langgraph(qualified, "StateGraph"):
            schema = args[0] if args else kwargs.get("state_schema", Const(None))
            return Mapping(((MARK, _text("graph")), ("schema", schema)))
        if _langgraph(qualified, "Command"):
            return Mapping(
                (
                    (MARK, _text("command")),
                    ("update", kwargs.get("update", Const(None))),
                    ("goto", kwargs.get("goto", Const(None))),
                )
            )
        if _langgraph(qualified, "create_react_agent"):
            model = args[0] if args else kwargs.get("model", Const(None))
            prompt = kwargs.get("prompt") or kwargs.get("state_modifier") or kwargs.get("messages_modifier")
            return Mapping(
                ((MARK, _text("react_agent")), ("model", model), ("prompt", prompt or Const(None)))
            )
        return None

    @staticmethod
    def recognise(call: SdkCall) -> CallMatch | None:
        if call.method in RUNS and _kind(call.receiver) == "react_agent":
            from compiler.interpreter.nodes import dotted_name

            return CallMatch(CallStyle.LANGGRAPH, dotted_name(call.node.func), LangGraphAdapter.NAME)
        return None

    @staticmethod
    def read(match: CallMatch, call: SdkCall) -> Read:
        """A prebuilt agent's run: its prompt (text or a `SystemMessage`) as the system message, then the
        input's `messages`."""
        agent = call.receiver
        prompt = agent.get("prompt") if isinstance(agent, Mapping) else None
        head = Text(())
        if isinstance(prompt, Text):
            head = message_text(Mapping((("role", _text("system")), ("content", prompt))))
        elif isinstance(prompt, Mapping) and prompt.get("role") is not None:
            head = message_text(prompt)
        inp = call.args[0] if call.args else call.kwargs.get("input")
        msgs = inp.get("messages") if isinstance(inp, Mapping) else inp
        return concat(head, messages_text(msgs)), None

    VALID = (
        """
from typing import TypedDict

from langgraph.graph import END, START, StateGraph

class State(TypedDict):
    text: str
    words: list[str]

def split(state: State):
    return {"words": state["text"].split()}

def count(state: State):
    return {"text": str(len(state["words"]))}

builder = StateGraph(State)
builder.add_node("split", split)
builder.add_node(count)
builder.add_edge(START, "split")
builder.add_edge("split", "count")
builder.add_edge("count", END)
graph = builder.compile()
result = graph.invoke({"text": "a b c"})
""",
        """
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent

agent = create_react_agent(ChatOpenAI(model="m"), tools=[], prompt="You check spelling.")

def describe():
    return agent.get_graph()
""",
    )
    INVALID = (
        Expect(
            """
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent

def lookup_order(order_id: str) -> str:
    \"\"\"Look an order up by its id.\"\"\"
    return "shipped"

SUPPORT = "You answer questions about orders. Look the order up before you answer; never guess a status."
agent = create_react_agent(ChatOpenAI(model="gpt-4o"), tools=[lookup_order], prompt=SUPPORT)

def answer(question):
    return agent.invoke({"messages": [("user", question)]})

async def answer_async(question):
    return await agent.ainvoke({"messages": [{"role": "user", "content": question}]})
""",
            calls=((13, "agent.invoke"), (16, "agent.ainvoke")),
            prompt_contains=("You answer questions about orders. Look the order up",),
        ),
    )


# ----------------------------------------------------------------------------- building


def _build(builder: Mapping, call: SdkCall, host: Host) -> Value | None:
    """A builder method: the builder with what it adds (rebound to the receiver, as LangGraph changes the
    builder in place and returns it), or, for `compile()`, the compiled graph after running it."""
    method, args, kwargs = call.method, call.args, call.kwargs
    line, col = call.node.lineno, call.node.col_offset
    # Flat items, the static structure as one `Const` each: a `Mapping` larger than `MAX_VALUE_SIZE` as a
    # tree summarises its nested values, so nested entries would lose a big graph; these only run out at
    # that many items (a diagnostic at `compile()`).
    added: list[tuple[str, Value]] = []

    def edge(src: str | None, dst: str | None) -> None:
        if src is not None and dst is not None:
            added.append(("edge", Const((src, dst, line, col))))

    if method == "compile":
        if builder.get("...") is not None:
            host.diag(line, "LangGraph graph too large to follow: its later nodes and edges are not run")
        return Mapping(((MARK, _text("compiled")), ("output", _run(_Graph.of(builder), host, line))))
    if method == "add_node":
        first = args[0] if args else kwargs.get("node")
        action = args[1] if len(args) > 1 else kwargs.get("action")
        name = _node_name(first)
        if name is not None and first is not None:
            added.append((f"node:{name}", action if action is not None else first))
    elif method == "add_sequence" and args and isinstance(args[0], Seq):
        previous: str | None = None
        for item in args[0].items:
            pair = item.items if isinstance(item, Seq) and len(item.items) == 2 else (item, item)
            name = _node_name(pair[0])
            if name is None:
                continue
            added.append((f"node:{name}", pair[1]))
            edge(previous, name)
            previous = name
    elif method == "add_edge" and len(args) + len(kwargs) >= 2:
        start = args[0] if args else kwargs.get("start_key", Const(None))
        end = args[1] if len(args) > 1 else kwargs.get("end_key", Const(None))
        for src in start.items if isinstance(start, Seq) else (start,):  # a list of sources: a join
            edge(_node_name(src), _node_name(end))
    elif method == "set_entry_point" and args:
        edge(START, _node_name(args[0]))
    elif method == "set_finish_point" and args:
        edge(_node_name(args[0]), END)
    elif method in ("add_conditional_edges", "set_conditional_entry_point"):
        rest = list(args)
        source: str | None = START
        if method == "add_conditional_edges":
            source = _node_name(rest.pop(0) if rest else kwargs.get("source"))
        router = rest[0] if rest else kwargs.get("path")
        path_map = rest[1] if len(rest) > 1 else kwargs.get("path_map", Const(None))
        if source is not None and router is not None:
            pairs = _path_map(path_map)
            added.append(
                ("route", Const((source, tuple(pairs.items()) if pairs is not None else None, line, col)))
            )
            added.append(("router", router))
    else:
        return None
    new = Mapping(builder.items + tuple(added))
    host.rebind(new)
    return new


# ----------------------------------------------------------------------------- running


def _run(g: _Graph, host: Host, line: int) -> Mapping:
    """Run the graph's nodes superstep by superstep from START; the state it ends with."""
    fields = _fields(g.schema)
    state: dict[str, Value] = {
        k: Opaque(k, SourceKind.PARAMETER, key=f"state:{k}") for k, how in fields.items() if how != "reduced"
    }
    reduced = {k for k, how in fields.items() if how != "input"}
    cycles = _cycles(g, host)
    runs: dict[str, int] = {}
    frontier = [_Task(dst) for src, dst, _, _ in g.edges if src == START]
    for route in g.routes:
        if route.source == START:
            frontier.extend(_route(route, state, g, host))
    for _ in range(MAX_RUNS * len(g.nodes) + 1):  # never reached: a step without a node to run ends the walk
        updates: list[Mapping] = []
        gotos: dict[str, list[Value]] = {}  # node -> where its `Command`s send the graph
        ran: dict[str, _Task] = {}
        seen: set[str] = set()
        # A node triggered several times in one step (a join, an edge and a router arm) runs once: plainly
        # if any trigger is plain (it runs whichever arm is taken), else on the first arm. Only `Send`s run
        # a node more than once in a step, once per `Send` written out (a comprehension's: one, in its loop).
        frontier.sort(key=lambda t: t.arm is not None)
        for task in frontier:
            if task.node not in g.nodes or runs.get(task.node, 0) >= MAX_RUNS:
                continue  # END, an unknown name, or a node that has had its runs
            if task.arg is None:
                if task.node in seen:
                    continue
                seen.add(task.node)
            node_input = Mapping(
                tuple((k, _named(v, k)) for k, v in (task.arg.items if isinstance(task.arg, Mapping) else ()))
            )
            with _within(host, task, cycles, runs.get(task.node, 0)):
                action = g.nodes[task.node]
                returns = _run_node(action, node_input if task.arg is not None else _mapping(state), host)
            if not isinstance(action, FuncRef) and _kind(action) != "compiled":
                host.diag(line, f"LangGraph node {task.node!r} is not a function of this agent: not followed")
            for value in returns:
                update, goto = _update_of(value)
                updates.append(update)
                if goto is not None:
                    gotos.setdefault(task.node, []).append(goto)
            ran.setdefault(task.node, task)
        if not ran:
            break
        state = _apply(state, updates, reduced)
        frontier = []
        for node, task in ran.items():
            frontier.extend(_Task(dst) for src, dst, _, _ in g.edges if src == node)
            for route in g.routes:
                if route.source == node:
                    with _within(host, replace(task, loops=frozenset()), cycles, runs.get(node, 0)):
                        frontier.extend(_route(route, state, g, host))
            if node in gotos:  # `Command(goto=...)`: the node routes itself, each return an alternative
                fn = host.function_node(g.nodes[node])
                line = fn.lineno if fn is not None else 0
                possible = _named_in(g.nodes[node], g, host)
                frontier.extend(_choose(gotos[node], False, None, possible, node, line, g))
            runs[node] = runs.get(node, 0) + 1
    return _mapping(state)


def _within(host: Host, task: _Task, cycles: dict[str, tuple[int, int, str]], run: int) -> ExitStack:
    """The loops and the branch arm a task runs in: its node's cycle (this run's pass), the loops that built
    its `Send`, the router alternative it is on."""
    stack = ExitStack()
    cycle = cycles.get(task.node)
    if cycle is not None:
        stack.enter_context(host.loop(cycle[0], cycle[1], cycle[2], run))
    if task.loops:
        stack.enter_context(host.reenter(task.loops))
    if task.arm is not None:
        stack.enter_context(host.branch(task.line, task.arm))
    return stack


def _run_node(action: Value, state: Mapping, host: Host) -> list[Value]:
    if _kind(action) == "compiled" and isinstance(action, Mapping):
        output = action.get("output")
        return [output] if output is not None else []  # a subgraph: its end state updates this graph's
    return host.run(action, [state]) or []


def _update_of(value: Value) -> tuple[Mapping, Value | None]:
    """What a node's return value writes to the state, and where a `Command` sends the graph next."""
    if _kind(value) == "command" and isinstance(value, Mapping):
        update = value.get("update")
        goto = value.get("goto")
        return (
            update if isinstance(update, Mapping) else Mapping(()),
            goto if goto is not None and not isinstance(goto, Const) else None,
        )
    if isinstance(value, Mapping) and _kind(value) is None:
        return value, None
    return Mapping(()), None  # None, a state object, an unknown value: no update we can read


def _apply(state: dict[str, Value], updates: list[Mapping], reduced: set[str]) -> dict[str, Value]:
    """The state after a superstep: reducer keys accumulate every write; other keys take the step's write
    (several writes, from a node's alternative returns, merge as branches do)."""
    new = dict(state)
    written: dict[str, Value] = {}
    for update in updates:
        for key, value in update.items:
            value = _named(value, key)
            if key in reduced:
                new[key] = _accumulate(new.get(key), value)
            else:
                merged = merge_values(written.get(key), value, key) or value
                new[key] = written[key] = merged
    return new


def _accumulate(old: Value | None, new: Value) -> Value:
    def items(v: Value) -> tuple[Value, ...]:
        if isinstance(v, Seq):
            return v.items + ((v.elem,) if v.elem is not None else ())
        return (v,)

    return new if old is None else Seq(items(old) + items(new))


def _named(value: Value, key: str) -> Value:
    """A value as the state key it is stored under names it: the edges it makes are labelled by the key."""
    if isinstance(value, Opaque):
        return replace(value, name=key)
    if isinstance(value, Text) and len(value.parts) == 1 and isinstance(value.parts[0], Dyn):
        part = value.parts[0]
        return value if part.fills else Text((replace(part, name=key),))
    if isinstance(value, Seq):
        elem = _named(value.elem, key) if value.elem is not None else None
        return Seq(tuple(_named(v, key) for v in value.items), elem, value.elem_loops)
    return value


def _mapping(state: dict[str, Value]) -> Mapping:
    return Mapping(tuple(state.items()))


# ----------------------------------------------------------------------------- routers


def _route(route: _Route, state: dict[str, Value], g: _Graph, host: Host) -> list[_Task]:
    """The tasks a router starts: each value it returns is one alternative; two or more are branch arms."""
    returns = host.run(route.router, [_mapping(state)])
    router = _short(route.router.qualname) if isinstance(route.router, FuncRef) else "router"
    possible = _possible(route, g, host)
    return _choose(returns or [], not returns, route.path_map, possible, router, route.line, g)


def _choose(
    values: list[Value],
    unknown: bool,
    path_map: dict[str, str] | None,
    possible: set[str],
    chooser: str,
    line: int,
    g: _Graph,
) -> list[_Task]:
    """The tasks of a choice: each value is one alternative (a value that is not a literal, or `unknown`,
    adds every `possible` target as one); with two or more distinct alternatives each task runs on its
    alternative's arm (`chooser -> nodes`) of a choice at `line`."""
    alternatives: list[list[_Task]] = []
    for value in values:
        tasks = _targets(value, path_map)
        if tasks is None:
            unknown = True
        else:
            alternatives.append(tasks)
    if unknown:
        alternatives.extend([_Task(name)] for name in sorted(possible, key=_order(g)))
    distinct: dict[tuple[tuple[str, bool], ...], list[_Task]] = {}
    for tasks in alternatives:
        distinct.setdefault(tuple((t.node, t.arg is not None) for t in tasks), tasks)
    if len(distinct) < 2:
        return [t for tasks in distinct.values() for t in tasks]
    out: list[_Task] = []
    for tasks in distinct.values():
        names = sorted({t.node for t in tasks}, key=_order(g)) or ["END"]
        arm = f"{chooser} -> {', '.join(names)}"
        out.extend(replace(t, arm=arm, line=line) for t in tasks)
    return out


def _targets(value: Value, path_map: dict[str, str] | None) -> list[_Task] | None:
    """The tasks a router's (or a `Command`'s `goto`) value starts; None when it is not a literal."""
    if _kind(value) == "send" and isinstance(value, Mapping):
        node = static_text(value.get("node"))
        return [_Task(node, value.get("arg"))] if node is not None else None
    if isinstance(value, Seq):
        out: list[_Task] = []
        for item in value.items:
            tasks = _targets(item, path_map)
            if tasks is None:
                return None
            out.extend(tasks)
        if value.elem is not None:  # built by a loop: the node runs in it, once per element
            tasks = _targets(value.elem, path_map)
            if tasks is None:
                return None
            out.extend(replace(t, loops=t.loops | value.elem_loops) for t in tasks)
        return out
    name = _node_name(value)
    if name is None:
        return None
    name = (path_map or {}).get(name, name)
    return [] if name == END else [_Task(name)]


def _possible(route: _Route, g: _Graph, host: Host) -> set[str]:
    """Every node a router may start: its path_map's, else the node names its body holds as literals."""
    if route.path_map is not None:
        return set(route.path_map.values()) - {END}
    return _named_in(route.router, g, host)


def _named_in(fn: Value, g: _Graph, host: Host) -> set[str]:
    node = host.function_node(fn)
    if node is None:
        return set()
    return {
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in g.nodes
    }


def _order(g: _Graph) -> Callable[[str], tuple[int, str]]:
    """Sort key: nodes in the order they were added, names that are no node after them."""
    position = {name: i for i, name in enumerate(g.nodes)}

    def key(name: str) -> tuple[int, str]:
        return (position.get(name, len(position)), name)

    return key


# ----------------------------------------------------------------------------- cycles and the state schema


def _cycles(g: _Graph, host: Host) -> dict[str, tuple[int, int, str]]:
    """Each node on a cycle of the graph -> the `while` loop it runs in: anchored at the last-declared edge
    inside its cycle (line, col), labelled by the cycle's nodes."""
    succ: dict[str, set[str]] = {n: set() for n in g.nodes}
    where: list[tuple[str, str, int, int]] = list(g.edges)
    for route in g.routes:
        where.extend((route.source, t, route.line, route.col) for t in _possible(route, g, host))
    for name, fn in g.nodes.items():  # a node may route itself with `Command(goto=...)`
        fn_node = host.function_node(fn)
        if fn_node is not None and "Command" in {
            getattr(c.func, "id", getattr(c.func, "attr", ""))
            for c in ast.walk(fn_node)
            if isinstance(c, ast.Call)
        }:
            where.extend((name, t, fn_node.lineno, fn_node.col_offset) for t in _named_in(fn, g, host))
    for src, dst, _, _ in where:
        if src in succ and dst in succ:
            succ[src].add(dst)
    reach = {n: _reachable(n, succ) for n in succ}
    out: dict[str, tuple[int, int, str]] = {}
    for n in succ:
        if n in out or n not in reach[n]:
            continue
        members = [m for m in g.nodes if m in reach[n] and n in reach[m]]
        line, col = max((ln, c) for s, d, ln, c in where if s in members and d in members)
        shown = (
            members if len(members) <= 4 else [*members[:2], "...", f"{members[-1]} ({len(members)} nodes)"]
        )
        label = "graph cycle " + " -> ".join(shown)
        for m in members:
            out[m] = (line, col, label)
    return out


def _reachable(start: str, succ: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(succ[start])
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(succ[n])
    return seen


def _fields(schema: Value | None) -> dict[str, str]:
    """The state keys a schema declares: key -> `input`, `messages` (an `add_messages` conversation, an
    input too) or `reduced` (a plain reducer, gathered by the nodes). Read from the class's namespace as
    the interpreter hands a project class to a library (`__annotations__` as source, `__bases__`)."""
    if isinstance(schema, ModuleRef) and schema.qualname.rsplit(".", 1)[-1] == "MessagesState":
        return {"messages": "messages"}  # `StateGraph(MessagesState)`: LangGraph's own conversation state
    if not isinstance(schema, Mapping):
        return {}
    out: dict[str, str] = {}
    bases = schema.get("__bases__")
    for base in bases.items if isinstance(bases, Seq) else ():
        if isinstance(base, Mapping):
            out.update(_fields(base))
        elif (static_text(base) or "").rsplit(".", 1)[-1] == "MessagesState":
            out["messages"] = "messages"
    annotations = schema.get("__annotations__")
    for key, annotation in annotations.items if isinstance(annotations, Mapping) else ():
        out[key] = _reducer(static_text(annotation) or "")
    return out


def _reducer(annotation: str) -> str:
    """`Annotated[list, operator.add]` -> `reduced`, `Annotated[list, add_messages]` -> `messages`."""
    try:
        node = ast.parse(annotation, mode="eval").body
    except (SyntaxError, ValueError):
        return "input"
    if (
        isinstance(node, ast.Subscript)
        and (getattr(node.value, "id", None) or getattr(node.value, "attr", None)) == "Annotated"
        and isinstance(node.slice, ast.Tuple)
        and len(node.slice.elts) >= 2
    ):
        reducer = ast.unparse(node.slice.elts[-1])
        return "messages" if any(r in reducer for r in MESSAGES_REDUCERS) else "reduced"
    return "input"
