"""MISPLACED_SHARED_CONTEXT's figures, threshold and rewrite, worked out by hand.

The detector's example programs check that it fires, not what it reports; the mutation run
(docs/mutation.md) showed that its figures, its 64-token threshold, which calls it names and the
rewrite its "after" figure is measured on could change without a test noticing.

A counter that counts the letter `w` gives each literal an exact, chosen token count. Run-time values
have the compiler's assumed sizes: `contract`, `report`, `doc` (large inputs) 750 tokens, a call's
output 150 or its `max_tokens`. Shares are per vLLM block of 16 tokens, the last prompt token never
reused.
"""

from __future__ import annotations

import pytest

from compiler.api import CompileOptions, compile_source, parse
from compiler.callsites import DEFAULT_NAME_PATTERNS
from compiler.dag import build_dag
from compiler.interpreter import Interpreter
from compiler.model import Finding, PatternKind
from compiler.patterns.base import MIN_LARGE_INPUT_TOKENS, Context
from compiler.patterns.misplaced_shared_context import reorder, word_boundary
from compiler.prefix import MARK_CLOSE, MARK_OPEN, PrefixSimulator, Unit
from compiler.tokens import Tokenizer

from .hand_counts import count_w, line_of, words

O, C = MARK_OPEN, MARK_CLOSE


SYSTEM = words(40)  # 79 characters, 40 tokens


def misplaced(source: str) -> list[Finding]:
    result = compile_source(
        source, "agent.py", token_counter=count_w, options=CompileOptions(with_fixes=False)
    )
    return [f for f in result.patterns if f.kind is PatternKind.MISPLACED_SHARED_CONTEXT]


def context_of(source: str) -> Context:
    """The detectors' context, built as `compile_source` builds it."""
    tok = Tokenizer(count_w)
    dag = build_dag(Interpreter(parse(source, "a.py"), DEFAULT_NAME_PATTERNS, source).run(), tok)
    sim = PrefixSimulator(tok)
    return Context(dag.calls, dag.edges, dag.order, dag.graph, tok, sim, sim.run(dag.calls, dag.order))


def agent(body: str, **constants: str) -> str:
    consts = "\n".join(f'{k} = "{v}"' for k, v in {"SYSTEM": SYSTEM, **constants}.items())
    return f"""
from openai import OpenAI
client = OpenAI()
{consts}

{body}"""


# --- word_boundary ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("enc", "n", "expected"),
    [
        ("ab cd", 5, 3),  # back to just after the space
        ("ab cd", 4, 3),
        ("ab cd", 3, 3),  # the character before the cut is the space: already on a boundary
        ("ab cd", 2, 0),  # no space before the cut: the start
        ("abcd", 3, 0),
        ("ab\ncd", 4, 3),  # any whitespace
        # A line break wins over a later space: the input goes between lines, not into one.
        ("a\nb cd", 5, 2),
        ("ab cd\nef gh", 11, 6),
        ("ab cd\nef gh", 5, 3),  # no line break before the cut: the last space
        ("a\nb\nc d", 7, 4),  # the last line break, not the first
        ("a\n" + O + "k" + C + "bc d", 9, 8),  # a line break before a run-time value does not count
        # After a run-time value: its close mark is a boundary too (marker at 0..2, "abc d" from 3).
        (O + "k" + C + "abc d", 8, 7),
        (O + "k" + C + "abc d", 6, 3),
        # A space right after the value (index 3): cut after it, at 4.
        (O + "k" + C + " abc", 6, 4),
        # Two values: the last close before the cut counts (8), not the first (3).
        (O + "a" + C + " x" + O + "b" + C + "yz", 10, 8),
        # A value after the cut does not count.
        ("ab cd" + O + "k" + C, 4, 3),
        ("abcd" + O + "k" + C, 3, 0),
    ],
)
def test_word_boundary(enc: str, n: int, expected: int) -> None:
    assert word_boundary(enc, n) == expected


# --- the figures ------------------------------------------------------------------------------------------


def test_figures_and_message_of_the_example() -> None:
    """Both calls start with SYSTEM + "\\nList the " (40 tokens) and end with the contract (750).
    Before: c2 (40 + 150 for `parties` + 750 = 940 tokens) reuses c1's 40, 32 in whole blocks:
    32 / 940 = 0.03404... -> 0.034. After: both are SYSTEM + "\\n" (the cut goes back to the line break; still 40
    tokens), the contract, "\\n\\n" (1 token), the rest; c2 (941 tokens) reuses 40 + 750 + 1 = 791, 784 in whole blocks: 784 / 941 =
    0.83315... -> 0.8332."""
    source = agent("""def review(contract):
    parties = client.completions.create(model="m", prompt=f"{SYSTEM}\\nList the parties in:\\n{contract}")
    risks = client.completions.create(model="m", prompt=f"{SYSTEM}\\nList the risks for {parties} in:\\n{contract}")
    return risks
""")
    [f] = misplaced(source)
    assert f.figures == {
        "input": "contract",
        "input_key": "param:review:contract",
        "input_tokens": 750,
        "misplaced_in": ["c1", "c2"],
        "cacheable_share_before": 0.034,
        "cacheable_share_after": 0.8332,
    }
    assert f.message == (
        "`contract` (~750 tokens) is shared by c1, c2 but comes after call-specific text in "
        "c1, c2; moving it up raises the cacheable share of c2 from 3% to 83%"
    )
    assert f.calls == ["c1", "c2"] and f.anti_pattern
    assert f.line == line_of(source, "parties =")


def test_the_rewrite_cuts_shared_text_at_a_word_boundary() -> None:
    """ "warranties" and "warrants" share "warrant", on one line: the common prefix is cut back to the last
    space, "List the ", and the literal unit is split there (the tokens of both halves recounted:
    "warranties in:\\n" has 1)."""
    source = agent("""def review(contract, parties):
    a = client.completions.create(model="m", prompt=f"{SYSTEM} List the warranties in:\\n{contract}")
    b = client.completions.create(model="m", prompt=f"{SYSTEM} List the warrants of {parties} in:\\n{contract}")
    return a, b
""")
    ctx = context_of(source)
    contract = Unit(O + "param:review:contract" + C, 750, dynamic=True, atomic=True)
    parties = Unit(O + "param:review:parties" + C, 40, dynamic=True, atomic=True)
    head = Unit(SYSTEM + " List the ", 40)
    assert reorder(ctx, ["c1", "c2"], "param:review:contract") == {
        "c1": [head, contract, Unit("\n\n", 1), Unit("warranties in:\n", 1)],
        "c2": [head, contract, Unit("\n\n", 1), Unit("warrants of ", 1), parties, Unit(" in:\n", 0)],
    }
    # Before: c2 (41 + 40 + 0 + 750 = 831) reuses SYSTEM + " List the warrant" (41), 32 in blocks:
    # 0.03850... After: c2 is 832 tokens and reuses 40 + 750 + 1 + 1 ("warrant") = 792, 784 in blocks:
    # 784 / 832 = 0.94230... -> 0.9423.
    [f] = misplaced(source)
    assert f.figures["cacheable_share_before"] == 0.0385
    assert f.figures["cacheable_share_after"] == 0.9423


def test_the_rewrite_moves_the_input_between_lines_not_into_one() -> None:
    """The shared text has a line break: the cut goes back to it, so the instruction "List the parties in:"
    stays whole after the contract, as the rewrite writes it (the INVALID example of the rule checks the
    rewritten file). The figures are those of `test_figures_and_message_of_the_example`: "List the " counts no
    tokens here, so the shared prefix is 40 tokens either way."""
    source = agent("""def review(contract):
    parties = client.completions.create(model="m", prompt=f"{SYSTEM}\\nList the parties in:\\n{contract}")
    risks = client.completions.create(model="m", prompt=f"{SYSTEM}\\nList the risks for {parties} in:\\n{contract}")
    return risks
""")
    shapes = reorder(context_of(source), ["c1", "c2"], "param:review:contract")
    assert [u.text for u in shapes["c1"]][:3] == [SYSTEM + "\n", O + "param:review:contract" + C, "\n\n"]
    assert shapes["c1"][3].text == "List the parties in:\n"
    assert shapes["c2"][3].text == "List the risks for "


def test_input_size_threshold_is_inclusive_at_exactly_min_large_input_tokens() -> None:
    """The shared input is a call's output, assumed `max_tokens` long: 64 is large enough, 63 is not.
    At 64: before, c3 (40 + 64 = 104 tokens) reuses SYSTEM + "\\n" (40), 32 in blocks: 0.30769... ->
    0.3077; after, c3 (105) reuses 40 + 64 + 1 = 105, but the last token is recomputed: 104, 96 in
    blocks: 96 / 105 = 0.91428... -> 0.9143."""
    assert MIN_LARGE_INPUT_TOKENS == 64

    def source(max_tokens: int) -> str:
        return agent(f"""def review():
    summary = client.completions.create(model="m", prompt="Summarise w", max_tokens={max_tokens})
    a = client.completions.create(model="m", prompt=f"{{SYSTEM}}\\nA: {{summary}}")
    b = client.completions.create(model="m", prompt=f"{{SYSTEM}}\\nB: {{summary}}")
    return a, b
""")

    [f] = misplaced(source(64))
    assert f.figures == {
        "input": "summary",
        "input_key": "call:0",
        "input_tokens": 64,
        "misplaced_in": ["c2", "c3"],
        "cacheable_share_before": 0.3077,
        "cacheable_share_after": 0.9143,
    }
    assert f.calls == ["c2", "c3"]
    assert misplaced(source(63)) == []


def test_a_call_with_the_input_right_after_the_common_prefix_is_not_misplaced() -> None:
    """Both start with SYSTEM + "\\n" (80 characters); c1's contract starts exactly there, c2's later:
    only c2 is named, and the finding points at c2's line. Before: c2 (790 tokens) reuses 40, 32 in
    blocks: 0.04050... -> 0.0405. After: c2 (791) reuses 40 + 750 + 1 = 791, 784 in blocks: 0.99115...
    -> 0.9912."""
    source = agent("""def review(contract):
    a = client.completions.create(model="m", prompt=f"{SYSTEM}\\n{contract}\\nList the parties.")
    b = client.completions.create(model="m", prompt=f"{SYSTEM}\\nList the risks in:\\n{contract}")
    return a, b
""")
    [f] = misplaced(source)
    assert f.figures["misplaced_in"] == ["c2"]
    assert f.line == line_of(source, "List the risks")
    assert f.figures["cacheable_share_before"] == 0.0405
    assert f.figures["cacheable_share_after"] == 0.9912
    assert "comes after call-specific text in c2;" in f.message


def test_a_call_whose_first_copy_is_in_place_is_not_misplaced_by_a_later_copy() -> None:
    """c1 sends the contract right after SYSTEM + "\\n" and quotes it again later: where it first
    appears counts, so only c2 is misplaced. c2's figures are as in the test above: 0.0405 and 0.9912."""
    source = agent("""def review(contract):
    a = client.completions.create(model="m", prompt=f"{SYSTEM}\\n{contract}\\nAgain: {contract}")
    b = client.completions.create(model="m", prompt=f"{SYSTEM}\\nList the risks in:\\n{contract}")
    return a, b
""")
    [f] = misplaced(source)
    assert f.figures["misplaced_in"] == ["c2"]
    assert f.figures["cacheable_share_before"] == 0.0405
    assert f.figures["cacheable_share_after"] == 0.9912


def test_inputs_without_the_pattern_do_not_stop_the_search() -> None:
    """`doc` is sent by one call only, `report` right after the common prefix (well placed): neither is
    reported, and `contract`, which comes after "List the parties/risks in:", still is. Before: c3
    (40 + 750 + 0 + 750 = 1540 tokens) reuses SYSTEM, the report and "\\nList the " = 790, 784 in blocks:
    0.50909... -> 0.5091. After: c3 (1541) reuses all but the last token, 1536 in blocks: 0.99675... ->
    0.9968."""
    source = agent("""def review(doc, report, contract):
    s = client.completions.create(model="m", prompt=f"Summarise w:\\n{doc}")
    a = client.completions.create(model="m", prompt=f"{SYSTEM}\\n{report}\\nList the parties in:\\n{contract}")
    b = client.completions.create(model="m", prompt=f"{SYSTEM}\\n{report}\\nList the risks in:\\n{contract}")
    return s, a, b
""")
    [f] = misplaced(source)
    assert f.figures == {
        "input": "contract",
        "input_key": "param:review:contract",
        "input_tokens": 750,
        "misplaced_in": ["c2", "c3"],
        "cacheable_share_before": 0.5091,
        "cacheable_share_after": 0.9968,
    }


def test_figures_are_measured_on_the_group_alone() -> None:
    """c1 sends SYSTEM + "\\nList the " + 16 more tokens, more of c3's prompt than c2 does, but holds no
    contract: the figures are c3's against c2 only. Before: c3 (56 + 750 = 806 tokens) reuses c2's 40,
    32 in blocks: 0.03970... -> 0.0397 (0.0596 if c1 counted). After: c3 (807) reuses 40 + 750 + 1 =
    791, 784 in blocks: 0.97149... -> 0.9715. c2 runs first of the group: the share is c3's alone."""
    source = agent(
        """def review(contract):
    warm = client.completions.create(model="m", prompt=f"{SYSTEM}\\nList the {WARM} risks")
    a = client.completions.create(model="m", prompt=f"{SYSTEM}\\nList the parties in:\\n{contract}")
    b = client.completions.create(model="m", prompt=f"{SYSTEM}\\nList the {WARM} risks in:\\n{contract}")
    return warm, a, b
""",
        WARM=words(16),
    )
    [f] = misplaced(source)
    assert f.calls == ["c2", "c3"]
    assert f.figures["cacheable_share_before"] == 0.0397
    assert f.figures["cacheable_share_after"] == 0.9715
    assert f.message.endswith("moving it up raises the cacheable share of c3 from 4% to 97%")


def test_calls_are_listed_in_call_number_order_from_c2_to_c10() -> None:
    """c1, c2 and c10 send the contract after "List the a/b/c in:"; c3..c9 send short prompts. Listed
    c1, c2, c10 (by number, not as text, where "c10" < "c2"). Before: c2 and c10 (790 each) reuse 40,
    32 in blocks: 64 / 1580 = 0.0405; after: 784 of 791 each: 0.9912."""
    fillers = "\n".join(
        f'    f{i} = client.completions.create(model="m", prompt="f{i}")' for i in range(3, 10)
    )
    source = agent(f"""def review(contract):
    a = client.completions.create(model="m", prompt=f"{{SYSTEM}}\\nList the a in:\\n{{contract}}")
    b = client.completions.create(model="m", prompt=f"{{SYSTEM}}\\nList the b in:\\n{{contract}}")
{fillers}
    c = client.completions.create(model="m", prompt=f"{{SYSTEM}}\\nList the c in:\\n{{contract}}")
    return a, b, c
""")
    [f] = misplaced(source)
    assert f.calls == ["c1", "c2", "c10"]
    assert f.figures["misplaced_in"] == ["c1", "c2", "c10"]
    assert f.figures["cacheable_share_before"] == 0.0405
    assert f.figures["cacheable_share_after"] == 0.9912
    assert f.message == (
        "`contract` (~750 tokens) is shared by c1, c2, c10 but comes after call-specific text "
        "in c1, c2, c10; moving it up raises the cacheable share of c2, c10 from 4% to 99%"
    )


def test_calls_that_never_run_together_are_not_a_group() -> None:
    source = agent("""def review(flag, contract):
    if flag:
        return client.completions.create(model="m", prompt=f"{SYSTEM}\\nList the parties in:\\n{contract}")
    else:
        return client.completions.create(model="m", prompt=f"{SYSTEM}\\nList the risks in:\\n{contract}")
""")
    assert misplaced(source) == []


def test_a_call_sending_the_input_twice_keeps_its_second_copy_in_the_rewrite() -> None:
    """c2 sends the contract twice. The fix moves the first copy up and leaves the second where it is
    (see `fixed_source`), so c2 after the fix is SYSTEM + "\\n" (40), the contract (750), "\\n\\n" (1),
    "Compare w\\n" (1), "\\nwith the w summary of\\n" (2), the contract again (750) = 1544 tokens, of
    which 40 + 750 + 1 = 791 are c1's, 784 in blocks: 784 / 1544 = 0.50777... -> 0.5078."""
    source = agent("""def review(contract):
    a = client.completions.create(model="m", prompt=f"{SYSTEM}\\nList the risks in:\\n{contract}")
    b = client.completions.create(model="m", prompt=f"{SYSTEM}\\nCompare w\\n{contract}\\nwith the w summary of\\n{contract}")
    return a, b
""")
    from compiler.api import fixed_source

    fixed, _ = fixed_source(source, "agent.py", token_counter=count_w)
    assert fixed.count("{contract}") == 3  # the fix keeps c2's second copy
    [f] = misplaced(source)
    shapes = reorder(context_of(source), ["c1", "c2"], "param:review:contract")
    assert sum(1 for u in shapes["c2"] if u.text == O + "param:review:contract" + C) == 2
    assert f.figures["cacheable_share_after"] == 0.5078
