"""Users' own adapters loaded by name (config, `compile --adapter`), refused with a reason when unusable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from charter_tui.cli import main
from daemon.adapters import AdapterError, load_adapter, load_adapters

ECHO = """
from compiler.adapters.base import Adapter
from compiler.callsites import CallMatch
from compiler.model import CallStyle
from compiler.templates import messages_text


class Echo(Adapter):
    NAME = "echo"

    @staticmethod
    def recognise(call):
        if call.qualified == "inhouse.echo.ask":
            return CallMatch(CallStyle.ADAPTER, "inhouse.echo.ask", "echo")
        return None

    @staticmethod
    def read(match, call):
        return messages_text(call.kwargs.get("question")), None


class Clash(Echo):
    NAME = "anthropic"


NOT_AN_ADAPTER = object
"""

AGENT = "from inhouse import echo\n\ndef run(q):\n    return echo.ask(question='Reply in French: ' + q)\n"


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "my_adapters.py").write_text(ECHO)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_adapters"
    sys.modules.pop("my_adapters", None)


def test_an_adapter_named_module_colon_class_loads(user_module: str) -> None:
    adapter = load_adapter(f"{user_module}:Echo")
    assert adapter.NAME == "echo"
    assert load_adapters([f"{user_module}:Echo", f"{user_module}:Echo"], installed=False) == (adapter,)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("my_adapters", "expected package.module:Class"),
        ("no_such_module_here:Echo", "cannot import no_such_module_here: ModuleNotFoundError"),
        ("my_adapters:Missing", "not a subclass of compiler.adapters.base.Adapter"),
        ("my_adapters:NOT_AN_ADAPTER", "not a subclass of compiler.adapters.base.Adapter"),
    ],
)
def test_an_unusable_adapter_is_refused_with_its_name_and_reason(
    user_module: str, spec: str, reason: str
) -> None:
    with pytest.raises(AdapterError) as err:
        load_adapter(spec)
    assert spec in str(err.value) and reason in str(err.value)


def test_an_adapter_may_not_take_a_builtin_name(user_module: str) -> None:
    with pytest.raises(AdapterError, match="NAME 'anthropic' is a built-in adapter's"):
        load_adapters([f"{user_module}:Clash"], installed=False)


def test_compile_uses_an_adapter_given_on_the_command_line(user_module: str, tmp_path: Path, capsys) -> None:
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    assert main(["compile", "--single-file", str(agent)]) == 0
    assert "no LLM calls found" in capsys.readouterr().out
    assert main(["compile", "--single-file", "--adapter", f"{user_module}:Echo", str(agent)]) == 0
    out = capsys.readouterr().out
    assert "1 LLM call(s)" in out and "echo.ask" in out
    assert main(["compile", "--adapter", "my_adapters:Nope", str(agent)]) == 2
    assert "adapter 'my_adapters:Nope': not a subclass" in capsys.readouterr().err
