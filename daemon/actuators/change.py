"""What an actuator is asked to do: one validated parameter change.

It lives with the actuators (which carry changes out) rather than with the rollouts (which record them),
so the actuators depend on nothing of the rollout package; `daemon.rollouts.model` imports it from here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Change(BaseModel):
    """One validated parameter change. `model` names the Triton model (None for vLLM / commands)."""

    model_config = ConfigDict(extra="forbid")

    param: str
    value: int | float | bool | str
    model: str | None = None

    def key(self) -> str:
        return f"{self.model}:{self.param}" if self.model else self.param
