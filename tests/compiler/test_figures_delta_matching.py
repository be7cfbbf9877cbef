"""DELTA_MATCHING's figures, threshold and wording, worked out by hand.

The detector's example programs check that it fires, not what it reports; the mutation run
(docs/mutation.md) showed that its delta share, its 25% limit, the segments it names and its message
could change without a test noticing.

A counter that counts the letter `w` gives each literal an exact, chosen token count. Run-time values
have the compiler's assumed sizes: a loop variable (`item`) 40 tokens, a clock reading
(`datetime.now()`) 12, a run-time template (`template`) 500 plus 50 for its `.format(**v)` fills, of
which only the 50 change per iteration.
"""

from __future__ import annotations


from compiler.api import CompileOptions, compile_source
from compiler.model import Finding, PatternKind
from compiler.patterns.delta_matching import MAX_DELTA_SHARE

from .hand_counts import count_w, line_of, words


def delta_matching(source: str) -> list[Finding]:
    result = compile_source(
        source, "agent.py", token_counter=count_w, options=CompileOptions(with_fixes=False)
    )
    return [f for f in result.patterns if f.kind is PatternKind.DELTA_MATCHING]


def loop_agent(policy_tokens: int) -> str:
    """A policy of `policy_tokens` tokens, then the loop variable (40): only the 40 change."""
    return f'''
POLICY = "{words(policy_tokens)}"

def run(items, call_generate):
    out = []
    for item in items:
        out.append(call_generate(POLICY + item))
    return out
'''


def test_the_limit_is_inclusive_at_exactly_a_quarter_of_the_prompt() -> None:
    """40 changing tokens of 160 (policy 120) = 25.0%: flagged. Of 159 (policy 119) = 25.16%: not."""
    assert MAX_DELTA_SHARE == 0.25
    [f] = delta_matching(loop_agent(120))
    assert f.figures == {
        "delta_percent": 25.0,
        "delta_tokens": 40,
        "delta_segments": ["item"],
        "delta_inside_template": False,
    }
    assert f.message == "c1: only 25.0% of the prompt (40 tokens: item) changes per iteration"
    assert delta_matching(loop_agent(119)) == []


def test_figures_message_and_line_just_under_the_limit() -> None:
    """40 of 161 tokens: 24.844720...% -> 24.84 in the figures, 24.8 in the message."""
    source = loop_agent(121)
    [f] = delta_matching(source)
    assert f.figures == {
        "delta_percent": 24.84,
        "delta_tokens": 40,
        "delta_segments": ["item"],
        "delta_inside_template": False,
    }
    assert f.message == "c1: only 24.8% of the prompt (40 tokens: item) changes per iteration"
    assert f.calls == ["c1"]
    assert f.line == line_of(source, "call_generate(POLICY")
    assert not f.anti_pattern


def test_several_changing_parts_are_added_up_and_named_in_order() -> None:
    """300 static tokens, the loop variable (40) and a clock reading (12): 52 of 352 change,
    14.772727...% -> 14.77 (14.8 in the message)."""
    source = f'''
from datetime import datetime
POLICY = "{words(300)}"

def run(items, call_generate):
    for item in items:
        call_generate(POLICY + item + f"{{datetime.now()}}")
'''
    [f] = delta_matching(source)
    assert f.figures == {
        "delta_percent": 14.77,
        "delta_tokens": 52,
        "delta_segments": ["item", "datetime.now()"],
        "delta_inside_template": False,
    }
    assert f.message == "c1: only 14.8% of the prompt (52 tokens: item, datetime.now()) changes per iteration"


def test_a_delta_filled_inside_a_run_time_template_says_so() -> None:
    """`base.format(**v)`: 10 policy tokens, `\\n` (0) and the template (500 + 50 for its fills): 560 tokens;
    only the fills (50) change: 8.928571...% -> 8.93 (8.9 in the message)."""
    source = f'''
POLICY = "{words(10)}"

def profiles(template, variables, call_generate):
    base = f"{{POLICY}}\\n{{template}}"
    for v in variables:
        call_generate(base.format(**v))
'''
    [f] = delta_matching(source)
    assert f.figures == {
        "delta_percent": 8.93,
        "delta_tokens": 50,
        "delta_segments": ["template"],
        "delta_inside_template": True,
    }
    assert f.message == (
        "c1: only 8.9% of the prompt (50 tokens: template) changes per iteration; "
        "filled inside `template` at places only known at run time"
    )


def test_calls_without_a_changing_part_in_an_agent_loop_are_skipped() -> None:
    """Outside a loop (a clock reading changes on every request, not per iteration of anything); in a
    loop with nothing that changes; in a loop with no tokens at all; in a request loop of `main()`
    (a separate request per record); in a loop where everything changes (40 of 40, over the limit).
    Each is skipped and the last call, which has the pattern, is still found: 40 of 200 = 20.0%."""
    source = f'''
from datetime import datetime
POLICY = "{words(160)}"

def no_loop(question, call_generate):
    return call_generate(POLICY + question + f"{{datetime.now()}}")

def nothing_changes(question, items, call_generate):
    for item in items:
        call_generate(POLICY + question)

def no_tokens(items, call_generate):
    for item in items:
        call_generate("abc")

def main(questions, call_generate):
    for q in questions:
        call_generate(POLICY + q)

def all_changes(items, call_generate):
    for item in items:
        call_generate(item)

def positive(items, call_generate):
    for item in items:
        call_generate(POLICY + item)
'''
    [f] = delta_matching(source)
    assert f.calls == ["c6"]
    assert f.figures["delta_percent"] == 20.0 and f.figures["delta_tokens"] == 40


REFINE_LOOP = f'''
POLICY = "{words(400)}"

def refine(question, items, call_generate):
    out = call_generate("Q: " + question, max_tokens=20)
    for item in items:
        out = call_generate(POLICY + out + item, max_tokens=20)
    return out
'''


def test_a_loop_carried_output_counts_as_changing() -> None:
    """400 policy tokens, `out` (max_tokens=20: 20 tokens) and the item (40). `out` is c1's output on the
    first iteration and c2's own output on every later one, so 20 + 40 = 60 of 460 tokens change:
    13.043478...% -> 13.04."""
    [f] = delta_matching(REFINE_LOOP)
    assert f.calls == ["c2"]
    assert f.figures == {
        "delta_percent": 13.04,
        "delta_tokens": 60,
        "delta_segments": ["out", "item"],
        "delta_inside_template": False,
    }
