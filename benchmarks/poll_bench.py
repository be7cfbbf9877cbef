"""Poll benchmark: 100 targets at 1 Hz, each serving the real 614-line vLLM capture, for >= 5 minutes.

    .venv/bin/python benchmarks/poll_bench.py [--targets 100] [--interval 1] [--duration 300] [--out FILE]

Layout: one child process serves the capture on N loopback ports (asyncio, HTTP/1.1 keep-alive; the
prefix-cache counters grow on every scrape so the windowing does real work). The parent runs the
daemon's real `Poller` (keep-alive fetcher, parser, collectors, windows) with the real `Analyzer` on every sample
and batched writes to a real SQLite file — and measures only itself:

- CPU share: user+sys CPU of the daemon process over the measured period / wall time (1.0 = one core);
- missed polls (slots skipped because a poll overran), failed polls, worst lateness of a poll;
- parse rate of `daemon.prom.parse` next to `prometheus_client.parser` on the same text, same run;
- database growth per hour (after a WAL checkpoint, so the file size is what stays).

A benchmark, not a test: it loads the machine; run it alone and commit its markdown result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import re
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CAPTURE = ROOT / "tests" / "daemon" / "fixtures" / "vllm-0.32.0-cpu.prom"


# --- the server side (child process) ---------------------------------------------------------
def growing_capture(text: str) -> Callable[[int], bytes]:
    """The real capture as served on its `scrape`-th scrape: the prefix-cache counters grow each time,
    so the daemon computes real rates (shared with benchmarks/poll_hostile.py)."""
    q_line = re.search(r"^vllm:prefix_cache_queries_total\{[^}]*\} .*$", text, re.M)
    h_line = re.search(r"^vllm:prefix_cache_hits_total\{[^}]*\} .*$", text, re.M)
    assert q_line and h_line
    head, rest = text[: q_line.start()], text[q_line.end() :]
    mid, tail = rest.split(h_line.group(0), 1)
    q_name, h_name = q_line.group(0).rsplit(" ", 1)[0], h_line.group(0).rsplit(" ", 1)[0]

    def body(scrape: int) -> bytes:
        return f"{head}{q_name} {3828 + 1000 * scrape}.0{mid}{h_name} {2304 + 600 * scrape}.0{tail}".encode()

    return body


async def start_metric_servers(
    n: int, body: Callable[[int], bytes]
) -> tuple[list[asyncio.Server], list[int]]:
    """`n` keep-alive HTTP/1.1 servers on loopback; server `i` answers `GET /metrics` with `body(i)`."""

    async def handle(i: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                path = request.split(b" ", 2)[1]
                if path == b"/metrics":
                    payload, status = body(i), b"200 OK"
                else:
                    payload, status = b"not found\n", b"404 Not Found"
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; version=0.0.4\r\n"
                    b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    servers, ports = [], []
    for i in range(n):
        srv = await asyncio.start_server(lambda r, w, i=i: handle(i, r, w), "127.0.0.1", 0)
        servers.append(srv)
        ports.append(srv.sockets[0].getsockname()[1])
    return servers, ports


def _serve(ports_out: multiprocessing.connection.Connection, n_targets: int, stop_after_s: float) -> None:
    capture = growing_capture(CAPTURE.read_text())
    counts = [0] * n_targets

    def body(i: int) -> bytes:
        counts[i] += 1
        return capture(counts[i])

    async def main() -> None:
        _servers, ports = await start_metric_servers(n_targets, body)
        ports_out.send(ports)
        await asyncio.sleep(stop_after_s)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        ports_out.send({"server_cpu_s": ru.ru_utime + ru.ru_stime, "scrapes": sum(counts)})

    asyncio.run(main())


# --- the daemon side ---------------------------------------------------------------------------
def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _run_queue_wait_s() -> float:
    """Seconds this process's threads spent runnable but waiting for a CPU (Linux schedstat):
    how much of any lateness came from other processes holding the cores, not from our own work."""
    total = 0
    for stat in Path("/proc/self/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def _db_bytes(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return (pages - free) * size


def parse_rates(seconds: float = 3.0) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    from daemon import prom

    text = CAPTURE.read_text()
    lines = sum(1 for _ in text.splitlines())
    out: dict[str, float] = {"lines": lines, "bytes": len(text.encode())}
    from daemon.collectors import wanted_names

    only = wanted_names("vllm")
    for name, fn in (
        ("charter", lambda: prom.parse(text)),
        ("charter_filtered", lambda: prom.parse(text, only=only)),
        ("prometheus_client", lambda: list(text_string_to_metric_families(text))),
    ):
        fn()  # warm
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            fn()
            n += 1
        elapsed = time.perf_counter() - started
        out[f"{name}_parses_per_s"] = n / elapsed
        out[f"{name}_ms_per_parse"] = elapsed / n * 1000
    out["speedup"] = out["charter_parses_per_s"] / out["prometheus_client_parses_per_s"]
    return out


async def run_daemon(ports: list[int], interval: float, warmup: float, duration: float, db: Path) -> dict:
    from daemon.analysis import Analyzer
    from daemon.config import parse_config
    from daemon.models import MetricSample
    from daemon.poller import Poller
    from daemon.store import AsyncStore, Store

    toml = f"[daemon]\npoll_interval_s = {interval}\n"
    for i, port in enumerate(ports):
        toml += f'[[targets]]\nname = "t{i:03d}"\nurl = "http://127.0.0.1:{port}"\ntimeout_s = 2\n'
    config = parse_config(toml)
    store = AsyncStore(Store(f"sqlite:///{db}"))
    analyzer = Analyzer(config)
    events = {"n": 0}

    def on_sample(name: str, result) -> None:
        events["n"] += len(analyzer.observe(result.sample, result.extras))

    poller = Poller(config, store, on_sample=on_sample)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    await asyncio.sleep(warmup)
    await poller.flush()
    size0 = await store.call(_db_bytes, db)
    polls0 = sum(s.polls for s in poller.status.values())
    missed0 = sum(s.missed for s in poller.status.values())
    for s in poller.status.values():
        s.max_lateness_s = 0.0
    load0 = os.getloadavg()[0]
    cpu0, wall0, wait0 = _cpu_s(), time.monotonic(), _run_queue_wait_s()
    await asyncio.sleep(duration)
    cpu1, wall1, wait1 = _cpu_s(), time.monotonic(), _run_queue_wait_s()
    polls1 = sum(s.polls for s in poller.status.values())
    missed1 = sum(s.missed for s in poller.status.values())
    stop.set()
    await task
    size1 = await store.call(_db_bytes, db)
    rows = len(store.store.all(MetricSample))
    stored = poller.samples_written
    store.close()
    wall = wall1 - wall0
    failures = sum(s.failures for s in poller.status.values())
    lateness = sorted(s.max_lateness_s for s in poller.status.values())
    return {
        "targets": len(ports),
        "interval_s": interval,
        "measured_s": round(wall, 1),
        "daemon_cpu_s": round(cpu1 - cpu0, 2),
        "daemon_cpu_share_of_one_core": (cpu1 - cpu0) / wall,
        "polls": polls1 - polls0,
        "expected_polls": int(len(ports) * wall / interval),
        "missed_polls": missed1 - missed0,
        "failed_polls": failures,
        "worst_lateness_s": lateness[-1],
        "median_worst_lateness_s": lateness[len(lateness) // 2],
        "cpu_ms_per_poll": (cpu1 - cpu0) / max(polls1 - polls0, 1) * 1000,
        "db_bytes_start": size0,
        "db_bytes_end": size1,
        "db_growth_bytes_per_hour": (size1 - size0) / wall * 3600,
        "run_queue_wait_s": round(wait1 - wait0, 2),
        "load_average_start": load0,
        "load_average_end": os.getloadavg()[0],
        "rows_stored": rows,
        "samples_written": stored,
        "bottleneck_events": events["n"],
    }


def render(result: dict, parse: dict, server: dict, args: argparse.Namespace) -> str:
    r = result
    ok_cpu = "meets" if r["daemon_cpu_share_of_one_core"] < 0.25 else "MISSES"
    ok_missed = "meets" if r["missed_polls"] == 0 else "MISSES"
    load = os.getloadavg()
    return f"""# Poll benchmark

`{" ".join([".venv/bin/python", "benchmarks/poll_bench.py"] + sys.argv[1:])}`
— {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, Python {platform.python_version()}, {os.cpu_count()} CPUs
(shared with other work; load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}).

Setup: {r["targets"]} targets polled every {r["interval_s"]:g} s by the daemon's real `Poller` (one event loop,
`daemon.fetch` keep-alive GETs, `daemon.prom` parser keeping the collector's samples, vLLM collector, counter windows) with the `Analyzer` on every sample and batched
writes to a real SQLite file (WAL). Each target is its own loopback port of a separate server process serving
the real {int(parse["lines"])}-line vLLM 0.32 capture ({int(parse["bytes"])} bytes), with the prefix-cache
counters growing on each scrape. Warm-up {args.warmup:g} s, then measured for {r["measured_s"]:g} s.

| figure | value | goal |
| --- | --- | --- |
| daemon CPU, share of one core | **{r["daemon_cpu_share_of_one_core"]:.1%}** ({r["daemon_cpu_s"]} CPU-s over {r["measured_s"]:g} s) | < 25% ({ok_cpu}) |
| CPU per poll (fetch + parse + collect + window + analyze + store) | {r["cpu_ms_per_poll"]:.2f} ms | |
| polls done / slots in the period | {r["polls"]} / {r["expected_polls"]} | |
| missed polls | **{r["missed_polls"]}** | 0 ({ok_missed}) |
| failed polls | {r["failed_polls"]} | 0 |
| worst lateness of a poll behind its slot (worst target / median target) | {r["worst_lateness_s"] * 1000:.0f} ms / {r["median_worst_lateness_s"] * 1000:.0f} ms | < interval |
| time the daemon was runnable but waiting for a CPU (other processes on the cores) | {r["run_queue_wait_s"]:.1f} s of {r["measured_s"]:g} s; load average {r["load_average_start"]:.1f} -> {r["load_average_end"]:.1f} on {os.cpu_count()} CPUs | |
| parse: `daemon.prom.parse` | **{parse["charter_parses_per_s"]:.0f} parses/s** ({parse["charter_ms_per_parse"]:.3f} ms each, {parse["charter_parses_per_s"] * parse["lines"] / 1e6:.2f} M lines/s) | |
| parse: `daemon.prom.parse(only=<the vLLM collector's names>)`, as the poller runs it | {parse["charter_filtered_parses_per_s"]:.0f} parses/s ({parse["charter_filtered_ms_per_parse"]:.3f} ms each) | |
| parse: `prometheus_client.parser` (same text, same run) | {parse["prometheus_client_parses_per_s"]:.0f} parses/s ({parse["prometheus_client_ms_per_parse"]:.3f} ms each) | |
| parser speed-up, full parse vs prometheus_client | {parse["speedup"]:.1f}x | |
| database growth | **{r["db_growth_bytes_per_hour"] / 1e6:.1f} MB/hour** ({r["targets"]} targets, raw samples; {r["db_bytes_end"] / 1e6:.1f} MB after the run) | |
| samples stored / written by the poller | {r["rows_stored"]} / {r["samples_written"]} | equal |
| server process CPU (for scale, not the daemon's) | {server.get("server_cpu_s", float("nan")):.1f} CPU-s | |

Database growth is for raw samples at 1 Hz; the store's retention folds samples older than
`storage.raw_retention_hours` (24 h default) into per-minute aggregates, so a steady state holds about one day of
raw samples (~{r["db_growth_bytes_per_hour"] * 24 / 1e9:.1f} GB for {r["targets"]} targets at 1 Hz) plus small
aggregates.

Raw result:
```json
{json.dumps({"daemon": r, "parse": parse, "server": server}, indent=2, default=float)}
```
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=100)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=300.0, help="measured seconds (after warm-up)")
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "poll.md")
    args = ap.parse_args()
    if not (1 <= args.targets <= 1000 and 0 < args.duration <= 3600):
        ap.error("targets must be 1..1000 and duration 0..3600 s")
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(
        target=_serve, args=(child, args.targets, args.warmup + args.duration + 20), daemon=True
    )
    proc.start()
    try:
        ports = parent.recv()
        with tempfile.TemporaryDirectory(prefix="charter-bench-") as tmp:
            result = asyncio.run(
                run_daemon(ports, args.interval, args.warmup, args.duration, Path(tmp) / "bench.db")
            )
        parse = parse_rates()
        server = parent.recv() if parent.poll(40) else {}
    finally:
        proc.terminate()
        proc.join(5)
    text = render(result, parse, server, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
