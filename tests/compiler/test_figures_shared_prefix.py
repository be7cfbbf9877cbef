"""SHARED_PREFIX's figures, threshold, grouping and wording, worked out by hand.

The detector's example programs check that it fires, not what it reports; the mutation run
(docs/mutation.md) showed that its figures, its 32-token threshold, its 60% target and the way it
groups calls could change without a test noticing.

A counter that counts the letter `w` gives each literal an exact, chosen token count. Run-time values
have the compiler's assumed sizes: `question` and `user` (other values) 40 tokens.
"""

from __future__ import annotations

from compiler.api import CompileOptions, compile_source
from compiler.model import Finding, PatternKind
from compiler.patterns.base import MIN_SHARED_PREFIX_TOKENS

from .hand_counts import count_w, line_of, words


def shared_prefix(source: str) -> list[Finding]:
    result = compile_source(
        source, "agent.py", token_counter=count_w, options=CompileOptions(with_fixes=False)
    )
    return [f for f in result.patterns if f.kind is PatternKind.SHARED_PREFIX]


def test_figures_message_and_preview_of_two_calls() -> None:
    """Both prompts are `{user}`, "\\n", 40 tokens of instructions, "\\n", then "Summarise: " (0 tokens) or
    "List w: " (1 token), then the question (40). Shared: the user value (40) and the instructions (40)
    = 80 tokens. Prompts: 120 and 121, mean 120.5; 80 / 120.5 = 0.66390... -> 0.6639, above 60%."""
    sys_text = words(40)
    source = f'''
from openai import OpenAI
client = OpenAI()
SYSTEM = "{sys_text}"

def analyse(user, question):
    a = client.completions.create(model="m", prompt=f"{{user}}\\n{{SYSTEM}}\\nSummarise: {{question}}")
    b = client.completions.create(model="m", prompt=f"{{user}}\\n{{SYSTEM}}\\nList w: {{question}}")
    return a, b
'''
    [f] = shared_prefix(source)
    # The preview: the value shown as {key}, newlines escaped, cut to 80 characters: "{param:analyse:user}"
    # (20) + "\\n" (2) + the first 55 characters of the instructions = 77, then "...".
    preview = "{param:analyse:user}\\n" + sys_text[:55] + "..."
    assert len(preview) == 80
    assert f.figures == {
        "prefix_tokens": 80,
        "overlap_ratio": 0.6639,
        "prefix_preview": preview,
        "above_target": True,
    }
    assert f.calls == ["c1", "c2"]
    assert f.line == line_of(source, "Summarise")
    assert f.message == f"2 calls share a 80-token prefix (66% of their mean prompt): {preview}"
    assert not f.anti_pattern


def _pair(prefix_tokens: int) -> str:
    return f'''
from openai import OpenAI
client = OpenAI()
POLICY = "{words(prefix_tokens)}"

def analyse(question):
    a = client.completions.create(model="m", prompt=POLICY + " a" + question)
    b = client.completions.create(model="m", prompt=POLICY + " b" + question)
    return a, b
'''


def test_threshold_is_inclusive_at_exactly_min_shared_prefix_tokens() -> None:
    """The two prompts share the policy and a space: exactly its token count."""
    assert MIN_SHARED_PREFIX_TOKENS == 32
    [f] = shared_prefix(_pair(32))
    # 32 shared of 32 + 40 = 72 per prompt: 0.4444..., below the 60% target.
    assert f.figures["prefix_tokens"] == 32
    assert f.figures["overlap_ratio"] == 0.4444 and f.figures["above_target"] is False
    assert shared_prefix(_pair(31)) == []


def _static_pair(prefix_tokens: int) -> str:
    tail = " w" * (100 - prefix_tokens)
    return f'''
from openai import OpenAI
client = OpenAI()
POLICY = "{words(prefix_tokens)}"
a = client.completions.create(model="m", prompt=POLICY + " a{tail}")
b = client.completions.create(model="m", prompt=POLICY + " b{tail}")
'''


def test_target_is_strictly_above_sixty_percent() -> None:
    """100-token prompts sharing exactly 60 tokens: 0.6, not above the target; 61 shared: 0.61, above."""
    [at] = shared_prefix(_static_pair(60))
    assert at.figures["overlap_ratio"] == 0.6 and at.figures["above_target"] is False
    assert "(60% of their mean prompt)" in at.message
    [above] = shared_prefix(_static_pair(61))
    assert above.figures["overlap_ratio"] == 0.61 and above.figures["above_target"] is True


def test_a_group_of_three_reports_the_prefix_all_of_them_share() -> None:
    """c1 and c2 share 40 tokens and a space ("w" * 40 + " "); c3 only the first 35 and a space. Sorted,
    c3 ("... w x") comes after c1 ("... w a") and c2 ("... w b"): the group's prefix is the smaller, 35.
    Prompts 80, 80 and 75 (35 + 40): mean 78.33..., 35 / 78.33... = 0.44680... -> 0.4468."""
    source = f'''
from openai import OpenAI
client = OpenAI()
LONG = "{words(40)}"
SHORT = "{words(35)}"

def analyse(question):
    a = client.completions.create(model="m", prompt=LONG + " a" + question)
    b = client.completions.create(model="m", prompt=LONG + " b" + question)
    c = client.completions.create(model="m", prompt=SHORT + " x" + question)
    return a, b, c
'''
    [f] = shared_prefix(source)
    assert f.calls == ["c1", "c2", "c3"]
    assert f.figures == {
        "prefix_tokens": 35,
        "overlap_ratio": 0.4468,
        "prefix_preview": words(35) + " ",
        "above_target": False,
    }
    assert f.message.startswith("3 calls share a 35-token prefix (45% of their mean prompt): ")
    assert f.line == line_of(source, 'LONG + " a"')


def test_groups_are_found_in_sorted_order_not_in_call_order() -> None:
    """Calls 1 and 3 start "A" + policy, calls 2 and 5 "C" + policy, call 4 "B" and nothing else worth
    sharing. In call order no neighbours share anything; sorted, (c1, c3), c4 alone, (c2, c5). Each
    pair shares "A"/"C" (0 tokens) + the policy (40) + a space, of 80-token prompts: 0.5. The shared
    text is 81 characters, so the preview is its first 77 and "..."."""
    source = f'''
from openai import OpenAI
client = OpenAI()
POLICY = "{words(40)}"

def analyse(question):
    c1 = client.completions.create(model="m", prompt="A" + POLICY + " 1" + question)
    c2 = client.completions.create(model="m", prompt="C" + POLICY + " 1" + question)
    c3 = client.completions.create(model="m", prompt="A" + POLICY + " 2" + question)
    c4 = client.completions.create(model="m", prompt="B w w w" + question)
    c5 = client.completions.create(model="m", prompt="C" + POLICY + " 2" + question)
    return c1, c2, c3, c4, c5
'''
    found = shared_prefix(source)
    assert [(f.calls, f.line) for f in found] == [
        (["c1", "c3"], line_of(source, "c1 =")),
        (["c2", "c5"], line_of(source, "c2 =")),
    ]
    for f, letter in zip(found, "AC", strict=True):
        assert f.figures == {
            "prefix_tokens": 40,
            "overlap_ratio": 0.5,
            "prefix_preview": (letter + words(40))[:77] + "...",
            "above_target": False,
        }


def test_a_group_of_calls_that_never_run_together_is_skipped_and_the_next_one_still_found() -> None:
    """c1 and c2 share a prefix but sit in the two arms of one `if`: no finding for them; c3 and c4,
    sorted after them, are still reported."""
    source = f'''
from openai import OpenAI
client = OpenAI()
POLICY = "{words(40)}"

def analyse(flag, question):
    if flag:
        a = client.completions.create(model="m", prompt="A" + POLICY + " 1" + question)
    else:
        a = client.completions.create(model="m", prompt="A" + POLICY + " 2" + question)
    c = client.completions.create(model="m", prompt="B" + POLICY + " 1" + question)
    d = client.completions.create(model="m", prompt="B" + POLICY + " 2" + question)
    return a, c, d
'''
    found = shared_prefix(source)
    assert [f.calls for f in found] == [["c3", "c4"]]
    assert found[0].figures["prefix_tokens"] == 40


def test_members_are_listed_in_call_number_order_from_c2_to_c10() -> None:
    """Ten calls; c2 and c10 share the policy (40 tokens) and a space, and c10 sorts first ("... a"
    before "... b"). They are listed c2, c10 (by number, not as text, where "c10" < "c2"), the line is
    c2's, and the preview is exactly 80 characters (the policy's 79 and the space): shown whole."""
    fillers = "\n".join(
        f'    f{i} = client.completions.create(model="m", prompt="f{i}")' for i in range(3, 10)
    )
    source = f'''
from openai import OpenAI
client = OpenAI()
POLICY = "{words(40)}"

def analyse(question):
    f1 = client.completions.create(model="m", prompt="f1")
    b = client.completions.create(model="m", prompt=POLICY + " b" + question)
{fillers}
    a = client.completions.create(model="m", prompt=POLICY + " a" + question)
    return a, b
'''
    [f] = shared_prefix(source)
    assert f.calls == ["c2", "c10"]
    assert f.line == line_of(source, 'POLICY + " b"')
    assert f.figures["prefix_preview"] == words(40) + " " and len(words(40) + " ") == 80
    assert f.message == f"2 calls share a 40-token prefix (50% of their mean prompt): {words(40)} "


def test_one_call_or_unshared_prompts_give_no_finding() -> None:
    one = f'''
from openai import OpenAI
client = OpenAI()
client.completions.create(model="m", prompt="{words(100)}")
'''
    assert shared_prefix(one) == []
    apart = f"""
from openai import OpenAI
client = OpenAI()
client.completions.create(model="m", prompt="a {words(100)}")
client.completions.create(model="m", prompt="b {words(100)}")
"""
    assert shared_prefix(apart) == []


def test_the_group_prefix_is_the_smallest_shared_one_even_when_it_comes_first() -> None:
    """Sorted, c1 ("35 w's, a, ...") comes first and shares only SHORT (35 tokens) with c2; c2 and c3 then
    share LONG (40). The group's prefix is the smallest pair's, 35, not the last pair's: taking the last
    would report 39 (c1's first 81 characters hold 39 w's). Prompts 80, 40 and 40: mean 53.33...,
    35 / 53.33... = 0.65625 -> 0.6562, above the 60% target."""
    source = f'''
from openai import OpenAI
client = OpenAI()
SHORT = "{words(35)}"
LONG = "{words(40)}"
MORE = "{words(45)}"

def analyse():
    a = client.completions.create(model="m", prompt=SHORT + " a " + MORE)
    b = client.completions.create(model="m", prompt=LONG + " b")
    c = client.completions.create(model="m", prompt=LONG + " c")
    return a, b, c
'''
    [f] = shared_prefix(source)
    assert f.calls == ["c1", "c2", "c3"]
    assert (f.figures["prefix_tokens"], f.figures["overlap_ratio"], f.figures["above_target"]) == (
        35,
        0.6562,
        True,
    )
