"""DYNAMIC_PREFIX edges left by tests/compiler/test_pattern_boundaries.py: the rewrite's exact units, and
the figures of a chat prompt with text between the role header and the dynamic part.

A counter that counts the letter `w` gives each literal an exact, chosen token count; the timestamp
is assumed 12 tokens, the question 40; role headers are 4 tokens each. Shares are per vLLM block of
16 tokens, measured on a second request.
"""

from __future__ import annotations

from compiler.api import CompileOptions, compile_source
from compiler.model import PatternKind
from compiler.patterns.dynamic_prefix import restructure
from compiler.prefix import MARK_CLOSE, MARK_OPEN, Unit

from .hand_counts import count_w, words


def test_restructure_moves_the_lead_behind_the_static_text_after_a_blank_line() -> None:
    header = Unit("<|user|>\n", 4, atomic=True)
    lead_text = Unit("Now: ", 1)
    now = Unit(MARK_OPEN + "now" + MARK_CLOSE, 12, dynamic=True, atomic=True)
    policy = Unit("|" + words(64), 64)
    question = Unit(MARK_OPEN + "q" + MARK_CLOSE, 40, dynamic=True, atomic=True)
    units = [header, lead_text, now, policy, question]
    # From the lead (1) to the long static text (3): "Now: " and the timestamp move to the end.
    assert restructure(units, 3, 1) == [header, policy, question, Unit("\n\n", 1), lead_text, now]
    # With no header (lead 0), everything before the static text moves.
    assert restructure(units[1:], 2, 0) == [policy, question, Unit("\n\n", 1), lead_text, now]


def test_chat_text_before_the_dynamic_part_moves_with_it() -> None:
    """User message: 16 tokens of text, the timestamp, "|" + 200 tokens of policy, the question. The fix
    moves the 16 tokens with the timestamp, from the user header on. Prompt: 4 (system header) + 0
    ("Be brief.") + 4 (user header) + 16 + 12 + 200 + 40 = 276. Before: a second request reuses the
    headers and the 16 tokens (24), 16 in blocks: 16 / 276 = 0.05797... -> 0.058. After (277 tokens
    with the "\\n\\n"): it reuses 4 + 0 + 4 + 200 = 208, all in whole blocks: 208 / 277 = 0.75090...
    -> 0.7509 (moving the timestamp alone would leave the 16 tokens in front: 224 / 277)."""
    source = f'''
from datetime import datetime
from openai import OpenAI
client = OpenAI()
POLICY = "{words(200)}"
HEAD = "{words(16)}"

def answer(question):
    return client.chat.completions.create(model="m", messages=[
        {{"role": "system", "content": "Be brief."}},
        {{"role": "user", "content": f"{{HEAD}}{{datetime.now().isoformat()}}|" + POLICY + question}}])
'''
    result = compile_source(
        source, "agent.py", token_counter=count_w, options=CompileOptions(with_fixes=False)
    )
    assert [s.tokens for s in result.calls[0].segments] == [4, 0, 4, 16, 12, 200, 40]
    [f] = [f for f in result.patterns if f.kind is PatternKind.DYNAMIC_PREFIX]
    assert f.figures == {
        "dynamic_segment": "datetime.now().isoformat()",
        "volatile": True,
        "static_tokens_after": 200,
        "cacheable_share_before": 0.058,
        "cacheable_share_after": 0.7509,
        "measured_on": "a second request",
    }
