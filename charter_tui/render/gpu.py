"""The GPU strip above the Instances table: one line per GPU, as nvitop's header shows it.

    GPU0 NVIDIA H200  util 100%  mem  21.6/140.4 GiB  54°C  693/700 W power cap  SM 1485 MHz  pid 429 21.0 GiB
    GPU: none — NVML could not start (NVML Shared Library Not Found)

Narrow terminals drop the clocks, then the processes; the numbers are NVML's own (bytes, mW and MHz as
the library reports them, converted once here).
"""

from __future__ import annotations

from rich.text import Text

from daemon.gpu import GpuDevice, GpuStatus, throttle_words

GIB = 1 << 30
HOT_C = 85  # H100/H200 slow down near 87-90 °C
POWER_NEAR_LIMIT = 0.97


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GIB:.1f}"


def _num(value: float | int | None, unit: str = "", fmt: str = "{:.0f}") -> str:
    return "-" if value is None else fmt.format(value) + unit


def device_line(d: GpuDevice, width: int) -> Text:
    line = Text()
    line.append(f"GPU{d.index} ", style="bold")
    line.append(f"{d.name[:20]:<20}", style="cyan")
    util = d.utilization_pct
    line.append("  util ")
    line.append(f"{_num(util, '%'):>4}", style="bold green" if util and util >= 90 else "")
    share = d.memory_share
    line.append("  mem ")
    line.append(
        f"{_gib(d.memory_used_bytes):>5}/{_gib(d.memory_total_bytes)} GiB",
        style="bold yellow" if share is not None and share >= 0.95 else "",
    )
    temp = d.temperature_c
    line.append(f"  {_num(temp, '°C'):>4}", style="bold red" if temp is not None and temp >= HOT_C else "")
    near = d.power_w is not None and d.power_limit_w and d.power_w >= POWER_NEAR_LIMIT * d.power_limit_w
    line.append(f"  {_num(d.power_w)}/{_num(d.power_limit_w)} W", style="yellow" if near else "")
    words = throttle_words(d.throttle_reasons)
    if words:
        line.append(" " + ", ".join(words), style="yellow")
    if d.ecc_uncorrected:
        line.append(f"  ECC {d.ecc_uncorrected} uncorrected", style="bold red")
    if width >= 120:
        line.append(f"  SM {_num(d.clock_sm_mhz, ' MHz')}", style="dim")
    if width >= 100:
        for p in d.processes[:3]:
            who = p.target or f"pid {p.pid}"
            line.append(f"  {who} {_gib(p.used_bytes)} GiB", style="magenta" if p.target else "dim")
        if len(d.processes) > 3:
            line.append(f" +{len(d.processes) - 3}", style="dim")
    return line


def gpu_strip(status: GpuStatus | None, width: int) -> Text:
    """The strip's text; empty before the daemon has said anything about GPUs."""
    if status is None:
        return Text()
    if not status.available:
        # Whole on an 80-column terminal: the reason is the daemon's, kept short there (daemon/gpu.py).
        return Text(f"GPU: none — {status.reason or 'no reading yet'}", style="dim")
    if not status.devices:
        return Text("GPU: NVML lists no device", style="dim")
    out = Text()
    for i, d in enumerate(status.devices):
        if i:
            out.append("\n")
        out.append_text(device_line(d, width))
    return out


def target_gpus(status: GpuStatus | None, target: str, width: int) -> Text:
    """The lines of the GPUs on which `target`'s processes hold memory (the instance detail's GPU rows)."""
    out = Text()
    if status is None or not status.available:
        return out
    for d in status.devices:
        held = sum(p.used_bytes or 0 for p in d.processes if p.target == target)
        if not any(p.target == target for p in d.processes):
            continue
        if out.plain:
            out.append("\n")
        out.append_text(device_line(d, width))
        out.append(f"  ({target} holds {_gib(held)} GiB)", style="magenta")
    return out
