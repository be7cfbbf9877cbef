"""DELTA_MATCHING: a call in a loop where only a small part of the prompt changes per iteration.

Figure: the delta size as % of the prompt's tokens. Small deltas at the end of the prompt are what
prefix caches serve best; deltas substituted inside a run-time template (`template.format(**vars)`)
are flagged because their position decides how much is reused.
"""

from __future__ import annotations

from compiler.model import Finding, PatternKind
from compiler.patterns.base import Context, Invalid, PatternRule, Valid, delta_tokens

KIND = PatternKind.DELTA_MATCHING
MAX_DELTA_SHARE = 0.25


def detect(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for call in ctx.calls:
        loops = ctx.agent_loops(call)
        if not loops or not call.prompt_tokens:
            continue
        changing = [s for s in call.segments if delta_tokens(s)]
        delta = sum(delta_tokens(s) for s in changing)
        if not delta:
            continue
        pct = 100.0 * delta / call.prompt_tokens
        if pct > MAX_DELTA_SHARE * 100:
            continue
        names = [s.name or s.text for s in changing]
        inside = [s.name for s in changing if s.fills]
        findings.append(
            Finding(
                kind=KIND,
                calls=[call.id],
                line=call.line,
                message=(
                    f"{call.id}: only {pct:.1f}% of the prompt ({delta} tokens: {', '.join(names)}) changes "
                    f"per iteration"
                    + (f"; filled inside `{inside[0]}` at places only known at run time" if inside else "")
                ),
                figures={
                    "delta_percent": round(pct, 2),
                    "delta_tokens": delta,
                    "delta_segments": names,
                    "delta_inside_template": bool(inside),
                },
            )
        )
    return findings


class DeltaMatchingRule(PatternRule):
    KIND = KIND
    detect = staticmethod(detect)

    VALID = (
        Valid("""
from openai import OpenAI
client = OpenAI()

def translate_all(documents):
    return [client.completions.create(model="m", prompt="Translate:\\n" + document) for document in documents]
"""),
    )
    INVALID = (
        Invalid(
            '''
from openai import OpenAI
client = OpenAI()
SYSTEM_PROMPT = """You write one-paragraph company profiles for an investor newsletter. Use a neutral tone,
mention the revenue and headcount, avoid superlatives, and finish with one sentence on the outlook."""

def profiles(template, variables):
    base = f"{SYSTEM_PROMPT}\\n{template}"
    out = []
    for v in variables:
        out.append(client.completions.create(model="m", prompt=base.format(**v)))
    return out
''',
            calls=("c1",),
            line=11,
            figures={
                "delta_percent": 8.36,
                "delta_tokens": 50,
                "delta_segments": ["template"],
                "delta_inside_template": True,
            },
        ),
    )
