"""The installed `charter-tui` command: help, config paths, config errors without tracebacks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from charter_tui.cli import main
from daemon.config import Config, parse_config

REPO = Path(__file__).resolve().parents[2]
CHARTER = Path(sys.executable).parent / "charter-tui"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert CHARTER.exists(), f"the console script is not installed at {CHARTER}"
    return subprocess.run(
        [str(CHARTER), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60
    )


@pytest.mark.parametrize(
    "args", [["--help"], ["daemon", "--help"], ["config", "--help"], ["config", "path", "--help"]]
)
def test_help_answers(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: charter-tui")


def test_config_path_honours_env_overrides(tmp_path: Path) -> None:
    result = run_cli(
        "config",
        "path",
        "--json",
        env={
            "CHARTER_TUI_CONFIG": str(tmp_path / "c.toml"),
            "CHARTER_TUI_DATABASE_URL": "sqlite:////x/y.db",
            "XDG_STATE_HOME": str(tmp_path / "state"),
        },
    )
    # A named config that does not exist is an error for everything but `config init`.
    assert result.returncode == 2 and "no such file" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "c.toml").write_text("")
    import json

    result = run_cli(
        "config",
        "path",
        "--json",
        env={
            "CHARTER_TUI_CONFIG": str(tmp_path / "c.toml"),
            "CHARTER_TUI_DATABASE_URL": "sqlite:////x/y.db",
            "XDG_STATE_HOME": str(tmp_path / "state"),
        },
    )
    paths = json.loads(result.stdout)
    assert paths["config"] == str(tmp_path / "c.toml")
    assert paths["database"] == "sqlite:////x/y.db"
    assert paths["log"] == str(tmp_path / "state" / "charter-tui" / "charter-tui.log")


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[daemon]\npoll_intervall_s = 1\n", "daemon.poll_intervall_s", "unknown key"),
        ('[daemon]\npoll_interval_s = "fast"\n', "daemon.poll_interval_s", "valid number"),
        ('[[targets]]\nname = "a"\nurl = "localhost:8000"\n', "targets[0].url", "not an http(s) URL"),
        ('[[targets]]\nname = "a"\nurl = "http://h:70000"\n', "targets[0].url", "bad port"),
        (
            "[thresholds]\nkv_cache_usage_high = 1.5\n",
            "thresholds.kv_cache_usage_high",
            "less than or equal to 1",
        ),
        (
            "[[targets]]\nname='a'\nurl='http://h'\n[[targets]]\nname='a'\nurl='http://g'\n",
            "targets",
            "used twice",
        ),
        ("[daemon\n", "", "not valid TOML"),
    ],
)
def test_config_errors_name_file_key_and_reason(
    tmp_path: Path, capsys, text: str, key: str, reason: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["--config", str(path), "config", "show"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and key in err and reason in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_config_init_writes_the_commented_default_and_refuses_to_clobber(tmp_path: Path, capsys) -> None:
    path = tmp_path / "sub" / "config.toml"
    assert main(["--config", str(path), "config", "init"]) == 0
    text = path.read_text()
    assert text.count("\n#") > 20, "the default config explains its keys"
    assert parse_config(text) == Config()
    assert main(["--config", str(path), "config", "init"]) == 2
    assert "exists" in capsys.readouterr().err
    path.write_text("[daemon]\nreadonly = true\n")
    assert main(["--config", str(path), "config", "init", "--force"]) == 0
    assert (tmp_path / "sub" / "config.toml.bak").read_text() == "[daemon]\nreadonly = true\n"


def test_config_show_prints_the_effective_config(tmp_path: Path, capsys) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[targets]]\nname = "v"\nurl = "http://127.0.0.1:8000/"\n')
    assert main(["--config", str(path), "config", "show", "--json"]) == 0
    import json

    shown = json.loads(capsys.readouterr().out)
    assert shown["targets"][0]["url"] == "http://127.0.0.1:8000"  # normalised
    assert shown["daemon"]["poll_interval_s"] == 1.0  # defaults filled in


def test_default_config_ships_with_the_package() -> None:
    assert (REPO / "data" / "config" / "default.toml").is_file()
    assert shutil.which("charter-tui", path=str(CHARTER.parent))


def test_one_metrics_endpoint_rule_for_every_caller() -> None:
    """The poller, the vLLM actuator and the bench tracer all ask `metrics_endpoint` where /metrics is."""
    from daemon.config import TargetConfig, metrics_endpoint

    assert TargetConfig(name="a", url="http://h:8000").metrics_endpoint == "http://h:8000/metrics"
    assert (
        TargetConfig(name="t", url="http://h:8000", metrics_url="http://h:8002").metrics_endpoint
        == "http://h:8002/metrics"
    )
    assert (
        TargetConfig(name="t", url="http://h:8000", metrics_url="http://h:8002/metrics/").metrics_endpoint
        == "http://h:8002/metrics"
    )
    assert metrics_endpoint("http://h:8000/v1/") == "http://h:8000/metrics", (
        "an OpenAI base URL's server root"
    )


def test_the_commented_targets_uncommented_give_the_launch_to_the_vllm_target() -> None:
    """`config init` had the vLLM `[targets.launch]` example under the Triton target: uncommented, it
    would have launched Triton's target with vLLM's argv."""
    import re

    from daemon.config import parse_config
    from daemon.paths import repo_data_dir

    text = (repo_data_dir() / "config" / "default.toml").read_text()
    head, marker, examples = text.partition("# One [[targets]] table per inference server.")
    uncommented = "\n".join(
        line[2:] if re.match(r"# (\[|\w+ = )", line) else line for line in examples.splitlines()
    )
    config = parse_config(head + marker + uncommented, "default.toml (targets uncommented)")
    assert [(t.name, t.engine, t.launch is not None, t.source) for t in config.targets] == [
        ("vllm-0", "auto", True, "scrape"),
        ("triton-0", "triton", False, "scrape"),
        ("gpu-1", "auto", False, "prometheus"),
    ]
