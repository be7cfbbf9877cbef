"""Current values of the tunable parameters, read from the server wherever it tells them.

Sources, best first: what the server reports about itself (vLLM `vllm:cache_config_info` labels,
Triton `/v2/models/<m>/config`), then the target's configured launch argv (restart-only vLLM/SGLang
flags: what the process was started with), then the engine's documented default (marked as such).
Every value carries its source, which the recommendation shows next to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daemon.config import TargetConfig

# Documented defaults (vLLM 0.33 / TRT-LLM backend <= v0.19), used only when nothing else says.
DEFAULTS: dict[str, dict[str, Any]] = {
    "vllm": {
        "--enable-prefix-caching": True,
        "--block-size": 16,
        "--gpu-memory-utilization": 0.92,
        "--kv-cache-dtype": "auto",
        "--max-num-seqs": 256,
        "--max-num-batched-tokens": 2048,
        "--enable-chunked-prefill": True,
        "--quantization": None,
    },
    "triton": {
        "parameters.enable_kv_cache_reuse": False,
        "parameters.kv_cache_free_gpu_mem_fraction": 0.9,
        "parameters.batch_scheduler_policy": "guaranteed_no_evict",
        "parameters.kv_cache_host_memory_bytes": 0,
        "parameters.enable_chunked_context": False,
    },
    "sglang": {
        "--disable-radix-cache": False,
        "--schedule-policy": "fcfs",
        "--mem-fraction-static": None,
        "--max-running-requests": None,
        "--chunked-prefill-size": None,
    },
    "tgi": {"--max-concurrent-requests": 128, "--quantize": None},
    "llamacpp": {"--parallel": 1, "--cache-reuse": 0},
}

_BOOL = {"true": True, "false": False, "1": True, "0": False}


def _coerce(text: str) -> Any:
    low = text.strip().lower()
    if low in _BOOL:
        return _BOOL[low]
    if low in ("none", "null", ""):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


@dataclass
class Settings:
    engine: str
    values: dict[str, tuple[Any, str]] = field(default_factory=dict)  # parameter -> (value, source)

    def get(self, parameter: str) -> tuple[Any, str]:
        if parameter in self.values:
            return self.values[parameter]
        default = DEFAULTS.get(self.engine, {})
        if parameter in default:
            return default[parameter], "engine default"
        return None, "unknown"

    def value(self, parameter: str) -> Any:
        return self.get(parameter)[0]


def parse_argv(argv: list[str]) -> dict[str, Any]:
    """`--flag value`, `--flag=value`, bare `--flag` (True) and `--no-flag` (False)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            if "=" in arg:
                k, v = arg.split("=", 1)
                out[k] = _coerce(v)
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                out[arg] = _coerce(argv[i + 1])
                i += 1
            elif arg.startswith("--no-"):
                out["--" + arg[5:]] = False
            else:
                out[arg] = True
        i += 1
    return out


def read_settings(target: TargetConfig | None, engine: str, info: dict[str, Any]) -> Settings:
    """Build the current settings of one target from the instance info the poller keeps."""
    s = Settings(engine=engine)
    if target is not None and target.launch is not None:
        for k, v in parse_argv(target.launch.argv).items():
            s.values[k] = (v, "launch argv")
    cache = info.get("cache_config") or {}
    for label, param in (
        ("enable_prefix_caching", "--enable-prefix-caching"),
        ("block_size", "--block-size"),
        ("gpu_memory_utilization", "--gpu-memory-utilization"),
        ("cache_dtype", "--kv-cache-dtype"),
    ):
        if label in cache:
            s.values[param] = (_coerce(cache[label]), "vllm:cache_config_info")
    for label in (
        "num_gpu_blocks",
        "kv_cache_memory_bytes",
        "kv_cache_size_tokens",
        "user_specified_block_size",
    ):
        if label in cache:
            s.values[label] = (_coerce(cache[label]), "vllm:cache_config_info")
    for model, config in (info.get("model_configs") or {}).items():
        src = f"model config ({model})"
        for name, p in (config.get("parameters") or {}).items():
            if isinstance(p, dict) and "string_value" in p:
                s.values[f"parameters.{name}"] = (_coerce(str(p["string_value"])), src)
        if "max_batch_size" in config:
            s.values["max_batch_size"] = (config["max_batch_size"], src)
        dyn = config.get("dynamic_batching")
        if isinstance(dyn, dict):
            s.values["dynamic_batching.max_queue_delay_microseconds"] = (
                int(dyn.get("max_queue_delay_microseconds", 0) or 0),
                src,
            )
        groups = config.get("instance_group") or []
        if groups and isinstance(groups[0], dict):
            s.values["instance_group.count"] = (int(groups[0].get("count", 1) or 1), src)
        s.values["triton_model"] = (model, src)
    if info.get("platform") in ("cpu", "gpu", "unknown"):
        s.values["platform"] = (info["platform"], "server process")  # procs.local_vllm_platform
    if info.get("backend") == "tensorrtllm":
        s.values["backend"] = ("tensorrtllm", "metrics")
    return s
