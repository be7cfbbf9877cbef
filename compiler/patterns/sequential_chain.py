"""SEQUENTIAL_CHAIN: A -> B -> C, each call consuming an earlier one's output.

Figure: the chain depth (the spec calls 3-7 steps optimal). `progressive_context` says whether each
step's prompt starts with the whole previous prompt (state that grows, SGLang style), in which case
every step reuses everything before it.
"""

from __future__ import annotations

import itertools

import networkx as nx

from compiler.model import Finding, PatternKind
from compiler.patterns.base import Context, Invalid, PatternRule, Valid, gathered_inputs, lcp_chars

KIND = PatternKind.SEQUENTIAL_CHAIN


def detect(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    by_id = ctx.by_id
    # A call that gathers the outputs of independent calls (MAP_REDUCE) does not continue from any one
    # of them: those edges are no step of a chain.
    steps = ctx.graph.copy()
    steps.remove_edges_from([(m, cid) for cid in ctx.order for m in gathered_inputs(ctx, cid)])
    for component in nx.weakly_connected_components(steps):
        if len(component) < 2:
            continue
        path = nx.dag_longest_path(steps.subgraph(component))
        if len(path) < 2:
            continue
        progressive = all(
            lcp_chars(ctx.encoding(a)[0], ctx.encoding(b)[0]) >= len(ctx.encoding(a)[0])
            for a, b in itertools.pairwise(path)
        )
        depth = len(path)
        via = [", ".join(ctx.graph.edges[a, b]["variables"]) for a, b in itertools.pairwise(path)]
        findings.append(
            Finding(
                kind=KIND,
                calls=list(path),
                line=by_id[path[0]].line,
                message=f"chain of {depth} calls: "
                + "-> ".join(f"{a} -[{v}]" for a, v in zip(path, via))
                + f"-> {path[-1]}",
                figures={
                    "depth": depth,
                    "in_optimal_range": 3 <= depth <= 7,
                    "progressive_context": progressive,
                },
            )
        )
    return findings


class SequentialChainRule(PatternRule):
    KIND = KIND
    detect = staticmethod(detect)

    VALID = (
        Valid("""
import litellm

def pipeline(ticket):
    summary = litellm.completion(model="m", messages=[{"role": "user", "content": "Summarise: " + ticket}])
    label = litellm.completion(model="m", messages=[{"role": "user", "content": "Label: " + ticket}])
    return summary, label
"""),
        Valid(  # map -> reduce: the merge gathers three independent reviews, it continues from none
            """
import litellm

def ask(p):
    return litellm.completion(model="m", messages=[{"role": "user", "content": p}])

def review(doc):
    a = ask("Check the grammar of:\\n" + doc)
    b = ask("Check the facts of:\\n" + doc)
    return ask("Merge these two reviews:\\n" + a + "\\n" + b)
"""
        ),
    )
    INVALID = (
        Invalid(
            """
import litellm

def pipeline(ticket):
    summary = litellm.completion(model="m", messages=[{"role": "user", "content": "Summarise: " + ticket}])
    label = litellm.completion(model="m", messages=[{"role": "user", "content": f"Label this summary: {summary}"}])
    reply = litellm.completion(model="m", messages=[{"role": "user", "content": f"Write a reply for {label}"}])
    return reply
""",
            calls=("c1", "c2", "c3"),
            line=5,
            figures={"depth": 3, "in_optimal_range": True, "progressive_context": False},
        ),
    )
