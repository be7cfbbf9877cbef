"""Bad input through the CLI: a clear one-line message and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charter_tui.cli import main
from compiler.api import compile_source
from compiler.errors import CompileError
from compiler.model import CompileResult


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_syntax_error_names_file_line_col(tmp_path: Path, capsys):
    bad = tmp_path / "agent.py"
    bad.write_text("from openai import OpenAI\n\ndef f(:\n    pass\n")
    code, out, err = _run(capsys, "compile", str(bad))
    assert code == 2
    assert err.startswith(f"charter-tui: {bad}:3:7: ")
    assert "Traceback" not in err and out == ""


def test_non_utf8_bytes_name_the_position(tmp_path: Path, capsys):
    bad = tmp_path / "latin1.py"
    bad.write_bytes(b'x = 1\nprompt = "caf\xe9"\n')
    code, _, err = _run(capsys, "compile", str(bad))
    assert code == 2
    assert f"{bad}:2:14: not valid utf-8 text (byte 0xe9)" in err


def test_declared_encoding_is_honoured(tmp_path: Path, capsys):
    ok = tmp_path / "latin1_declared.py"
    ok.write_bytes(b'# -*- coding: latin-1 -*-\nprompt = "caf\xe9"\n')
    code, out, _ = _run(capsys, "compile", str(ok))
    assert code == 0 and "no LLM calls found" in out


def test_empty_file_and_no_llm_calls(tmp_path: Path, capsys):
    empty = tmp_path / "empty.py"
    empty.write_text("")
    plain = tmp_path / "plain.py"
    plain.write_text("def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n")
    for path in (empty, plain):
        code, out, err = _run(capsys, "compile", str(path))
        assert code == 0 and err == ""
        assert f"{path}: 0 LLM call(s)" in out and "no LLM calls found" in out


def test_ten_megabyte_file_is_refused_clearly(tmp_path: Path, capsys):
    big = tmp_path / "big.py"
    line = "x = 'padding padding padding padding padding padding padding padding padding'\n"
    big.write_text(line * (10 * 1024 * 1024 // len(line) + 1))
    assert big.stat().st_size >= 10 * 1024 * 1024
    code, _, err = _run(capsys, "compile", str(big))
    assert code == 2
    assert f"{big}:1:1: file is 10.5 MB, over the 8.4 MB limit for agent files" in err


@pytest.mark.parametrize(
    "source",
    [
        "x = " + "(" * 500 + "1" + ")" * 500 + "\n",  # deeper than CPython's parser allows
        "x = " + "[" * 150 + "]" * 150 + "\n",
        "x = " + "-" * 5000 + "1\n",
        "p = " + " + ".join(["'a'"] * 20000) + "\n",
        "p = " + "f'{" * 40 + "x" + "}'" * 40 + "\n",
    ],
    ids=["parens-500", "lists-150", "unary-5000", "concat-20000", "fstrings-40"],
)
def test_deeply_nested_expressions_never_crash(tmp_path: Path, capsys, source: str):
    path = tmp_path / "nested.py"
    path.write_text(source)
    code, out, err = _run(capsys, "compile", str(path))
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith(f"charter-tui: {path}:") and err.count("\n") == 1
    else:
        assert code == 0 and "0 LLM call(s)" in out


def test_missing_path_and_directory_without_python(tmp_path: Path, capsys):
    code, _, err = _run(capsys, "compile", str(tmp_path / "nope.py"))
    assert code == 2 and "no such file or directory" in err
    code, _, err = _run(capsys, "compile", str(tmp_path))
    assert code == 2 and "no .py files found" in err


def test_one_bad_file_among_several_reports_it_and_exits_2(tmp_path: Path, capsys):
    good = tmp_path / "good.py"
    good.write_text("from openai import OpenAI\nc = OpenAI()\nc.completions.create(model='m', prompt='hi')\n")
    bad = tmp_path / "bad.py"
    bad.write_text("def (\n")
    code, out, err = _run(capsys, "compile", str(good), str(bad))
    assert code == 2
    assert f"{good}: 1 LLM call(s)" in out
    assert f"{bad}:1:5:" in err


def test_compile_error_carries_the_position():
    with pytest.raises(CompileError) as info:
        compile_source("a = 1\nb = (\n", "x.py")
    assert (info.value.path, info.value.line) == ("x.py", 2)
    assert str(info.value).startswith("x.py:2:")


EXPRESSIONS = [
    "x",
    "y",
    "S",
    "'text'",
    "f'{x} and {S}'",
    "S + x",
    "S % x",
    "S.format(**y)",
    "S.format(x, k=y)",
    "'\\n'.join(x)",
    "[x, S]",
    "{'role': 'user', 'content': x}",
    "[{'role': 'system', 'content': S}]",
    "client.chat.completions.create(model='m', messages=[{'role': 'user', 'content': x}])",
    "client.completions.create(model='m', prompt=S + x, n=2)",
    "litellm.completion(model='m', messages=y)",
    "call_llm(prompt=x)",
    "f(x)",
    "f(x, y=S)",
    "A().m(x)",
    "x.strip()",
    "y[0]",
    "x if y else S",
    "[f(i) for i in x]",
    "{k: v for k, v in y}",
    "(i for i in x if i)",
    "await g(x)",
    "lambda q: q + S",
    "time.time()",
    "uuid.uuid4()",
    "datetime.now().isoformat()",
    "textwrap.dedent(S)",
    "x or ''",
    "not x",
    "x == y",
    "-x",
    "x * 2",
    "(x := S)",
    "generate(x, max_tokens=5, n=y)",
    "chain.invoke({'q': x})",
    "1 << 3",
    "7 >> 1",
    "3 | 4 & 5 ^ 6",
    "2 ** 3 % 5",
    "b'a' + b'b'",
    "1 / 0",
    "x @ y",
    "[1] * 3",
]


@st.composite
def programs(draw, max_statements: int = 30) -> str:
    """Syntactically valid agent-like modules: nested defs, classes, loops, branches, LLM calls."""
    lines = [
        "import time, uuid, textwrap, litellm",
        "from datetime import datetime",
        "from openai import OpenAI",
        "client = OpenAI()",
        "S = 'You are helpful. ' * 3",
        "x, y = 'a', {}",
    ]
    budget = [draw(st.integers(1, max_statements))]

    def block(indent: int, in_function: bool, in_async: bool, depth: int) -> None:
        n = draw(st.integers(1, 4))
        pad = "    " * indent
        lines.append(pad + "pass")  # every block has a statement, even when the budget runs out
        for _ in range(n):
            if budget[0] <= 0:
                break
            budget[0] -= 1
            expr = draw(st.sampled_from(EXPRESSIONS))
            if "await" in expr and not in_async:
                expr = "x"
            kinds = ["assign", "augassign", "expr"] + (["return"] if in_function else [])
            if depth < 4:
                kinds += ["if", "for", "while", "def", "asyncdef", "class", "try", "with", "match"]
            kind = draw(st.sampled_from(kinds))
            if kind == "assign":
                lines.append(f"{pad}{draw(st.sampled_from(['x', 'y', 'S', 'z']))} = {expr}")
            elif kind == "augassign":
                lines.append(f"{pad}x += {expr}")
            elif kind == "expr":
                lines.append(f"{pad}{expr}")
            elif kind == "return":
                lines.append(f"{pad}return {expr}")
            else:
                header = {
                    "if": f"if {expr}:",
                    "for": f"for i in {expr}:",
                    "while": f"while {expr}:",
                    "def": "def f(x, y=S, *a, **k):",
                    "asyncdef": "async def g(x):",
                    "class": "class A:",
                    "try": "try:",
                    "with": f"with {expr} as w:",
                    "match": f"match {expr}:",
                }[kind]
                lines.append(pad + header)
                inner_fn = in_function or kind in ("def", "asyncdef")
                inner_async = (in_async or kind == "asyncdef") and kind not in ("def", "class")
                if kind == "class":
                    lines.append(pad + "    B = S + 'x'")
                    lines.append(pad + "    def m(self, d):")
                    block(indent + 2, True, False, depth + 1)
                elif kind == "match":
                    lines.append(pad + "    case 1:")
                    block(indent + 2, in_function, in_async, depth + 1)
                    lines.append(pad + "    case _:")
                    lines.append(pad + "        pass")
                else:
                    block(indent + 1, inner_fn, inner_async, depth + 1)
                if kind == "try":
                    lines.append(pad + "except Exception as e:")
                    lines.append(pad + "    x = S")
                elif kind == "if" and draw(st.booleans()):
                    lines.append(pad + "else:")
                    block(indent + 1, in_function, in_async, depth + 1)

    block(0, False, False, 0)
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_agent_like_code_never_crashes(source: str):
    import ast

    ast.parse(source)  # the generator only makes valid Python: the compiler must not raise at all
    result = compile_source(source, "fuzz.py")
    CompileResult.model_validate_json(result.model_dump_json())
    # Only a carried edge (an output reaching a later iteration) may close a loop; the DAG's stay acyclic.
    assert all(e.source != e.target for e in result.edges if e.kind != "carried")
    ids = [c.id for c in result.calls]
    assert sorted(result.order, key=ids.index) == ids and len(set(result.order)) == len(ids)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_crashes(source: str):
    try:
        compile_source(source, "fuzz.py")
    except CompileError as exc:
        assert exc.line >= 1 and exc.col >= 1


def test_constant_arithmetic_of_every_operator():
    """Found by the site-packages sweep: `1 << 3` crashed the constant folder (no handler for LShift)."""
    ops = ["+", "-", "*", "/", "//", "%", "**", "<<", ">>", "|", "&", "^", "@"]
    source = "\n".join(f"x{i} = 7 {op} 3" for i, op in enumerate(ops)) + "\ny = 1 / 0\nz = 2 ** 10_000\n"
    assert compile_source(source, "ops.py").calls == []
