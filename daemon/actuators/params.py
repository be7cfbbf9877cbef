"""The registry of parameters a rollout may change, and the one place values are validated.

Every value that ends up in an argv (vLLM relaunch, command actuator) or in a model config (Triton
load override) passes through `ParamSpec.coerce` first. Validation is by allow-list: a known
parameter, a value of its type inside its range, no control or shell characters anywhere. The
values never go through a shell anyway (argv vectors only); this is the second wall, and it also
catches the mistakes that would take a server down at the canary (`--max-num-seqs 0`).

String patterns are matched by RE2 (daemon.safe_regex): a rule pattern comes from the config, and
Python's backtracking `re` would hang on `(a+)+` against a near-miss. A string value that looks like
a path is confined whatever the pattern allows: no `..` segment, no absolute path unless the spec
allows one — a command actuator passes values on to scripts that may well open them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from daemon.errors import UserError
from daemon.safe_regex import fullmatch

ParamType = Literal["int", "float", "bool", "enum", "string"]
Value = int | float | bool | str

# A parameter name: letters, digits, `_`, `-`, `.` (Triton paths like instance_group.count).
_NAME = re.compile(r"-{0,2}[A-Za-z][A-Za-z0-9_.-]{0,79}")
_INT = re.compile(r"[+-]?[0-9]{1,15}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]{1,15}(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def as_bool(value: object) -> bool | None:
    """A boolean written any way a config or a flag writes one (true/on/yes/1), else None."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


# Printable ASCII without whitespace, quotes or shell metacharacters. Checked before any parsing so
# that a value like "8; rm -rf /" is refused for what it is, whatever the parameter's type.
_SAFE_TEXT = re.compile(r"[A-Za-z0-9_.:/@+,=-]*")


class InvalidChange(UserError):
    """A change refused before anything ran: unknown parameter, bad type, out of range, unsafe text."""


@dataclass(frozen=True)
class ParamSpec:
    name: str  # canonical: snake_case for vLLM; the config key (or dotted path) for Triton
    type: ParamType
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None  # strings: a full-match regex
    # Engine-specific addressing: the vLLM flag (bool: its --no- form), or where in a Triton config.
    flag: str | None = None
    negative_flag: str | None = None
    location: Literal["parameters", "field"] = "parameters"
    allow_absolute_paths: bool = False  # strings: may a value start with '/'?
    extra: dict[str, Any] = field(default_factory=dict)

    def coerce(self, raw: object) -> Value:
        """The typed value for `raw` (a string from a command line, or a JSON scalar), or InvalidChange."""
        if isinstance(raw, bool):
            text = "true" if raw else "false"
        elif isinstance(raw, (int, float)):
            if isinstance(raw, float) and not math.isfinite(raw):
                raise self._bad(raw, "is not a finite number")
            text = repr(raw)
        elif isinstance(raw, str):
            text = raw
        else:
            raise self._bad(raw, f"has type {type(raw).__name__}; expected a string, number or boolean")
        if not text or len(text) > 256:
            raise self._bad(raw, "must be 1-256 characters")
        if not _SAFE_TEXT.fullmatch(text):
            raise self._bad(raw, "contains whitespace, quotes, control or shell characters")
        value: Value
        if self.type == "int":
            if not _INT.fullmatch(text):
                raise self._bad(raw, "is not an integer")
            value = int(text)
        elif self.type == "float":
            if not _FLOAT.fullmatch(text):
                raise self._bad(raw, "is not a number")
            value = float(text)
            if not math.isfinite(value):
                raise self._bad(raw, "is not a finite number")
        elif self.type == "bool":
            lowered = text.lower()
            if lowered not in _TRUE | _FALSE:
                raise self._bad(raw, "is not a boolean (true/false)")
            return lowered in _TRUE
        elif text.startswith("-"):
            # A string that starts with '-' would read as an option in an argv: never a value here.
            raise self._bad(raw, "must not start with '-'")
        elif self.type == "enum":
            if text not in self.choices:
                raise self._bad(raw, f"is not one of {', '.join(self.choices)}")
            return text
        else:
            pattern = self.pattern or r"[A-Za-z0-9_.-]{1,64}"
            try:
                matched = fullmatch(pattern, text)
            except ValueError as exc:  # a spec built in code, past the config's compile check
                raise self._bad(raw, f"cannot be checked: {exc}") from None
            if not matched:
                raise self._bad(raw, f"does not match {pattern}")
            if ".." in text.split("/"):
                raise self._bad(raw, "has a '..' path segment")
            if text.startswith("/") and not self.allow_absolute_paths:
                raise self._bad(raw, "is an absolute path (the rule does not set allow_absolute_paths)")
            return text
        if self.min is not None and value < self.min:
            raise self._bad(raw, f"is below the minimum {self.min:g}")
        if self.max is not None and value > self.max:
            raise self._bad(raw, f"is above the maximum {self.max:g}")
        return value

    def _bad(self, raw: object, why: str) -> InvalidChange:
        shown = repr(raw)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return InvalidChange(f"{self.name}={shown} {why}")

    def describe(self) -> str:
        if self.type in ("int", "float"):
            lo = "-inf" if self.min is None else f"{self.min:g}"
            hi = "inf" if self.max is None else f"{self.max:g}"
            return f"{self.type} in [{lo}, {hi}]"
        if self.type == "enum":
            return "one of " + "|".join(self.choices)
        return self.type


def normalize_name(raw: str) -> str:
    """`--max-num-seqs`, `max-num-seqs` and `max_num_seqs` all name the same vLLM parameter."""
    if not isinstance(raw, str) or not _NAME.fullmatch(raw):
        raise InvalidChange(f"{raw!r} is not a parameter name")
    return raw.lstrip("-").replace("-", "_")


def _vllm(name: str, type_: ParamType, help_: str, **kw: Any) -> ParamSpec:
    flag = "--" + name.replace("_", "-")
    negative = "--no-" + name.replace("_", "-") if type_ == "bool" else None
    return ParamSpec(name=name, type=type_, help=help_, flag=flag, negative_flag=negative, **kw)


# vLLM engine arguments a rollout may change (all restart-only: they become VllmConfig at startup;
# see ../shared/reference/inference-servers.md 1.4). Ranges are what the engine itself accepts, capped
# at values that are plausible on one box.
VLLM_PARAMS: dict[str, ParamSpec] = {
    s.name: s
    for s in (
        _vllm("max_num_seqs", "int", "requests batched per step", min=1, max=65536),
        _vllm("max_num_batched_tokens", "int", "tokens scheduled per step", min=1, max=4_194_304),
        _vllm("enable_prefix_caching", "bool", "automatic prefix caching"),
        _vllm("enable_chunked_prefill", "bool", "split long prefills across steps"),
        _vllm(
            "block_size", "enum", "KV-cache block size in tokens", choices=("1", "8", "16", "32", "64", "128")
        ),
        _vllm("gpu_memory_utilization", "float", "share of GPU memory vLLM may use", min=0.05, max=0.99),
        _vllm("max_model_len", "int", "longest context served", min=16, max=10_485_760),
        _vllm(
            "kv_cache_dtype",
            "enum",
            "KV-cache element type",
            choices=("auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bfloat16", "float16"),
        ),
        _vllm(
            "prefix_caching_hash_algo",
            "enum",
            "block hash of the prefix cache",
            choices=("sha256", "sha256_cbor", "xxhash", "xxhash_cbor"),
        ),
        _vllm("swap_space", "float", "CPU swap space per GPU in GiB", min=0, max=1024),
        # `priority` serves the waiting queue by each request's priority: what the tracing client's
        # priority hints need (executor/hints.py); vLLM refuses a non-zero priority under `fcfs`.
        _vllm("scheduling_policy", "enum", "order of the waiting queue", choices=("fcfs", "priority")),
        # The KV cache's size, stated directly (the cache doctor's capacity lever): bytes, or blocks.
        _vllm(
            "kv_cache_memory_bytes",
            "int",
            "KV-cache size in bytes per worker (instead of gpu_memory_utilization's share)",
            min=1 << 20,
            max=1 << 42,
        ),
        _vllm(
            "num_gpu_blocks_override",
            "int",
            "KV-cache blocks, overriding the profiled count",
            min=1,
            max=1 << 24,
        ),
    )
}

_TRITON_STRING = r"[A-Za-z0-9_.-]{1,64}"

# Triton model-config entries: `parameters` keys (string-valued in the config; TRT-LLM's load-time
# knobs and the test kit's `textgen` model) and a few typed top-level fields.
TRITON_PARAMS: dict[str, ParamSpec] = {
    s.name: s
    for s in (
        # TensorRT-LLM backend (inference-servers.md 2.5: read at model load, no engine rebuild).
        ParamSpec("enable_kv_cache_reuse", "bool", "reuse KV blocks across requests (prefix caching)"),
        ParamSpec(
            "kv_cache_free_gpu_mem_fraction", "float", "share of free GPU memory for KV", min=0.01, max=0.99
        ),
        ParamSpec("max_tokens_in_paged_kv_cache", "int", "cap on KV cache tokens", min=1, max=1 << 31),
        ParamSpec(
            "kv_cache_host_memory_bytes", "int", "host pool for offloaded KV blocks", min=0, max=1 << 40
        ),
        ParamSpec("kv_cache_onboard_blocks", "bool", "bring offloaded blocks back to GPU on reuse"),
        ParamSpec(
            "batch_scheduler_policy",
            "enum",
            "in-flight batcher policy",
            choices=("max_utilization", "guaranteed_no_evict"),
        ),
        ParamSpec("enable_chunked_context", "bool", "context chunking"),
        ParamSpec("multi_block_mode", "bool", "multi-block attention kernels"),
        ParamSpec("cuda_graph_mode", "bool", "CUDA graphs for generation"),
        ParamSpec("stats_check_period_ms", "int", "metrics cadence", min=1, max=60_000),
        # The test kit's textgen model (data/triton_models/textgen).
        ParamSpec("delay_ms_per_token", "int", "simulated decode cost per token", min=0, max=10_000),
        ParamSpec("max_tokens_cap", "int", "upper bound on produced tokens", min=1, max=100_000),
        ParamSpec("default_max_tokens", "int", "tokens when a request names none", min=1, max=100_000),
        ParamSpec("variant", "string", "label echoed in every output", pattern=_TRITON_STRING),
        # Typed top-level fields of the model config.
        ParamSpec("instance_group.count", "int", "model instances", min=1, max=64, location="field"),
        ParamSpec(
            "dynamic_batching.max_queue_delay_microseconds",
            "int",
            "dynamic batcher delay",
            min=0,
            max=10_000_000,
            location="field",
        ),
    )
}

REGISTRIES: dict[str, dict[str, ParamSpec]] = {"vllm": VLLM_PARAMS, "triton": TRITON_PARAMS}


def lookup(registry: dict[str, ParamSpec], raw_name: str, engine: str) -> ParamSpec:
    spec = registry.get(normalize_name(raw_name))  # every registry key is in normal form
    if spec is None:
        known = ", ".join(sorted(registry))
        raise InvalidChange(f"unknown {engine} parameter {raw_name!r}; known: {known}")
    return spec
