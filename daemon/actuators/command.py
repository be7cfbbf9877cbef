"""A generic actuator for anything else: argv templates from `[rollouts.commands.<target>]`.

`read` prints a parameter's current value; `apply` sets it. `{param}` and `{value}` are substituted
inside argv elements (never joined into a shell line) after the value passed the parameter's rule.
Every value given to `apply` passes that rule, the restored previous values too: those were printed
by `read`, and a script's output is no more trusted than a person's input.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from daemon.actuators.base import Actuator, ActuatorError, Snapshot
from daemon.actuators.params import InvalidChange, ParamSpec
from daemon.config import CommandActuatorConfig, CommandParamRule, TargetConfig
from daemon.actuators.change import Change

_OUTPUT_CAP = 64 * 1024


def spec_from_rule(name: str, rule: CommandParamRule) -> ParamSpec:
    return ParamSpec(
        name=name,
        type=rule.type,
        help="configured in [rollouts.commands]",
        min=rule.min,
        max=rule.max,
        choices=tuple(rule.choices),
        pattern=rule.pattern,
        allow_absolute_paths=rule.allow_absolute_paths,
    )


def render(template: Sequence[str], param: str, value: str | None = None) -> list[str]:
    out = []
    for element in template:
        element = element.replace("{param}", param)
        if value is not None:
            element = element.replace("{value}", value)
        out.append(element)
    return out


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class CommandActuator(Actuator):
    kind = "command"

    def __init__(
        self, target: TargetConfig, changes: Sequence[Change], commands: CommandActuatorConfig
    ) -> None:
        super().__init__(target, changes)
        self.commands = commands

    async def _run(self, argv: list[str]) -> str:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise ActuatorError(f"{self.target.name}: cannot run {argv[0]}: {exc}") from None
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.commands.timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ActuatorError(
                f"{self.target.name}: {argv[0]} did not finish in {self.commands.timeout_s:g} s"
            ) from None
        if process.returncode != 0:
            raise ActuatorError(
                f"{self.target.name}: {argv[0]} exited {process.returncode}: {err[:_OUTPUT_CAP].decode(errors='replace').strip()}"
            )
        return out[:_OUTPUT_CAP].decode(errors="replace").strip()

    async def _read_all(self) -> dict[str, str]:
        return {c.param: await self._run(render(self.commands.read, c.param)) for c in self.changes}

    async def snapshot(self) -> Snapshot:
        return {"values": await self._read_all()}

    def value_in(self, snapshot: Snapshot, change: Change) -> Any:
        return snapshot["values"].get(change.param)

    def desired(self, snapshot: Snapshot) -> Snapshot:
        values = dict(snapshot["values"])
        for change in self.changes:
            values[change.param] = value_text(change.value)
        return {"values": values}

    async def converge(self, config: Snapshot) -> dict[str, Any]:
        current = await self._read_all()
        ran = []
        for param, value in config["values"].items():
            if current.get(param) != value:
                await self._run(render(self.commands.apply, param, self._checked(param, value)))
                ran.append(param)
        readback = await self._read_all()
        if readback != config["values"]:
            raise ActuatorError(f"{self.target.name}: read back {readback}, expected {config['values']}")
        return {"applied": ran, "values": readback}

    def _checked(self, param: str, value: str) -> str:
        rule = self.commands.params.get(param)
        if rule is None:
            raise ActuatorError(f"{self.target.name}: no rule for parameter {param!r}; nothing applied")
        try:
            spec_from_rule(param, rule).coerce(value)
        except InvalidChange as exc:
            raise ActuatorError(f"{self.target.name}: refusing to apply {exc}") from None
        return value

    async def observe(self) -> Snapshot | None:
        try:
            return {"values": await self._read_all()}
        except ActuatorError:
            return None

    def matches(self, observed: Snapshot, config: Snapshot) -> bool:
        return bool(observed["values"] == config["values"])

    async def healthy(self) -> tuple[bool, str]:
        try:
            await self._read_all()
            return True, "read succeeded"
        except ActuatorError as exc:
            return False, str(exc)
