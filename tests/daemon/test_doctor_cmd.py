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
        f'[storage]\nurl = "sqlite:///{db}"\n[[targets]]\nname = "vllm-a"\nengine = "vllm"\nurl = "http://127.0.0.1:{free_port()}"\n'
        '[targets.launch]\nargv = ["vllm", "serve", "m", "--kv-cache-memory-bytes", "32768"]\n'
    )
    agent = tmp_path / "agent.py"
    agent.write_text(ONE_CALL)
    inputs = tmp_path / "requests.jsonl"
    inputs.write_text('{"question": "q a b"}\n{"question": "q c d"}\n')
    store = Store(f"sqlite:///{db}")
    now = time.time()
    # Block size 4, a KV cache of 8 tokens (2 blocks), one request running at a time: the two requests'
    # estimate is 12 of 30 tokens (40%, by hand in tests/executor/test_estimate.py), from 3 distinct reusable
    # blocks (the shared 12-word prefix) = 12 tokens of working set. Request 1 computes 4 full blocks
    # (15 prompt + 3 generated tokens); freed tail first, the cache keeps its 2 head blocks, which request 2
    # hits: 8 of 30 tokens (26.7%).
    store.merge(
        Instance(
            name="vllm-a",
            url="http://127.0.0.1:1",
            engine="vllm",
            state=InstanceState.UP,
            info={
                "cache_config": {
                    "block_size": "4",
                    "kv_cache_size_tokens": "8",
                    "kv_cache_memory_bytes": "32768",
                }
            },
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
                running=1.0,
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
    # ceiling 40%; the server's cache allows 26.7%: 13.3 lost; delivered 10%; the 16.7 points left show as
    # eviction (KV usage at the top in half the window).
    assert [(n, s["points"]) for n, s in steps.items()] == [
        ("ceiling", 40.0),
        ("order", 0.0),  # request 2 comes after request 1, which computes the shared prefix
        ("capacity", 13.3),
        ("resets", 0.0),
        ("routing", 0.0),
        ("eviction", 16.7),
        ("delivered", 10.0),
    ]
    assert steps["capacity"]["evidence"] == (
        "the same requests replayed in order on an LRU cache of 8 tokens (the server's KV cache) hit 26.7%; "
        "working set 12 tokens; a cache of 12 tokens would keep them all"
    )
    # 12 tokens x 1.25 headroom = 15, + the null block = 19 tokens x 4,096 bytes: under 1 MiB, so 1 MiB.
    assert json.loads(out)["change"] == {
        "param": "kv_cache_memory_bytes",
        "value": 1 << 20,
        "basis": "4,096 bytes per token x 15 tokens",
        "overridden": None,
    }
    assert json.loads(out)["proposed"] is None
    assert "not answering; tokens estimated" in err


def test_doctor_text_and_its_refusals(setup, capsys) -> None:
    config, agent, inputs = setup
    assert (
        main(["--config", str(config), "doctor", "vllm-a", "--agent", str(agent), "--inputs", str(inputs)])
        == 0
    )
    out = capsys.readouterr().out
    assert "  - capacity      13.3 pt  the same requests replayed" in out and "lever: more KV memory" in out
    assert (
        main(["--config", str(config), "doctor", "nope", "--agent", str(agent), "--inputs", str(inputs)]) == 2
    )
    assert "no target 'nope' in the config (configured: vllm-a)" in capsys.readouterr().err


def test_doctor_proposes_the_capacity_change_through_the_rollout_gate(setup, capsys) -> None:
    config, agent, inputs = setup
    args = ["--config", str(config), "doctor", "vllm-a", "--agent", str(agent), "--inputs", str(inputs)]
    assert main([*args, "--propose"]) == 0
    out = capsys.readouterr().out
    assert "  change: kv_cache_memory_bytes = 1048576 (4,096 bytes per token x 15 tokens" in out
    assert "proposed as rollout 1: charter-tui rollouts approve 1" in out
    assert main(["--config", str(config), "rollouts", "show", "1", "--json"]) == 0
    shown, events = (lambda d: (d["rollout"], d["events"]))(json.loads(capsys.readouterr().out))
    assert shown["state"] == "PENDING_APPROVAL" and shown["targets"] == ["vllm-a"]
    assert [(c["param"], c["value"]) for c in shown["changes"]] == [("kv_cache_memory_bytes", 1048576)]
    assert shown["title"] == "KV cache for agent.py: kv_cache_memory_bytes = 1048576"
    assert "cache doctor: capacity costs 13.3 points" in json.dumps(events[0])


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90.0), ("5m", 300.0), ("1h", 3600.0), ("2d", 172800.0)]
)
def test_window_takes_durations(text: str, seconds: float) -> None:
    from charter_tui.commands.doctor_cmd import window

    assert window(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "-5m", "1.5h", "31d", "0s", "5w", "99999999s"])
def test_window_refuses_what_is_not_a_duration_and_says_so(setup, capsys, text: str) -> None:
    config, agent, inputs = setup
    args = ["--config", str(config), "doctor", "vllm-a", "--agent", str(agent), "--inputs", str(inputs)]
    assert main([*args, f"--window={text}"]) == 2
    err = capsys.readouterr().err
    assert "--window:" in err and repr(text) in err


def test_a_change_the_cpu_backend_would_override_is_not_proposed(setup, capsys) -> None:
    """vLLM's CPU backend applies VLLM_CPU_KVCACHE_SPACE over --kv-cache-memory-bytes (seen on the kit's
    vLLM 0.32: a 4 MiB flag ran a 1 GiB cache): a proposal would relaunch for nothing."""
    config, agent, inputs = setup
    config.write_text(config.read_text() + '[targets.launch.env]\nVLLM_CPU_KVCACHE_SPACE = "1"\n')
    args = ["--config", str(config), "doctor", "vllm-a", "--agent", str(agent), "--inputs", str(inputs)]
    assert main(args) == 0
    assert "but the launch env sets VLLM_CPU_KVCACHE_SPACE=1" in capsys.readouterr().out
    assert main([*args, "--propose"]) == 2
    assert "vllm-a: not proposed: the launch env sets VLLM_CPU_KVCACHE_SPACE=1" in capsys.readouterr().err


def test_doctor_with_only_a_target_says_what_the_cache_saved(tmp_path: Path, capsys) -> None:
    db = tmp_path / "charter.db"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[storage]\nurl = "sqlite:///{db}"\n[[targets]]\nname = "vllm-a"\nurl = "http://127.0.0.1:{free_port()}"\n'
        "price_per_million_prompt_tokens = 0.5\n"
    )
    store = Store(f"sqlite:///{db}")
    now = time.time()
    # Polled each second over the last 10 minutes with a 60 s window: 20 cached of 50 queried tokens a second,
    # and 3 s of prefill a window for its 1,800 computed tokens (1/600 s a token).
    store.add_all(
        [
            MetricSample(
                instance="vllm-a",
                ts=now - 600 + i,
                engine="vllm",
                window_s=60.0,
                prefix_queries=3000.0,
                prefix_hits=1200.0,
                prefill_seconds=3.0,
            )
            for i in range(600)
        ]
    )
    store.close()
    assert main(["--config", str(config), "doctor", "vllm-a", "--window", "1h", "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)["saved"]
    # 659 s covered (the first sample's window reaches 59 s before it): 20 tokens/s is 72,000 an hour.
    assert saved["cached_tokens_per_hour"] == pytest.approx(72_000.0)
    assert saved["prefill_s_per_token"] == pytest.approx(1 / 600)
    assert saved["prefill_seconds_saved_per_hour"] == pytest.approx(120.0)
    assert saved["money_saved_per_hour"] == pytest.approx(0.036)
    assert main(["--config", str(config), "doctor", "vllm-a", "--window", "1h"]) == 0
    out = capsys.readouterr().out
    assert "saved: 72,000 prefill tokens/h from the cache (40.0% of 180,000 prompt tokens/h" in out
    assert "120.0 prefill request-seconds/h at the server's 1.67 ms per computed token" in out
    assert "0.036/h at 0.5 per million prompt tokens" in out


def test_doctor_with_only_a_target_and_no_samples_says_how_to_get_them(setup, capsys) -> None:
    config, _, _ = setup
    assert main(["--config", str(config), "doctor", "vllm-a", "--window", "5s"]) == 2
    assert "vllm-a: no samples in the last 5s; is the daemon polling it?" in capsys.readouterr().err
