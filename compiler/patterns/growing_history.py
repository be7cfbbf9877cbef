"""GROWING_HISTORY: a call in a loop whose prompt keeps all of the previous iteration's and appends to it.

`s += generate(s)`, a `messages` list re-sent with the reply appended, a chat agent's `self.messages`:
iteration k+1 sends iteration k's prompt again, then what k added (its output, the next question). With
the prefix cache on, each iteration prefills only what it adds, as long as the history stays
append-only: editing or trimming its front loses everything after the edit. Figures are for the
assumed iteration count: the prompt of iteration k is the first one plus k times what one adds.
"""

from __future__ import annotations

from compiler.model import Finding, PatternKind
from compiler.patterns.base import Context, Invalid, PatternRule, Valid

KIND = PatternKind.GROWING_HISTORY


def detect(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    n = ctx.sim.iterations
    for call in ctx.calls:
        added = call.added_tokens_per_iteration
        if not call.grows_per_iteration or not call.loops or added <= 0 or n < 2:
            continue
        loop = (ctx.agent_loops(call) or call.loops)[-1]
        first = call.prompt_tokens
        prompts = [first + k * added for k in range(n)]
        reused = sum(prompts[:-1])  # iteration k (k >= 1) finds iteration k-1's whole prompt cached
        share = reused / sum(prompts)
        carried = sorted(
            {
                v
                for e in ctx.edges
                if e.kind == "carried" and e.source == e.target == call.id
                for v in e.variables
            }
        )
        findings.append(
            Finding(
                kind=KIND,
                calls=[call.id],
                line=call.line,
                message=(
                    f"{call.id}'s prompt keeps all of the previous iteration's and adds ~{added} tokens per "
                    f"iteration of the loop at line {loop.line}: over {n} iterations {share:.0%} of its prompt "
                    f"tokens are the previous iteration's prompt, reusable while the history stays append-only"
                ),
                figures={
                    "loop_line": loop.line,
                    "carried": carried,
                    "first_prompt_tokens": first,
                    "added_tokens_per_iteration": added,
                    "iterations": n,
                    "last_prompt_tokens": prompts[-1],
                    "reused_share": round(share, 4),
                },
            )
        )
    return findings


class GrowingHistoryRule(PatternRule):
    KIND = KIND
    detect = staticmethod(detect)

    VALID = (
        Valid("""
def answer_each(questions, generate):
    out = []
    for q in questions:
        out.append(generate("Answer briefly: " + q, max_tokens=64))
    return out
"""),
        Valid("""
def refine(draft, generate):
    for _ in range(3):
        draft = generate("Improve this draft: " + draft, max_tokens=64)
    return draft
"""),
    )
    INVALID = (
        Invalid(  # `s += generate(s)`, as public multi-turn chat benchmarks are written
            """
def multi_turn(s, questions, generate):
    s += "You are a helpful assistant. Answer each question in one short paragraph.\\n"
    for q in questions:
        s += "Q: " + q + "\\nA:"
        s += generate(s, max_tokens=64)
    return s
""",
            calls=("c1",),
            line=6,
            # first prompt: `s` (40, a small run-time value), the instructions (19), "Q: " (1), `q` (40),
            # "\nA:" (1) = 101; each iteration adds the output (max_tokens 64) and "Q: " q "\nA:" (42) = 106
            figures={
                "loop_line": 4,
                "carried": ["output"],
                "first_prompt_tokens": 101,
                "added_tokens_per_iteration": 106,
                "iterations": 10,
                "last_prompt_tokens": 101 + 9 * 106,
                "reused_share": round(
                    sum(101 + k * 106 for k in range(9)) / sum(101 + k * 106 for k in range(10)), 4
                ),
            },
        ),
    )
