"""pytest fixtures for the real Triton server and a private Mosquitto broker of the test kit.

Loaded by `tests/conftest.py` as a plugin. Like every kit fixture they never skip: a missing kit or
binary fails the test with what is missing and the command that provides it.

- `triton_kit_dir` (session): runs `scripts/build-triton-kit.sh`, which builds the kit venv once
  (~20 s) and afterwards returns at once; always running it also repairs a half-built kit.
- `triton_server` (session): a real tritonserver over a private copy of `data/triton_models/`, with
  `textgen` LOADED from its on-disk config before the first test runs (so its config can be read back
  and its metrics exist from the start). Tests that change textgen's config should use `triton_textgen`.
- `textgen_baseline_config` (session): textgen's config as read back right after that first load.
- `triton_textgen` (function): the same server, with textgen put back to the baseline config first
  (by a load with the baseline as override: a plain reload does not undo an earlier override in 2.51).
- `mosquitto_broker` (session): a private anonymous broker on a free loopback port. For auth/ACL,
  call `testkit.mosquitto.start_mosquitto(users=..., acl=...)` in the test.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.mosquitto import MosquittoBroker, start_mosquitto
from testkit.ports import StartupError
from testkit.triton import TEST_MODEL, TritonServer, start_triton

REPO = Path(__file__).resolve().parent.parent
TRITON_BUILD_SCRIPT = REPO / "scripts" / "build-triton-kit.sh"


@pytest.fixture(scope="session")
def triton_kit_dir() -> Path:
    try:
        result = subprocess.run(
            ["bash", str(TRITON_BUILD_SCRIPT)], capture_output=True, text=True, timeout=1800
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"{TRITON_BUILD_SCRIPT} did not finish in 30 minutes; run it by hand to see why", pytrace=False
        )
    if result.returncode != 0 or not result.stdout.strip():
        pytest.fail(
            f"scripts/build-triton-kit.sh failed (exit {result.returncode}); run it by hand "
            f"(or `make testkit`) to see why:\n{result.stderr[-3000:]}",
            pytrace=False,
        )
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def triton_server(triton_kit_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A real tritonserver 2.51 on loopback, explicit model control, `textgen` loaded."""
    log_dir = tmp_path_factory.mktemp("triton")  # kept by pytest, so a failed test's server log survives
    try:
        with start_triton(triton_kit_dir, load=[TEST_MODEL], log_dir=log_dir) as server:
            yield server
    except StartupError as exc:
        pytest.fail(f"the Triton test server did not start: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def textgen_baseline_config(triton_server: TritonServer) -> dict[str, Any]:
    return triton_server.model_config(TEST_MODEL)


@pytest.fixture
def triton_textgen(triton_server: TritonServer, textgen_baseline_config: dict[str, Any]) -> TritonServer:
    """The session server with textgen READY on its baseline config, whatever an earlier test did."""
    current = None
    if triton_server.model_ready(TEST_MODEL):
        current = triton_server.model_config(TEST_MODEL)
    if current != textgen_baseline_config:
        triton_server.load_model(TEST_MODEL, textgen_baseline_config)
    return triton_server


@pytest.fixture(scope="session")
def mosquitto_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """A private Mosquitto (anonymous, no persistence) on a free loopback port for the session."""
    try:
        with start_mosquitto(keep_dir=tmp_path_factory.mktemp("mosquitto")) as broker:
            yield broker
    except StartupError as exc:
        pytest.fail(f"the private Mosquitto broker did not start: {exc}", pytrace=False)
