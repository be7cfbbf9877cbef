"""TUI benchmark: 100 targets updating at 1 Hz; key press to screen update (p50/p95); memory over time.

A benchmark, not a timed test: run it by hand and commit the Markdown it writes.

    .venv/bin/python benchmarks/tui_bench.py --minutes 30 --out benchmarks/results/tui.md

What it does:
- builds the real `CharterApp` (headless, 160x48) over a real `Bus`, with the daemon not running:
  a feeder task publishes one `MetricSample` per target per second (plus instance events, a compiled
  agent, bottlenecks and rollouts so every screen has content), exactly the messages the poller,
  analysis and rollout manager publish;
- measures key press -> screen updated: the key event goes in through the driver, as a terminal's
  would; the clock stops at the first frame the app writes (`App._display`) that was rendered
  with the key's effect in the DOM (the new screen is active, the cursor moved, the filter
  applied). The effect is checked inside `_display` itself, the instant the frame is written:
  rendering and writing are one synchronous step, so what the check sees is what the frame
  shows; the frame is also encoded into terminal output, which headless Textual skips but a
  real terminal pays for. After a screen change only a full frame counts: a partial one
  updates regions of what the terminal showed before. (An earlier version checked from a
  polling task, which could wake just after the frame that showed the effect and then wait for
  the next 1 Hz redraw, over-counting ~1 key in 5 by up to 30 ms; and it took a partial frame
  after a switch as the new screen.) Pilot's `press()` is not used for timing because it also
  waits for the whole process to go idle, which with a live feed measures the feed, not the
  key. Keys: the five screen switches, cursor moves in the 100-row table, opening and closing
  the detail screen, the help screen, and typing a filter;
- samples the process's RSS every 30 s (from /proc/self/statm) while the feed runs, and reports
  the growth after warm-up (the first 5 minutes, or a fifth of a shorter run).
Goals (issue 6): p95 under 50 ms; memory flat after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from charter_tui.app import CharterApp  # noqa: E402
from charter_tui.compose import pinned_app  # noqa: E402
from daemon.bus import Bus, topic  # noqa: E402
from daemon.config import load_config  # noqa: E402
from daemon.models import Instance, InstanceState, MetricSample  # noqa: E402

N_TARGETS = 100
# Each round leaves the app as it found it (cursor moves cancel out, the filter is cleared), so a
# long run never reaches the end of the table, where `down` has nothing to do.
KEYS_PER_ROUND = [
    "2",
    "3",
    "4",
    "5",
    "1",
    "down",
    "down",
    "up",
    "up",
    "enter",
    "escape",
    "question_mark",
    "escape",
    "slash",
    "v",
    "escape",
]


def effect(app: CharterApp, key: str, before: dict[str, object]):  # type: ignore[no-untyped-def]
    """A predicate that is true once `key`'s effect is in the DOM (what the next frame will show)."""
    from textual.widgets import DataTable

    from charter_tui.screens.help import HelpScreen
    from charter_tui.screens.instance_detail import InstanceDetailScreen

    modes = {"1": "instances", "2": "agents", "3": "cache", "4": "bottlenecks", "5": "rollouts"}
    if key in modes:
        return lambda: app.current_mode == modes[key] and app.screen.is_mounted
    if key in ("down", "up"):
        table = app.screen.query_one("#instances", DataTable)
        row = table.cursor_row
        return lambda: table.cursor_row != row
    if key == "enter":
        return lambda: isinstance(app.screen, InstanceDetailScreen) and app.screen.is_mounted
    if key == "question_mark":
        return lambda: isinstance(app.screen, HelpScreen) and app.screen.is_mounted
    if key == "slash":
        return lambda: getattr(app.focused, "id", None) == "filter"
    if key == "v":
        table = app.screen.query_one("#instances", DataTable)
        return lambda: table.row_count == 0 or app.screen.filter_text == "v"
    screen = before["screen"]
    return lambda: app.screen is not screen or getattr(app.focused, "id", None) != "filter"


async def timed_key(app: CharterApp, key: str, frames: FrameClock) -> float:
    from textual import events

    done = effect(app, key, {"screen": app.screen})
    shown = frames.expect(done)
    t0 = time.perf_counter()
    app._driver.send_message(events.Key(key, key if len(key) == 1 else None))  # type: ignore[union-attr]
    try:
        return (await asyncio.wait_for(shown, 30) - t0) * 1000
    except TimeoutError:
        raise RuntimeError(f"key {key!r}: no frame showed its effect within 30 s") from None


class FrameClock:
    """Wraps `App._display`: resolves the awaited key's future at the first frame written while
    its effect holds (checked at that instant, so the frame is the one that shows it)."""

    def __init__(self, app: CharterApp) -> None:
        self.app = app
        self._display = app._display
        self._waiting: tuple[object, asyncio.Future[float]] | None = None
        self._terminal_shows: object = None  # the screen the last full frame drew
        app._display = self._record  # type: ignore[method-assign]

    def expect(self, done) -> asyncio.Future[float]:  # type: ignore[no-untyped-def]
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting = (done, future)
        return future

    def _record(self, screen, renderable) -> None:  # type: ignore[no-untyped-def]
        from textual._compositor import CompositorUpdate, LayoutUpdate

        self._display(screen, renderable)
        if isinstance(renderable, CompositorUpdate):
            # Headless, `_display` skips turning the frame into terminal output; a real terminal
            # pays for it, so the benchmark does too (everything but the write to the tty).
            renderable.render_segments(self.app.console)
        # A partial frame only updates what the terminal already shows: after a screen change
        # the terminal shows the new screen once a full frame of it has been written.
        full = isinstance(renderable, LayoutUpdate)
        shows_screen = full or self._terminal_shows is screen
        if full:
            self._terminal_shows = screen
        if self._waiting is None:
            return
        done, future = self._waiting
        if screen is self.app.screen and shows_screen and done():  # type: ignore[operator]
            self._waiting = None
            if not future.done():
                future.set_result(time.perf_counter())


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def publish_static(bus: Bus) -> None:
    """Screens 2-5 content, once (the fixtures the TUI tests use)."""
    from tests.tui import fixtures as fx

    rec = fx.compile_record()
    bus.publish(topic("compile", rec.path), rec)
    for b in fx.bottlenecks():
        bus.publish(topic("bottleneck", b.instance), b)
    for r in fx.recommendations():
        bus.publish(topic("recommendation", str(r.id)), r)
    for ro in fx.rollouts():
        bus.publish(topic("rollout", str(ro.id)), ro)
    for a in fx.audit():
        bus.publish(topic("audit", a.entity), a)


async def feed(bus: Bus, stop: asyncio.Event, counter: list[int]) -> None:
    names = [f"vllm-{i:03d}" for i in range(N_TARGETS)]
    for name in names:
        bus.publish(
            topic("instance", name),
            Instance(
                name=name,
                url=f"http://10.0.0.{1 + hash(name) % 250}:8000",
                engine="vllm",
                model="llama-3-8b",
                state=InstanceState.UP,
            ),
        )
    tick = 0
    start = time.monotonic()
    while not stop.is_set():
        now = time.time()
        for i, name in enumerate(names):
            phase = (tick + i) / 10
            bus.publish(
                topic("sample", name),
                MetricSample(
                    instance=name,
                    ts=now,
                    engine="vllm",
                    window_s=1.0,
                    ttft_p95_s=0.1 + 0.05 * (1 + math.sin(phase)),
                    generation_tokens_per_s=200 + 50 * math.cos(phase),
                    kv_cache_usage=0.5 + 0.3 * math.sin(phase / 3),
                    prefix_hit_rate=0.6 + 0.2 * math.sin(phase / 5),
                    waiting=float((tick + i) % 5),
                    running=8.0,
                ),
            )
            counter[0] += 1
        tick += 1
        # Exactly 1 Hz on average, whatever the publish loop cost.
        await asyncio.sleep(max(0.0, start + tick - time.monotonic()))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def run(minutes: float, rounds_between_samples: int) -> dict[str, object]:
    load_start = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="tui-bench-"))
    config = tmp / "c.toml"
    config.write_text("[daemon]\nmetrics_port = 0\n")
    os.environ["CHARTER_TUI_DATABASE_URL"] = f"sqlite:///{tmp / 'bench.db'}"
    app = pinned_app(load_config(config))
    bus = app.source.bus
    publish_static(bus)
    stop = asyncio.Event()
    published = [0]
    latencies: dict[str, list[float]] = {}
    memory: list[tuple[float, float]] = []
    async with app.run_test(size=(160, 48)) as pilot:
        frames = FrameClock(app)
        feeder = asyncio.create_task(feed(bus, stop, published))
        await asyncio.sleep(3.0)  # let the first samples land and the table fill
        t_start = time.monotonic()
        next_mem = t_start
        deadline = t_start + minutes * 60
        while time.monotonic() < deadline:
            for key in KEYS_PER_ROUND:
                latencies.setdefault(key, []).append(await timed_key(app, key, frames))
                await asyncio.sleep(0.3)  # a person's pace; the 1 Hz feed keeps running meanwhile
            if time.monotonic() >= next_mem:
                memory.append((time.monotonic() - t_start, rss_mb()))
                next_mem += 30.0
            # Between key rounds the app runs on its own with the feed, as when nobody types.
            for _ in range(rounds_between_samples):
                await asyncio.sleep(1.0)
        memory.append((time.monotonic() - t_start, rss_mb()))
        stop.set()
        await feeder
        rows = len(app.state.instances)
        await pilot.press("q")
    every = [v for vs in latencies.values() for v in vs]
    return {
        "latencies": latencies,
        "all": every,
        "memory": memory,
        "published": published[0],
        "rows": rows,
        "minutes": minutes,
        "load": load_start,
        "load_end": os.getloadavg(),
    }


def report(result: dict[str, object], out: Path | None) -> str:
    lat: dict[str, list[float]] = result["latencies"]  # type: ignore[assignment]
    every: list[float] = result["all"]  # type: ignore[assignment]
    memory: list[tuple[float, float]] = result["memory"]  # type: ignore[assignment]
    minutes = float(result["minutes"])  # type: ignore[arg-type]
    warm = min(300.0, minutes * 60 / 5)
    after = [m for t, m in memory if t >= warm] or [memory[-1][1]]
    lines = [
        "# TUI benchmark",
        "",
        f"`benchmarks/tui_bench.py --minutes {minutes:g}` on {platform.machine()}, {os.cpu_count()} cores shared "
        f"with other work, Python {platform.python_version()}, textual 8.2.8, headless 160x48.",
        f"Load average (1/5/15 min) at the start {'/'.join(f'{x:.1f}' for x in result['load'])}, "  # type: ignore[union-attr]
        f"at the end {'/'.join(f'{x:.1f}' for x in result['load_end'])}: "  # type: ignore[union-attr]
        "the latencies below include waiting for the CPU when other processes hold it.",
        f"{N_TARGETS} targets, each publishing a `MetricSample` at 1 Hz on the bus "
        f"({result['published']} samples in total, {result['rows']} rows on screen 1).",
        "",
        "## Key press -> screen updated (ms)",
        "",
        "From the key event entering the driver to the first frame written that shows its effect (checked as "
        "that frame is written; after a screen change, the first full frame), including encoding the frame as "
        "terminal output. See the module docstring for why it is measured this way.",
        "",
        "| key | n | p50 | p95 | max |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, values in lat.items():
        lines.append(
            f"| `{key}` | {len(values)} | {pct(values, 0.5):.1f} | {pct(values, 0.95):.1f} | {max(values):.1f} |"
        )
    lines += [
        f"| **all** | {len(every)} | **{pct(every, 0.5):.1f}** | **{pct(every, 0.95):.1f}** | {max(every):.1f} |",
        "",
        f"Goal: p95 under 50 ms -> {'met' if pct(every, 0.95) < 50 else 'NOT met'}.",
        "",
        "## Memory (RSS, MB)",
        "",
        "| minute | RSS |",
        "| ---: | ---: |",
    ]
    for t, m in memory:
        lines.append(f"| {t / 60:.1f} | {m:.1f} |")
    growth = after[-1] - after[0]
    lines += [
        "",
        f"After warm-up ({warm / 60:.1f} min): {after[0]:.1f} MB -> {after[-1]:.1f} MB "
        f"({growth:+.1f} MB over {(memory[-1][0] - warm) / 60:.1f} min); "
        f"spread {max(after) - min(after):.1f} MB. The sample ring buffers are bounded "
        "(600 floats x 5 signals per target), so memory is expected to level off once they fill (10 min).",
        "",
    ]
    text = "\n".join(lines)
    if out is not None:
        out.write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the feed runs (default 30)")
    parser.add_argument(
        "--idle-s", type=int, default=10, help="seconds of feed-only running between key rounds"
    )
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    args = parser.parse_args()
    result = asyncio.run(run(args.minutes, args.idle_s))
    print(report(result, args.out))
    every: list[float] = result["all"]  # type: ignore[assignment]
    print(f"p50 {statistics.median(every):.1f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
