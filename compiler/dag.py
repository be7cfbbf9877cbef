"""From interpreter occurrences to the call DAG: one node per call site, edges labelled by variables.

An LLM call inside a loop is reached several times by the interpreter; all those occurrences are one
node whose prompt template is the first iteration's. Data that flows from a call into a later
iteration of itself (or of a call before it in the same loop) is a loop-carried dependency, kept on
the node rather than as an edge, so the graph stays acyclic and has a topological order.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import networkx as nx

from compiler.interpreter import BranchFrame, LoopFrame, short_source
from compiler.model import BranchContext, CallSite, CallStyle, Edge, LoopContext, Ref, Segment, SourceKind
from compiler.refs import ref_of_node, ref_of_text
from compiler.templates import ROLE_HEADER_TOKENS, is_role_header
from compiler.tokens import Tokenizer, assumed_tokens
from compiler.values import Dyn, Loc, Occurrence, Static, Text, simplify


@dataclass
class Dag:
    calls: list[CallSite]
    edges: list[Edge]
    order: list[str]
    graph: nx.DiGraph[str]  # nodes are call ids
    occurrences: dict[str, list[Occurrence]]  # call id -> its occurrences
    prompts: dict[str, Text]  # call id -> representative prompt (internal parts, with build locations)


def build_dag(occurrences: list[Occurrence], tok: Tokenizer) -> Dag:
    # A node per call site: the compiled file's sites first, in source order, then other modules' sites.
    by_key: dict[tuple[str, Loc], list[Occurrence]] = defaultdict(list)
    for occ in occurrences:
        by_key[(occ.module, occ.key)].append(occ)
    keys = sorted(by_key)
    node_of_key = {k: f"c{i + 1}" for i, k in enumerate(keys)}
    node_of_occ = {o.id: node_of_key[(o.module, o.key)] for o in occurrences}
    position = {node_of_key[k]: i for i, k in enumerate(keys)}
    max_of_occ = {o.id: o.max_tokens for o in occurrences}

    calls: list[CallSite] = []
    prompts: dict[str, Text] = {}
    refs: dict[str, Ref | None] = {}  # expression text -> its structured reference, made once per compile
    occs_by_node: dict[str, list[Occurrence]] = {}
    for module, key in keys:
        cid = node_of_key[(module, key)]
        occs = by_key[(module, key)]
        occs_by_node[cid] = occs
        rep = min(occs, key=lambda o: (o.iteration, o.id))
        loops = [l for l in rep.loops if isinstance(l, LoopFrame)]
        agent_loops = {l.id for l in loops if not l.request_loop}
        prompt = simplify(rep.prompt)
        prompts[cid] = prompt
        segments = _segments(prompt, agent_loops, node_of_occ, max_of_occ, tok, refs)
        static_prefix = 0
        for s in segments:
            if s.kind == "dynamic":
                break
            static_prefix += s.tokens
        calls.append(
            CallSite(
                id=cid,
                module=module,
                line=key[0],
                col=key[1],
                end_line=key[2],
                end_col=key[3],
                function=rep.function,
                style=CallStyle(rep.style),
                api=rep.api,
                callee=rep.callee,
                is_async=rep.is_async,
                via=[f"{loc[0]}:{loc[1]}" for loc in rep.via],
                output_var=next((o.output_var for o in occs if o.output_var), None),
                loops=[_loop_context(l, node_of_occ) for l in loops],
                branches=[_branch_context(b) for b in rep.branches if isinstance(b, BranchFrame)],
                fanout=rep.fanout,
                max_tokens=rep.max_tokens,
                segments=segments,
                fanout_ref=ref_of_text(rep.fanout, refs) if isinstance(rep.fanout, str) else None,
                prompt_tokens=sum(s.tokens for s in segments),
                static_prefix_tokens=static_prefix,
                grows_per_iteration=_grows(occs),
            )
        )
        if calls[-1].grows_per_iteration:
            second = [
                sum(
                    s.tokens
                    for s in _segments(simplify(o.prompt), agent_loops, node_of_occ, max_of_occ, tok, refs)
                )
                for o in occs
                if o.iteration == 1
            ]
            calls[-1].added_tokens_per_iteration = max(min(second, default=0) - calls[-1].prompt_tokens, 0)

    graph: nx.DiGraph[str] = nx.DiGraph()
    for c in calls:
        graph.add_node(c.id)
    labels: dict[tuple[str, str], set[str]] = defaultdict(set)
    carried: dict[str, set[str]] = defaultdict(set)  # producer -> variables it carries into a next iteration
    carried_into: dict[str, set[str]] = defaultdict(set)  # consumer -> those variables, as it reads them
    carried_pairs: dict[tuple[str, str], set[str]] = defaultdict(set)  # (producer, consumer) -> variables
    call_by_id = {c.id: c for c in calls}
    for occ in occurrences:
        dst = node_of_occ[occ.id]
        for part in occ.prompt.parts:
            if not isinstance(part, Dyn):
                continue
            for origin in part.origins:
                src = node_of_occ.get(origin)
                if src is None:
                    continue
                shared_loop = {l.id for l in occ.loops if isinstance(l, LoopFrame)} & {
                    l.id for l in occurrences[origin].loops if isinstance(l, LoopFrame)
                }
                if src == dst or (shared_loop and position[src] >= position[dst]):
                    carried[src].add(part.name)
                    carried_into[dst].add(part.name)
                    carried_pairs[(src, dst)].add(part.name)
                else:
                    labels[(src, dst)].add(part.name)
    for (src, dst), names in labels.items():
        graph.add_edge(src, dst, variables=sorted(names))
    # A residual cycle can only come from loop-carried flow we could not order by position: drop it.
    while True:
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            break
        src, dst = cycle[-1][0], cycle[-1][1]
        carried[src].update(graph.edges[src, dst]["variables"])
        carried_into[dst].update(graph.edges[src, dst]["variables"])
        carried_pairs[(src, dst)].update(graph.edges[src, dst]["variables"])
        graph.remove_edge(src, dst)
    for cid, names in carried.items():
        call_by_id[cid].loop_carried = sorted(names)
    for cid, names in carried_into.items():
        _mark_carried(call_by_id[cid], names)

    edges: list[Edge] = []
    for src, dst, data in sorted(graph.edges(data=True), key=lambda e: (position[e[0]], position[e[1]])):
        fan = call_by_id[src].fanout is not None or any(l.over_call == src for l in call_by_id[dst].loops)
        edges.append(
            Edge(source=src, target=dst, variables=data["variables"], kind="fanout" if fan else "data")
        )
    for (src, dst), names in sorted(
        carried_pairs.items(), key=lambda e: (position[e[0][0]], position[e[0][1]])
    ):
        edges.append(Edge(source=src, target=dst, variables=sorted(names), kind="carried"))
    order = list(nx.lexicographical_topological_sort(graph, key=lambda n: position[n]))
    return Dag(calls, edges, order, graph, occs_by_node, prompts)


def _segments(
    prompt: Text,
    agent_loops: set[int],
    node_of_occ: dict[int, str],
    max_of_occ: dict[int, int | None],
    tok: Tokenizer,
    refs: dict[str, Ref | None],
) -> list[Segment]:
    out: list[Segment] = []
    role: str | None = None
    for part in prompt.parts:
        if isinstance(part, Static):
            if is_role_header(part):
                role = part.text[2:-3]
                out.append(
                    Segment(
                        kind="static",
                        text=part.text,
                        role=role,
                        tokens=ROLE_HEADER_TOKENS,
                        tokens_basis="assumed",
                        synthetic=True,
                    )
                )
                continue
            if out and out[-1].kind == "static" and not out[-1].synthetic:
                merged = out[-1].text + part.text
                out[-1] = out[-1].model_copy(update={"text": merged, "tokens": tok.count(merged)})
                continue
            out.append(
                Segment(
                    kind="static",
                    text=part.text,
                    role=role,
                    tokens=tok.count(part.text),
                    tokens_basis="estimated" if tok.estimated else "counted",
                )
            )
            continue
        origin_calls = sorted(
            {node_of_occ[o] for o in part.origins if o in node_of_occ}, key=lambda c: int(c[1:])
        )
        limits = [max_of_occ.get(o) for o in part.origins]
        producer_max = (
            max((m for m in limits if m), default=None) if part.source is SourceKind.CALL_OUTPUT else None
        )
        out.append(
            Segment(
                kind="dynamic",
                text="{" + part.name + "}",
                name=part.name,
                source=part.source,
                key=part.ident,
                fills=list(part.fills),
                origin_calls=origin_calls,
                role=role,
                varies_in_loop=part.source is SourceKind.VOLATILE or bool(part.varies & agent_loops),
                tokens=assumed_tokens(part.name, part.source, producer_max, len(part.fills)),
                tokens_basis="assumed",
                ref=ref_of_text(part.name, refs),
                fill_refs=[ref_of_text(f, refs) for f in part.fills],
            )
        )
    return out


def _mark_carried(call: CallSite, names: set[str]) -> None:
    """A value a loop carries from one iteration into the next changes on every iteration, even though the
    prompt the segments were read from (the first iteration's) got it from a call before the loop."""
    if all(l.request_loop for l in call.loops):
        return  # carried across requests, not across the iterations of one request's loop
    call.segments = [
        s.model_copy(update={"varies_in_loop": True})
        if s.kind == "dynamic" and s.name in names and s.source is SourceKind.CALL_OUTPUT
        else s
        for s in call.segments
    ]


def _loop_context(loop: LoopFrame, node_of_occ: dict[int, str]) -> LoopContext:
    over = sorted({node_of_occ[o] for o in loop.over if o in node_of_occ})
    return LoopContext(
        kind=loop.kind,
        line=loop.line,
        target=loop.target,
        iterates=short_source(loop.node) if isinstance(loop.node, ast.AST) else "",
        over_call=over[0] if over else None,
        over_calls=over,
        request_loop=loop.request_loop,
        target_ref=ref_of_node(loop.target_node) if loop.target_node is not None else None,
        iterates_ref=ref_of_node(loop.node) if isinstance(loop.node, ast.AST) else None,
    )


def _branch_context(branch: BranchFrame) -> BranchContext:
    return BranchContext(line=branch.line, test=short_source(branch.node), arm=branch.arm)


def _grows(occs: list[Occurrence]) -> bool:
    """True when a later iteration's prompt starts with all of an earlier one's and adds to it.

    Nested loops reach one call site 2^depth times, so comparing every first-iteration prompt with
    every second-iteration one was quadratic in that (4x per nesting level). Instead the first
    iterations' prompts go into a trie of part keys, and each second-iteration prompt walks it once:
    it grows when the walk passes the end of some first prompt before its own end.
    """
    trie: dict[object, Any] = {}  # part key -> subtrie, _END -> True: nested to the prompt's length
    for o in occs:
        if o.iteration != 0:
            continue
        node = trie
        for part in simplify(o.prompt).parts:
            node = node.setdefault(_key(part), {})
        node[_END] = True
    if not trie:
        return False
    for o in occs:
        if o.iteration != 1:
            continue
        node = trie
        for part in simplify(o.prompt).parts:
            if _END in node:
                return True  # a first prompt is a strict prefix of this one
            found = node.get(_key(part))
            if found is None:
                break
            node = found
    return False


_END = object()  # marks where a first-iteration prompt ends in the trie


def _key(part: object) -> object:
    """What makes two parts the same for `_grows`: a static part's text, a dynamic part's identity."""
    if isinstance(part, Static):
        return ("s", part.text)
    if isinstance(part, Dyn):
        return ("d", part.ident)
    return ("other", id(part))  # never equal to another part, as before
