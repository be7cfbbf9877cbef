"""`charter-tui rollouts ...` end to end through the real CLI entry point and a real SQLite file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import tomli_w

from charter_tui.cli import main
from daemon.models import AuditEvent, Rollout
from daemon.store import Store
from tests.rollouts.helpers import KNOB


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    state = tmp_path / "knob.json"
    state.write_text(json.dumps({"batch": "8"}))
    config = {
        "targets": [{"name": "knob", "url": "http://127.0.0.1:9"}],
        "rollouts": {
            "commands": {
                "knob": {
                    "apply": [sys.executable, str(KNOB), str(state), "set", "{param}", "{value}"],
                    "read": [sys.executable, str(KNOB), str(state), "get", "{param}"],
                    "params": {"batch": {"type": "int", "min": 1, "max": 512}},
                }
            }
        },
    }
    path = tmp_path / "config.toml"
    path.write_text(tomli_w.dumps(config))
    url = f"sqlite:///{tmp_path / 'c.db'}"
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", url)
    return path, state, url


def cli(config: Path, *argv: str) -> int:
    return main(["--config", str(config), *argv])


def test_propose_approve_show_and_refusals(env, capsys: pytest.CaptureFixture[str]) -> None:
    config, state, url = env
    assert (
        cli(config, "rollouts", "propose", "--target", "knob", "--set", "batch=16", "--reason", "queue") == 0
    )
    out = capsys.readouterr().out
    assert "rollout 1 proposed: batch=16 on knob" in out
    assert cli(config, "rollouts", "list") == 0
    assert "PENDING_APPROVAL" in capsys.readouterr().out
    assert cli(config, "rollouts", "approve", "1", "--comment", "looks right") == 0
    assert "rollout 1: APPROVED" in capsys.readouterr().out
    assert cli(config, "rollouts", "approve", "1") == 2
    assert "cannot approve rollout 1: it is APPROVED (it was already approved)" in capsys.readouterr().err
    assert cli(config, "rollouts", "show", "1") == 0
    shown = capsys.readouterr().out
    assert "state     APPROVED" in shown and "change    batch = 16" in shown and "looks right" in shown
    assert cli(config, "rollouts", "show", "1", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["action"] for e in data["events"]] == ["propose", "approve"]
    assert json.loads(state.read_text())["batch"] == "8", "the CLI never touches a target itself"
    # `--reason`, as `propose` spells it, is taken by the other commands too.
    assert cli(config, "rollouts", "pause", "1", "--reason", "lunch first") == 0
    capsys.readouterr()
    assert cli(config, "rollouts", "show", "1") == 0
    assert "lunch first" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8; rm -rf /", "shell characters"),
        ("8\nx", "shell characters"),
        ("0", "below the minimum"),
        ("1e9", "not an integer"),
    ],
)
def test_injection_and_range_are_refused_before_anything_is_stored(
    env, capsys, value: str, message: str
) -> None:
    config, state, url = env
    assert cli(config, "rollouts", "propose", "--target", "knob", "--set", f"batch={value}") == 2
    assert message in capsys.readouterr().err
    assert cli(config, "rollouts", "propose", "--target", "knob", "--set", "nope=1") == 2
    assert "unknown parameter 'nope'" in capsys.readouterr().err
    store = Store(url)
    assert store.all(AuditEvent, AuditEvent.entity == "rollout") == []
    calls = Path(str(state) + ".calls")
    assert not calls.exists(), "no command ran"


def test_readonly_refuses_every_mutation(env, capsys) -> None:
    config, _, _ = env
    assert cli(config, "rollouts", "propose", "--target", "knob", "--set", "batch=16") == 0
    for argv in (
        ["approve", "1"],
        ["reject", "1"],
        ["pause", "1"],
        ["resume", "1"],
        ["rollback", "1"],
        ["propose", "--target", "knob", "--set", "batch=2"],
    ):
        assert cli(config, "--readonly", "rollouts", *argv) == 2, argv
        assert "read-only" in capsys.readouterr().err
        assert main(["--readonly", "--config", str(config), "rollouts", *argv]) == 2
    assert cli(config, "rollouts", "--readonly", "list") == 0  # reading is fine


def test_dry_run_reads_the_current_value_and_stores_nothing(env, capsys) -> None:
    config, state, url = env
    assert cli(config, "rollouts", "propose", "--target", "knob", "--set", "batch=32", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "  batch: 8 -> 32" in out and "nothing stored" in out
    assert json.loads(state.read_text())["batch"] == "8"
    assert cli(config, "rollouts", "list", "--all") == 0
    assert "no rollouts" in capsys.readouterr().out


@pytest.fixture
def single_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    config = tmp_path / "config.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "targets": [
                    {"name": "v", "url": "http://127.0.0.1:9", "engine": "vllm", "launch": {"argv": ["vllm"]}}
                ]
            }
        )
    )
    url = f"sqlite:///{tmp_path / 'c.db'}"
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", url)
    return config, url


def test_approving_a_relaunch_of_the_only_server_warns_of_the_outage(
    single_vllm: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = single_vllm
    assert cli(config, "rollouts", "propose", "--target", "v", "--set", "max_num_seqs=8") == 0
    capsys.readouterr()
    assert cli(config, "rollouts", "approve", "1") == 0  # no terminal (a script): told, and it goes on
    out = capsys.readouterr()
    assert "rollout 1: APPROVED" in out.out
    assert out.err.startswith("note: v is this rollout's only server: the change relaunches it")
    assert "no relaunch of it is on record here; expect up to 600 s" in out.err
    assert "Add a second target" in out.err


def _relaunched_before(url: str, downtime_s: float) -> None:
    """Rollout 1 relaunched `v` once, and the vLLM actuator measured how long nothing served."""
    from daemon.rollouts.model import StageDetail, TargetProgress

    stage = StageDetail(
        order=["v"],
        progress={
            "v": TargetProgress(status="applied", applied_at=1000.0, readback={"downtime_s": downtime_s})
        },
    )
    with Store(url).session() as s:
        row = s.get(Rollout, 1)
        assert row is not None
        row.state, row.stage_detail = "COMPLETED", stage.model_dump(mode="json")
        s.add(row)
        s.commit()


def test_the_outage_quoted_is_the_last_measured_relaunch_and_a_terminal_user_may_decline(
    single_vllm: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, url = single_vllm
    assert cli(config, "rollouts", "propose", "--target", "v", "--set", "max_num_seqs=8") == 0
    _relaunched_before(url, 54.4)
    assert cli(config, "rollouts", "propose", "--target", "v", "--set", "max_num_seqs=16") == 0
    capsys.readouterr()

    class Terminal:  # stdin as a person's terminal: isatty, and what they type
        def __init__(self, typed: str) -> None:
            self.typed = typed

        def isatty(self) -> bool:
            return True

        def readline(self) -> str:
            return self.typed

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    assert cli(config, "rollouts", "approve", "2") == 1
    out = capsys.readouterr()
    assert "its last relaunch (rollout 1) left nothing serving for 54 s" in out.err
    assert "Approve anyway? [y/N]" in out.out + out.err and "rollout 2: not approved" in out.err
    with Store(url).session() as s:
        row = s.get(Rollout, 2)
        assert row is not None and row.state == "PENDING_APPROVAL"
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    assert cli(config, "rollouts", "approve", "2") == 0
    assert "rollout 2: APPROVED" in capsys.readouterr().out


def test_yes_approves_at_a_terminal_without_asking(
    single_vllm: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _ = single_vllm
    assert cli(config, "rollouts", "propose", "--target", "v", "--set", "max_num_seqs=8") == 0

    class Unanswerable:
        def isatty(self) -> bool:
            return True

        def readline(self) -> str:
            raise AssertionError("asked although --yes was given")

    monkeypatch.setattr(sys, "stdin", Unanswerable())
    assert cli(config, "rollouts", "approve", "1", "--yes") == 0
    out = capsys.readouterr()
    assert "rollout 1: APPROVED" in out.out and out.err.startswith("note: v is this rollout's only server")


def test_the_relaunch_quoted_is_the_latest_restores_included() -> None:
    """A failed relaunch restored by a second relaunch has no applied_at; its restore's outage is the
    latest one and is what the next approval quotes (a new user was quoted an older rollout's 114 s)."""
    from daemon.rollouts import commands as cmd
    from daemon.rollouts.model import StageDetail, TargetProgress

    def row(rid: int, **progress: object) -> Rollout:
        stage = StageDetail(progress={"v": TargetProgress(**progress)})  # type: ignore[arg-type]
        return Rollout(id=rid, targets=["v"], changes=[], stage_detail=stage.model_dump(mode="json"))

    history = [
        row(2, status="applied", applied_at=1000.0, readback={"downtime_s": 114.0}),
        row(4, status="restored", applied_at=None, restored_at=2000.0, readback={"downtime_s": 236.0}),
        row(5, status="applied", applied_at=1500.0, readback={"relaunched": False}),
    ]
    assert cmd.last_relaunch_s(history, "v") == (236.0, 4)
