"""Errors of a benchmark run that a user can act on, each naming where it happened."""

from __future__ import annotations

from daemon.errors import UserError


class TargetDown(UserError):
    """The inference server does not answer (refused, DNS, wrong URL) or is not what was asked for."""


class ExecutionError(UserError):
    """A call of one run failed: names the mode, the run, the call and the input line it came from.

    `finished` holds the runs completed before it (their results are kept and reported); it is filled
    by the bench orchestration, which knows them.
    """

    def __init__(
        self, reason: str, *, mode: str, run: int, call: str, input_line: int, inputs: str = ""
    ) -> None:
        self.reason, self.mode, self.run, self.call, self.input_line = reason, mode, run, call, input_line
        where = f"{inputs}:{input_line}" if inputs else f"input line {input_line}"
        super().__init__(f"{mode} run {run} ({where}), call {call}: {reason}")


class CallTimeout(Exception):
    """One request took longer than its timeout (raised by a target, wrapped into ExecutionError)."""


class CallFailed(Exception):
    """The server answered a request with an error (raised by a target, wrapped into ExecutionError)."""


class BindingError(Exception):
    """An input record lacks a value a call's prompt needs; `variable` and `call` say which."""

    def __init__(self, call: str, variable: str, reason: str) -> None:
        self.call, self.variable = call, variable
        super().__init__(reason)
