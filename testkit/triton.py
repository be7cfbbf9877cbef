"""A real Triton Inference Server (2.51, from the `nvidia-pytriton` wheel) on free loopback ports.

The kit (`scripts/build-triton-kit.sh`) provides a virtualenv holding the wheel, whose package carries
the `tritonserver` binary, its Python backend and a backend stub per Python version; the script copies
the stub for the venv's Python into the backend directory and writes `charter-triton-kit.env` with the
paths this module needs (so starting a server never imports pytriton).

Facts this module relies on (each one cost a failed start to learn):
- The Python backend's stub embeds libpython in *isolated* mode: it ignores PYTHONPATH and finds its
  packages by resolving `python3` on PATH. With the kit venv's `bin/` first on PATH it uses the venv
  (numpy<2, which the stub's old pybind11 needs: under numpy 2 every BYTES input arrives corrupted).
- tritonserver binds 0.0.0.0 unless each of `--http-address/--grpc-address/--metrics-address` says not to.
- On SIGTERM it waits up to `--exit-timeout-secs` (default 30) for models to unload; 5 s is plenty here.
- The Python backend keeps one shared-memory region per model instance in /dev/shm and does not always
  remove it (never after a crash); each server gets its own region prefix so the kit can clean up after
  itself without touching anybody else's regions.

Use it as a context manager::

    with start_triton(load=["textgen"]) as triton:
        httpx.post(f"{triton.http_url}/v2/models/textgen/generate", json={"text_input": "hi"})
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from daemon.paths import locations, repo_data_dir
from testkit.ports import StartupError, die_with_parent, free_port, log_tail

BUILD_HINT = "run `scripts/build-triton-kit.sh` (or `make testkit`) to build it"
KIT_ENV_FILE = "charter-triton-kit.env"
TEST_MODEL = "textgen"
_SHM_DIR = Path("/dev/shm")


class TritonKitMissing(StartupError):
    """The Triton test kit is not built (or is incomplete); the message says what and how to build it."""


class TritonError(RuntimeError):
    """A repository/inference call to the kit server failed; carries Triton's own error text."""


@dataclass(frozen=True)
class TritonKit:
    """Paths inside a built kit. `locate()` checks every one of them so a broken kit fails loudly."""

    venv: Path
    tritonserver: Path
    backends: Path
    libs: Path
    python_libdir: Path

    @classmethod
    def locate(cls, kit_dir: Path | None = None) -> TritonKit:
        kit = kit_dir or locations().testkit_dir
        venv = kit / "triton-venv"
        env_file = venv / KIT_ENV_FILE
        if not env_file.is_file():
            raise TritonKitMissing(f"the Triton test kit is missing: no {env_file}; {BUILD_HINT}")
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        try:
            pkg = Path(values["TRITON_PKG_DIR"])
            found = cls(
                venv=venv,
                tritonserver=pkg / "tritonserver" / "bin" / "tritonserver",
                backends=pkg / "tritonserver" / "backends",
                libs=Path(values["TRITON_LIBS_DIR"]),
                python_libdir=Path(values["TRITON_PYTHON_LIBDIR"]),
            )
        except KeyError as missing:
            raise TritonKitMissing(
                f"the Triton test kit at {venv} is incomplete ({env_file} has no {missing}); {BUILD_HINT}"
            ) from None
        required = {
            "tritonserver binary": found.tritonserver,
            "Python backend": found.backends / "python" / "libtriton_python.so",
            "Python backend stub": found.backends / "python" / "triton_python_backend_stub",
            "bundled libraries": found.libs,
            "venv python": venv / "bin" / "python3",
        }
        for what, path in required.items():
            if not path.exists():
                raise TritonKitMissing(
                    f"the Triton test kit at {venv} is incomplete: {what} {path} is missing; {BUILD_HINT}"
                )
        return found

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The server's environment: the venv first on PATH (see the module docstring for why) and
        the wheel's bundled libraries plus the venv's libpython on LD_LIBRARY_PATH."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), env.get("PATH", "/usr/bin:/bin")])
        ld = [str(self.libs), str(self.python_libdir)]
        if env.get("LD_LIBRARY_PATH"):
            ld.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(ld)
        env["VIRTUAL_ENV"] = str(self.venv)
        # The stub ignores these anyway; dropping them keeps a caller's settings from confusing anyone
        # reading the server's environment.
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        return env


def default_model_repository() -> Path:
    """The bundled test models (`data/triton_models/`)."""
    return repo_data_dir() / "triton_models"


def triton_argv(
    kit: TritonKit,
    repository: Path,
    *,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    shm_prefix: str,
    exit_timeout_s: int = 5,
    extra: Sequence[str] = (),
) -> list[str]:
    return [
        str(kit.tritonserver),
        f"--model-repository={repository}",
        f"--backend-directory={kit.backends}",
        # Explicit: nothing loads until asked, and the repository API (load/unload, config override) works.
        "--model-control-mode=explicit",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={metrics_port}",
        "--allow-gpu-metrics=false",
        # Off by default in 2.51; the collectors read the first-response histogram where it exists.
        "--metrics-config=histogram_latencies=true",
        # No GPU: do not try to allocate a 256 MB pinned host pool that nothing uses.
        "--pinned-memory-pool-byte-size=0",
        f"--exit-timeout-secs={exit_timeout_s}",
        f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
        *extra,
    ]


@dataclass
class TritonServer:
    """A running kit server. URLs: `http_url` and `metrics_url` are full URLs; `grpc_url` is the
    `host:port` form that `tritonclient.grpc.InferenceServerClient(url=...)` expects."""

    http_port: int
    grpc_port: int
    metrics_port: int
    repository: Path
    log_path: Path
    argv: list[str]
    shm_prefix: str
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    # Small synchronous helpers over the KServe v2 HTTP API. Tests of charter-tui's own clients should
    # use those clients; these exist so fixtures can put the server in a known state.

    def _post(self, path: str, body: Mapping[str, Any] | None, timeout_s: float) -> httpx.Response:
        response = httpx.post(f"{self.http_url}{path}", json=dict(body or {}), timeout=timeout_s)
        if response.status_code != 200:
            raise TritonError(f"POST {path} -> {response.status_code}: {_error_text(response)}")
        return response

    def load_model(
        self, name: str, config: Mapping[str, Any] | None = None, *, timeout_s: float = 120.0
    ) -> None:
        """Load (or reload) `name`. With `config`, it REPLACES the model's whole config.pbtxt for this
        load (Triton does not merge); without it, the config on disk is read again."""
        body: dict[str, Any] = {}
        if config is not None:
            body = {"parameters": {"config": json.dumps(dict(config))}}
        self._post(f"/v2/repository/models/{name}/load", body, timeout_s)

    def unload_model(self, name: str, *, timeout_s: float = 60.0) -> None:
        self._post(f"/v2/repository/models/{name}/unload", {}, timeout_s)
        # Unload returns before the instance is gone; wait so that a following load starts clean.
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = {m["name"]: m.get("state") for m in self.repository_index()}
            if states.get(name) != "READY":
                return
            time.sleep(0.1)
        raise TritonError(f"model {name} still READY {timeout_s:.0f} s after unload")

    def repository_index(self) -> list[dict[str, Any]]:
        # Triton's repository index is a JSON array of objects (model-repository extension).
        index: list[dict[str, Any]] = self._post("/v2/repository/index", {}, 10.0).json()
        return index

    def model_ready(self, name: str) -> bool:
        return httpx.get(f"{self.http_url}/v2/models/{name}/ready", timeout=5.0).status_code == 200

    def model_config(self, name: str) -> dict[str, Any]:
        response = httpx.get(f"{self.http_url}/v2/models/{name}/config", timeout=10.0)
        if response.status_code != 200:
            raise TritonError(f"GET config of {name} -> {response.status_code}: {_error_text(response)}")
        config: dict[str, Any] = response.json()  # the model configuration as a JSON object
        return config

    def generate(self, name: str, payload: Mapping[str, Any], *, timeout_s: float = 60.0) -> dict[str, Any]:
        reply: dict[str, Any] = self._post(f"/v2/models/{name}/generate", payload, timeout_s).json()
        return reply

    def metrics_text(self) -> str:
        return httpx.get(self.metrics_url, timeout=10.0).text

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text


def copy_model_repository(source: Path, destination: Path, models: Iterable[str] | None = None) -> Path:
    """Copy the model directories (all, or the named ones) into `destination`: the server may then have
    its config files rewritten or models added by a test without touching the source tree."""
    destination.mkdir(parents=True, exist_ok=True)
    names = (
        list(models)
        if models is not None
        else sorted(p.name for p in source.iterdir() if (p / "config.pbtxt").is_file())
    )
    for name in names:
        if not (source / name / "config.pbtxt").is_file():
            raise FileNotFoundError(
                f"no model {name!r} in {source} (expected {source / name / 'config.pbtxt'})"
            )
        shutil.copytree(source / name, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


def _wait_live(server: TritonServer, timeout_s: float) -> None:
    url = f"{server.http_url}/v2/health/live"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise StartupError(
                f"tritonserver exited with code {server.process.returncode} before {url} answered; "
                f"log {server.log_path}:\n{server.log_tail()}"
            )
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise StartupError(
        f"{url} did not answer 200 within {timeout_s:.0f} s; log {server.log_path}:\n" + server.log_tail()
    )


def stop_triton(server: TritonServer, grace_s: float = 20.0) -> None:
    """SIGTERM tritonserver alone (it unloads its models and stops their stubs itself; signalling the
    stubs at the same time would crash them mid-unload), SIGKILL the whole group after `grace_s`, then
    remove the shared-memory regions this server's Python backend left behind."""
    process = server.process
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group (the server if it ignored SIGTERM, orphaned stubs) goes now.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if process.poll() is None:
            process.wait(timeout=10)
    finally:
        for region in _SHM_DIR.glob(f"{server.shm_prefix}*"):
            region.unlink(missing_ok=True)


def _port_clash(log: Path) -> bool:
    text = log_tail(log, 200)
    return "already in use" in text or "Address already in use" in text


@contextmanager
def start_triton(
    kit_dir: Path | None = None,
    *,
    model_repository: Path | None = None,
    models: Iterable[str] | None = None,
    load: Iterable[str] = (),
    log_dir: Path | None = None,
    startup_timeout_s: float = 60.0,
    extra_args: Sequence[str] = (),
) -> Iterator[TritonServer]:
    """Start tritonserver on free loopback ports over a private copy of the model repository, wait for
    `/v2/health/live`, load the models named in `load`, yield the server, and stop it on exit.

    `model_repository` defaults to the bundled `data/triton_models/`; `models` limits what is copied.
    Missing kit -> `TritonKitMissing` naming what is missing and the build command.
    """
    kit = TritonKit.locate(kit_dir)
    workdir = Path(tempfile.mkdtemp(prefix="charter-triton-"))
    repository = copy_model_repository(
        model_repository or default_model_repository(), workdir / "models", models
    )
    log_dir = log_dir or workdir
    env = kit.environment()
    server: TritonServer | None = None
    try:
        # free_port() releases the port before tritonserver binds it; on the rare clash, try new ports.
        for attempt in range(3):
            http_port, grpc_port, metrics_port = _three_free_ports()
            shm_prefix = f"charter_triton_{uuid.uuid4().hex[:12]}_"
            argv = triton_argv(
                kit,
                repository,
                http_port=http_port,
                grpc_port=grpc_port,
                metrics_port=metrics_port,
                shm_prefix=shm_prefix,
                extra=extra_args,
            )
            log_path = log_dir / f"tritonserver-{http_port}.log"
            with open(log_path, "wb") as log:
                # Own session: a Ctrl-C in the terminal running pytest does not hit the server half-way;
                # the group lets stop_triton() SIGKILL stubs too if it must.
                process = subprocess.Popen(
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=workdir,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
            server = TritonServer(
                http_port=http_port,
                grpc_port=grpc_port,
                metrics_port=metrics_port,
                repository=repository,
                log_path=log_path,
                argv=argv,
                shm_prefix=shm_prefix,
                process=process,
            )
            try:
                _wait_live(server, startup_timeout_s)
                break
            except StartupError:
                stop_triton(server)
                if attempt < 2 and _port_clash(log_path):
                    server = None
                    continue
                raise
        assert server is not None
        for name in load:
            try:
                server.load_model(name)
            except TritonError as exc:
                raise StartupError(
                    f"tritonserver could not load {name!r}: {exc}; log {server.log_path}:\n"
                    + server.log_tail()
                ) from None
        yield server
    finally:
        if server is not None:
            stop_triton(server)
        # The private repository copy always goes; the log goes with it unless `log_dir` put it
        # elsewhere (pytest's tmp_path keeps a failed test's server log).
        shutil.rmtree(workdir, ignore_errors=True)


def _three_free_ports() -> tuple[int, int, int]:
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(free_port())
    a, b, c = sorted(ports)
    return a, b, c
