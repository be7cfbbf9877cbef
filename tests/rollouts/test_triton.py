"""Rollouts on the real Triton server of the test kit (repository API, full config override).

Traffic is real (generate requests) and measured; the manager runs exactly as in the daemon. The
textgen model's `parameters` change its behaviour, so a rollout has an effect the test can see:
`variant` is echoed in every answer, `delay_ms_per_token` makes each answer slower.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Config, DaemonConfig, RolloutConfig, SignalThreshold, TargetConfig
from daemon.rollouts import commands as cmd
from daemon.rollouts.manager import RolloutManager
from daemon.rollouts.model import RolloutState as S
from daemon.rollouts.repo import RolloutRepo, stage_of
from daemon.store import Store
from testkit.triton import TEST_MODEL, TritonKit, TritonServer, start_triton
from tests.rollouts import helpers
from tests.rollouts.helpers import events, states_visited, trail
from tests.rollouts.traffic import LoadSampler, triton_request

pytestmark = pytest.mark.triton
FINAL = {S.COMPLETED, S.ROLLED_BACK, S.PAUSED, S.REJECTED}
REPO_ROOT = Path(__file__).resolve().parents[2]


def triton_config(servers: dict[str, TritonServer], **overrides: Any) -> Config:
    settings: dict[str, Any] = dict(
        warmup_s=0.5,
        canary_window_s=4.0,
        baseline_window_s=6.0,
        min_samples=4,
        default_signals=["e2e_p95_s", "error_rate"],
        step_interval_s=0.2,
        apply_timeout_s=60.0,
        # Latency on a shared, loaded 2-core box is noisy: the regression under test is ~20x and +380 ms
        # (100 ms per token, 4 tokens), so only a 3x and +250 ms change counts.
        thresholds={"e2e_p95_s": SignalThreshold(max_regression=3.0, min_abs_change=0.25)},
    )
    settings.update(overrides)
    targets = [
        TargetConfig(
            name=name, url=s.http_url, metrics_url=s.metrics_url, engine="triton", models=[TEST_MODEL]
        )
        for name, s in servers.items()
    ]
    return Config(daemon=DaemonConfig(metrics_port=0), targets=targets, rollouts=RolloutConfig(**settings))


async def run_until(manager: RolloutManager, rollout_id: int, until: set[S]) -> Any:
    return await helpers.run_until(
        manager, rollout_id, until, timeout_s=120.0, poll_s=0.1, stop_timeout_s=300
    )


def params(server: TritonServer) -> dict[str, str]:
    return {k: v["string_value"] for k, v in server.model_config(TEST_MODEL)["parameters"].items()}


def reset(server: TritonServer, baseline: dict[str, Any]) -> None:
    if not server.model_ready(TEST_MODEL) or server.model_config(TEST_MODEL) != baseline:
        server.load_model(TEST_MODEL, baseline)


@pytest.fixture(scope="module")
def second_triton(triton_kit_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    with start_triton(
        triton_kit_dir, load=[TEST_MODEL], log_dir=tmp_path_factory.mktemp("triton-b")
    ) as server:
        yield server


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    s = Store(sqlite_url)
    yield s
    s.close()


async def test_approved_change_passes_validation_and_is_read_back(
    triton_textgen, textgen_baseline_config, store, tmp_path
) -> None:
    config = triton_config({"triton-a": triton_textgen})
    manager = RolloutManager(config, store, state_dir=tmp_path)
    with LoadSampler(store, {"triton-a": triton_request(triton_textgen.http_url)}):
        await asyncio.sleep(3.5)  # a baseline of measured samples before the change
        row = cmd.propose(
            manager.repo,
            config,
            targets=["triton-a"],
            actor="alice",
            reason="try the canary variant",
            changes=[
                {"param": "variant", "value": "canary-a"},
                {"param": "delay_ms_per_token", "value": "1"},
            ],
        )
        cmd.apply_command(manager.repo, "approve", row.id, actor="bob")
        final = await run_until(manager, row.id, FINAL)
    assert final.state == "COMPLETED", (final.comparison, stage_of(final).failure_reason)
    assert final.comparison["verdict"] == "PASS"
    assert final.comparison["baseline"]["kind"] == "self-before"
    e2e = next(s for s in final.comparison["signals"] if s["signal"] == "e2e_p95_s")
    assert e2e["baseline_n"] >= 4 and e2e["canary_n"] >= 4
    # The change, read back from the server, and its effect on real answers.
    assert params(triton_textgen)["variant"] == "canary-a"
    assert params(triton_textgen)["delay_ms_per_token"] == "1"
    answer = triton_textgen.generate(TEST_MODEL, {"text_input": "x y", "max_tokens": 2})
    assert answer["text_output"].startswith("[canary-a]")
    # The recorded previous config is exactly what the server ran before.
    assert final.previous_config["triton-a"]["models"][TEST_MODEL] == textgen_baseline_config
    assert states_visited(store, row.id) == [
        "PENDING_APPROVAL",
        "APPROVED",
        "CANARY",
        "VALIDATING",
        "ROLLING_OUT",
        "COMPLETED",
    ]


async def test_regressing_change_is_rolled_back_to_the_recorded_config(
    triton_textgen, textgen_baseline_config, store, tmp_path
) -> None:
    config = triton_config({"triton-a": triton_textgen})
    manager = RolloutManager(config, store, state_dir=tmp_path)
    with LoadSampler(store, {"triton-a": triton_request(triton_textgen.http_url)}):
        await asyncio.sleep(3.5)
        row = cmd.propose(
            manager.repo,
            config,
            targets=["triton-a"],
            actor="alice",
            changes=[{"param": "delay_ms_per_token", "value": "100"}],
        )
        cmd.apply_command(manager.repo, "approve", row.id, actor="bob")
        final = await run_until(manager, row.id, FINAL)
    assert final.state == "ROLLED_BACK", (trail(store, row.id), final.comparison)
    assert final.comparison["verdict"] == "FAIL"
    e2e = next(s for s in final.comparison["signals"] if s["signal"] == "e2e_p95_s")
    assert e2e["verdict"] == "fail" and e2e["canary"] > e2e["baseline"] + 0.25
    recorded = final.previous_config["triton-a"]["models"][TEST_MODEL]
    assert triton_textgen.model_config(TEST_MODEL) == recorded == textgen_baseline_config
    assert states_visited(store, row.id)[-3:] == ["VALIDATING", "FAILED", "ROLLED_BACK"]


async def test_canary_then_the_rest_follow(
    triton_textgen, second_triton, textgen_baseline_config, store, tmp_path
) -> None:
    reset(second_triton, textgen_baseline_config)
    servers = {"triton-a": triton_textgen, "triton-b": second_triton}
    config = triton_config(servers)
    manager = RolloutManager(config, store, state_dir=tmp_path)
    with LoadSampler(store, {n: triton_request(s.http_url) for n, s in servers.items()}):
        row = cmd.propose(
            manager.repo,
            config,
            targets=list(servers),
            actor="alice",
            changes=[{"param": "variant", "value": "fleet-b"}],
        )
        cmd.apply_command(manager.repo, "approve", row.id, actor="bob")
        canary_seen = False
        stop = asyncio.Event()
        task = asyncio.create_task(manager.run(stop))
        try:
            deadline = time.monotonic() + 120
            while (current := manager.repo.get(row.id)).state not in {s.value for s in FINAL}:
                if current.state == "CANARY" and stage_of(current).progress["triton-a"].status == "applied":
                    # While the canary is judged, only the canary has the change.
                    assert params(second_triton)["variant"] == "baseline"
                    canary_seen = True
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await task
    assert canary_seen
    assert current.state == "COMPLETED", (current.comparison, trail(store, row.id))
    assert current.comparison["baseline"]["kind"] == "peers" and current.comparison["baseline"][
        "targets"
    ] == ["triton-b"]
    assert params(triton_textgen)["variant"] == params(second_triton)["variant"] == "fleet-b"
    assert set(current.previous_config) == {"triton-a", "triton-b"}


async def test_target_that_dies_during_canary_is_restored_when_it_returns(
    triton_kit_dir, textgen_baseline_config, store, tmp_path
) -> None:
    relaunched: subprocess.Popen[bytes] | None = None
    with start_triton(triton_kit_dir, load=[TEST_MODEL], log_dir=tmp_path) as server:
        config = triton_config({"dying": server}, canary_window_s=60.0, max_restore_attempts=100)
        manager = RolloutManager(config, store, state_dir=tmp_path)
        row = cmd.propose(
            manager.repo,
            config,
            targets=["dying"],
            actor="alice",
            changes=[{"param": "variant", "value": "doomed"}],
        )
        cmd.apply_command(manager.repo, "approve", row.id, actor="bob")
        stop = asyncio.Event()
        task = asyncio.create_task(manager.run(stop))
        try:
            deadline = time.monotonic() + 60
            while (
                stage_of(manager.repo.get(row.id)).progress.get("dying") is None
                or stage_of(manager.repo.get(row.id)).progress["dying"].status != "applied"
            ):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            assert server.generate(TEST_MODEL, {"text_input": "q"})["text_output"].startswith("[doomed]")
            os.killpg(server.process.pid, signal.SIGKILL)  # the target dies mid-canary
            server.process.wait(10)
            while manager.repo.get(row.id).state != "FAILED":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            failed = manager.repo.get(row.id)
            assert "stopped serving during the canary window" in stage_of(failed).failure_reason
            await asyncio.sleep(2.5)  # restores are attempted (and fail) while it is down
            assert any(e.action == "restore-failed" for e in events(store, row.id))
            # Its supervisor brings it back: same argv, same ports; explicit mode loads nothing by itself.
            kit = TritonKit.locate(triton_kit_dir)
            with open(tmp_path / "relaunched.log", "wb") as log:
                relaunched = subprocess.Popen(
                    server.argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=kit.environment(),
                    start_new_session=True,
                )
            manager.clock = lambda: time.time() + 3600  # skip the restore backoff
            while manager.repo.get(row.id).state != "ROLLED_BACK":
                assert relaunched.poll() is None, (tmp_path / "relaunched.log").read_text()[-2000:]
                assert time.monotonic() < deadline + 60, trail(store, row.id)
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            await task
            if relaunched is not None:
                final_config = server.model_config(TEST_MODEL) if relaunched.poll() is None else None
                relaunched.send_signal(signal.SIGTERM)
                try:
                    relaunched.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(relaunched.pid, signal.SIGKILL)
                    relaunched.wait(10)
    final = manager.repo.get(row.id)
    assert final_config == final.previous_config["dying"]["models"][TEST_MODEL] == textgen_baseline_config


# --- SIGKILL of the manager process at every point -------------------------------------------

CRASH_POINTS = [
    ("state:CANARY", "COMPLETED"),
    ("before_apply", "COMPLETED"),
    ("after_apply", "COMPLETED"),
    ("state:VALIDATING", "COMPLETED"),
    ("state:ROLLING_OUT", "COMPLETED"),
    ("state:FAILED", "ROLLED_BACK"),
    ("before_restore", "ROLLED_BACK"),
    ("after_restore", "ROLLED_BACK"),
]


def spawn(
    config_path: Path, url: str, state_dir: Path, log: Path, crash_at: str | None = None
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "tests.rollouts.run_manager", str(config_path), url, str(state_dir)]
    if crash_at:
        argv += ["--crash-at", crash_at]
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)


def loads_of(server: TritonServer, variant: str) -> int:
    return server.log_path.read_text(errors="replace").count(f"textgen loaded: variant={variant} ")


@pytest.mark.parametrize(("point", "outcome"), CRASH_POINTS)
def test_sigkill_of_the_manager_process_at_each_point(
    point, outcome, triton_textgen, second_triton, textgen_baseline_config, sqlite_url, tmp_path
) -> None:
    reset(second_triton, textgen_baseline_config)
    servers = {"triton-a": triton_textgen, "triton-b": second_triton}
    regress = outcome == "ROLLED_BACK"
    variant = f"kill-{point.replace(':', '-').replace('_', '-').lower()}"
    changes = [{"param": "variant", "value": variant}]
    if regress:
        changes.append({"param": "delay_ms_per_token", "value": "100"})
    config = triton_config(servers, canary_window_s=3.0)
    config_path = tmp_path / "config.json"
    config_path.write_text(config.model_dump_json())
    store = Store(sqlite_url)
    repo = RolloutRepo(store)
    log = tmp_path / "manager.log"
    with LoadSampler(store, {n: triton_request(s.http_url) for n, s in servers.items()}):
        row = cmd.propose(repo, config, targets=list(servers), actor="alice", changes=changes)
        cmd.apply_command(repo, "approve", row.id, actor="bob")
        first = spawn(config_path, sqlite_url, tmp_path, log, crash_at=point)
        assert first.wait(120) == -signal.SIGKILL, log.read_text()[-3000:]
        at_crash = repo.get(row.id)
        assert at_crash.state not in ("COMPLETED", "ROLLED_BACK"), "killed before the end"
        second = spawn(config_path, sqlite_url, tmp_path, log)
        try:
            deadline = time.monotonic() + 120
            while (final := repo.get(row.id)).state not in {s.value for s in FINAL}:
                assert second.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, trail(store, row.id)
                time.sleep(0.2)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
    assert final.state == outcome, (trail(store, row.id), final.comparison)
    actions = [e.action for e in events(store, row.id)]
    assert actions.count("approve") == 1
    assert "recover" in actions
    if outcome == "COMPLETED":
        assert params(triton_textgen)["variant"] == params(second_triton)["variant"] == variant
        # Each server loaded the change exactly once, crash or not: nothing was applied twice.
        assert loads_of(triton_textgen, variant) == 1 and loads_of(second_triton, variant) == 1
    else:
        assert (
            triton_textgen.model_config(TEST_MODEL) == final.previous_config["triton-a"]["models"][TEST_MODEL]
        )
        assert triton_textgen.model_config(TEST_MODEL) == textgen_baseline_config
        assert params(second_triton)["variant"] == "baseline" and loads_of(second_triton, variant) == 0
        assert loads_of(triton_textgen, variant) == 1
    store.close()


async def test_judged_on_the_daemons_own_poller_samples(
    triton_textgen, textgen_baseline_config, sqlite_url, tmp_path
) -> None:
    """The production path: the poller scrapes Triton's /metrics into the store (window-mean latency from
    its duration counters), and the manager judges the canary on those samples alone."""
    from daemon.config import ThresholdConfig
    from daemon.poller import Poller
    from daemon.store import AsyncStore

    base = triton_config(
        {"triton-a": triton_textgen},
        default_signals=["e2e_mean_s"],
        canary_window_s=5.0,
        thresholds={"e2e_mean_s": SignalThreshold(max_regression=3.0, min_abs_change=0.25)},
    )
    config = base.model_copy(
        update={
            "daemon": DaemonConfig(metrics_port=0, poll_interval_s=0.5),
            "thresholds": ThresholdConfig(window_s=2.0),
        }
    )
    store = Store(sqlite_url)
    poller = Poller(config, AsyncStore(store))
    manager = RolloutManager(config, store, state_dir=tmp_path)
    stop_polling = asyncio.Event()
    polling = asyncio.create_task(poller.run(stop_polling))
    try:
        # Traffic only: its own client-side samples go to another instance name and are not judged.
        with LoadSampler(store, {"client": triton_request(triton_textgen.http_url)}):
            await asyncio.sleep(5)
            row = cmd.propose(
                manager.repo,
                config,
                targets=["triton-a"],
                actor="alice",
                changes=[{"param": "delay_ms_per_token", "value": "100"}],
            )
            cmd.apply_command(manager.repo, "approve", row.id, actor="bob")
            final = await run_until(manager, row.id, FINAL)
    finally:
        stop_polling.set()
        await polling
    assert final.state == "ROLLED_BACK", (trail(store, row.id), final.comparison)
    e2e = final.comparison["signals"][0]
    assert e2e["signal"] == "e2e_mean_s" and e2e["verdict"] == "fail"
    assert e2e["baseline_n"] >= 4 and e2e["canary_n"] >= 4 and e2e["canary"] > e2e["baseline"] + 0.25
    assert triton_textgen.model_config(TEST_MODEL) == textgen_baseline_config
    store.close()
