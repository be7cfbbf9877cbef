"""BRANCHING: one call fans out into several (`n=` samples, a loop over its outputs, or A -> (B|C|D)).

Figure: the branch factor (the spec calls 2-4 optimal). The branches share everything up to the
parent's output, so the parent's prompt is the prefix to warm before the fan-out.
"""

from __future__ import annotations

import networkx as nx

from compiler.model import Finding, PatternKind
from compiler.patterns.base import Context, Invalid, PatternRule, Valid

KIND = PatternKind.BRANCHING


def detect(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    by_id = ctx.by_id
    for cid in ctx.order:
        call = by_id[cid]
        children = sorted(ctx.graph.successors(cid), key=lambda c: int(c[1:]))
        # A -> B -> C with A -> C too is a chain, not a branch: keep children no other child leads to.
        independent = [
            c for c in children if not any(o != c and nx.has_path(ctx.graph, o, c) for o in children)
        ]
        # `n=1` (or a literal 0) asks for one sample: nothing fans out. A symbolic `n=k` may well.
        fanout = call.fanout
        if fanout is not None and not (isinstance(fanout, int) and fanout < 2):
            factor: int | str = fanout
            how = f"`n={fanout}`"
            children = independent  # the calls the samples feed directly, not everything downstream
        elif len(independent) >= 2:
            children = independent
            factor = len(children)
            how = f"{factor} dependent calls"
        else:
            continue
        figures: dict[str, float | int | str | bool | list[str]] = {
            "branch_factor": factor,
            "children": children,
        }
        if isinstance(factor, int):
            figures["in_optimal_range"] = 2 <= factor <= 4
        findings.append(
            Finding(
                kind=KIND,
                calls=[cid, *children],
                line=call.line,
                figures=figures,
                message=f"{cid} branches by {how}" + (f" into {', '.join(children)}" if children else ""),
            )
        )
    return findings


class BranchingRule(PatternRule):
    KIND = KIND
    detect = staticmethod(detect)

    VALID = (
        Valid("""
def single(question, call_generate):
    return call_generate("Question: " + question, max_tokens=128)
"""),
        Valid("""
from openai import OpenAI

client = OpenAI()

def one_sample(question):
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": question}], n=1)
    return r.choices[0].message.content
"""),
    )
    INVALID = (
        Invalid(
            """
def tree(question, call_generate):
    s = "Question: " + question + "\\n"
    plans = call_generate(s + "Propose a plan.", max_tokens=128, n=3)
    results = []
    for plan in plans:
        results.append(call_generate(s + plan + "Execute the plan.", max_tokens=128))
    return results
""",
            calls=("c1", "c2"),
            line=4,
            figures={"branch_factor": 3, "children": ["c2"], "in_optimal_range": True},
        ),
        Invalid(  # A -> (B|C): two calls read the same output
            """
import litellm

def triage(ticket):
    summary = litellm.completion(model="m", messages=[{"role": "user", "content": "Summarise: " + ticket}])
    urgency = litellm.completion(model="m", messages=[{"role": "user", "content": f"How urgent is: {summary}"}])
    owner = litellm.completion(model="m", messages=[{"role": "user", "content": f"Which team owns: {summary}"}])
    return urgency, owner
""",
            calls=("c1", "c2", "c3"),
            line=5,
            figures={"branch_factor": 2, "children": ["c2", "c3"], "in_optimal_range": True},
        ),
    )
