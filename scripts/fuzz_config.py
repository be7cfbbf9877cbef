"""Fuzz the config loader by hand: N generated config files, a report of what the loader did.

    .venv/bin/python scripts/fuzz_config.py 100000 [--seed S]

Uses the generator of tests/foundation/config_fuzz.py (TOML from the config's own keys with values
of every type, corrupted documents, random bytes) and the real loader on a real file. Prints how
many loaded, how many were refused (ConfigError) and every other outcome, and exits 1 if there was
any: anything but a sound config or one ConfigError line is a bug.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.foundation.config_fuzz import document, outcome  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="how many inputs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    outcomes: Counter[str] = Counter()
    findings: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="charter-config-fuzz-") as tmp:
        path = Path(tmp) / "config.toml"
        for i in range(args.n):
            data = document(rng)
            kind, problem = outcome(path, data)
            outcomes[kind] += 1
            if problem is not None:
                if len(findings) < 20:
                    findings.append(f"input {i}: {problem} <- {data[:200]!r}")
            if (i + 1) % 10000 == 0:
                print(
                    f"{i + 1} inputs, {time.monotonic() - started:.0f} s, {outcomes['finding']} findings",
                    flush=True,
                )
    took = time.monotonic() - started
    print(f"inputs {args.n}  seed {args.seed}  seconds {took:.1f}  ({args.n / took:.0f}/s)")
    for kind, count in outcomes.most_common():
        print(f"  {count:>8}  {kind}")
    for finding in findings:
        print(f"  {finding}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
