"""Fleet scale: how many daemons and targets one broker and one TUI carry (issue 17 item 7).

A benchmark, not a timed test: run it by hand and commit the Markdown it writes.

    .venv/bin/python benchmarks/fleet_scale.py --out benchmarks/results/fleet_scale.md

The layout as deployed, on loopback:
- a private Mosquitto (the test kit's);
- D daemons' MQTT sides in one publisher process: each the real `MqttBridge` (daemon/mqtt_bridge.py) over its own
  bus with its own id, fed what a daemon polling T targets at 1 Hz publishes: one `MetricSample` per target per
  second (a QoS 0 stream) and each target's `Instance` row (retained, QoS 1), plus its liveness. The daemons' own
  cost per target (scrape and parse) is not here: benchmarks/poll_bench.py measures it (results/poll.md);
- one TUI: the real `remote_app` (charter_tui/compose.py), headless at 160x48 on the Instances screen, which
  groups every daemon's rows, attached to the broker from this process.
Measured per step: the share of the samples the bridges published (over the whole run) that the TUI applied;
after a warm-up, the lag from a sample's timestamp to the TUI applying it (p50/p95/max); the CPU each of the
three processes spent (utime+stime from /proc/<pid>/stat, as % of one core); the Instances screen's redraw time.
The lag includes the publisher's own burst: every second it builds all D x T samples in one loop, where real
daemons publish each sample as its poll ends, spread over the second; it is an upper bound for the path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEPS = [(1, 10), (2, 50), (5, 100), (10, 100), (10, 200), (20, 200)]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


# --- the publisher process: D bridges, T targets each ------------------------------------------------
async def publish(daemons: int, targets: int, port: int, seconds: float) -> dict[str, int]:
    from daemon.bus import Bus, topic
    from daemon.config import MqttConfig
    from daemon.models import Instance, InstanceState, MetricSample
    from daemon.mqtt_bridge import MqttBridge

    config = MqttConfig(enabled=True, host="127.0.0.1", port=port, outbox_events=100_000)
    buses = [Bus() for _ in range(daemons)]
    bridges = [MqttBridge(bus, config, f"box-{d:02d}") for d, bus in enumerate(buses)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(b.run(stop)) for b in bridges]
    await asyncio.gather(*(asyncio.wait_for(b.connected.wait(), 30) for b in bridges))
    for bus in buses:
        for t in range(targets):
            name = f"vllm-{t:03d}"
            bus.publish(
                topic("instance", name), Instance(name=name, url="http://127.0.0.1:1", state=InstanceState.UP)
            )
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        for bus in buses:
            for t in range(targets):
                name = f"vllm-{t:03d}"
                bus.publish(
                    topic("sample", name),
                    MetricSample(instance=name, ts=time.time(), window_s=1.0, waiting=t % 7, ttft_p95_s=0.05),
                )
            await asyncio.sleep(0)  # let the bridges drain between daemons, as separate processes would
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    await asyncio.sleep(2.0)  # the last second's samples go out
    stop.set()
    await asyncio.gather(*tasks)
    return {"published": sum(b.published for b in bridges), "dropped": sum(b.dropped for b in bridges)}


# --- one step: broker, publisher process, TUI here ----------------------------------------------------
async def step(daemons: int, targets: int, seconds: float, warmup: float) -> dict[str, float]:
    from charter_tui.compose import remote_app
    from charter_tui.screens.instances import InstancesScreen
    from daemon.config import load_config
    from daemon.models import MetricSample
    from testkit.mosquitto import start_mosquitto

    with tempfile.TemporaryDirectory() as tmp, start_mosquitto(keep_dir=Path(tmp) / "broker") as broker:
        config = Path(tmp) / "tui.toml"
        config.write_text(f"[mqtt]\nport = {broker.port}\n")
        app = remote_app(load_config(str(config)), f"127.0.0.1:{broker.port}")
        lags: list[float] = []
        applied = 0  # samples applied over the whole run, to compare with what the bridges published
        counting = False
        original_apply = app._apply

        def apply(event):  # type: ignore[no-untyped-def]
            nonlocal applied
            original_apply(event)
            if isinstance(event.payload, MetricSample):
                applied += 1
                if counting:
                    lags.append(time.time() - event.payload.ts)

        app._apply = apply  # type: ignore[method-assign]
        draws: list[float] = []
        original_draw = InstancesScreen.draw

        def timed_draw(screen, changed):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            original_draw(screen, changed)
            if counting:
                draws.append(time.perf_counter() - started)

        InstancesScreen.draw = timed_draw  # type: ignore[method-assign]
        try:
            async with app.run_test(size=(160, 48)):
                await asyncio.wait_for(app.source.connected.wait(), 30)  # type: ignore[attr-defined]
                publisher = subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--publisher",
                        str(daemons),
                        str(targets),
                        str(broker.port),
                        str(warmup + seconds),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert publisher.stdout is not None
                assert (await asyncio.to_thread(publisher.stdout.readline)).strip() == "ready"
                await asyncio.sleep(warmup)
                counting = True
                pids = {"tui": os.getpid(), "broker": broker.process.pid, "daemons": publisher.pid}
                cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
                t0 = time.monotonic()
                await asyncio.sleep(seconds)
                elapsed = time.monotonic() - t0
                cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
                counting = False
                out, _ = await asyncio.to_thread(publisher.communicate, timeout=120)
                totals = json.loads(out.strip().splitlines()[-1])
                await asyncio.sleep(2.0)  # the last samples reach the TUI
                published_samples = totals["published"] - daemons * targets  # less the instance rows
                rows = sum(len(app.fleet.state_of(d).instances) for d in app.fleet.ids())
        finally:
            InstancesScreen.draw = original_draw  # type: ignore[method-assign]
    lags.sort()
    return {
        "daemons": daemons,
        "targets": targets,
        "rows": rows,
        "rate": daemons * targets,
        "received_share": applied / published_samples,
        "lag_p50_ms": 1000 * statistics.median(lags) if lags else float("nan"),
        "lag_p95_ms": 1000 * lags[int(0.95 * (len(lags) - 1))] if lags else float("nan"),
        "lag_max_ms": 1000 * lags[-1] if lags else float("nan"),
        "cpu_tui": 100 * (cpu1["tui"] - cpu0["tui"]) / elapsed,
        "cpu_broker": 100 * (cpu1["broker"] - cpu0["broker"]) / elapsed,
        "cpu_daemons": 100 * (cpu1["daemons"] - cpu0["daemons"]) / elapsed,
        "draw_p50_ms": 1000 * statistics.median(draws) if draws else float("nan"),
        "draw_max_ms": 1000 * max(draws) if draws else float("nan"),
        "dropped": totals["dropped"],
    }


def report(results: list[dict[str, float]], seconds: float, command: str) -> str:
    import textual

    load = os.getloadavg()
    lines = [
        "# Fleet scale: daemons and targets through one broker into one TUI",
        "",
        f"`{command}` on {platform.machine()}, {os.cpu_count()} cores shared with other work, Python "
        f"{platform.python_version()}, textual {textual.__version__}, Mosquitto from the test kit; {seconds:.0f} s "
        f"measured per step after a warm-up. Load average at the end: {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}.",
        "Every target publishes one sample a second (the default poll interval). CPU is % of one core; the three",
        "processes share the machine's cores, so past about 100% in sum they slow each other. The lag includes the",
        "publisher building each second's samples in one burst (see the module docstring): an upper bound.",
        "",
        "| daemons x targets | samples/s | TUI rows | reached the TUI | lag p50 / p95 / max (ms) | CPU TUI | CPU broker "
        "| CPU bridges | Instances redraw p50 / max (ms) | outbox dropped |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['daemons']:.0f} x {r['targets']:.0f} | {r['rate']:.0f} | {r['rows']:.0f} | "
            f"{100 * r['received_share']:.1f}% | {r['lag_p50_ms']:.0f} / {r['lag_p95_ms']:.0f} / {r['lag_max_ms']:.0f} | "
            f"{r['cpu_tui']:.0f}% | {r['cpu_broker']:.0f}% | {r['cpu_daemons']:.0f}% | "
            f"{r['draw_p50_ms']:.1f} / {r['draw_max_ms']:.1f} | {r['dropped']:.0f} |"
        )
    lines += [
        "",
        "## What limits it, and the path beyond (written down, not built)",
        "",
        "- The broker is not the limit: Mosquitto stays in single-digit % of a core at the largest step. The TUI",
        "  is: decoding and applying each sample costs it about the same CPU as the bridges spend producing them,",
        "  so one TUI follows roughly as many samples per second as one core decodes (the last row, where the two",
        "  cores of this box are full). Lag grows with the burst (see above), and nothing is lost.",
        "- A TUI that needs less: `--daemon ID` subscribes to those daemons' topics only (the broker filters),",
        "  and a longer `[daemon] poll_interval_s` divides the stream; the retained state (instances, rollouts,",
        "  bottlenecks) is a few messages per target, whatever the rate.",
        "- Many TUIs, or more daemons than one broker process serves: a clustered MQTT broker (EMQX, HiveMQ, or",
        "  Mosquitto bridges per site) shares the fan-out; the topic tree (`charter/v1/<daemon-id>/...`) splits by",
        "  daemon, so a site's broker can carry its boxes and bridge only state topics upward.",
        "- History at fleet scale belongs in Prometheus, not in the bus: each daemon's exporter is scraped, sites",
        "  federate (or remote-write to Thanos/Mimir/VictoriaMetrics), and a daemon can read its targets through",
        '  PromQL (`source = "prometheus"`) instead of scraping them again.',
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--publisher", nargs=4, metavar=("D", "T", "PORT", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publisher:
        d, t, port, seconds = args.publisher
        print(json.dumps(asyncio.run(publish(int(d), int(t), int(port), float(seconds)))), flush=True)
        return 0
    results = []
    for daemons, targets in STEPS:
        result = asyncio.run(step(daemons, targets, args.seconds, args.warmup))
        print(json.dumps(result), flush=True)
        results.append(result)
    text = report(results, args.seconds, " ".join(["benchmarks/fleet_scale.py", *sys.argv[1:]]))
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
