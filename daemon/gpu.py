"""The GPUs themselves, from NVML (the `nvidia-ml-py` package, `import pynvml`), as nvitop shows them.

`read_gpus(nvml)` asks NVML for each device's utilization, memory, temperature, power and limit, clocks,
uncorrected ECC errors, clock-event (throttle) reasons and the processes holding its memory, and returns
one typed `GpuStatus`. `nvml` is the pynvml module, or anything answering the same calls (the tests replay
readings recorded on a real H200). A value the device does not expose (NVML raises "not supported") is
None, never a failed reading. On a machine without the NVIDIA driver `nvmlInit` fails, and the status
says so in one line (`available=False`, `reason`), which is all the GPU strip then shows.

`owners_of` matches a GPU process to the configured target that runs it: the target's server listens on
a loopback port (`procs.server_pid`), and the process holding GPU memory is that server or one of its
children (vLLM's engine core is a child of its API server).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from daemon.actuators import procs
from daemon.bus import Bus, topic
from daemon.models import MetricSample
from daemon.text import clean

log = logging.getLogger(__name__)

GPU_TOPIC = topic("gpu", "local")
MAX_DEVICES = 64
MAX_PROCESSES = 256  # per device


class GpuProcess(BaseModel):
    pid: int
    used_bytes: int | None = None
    target: str | None = None  # the configured target this process serves, when matched


class GpuDevice(BaseModel):
    index: int
    name: str
    uuid: str | None = None
    utilization_pct: float | None = None
    memory_utilization_pct: float | None = None  # share of time the memory was read or written
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    clock_sm_mhz: int | None = None
    clock_mem_mhz: int | None = None
    max_clock_sm_mhz: int | None = None
    ecc_uncorrected: int | None = None  # volatile (since the driver loaded)
    throttle_reasons: int | None = None  # NVML's clock-event reason bits
    processes: list[GpuProcess] = Field(default_factory=list)

    @property
    def memory_share(self) -> float | None:
        if self.memory_used_bytes is None or not self.memory_total_bytes:
            return None
        return self.memory_used_bytes / self.memory_total_bytes


class GpuStatus(BaseModel):
    """`charter/v1/gpu/local`: the GPUs of the daemon's machine, or why there are none to show."""

    ts: float
    available: bool
    reason: str | None = None  # why not available (no driver, NVML failed)
    driver: str | None = None
    devices: list[GpuDevice] = Field(default_factory=list)


# NVML's clock-event reasons worth a word on screen (nvml.h: nvmlClocksEventReason*).
THROTTLE_NAMES = {
    0x2: "app clocks",
    0x4: "power cap",
    0x8: "HW slowdown",
    0x20: "SW thermal",
    0x40: "HW thermal",
    0x80: "power brake",
}


def throttle_words(bits: int | None) -> list[str]:
    return [] if not bits else [name for bit, name in THROTTLE_NAMES.items() if bits & bit]


def _call(nvml: Any, name: str, *args: Any) -> Any:
    """One NVML query; None when the device does not expose it (or the call is missing from this pynvml)."""
    fn = getattr(nvml, name, None)
    if fn is None:
        return None
    try:
        return fn(*args)
    except nvml.NVMLError:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return clean(value, limit=96)


def _device(nvml: Any, index: int) -> GpuDevice:
    h = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = _call(nvml, "nvmlDeviceGetMemoryInfo", h)
    rates = _call(nvml, "nvmlDeviceGetUtilizationRates", h)
    power = _call(nvml, "nvmlDeviceGetPowerUsage", h)
    limit = _call(nvml, "nvmlDeviceGetEnforcedPowerLimit", h)
    reasons = _call(nvml, "nvmlDeviceGetCurrentClocksEventReasons", h)
    if reasons is None:
        reasons = _call(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", h)
    running = _call(nvml, "nvmlDeviceGetComputeRunningProcesses", h) or []
    processes = [
        GpuProcess(pid=int(p.pid), used_bytes=_bytes(getattr(p, "usedGpuMemory", None)))
        for p in list(running)[:MAX_PROCESSES]
    ]
    return GpuDevice(
        index=index,
        name=_text(_call(nvml, "nvmlDeviceGetName", h)) or f"GPU {index}",
        uuid=_text(_call(nvml, "nvmlDeviceGetUUID", h)),
        utilization_pct=getattr(rates, "gpu", None),
        memory_utilization_pct=getattr(rates, "memory", None),
        memory_used_bytes=getattr(memory, "used", None),
        memory_total_bytes=getattr(memory, "total", None),
        temperature_c=_call(nvml, "nvmlDeviceGetTemperature", h, nvml.NVML_TEMPERATURE_GPU),
        power_w=power / 1000 if power is not None else None,
        power_limit_w=limit / 1000 if limit is not None else None,
        clock_sm_mhz=_call(nvml, "nvmlDeviceGetClockInfo", h, nvml.NVML_CLOCK_SM),
        clock_mem_mhz=_call(nvml, "nvmlDeviceGetClockInfo", h, nvml.NVML_CLOCK_MEM),
        max_clock_sm_mhz=_call(nvml, "nvmlDeviceGetMaxClockInfo", h, nvml.NVML_CLOCK_SM),
        ecc_uncorrected=_call(
            nvml,
            "nvmlDeviceGetTotalEccErrors",
            h,
            nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            nvml.NVML_VOLATILE_ECC,
        ),
        throttle_reasons=reasons,
        processes=processes,
    )


def _bytes(value: Any) -> int | None:
    # NVML reports "not available" (a process in another container) as a huge sentinel value.
    return int(value) if isinstance(value, int) and 0 <= value < 1 << 60 else None


def init(nvml: Any) -> str | None:
    """Start NVML; None when it started, else why not, in words a user can act on."""
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        return f"NVML could not start ({clean(str(exc), limit=120)})"
    return None


def read_gpus(nvml: Any, now: float) -> GpuStatus:
    """Every device's reading (NVML started by `init`)."""
    count = _call(nvml, "nvmlDeviceGetCount")
    if count is None:
        return GpuStatus(ts=now, available=False, reason="NVML answers no device count")
    devices = []
    for index in range(min(int(count), MAX_DEVICES)):
        try:
            devices.append(_device(nvml, index))
        except nvml.NVMLError as exc:  # the handle itself: a device that fell off the bus
            log.warning("GPU %d: %s", index, exc)
    return GpuStatus(
        ts=now, available=True, driver=_text(_call(nvml, "nvmlSystemGetDriverVersion")), devices=devices
    )


def owners_of(
    pids: Sequence[int], servers: Mapping[str, int], ancestors: Callable[[int], list[int]] = procs.ancestors
) -> dict[int, str]:
    """pid -> the target whose server (`servers`: target -> its server pid) is that process or an ancestor."""
    by_pid = {pid: name for name, pid in servers.items()}
    out = {}
    for pid in pids:
        for candidate in (pid, *ancestors(pid)):
            if candidate in by_pid:
                out[pid] = by_pid[candidate]
                break
    return out


def local_servers(targets: Sequence[tuple[str, str]]) -> dict[str, int]:
    """(name, url) of the configured targets -> the pid serving each one that listens on this machine."""
    from urllib.parse import urlsplit

    out = {}
    for name, url in targets:
        parts = urlsplit(url)
        if parts.hostname not in procs.LOOPBACK_HOSTS:
            continue
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        pid = procs.server_pid(port)
        if pid is not None:
            out[name] = pid
    return out


class GpuMonitor:
    """Polls NVML every `interval_s` on a worker thread (NVML calls block) and publishes `GpuStatus`."""

    def __init__(
        self, bus: Bus, targets: Sequence[tuple[str, str]], interval_s: float = 2.0, nvml: Any = None
    ) -> None:
        self.bus, self.targets, self.interval_s = bus, list(targets), interval_s
        self.nvml = nvml
        self.latest: GpuStatus | None = None

    def device_of(self, target: str) -> GpuDevice | None:
        """The fullest GPU on which `target`'s processes hold memory, per the latest reading (None when it
        holds none, or no GPU is read)."""
        status = self.latest
        if status is None or not status.available:
            return None
        held = [d for d in status.devices if any(p.target == target for p in d.processes)]
        return max(held, key=lambda d: d.memory_share or 0.0) if held else None

    def memory_of(self, target: str) -> tuple[int, int] | None:
        """(used, total) bytes of `device_of(target)`."""
        d = self.device_of(target)
        if d is None or d.memory_used_bytes is None or not d.memory_total_bytes:
            return None
        return d.memory_used_bytes, d.memory_total_bytes

    def _module(self) -> Any:
        if self.nvml is None:
            import pynvml

            self.nvml = pynvml
        return self.nvml

    def read(self) -> GpuStatus:
        nvml = self._module()
        status = read_gpus(nvml, time.time())
        pids = [p.pid for d in status.devices for p in d.processes]
        if pids:
            owners = owners_of(pids, local_servers(self.targets))
            for d in status.devices:
                for p in d.processes:
                    p.target = owners.get(p.pid)
        return status

    async def run(self, stop: asyncio.Event) -> None:
        why = await asyncio.to_thread(init, self._module())
        if why is not None:
            log.info("%s", why)
            self.latest = GpuStatus(ts=time.time(), available=False, reason=why)
            self.bus.publish(GPU_TOPIC, self.latest)
            return  # nothing to poll; the strip shows the one line
        try:
            while not stop.is_set():
                self.latest = await asyncio.to_thread(self.read)
                self.bus.publish(GPU_TOPIC, self.latest)
                try:
                    await asyncio.wait_for(stop.wait(), self.interval_s)
                except TimeoutError:
                    pass
        finally:
            _call(self.nvml, "nvmlShutdown")


def fill_sample(sample: MetricSample, device: GpuDevice | None) -> None:
    """Put a target's GPU reading into its sample where the engine exported none of it (vLLM exports no
    device figures; Triton exports its own memory, which is kept)."""
    if device is None:
        return
    if (
        sample.gpu_memory_used_bytes is None
        and device.memory_used_bytes is not None
        and device.memory_total_bytes
    ):
        sample.gpu_memory_used_bytes = float(device.memory_used_bytes)
        sample.gpu_memory_total_bytes = float(device.memory_total_bytes)
    if sample.gpu_utilization is None and device.utilization_pct is not None:
        sample.gpu_utilization = device.utilization_pct / 100
    if sample.gpu_temperature_c is None:
        sample.gpu_temperature_c = device.temperature_c
    if sample.gpu_power_w is None:
        sample.gpu_power_w = device.power_w
