"""Fuzz the compiler by hand: N inputs, count those that crash or hang.

    .venv/bin/python benchmarks/fuzz_compiler.py 100000 [--seed 1] [--hang-s 10] [--save-dir DIR]

Inputs alternate between valid agent-like programs from the grammar in
`tests/compiler/agent_grammar.py` and noise (random bytes, random unicode, programs with bytes
flipped or cut off). Each goes through `decode_source` + `compile_source` as the watcher does.
Allowed outcomes: a `CompileResult` or a `CompileError`. Anything else raised is a crash; an input
that takes longer than `--hang-s` is a hang. Input i is made from seed `seed * 1_000_003 + i`, so
`--only I` reproduces one; `--save-dir` writes every failing input there. Prints one progress line per
10,000 inputs and a summary line: inputs run, crashes, hangs, slowest input.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from compiler.api import compile_source, decode_source  # noqa: E402
from compiler.errors import CompileError  # noqa: E402
from tests.compiler.agent_grammar import noise, program  # noqa: E402


class Hang(Exception):
    pass


def _alarm(_signum: int, _frame: object) -> None:
    raise Hang


def make_input(seed: int, i: int) -> bytes:
    pick = random.Random(seed * 1_000_003 + i).randrange
    if i % 2 == 0:
        return program(pick, max_statements=60, max_depth=10).encode()
    return noise(pick)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int, help="how many inputs to run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hang-s", type=float, default=10.0, help="an input slower than this counts as a hang")
    ap.add_argument("--only", type=int, help="run only input number I (to reproduce a failure)")
    ap.add_argument("--save-dir", type=Path, help="write each failing input here")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGALRM, _alarm)
    crashes: Counter[str] = Counter()
    hangs = ran = errors = 0
    slowest = (0.0, -1)
    started = time.monotonic()
    indices = [args.only] if args.only is not None else range(args.n)
    for i in indices:
        data = make_input(args.seed, i)
        t = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, args.hang_s)
        failure = None
        try:
            result = compile_source(decode_source(data, f"fuzz{i}.py"), f"fuzz{i}.py")
            result.model_dump_json()
        except CompileError:
            errors += 1
        except Hang:
            hangs += 1
            failure = "hang"
        except Exception as exc:  # noqa: BLE001 - counting these is the point
            key = f"{type(exc).__name__}: {traceback.extract_tb(exc.__traceback__)[-1].name}"
            crashes[key] += 1
            failure = key
            if crashes[key] == 1:
                print(f"input {i}: {key}: {exc}", file=sys.stderr)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        dt = time.perf_counter() - t
        slowest = max(slowest, (dt, i))
        ran += 1
        if failure and args.save_dir:
            args.save_dir.mkdir(parents=True, exist_ok=True)
            (args.save_dir / f"input{i}.py").write_bytes(data)
        if ran % 10_000 == 0:
            print(
                f"{ran} inputs, {sum(crashes.values())} crashes, {hangs} hangs, "
                f"{time.monotonic() - started:.0f} s",
                flush=True,
            )
    print(
        f"ran {ran} inputs (seed {args.seed}): {sum(crashes.values())} crashes, {hangs} hangs (> {args.hang_s:g} s), "
        f"{errors} CompileErrors, slowest input {slowest[1]} took {slowest[0]:.2f} s, "
        f"total {time.monotonic() - started:.0f} s"
    )
    for key, n in crashes.most_common():
        print(f"  {n} x {key}")
    return 1 if crashes or hangs else 0


if __name__ == "__main__":
    sys.exit(main())
