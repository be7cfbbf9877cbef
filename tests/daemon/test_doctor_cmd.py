"""`charter-tui doctor` on a real SQLite store: the samples a daemon would have written for a target with a
KV cache too small for the agent's working set, the agent and a sample of its inputs; the target is not
running, so tokens are estimated (one per word, executor/estimate.py) and every figure is worked by hand."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from charter_tui.cli import main
from daemon.models import Instance, InstanceState, MetricSample
from daemon.store import Store
from testkit.ports import free_port
from tests.executor.test_estimate import ONE_CALL


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    db = tmp_path / "charter.db"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[storage]\nurl = "sqlite:///{db}"\n[[targets]]\nname = "vllm-a"\nurl = "http://127.0.0.1:{free_port()}"\n'
    )
    agent = tmp_path / "agent.py"
    agent.write_text(ONE_CALL)
    inputs = tmp_path / "requests.jsonl"
    inputs.write_text('{"question": "q a b"}\n{"question": "q c d"}\n')
    store = Store(f"sqlite:///{db}")
    now = time.time()
    # Block size 4, a KV cache of 6 tokens: the two requests' estimate is 12 of 30 tokens (40%, by hand in
    # tests/executor/test_estimate.py), from 3 distinct reusable blocks (the shared 12-word prefix) = 12
    # tokens of working set: half of it fits.
    store.merge(
        Instance(
            name="vllm-a",
            url="http://127.0.0.1:1",
            engine="vllm",
            state=InstanceState.UP,
            info={"cache_config": {"block_size": "4", "kv_cache_size_tokens": "6"}},
        )
    )
    store.add_all(
        [
            MetricSample(
                instance="vllm-a",
                ts=now - 60 + i,
                engine="vllm",
                prefix_queries=100.0,
                prefix_hits=10.0,
                kv_cache_usage=0.99 if i < 5 else 0.5,
                running=2.0,
            )
            for i in range(10)
        ]
    )
    store.close()
    return config, agent, inputs


def test_doctor_names_capacity_first_with_its_numbers(setup, capsys) -> None:
    config, agent, inputs = setup
    code = main(
        [
            "--config",
            str(config),
            "doctor",
            "vllm-a",
            "--agent",
            str(agent),
            "--inputs",
            str(inputs),
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    steps = {s["name"]: s for s in json.loads(out)["steps"]}
    # ceiling 40%; capacity keeps half of it: 20 lost; delivered 10%; the 10 points left show as eviction
    # (KV usage at the top in half the window).
    assert [(n, s["points"]) for n, s in steps.items()] == [
        ("ceiling", 40.0),
        ("capacity", 20.0),
        ("resets", 0.0),
        ("routing", 0.0),
        ("eviction", 10.0),
        ("delivered", 10.0),
    ]
    assert (
        "working set 12 tokens at 2.0 requests running vs a KV cache of 6 tokens: 50% of it fits"
        in (steps["capacity"]["evidence"])
    )
    assert "not answering; tokens estimated" in err


def test_doctor_text_and_its_refusals(setup, capsys) -> None:
    config, agent, inputs = setup
    assert (
        main(["--config", str(config), "doctor", "vllm-a", "--agent", str(agent), "--inputs", str(inputs)])
        == 0
    )
    out = capsys.readouterr().out
    assert "  - capacity      20.0 pt  working set 12 tokens" in out and "lever: more KV memory" in out
    assert (
        main(["--config", str(config), "doctor", "nope", "--agent", str(agent), "--inputs", str(inputs)]) == 2
    )
    assert "no target 'nope' in the config (configured: vllm-a)" in capsys.readouterr().err
