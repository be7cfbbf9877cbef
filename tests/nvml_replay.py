"""NVML answers replayed from readings recorded on a real NVIDIA H200 (tests/daemon/fixtures/nvml-h200.json,
copied from ../shared/fixtures/nvml/: recorded with `nvidia-ml-py` on driver 580.159.04, 2026-12-04).

No GPU is on the machines the suite runs on, so `daemon.gpu` is exercised through the very pynvml calls it
makes, answered from one recorded snapshot: the values, units and structures are the library's own (the
real `pynvml.NVMLError` and constants); a value the recording stored as `{"error", ...}` raises NVMLError
as the device did.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

RECORDING = Path(__file__).resolve().parent / "daemon" / "fixtures" / "nvml-h200.json"


def recording() -> dict[str, Any]:
    return json.loads(RECORDING.read_text())


class RecordedNvml:
    NVMLError = pynvml.NVMLError
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_CLOCK_MEM = pynvml.NVML_CLOCK_MEM
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    NVML_VOLATILE_ECC = pynvml.NVML_VOLATILE_ECC

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot
        self.devices = snapshot["devices"]

    @staticmethod
    def _value(value: Any) -> Any:
        if isinstance(value, dict) and "error" in value:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return value

    def _dev(self, h: int, key: str) -> Any:
        return self._value(self.devices[h][key])

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        pass

    def nvmlShutdown(self) -> None:  # noqa: N802
        pass

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return self.snapshot["driver"]

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return int(self.snapshot["count"])

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:  # noqa: N802
        return i

    def nvmlDeviceGetName(self, h: int) -> str:  # noqa: N802
        return self._dev(h, "name")

    def nvmlDeviceGetUUID(self, h: int) -> str:  # noqa: N802
        return self._dev(h, "uuid")

    def nvmlDeviceGetMemoryInfo(self, h: int) -> SimpleNamespace:  # noqa: N802
        return SimpleNamespace(**self._dev(h, "memory"))

    def nvmlDeviceGetUtilizationRates(self, h: int) -> SimpleNamespace:  # noqa: N802
        return SimpleNamespace(**self._dev(h, "utilization"))

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:  # noqa: N802
        return self._dev(h, "temperature_c")

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:  # noqa: N802
        return self._dev(h, "power_mw")

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:  # noqa: N802
        return self._dev(h, "power_limit_mw")

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:  # noqa: N802
        return self._dev(h, "clock_sm_mhz" if clock == pynvml.NVML_CLOCK_SM else "clock_mem_mhz")

    def nvmlDeviceGetMaxClockInfo(self, h: int, clock: int) -> int:  # noqa: N802
        return self._dev(h, "max_clock_sm_mhz")

    def nvmlDeviceGetTotalEccErrors(self, h: int, kind: int, counter: int) -> int:  # noqa: N802
        return self._dev(h, "ecc_uncorrected_volatile")

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:  # noqa: N802
        return self._dev(h, "throttle_reasons")

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[SimpleNamespace]:  # noqa: N802
        return [SimpleNamespace(**p) for p in self._dev(h, "compute_processes")]
