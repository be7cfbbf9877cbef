"""The installed `charter-tui`: `config show`, `config path`, `rollouts list/show --json` and the daemon's
start lines (stderr and log file) print no password, token or URL credential."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.redaction import MASK
from daemon.rollouts import commands as cmd
from daemon.rollouts.repo import RolloutRepo
from daemon.store import Store
from testkit.ports import free_port

CHARTER = Path(sys.executable).parent / "charter-tui"
HF = "hf_SECRETtoken0123456789"
DB_PASSWORD = "dbpw-SECRET-1"
SECRETS = (DB_PASSWORD, "brokerpw-SECRET-2", "urlpw-SECRET-3", "mpw-SECRET-4", "sk-SECRET-5", HF)


def write_config(path: Path, target_port: int = 9) -> Path:
    path.write_text(f"""
[daemon]
metrics_port = 0
poll_interval_s = 0.5
[mqtt]
username = "charter"
password = "brokerpw-SECRET-2"
[[targets]]
name = "a"
url = "http://alice:urlpw-SECRET-3@127.0.0.1:{target_port}"
metrics_url = "http://bob:mpw-SECRET-4@127.0.0.1:{target_port}"
engine = "vllm"
[targets.launch]
argv = ["vllm", "serve", "m", "--api-key", "sk-SECRET-5", "--port", "{target_port}"]
env = {{ HF_TOKEN = "{HF}" }}
allow_root = true
""")
    return path


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHARTER), *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} printed:\n{text}"


@pytest.mark.parametrize("args", [["config", "show"], ["config", "show", "--json"]])
def test_config_show_masks_passwords_env_and_url_credentials(tmp_path: Path, args: list[str]) -> None:
    config = write_config(tmp_path / "c.toml")
    db = f"postgresql://charter:{DB_PASSWORD}@db.example/charter"
    result = run_cli("--config", str(config), *args, env={"CHARTER_TUI_DATABASE_URL": db})
    assert result.returncode == 0, result.stderr
    assert_clean(result.stdout + result.stderr)
    # What is not secret is still shown, and the masks say where the secrets were.
    assert "alice:***@127.0.0.1:9" in result.stdout and "HF_TOKEN" in result.stdout
    assert result.stdout.count(MASK) >= 5


@pytest.mark.parametrize("as_json", [False, True])
def test_config_path_masks_the_database_password(tmp_path: Path, as_json: bool) -> None:
    db = f"postgresql://charter:{DB_PASSWORD}@db.example:5432/charter?sslmode=require"
    result = run_cli("config", "path", *(["--json"] if as_json else []), env={"CHARTER_TUI_DATABASE_URL": db})
    assert result.returncode == 0, result.stderr
    assert_clean(result.stdout + result.stderr)
    shown = json.loads(result.stdout)["database"] if as_json else result.stdout
    assert f"postgresql://charter:{MASK}@db.example:5432/charter?sslmode=require" in shown


def test_rollouts_json_shows_the_public_view(tmp_path: Path) -> None:
    """A rollout whose stored previous config holds the launch env and argv: listed and shown masked."""
    db = f"sqlite:///{tmp_path / 'd.db'}"
    config = write_config(tmp_path / "c.toml")
    repo = RolloutRepo(Store(db))
    from daemon.config import load_config

    loaded = load_config(config)
    row = cmd.propose(
        repo, loaded.config, targets=["a"], changes=[{"param": "max_num_seqs", "value": 16}], actor="alice"
    )

    def record(d) -> None:  # noqa: ANN001 - a Draft
        d.previous_config["a"] = {
            "argv": ["vllm", "--api-key", "sk-SECRET-5"],
            "env": {"HF_TOKEN": HF},
            "flags": {"max_num_seqs": 8},
        }

    repo.mutate(
        row.id,
        record,
        actor="daemon",
        action="snapshot",
        comment="GET http://alice:urlpw-SECRET-3@127.0.0.1:9/health refused",
    )
    env = {"CHARTER_TUI_DATABASE_URL": db}
    for args in (
        ["rollouts", "list", "--json"],
        ["rollouts", "show", str(row.id), "--json"],
        ["rollouts", "show", str(row.id)],
    ):
        result = run_cli("--config", str(config), *args, env=env)
        assert result.returncode == 0, result.stderr
        assert_clean(result.stdout + result.stderr)
    shown = json.loads(
        run_cli("--config", str(config), "rollouts", "show", str(row.id), "--json", env=env).stdout
    )
    assert shown["rollout"]["previous_config"]["a"]["env"] == {"HF_TOKEN": MASK}
    assert shown["rollout"]["previous_config"]["a"]["flags"] == {"max_num_seqs": 8}
    assert repo.get(row.id).previous_config["a"]["env"] == {"HF_TOKEN": HF}, "the stored row is untouched"


@pytest.mark.postgres
def test_daemon_start_lines_and_log_file_carry_no_password(tmp_path: Path, postgres_url: str) -> None:
    """`charter-tui daemon` on PostgreSQL through a URL with a password (the server here trusts local
    connections, so the password is accepted whatever it is), polling a target whose URL has one too:
    its stderr line, its "daemon running" log line and the target's DOWN warning name neither."""
    scheme, rest = postgres_url.split("://", 1)
    user, where = rest.split("@", 1)
    db = f"{scheme}://{user}:{DB_PASSWORD}@{where}"  # the fixture's own schema, with a password in the URL
    log = tmp_path / "daemon.log"
    config = write_config(tmp_path / "c.toml", target_port=free_port())  # nothing listens: DOWN, logged
    env = {**os.environ, "CHARTER_TUI_DATABASE_URL": db, "CHARTER_TUI_LOG_FILE": str(log)}
    proc = subprocess.Popen(
        [str(CHARTER), "--config", str(config), "daemon"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            log.exists() and "daemon running" in log.read_text() and "target a is" in log.read_text()
        ):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert "daemon running" in text and "target a is" in text, text
    assert_clean(text)
    assert_clean(stderr)
    assert f":{MASK}@127.0.0.1:5432" in text and f":{MASK}@127.0.0.1:5432" in stderr
    assert f"bob:{MASK}@127.0.0.1" in text, "the DOWN warning names the metrics URL, masked"
