"""MAP_REDUCE: one call gathers the outputs of independent calls (N judges, then one verdict).

Not a chain: no map call continues from another, so they can all be in flight at once, and the reduce
call cannot start before the last of them returns. Figures: the map calls, how many there are (per
request, when they are separate call sites) and the prefix they share, which is prefilled once when they
are sent together.
"""

from __future__ import annotations

from compiler.model import Finding, PatternKind
from compiler.patterns.base import (
    MIN_SHARED_PREFIX_TOKENS,
    Context,
    Invalid,
    PatternRule,
    Valid,
    gathered_inputs,
    lcp_chars,
)

KIND = PatternKind.MAP_REDUCE


def detect(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    by_id = ctx.by_id
    for cid in ctx.order:
        maps = gathered_inputs(ctx, cid)
        if not maps:
            continue
        figures: dict[str, float | int | str | bool | list[str]] = {"maps": maps, "reduce": cid}
        loops = sorted(
            {
                loop.line
                for m in maps
                for loop in ctx.agent_loops(by_id[m])
                if loop.line not in {own.line for own in ctx.agent_loops(by_id[cid])}
            }
        )
        if loops:
            figures["map_loop_line"] = loops[0]
        else:
            figures["fan_in"] = len(maps)
        shared = _shared_prefix_tokens(ctx, maps)
        figures["maps_shared_prefix_tokens"] = shared
        if loops:
            where = f"every iteration of the loop at line {loops[0]}"
            why = "the iterations do not depend on each other: send them together"
        else:
            where = f"{len(maps)} calls"
            why = "none of them depends on another: send them together"
        if shared >= MIN_SHARED_PREFIX_TOKENS:
            why += f" (their common {shared}-token prefix is then prefilled once)"
        findings.append(
            Finding(
                kind=KIND,
                calls=[*maps, cid],
                line=by_id[cid].line,
                figures=figures,
                message=f"{cid} gathers the outputs of {', '.join(maps)} ({where}); {why}",
            )
        )
    return findings


def _shared_prefix_tokens(ctx: Context, maps: list[str]) -> int:
    """Tokens every map prompt starts with: across the map calls, or, for one call in a loop, the part
    before the first value that changes per iteration."""
    if len(maps) == 1:
        call = ctx.by_id[maps[0]]
        tokens = 0
        for seg in call.segments:
            if seg.varies_in_loop:
                break
            tokens += seg.tokens
        return tokens
    encodings = [ctx.encoding(m)[0] for m in maps]
    chars = min(lcp_chars(encodings[0], e) for e in encodings[1:])
    return min(ctx.tokens_upto(m, chars) for m in maps)


class MapReduceRule(PatternRule):
    KIND = KIND
    detect = staticmethod(detect)

    VALID = (
        Valid("""
import litellm

def pipeline(ticket):
    summary = litellm.completion(model="m", messages=[{"role": "user", "content": "Summarise: " + ticket}])
    label = litellm.completion(model="m", messages=[{"role": "user", "content": f"Label this summary: {summary}"}])
    return litellm.completion(model="m", messages=[{"role": "user", "content": f"Reply to {summary} as {label}"}])
"""),
        Valid("""
from openai import OpenAI

client = OpenAI()

def refine(draft, rounds):
    for _ in range(rounds):
        r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Improve: " + draft}])
        draft = r.choices[0].message.content
    final = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Polish: " + draft}])
    return final.choices[0].message.content
"""),
        Valid("""
from openai import OpenAI

client = OpenAI()

def route(question, legal):
    if legal:
        a = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Legal view: " + question}])
    else:
        a = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Plain view: " + question}])
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"Summarise {a}"}])
"""),
    )
    INVALID = (
        Invalid(  # shared prefix: the user header (4 tokens) and "Check the " (3)
            """
from openai import OpenAI

client = OpenAI()

def ask(p):
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": p}]).choices[0].message.content

def review(doc):
    a = ask("Check the grammar of:\\n" + doc)
    b = ask("Check the facts of:\\n" + doc)
    c = ask("Check the tone of:\\n" + doc)
    return ask("Merge these three reviews:\\n" + a + "\\n" + b + "\\n" + c)
""",
            calls=("c1", "c2", "c3", "c4"),
            line=13,
            figures={"maps": ["c1", "c2", "c3"], "reduce": "c4", "fan_in": 3, "maps_shared_prefix_tokens": 7},
        ),
        Invalid(
            """
from openai import OpenAI

client = OpenAI()

JUDGE = "You are a strict judge. Score the answer from 1 to 10 against one criterion and explain the score. "

def judge_all(answer, criteria):
    verdicts = []
    for c in criteria:
        r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": JUDGE + answer + c}])
        verdicts.append(r.choices[0].message.content)
    final = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Combine these verdicts:\\n" + "\\n".join(verdicts)}]
    )
    return final.choices[0].message.content
""",
            calls=("c1", "c2"),
            line=13,
            # before `c`, the part that changes: the user header (4), JUDGE (99 chars, 25) and `answer` (a
            # run-time value of the assumed small size, 40)
            figures={"maps": ["c1"], "reduce": "c2", "map_loop_line": 10, "maps_shared_prefix_tokens": 69},
        ),
    )
