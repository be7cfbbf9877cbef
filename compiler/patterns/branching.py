"""BRANCHING: one call fans out into several (`n=` samples, a loop over its outputs, or A -> (B|C|D)).

Figure: the branch factor (the spec calls 2-4 optimal). The branches share everything up to the
parent's output, so the parent's prompt is the prefix to warm before the fan-out.
"""

from __future__ import annotations

import networkx as nx

from compiler.model import Finding, PatternKind
from compiler.patterns.base import Context

KIND = PatternKind.BRANCHING

POSITIVE_EXAMPLES = (
    '''
def tree(question, call_generate):
    s = "Question: " + question + "\\n"
    plans = call_generate(s + "Propose a plan.", max_tokens=128, n=3)
    results = []
    for plan in plans:
        results.append(call_generate(s + plan + "Execute the plan.", max_tokens=128))
    return results
''',
)

NEGATIVE_EXAMPLES = (
    '''
def single(question, call_generate):
    return call_generate("Question: " + question, max_tokens=128)
''',
)


def detect(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    by_id = ctx.by_id
    for cid in ctx.order:
        call = by_id[cid]
        children = sorted(ctx.graph.successors(cid), key=lambda c: int(c[1:]))
        # A -> B -> C with A -> C too is a chain, not a branch: keep children no other child leads to.
        independent = [c for c in children
                       if not any(o != c and nx.has_path(ctx.graph, o, c) for o in children)]
        if call.fanout is not None:
            factor: int | str = call.fanout
            how = f"`n={call.fanout}`"
            children = independent  # the calls the samples feed directly, not everything downstream
        elif len(independent) >= 2:
            children = independent
            factor = len(children)
            how = f"{factor} dependent calls"
        else:
            continue
        figures: dict[str, float | int | str | bool | list[str]] = {"branch_factor": factor, "children": children}
        if isinstance(factor, int):
            figures["in_optimal_range"] = 2 <= factor <= 4
        findings.append(
            Finding(kind=KIND, calls=[cid, *children], line=call.line, figures=figures,
                    message=f"{cid} branches by {how}" + (f" into {', '.join(children)}" if children else ""))
        )
    return findings
