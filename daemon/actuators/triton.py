"""Triton: change a model's config through the repository API, with a full config override.

Triton's `load` with a `config` parameter REPLACES the model's config for that load (it does not
merge), so the override is always built from the config the server reports now plus the change;
a rollback loads the recorded config the same way. Needs `--model-control-mode=explicit`.
A changed `parameters` value makes Triton load a new instance in the background and swap it in
(inference-servers.md 2.4), so readiness is awaited and the config is read back before it counts.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from daemon.actuators.base import Actuator, ActuatorError, Snapshot, TargetUnreachable
from daemon.actuators.params import TRITON_PARAMS, InvalidChange
from daemon.config import TargetConfig
from daemon.actuators.change import Change


def triton_value(change: Change) -> Any:
    """A change's value as it is written into a model config: `parameters` values are strings."""
    spec = TRITON_PARAMS[change.param]
    if spec.location == "parameters":
        if isinstance(change.value, bool):
            return {"string_value": "true" if change.value else "false"}
        return {"string_value": str(change.value)}
    return change.value


def apply_to_config(config: dict[str, Any], change: Change) -> dict[str, Any]:
    out = copy.deepcopy(config)
    spec = TRITON_PARAMS[change.param]
    if spec.location == "parameters":
        out.setdefault("parameters", {})[change.param] = triton_value(change)
    elif change.param == "instance_group.count":
        groups = out.get("instance_group") or [{"kind": "KIND_CPU"}]
        out["instance_group"] = [{**g, "count": change.value} for g in groups]
    elif change.param == "dynamic_batching.max_queue_delay_microseconds":
        out.setdefault("dynamic_batching", {})["max_queue_delay_microseconds"] = change.value
    else:  # a registry entry without an addressing rule here is a programming error, caught in tests
        raise InvalidChange(f"no way to write {change.param} into a Triton config")
    return out


def read_from_config(config: dict[str, Any], change: Change) -> Any:
    """The value `apply_to_config` would overwrite (None where the config leaves it to Triton)."""
    spec = TRITON_PARAMS[change.param]
    if spec.location == "parameters":
        entry = (config.get("parameters") or {}).get(change.param)
        return entry.get("string_value") if isinstance(entry, dict) else None
    if change.param == "instance_group.count":
        groups = config.get("instance_group") or []
        return groups[0].get("count") if groups else None
    if change.param == "dynamic_batching.max_queue_delay_microseconds":
        return (config.get("dynamic_batching") or {}).get("max_queue_delay_microseconds")
    raise KeyError(change.param)


class TritonActuator(Actuator):
    kind = "triton"

    def __init__(self, target: TargetConfig, changes: Sequence[Change], *, timeout_s: float = 600.0) -> None:
        super().__init__(target, changes)
        self.timeout_s = timeout_s
        parts = urlsplit(target.url)
        self._host = parts.netloc
        self._ssl = parts.scheme == "https"
        self.models = sorted({c.model for c in self.changes if c.model}) or list(target.models[:1])
        if not self.models:
            raise InvalidChange(f"target {target.name}: name the Triton model of each change (MODEL:PARAM)")

    # --- the synchronous tritonclient calls, run on a worker thread ------------------------
    def _client(self) -> triton_http.InferenceServerClient:
        return triton_http.InferenceServerClient(
            self._host,
            ssl=self._ssl,
            connection_timeout=self.target.timeout_s + 3,
            network_timeout=self.timeout_s,
        )

    def _read_configs(self) -> dict[str, Any]:
        client = self._client()
        try:
            if not client.is_server_live():
                raise TargetUnreachable(f"{self.target.name}: Triton is not live")
            out: dict[str, Any] = {}
            for model in self.models:
                try:
                    out[model] = client.get_model_config(model) if client.is_model_ready(model) else None
                except InferenceServerException as exc:
                    raise ActuatorError(
                        f"{self.target.name}: cannot read the config of {model}: {exc}"
                    ) from None
            return out
        except (ConnectionError, OSError) as exc:  # geventhttpclient raises OS-level errors
            raise TargetUnreachable(f"{self.target.name}: {exc}") from None
        finally:
            client.close()

    def _load(self, model: str, config: dict[str, Any]) -> None:
        client = self._client()
        try:
            client.load_model(model, config=json.dumps(config))
            deadline = time.monotonic() + self.timeout_s
            while not client.is_model_ready(model):
                if time.monotonic() > deadline:
                    raise ActuatorError(
                        f"{self.target.name}: {model} not ready {self.timeout_s:.0f} s after load"
                    )
                time.sleep(0.2)
        except InferenceServerException as exc:
            raise ActuatorError(
                f"{self.target.name}: Triton refused to load {model}: {exc.message()}"
            ) from None
        except (ConnectionError, OSError) as exc:
            raise TargetUnreachable(f"{self.target.name}: {exc}") from None
        finally:
            client.close()

    # --- the interface ---------------------------------------------------------------------
    async def snapshot(self) -> Snapshot:
        configs = await asyncio.to_thread(self._read_configs)
        missing = [m for m, c in configs.items() if c is None]
        if missing:
            raise ActuatorError(
                f"{self.target.name}: model(s) {', '.join(missing)} not loaded: nothing to change"
            )
        return {"models": configs}

    def value_in(self, snapshot: Snapshot, change: Change) -> Any:
        return read_from_config(snapshot["models"][change.model or self.models[0]], change)

    def desired(self, snapshot: Snapshot) -> Snapshot:
        models = copy.deepcopy(snapshot["models"])
        for change in self.changes:
            model = change.model or self.models[0]
            models[model] = apply_to_config(models[model], change)
        return {"models": models}

    async def converge(self, config: Snapshot) -> dict[str, Any]:
        current = await asyncio.to_thread(self._read_configs)
        loaded = []
        for model, wanted in config["models"].items():
            if current.get(model) == wanted:
                continue  # already serving it: verify only (idempotent after a crash)
            await asyncio.to_thread(self._load, model, wanted)
            loaded.append(model)
        readback = await asyncio.to_thread(self._read_configs)
        for model, wanted in config["models"].items():
            if readback.get(model) != wanted:
                raise ActuatorError(
                    f"{self.target.name}: {model} config read back differs from what was loaded: "
                    + _first_difference(wanted, readback.get(model))
                )
        return {
            "loaded": loaded,
            "parameters": {m: (c or {}).get("parameters", {}) for m, c in readback.items()},
        }

    async def observe(self) -> Snapshot | None:
        try:
            return {"models": await asyncio.to_thread(self._read_configs)}
        except TargetUnreachable:
            return None

    def matches(self, observed: Snapshot, config: Snapshot) -> bool:
        return all(observed["models"].get(m) == c for m, c in config["models"].items())

    async def healthy(self) -> tuple[bool, str]:
        try:
            configs = await asyncio.to_thread(self._read_configs)
        except ActuatorError as exc:
            return False, str(exc)
        not_ready = [m for m, c in configs.items() if c is None]
        return (False, f"model(s) {', '.join(not_ready)} not ready") if not_ready else (True, "ready")


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    return f"{path or '(root)'}: expected {json.dumps(a)[:120]}, got {json.dumps(b)[:120]}"
