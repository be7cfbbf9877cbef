"""Shared fixtures: the real vLLM server of the test kit, plus the kit's Triton and Mosquitto fixtures.

Kit fixtures never skip: a missing kit fails the test with what is missing and the command that
builds it, because a test suite that silently skips its real-peer tests proves nothing.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.ports import StartupError
from testkit.vllm import VllmServer, start_vllm

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = [name for name in ("tests.kit_fixtures",) if importlib.util.find_spec(name)]


def build_kit(script: str) -> Path:
    """Run a kit builder (cached: a second run returns at once); its last line is the kit dir."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / script)], capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        pytest.fail(
            f"scripts/{script} failed (exit {result.returncode}); run it by hand to see why:\n"
            + result.stderr[-3000:],
            pytrace=False,
        )
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def vllm_kit_dir() -> Path:
    return build_kit("build-vllm-kit.sh")


@pytest.fixture(scope="session")
def vllm_server(vllm_kit_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """A real vLLM OpenAI server (tiny random Llama, prefix caching on, block size 32) for the session."""
    log_dir = tmp_path_factory.mktemp("vllm")
    try:
        with start_vllm(vllm_kit_dir, log_dir=log_dir) as server:
            yield server
    except StartupError as exc:
        pytest.fail(f"the vLLM test server did not start: {exc}", pytrace=False)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'charter.db'}"


@pytest.fixture(autouse=True)
def _forget_remembered_secrets() -> Iterator[None]:
    """The redactor's remembered secrets are process-wide (daemon/redaction.py): what one test's config made
    it remember must not mask another test's text (a remembered "http://" once turned an expected
    `http://alice:***@...` into `***alice:***@...` in tests/redaction, depending on which tests ran first)."""
    yield
    from daemon.redaction import forget_all

    forget_all()


@pytest.fixture(autouse=True)
def _isolated_xdg(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests out of the user's real config, data and state dirs (the kit cache stays shared)."""
    home = tmp_path_factory.mktemp("xdg")
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    monkeypatch.setenv(
        "CHARTER_TESTKIT_DIR", os.environ.get("CHARTER_TESTKIT_DIR") or f"{cache}/charter-tui/testkit"
    )
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state")):
        monkeypatch.setenv(var, str(home / sub))
    for var in ("CHARTER_TUI_CONFIG", "CHARTER_TUI_DATABASE_URL", "CHARTER_TUI_LOG_FILE"):
        monkeypatch.delenv(var, raising=False)
    # A daemon started with no targets would poll whatever servers other tests have listening;
    # tests/daemon/test_discovery.py turns discovery back on where it is the subject.
    monkeypatch.setenv("CHARTER_TUI_DISCOVER", "0")


POSTGRES_URL = os.environ.get("CHARTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL of the machine's PostgreSQL (database `test`) whose search path is a schema of this test's own,
    dropped after it: tests (and processes they start) share a database the way a fleet does, alone."""
    import sqlalchemy as sa

    schema = f"charter_t{os.getpid()}_{os.urandom(4).hex()}"
    admin = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is not reachable ({exc.orig}); start it with "
            "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'",
            pytrace=False,
        )
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
