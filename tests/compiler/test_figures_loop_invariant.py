"""LOOP_INVARIANT's figures, thresholds and wording, worked out by hand.

The detector's example programs check that it fires, not what it reports; the mutation run
(docs/mutation.md) showed that its invariant share, its 32-token and 30% thresholds, the invariant
tokens before the first changing part, the 90% "at the front" test, the loop line and its message could
change without a test noticing.

A counter that counts the letter `w` gives each literal an exact, chosen token count. Run-time values
have the compiler's assumed sizes: a loop variable (`item`, `cell`) or a parameter (`question`) 40
tokens, a clock reading 12, a call's output its `max_tokens`, a run-time template 500 plus 50 for its
`.format(**v)` fills (only those 50 change per iteration).
"""

from __future__ import annotations


from compiler.api import CompileOptions, compile_source
from compiler.model import Finding, PatternKind
from compiler.patterns.loop_invariant import MIN_INVARIANT_SHARE, MIN_INVARIANT_TOKENS

from .hand_counts import count_w, line_of, words


def loop_invariant(source: str) -> list[Finding]:
    result = compile_source(
        source, "agent.py", token_counter=count_w, options=CompileOptions(with_fixes=False)
    )
    return [f for f in result.patterns if f.kind is PatternKind.LOOP_INVARIANT]


def loop_agent(head: int, tail: int = 0) -> str:
    """`head` static tokens, the loop variable (40, changes), then `tail` static tokens."""
    return f'''
HEAD = "{words(head)}"
TAIL = "{words(tail)}"

def run(items, call_generate):
    out = []
    for item in items:
        out.append(call_generate(HEAD + item + TAIL))
    return out
'''


def test_invariant_tokens_threshold_is_inclusive_at_exactly_32() -> None:
    """32 invariant tokens of 72 (share 0.444..., well above 30%): flagged; 31 of 71: not."""
    assert MIN_INVARIANT_TOKENS == 32
    [f] = loop_invariant(loop_agent(32))
    assert f.figures["invariant_tokens"] == 32 and f.figures["invariant_share"] == round(32 / 72, 4)
    assert loop_invariant(loop_agent(31)) == []


def share_agent(output_tokens: int) -> str:
    """60 static tokens then the output of a call made in the same iteration (`max_tokens` tokens, so it
    changes every time). The first call's prompt (2 static tokens + the item) is too small to count."""
    return f'''
RUBRIC = "{words(60)}"

def run(items, call_generate):
    for item in items:
        draft = call_generate("w w " + item, max_tokens={output_tokens})
        call_generate(RUBRIC + draft)
'''


def test_share_threshold_is_inclusive_at_exactly_30_percent() -> None:
    """60 invariant of 200 tokens = 0.3 exactly: flagged; 60 of 201 = 0.2985...: not (60 >= 32 in both)."""
    assert MIN_INVARIANT_SHARE == 0.3
    source = share_agent(140)
    [f] = loop_invariant(source)
    assert f.calls == ["c2"]
    assert f.figures["invariant_share"] == 0.3 and f.figures["invariant_tokens"] == 60
    assert f.message == (
        f"c2 in the loop at line {line_of(source, 'for item')}: 30% of its prompt is the same "
        "on every iteration"
    )
    assert loop_invariant(share_agent(141)) == []


def test_figures_and_message_of_an_invariant_part_at_the_front() -> None:
    """90 static tokens, the item (40), 10 static: 100 invariant of 140 = 0.714285... -> 0.7143 (71%);
    90 before the changing part is exactly 90% of 100: at the front (the bound is inclusive)."""
    source = loop_agent(90, 10)
    [f] = loop_invariant(source)
    loop_line = line_of(source, "for item")
    assert f.figures == {
        "invariant_share": 0.7143,
        "invariant_tokens": 100,
        "invariant_prefix_tokens": 90,
        "at_front": True,
        "delta_positions_known": True,
        "loop_line": loop_line,
    }
    assert (
        f.message == f"c1 in the loop at line {loop_line}: 71% of its prompt is the same on every iteration"
    )
    assert f.calls == ["c1"]
    assert f.line == line_of(source, "call_generate(HEAD")
    assert not f.anti_pattern


def test_just_under_90_percent_before_the_change_is_not_at_the_front() -> None:
    """89 static, the item, 11 static: 100 invariant, 89 before the change (< 90): the message says how many."""
    source = loop_agent(89, 11)
    [f] = loop_invariant(source)
    assert f.figures["invariant_prefix_tokens"] == 89 and f.figures["invariant_tokens"] == 100
    assert f.figures["at_front"] is False
    assert f.message == (
        f"c1 in the loop at line {line_of(source, 'for item')}: 71% of its prompt is the same "
        "on every iteration; only 89 tokens of it come before the changing part"
    )


def test_the_prefix_adds_up_every_part_before_the_first_change_and_stops_there() -> None:
    """10 static, the question (40, the same every iteration), 10 static: 60 before the first change
    (the cell, 40); after it a clock reading (12) and 30 static. Invariant 90 of 142 = 0.633802... ->
    0.6338 (63%); 60 < 81 (90% of 90): not at the front. Two nested loops: the line is the inner one's."""
    source = f'''
from datetime import datetime
A = "{words(10)}"
B = "{words(10)}"
C = "{words(30)}"

def run(question, rows, call_generate):
    for row in rows:
        for cell in row:
            call_generate(A + question + B + cell + f"{{datetime.now()}}" + C)
'''
    [f] = loop_invariant(source)
    inner = line_of(source, "for cell")
    assert f.figures == {
        "invariant_share": 0.6338,
        "invariant_tokens": 90,
        "invariant_prefix_tokens": 60,
        "at_front": False,
        "delta_positions_known": True,
        "loop_line": inner,
    }
    assert f.message == (
        f"c1 in the loop at line {inner}: 63% of its prompt is the same on every iteration; "
        "only 60 tokens of it come before the changing part"
    )


def test_a_prompt_with_nothing_that_changes_is_all_invariant_and_all_at_the_front() -> None:
    """The same 50 tokens on every iteration (the question is the same for all items): nothing changes, so
    all 50 are invariant (share 1.0, 100%), all before any change, and where the changes sit is known
    (there are none)."""
    source = f'''
POLICY = "{words(10)}"

def run(question, items, call_generate):
    for item in items:
        call_generate(POLICY + question)
'''
    [f] = loop_invariant(source)
    loop_line = line_of(source, "for item")
    assert f.figures == {
        "invariant_share": 1.0,
        "invariant_tokens": 50,
        "invariant_prefix_tokens": 50,
        "at_front": True,
        "delta_positions_known": True,
        "loop_line": loop_line,
    }
    assert (
        f.message == f"c1 in the loop at line {loop_line}: 100% of its prompt is the same on every iteration"
    )


def test_a_delta_filled_inside_a_run_time_template_has_unknown_positions() -> None:
    """10 policy tokens, `\\n` (0), the template (550, of which the 50 fills change): 510 of 560 invariant
    = 0.910714... -> 0.9107 (91%); only the 10 policy tokens are known to come first."""
    source = f'''
POLICY = "{words(10)}"

def profiles(template, variables, call_generate):
    base = f"{{POLICY}}\\n{{template}}"
    for v in variables:
        call_generate(base.format(**v))
'''
    [f] = loop_invariant(source)
    assert f.figures == {
        "invariant_share": 0.9107,
        "invariant_tokens": 510,
        "invariant_prefix_tokens": 10,
        "at_front": False,
        "delta_positions_known": False,
        "loop_line": line_of(source, "for v in"),
    }


def test_calls_outside_agent_loops_or_without_tokens_do_not_stop_the_search() -> None:
    """A long prompt outside any loop; one in a `main()` request loop (a separate request per record);
    one in a loop with no tokens at all; one in a loop with too little invariant text (10 tokens): each
    is skipped, and the last call is still found (100 of 140)."""
    source = f'''
POLICY = "{words(100)}"
SHORT = "{words(10)}"

def no_loop(question, call_generate):
    return call_generate(POLICY + question)

def main(questions, call_generate):
    for q in questions:
        call_generate(POLICY + q)

def no_tokens(items, call_generate):
    for item in items:
        call_generate("abc")

def too_little(items, call_generate):
    for item in items:
        call_generate(SHORT + item)

def positive(items, call_generate):
    for item in items:
        call_generate(POLICY + item)
'''
    [f] = loop_invariant(source)
    assert f.calls == ["c5"]
    assert f.figures["invariant_share"] == round(100 / 140, 4)


REFINE_LOOP = f'''
POLICY = "{words(400)}"

def refine(question, items, call_generate):
    out = call_generate("Q: " + question, max_tokens=20)
    for item in items:
        out = call_generate(POLICY + out + item, max_tokens=20)
    return out
'''


def test_a_loop_carried_output_is_not_invariant() -> None:
    """400 policy tokens, `out` (max_tokens=20: 20 tokens) and the item (40). `out` is c1's output on the
    first iteration and c2's own output on every later one: only the policy is the same every time,
    400 of 460 = 0.869565... -> 0.8696 (87%), all of it before the first change."""
    source = REFINE_LOOP
    [f] = loop_invariant(source)
    assert f.calls == ["c2"]
    assert f.figures == {
        "invariant_share": 0.8696,
        "invariant_tokens": 400,
        "invariant_prefix_tokens": 400,
        "at_front": True,
        "delta_positions_known": True,
        "loop_line": line_of(source, "for item"),
    }
