"""SHARED_PREFIX: several calls whose prompts start the same way, so one cached prefix serves them all.

Figure: the prefix overlap ratio (shared prefix tokens / mean prompt tokens of the group); the spec's
target is > 60%.
"""

from __future__ import annotations

import itertools

from compiler.model import Finding, PatternKind
from compiler.patterns.base import (
    Context,
    Invalid,
    PatternRule,
    Valid,
    MIN_SHARED_PREFIX_TOKENS,
    compatible,
    lcp_chars,
    readable,
)

KIND = PatternKind.SHARED_PREFIX


def detect(ctx: Context) -> list[Finding]:
    ids = [c.id for c in ctx.calls]
    if len(ids) < 2:
        return []
    ordered = sorted(ids, key=lambda cid: ctx.encoding(cid)[0])
    groups: list[tuple[list[str], int]] = []  # members, shared chars
    current: list[str] = [ordered[0]]
    shared = -1
    for prev, cid in itertools.pairwise(ordered):
        chars = lcp_chars(ctx.encoding(prev)[0], ctx.encoding(cid)[0])
        if ctx.tokens_upto(cid, chars) >= MIN_SHARED_PREFIX_TOKENS:
            current.append(cid)
            shared = chars if shared < 0 else min(shared, chars)
            continue
        if len(current) > 1:
            groups.append((current, shared))
        current, shared = [cid], -1
    if len(current) > 1:
        groups.append((current, shared))

    findings: list[Finding] = []
    by_id = ctx.by_id
    for members, chars in groups:
        members.sort(key=lambda c: int(c[1:]))
        members = [c.id for c in compatible([by_id[c] for c in members])]
        if len(members) < 2:
            continue
        prefix_tokens = min(ctx.tokens_upto(cid, chars) for cid in members)
        mean = sum(by_id[c].prompt_tokens for c in members) / len(members)
        ratio = round(prefix_tokens / mean, 4) if mean else 0.0
        preview = readable(ctx.encoding(members[0])[0][:chars])
        findings.append(
            Finding(
                kind=KIND,
                calls=members,
                line=by_id[members[0]].line,
                message=(
                    f"{len(members)} calls share a {prefix_tokens}-token prefix "
                    f"({ratio:.0%} of their mean prompt): {preview}"
                ),
                figures={
                    "prefix_tokens": prefix_tokens,
                    "overlap_ratio": ratio,
                    "prefix_preview": preview,
                    "above_target": ratio > 0.6,
                },
            )
        )
    return findings


class SharedPrefixRule(PatternRule):
    KIND = KIND
    detect = staticmethod(detect)

    VALID = (
        Valid("""
from openai import OpenAI
client = OpenAI()

def analyse(filing, question):
    a = client.completions.create(model="m", prompt=filing + " summarise this")
    b = client.completions.create(model="m", prompt=question + " answer this")
    return a, b
"""),
        Valid(  # they share "Summarise", far below two cache blocks: nothing worth warming
            """
from openai import OpenAI
client = OpenAI()

def analyse(filing):
    a = client.completions.create(model="m", prompt="Summarise: " + filing)
    b = client.completions.create(model="m", prompt="Summarise briefly: " + filing)
    return a, b
"""
        ),
    )
    INVALID = (
        Invalid(
            '''
from openai import OpenAI
client = OpenAI()
SYSTEM = """You are a meticulous financial analyst. You read filings carefully, you quote numbers exactly,
you never speculate beyond the text, and you answer in short, precise sentences. Always cite the section."""

def analyse(filing):
    a = client.chat.completions.create(model="m", messages=[{"role": "system", "content": SYSTEM},
                                                           {"role": "user", "content": "Summarise: " + filing}])
    b = client.chat.completions.create(model="m", messages=[{"role": "system", "content": SYSTEM},
                                                           {"role": "user", "content": "List risks: " + filing}])
    return a, b
''',
            calls=("c1", "c2"),
            line=8,
            figures={
                "prefix_tokens": 58,
                "overlap_ratio": 0.5743,
                "prefix_preview": "<|system|>\\nYou are a meticulous financial analyst. You read filings carefull...",
                "above_target": False,
            },
        ),
    )
