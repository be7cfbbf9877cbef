"""Synthetic canary probes (issue 15 item 3): refused and failed requests count against a canary.

The probed servers are real: a closed loopback port (every probe refused, as while a relaunched vLLM is
down) and the test kit's vLLM (every probe answered). The change itself goes through the knob command
actuator, whose health check does not look at the server, so only the probes can see it is not serving.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from daemon.config import ConfigError, SignalThreshold, parse_config
from daemon.rollouts import commands as cmd
from daemon.rollouts.manager import RolloutManager
from daemon.rollouts.model import Comparison
from daemon.rollouts.model import RolloutState as S
from daemon.rollouts.probes import ProbeResult, failing_in_a_row, judge_probes, with_probes
from daemon.rollouts.repo import stage_of
from daemon.store import Store
from tests.rollouts.helpers import drive, knob_config, knob_value

FINAL = {S.COMPLETED, S.ROLLED_BACK, S.PAUSED, S.REJECTED}


@pytest.fixture
def store(sqlite_url: str) -> Store:
    s = Store(sqlite_url)
    yield s
    s.close()


def probed(config, url: str):  # type: ignore[no-untyped-def]
    target = config.targets[0].model_copy(update={"url": url, "canary_probes": True})
    return config.model_copy(update={"targets": [target]})


async def test_a_canary_refusing_every_probe_is_stopped_early_and_restored(
    tmp_path: Path, store: Store
) -> None:
    config, states = knob_config(tmp_path, ["a"], canary_window_s=120.0, probe_interval_s=0.2)
    config = probed(config, "http://127.0.0.1:9")  # nothing listens: every request is refused
    manager = RolloutManager(config, store, state_dir=tmp_path)
    row = cmd.propose(
        manager.repo, config, targets=["a"], changes=[{"param": "batch", "value": "16"}], actor="al"
    )
    cmd.apply_command(manager.repo, "approve", row.id, actor="bob")
    started = time.monotonic()
    final = await drive(manager, row.id, FINAL, timeout_s=60)
    assert final.state == "ROLLED_BACK" and knob_value(states["a"]) == "8"
    reason = stage_of(final).failure_reason or ""
    assert reason.startswith("stopped early: 3 synthetic probes in a row failed (last: ConnectError"), reason
    assert time.monotonic() - started < 60, "stopped long before the 120 s window"


async def test_probes_off_by_default_leave_a_refusing_server_unprobed(tmp_path: Path, store: Store) -> None:
    """The same canary without `canary_probes`: nothing is sent to it, and (no traffic) it pauses undecided."""
    config, _ = knob_config(tmp_path, ["a"], canary_window_s=1.0, probe_interval_s=0.2)
    manager = RolloutManager(config, store, state_dir=tmp_path)
    row = cmd.propose(
        manager.repo, config, targets=["a"], changes=[{"param": "batch", "value": "16"}], actor="al"
    )
    cmd.apply_command(manager.repo, "approve", row.id, actor="bob")
    final = await drive(manager, row.id, FINAL)
    assert final.state == "PAUSED"
    assert not [s for s in final.comparison["signals"] if s["signal"] == "probe_error_rate"]
    assert manager.probes.results(row.id, 0.0) == []


def requests_finished(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:request_success_total{")
    )


@pytest.mark.vllm
async def test_a_serving_canary_answers_its_probes_and_they_are_judged(
    vllm_server, tmp_path: Path, store: Store
) -> None:
    config, _ = knob_config(tmp_path, ["a"], canary_window_s=6.0, probe_interval_s=0.3, min_samples=3)
    config = probed(config, vllm_server.url)
    manager = RolloutManager(config, store, state_dir=tmp_path)
    before = requests_finished(vllm_server.url)
    row = cmd.propose(
        manager.repo, config, targets=["a"], changes=[{"param": "batch", "value": "16"}], actor="al"
    )
    cmd.apply_command(manager.repo, "approve", row.id, actor="bob")
    final = await drive(manager, row.id, FINAL, timeout_s=120)
    probes = next(s for s in final.comparison["signals"] if s["signal"] == "probe_error_rate")
    assert probes["verdict"] == "pass" and probes["failed"] == 0 and probes["canary_n"] >= 3, probes
    # The probes were real requests the server finished.
    assert requests_finished(vllm_server.url) - before >= probes["canary_n"]
    # No traffic samples: the latency signal is undecided, so the rollout waits for a person.
    assert final.state == "PAUSED" and final.comparison["verdict"] == "INCONCLUSIVE"
    # Once the canary is judged, probing stops.
    await manager.step_all()
    assert manager.probes.results(row.id, 0.0) == []


def test_judging_probes_uses_the_error_rate_floor_and_needs_enough_of_them() -> None:
    floor = SignalThreshold(max_regression=0.0, min_abs_change=0.01)
    ok = [ProbeResult(float(i), True, 0.01) for i in range(99)]
    assert judge_probes(ok, floor, 10)["verdict"] == "pass"
    one_bad = [*ok, ProbeResult(100.0, False, 1.0, "HTTP 500")]
    assert judge_probes(one_bad, floor, 10)["verdict"] == "pass"  # 1% is not over the 1% floor
    two_bad = [*one_bad, ProbeResult(101.0, False, 1.0, "HTTP 503")]
    verdict = judge_probes(two_bad, floor, 10)
    assert verdict["verdict"] == "fail" and verdict["reason"].startswith("synthetic probes: 2 of 101 failed")
    assert "last: HTTP 503" in verdict["reason"]
    assert judge_probes(two_bad[-5:], floor, 10)["verdict"] == "insufficient"
    assert [r.error for r in failing_in_a_row(two_bad)] == ["HTTP 500", "HTTP 503"]
    assert failing_in_a_row(ok) == []
    passing = Comparison(
        verdict="PASS", summary="ttft within threshold", signals=[{"signal": "ttft_p95_s", "verdict": "pass"}]
    )
    judged = with_probes(passing, verdict)
    assert judged.verdict == "FAIL" and judged.summary.startswith("synthetic probes: 2 of 101 failed")
    assert with_probes(passing, judge_probes(two_bad[-5:], floor, 10)).verdict == "PASS"


def test_a_triton_target_cannot_turn_probes_on() -> None:
    with pytest.raises(ConfigError, match="canary_probes needs an OpenAI-compatible server"):
        parse_config(
            '[[targets]]\nname = "t"\nurl = "http://127.0.0.1:8000"\nengine = "triton"\ncanary_probes = true\n'
        )
    cfg = parse_config('[[targets]]\nname = "v"\nurl = "http://127.0.0.1:8000"\nengine = "vllm"\n')
    assert cfg.targets[0].canary_probes is False  # off unless asked for
