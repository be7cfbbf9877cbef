"""Actuators: the code that changes a real server, behind one interface (`base.Actuator`).

`validate_changes(target, raw, config)` turns user/recommendation input into typed `Change`s or
refuses it (unknown parameter, wrong type, out of range, unsafe text) before anything runs;
`make_actuator(target, changes, config, state_dir)` picks the actuator for a target:
`[rollouts.commands.<target>]` -> commands; engine "triton" -> repository API; "vllm" -> relaunch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from daemon.actuators.base import Actuator, ActuatorError, TargetUnreachable
from daemon.actuators.command import CommandActuator, spec_from_rule
from daemon.actuators.params import REGISTRIES, InvalidChange, ParamSpec, lookup, normalize_name
from daemon.actuators.triton import TritonActuator
from daemon.actuators.blue_green import BlueGreenVllmActuator
from daemon.actuators.vllm import VllmRelaunchActuator
from daemon.config import RolloutConfig, TargetConfig
from daemon.actuators.change import Change

__all__ = [
    "Actuator",
    "ActuatorError",
    "InvalidChange",
    "TargetUnreachable",
    "actuator_kind",
    "make_actuator",
    "validate_changes",
]


def actuator_kind(target: TargetConfig, config: RolloutConfig) -> str:
    if target.name in config.commands:
        return "command"
    if target.engine in ("triton", "vllm"):
        return target.engine
    if target.engine == "auto":
        # Watching may guess; changing may not: how a change is applied must not hang on what a poll last saw.
        raise InvalidChange(
            f'target {target.name}: its engine is auto-detected (engine = "auto", the default), and a rollout '
            f'must know which server it changes: add engine = "vllm" or engine = "triton" to its [[targets]] '
            f"entry (`charter-tui probe {target.url}` says which it is), or describe its commands in "
            f"[rollouts.commands.{target.name}]"
        )
    raise InvalidChange(
        f'target {target.name}: no actuator for engine {target.engine!r}; set engine = "vllm" or "triton", '
        f"or describe its commands in [rollouts.commands.{target.name}]"
    )


def _spec(target: TargetConfig, config: RolloutConfig, name: str) -> ParamSpec:
    kind = actuator_kind(target, config)
    if kind == "command":
        rules = config.commands[target.name].params
        if name not in rules:
            raise InvalidChange(
                f"unknown parameter {name!r} for {target.name}; known: {', '.join(sorted(rules))}"
            )
        return spec_from_rule(name, rules[name])
    return lookup(REGISTRIES[kind], name, kind)


def validate_changes(
    target: TargetConfig, raw: Iterable[dict[str, Any] | Change], config: RolloutConfig
) -> list[Change]:
    """Typed changes for `target`, or InvalidChange naming the first bad one. Runs nothing."""
    out: list[Change] = []
    seen: set[str] = set()
    for item in raw:
        data = item.model_dump() if isinstance(item, Change) else dict(item)
        param, model = data.get("param"), data.get("model")
        if not isinstance(param, str):
            raise InvalidChange(f"a change needs a parameter name, got {param!r}")
        if model is not None:
            if actuator_kind(target, config) != "triton":
                raise InvalidChange(f"{model}:{param}: only Triton targets take a model name")
            if model not in target.models and target.models:
                raise InvalidChange(
                    f"target {target.name} serves no model {model!r} (models: {', '.join(target.models)})"
                )
            normalize_name(model)
        elif actuator_kind(target, config) == "triton":
            if len(target.models) != 1:
                raise InvalidChange(
                    f"{param}: target {target.name} has {len(target.models)} models; write MODEL:{param}"
                )
            model = target.models[0]
        spec = _spec(target, config, param)
        change = Change(param=spec.name, value=spec.coerce(data.get("value")), model=model)
        if change.key() in seen:
            raise InvalidChange(f"{change.key()} is set twice")
        seen.add(change.key())
        out.append(change)
    if not out:
        raise InvalidChange("a rollout needs at least one change")
    return out


def make_actuator(
    target: TargetConfig, changes: Sequence[Change], config: RolloutConfig, state_dir: Path
) -> Actuator:
    kind = actuator_kind(target, config)
    if kind == "command":
        return CommandActuator(target, changes, config.commands[target.name])
    if kind == "triton":
        return TritonActuator(target, changes, timeout_s=config.apply_timeout_s)
    relaunch = BlueGreenVllmActuator if target.launch and target.launch.blue_green else VllmRelaunchActuator
    return relaunch(
        target,
        changes,
        state_dir=state_dir,
        startup_timeout_s=config.apply_timeout_s,
        stop_grace_s=config.stop_grace_s,
    )
