"""Blue-green on the real vLLM (issue 15 item 3): a flag change relaunches the kit's vLLM CPU server on the
standby port beside the old one while two clients with keep-alive connections (as an OpenAI client pool
holds them) send completions through the front; not one request fails, the old server is drained and
stopped, and the new one runs the new flag. The same change without blue-green leaves nothing serving
for a minute here (tests/rollouts/test_vllm.py measures it: `downtime_s`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from daemon.actuators import procs
from daemon.actuators.blue_green import ensure_fronts
from daemon.actuators.vllm import argv_value, parse_info_labels
from daemon.config import (
    BlueGreenConfig,
    Config,
    DaemonConfig,
    LaunchConfig,
    RolloutConfig,
    SignalThreshold,
    TargetConfig,
)
from daemon.rollouts import commands as cmd
from daemon.rollouts.manager import RolloutManager
from daemon.rollouts.model import RolloutState as S
from daemon.rollouts.repo import stage_of
from daemon.store import Store
from testkit.ports import StartupError, free_port, stop_listeners, wait_http_ok
from testkit.vllm import SERVED_MODEL_NAME, VllmKit, kit_settings, vllm_argv, vllm_env
from tests.rollouts import helpers
from tests.rollouts.helpers import trail
from tests.rollouts.traffic import LoadSampler, vllm_request

pytestmark = pytest.mark.vllm


@pytest.fixture
def blue_green_vllm(vllm_kit_dir: Path, tmp_path: Path) -> Iterator[tuple[Config, int, int]]:
    """The kit's vLLM started by its user on the first of the two ports; the config naming them."""
    kit = VllmKit.locate(vllm_kit_dir)
    front, blue, green = free_port(), free_port(), free_port()
    argv = vllm_argv(kit, blue)
    env = vllm_env()
    with open(tmp_path / "vllm.log", "wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        wait_http_ok(f"http://127.0.0.1:{blue}/health", process, 420, tmp_path / "vllm.log")
    except StartupError as exc:
        procs.stop(process.pid, 10)
        pytest.fail(f"the vLLM test server did not start: {exc}", pytrace=False)
    target = TargetConfig(
        name="vllm-bg",
        url=f"http://127.0.0.1:{front}",
        engine="vllm",
        timeout_s=5.0,
        launch=LaunchConfig(
            argv=argv,
            env=kit_settings(),
            allow_root=True,  # the kit lives under /root (mode 700): root runs it, on purpose
            # Each port its own core, as a GPU box gives each its own GPU: two vLLM CPU servers left to
            # bind their OpenMP threads themselves both take core 0, and the second never finishes starting.
            blue_green=BlueGreenConfig(
                ports=[blue, green],
                env=[{"VLLM_CPU_OMP_THREADS_BIND": "0"}, {"VLLM_CPU_OMP_THREADS_BIND": "1"}],
                drain_s=20.0,
            ),
        ),
    )
    rollouts = RolloutConfig(
        warmup_s=3.0,
        canary_window_s=6.0,
        baseline_window_s=30.0,
        min_samples=3,
        default_signals=["e2e_p95_s", "error_rate"],
        step_interval_s=0.5,
        apply_timeout_s=420.0,
        stop_grace_s=20.0,
        thresholds={"e2e_p95_s": SignalThreshold(max_regression=3.0, min_abs_change=0.5)},
    )
    try:
        yield Config(daemon=DaemonConfig(metrics_port=0), targets=[target], rollouts=rollouts), blue, green
    finally:
        stop_listeners(front, blue, green)
        if process.poll() is None:
            procs.stop(process.pid, 10)
        process.wait(10)


async def test_a_vllm_flag_change_relaunches_blue_green_with_no_failed_request(
    blue_green_vllm: tuple[Config, int, int], sqlite_url: str, tmp_path: Path
) -> None:
    config, blue, green = blue_green_vllm
    state_dir = tmp_path / "rollouts"
    assert await ensure_fronts(config.targets, state_dir) == []
    url = config.targets[0].url
    store = Store(sqlite_url)
    manager = RolloutManager(config, store, state_dir=state_dir)
    with LoadSampler(
        store, {"vllm-bg": vllm_request(url, SERVED_MODEL_NAME)}, window_s=1.0, concurrency=2
    ) as load:
        await __import__("asyncio").sleep(5)  # a baseline, through the front
        row = cmd.propose(
            manager.repo,
            config,
            targets=["vllm-bg"],
            actor="alice",
            reason="fewer seqs",
            changes=[{"param": "--max-num-seqs", "value": "4"}],
        )
        assert row.id is not None
        cmd.apply_command(manager.repo, "approve", row.id, actor="bob")
        done = await helpers.run_until(
            manager,
            row.id,
            {S.COMPLETED, S.ROLLED_BACK, S.PAUSED, S.FAILED},
            timeout_s=900.0,
            poll_s=0.5,
            stop_timeout_s=600,
        )
    assert done.state == "COMPLETED", (stage_of(done).failure_reason, trail(store, row.id))
    assert load.failed_total == 0, load.failure_reasons
    readback = stage_of(done).progress["vllm-bg"].readback or {}
    assert readback["blue_green"] == {"from_port": blue, "to_port": green}
    assert readback["downtime_s"] == 0.0 and "drained in" in readback["stopped_previous"], readback
    assert not procs.listener_roots(blue)  # the old one is gone
    new_pid = procs.listener_roots(green)[0]
    assert argv_value(procs.cmdline(new_pid) or [], "max_num_seqs") == "4"
    info = parse_info_labels(httpx.get(f"{url}/metrics", timeout=10).text, "vllm:cache_config_info")
    assert info["enable_prefix_caching"] == "True"  # vLLM itself, answering through the front
    assert procs.server_pid(int(url.rsplit(":", 1)[1])) == new_pid  # the GPU panel follows the switch
    # A token stream passes through the front as a stream: one server-sent event per token, then [DONE].
    events: list[str] = []
    with httpx.stream(
        "POST",
        f"{url}/v1/completions",
        json={"model": SERVED_MODEL_NAME, "prompt": "hello", "max_tokens": 4, "stream": True},
        timeout=60,
    ) as reply:
        events = [line for line in reply.iter_lines() if line.startswith("data:")]
    assert len(events) >= 3 and events[-1] == "data: [DONE]", events
    store.close()
