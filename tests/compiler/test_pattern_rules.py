"""Every pattern rule's own examples, run the way Fixit runs a lint rule's VALID and INVALID cases: a VALID
program yields no finding of the rule's kind; an INVALID one yields exactly the finding it carries (calls,
line, every figure) and, for an anti-pattern, exactly the rewrite it carries."""

from __future__ import annotations

import ast

import pytest

from compiler.api import compile_source, fixed_source
from compiler.model import PatternKind
from compiler.patterns import RULES
from compiler.patterns.base import Invalid, PatternRule, Valid

ANTI_PATTERNS = {PatternKind.DYNAMIC_PREFIX, PatternKind.MISPLACED_SHARED_CONTEXT}

VALID_CASES = [(rule, i, case) for rule in RULES for i, case in enumerate(rule.VALID)]
INVALID_CASES = [(rule, i, case) for rule in RULES for i, case in enumerate(rule.INVALID)]


def _id(rule: type[PatternRule], index: int, kind: str) -> str:
    return f"{rule.KIND.value}-{kind}{index}"


def test_every_pattern_kind_has_one_rule_with_examples_of_both_sorts() -> None:
    assert sorted(r.KIND.value for r in RULES) == sorted(k.value for k in PatternKind)
    for rule in RULES:
        assert rule.VALID and rule.INVALID, rule.__name__
        assert rule.detect is not PatternRule.detect, f"{rule.__name__} has no detect"


@pytest.mark.parametrize(
    ("rule", "index", "case"), VALID_CASES, ids=[_id(r, i, "valid") for r, i, _ in VALID_CASES]
)
def test_valid_example_is_not_flagged(rule: type[PatternRule], index: int, case: Valid) -> None:
    result = compile_source(case.code, f"{rule.KIND.value.lower()}_valid.py")
    assert result.calls, "a VALID example must contain LLM calls, or it shows nothing about the rule"
    found = [f for f in result.patterns if f.kind is rule.KIND]
    assert not found, f"{rule.KIND.value} wrongly found in VALID example {index}: {found}"


@pytest.mark.parametrize(
    ("rule", "index", "case"), INVALID_CASES, ids=[_id(r, i, "invalid") for r, i, _ in INVALID_CASES]
)
def test_invalid_example_yields_its_finding(rule: type[PatternRule], index: int, case: Invalid) -> None:
    path = f"{rule.KIND.value.lower()}_invalid.py"
    result = compile_source(case.code, path)
    found = [f for f in result.patterns if f.kind is rule.KIND]
    assert len(found) == 1, f"INVALID example {index} must yield one {rule.KIND.value} finding, got {found}"
    finding = found[0]
    assert (tuple(finding.calls), finding.line) == (case.calls, case.line)
    assert finding.figures == dict(case.figures)
    assert finding.anti_pattern == (rule.KIND in ANTI_PATTERNS)
    if finding.anti_pattern:
        assert case.fixed is not None, "an anti-pattern's INVALID example carries the rewrite it expects"
        rewritten, _ = fixed_source(case.code, path)
        assert rewritten == case.fixed
        ast.parse(rewritten)  # the rewrite is still Python
        assert not [f for f in compile_source(rewritten, path).patterns if f.kind is rule.KIND], (
            "after the rewrite the anti-pattern is gone"
        )
    else:
        assert case.fixed is None, "only anti-patterns are rewritten"
