"""What a framework adapter is: how charter-tui learns one more way of calling an LLM.

An adapter is an `Adapter` subclass, one module per framework under `compiler/adapters/`, as a pattern
rule is a class under `compiler/patterns/`: what the framework's objects are when built (`construct`),
which calls reach a model (`recognise`), and what such a call sends (`read`). Each carries example
programs: `VALID` ones that must yield no call of the framework, `INVALID` ones with the calls they must
yield (`tests/compiler/test_adapters.py` runs them all). An adapter only reads the interpreter's
symbolic values (`compiler/values.py`, `compiler/templates.py`): it never imports or runs the agent.

Users add one without forking: a class importable by name, listed in the config's
`[compile] adapters = ["pkg.module:Class"]` or published under the `charter_tui.adapters` entry-point
group; the caller loads it and passes it in `CompileOptions.adapters`.
"""

from __future__ import annotations

import ast
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from compiler.callsites import CallMatch
from compiler.values import Text, Value


@dataclass(slots=True)
class SdkCall:
    """A call as the interpreter evaluated it: everything an adapter may look at."""

    node: ast.Call
    qualified: str | None  # the callee after import resolution (`openai.OpenAI`), when it resolves
    method: str  # the callee's last name as written (`create`, `OpenAI`); "" for `f()()`
    receiver: Value | None  # the object a method is called on (`client` in `client.chat...create`)
    func_value: Value | None  # the callee's value, when it is a local name or a method of the module
    args: list[Value]  # positional arguments, `*xs` of a known list spread out
    kwargs: dict[str, Value]  # keyword arguments, `**d` of a known dict spread out
    star: Value | None  # a `**x` whose keys are not known
    awaited: bool  # `await f(...)`

    def kw_source(self, name: str) -> str:
        """The source of keyword argument `name` (its label when the value is not constant), else `name`."""
        from compiler.interpreter.nodes import label  # the interpreter package imports this module

        for kw in self.node.keywords:
            if kw.arg == name:
                return label(kw.value)
        return name


Read = tuple[Text, int | str | None]  # the prompt a call sends, and its fan-out (`n=`) when it has one


@dataclass(frozen=True)
class Expect:
    """An example program and the calls it must yield: (line, callee as written) each, in order, and
    text each call's prompt must contain (the static prompt the framework builds)."""

    code: str
    calls: tuple[tuple[int, str], ...]
    prompt_contains: tuple[str, ...] = ()


class Adapter(ABC):
    """One framework: the objects it builds, the calls that reach a model, what they send."""

    NAME: ClassVar[str]
    VALID: ClassVar[tuple[str, ...]] = ()
    INVALID: ClassVar[tuple[Expect, ...]] = ()
    # Text that hints a function uses the framework (a regex alternative): such functions are followed
    # on every call (`interpreter.core._find_relevant`).
    HINT: ClassVar[str] = ""

    @staticmethod
    def construct(call: SdkCall) -> Value | None:
        """The framework object `call` builds (a client, an agent, a config), else None."""
        return None

    @staticmethod
    @abstractmethod
    def recognise(call: SdkCall) -> CallMatch | None:
        """A `CallMatch` whose `kind` is this adapter's `NAME` when `call` reaches a model, else None."""

    @staticmethod
    @abstractmethod
    def read(match: CallMatch, call: SdkCall) -> Read:
        """What the recognised call sends: its prompt as chat text, and its fan-out."""


def static_text(value: Value | None) -> str | None:
    """A value's text when it is entirely literal, else None."""
    from compiler.values import Static

    if isinstance(value, Text) and all(isinstance(p, Static) for p in value.parts):
        return "".join(p.text for p in value.parts if isinstance(p, Static))
    return None
