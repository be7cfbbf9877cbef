"""Detector edges the example programs do not reach: exact thresholds and where messages split.

A counter that counts the letter `w` gives each literal an exact, chosen token count, so the
threshold cases sit on the boundary rather than near it.
"""

from __future__ import annotations

from compiler.api import compile_source
from compiler.model import PatternKind
from compiler.patterns.base import MIN_LONG_STATIC_TOKENS


def count_w(text: str) -> int:
    return text.count("w")


def completion_agent(static_tokens: int) -> str:
    # "Now: " holds one `w`; "|" + the policy holds exactly `static_tokens`.
    words = " ".join(["w"] * static_tokens)
    return f'''
from datetime import datetime
from openai import OpenAI
client = OpenAI()
POLICY = "{words}"

def answer(question):
    prompt = f"Now: {{datetime.now().isoformat()}}|{{POLICY}}|{{question}}"
    return client.completions.create(model="m", prompt=prompt)
'''


def chat_agent(static_in_same_message: bool) -> str:
    if static_in_same_message:
        messages = """[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"Now: {datetime.now().isoformat()}|" + POLICY + question}]"""
    else:
        messages = """[
        {"role": "system", "content": f"Now: {datetime.now().isoformat()}"},
        {"role": "user", "content": POLICY + question}]"""
    words = " ".join(["w"] * 200)
    return f'''
from datetime import datetime
from openai import OpenAI
client = OpenAI()
POLICY = "{words}"

def answer(question):
    return client.chat.completions.create(model="m", messages={messages})
'''


def dynamic_prefix_findings(source: str):
    result = compile_source(source, "agent.py", token_counter=count_w)
    return result, [f for f in result.patterns if f.kind is PatternKind.DYNAMIC_PREFIX]


def test_threshold_is_inclusive_at_exactly_min_long_static_tokens() -> None:
    assert MIN_LONG_STATIC_TOKENS == 64  # the figure the boundary cases below are built around
    at, found_at = dynamic_prefix_findings(completion_agent(64))
    below, found_below = dynamic_prefix_findings(completion_agent(63))
    # The premise: the static text after the timestamp is exactly 64 and 63 tokens.
    assert [s.tokens for s in at.calls[0].segments if s.kind == "static"][1] == 64
    assert [s.tokens for s in below.calls[0].segments if s.kind == "static"][1] == 63
    assert len(found_at) == 1 and found_at[0].figures["static_tokens_after"] == 64
    assert found_below == []


def test_dynamic_part_in_an_earlier_message_than_the_static_text_is_not_flagged() -> None:
    """Moving the timestamp would mean reordering chat messages, which the fix cannot do."""
    result, found = dynamic_prefix_findings(chat_agent(static_in_same_message=False))
    segs = result.calls[0].segments
    # The premise: a dynamic segment, then a later message's role header, then 200 static tokens.
    dyn = next(i for i, s in enumerate(segs) if s.kind == "dynamic")
    assert (
        any(s.synthetic for s in segs[dyn:])
        and max(s.tokens for s in segs[dyn:] if s.kind == "static") == 200
    )
    assert found == []


def test_dynamic_part_before_static_text_in_the_same_later_message_is_flagged() -> None:
    """The guard only looks from the dynamic part's own role header on: an earlier message does not hide it."""
    _, found = dynamic_prefix_findings(chat_agent(static_in_same_message=True))
    assert len(found) == 1
    f = found[0]
    assert f.figures["static_tokens_after"] >= 200 and f.figures["volatile"] is True
    assert f.figures["cacheable_share_after"] > f.figures["cacheable_share_before"]


def test_figures_are_the_second_requests_cacheable_share_before_and_after() -> None:
    """Worked by hand, vLLM blocks of 16 tokens. After the fix the prompt is `|policy|` (N static
    tokens), the question (40, assumed), `\\n\\n` (1), `Now: ` (1), the timestamp (12); a second request
    reuses the full blocks of the static part and nothing else. Before, the timestamp comes first:
    nothing is reusable."""
    for static, expected_after in ((64, 64 / 118), (100, 96 / 154)):
        source = completion_agent(static)
        _, [f] = dynamic_prefix_findings(source)
        assert f.figures == {
            "dynamic_segment": "datetime.now().isoformat()",
            "volatile": True,
            "static_tokens_after": static,
            "cacheable_share_before": 0.0,
            "cacheable_share_after": round(expected_after, 4),
            "measured_on": "a second request",
        }
        assert f.message == (
            f"c1: volatile `datetime.now().isoformat()` comes before {static} tokens of "
            "static text, so no request can reuse them"
        )
        [create_line] = [n for n, text in enumerate(source.splitlines(), 1) if ".create(" in text]
        assert f.line == create_line and f.calls == ["c1"] and f.anti_pattern


def test_a_per_request_value_first_is_named_as_such() -> None:
    words = " ".join(["w"] * 80)
    source = f'''
from openai import OpenAI
client = OpenAI()
POLICY = "{words}"

def answer(customer_name, question):
    prompt = f"Customer: {{customer_name}}|{{POLICY}}|{{question}}"
    return client.completions.create(model="m", prompt=prompt)
'''
    _, [f] = dynamic_prefix_findings(source)
    assert f.figures["volatile"] is False and f.figures["dynamic_segment"] == "customer_name"
    assert f.message.startswith("c1: per-request `customer_name` comes before 80 tokens")


def test_calls_without_the_pattern_do_not_stop_the_search() -> None:
    """A call with no dynamic part, one with no long static text, one whose static text is in a later
    message: each is skipped, and the fourth call, which has the pattern, is still found."""
    words = " ".join(["w"] * 80)
    source = f'''
from datetime import datetime
from openai import OpenAI
client = OpenAI()
POLICY = "{words}"

def no_dynamic():
    return client.completions.create(model="m", prompt=POLICY)

def no_long_static(question):
    return client.completions.create(model="m", prompt=f"Q: {{question}}")

def later_message():
    return client.chat.completions.create(model="m", messages=[
        {{"role": "system", "content": f"Now: {{datetime.now().isoformat()}}"}},
        {{"role": "user", "content": POLICY}}])

def positive(question):
    return client.completions.create(model="m", prompt=f"Now: {{datetime.now().isoformat()}}|{{POLICY}}|{{question}}")
'''
    result, found = dynamic_prefix_findings(source)
    assert len(result.calls) == 4
    assert [f.calls for f in found] == [["c4"]]


def test_static_text_before_the_dynamic_part_moves_with_it_and_counts_before() -> None:
    """`HEADER|{ts}|POLICY|{question}`: the fix moves the whole message head (header and timestamp)
    behind the policy. Worked by hand, blocks of 16: before, a second request reuses the 32-token
    header of 148 tokens; after, the 64-token policy of 149 (one `\\n\\n` token added)."""
    header = " ".join(["w"] * 32)
    policy = " ".join(["w"] * 64)
    source = f'''
from datetime import datetime
from openai import OpenAI
client = OpenAI()
HEADER = "{header}"
POLICY = "{policy}"

def answer(question):
    prompt = f"{{HEADER}}|{{datetime.now().isoformat()}}|{{POLICY}}|{{question}}"
    return client.completions.create(model="m", prompt=prompt)
'''
    result, [f] = dynamic_prefix_findings(source)
    assert [s.tokens for s in result.calls[0].segments] == [32, 12, 64, 40]
    assert f.figures["cacheable_share_before"] == round(32 / 148, 4)
    assert f.figures["cacheable_share_after"] == round(64 / 149, 4)


def test_figures_are_measured_on_the_flagged_call_alone() -> None:
    """Another call in the file sends the same policy first; the flagged call's figures are still its own."""
    words = " ".join(["w"] * 80)
    source = f'''
from datetime import datetime
from openai import OpenAI
client = OpenAI()
POLICY = "{words}"

def warm():
    return client.completions.create(model="m", prompt=f"|{{POLICY}}|")

def positive(question):
    return client.completions.create(model="m", prompt=f"Now: {{datetime.now().isoformat()}}|{{POLICY}}|{{question}}")
'''
    _, [f] = dynamic_prefix_findings(source)
    assert f.calls == ["c2"]
    # c2 alone, as in test_figures_are_the_second_requests_cacheable_share_before_and_after: 80 of 134.
    assert f.figures["cacheable_share_before"] == 0.0
    assert f.figures["cacheable_share_after"] == round(80 / 134, 4)
