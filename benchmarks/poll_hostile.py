"""Hostile-target benchmark: 100 healthy targets at 1 Hz plus one serving an 8 MB `/metrics`, all on 127.0.0.1.

    .venv/bin/python benchmarks/poll_hostile.py [--targets 100] [--duration 240] [--shape wide|long] [--out FILE]

The healthy targets are `benchmarks/poll_bench.py`'s: the real 614-line vLLM capture, counters
growing per scrape. The hostile one serves 8,000,000 bytes of *valid* vLLM exposition on every
scrape, every label set unique and new on each scrape (no parse cache helps), in one of two shapes:

- `wide` (default): ~45,000 lines of ~180 bytes — under both default caps, so it is fully parsed
  each poll: the daemon's sliced parse (`prom.parse_async`) is what keeps the others on schedule;
- `long`: ~100,000 lines of ~80 bytes — over `daemon.max_exposition_lines` (50,000): refused
  unparsed, the reason names the cap.

The daemon side is the real `Poller` + `Analyzer` + SQLite store, as in poll_bench. Measured: the
healthy targets' missed and failed polls and worst lateness, the hostile target's outcome and
reason, the daemon's CPU, and the longest stall of the event loop (a 10 ms ticker's worst gap).
A benchmark, not a test: run it alone and commit its markdown result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.poll_bench import (  # noqa: E402
    CAPTURE,
    _cpu_s,
    _run_queue_wait_s,
    growing_capture,
    start_metric_servers,
)

HOSTILE_BYTES = 8_000_000


def hostile_exposition(shape: str, size: int = HOSTILE_BYTES) -> bytes:
    """`size` bytes of valid vLLM exposition, every series with its own label set."""
    lines = [line for line in CAPTURE.read_text().splitlines() if line and not line.startswith("#")]
    pad = "x" * 100 if shape == "wide" else ""
    out: list[str] = []
    total, i = 0, 0
    while True:
        for line in lines:
            label = f'copy="{i}{pad}"'
            if "{" in line:
                row = line.replace("{", "{" + label + ",", 1)
            else:
                name, value = line.split(" ", 1)
                row = f"{name}{{{label}}} {value}"
            if total + len(row) + 1 > size:
                body = "\n".join(out) + "\n"
                return body.encode() + b"#" * (size - len(body) - 1) + b"\n"  # exactly `size` bytes
            out.append(row)
            total += len(row) + 1
        i += 1


def _serve(conn: multiprocessing.connection.Connection, n: int, shape: str, stop_after_s: float) -> None:
    # 7 bytes per line are added per scrape (below): the served text is ~8,000,000 bytes.
    probe = hostile_exposition(shape)
    hostile = hostile_exposition(shape, HOSTILE_BYTES - 7 * probe.count(b"\n"))
    counts = [0] * (n + 1)
    healthy = growing_capture(CAPTURE.read_text())  # poll_bench's body: the capture, counters growing
    sizes: list[int] = []

    def body(i: int) -> bytes:
        counts[i] += 1
        if i == n:
            # New label sets on every scrape (a request id in a label, say): no parse cache can
            # help, and a cache that kept them would be flushed for every healthy target too.
            out = hostile.replace(b'copy="', b'copy="%06d-' % counts[i])
            sizes.append(len(out))
            return out
        return healthy(counts[i])

    async def main() -> None:
        _servers, ports = await start_metric_servers(n + 1, body)
        conn.send(ports)
        await asyncio.sleep(stop_after_s)
        conn.send(
            {
                "scrapes": sum(counts),
                "hostile_scrapes": counts[n],
                "hostile_bytes": max(sizes) if sizes else len(hostile),
                "hostile_lines": hostile.count(b"\n"),
            }
        )

    asyncio.run(main())


async def run_daemon(ports: list[int], interval: float, warmup: float, duration: float, db: Path) -> dict:
    from daemon.analysis import Analyzer
    from daemon.config import parse_config
    from daemon.poller import Poller
    from daemon.store import AsyncStore, Store

    toml = f"[daemon]\npoll_interval_s = {interval}\n"
    *healthy, hostile = ports
    for i, port in enumerate(healthy):
        toml += f'[[targets]]\nname = "t{i:03d}"\nurl = "http://127.0.0.1:{port}"\ntimeout_s = 2\n'
    toml += f'[[targets]]\nname = "hostile"\nurl = "http://127.0.0.1:{hostile}"\ntimeout_s = 2\n'
    config = parse_config(toml)
    store = AsyncStore(Store(f"sqlite:///{db}"))
    analyzer = Analyzer(config)
    poller = Poller(config, store, on_sample=lambda name, res: analyzer.observe(res.sample, res.extras))
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    gaps = {"worst": 0.0, "over_100ms": 0, "cpu_worst": 0.0, "cpu_over_50ms": 0, "measuring": False}

    async def ticker() -> None:
        """The loop's responsiveness seen from inside it: the worst wall-clock gap between 10 ms
        ticks (includes time the OS gave the cores to other processes), and the worst *CPU* time
        the loop thread spent between two ticks — how long our own code held the loop, whatever
        the machine's load."""
        loop = asyncio.get_running_loop()
        last, last_cpu = loop.time(), time.thread_time()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now, cpu = loop.time(), time.thread_time()
            if gaps["measuring"]:
                gap = now - last - 0.01
                gaps["worst"] = max(gaps["worst"], gap)
                gaps["over_100ms"] += gap > 0.1
                gaps["cpu_worst"] = max(gaps["cpu_worst"], cpu - last_cpu)
                gaps["cpu_over_50ms"] += cpu - last_cpu > 0.05
            last, last_cpu = now, cpu

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(warmup)
    names = [n for n in poller.status if n != "hostile"]
    polls0 = {n: poller.status[n].polls for n in poller.status}
    missed0 = sum(poller.status[n].missed for n in names)
    failed0 = sum(poller.status[n].failures for n in names)
    h0 = poller.status["hostile"]
    h_polls0, h_fail0 = h0.polls, h0.failures
    for n in names:
        poller.status[n].max_lateness_s = 0.0
    gaps["measuring"] = True
    cpu0, wall0, wait0, load0 = _cpu_s(), time.monotonic(), _run_queue_wait_s(), os.getloadavg()[0]
    await asyncio.sleep(duration)
    cpu1, wall1, wait1 = _cpu_s(), time.monotonic(), _run_queue_wait_s()
    st = poller.status
    h = st["hostile"]
    result = {
        "healthy_targets": len(names),
        "interval_s": interval,
        "measured_s": round(wall1 - wall0, 1),
        "healthy_polls": sum(st[n].polls - polls0[n] for n in names),
        "healthy_expected_polls": int(len(names) * (wall1 - wall0) / interval),
        "healthy_missed_polls": sum(st[n].missed for n in names) - missed0,
        "healthy_failed_polls": sum(st[n].failures for n in names) - failed0,
        "healthy_worst_lateness_s": max(st[n].max_lateness_s for n in names),
        "healthy_median_worst_lateness_s": sorted(st[n].max_lateness_s for n in names)[len(names) // 2],
        "hostile_polls_ok": h.polls - h_polls0,
        "hostile_polls_failed": h.failures - h_fail0,
        "hostile_state": h.state.value,
        "hostile_reason": h.reason,
        "hostile_last_duration_s": h.last_duration_s,
        "loop_worst_stall_s": gaps["worst"],
        "loop_stalls_over_100ms": gaps["over_100ms"],
        "loop_worst_cpu_hold_s": gaps["cpu_worst"],
        "loop_cpu_holds_over_50ms": gaps["cpu_over_50ms"],
        "daemon_cpu_s": round(cpu1 - cpu0, 2),
        "daemon_cpu_share_of_one_core": (cpu1 - cpu0) / (wall1 - wall0),
        "run_queue_wait_s": round(wait1 - wait0, 2),
        "load_average_start": load0,
        "load_average_end": os.getloadavg()[0],
    }
    stop.set()
    await task
    await tick
    store.close()
    return result


def render(r: dict, server: dict, args: argparse.Namespace) -> str:
    ok = "meets" if r["healthy_missed_polls"] == 0 and r["healthy_failed_polls"] == 0 else "MISSES"
    load = os.getloadavg()
    return f"""# Poll benchmark with a hostile target ({args.shape})

`{" ".join([".venv/bin/python", "benchmarks/poll_hostile.py"] + sys.argv[1:])}`
— {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, Python {platform.python_version()}, {os.cpu_count()} CPUs
(shared with other work; load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}).

Setup: {r["healthy_targets"]} healthy targets (the real 614-line vLLM capture, counters growing) and one hostile
target serving {server.get("hostile_bytes", HOSTILE_BYTES)} bytes / {server.get("hostile_lines", "?")} lines of valid vLLM exposition,
every label set unique and new on each scrape; all polled every {r["interval_s"]:g} s by the daemon's real `Poller` with the
`Analyzer` and a SQLite store, default caps (`max_response_bytes` 8 MiB, `max_exposition_lines` 50,000),
timeout 2 s. Warm-up {args.warmup:g} s, then measured for {r["measured_s"]:g} s.

| figure | value | goal |
| --- | --- | --- |
| healthy targets: missed polls | **{r["healthy_missed_polls"]}** | 0 ({ok}) |
| healthy targets: failed polls | **{r["healthy_failed_polls"]}** | 0 |
| healthy polls done / slots | {r["healthy_polls"]} / {r["healthy_expected_polls"]} | |
| healthy worst lateness behind the slot (worst / median target) | {r["healthy_worst_lateness_s"] * 1000:.0f} ms / {r["healthy_median_worst_lateness_s"] * 1000:.0f} ms | < interval |
| hostile target: polls read / refused | {r["hostile_polls_ok"]} / {r["hostile_polls_failed"]} | |
| hostile target: state and reason | {r["hostile_state"]}: {r["hostile_reason"] or "(none)"} | |
| hostile target: last poll took | {(r["hostile_last_duration_s"] or 0) * 1000:.0f} ms | |
| longest event-loop stall, wall clock (10 ms ticker) / stalls over 100 ms | {r["loop_worst_stall_s"] * 1000:.0f} ms / {r["loop_stalls_over_100ms"]} | |
| longest the loop thread computed without yielding (CPU time between two ticks) / holds over 50 ms | **{r["loop_worst_cpu_hold_s"] * 1000:.0f} ms** / {r["loop_cpu_holds_over_50ms"]} | well under the interval |
| daemon CPU, share of one core | {r["daemon_cpu_share_of_one_core"]:.1%} ({r["daemon_cpu_s"]} CPU-s) | |
| time runnable but waiting for a CPU (other processes) | {r["run_queue_wait_s"]:.1f} s; load {r["load_average_start"]:.1f} -> {r["load_average_end"]:.1f} | |

Raw result:
```json
{json.dumps({"daemon": r, "server": server}, indent=2, default=float)}
```
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=100, help="healthy targets (the hostile one is extra)")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=240.0, help="measured seconds (after warm-up)")
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--shape", choices=("wide", "long"), default="wide")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if not (1 <= args.targets <= 1000 and 0 < args.duration <= 3600):
        ap.error("targets must be 1..1000 and duration 0..3600 s")
    out = (
        args.out
        or ROOT
        / "benchmarks"
        / "results"
        / f"poll_hostile{'' if args.shape == 'wide' else '_' + args.shape}.md"
    )
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(
        target=_serve, args=(child, args.targets, args.shape, args.warmup + args.duration + 20), daemon=True
    )
    proc.start()
    try:
        ports = parent.recv()
        with tempfile.TemporaryDirectory(prefix="charter-bench-") as tmp:
            result = asyncio.run(
                run_daemon(ports, args.interval, args.warmup, args.duration, Path(tmp) / "b.db")
            )
        server = parent.recv() if parent.poll(40) else {}
    finally:
        proc.terminate()
        proc.join(5)
    text = render(result, server, args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
