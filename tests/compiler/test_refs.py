"""Structured references (`compiler/refs.py`, `compiler.model.Ref`): what a replay evaluates instead of
parsing the compiler's strings again. Each reference must read back as the source it came from, stay
within its bounds on hostile agent files, and survive the JSON the daemon stores."""

from __future__ import annotations

import ast
import textwrap

import pytest
from pydantic import ValidationError

from compiler.api import compile_source
from compiler.model import (
    MAX_REF_DEPTH,
    MAX_REF_NODES,
    CompileResult,
    RefAttribute,
    RefCall,
    RefName,
    RefOther,
    RefSubscript,
    Segment,
    ref_source,
    ref_within_bounds,
)
from compiler.refs import MAX_REF_TEXT, ref_of_node, ref_of_text


@pytest.mark.parametrize(
    "source",
    [
        "document",
        "self.doc",
        "vars['company']",
        "cfg.items()",
        "enumerate(items)",
        "zip(a, b)",
        "range(n - 1)",
        "range(len(xs) * 2)",
        "(a + b).c",
        "a - (b - c)",
        "a - b - c",
        "a * (b + c)",
        "a + b * c",
        "x[1, 2]",
        "x[(1,)]",
        "(a, b)",
        "(a,)",
        "[a, b]",
        "()",
        "f(x)[0].text",
        "d['k'][-1]",
        "3.5",
        "None",
        "True",
        "'it''s'",
        "r.choices",
        "sorted(d.keys())",
    ],
)
def test_a_reference_reads_back_as_its_source(source: str):
    ref = ref_of_text(source)
    assert ref is not None
    assert ref_source(ref) == ast.unparse(ast.parse(source, mode="eval"))


def test_what_a_replay_cannot_evaluate_is_kept_by_its_source():
    ref = ref_of_text("(x if c else y).doc")
    assert isinstance(ref, RefAttribute) and ref.attr == "doc"
    assert ref.value == RefOther(text="x if c else y")
    assert ref_of_text("x[1:2]") == RefSubscript(value=RefName(name="x"), index=RefOther(text="1:2"))
    assert ref_of_text("a / b") == RefOther(text="a / b")  # only + - * are replayed
    call = ref_of_text("sorted(xs, key=len)")
    assert call == RefCall(func=RefName(name="sorted"), args=[RefName(name="xs")])


@pytest.mark.parametrize("text", ["a.b...", "f(", "", "x\0"])
def test_text_that_is_not_an_expression_has_no_reference(text: str):
    assert ref_of_text(text) is None


def test_hostile_expressions_have_no_reference_and_take_no_time():
    deep = "x" + ".a" * (MAX_REF_DEPTH + 1)
    assert ref_of_text(deep) is None
    assert ref_of_text("x" + ".a" * (MAX_REF_DEPTH - 2)) is not None
    wide = "f(" + ", ".join(f"a{i}" for i in range(MAX_REF_NODES)) + ")"
    assert ref_of_text(wide) is None
    assert ref_of_text("a" * (MAX_REF_TEXT + 1)) is None
    chain = ast.parse(" + ".join(f"v{i}" for i in range(800)), mode="eval").body  # an 800-deep BinOp
    assert ref_of_node(chain) is None
    nested = ast.parse("(" * 150 + "x" + ")" * 150 + "[0]" * 500, mode="eval").body
    assert ref_of_node(nested) is None


def test_a_model_over_the_bounds_is_refused():
    ref: RefName | RefAttribute = RefName(name="x")
    for _ in range(MAX_REF_DEPTH):
        ref = RefAttribute(value=ref, attr="a")
    assert not ref_within_bounds(ref)
    with pytest.raises(ValidationError, match="reference larger than"):
        Segment(kind="dynamic", text="{x}", name="x", ref=ref)
    with pytest.raises(ValidationError, match="reference larger than"):
        Segment.model_validate({"kind": "dynamic", "text": "{x}", "fill_refs": [ref.model_dump()]})


AGENT = textwrap.dedent("""
    from openai import OpenAI
    client = OpenAI()

    def batch(template: str, variables: list[dict], cfg, n_samples):
        base = f"{cfg.system}\\n{template}"
        for i, vars in enumerate(variables):
            client.completions.create(model="m", prompt=base.format(**vars), n=n_samples)
        for a, b in zip(cfg.left, cfg.right[1:]):
            client.completions.create(model="m", prompt=f"{a} vs {b}")
""")


def test_the_compiler_emits_references_beside_every_replayed_string():
    result = compile_source(AGENT, "agent.py")
    first, second = result.calls
    loop = first.loops[0]
    assert (loop.iterates, loop.target) == ("enumerate(variables)", "(i, vars)")
    assert ref_source(loop.iterates_ref) == loop.iterates and ref_source(loop.target_ref) == loop.target
    assert first.fanout == "n_samples" and first.fanout_ref == RefName(name="n_samples")
    dynamic = [s for s in first.segments if s.kind == "dynamic"]
    assert [s.name for s in dynamic] == ["cfg.system", "template"]
    for seg in dynamic:
        assert seg.ref is not None and ref_source(seg.ref) == seg.name
        assert [ref_source(r) for r in seg.fill_refs if r is not None] == seg.fills
    assert any(s.fills == ["vars"] for s in dynamic)
    over = second.loops[0].iterates_ref
    assert ref_source(over) == "zip(cfg.left, cfg.right[1:])"  # the slice is kept, by its source
    # Stored as JSON by the daemon, read back equal.
    assert CompileResult.model_validate_json(result.model_dump_json()) == result


def test_a_loop_over_a_huge_expression_compiles_without_a_reference():
    terms = " + ".join(f"xs{i}" for i in range(800))
    source = (
        f"import litellm\n\ndef agent({', '.join(f'xs{i}' for i in range(3))}):\n"
        f"    for x in {terms}:\n        litellm.completion(model='m', messages=[{{'role': 'user', 'content': x}}])\n"
    )
    result = compile_source(source, "huge.py")
    (call,) = result.calls
    assert call.loops[0].kind == "for" and call.loops[0].iterates_ref is None
    assert call.loops[0].target_ref == RefName(name="x")
