"""The Done-when checks of issue 3 for the spec's two test cases (data/agents/*.py)."""

from __future__ import annotations

import ast

from compiler.api import compile_source, fixed_source
from compiler.model import CompileResult, PatternKind, SourceKind
from compiler.prefix import PrefixSimulator, share
from compiler.tokens import Tokenizer
from tests.compiler.conftest import AGENTS


def _finding(result: CompileResult, kind: PatternKind):
    found = [f for f in result.patterns if f.kind is kind]
    assert len(found) == 1, f"expected one {kind}, got {result.patterns}"
    return found[0]


def test_document_processor_is_a_three_call_chain(compiled):
    r = compiled["document_processor"]
    assert [c.id for c in r.calls] == ["c1", "c2", "c3"]
    assert [c.output_var for c in r.calls] == ["entities", "validated", "classification"]
    assert [c.callee for c in r.calls] == [
        "self.llm_extract_entities",
        "self.llm_validate_entities",
        "self.llm_classify_document",
    ]
    assert all(c.api == "self.client.chat.completions.create" for c in r.calls)
    assert [(e.source, e.target, e.variables) for e in r.edges] == [
        ("c1", "c2", ["entities"]),
        ("c2", "c3", ["validated"]),
    ]
    assert r.order == ["c1", "c2", "c3"]
    chain = _finding(r, PatternKind.SEQUENTIAL_CHAIN)
    assert chain.calls == ["c1", "c2", "c3"] and chain.figures["depth"] == 3
    # The driver loop in main() is a loop over requests, not inside one: no loop patterns.
    assert r.pattern_kinds() == {"SEQUENTIAL_CHAIN", "SHARED_PREFIX", "MISPLACED_SHARED_CONTEXT"}


def test_document_processor_shares_the_system_prompt(compiled):
    r = compiled["document_processor"]
    shared = _finding(r, PatternKind.SHARED_PREFIX)
    assert shared.calls == ["c1", "c2", "c3"]
    # SYSTEM_PROMPT is folded to its literal text and is the whole shared prefix.
    system_text = r.calls[0].segments[1].text
    assert system_text.startswith("You are a precise document analyst")
    assert "SYSTEM_PROMPT" not in system_text
    assert 100 <= shared.figures["prefix_tokens"] <= 130
    assert shared.figures["prefix_preview"].startswith("<|user|>\\nYou are a precise document analyst")


def test_document_is_misplaced_and_fix_reaches_spec_target(compiled):
    r = compiled["document_processor"]
    f = _finding(r, PatternKind.MISPLACED_SHARED_CONTEXT)
    assert f.anti_pattern and f.calls == ["c1", "c2", "c3"]
    assert f.figures["input"] == "document"
    doc = next(s for s in r.calls[1].segments if s.name == "document")
    assert doc.source is SourceKind.PARAMETER
    assert f.figures["cacheable_share_before"] < 0.2
    assert f.figures["cacheable_share_after"] >= 0.60  # the spec's 60-70% target for stages 2-3
    fix = r.fixes[0]
    assert fix.pattern is PatternKind.MISPLACED_SHARED_CONTEXT
    # The label that introduced the document stays and points back at it; a neutral one goes before it.
    assert (
        '+            prompt=f"{SYSTEM_PROMPT}\\nDocument:\\n{document}\\n\\nExtract entities from the document above.\\n"'
        in fix.diff
    )
    assert (
        "prompt order changes what the model sees" in fix.warning.lower()
        or "changes what the model sees" in fix.warning
    )


def test_applied_fix_really_raises_the_share_of_calls_2_and_3():
    """Apply the codemod, compile the rewritten file again, and measure calls 2-3 at vLLM's block size."""
    source = (AGENTS / "document_processor.py").read_text()
    new, before = fixed_source(source, "document_processor.py")
    assert new != source
    ast.parse(new)
    after = compile_source(new, "document_processor.py")
    assert "MISPLACED_SHARED_CONTEXT" not in after.pattern_kinds()
    assert len(after.calls) == 3 and [(e.source, e.target) for e in after.edges] == [
        ("c1", "c2"),
        ("c2", "c3"),
    ]
    sim = PrefixSimulator(Tokenizer())
    for result, low, high in ((before, 0.0, 0.2), (after, 0.6, 1.0)):
        executions = sim.run(result.calls, result.order)
        got = share(executions, 16, {"c2", "c3"})[2]
        assert low <= got <= high, (result.path, got)


def test_delta_processor_is_one_call_in_a_loop(compiled):
    r = compiled["delta_processor"]
    assert len(r.calls) == 1 and r.edges == []
    call = r.calls[0]
    assert call.callee == "self.llm_generate" and call.api == "self.client.completions.create"
    agent_loops = [l for l in call.loops if not l.request_loop]
    assert [(l.kind, l.target, l.iterates) for l in agent_loops] == [
        ("for", "(i, vars)", "enumerate(variables)")
    ]
    # The prompt: the folded system prompt, then the run-time template filled from the loop variable.
    kinds = [(s.kind, s.name) for s in call.segments if not s.synthetic]
    assert kinds == [("static", None), ("dynamic", "template")]
    template = call.segments[-1]
    assert template.fills == ["vars"] and template.varies_in_loop and template.source is SourceKind.PARAMETER
    assert r.pattern_kinds() == {"LOOP_INVARIANT", "DELTA_MATCHING"}
    inv = _finding(r, PatternKind.LOOP_INVARIANT)
    assert inv.figures["invariant_share"] > 0.85
    delta = _finding(r, PatternKind.DELTA_MATCHING)
    assert 5 <= delta.figures["delta_percent"] <= 10  # spec: only variable substitutions (10%) differ


def test_delta_processor_has_a_warmup_plan(compiled):
    r = compiled["delta_processor"]
    [warm] = r.plan.warmups
    assert warm.before_call == "c1" and "before the loop at line" in warm.reason
    assert warm.request["max_tokens"] == 1
    assert str(warm.request["prompt"]).startswith("You are an equity research assistant")
    assert warm.prefix_tokens >= 64
    [retention] = r.plan.retention
    assert (
        retention.priority > 35 and retention.token_start == 0 and retention.token_end == warm.prefix_tokens
    )
    assert r.plan.schedule[0].calls == ["c1"]
    assert "iterations are independent" in r.plan.schedule[0].note


def test_json_round_trip_keeps_everything(compiled):
    from compiler.model import SCHEMA_VERSION

    r = compiled["document_processor"]
    again = CompileResult.model_validate_json(r.model_dump_json())
    assert again == r and again.schema_version == SCHEMA_VERSION
    assert again.estimates.tokens_estimated is True


def test_steady_state_share_counts_the_system_prompt_across_requests(compiled):
    r = compiled["document_processor"]
    v16 = next(b for b in r.plan.block_shares if b.engine == "vllm")
    # On a second request the system prompt of c1 hits too; the document (new per request) does not.
    assert v16.steady_state_share > v16.hit_share
    assert v16.steady_state_share_after_fixes > v16.hit_share_after_fixes >= 0.5
    dyn = compiled["dynamic_prefix_agent"].plan.block_shares[0]
    assert dyn.hit_share == 0.0 and dyn.steady_state_share == 0.0
    assert dyn.steady_state_share_after_fixes > 0.5  # what the DYNAMIC_PREFIX fix buys: cross-request reuse


def test_driver_checks_are_not_agent_branches(compiled):
    """main()'s `if len(args) != 1: return 2` and `if not line.strip(): continue` gate whole requests;
    they must not make the three calls look like optional branch arms (weighting them 1/4)."""
    r = compiled["document_processor"]
    assert all(c.branches == [] for c in r.calls)
    v16 = next(b for b in r.plan.block_shares if b.engine == "vllm")
    assert v16.prompt_tokens == sum(c.prompt_tokens for c in r.calls)


def test_the_fix_line_names_the_scope_of_each_gain_and_matches_the_plan() -> None:
    """`compile` quoted 10% -> 76% on the fix and 55% in the plan without saying they measure different
    things: the fix line now names its calls and gives the whole request's figure from the plan."""
    from compiler.export import to_text

    path = AGENTS / "document_processor.py"
    result = compile_source(path.read_text(), str(path))
    [fix] = result.fixes
    vllm16 = next(b for b in result.plan.block_shares if b.engine == "vllm" and b.block_size == 16)
    [line] = [l for l in to_text(result).splitlines() if l.startswith("fix (MISPLACED_SHARED_CONTEXT)")]
    pct = lambda x: f"{x:.0%}"  # noqa: E731
    assert line.endswith(
        f"; cacheable share of c2, c3 {pct(fix.cacheable_share_before)} -> {pct(fix.cacheable_share_after)}; "
        f"the whole request {pct(vllm16.hit_share)} -> {pct(vllm16.hit_share_after_fixes)} "
        "(vllm block 16, with every fix, as in the cache plan)"
    ), line
