"""LOOP_INVARIANT: a call in a loop whose prompt is mostly the same on every iteration.

Figures: the invariant share of the prompt, the invariant tokens before the first changing part, and
whether the invariant part sits at the front (only then can a prefix cache reuse it).
"""

from __future__ import annotations

from compiler.model import Finding, PatternKind
from compiler.patterns.base import Context, Invalid, PatternRule, Valid, delta_tokens

KIND = PatternKind.LOOP_INVARIANT
MIN_INVARIANT_SHARE = 0.3
MIN_INVARIANT_TOKENS = 32


def detect(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for call in ctx.calls:
        loops = ctx.agent_loops(call)
        if not loops or not call.prompt_tokens or call.grows_per_iteration:
            continue  # a prompt that grows is not the same on every iteration: GROWING_HISTORY reports it
        delta = sum(delta_tokens(s) for s in call.segments)
        invariant = call.prompt_tokens - delta
        share = invariant / call.prompt_tokens
        if invariant < MIN_INVARIANT_TOKENS or share < MIN_INVARIANT_SHARE:
            continue
        prefix = 0
        positions_known = True
        for s in call.segments:
            if s.varies_in_loop:
                positions_known = not s.fills
                break
            prefix += s.tokens
        at_front = prefix >= invariant * 0.9
        findings.append(
            Finding(
                kind=KIND,
                calls=[call.id],
                line=call.line,
                message=(
                    f"{call.id} in the loop at line {loops[-1].line}: {share:.0%} of its prompt is the same "
                    f"on every iteration"
                    + ("" if at_front else f"; only {prefix} tokens of it come before the changing part")
                ),
                figures={
                    "invariant_share": round(share, 4),
                    "invariant_tokens": invariant,
                    "invariant_prefix_tokens": prefix,
                    "at_front": at_front,
                    "delta_positions_known": positions_known,
                    "loop_line": loops[-1].line,
                },
            )
        )
    return findings


class LoopInvariantRule(PatternRule):
    KIND = KIND
    detect = staticmethod(detect)

    VALID = (
        Valid("""
from openai import OpenAI
client = OpenAI()

def grade_all(answers):
    return [client.completions.create(model="m", prompt=a) for a in answers]
"""),
    )
    INVALID = (
        Invalid(
            '''
from openai import OpenAI
client = OpenAI()
RUBRIC = """Grade the answer from 1 to 5 for correctness, completeness and clarity. Explain briefly.
A 5 is fully correct and complete; a 1 is wrong or off topic. Be strict but fair and consistent."""

def grade_all(answers):
    grades = []
    for answer in answers:
        grades.append(client.completions.create(model="m", prompt=RUBRIC + "\\nAnswer: " + answer))
    return grades
''',
            calls=("c1",),
            line=10,
            figures={
                "invariant_share": 0.5506,
                "invariant_tokens": 49,
                "invariant_prefix_tokens": 49,
                "at_front": True,
                "delta_positions_known": True,
                "loop_line": 9,
            },
        ),
    )
