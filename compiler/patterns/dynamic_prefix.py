"""DYNAMIC_PREFIX (anti-pattern): volatile or per-request text placed before long static text.

A timestamp, uuid or user value at the start of the prompt makes every request's prefix unique, so
the long static instructions after it are recomputed every time. Figures: what comes first, the
static tokens it hides, and the cacheable share before/after moving the dynamic part to the end.
"""

from __future__ import annotations

from compiler.model import Finding, PatternKind, SourceKind
from compiler.patterns.base import Context, Invalid, PatternRule, Valid, MIN_LONG_STATIC_TOKENS
from compiler.prefix import Unit, units_of

KIND = PatternKind.DYNAMIC_PREFIX


def restructure(units: list[Unit], first_static: int, lead: int) -> list[Unit]:
    """Move the leading units (before the long static text, after any role header) to the end."""
    moved = units[lead:first_static]
    return units[:lead] + units[first_static:] + [Unit("\n\n", 1)] + moved


def detect(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for call in ctx.calls:
        segs = call.segments
        first_dyn = next((i for i, s in enumerate(segs) if s.kind == "dynamic"), None)
        if first_dyn is None:
            continue
        long_static = next(
            (
                i
                for i in range(first_dyn + 1, len(segs))
                if segs[i].kind == "static"
                and not segs[i].synthetic
                and segs[i].tokens >= MIN_LONG_STATIC_TOKENS
            ),
            None,
        )
        if long_static is None:
            continue
        # Move only within the message holding the dynamic part: from its role header on.
        lead = first_dyn
        while lead > 0 and not segs[lead - 1].synthetic:
            lead -= 1
        if any(s.synthetic for s in segs[lead:long_static]):
            continue  # the long static text is in a later message; reordering messages is not ours to do
        dyn = segs[first_dyn]
        # The loss is across requests: simulate a second request on the cache the first one left.
        shapes = {call.id: restructure(units_of(segs), long_static, lead)}
        focus = {call.id}
        before_share = ctx.share_of(ctx.simulate({}, requests=2, focus=focus), {call.id}, request=1)
        after_share = ctx.share_of(ctx.simulate(shapes, requests=2, focus=focus), {call.id}, request=1)
        volatile = dyn.source is SourceKind.VOLATILE
        findings.append(
            Finding(
                kind=KIND,
                calls=[call.id],
                line=call.line,
                anti_pattern=True,
                message=(
                    f"{call.id}: {'volatile' if volatile else 'per-request'} `{dyn.name}` comes before "
                    f"{segs[long_static].tokens} tokens of static text, so no request can reuse them"
                ),
                figures={
                    "dynamic_segment": dyn.name or "",
                    "volatile": volatile,
                    "static_tokens_after": segs[long_static].tokens,
                    "cacheable_share_before": before_share,
                    "cacheable_share_after": after_share,
                    "measured_on": "a second request",
                },
            )
        )
    return findings


class DynamicPrefixRule(PatternRule):
    KIND = KIND
    detect = staticmethod(detect)

    VALID = (
        Valid('''
from datetime import datetime
from openai import OpenAI
client = OpenAI()
POLICY = """You are the support assistant of ACME. Follow the refund policy: refunds within 30 days with a
receipt, store credit within 90 days, nothing after that. Be polite, be brief, never promise exceptions,
and escalate to a human when the customer mentions a lawyer, a chargeback or a safety problem."""

def answer(question):
    prompt = f"{POLICY}\\nCustomer: {question}\\nCurrent time: {datetime.now().isoformat()}"
    return client.completions.create(model="m", prompt=prompt)
'''),
    )
    INVALID = (
        Invalid(
            '''
from datetime import datetime
from openai import OpenAI
client = OpenAI()
POLICY = """You are the support assistant of ACME. Follow the refund policy: refunds within 30 days with a
receipt, store credit within 90 days, nothing after that. Be polite, be brief, never promise exceptions,
and escalate to a human when the customer mentions a lawyer, a chargeback or a safety problem."""

def answer(question):
    prompt = f"Current time: {datetime.now().isoformat()}\\n{POLICY}\\nCustomer: {question}"
    return client.completions.create(model="m", prompt=prompt)
''',
            calls=("c1",),
            line=11,
            figures={
                "dynamic_segment": "datetime.now().isoformat()",
                "volatile": True,
                "static_tokens_after": 77,
                "cacheable_share_before": 0.0,
                "cacheable_share_after": 0.4776,
                "measured_on": "a second request",
            },
            fixed='''
from datetime import datetime
from openai import OpenAI
client = OpenAI()
POLICY = """You are the support assistant of ACME. Follow the refund policy: refunds within 30 days with a
receipt, store credit within 90 days, nothing after that. Be polite, be brief, never promise exceptions,
and escalate to a human when the customer mentions a lawyer, a chargeback or a safety problem."""

def answer(question):
    prompt = f"{POLICY}\\nCustomer: {question}\\n\\nCurrent time: {datetime.now().isoformat()}\\n"
    return client.completions.create(model="m", prompt=prompt)
''',
        ),
    )
