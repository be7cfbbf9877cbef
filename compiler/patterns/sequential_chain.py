"""SEQUENTIAL_CHAIN: A -> B -> C, each call consuming an earlier one's output.

Figure: the chain depth (the spec calls 3-7 steps optimal). `progressive_context` says whether each
step's prompt starts with the whole previous prompt (state that grows, SGLang style), in which case
every step reuses everything before it.
"""

from __future__ import annotations

import itertools

import networkx as nx

from compiler.model import Finding, PatternKind
from compiler.patterns.base import Context, lcp_chars

KIND = PatternKind.SEQUENTIAL_CHAIN

POSITIVE_EXAMPLES = (
    '''
import litellm

def pipeline(ticket):
    summary = litellm.completion(model="m", messages=[{"role": "user", "content": "Summarise: " + ticket}])
    label = litellm.completion(model="m", messages=[{"role": "user", "content": f"Label this summary: {summary}"}])
    reply = litellm.completion(model="m", messages=[{"role": "user", "content": f"Write a reply for {label}"}])
    return reply
''',
)

NEGATIVE_EXAMPLES = (
    '''
import litellm

def pipeline(ticket):
    summary = litellm.completion(model="m", messages=[{"role": "user", "content": "Summarise: " + ticket}])
    label = litellm.completion(model="m", messages=[{"role": "user", "content": "Label: " + ticket}])
    return summary, label
''',
)


def detect(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    by_id = ctx.by_id
    for component in nx.weakly_connected_components(ctx.graph):
        if len(component) < 2:
            continue
        path = nx.dag_longest_path(ctx.graph.subgraph(component))
        if len(path) < 2:
            continue
        progressive = all(
            lcp_chars(ctx.encoding(a)[0], ctx.encoding(b)[0]) >= len(ctx.encoding(a)[0]) for a, b in itertools.pairwise(path)
        )
        depth = len(path)
        via = [", ".join(ctx.graph.edges[a, b]["variables"]) for a, b in itertools.pairwise(path)]
        findings.append(
            Finding(
                kind=KIND, calls=list(path), line=by_id[path[0]].line,
                message=f"chain of {depth} calls: " + "-> ".join(
                    f"{a} -[{v}]" for a, v in zip(path, via)) + f"-> {path[-1]}",
                figures={"depth": depth, "in_optimal_range": 3 <= depth <= 7, "progressive_context": progressive},
            )
        )
    return findings
