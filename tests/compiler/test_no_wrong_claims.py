"""No claim without its evidence: programs on which the compiler made a wrong claim (issue 14).

Each test is a program written here in the shape found in public agent code, and asserts the finding
that the fact supports, or its absence. Each failed before the fix it names.
"""

from __future__ import annotations

from compiler.api import CompileOptions, compile_source
from compiler.model import CompileResult, PatternKind
from compiler.tokens import LARGE_INPUT_TOKENS, SMALL_VALUE_TOKENS


def compiled(source: str) -> CompileResult:
    return compile_source(source, "agent.py", options=CompileOptions(with_fixes=False))


def kinds(result: CompileResult) -> list[str]:
    return sorted(f.kind.value for f in result.patterns)


SYNC_ASYNC_TWINS = """
from openai import AsyncOpenAI, OpenAI

client = OpenAI()
aclient = AsyncOpenAI()


def judge_sync(first, second):
    comps = [first, second]
    for i in range(2):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Rate it: " + comps[i].text}])


async def judge_async(first, second):
    comps = [second, first]
    for i in range(2):
        await aclient.chat.completions.create(model="m", messages=[{"role": "user", "content": "Score it: " + comps[i].text}])
"""


def test_the_same_local_name_in_two_functions_is_two_values() -> None:
    """Segments were keyed `local:comps[i]` in both twins, so MISPLACED_SHARED_CONTEXT claimed a 750-token
    input shared by c1 and c2 that no request ever sends to both."""
    result = compiled(SYNC_ASYNC_TWINS)
    keys = [next(s.key for s in c.segments if s.name == "comps[i].text") for c in result.calls]
    assert len(keys) == 2 and keys[0] != keys[1]
    assert "judge_sync" in keys[0] and "judge_async" in keys[1]
    assert PatternKind.MISPLACED_SHARED_CONTEXT.value not in kinds(result)


DICT_KEYS = """
from openai import OpenAI

client = OpenAI()


def run(info):
    a = client.chat.completions.create(model="m", messages=[{"role": "user", "content": info["context"] + info["question_a"]}])
    b = client.chat.completions.create(model="m", messages=[{"role": "user", "content": info["context"] + info["question_b"]}])
    return a, b
"""


def test_literal_dict_keys_are_separate_values() -> None:
    """`info["context"] + info["question_a"]` was one opaque `{info}` twice, so both calls looked identical
    up to their end: the shared prefix counted the questions, and the context kept a small size."""
    result = compiled(DICT_KEYS)
    c1, c2 = result.calls
    assert [s.name for s in c1.segments if s.kind == "dynamic"] == ["info['context']", "info['question_a']"]
    assert [s.name for s in c2.segments if s.kind == "dynamic"] == ["info['context']", "info['question_b']"]
    assert c1.segments[1].key == c2.segments[1].key != c1.segments[2].key != c2.segments[2].key
    [shared] = [f for f in result.patterns if f.kind is PatternKind.SHARED_PREFIX]
    # the user header (4 tokens) and the context, a large input by its key's name; not the questions
    assert shared.figures["prefix_tokens"] == 4 + LARGE_INPUT_TOKENS
    assert c1.prompt_tokens == 4 + LARGE_INPUT_TOKENS + SMALL_VALUE_TOKENS


REPEATED_RULES = '''
import datetime

from openai import OpenAI

client = OpenAI()

RULES = """Answer only from the policy text the user quotes. Name the clause you rely on, say so when the
policy is silent, and never guess at amounts, dates or names that the policy does not state.
""" * 3


def ask(question):
    prompt = "Now: " + str(datetime.datetime.now()) + "\\n" + RULES + question
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])
'''


def test_a_repeated_literal_is_folded_and_a_timestamp_before_it_is_flagged() -> None:
    """`\"\"\"...\"\"\" * 3` was an unknown value, so the 3 x 199 characters of rules after the timestamp were
    not seen as static text and the timestamp-first prompt went unflagged."""
    result = compiled(REPEATED_RULES)
    [call] = result.calls
    rules = next(s for s in call.segments if s.kind == "static" and "policy" in s.text)
    assert rules.text.count("Answer only from the policy") == 3
    assert kinds(result) == [PatternKind.DYNAMIC_PREFIX.value]


def test_a_repeat_count_that_is_not_a_small_literal_stays_unknown() -> None:
    result = compiled(
        REPEATED_RULES.replace('""" * 3', '""" * copies').replace(
            "def ask(question)", "def ask(question, copies)"
        )
    )
    [call] = result.calls
    assert not any("policy" in s.text for s in call.segments if s.kind == "static")


def test_one_sample_is_not_a_branch() -> None:
    """`n=1` was reported as BRANCHING with a branch factor of 1."""
    result = compiled(
        """
from openai import OpenAI

client = OpenAI()

def answer(question):
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": question}], n=1)
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Check: " + r.choices[0].message.content}])
"""
    )
    assert [c.fanout for c in result.calls] == [1, None]
    assert kinds(result) == [PatternKind.SEQUENTIAL_CHAIN.value]


JUDGES_THEN_VERDICT = """
from openai import OpenAI

client = OpenAI()

def ask(p):
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": p}]).choices[0].message.content

def verdict(answer, criteria):
    scores = [ask("Score this answer for " + c + ":\\n" + answer) for c in criteria]
    return ask("Give one verdict from these scores:\\n" + "\\n".join(scores))
"""


def test_judges_then_a_verdict_is_map_reduce_not_a_chain() -> None:
    """Every path of two calls was a SEQUENTIAL_CHAIN, including N judges gathered by one verdict call."""
    result = compiled(JUDGES_THEN_VERDICT)
    assert PatternKind.SEQUENTIAL_CHAIN.value not in kinds(result)
    [mr] = [f for f in result.patterns if f.kind is PatternKind.MAP_REDUCE]
    assert mr.calls == ["c1", "c2"] and mr.figures["map_loop_line"] == 10
    assert "iterations do not depend on each other" in mr.message


def test_a_refinement_loop_then_a_final_call_is_a_chain_not_map_reduce() -> None:
    """The final call continues from the loop's last draft (the loop carries it), so it gathers nothing."""
    result = compiled(
        """
from openai import OpenAI

client = OpenAI()

def refine(draft):
    for _ in range(3):
        r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Improve: " + draft}])
        draft = r.choices[0].message.content
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Polish: " + draft}])
"""
    )
    assert PatternKind.MAP_REDUCE.value not in kinds(result)
    assert result.calls[0].loop_carried == ["draft"]


def test_no_misplaced_context_claim_when_moving_it_gains_nothing() -> None:
    """The research graph's reviewer (in the search loop, its notes growing each round) and writer (after
    the loop, the final notes) share no notes value a reorder could reuse: "0% to 0%" was claimed."""
    from daemon.project_files import ProjectFiles
    from tests.compiler.test_langgraph import SAMPLE

    agent = SAMPLE / "research_graph" / "agent.py"
    project = ProjectFiles(SAMPLE).project_for(agent)
    result = compile_source(agent.read_text(), str(agent), project=project)
    assert PatternKind.MISPLACED_SHARED_CONTEXT not in {f.kind for f in result.patterns}
    for finding in result.patterns:
        before = finding.figures.get("cacheable_share_before")
        if before is not None:
            assert finding.figures["cacheable_share_after"] > before, finding.message
