"""Bad input through the CLI: a clear one-line message and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charter_tui.cli import main
from compiler.api import compile_source
from compiler.errors import CompileError


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


python_like = st.lists(
    st.sampled_from([
        "from openai import OpenAI\n", "client = OpenAI()\n", "import litellm\n",
        "S = 'system prompt ' * 3\n", "def f(x, y=1):\n", "    return x\n", "    for i in x:\n",
        "        y += f'{i}{S}'\n", "    r = client.chat.completions.create(model='m', messages=[{'role': 'user', 'content': x}])\n",
        "    while y:\n", "        y = litellm.completion(model='m', messages=y)\n", "class A:\n", "    B = S + 'x'\n",
        "    def m(self, d):\n", "        return self.m(d + self.B)\n", "if x:\n", "else:\n", "    pass\n",
        "x = [f(i) for i in range(3)]\n", "f(S.format(**x), n=2)\n", "call_llm(prompt=S % x)\n",
        "async def g(c):\n", "    await c.responses.create(input=[x])\n", "with open(x) as fh:\n",
        "    s = ''.join(fh)\n", "try:\n", "except Exception as e:\n", "    raise\n", "match x:\n",
        "    case 1:\n", "        x = S\n", "lambda q: q\n", "x = {**x, 'k': S}\n", "del x\n",
    ]),
    max_size=25,
).map("".join)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(python_like)
def test_random_agent_like_code_never_crashes(source: str):
    try:
        result = compile_source(source, "fuzz.py")
    except CompileError:
        return  # unparseable: reported with a position, which is the contract
    result.model_dump_json()  # always serializable


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_crashes(source: str):
    try:
        compile_source(source, "fuzz.py")
    except CompileError as exc:
        assert exc.line >= 1 and exc.col >= 1
