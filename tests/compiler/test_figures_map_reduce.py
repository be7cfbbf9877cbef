"""MAP_REDUCE's messages, figures and boundaries, worked out by hand (token counts: `hand_counts`, one
token per "w")."""

from __future__ import annotations

import pytest

from compiler.model import PatternKind
from compiler.patterns.base import MIN_SHARED_PREFIX_TOKENS

from .hand_counts import findings, words

MAP_REDUCE = PatternKind.MAP_REDUCE


def judge_all(prefix_tokens: int) -> str:
    return f'''
def judge_all(answer, criteria, gen):
    verdicts = []
    for c in criteria:
        verdicts.append(gen("{words(prefix_tokens)}" + c, max_tokens=5))
    return gen("{words(3)}" + "".join(verdicts), max_tokens=5)
'''


@pytest.mark.parametrize("tokens", [MIN_SHARED_PREFIX_TOKENS - 1, MIN_SHARED_PREFIX_TOKENS])
def test_a_loop_of_maps_and_the_shared_prefix_named_from_the_threshold_on(tokens: int) -> None:
    """The map's prompt is `tokens` words, then the criterion that changes per iteration: the words are the
    prefix every iteration shares. It is named in the message from 32 tokens (two 16-token blocks) on."""
    [f] = findings(judge_all(tokens), MAP_REDUCE)
    assert f.calls == ["c1", "c2"] and f.figures == {
        "maps": ["c1"],
        "reduce": "c2",
        "map_loop_line": 4,
        "maps_shared_prefix_tokens": tokens,
    }
    said = "c2 gathers the outputs of c1 (every iteration of the loop at line 4); the iterations do not depend on each other: send them together"
    named = f" (their common {tokens}-token prefix is then prefilled once)"
    assert f.message == said + (named if tokens >= MIN_SHARED_PREFIX_TOKENS else "")


def test_separate_maps_share_what_all_of_them_start_with() -> None:
    """c2 and c3 share 41 words (10, "y", 30) but c1 only the first 10 with either: the shared prefix of the
    three is 10 tokens, under the threshold, so the message does not name it."""
    source = f'''
def review(doc, gen):
    a = gen("{words(10)} x " + doc, max_tokens=5)
    b = gen("{words(10)} y {words(30)} " + doc, max_tokens=5)
    c = gen("{words(10)} y {words(30)} z " + doc, max_tokens=5)
    return gen("{words(3)}" + a + b + c, max_tokens=5)
'''
    [f] = findings(source, MAP_REDUCE)
    assert f.figures == {
        "maps": ["c1", "c2", "c3"],
        "reduce": "c4",
        "fan_in": 3,
        "maps_shared_prefix_tokens": 10,
    }
    assert f.message == (
        "c4 gathers the outputs of c1, c2, c3 (3 calls); none of them depends on another: send them together"
    )


def test_separate_maps_with_a_long_common_prefix_name_it() -> None:
    source = f'''
def review(doc, gen):
    a = gen("{words(40)} x " + doc, max_tokens=5)
    b = gen("{words(40)} y " + doc, max_tokens=5)
    return gen("{words(3)}" + a + b, max_tokens=5)
'''
    [f] = findings(source, MAP_REDUCE)
    assert f.figures["maps_shared_prefix_tokens"] == 40
    assert f.message == (
        "c3 gathers the outputs of c1, c2 (2 calls); none of them depends on another: send them together "
        "(their common 40-token prefix is then prefilled once)"
    )
