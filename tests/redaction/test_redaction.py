"""daemon/redaction.py: what is secret and how it is masked; the log filter; the public view of a rollout."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from daemon.config import Config, MqttConfig, parse_config
from daemon.logs import RedactingFilter, setup_file_logging
from daemon.models import AuditEvent, Instance, Rollout
from daemon.redaction import (
    MASK,
    forget_all,
    is_secret_key,
    redact_argv,
    redact_config,
    redact_data,
    redact_text,
    redact_url,
    remember,
    secret_values,
)
from daemon.rollouts.repo import public_event, public_view

HF = "hf_SECRETtoken0123456789"
CONFIG = f"""
[storage]
url = "postgresql://charter:dbpw-SECRET-1@db.example:5432/charter"
[mqtt]
enabled = true
username = "charter"
password = "brokerpw-SECRET-2"
[[targets]]
name = "a"
url = "http://alice:urlpw-SECRET-3@10.0.0.1:8000"
metrics_url = "http://bob:mpw-SECRET-4@10.0.0.1:8002"
engine = "vllm"
[targets.launch]
argv = ["vllm", "serve", "m", "--api-key", "sk-SECRET-5", "--port", "8000"]
env = {{ HF_TOKEN = "{HF}", VLLM_LOGGING_LEVEL = "INFO" }}
allow_root = true
"""
SECRETS = ("dbpw-SECRET-1", "brokerpw-SECRET-2", "urlpw-SECRET-3", "mpw-SECRET-4", "sk-SECRET-5", HF, "INFO")


@pytest.fixture(autouse=True)
def _forget() -> None:
    forget_all()
    yield
    forget_all()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://user:pw@db/x", f"postgresql://user:{MASK}@db/x"),
        (
            "postgresql://user:p@ss:w@db:5432/x?sslmode=require",
            f"postgresql://user:{MASK}@db:5432/x?sslmode=require",
        ),
        ("https://TOKEN123@host/x", f"https://{MASK}@host/x"),  # a bare user part is how tokens are passed
        ("mqtt://u:p@broker:1883", f"mqtt://u:{MASK}@broker:1883"),
        ("http://h/x?token=abc&n=1", f"http://h/x?token={MASK}&n=1"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
        ("http://[::1", "http://[::1"),  # malformed: unchanged, no traceback
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_masks_credentials_in_free_text_but_not_token_counts() -> None:
    remember(["s3cr3t-value"])
    text = (
        "connect to postgresql://u:pw1@h/db failed; HF_TOKEN=hf_x1 {'api_key': 'k1'} "
        "argv ['vllm', '--api-key', 'k2'] --hf-token=k3 Authorization: Bearer abcdefgh12 echoed s3cr3t-value; "
        "prompt_tokens=12 max_tokens: 3 first token: 4"
    )
    out = redact_text(text)
    for secret in ("pw1", "hf_x1", "k1", "k2", "k3", "abcdefgh12", "s3cr3t-value"):
        assert secret not in out, out
    assert "prompt_tokens=12 max_tokens: 3 first token: 4" in out, "counts of tokens are not secrets"
    assert f"postgresql://u:{MASK}@h/db" in out


def test_short_remembered_values_do_not_blank_out_text() -> None:
    remember(["ab"])
    assert redact_text("a tab b") == "a tab b"


def test_redact_argv_masks_credential_flags_only() -> None:
    argv = ["vllm", "--api-key", "k", "--hf-token=t", "--max-num-seqs", "8", "--port=80"]
    assert redact_argv(argv) == [
        "vllm",
        "--api-key",
        MASK,
        f"--hf-token={MASK}",
        "--max-num-seqs",
        "8",
        "--port=80",
    ]


def test_redact_data_env_keys_urls_and_depth() -> None:
    data = {
        "previous_config": {
            "a": {"env": {"HF_TOKEN": HF, "X": "1"}, "argv": ["v", "--api-key", "k"], "cwd": "/srv"}
        },
        "url": "http://u:pw@h",
        "hf_token": "t1",
        "prompt_tokens": 5,
        "generation_tokens_per_s": 2.0,
    }
    out = redact_data(data)
    assert out["previous_config"]["a"] == {
        "env": {"HF_TOKEN": MASK, "X": MASK},
        "argv": ["v", "--api-key", MASK],
        "cwd": "/srv",
    }
    assert out["url"] == f"http://u:{MASK}@h" and out["hf_token"] == MASK
    assert out["prompt_tokens"] == 5 and out["generation_tokens_per_s"] == 2.0
    assert data["previous_config"]["a"]["env"]["HF_TOKEN"] == HF, "a copy: the input is not changed"
    deep: dict = {}
    cur = deep
    for _ in range(500):  # deeper than any payload: masked, no RecursionError
        cur["n"] = {}
        cur = cur["n"]
    assert "n" in redact_data(deep)


def test_config_secrets_are_found_and_masked_but_stay_readable() -> None:
    config = parse_config(CONFIG)
    assert config.mqtt.password == "brokerpw-SECRET-2", "callers (broker login) still read the plain value"
    assert config.targets[0].launch.env["HF_TOKEN"] == HF
    assert secret_values(config) >= set(SECRETS) - {"INFO"}
    assert "INFO" not in secret_values(config), "masked where shown, but not in every log line"
    shown = json.dumps(redact_config(config, exclude_none=True))
    for secret in SECRETS:
        assert secret not in shown
    out = redact_config(config)
    assert out["mqtt"]["password"] == MASK and out["mqtt"]["username"] == "charter"
    assert out["targets"][0]["launch"]["env"] == {"HF_TOKEN": MASK, "VLLM_LOGGING_LEVEL": MASK}
    assert out["targets"][0]["url"] == f"http://alice:{MASK}@10.0.0.1:8000"
    assert out["storage"]["url"] == f"postgresql://charter:{MASK}@db.example:5432/charter"
    assert redact_config(MqttConfig())["password"] is None, "an unset secret stays unset"
    assert redact_config(Config()) == Config().model_dump(mode="json"), "nothing secret: unchanged"


def test_log_file_lines_and_tracebacks_are_redacted(tmp_path: Path) -> None:
    log_file = tmp_path / "charter.log"
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        setup_file_logging(log_file)
        remember(["brokerpw-SECRET-2"])
        log = logging.getLogger("daemon.somewhere")
        log.info("daemon running: database %s", "postgresql://u:dbpw-SECRET-1@h/db")
        log.warning("target a is DOWN: refused (http://alice:urlpw-SECRET-3@10.0.0.1:8000/metrics)")
        try:
            raise RuntimeError("login as charter/brokerpw-SECRET-2 refused")
        except RuntimeError:
            log.exception("MQTT: HF_TOKEN=%s", HF)
        for handler in root.handlers:
            handler.flush()
        text = log_file.read_text()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    for secret in ("dbpw-SECRET-1", "urlpw-SECRET-3", "brokerpw-SECRET-2", HF):
        assert secret not in text, text
    assert f"postgresql://u:{MASK}@h/db" in text and "RuntimeError: login as charter/" in text


def test_filter_survives_a_bad_format_string() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %d of http://u:pw@h", ("nan",), None)
    assert RedactingFilter().filter(record)
    assert "pw@" not in record.getMessage() and "u:***@h" in record.getMessage()


def test_public_view_masks_what_is_shown_and_leaves_the_row_alone() -> None:
    row = Rollout(
        id=7,
        state="CANARY",
        title="max_num_seqs=16 on a",
        targets=["a"],
        changes=[{"param": "max_num_seqs", "value": 16, "model": None}],
        previous_config={
            "a": {
                "argv": ["vllm", "--api-key", "sk-1"],
                "env": {"HF_TOKEN": HF},
                "flags": {"max_num_seqs": 8},
            }
        },
        stage_detail={
            "order": ["a"],
            "failure_reason": "the process runs ['vllm', '--api-key', 'sk-1']",
            "progress": {"a": {"status": "applied", "readback": {"argv": ["--api-key", "sk-1"]}}},
        },
    )
    view = public_view(row)
    dumped = view.model_dump_json()
    assert "sk-1" not in dumped and HF not in dumped
    assert view.previous_config["a"]["env"] == {"HF_TOKEN": MASK}
    assert view.previous_config["a"]["flags"] == {"max_num_seqs": 8}, "what is not secret is shown as it is"
    assert view.id == 7 and view.changes == row.changes and view.state == "CANARY"
    assert (
        row.previous_config["a"]["env"]["HF_TOKEN"] == HF and row.previous_config["a"]["argv"][-1] == "sk-1"
    )

    event = AuditEvent(
        actor="daemon",
        entity="rollout",
        entity_id="7",
        action="failed",
        comment="applying failed: GET http://u:pw-9@h/health refused",
    )
    assert "pw-9" not in (public_event(event).comment or "") and "pw-9" in (event.comment or "")


def test_bench_view_shows_a_target_and_its_error_without_credentials() -> None:
    from charter_tui.render.bench import _error, target_label

    url = "http://alice:pw-SECRET-6@10.0.0.7:8000/"
    assert target_label(url, []) == "10.0.0.7:8000"
    configured = Instance(name="vllm-a", url=f"http://alice:{MASK}@10.0.0.7:8000")  # as stored: redacted
    assert target_label(url, [configured]) == "vllm-a", "a credentialed bench URL still finds its instance"
    assert "pw-SECRET-6" not in _error(f"target {url} serves no model").plain


def test_a_blue_green_ports_env_is_as_secret_as_the_launch_env() -> None:
    config = parse_config(
        """
[[targets]]
name = "bg"
url = "http://127.0.0.1:8000"
engine = "vllm"
[targets.launch]
argv = ["vllm", "serve", "m"]
[targets.launch.blue_green]
ports = [8101, 8102]
env = [{ HF_TOKEN = "hf_blue-SECRET-9" }, { HF_TOKEN = "hf_green-SECRET-9", CUDA_VISIBLE_DEVICES = "1" }]
"""
    )
    assert {"hf_blue-SECRET-9", "hf_green-SECRET-9"} <= secret_values(config)
    shown = redact_config(config)["targets"][0]["launch"]["blue_green"]
    assert shown["env"] == [{"HF_TOKEN": MASK}, {"HF_TOKEN": MASK, "CUDA_VISIBLE_DEVICES": MASK}]
    assert shown["ports"] == [8101, 8102]


def test_settings_that_count_or_pace_tokens_are_shown_and_credentials_still_masked() -> None:
    """A Triton rollout of `textgen:delay_ms_per_token` showed its before-value, its diff and its audit text
    as *** (issue 15 item 4): a key naming a token count or rate is a setting, not a credential."""
    for setting in ("textgen:delay_ms_per_token", "max_tokens", "num_prompt_tokens", "tokens_per_block"):
        assert not is_secret_key(setting), setting
    for credential in ("hf_token", "HF_TOKEN", "api_token", "access_token", "token", "auth_token"):
        assert is_secret_key(credential), credential
    shown = redact_data({"textgen:delay_ms_per_token": "2", "hf_token": "hf_abc123secret"})
    assert shown == {"textgen:delay_ms_per_token": "2", "hf_token": MASK}
    text = redact_text("{'textgen:delay_ms_per_token': {'string_value': '3'}} HF_TOKEN=hf_abc123secret")
    assert "'textgen:delay_ms_per_token': {'string_value': '3'}" in text and "hf_abc123secret" not in text
