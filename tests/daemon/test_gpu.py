"""The GPU reading (issue 16 item 1): the real NVML library's no-driver path here, and the readings recorded
on a real H200 (tests/nvml_replay.py) for everything a GPU shows, checked against `nvidia-smi` taken at
the same time on that machine."""

from __future__ import annotations

import asyncio
import csv
import io
import os

import pynvml

from daemon.bus import Bus
from daemon.gpu import GPU_TOPIC, GpuMonitor, GpuStatus, init, owners_of, read_gpus, throttle_words
from tests.nvml_replay import RecordedNvml, recording

GIB = 1 << 30
MIB = 1 << 20


def test_without_the_nvidia_driver_the_real_library_says_so_in_one_line() -> None:
    why = init(pynvml)  # this machine has no NVIDIA driver: the library's own failure
    assert why is not None and why.startswith("NVML could not start (")
    assert "NVML Shared Library Not Found" in why


async def test_the_monitor_publishes_that_once_and_stops_polling() -> None:
    bus = Bus()
    sub = bus.subscribe(GPU_TOPIC)
    monitor = GpuMonitor(bus, [], interval_s=0.2)
    await asyncio.wait_for(monitor.run(asyncio.Event()), 10)  # returns: nothing to poll
    event = sub.queue.get_nowait()
    assert isinstance(event.payload, GpuStatus) and not event.payload.available
    assert sub.queue.empty()


def test_the_h200_under_load_as_nvml_reported_it_and_as_nvidia_smi_saw_it() -> None:
    rec = recording()
    load = rec["snapshots"][1]
    status = read_gpus(RecordedNvml(load), load["time"])
    assert status.available and status.driver == "580.159.04" and len(status.devices) == 1
    d = status.devices[0]
    assert d.name == "NVIDIA H200" and d.utilization_pct == 100
    assert d.memory_used_bytes == 23179689984 and d.memory_total_bytes == 150754820096
    assert d.temperature_c == 54 and d.power_w == 693.043 and d.power_limit_w == 700.0
    assert d.clock_sm_mhz == 1485 and d.clock_mem_mhz == 3201 and d.ecc_uncorrected == 0
    assert throttle_words(d.throttle_reasons) == ["power cap"]  # 693 of 700 W
    assert [(p.pid, p.used_bytes) for p in d.processes] == [(429, 22525509632)]
    # nvidia-smi on the same machine during the same load (its own query, a moment apart).
    smi = next(csv.DictReader(io.StringIO(rec["nvidia_smi_csv_during_load"]), skipinitialspace=True))
    assert f"{d.utilization_pct:.0f} %" == smi["utilization.gpu [%]"]
    assert f"{d.temperature_c:.0f}" == smi["temperature.gpu"]
    assert f"{d.clock_sm_mhz} MHz" == smi["clocks.current.sm [MHz]"]
    assert abs(d.memory_total_bytes / MIB - float(smi["memory.total [MiB]"].split()[0])) <= 1
    assert abs(d.power_w - float(smi["power.draw [W]"].split()[0])) / d.power_w < 0.01
    # nvidia-smi's "used" leaves out the driver's reserved memory (the idle reading's 615 MiB).
    idle_used = rec["snapshots"][0]["devices"][0]["memory"]["used"]
    assert abs((d.memory_used_bytes - idle_used) / MIB - float(smi["memory.used [MiB]"].split()[0])) <= 1
    apps = next(csv.DictReader(io.StringIO(rec["nvidia_smi_apps_during_load"]), skipinitialspace=True))
    assert (
        int(apps["pid"]) == 429
        and d.processes[0].used_bytes == int(apps["used_gpu_memory [MiB]"].split()[0]) * MIB
    )


def test_a_value_the_device_refuses_is_none_not_a_failed_reading() -> None:
    idle = recording()["snapshots"][0]
    idle["devices"][0]["power_mw"] = {"error": "NVMLError_NotSupported", "message": "Not Supported"}
    d = read_gpus(RecordedNvml(idle), 0.0).devices[0]
    assert d.power_w is None and d.temperature_c == 33 and d.processes == []


def test_a_gpu_process_is_matched_to_the_target_whose_server_it_is_or_descends_from() -> None:
    tree = {501: [500, 1], 500: [1], 777: [1]}  # 501: vLLM's engine core, child of its API server 500
    owners = owners_of([501, 777], {"vllm-a": 500}, ancestors=lambda pid: tree.get(pid, []))
    assert owners == {501: "vllm-a"}
    # The real /proc: this test process descends from its parent.
    assert owners_of([os.getpid()], {"parent": os.getppid()}) == {os.getpid(): "parent"}


async def test_device_memory_from_nvml_fills_the_targets_samples_and_memory_pressure_sees_it(
    sqlite_url: str,
) -> None:
    """vLLM exports no device memory; the GPU its engine holds memory on does. The poller puts NVML's
    figure in the target's sample (stored like the rest), and MEMORY_PRESSURE fires on a device 98% full
    even though vLLM's own KV gauge is low."""
    from daemon.analysis.rules import memory_pressure
    from daemon.config import ThresholdConfig, SloConfig, parse_config
    from daemon.models import MetricSample
    from daemon.poller import Poller
    from daemon.store import AsyncStore, Store
    from tests.daemon.helpers import VLLM_LOAD, MetricsServer, text_response

    load = recording()["snapshots"][1]
    monitor = GpuMonitor(Bus(), [], nvml=RecordedNvml(load))
    monitor.latest = read_gpus(RecordedNvml(load), 0.0)
    monitor.latest.devices[0].processes[0].target = "kit"  # pid 429, matched to the target's server
    assert monitor.memory_of("kit") == (23179689984, 150754820096) and monitor.memory_of("other") is None

    with MetricsServer(lambda n, path: text_response(VLLM_LOAD)) as server:
        config = parse_config(f'[[targets]]\nname = "kit"\nurl = "{server.url}"\nengine = "vllm"\n')
        store = AsyncStore(Store(sqlite_url))
        poller = Poller(config, store, device_of=monitor.device_of)
        try:
            for _ in range(2):
                assert await poller.poll_target(config.targets[0]), poller.status["kit"].reason
            await poller.flush()
            stored = store.store.all(MetricSample, MetricSample.instance == "kit")
        finally:
            store.close()
    assert stored and stored[-1].gpu_memory_used_bytes == 23179689984
    assert stored[-1].gpu_memory_total_bytes == 150754820096
    # Utilization, temperature and power are stored with the sample too (schema 6), and so downsampled.
    assert stored[-1].gpu_utilization == 1.0 and stored[-1].gpu_temperature_c == 54
    assert stored[-1].gpu_power_w == 693.043

    full = stored[-1].model_copy(update={"gpu_memory_used_bytes": 0.98 * 150754820096, "kv_cache_usage": 0.1})
    found = memory_pressure(full, {}, ThresholdConfig(), SloConfig())
    assert found is not None and found.value >= 1.0 and found.summary == "device memory near full"
    assert found.evidence["driver"] == "gpu_memory"
