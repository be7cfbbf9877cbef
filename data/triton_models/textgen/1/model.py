"""charter-tui's Triton test model: a deterministic "text generator" on the Python backend.

It stands in for an LLM whose serving parameters a config rollout changes. What it does depends only
on the `parameters` of its model config, read once at load time (as a real backend reads its engine
knobs), so loading it with a config override is the only way to change its behaviour:

- ``delay_ms_per_token`` (int >= 0): each produced token costs this many milliseconds of wall time,
  so request latency (and Triton's ``nv_inference_request_duration_us``) moves with it;
- ``max_tokens_cap`` (int >= 1): no request produces more tokens than this, whatever it asks;
- ``default_max_tokens`` (int >= 1): tokens produced when a request sends no ``max_tokens``;
- ``variant`` (string): echoed as ``[variant]`` at the start of every output, so a client can tell
  which configuration answered.

Inputs: ``text_input`` (BYTES [1]), optional ``max_tokens`` (INT32 [1]). Outputs: ``text_output``
(BYTES [1]) — ``"[variant] w1 w2 ..."`` where the words cycle through the prompt's words — and
``output_tokens`` (INT32 [1]), the number of words produced. Usable through
``POST /v2/models/textgen/generate`` with ``{"text_input": "...", "max_tokens": 8}``.

A bad parameter value makes ``initialize`` raise, so Triton refuses the load with that message: a
rollout that pushes a nonsense value fails at the canary instead of serving garbage.
"""

from __future__ import annotations

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils

_DEFAULTS = {
    "delay_ms_per_token": "0",
    "max_tokens_cap": "64",
    "default_max_tokens": "16",
    "variant": "baseline",
}
# The variant is printed at the start of every output: keep it short and on one line.
_VARIANT_MAX_LEN = 64


def _param(config: dict, key: str) -> str:
    entry = config.get("parameters", {}).get(key)
    if entry is None:
        return _DEFAULTS[key]
    return str(entry.get("string_value", _DEFAULTS[key]))


def _int_param(config: dict, key: str, minimum: int) -> int:
    raw = _param(config, key)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"textgen: parameter {key}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"textgen: parameter {key}={value} must be >= {minimum}")
    return value


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.delay_s = _int_param(config, "delay_ms_per_token", 0) / 1000.0
        self.max_tokens_cap = _int_param(config, "max_tokens_cap", 1)
        self.default_max_tokens = _int_param(config, "default_max_tokens", 1)
        variant = _param(config, "variant")
        if len(variant) > _VARIANT_MAX_LEN or any(c in variant for c in "[]\r\n"):
            raise ValueError(
                f"textgen: parameter variant={variant!r} must be <= {_VARIANT_MAX_LEN} "
                "characters without brackets or newlines"
            )
        self.variant = variant
        pb_utils.Logger.log_info(
            f"textgen loaded: variant={self.variant} delay_ms_per_token={self.delay_s * 1000:g} "
            f"max_tokens_cap={self.max_tokens_cap} default_max_tokens={self.default_max_tokens}"
        )

    def _generate(self, prompt: str, requested: int) -> tuple[str, int]:
        n = max(0, min(requested, self.max_tokens_cap))
        words = prompt.split() or ["token"]
        produced = [words[i % len(words)] for i in range(n)]
        if self.delay_s:
            # One sleep for the whole answer: the same latency as per-token sleeps, one syscall.
            time.sleep(self.delay_s * n)
        return " ".join([f"[{self.variant}]", *produced]), n

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                text_tensor = pb_utils.get_input_tensor_by_name(request, "text_input")
                raw = text_tensor.as_numpy().reshape(-1)[0]
                prompt = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
                max_tokens_tensor = pb_utils.get_input_tensor_by_name(request, "max_tokens")
                requested = (
                    int(max_tokens_tensor.as_numpy().reshape(-1)[0])
                    if max_tokens_tensor is not None
                    else self.default_max_tokens
                )
                if requested < 0:
                    raise ValueError(f"max_tokens must be >= 0, got {requested}")
                text, n = self._generate(prompt, requested)
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[
                            pb_utils.Tensor(
                                "text_output", np.array([text.encode("utf-8")], dtype=np.object_)
                            ),
                            pb_utils.Tensor("output_tokens", np.array([n], dtype=np.int32)),
                        ]
                    )
                )
            except Exception as exc:  # one bad request must not fail the others in the batch
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[], error=pb_utils.TritonError(f"textgen: {exc}")
                    )
                )
        return responses

    def finalize(self):
        pb_utils.Logger.log_info(f"textgen unloaded: variant={self.variant}")
