"""MISPLACED_SHARED_CONTEXT (anti-pattern): a large input several calls share, placed after text that
differs between them, so no prefix cache can reuse it (the document of the spec's test case 1).

The fix puts the shared input right after the prefix the calls already have in common, so every call
after the first reuses it. Figures: the input, its (assumed) size, and the cacheable share of the
calls after the first, before and after the fix.
"""

from __future__ import annotations

from collections import defaultdict

from compiler.model import Finding, PatternKind, SourceKind
from compiler.patterns.base import (
    Context,
    Invalid,
    PatternRule,
    Valid,
    MIN_LARGE_INPUT_TOKENS,
    compatible,
    lcp_chars,
    split_units,
)
from compiler.prefix import MARK_CLOSE, MARK_OPEN, Unit, units_of

KIND = PatternKind.MISPLACED_SHARED_CONTEXT


def word_boundary(enc: str, n: int) -> int:
    """Back off to just after the last line break, else the last whitespace (or a run-time value), so the
    moved input lands between lines of the instructions, never inside one ("List the {contract} parties")
    or inside a word. Same rule as the rewrite's `codemods._word_cut`."""
    floor = enc.rfind(MARK_CLOSE, 0, n) + 1
    line = enc.rfind("\n", floor, n)
    if line != -1:
        return line + 1
    for i in range(n - 1, floor - 1, -1):
        if enc[i].isspace():
            return i + 1
    return floor


def _offset(ctx: Context, cid: str, marker: str) -> int:
    """Where the input starts in the call's encoding (by unit: a value that changes every iteration is
    encoded with the iteration, so its text there is not the marker)."""
    return next((start for start, _, unit in ctx.encoding(cid)[1] if unit.text == marker), -1)


def reorder(ctx: Context, group: list[str], key: str) -> dict[str, list[Unit]]:
    """Each call of the group as: common prefix, the shared input, a blank line, the rest in order."""
    encs = [ctx.encoding(c)[0] for c in group]
    common = word_boundary(encs[0], min(lcp_chars(encs[0], e) for e in encs[1:]))
    marker = MARK_OPEN + key + MARK_CLOSE
    shapes: dict[str, list[Unit]] = {}
    for cid in group:
        units = units_of(ctx.by_id[cid].segments)
        shared = next(u for u in units if u.text == marker)
        head, rest = split_units(units, common, ctx.tok)
        # Only the first copy moves, as in the rewrite (codemods._misplaced_edits): a call that sends the
        # input twice still sends it twice.
        first = next((i for i, u in enumerate(rest) if u.text == marker), None)
        if first is not None:
            rest = rest[:first] + rest[first + 1 :]
        shapes[cid] = head + [shared, Unit("\n\n", 1)] + rest
    return shapes


def detect(ctx: Context) -> list[Finding]:
    holders: dict[str, list[str]] = defaultdict(list)
    sizes: dict[str, tuple[str, int]] = {}
    for call in ctx.calls:
        for s in call.segments:
            if (
                s.kind == "dynamic"
                and s.key
                and s.tokens >= MIN_LARGE_INPUT_TOKENS
                and s.source is not SourceKind.VOLATILE
                and call.id not in holders[s.key]
            ):
                holders[s.key].append(call.id)
                sizes[s.key] = (s.name or s.key, s.tokens)
    findings: list[Finding] = []
    by_id = ctx.by_id
    for key, holders_of_key in holders.items():
        group = [c.id for c in compatible([by_id[c] for c in holders_of_key])]
        if len(group) < 2:
            continue
        marker = MARK_OPEN + key + MARK_CLOSE
        encs = {c: ctx.encoding(c)[0] for c in group}
        common = min(lcp_chars(encs[group[0]], encs[c]) for c in group[1:])
        misplaced = [c for c in group if _offset(ctx, c, marker) > common]
        if not misplaced:
            continue
        shapes = reorder(ctx, group, key)
        focus = set(group)
        before = ctx.simulate({}, focus=focus)
        after = ctx.simulate(shapes, focus=focus)
        first = next(c for c in ctx.order if c in group)
        later = set(group) - {first}
        name, tokens = sizes[key]
        before_share = ctx.share_of(before, later)
        after_share = ctx.share_of(after, later)
        if after_share <= before_share:
            continue  # no claim without its evidence: the move would gain these calls nothing
        findings.append(
            Finding(
                kind=KIND,
                calls=sorted(group, key=lambda c: int(c[1:])),
                anti_pattern=True,
                line=ctx.by_id[misplaced[0]].line,
                message=(
                    f"`{name}` (~{tokens} tokens) is shared by {', '.join(group)} but comes after "
                    f"call-specific text in {', '.join(misplaced)}; moving it up raises the cacheable "
                    f"share of {', '.join(sorted(later, key=lambda c: int(c[1:])))} from "
                    f"{before_share:.0%} to {after_share:.0%}"
                ),
                figures={
                    "input": name,
                    "input_key": key,
                    "input_tokens": tokens,
                    "misplaced_in": misplaced,
                    "cacheable_share_before": before_share,
                    "cacheable_share_after": after_share,
                },
            )
        )
    return findings


class MisplacedSharedContextRule(PatternRule):
    KIND = KIND
    detect = staticmethod(detect)

    VALID = (
        Valid("""
from openai import OpenAI
client = OpenAI()
SYSTEM_PROMPT = "You are a careful contract reviewer."

def review(contract):
    parties = client.completions.create(model="m", prompt=f"{SYSTEM_PROMPT}\\n{contract}\\nList the parties.")
    risks = client.completions.create(model="m", prompt=f"{SYSTEM_PROMPT}\\n{contract}\\nList the risks for {parties}.")
    return risks
"""),
    )
    INVALID = (
        Invalid(
            """
from openai import OpenAI
client = OpenAI()
SYSTEM_PROMPT = "You are a careful contract reviewer."

def review(contract):
    parties = client.completions.create(model="m", prompt=f"{SYSTEM_PROMPT}\\nList the parties in:\\n{contract}")
    risks = client.completions.create(model="m", prompt=f"{SYSTEM_PROMPT}\\nList the risks for {parties} in:\\n{contract}")
    return risks
""",
            calls=("c1", "c2"),
            line=7,
            figures={
                "input": "contract",
                "input_key": "param:review:contract",
                "input_tokens": 750,
                "misplaced_in": ["c1", "c2"],
                "cacheable_share_before": 0.0,
                "cacheable_share_after": 0.8192,
            },
            fixed="""
from openai import OpenAI
client = OpenAI()
SYSTEM_PROMPT = "You are a careful contract reviewer."

def review(contract):
    parties = client.completions.create(model="m", prompt=f"{SYSTEM_PROMPT}\\nContract:\\n{contract}\\n\\nList the parties in the contract above.\\n")
    risks = client.completions.create(model="m", prompt=f"{SYSTEM_PROMPT}\\nContract:\\n{contract}\\n\\nList the risks for {parties} in the contract above.\\n")
    return risks
""",
        ),
    )
