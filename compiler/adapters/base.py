"""What a framework adapter is: how charter-tui learns one more way of calling an LLM.

An adapter is an `Adapter` subclass, one module per framework under `compiler/adapters/`, as a pattern
rule is a class under `compiler/patterns/`: what the framework's objects are when built (`construct`),
which calls reach a model (`recognise`), and what such a call sends (`read`). Each carries example
programs: `VALID` ones that must yield no call of the framework, `INVALID` ones with the calls they must
yield (`tests/compiler/test_adapters.py` runs them all). An adapter only reads the interpreter's
symbolic values (`compiler/values.py`, `compiler/templates.py`): it never imports or runs the agent.

Users add one without forking: a class importable by name, listed in the config's
`[watch] adapters = ["pkg.module:Class"]` (or `compile --adapter`) or published under the
`charter_tui.adapters` entry-point group; the caller loads it and passes it in `CompileOptions.adapters`.

A recognised call may also make further model calls the model chooses at run time (an agent handing
off to another): `follow_ups` yields them, and the interpreter records each as an arm of a choice at
the call site (`calls._record`), so they count as calls that may run.

A framework that runs the agent's own functions (a LangGraph graph calls its nodes) is followed by
`drive`: consulted first on every call, it may run those functions through the interpreter (`Host`),
in the framework's order and with the values it hands them (`compiler/interpreter/drive.py`).
"""

from __future__ import annotations

import ast
from abc import ABC, abstractmethod
from collections.abc import Generator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import ClassVar, Protocol

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


@dataclass(frozen=True)
class FollowUp:
    """A further model call a recognised call may make, chosen by the model at run time. Follow-ups with
    the same `arm` run together, in the order yielded; different arms exclude each other."""

    arm: str  # the model's choice it belongs to (`handoff:billing`): the branch arm's test
    callee: str  # how the call site lists it (`Runner.run handoff to billing`)
    prompt: Text


class Host(Protocol):
    """What the interpreter offers an adapter that drives agent code (`Adapter.drive`): a framework that
    calls the agent's own functions (a LangGraph graph runs its node functions) is followed by running
    those functions here, symbolically, so the values they return carry their calls' outputs onwards."""

    def run(self, fn: Value, args: list[Value]) -> list[Value] | None:
        """Run a function of the agent with these arguments as a call would (its LLM calls recorded where
        they are); each value its `return` statements give. None when `fn` is not a function of the agent
        or is not followed now (recursion, inlining depth, the statement budget)."""
        ...

    def function_node(self, fn: Value) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        """The definition of a function of the agent, to read (never to run), else None."""
        ...

    def rebind(self, value: Value) -> None:
        """Assign `value` to the receiver of the call being driven (`builder` in `builder.add_node(..)`),
        as a method that changes its object in place leaves it."""
        ...

    def loops(self) -> frozenset[int]:
        """The ids of the loops running now, remembered so that `reenter` can run code in them later."""
        ...

    def reenter(self, loop_ids: frozenset[int]) -> AbstractContextManager[None]:
        """Run what follows inside the remembered loops `loop_ids` again (unknown ids are skipped): code
        that runs once per element of what such a loop built (`Seq.elem_loops`)."""
        ...

    def loop(self, line: int, col: int, label: str, iteration: int) -> AbstractContextManager[None]:
        """Run what follows as pass `iteration` (0 or 1) of a `while` loop at `line`:`col`, shown as `label`."""
        ...

    def branch(self, line: int, label: str) -> AbstractContextManager[None]:
        """Run what follows as one arm (`case`, shown as `label`) of a choice at `line`."""
        ...

    def diag(self, line: int, message: str) -> None:
        """Report something the adapter could not follow (an info diagnostic)."""
        ...


class Adapter(ABC):
    """One framework: the objects it builds, the calls that reach a model, what they send."""

    NAME: ClassVar[str]
    VALID: ClassVar[tuple[str, ...]] = ()
    INVALID: ClassVar[tuple[Expect, ...]] = ()
    # Text that hints a function uses the framework (a regex alternative): such functions are followed
    # on every call (`interpreter.core._find_relevant`).
    HINT: ClassVar[str] = ""
    # Text that hints a function starts agent code the framework runs (`StateGraph(`): among the entry
    # points, such functions are analysed first, so the functions they drive run with the framework's
    # inputs before anything analyses them alone.
    DRIVES: ClassVar[str] = ""

    @staticmethod
    def drive(call: SdkCall, host: Host) -> Value | None:
        """The value of `call` when the framework runs agent code for it, or keeps building an object
        the agent changes in place (run through `host`); else None. Consulted before every other step."""
        return None

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

    @staticmethod
    def follow_ups(match: CallMatch, call: SdkCall, output: Value) -> Generator[FollowUp, Value, None]:
        """The calls the recognised call may go on to make, given its own `output`; each `yield` gets
        back the output of the follow-up it yielded (a later one may read it). None by default."""
        yield from ()


def static_text(value: Value | None) -> str | None:
    """A value's text when it is entirely literal, else None."""
    from compiler.values import Static

    if isinstance(value, Text) and all(isinstance(p, Static) for p in value.parts):
        return "".join(p.text for p in value.parts if isinstance(p, Static))
    return None
