"""How long one 8 MB exposition keeps the event loop from running anything else, three ways.

    .venv/bin/python benchmarks/parse_offloop.py [--rounds 3]

Parses `poll_hostile.py`'s 8 MB "wide" exposition (~41,000 lines, every label set unique) while a
ticker task sleeps 1 ms at a time, and prints the parse's wall time, the ticker's worst gap and how
many ticks got through:

- `loop`: `prom.parse` called on the loop (what the poller did before): the loop is stopped for
  the whole parse;
- `thread`: `asyncio.to_thread(prom.parse, ...)`: the loop runs, but only when the parsing thread
  lets go of the GIL (every 5 ms switch interval, and each loop turn needs it several times);
- `slices`: `prom.parse_async`, what the poller does now: ~2 ms of parsing, then a yield.

As in the daemon (`Poller.run`), start-up objects are frozen out of the cyclic GC first; without
that, full collections triggered by the parse's allocations add 100-200 ms gaps to every variant.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.poll_hostile import hostile_exposition  # noqa: E402
from daemon import prom  # noqa: E402


async def measure(mode: str, body: bytes) -> tuple[float, float, int]:
    gaps: list[float] = []
    done = False

    async def tick() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last - 0.001)
            last = now

    task = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    gaps.clear()
    started = time.perf_counter()
    if mode == "loop":
        prom.parse(body, 9_000_000)
    elif mode == "thread":
        await asyncio.to_thread(prom.parse, body, 9_000_000)
    else:
        await prom.parse_async(body, 9_000_000, budget_s=30)
    elapsed = time.perf_counter() - started
    done = True
    await task
    return elapsed, max(gaps) if gaps else elapsed, len(gaps)


async def main(rounds: int) -> None:
    body = hostile_exposition("wide")
    gc.collect()
    gc.freeze()
    lines = body.count(b"\n")
    print(f"{len(body)} bytes, {lines} lines")
    for _ in range(rounds):
        for mode in ("loop", "thread", "slices"):
            prom._LABEL_CACHE.clear()  # every label set new, as from a hostile server
            elapsed, worst, ticks = await measure(mode, body)
            print(
                f"{mode:7s} parse {elapsed * 1000:6.0f} ms   worst ticker gap {worst * 1000:6.1f} ms   ticks {ticks}"
            )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(ap.parse_args().rounds))
