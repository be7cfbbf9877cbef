"""By-hand fuzzing of the metrics edge: N hostile expositions through parser, engine detection,
collectors and window; reports how many were read, refused, and crashed.

    .venv/bin/python scripts/fuzz_prom.py 100000 [--seed 1] [--out FILE]

Each input is a real capture (tests/daemon/fixtures/*.prom) mutated by one to four of: value
replaced by NaN/±Inf/negative/huge, byte flipped, line duplicated or dropped, text truncated,
garbage or control bytes inserted (ESC sequences included), label set mangled, or a line repeated
many times. Outcomes:

- read: parsed, collected and windowed; the sample must hold only finite values in range, be
  suspect exactly when values were rejected, and carry no control character in its `info` strings;
- refused: `ExpositionError` with a one-line message (a malformed or oversized exposition);
- crash: any other exception, or a broken invariant above — printed with a reproducer.

Exit status 1 when anything crashed. Runs without hypothesis so it can go through 10^5 inputs.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon import prom  # noqa: E402
from daemon.collectors import detect_engine, read  # noqa: E402
from daemon.collectors.checks import SAMPLE_RANGES  # noqa: E402
from daemon.collectors.window import CounterWindow  # noqa: E402
from daemon.models import SIGNAL_FIELDS  # noqa: E402
from daemon.text import is_clean  # noqa: E402

CAPTURES = [p.read_bytes() for p in sorted((ROOT / "tests" / "daemon" / "fixtures").glob("*.prom"))]
VALUES = [
    b"NaN",
    b"+Inf",
    b"-Inf",
    b"-5",
    b"-0.05",
    b"1.5",
    b"1e308",
    b"-1e308",
    b"0",
    b"nan",
    b"inf",
    b"1e-320",
]
GARBAGE = [
    b"\x1b[2J",
    b"\x1b]52;c;ZXZpbA==\x07",
    b"\x07",
    b"\r",
    b"\x00",
    b"\xff\xfe",
    b"{",
    b"}",
    b'"',
    b"\\",
    b"=",
    b",",
    b"#",
    b" ",
    b"\t",
    b"\n",
    b'le="+Inf"',
    b'{a="b"}',
    b"\xe2\x80\xae",
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        i = rng.randrange(len(lines)) if lines else 0
        if not lines:
            lines = [b""]
        if op == 0 and b" " in lines[i]:  # hostile value
            head = lines[i].rsplit(b" ", 1)[0]
            lines[i] = head + b" " + rng.choice(VALUES)
        elif op == 1 and lines[i]:  # byte flip
            j = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:j] + bytes([rng.randrange(256)]) + lines[i][j + 1 :]
        elif op == 2:
            lines.insert(i, lines[i])
        elif op == 3 and len(lines) > 1:
            del lines[i]
        elif op == 4:
            lines = lines[: rng.randrange(len(lines) + 1)]
        elif op == 5:
            j = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:j] + rng.choice(GARBAGE) + lines[i][j:]
        elif op == 6 and b"{" in lines[i]:  # a model name / label value with escapes
            lines[i] = lines[i].replace(b'="', b'="' + rng.choice(GARBAGE[:3] + [b"x" * 300]), 1)
        elif op == 7:
            lines[i : i + 1] = [lines[i]] * rng.randint(2, 300)
        else:
            lines.insert(i, bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))))
    return b"\n".join(lines)


counts_suspect = [0]


def check(data: bytes, window: CounterWindow, ts: float) -> str:
    try:
        expo = prom.parse(data)
    except prom.ExpositionError as exc:
        message = str(exc)
        if not message or "\n" in message:
            raise AssertionError(f"unclear refusal: {message!r}") from None
        return "refused"
    engine = detect_engine(expo)
    if engine is None:
        return "refused"
    reading = read(expo, engine, ts)
    sample = window.update(reading).sample
    for field in SIGNAL_FIELDS:
        value = getattr(sample, field)
        if value is not None:
            lo, hi = SAMPLE_RANGES.get(field, (0.0, math.inf))
            if not (math.isfinite(value) and lo <= value <= hi):
                raise AssertionError(f"{field}={value!r} reached the sample")
    # Suspect when the edge rejected a reading's value, or a computed signal came out of range.
    if reading.rejected and not sample.suspect:
        raise AssertionError(f"rejected={reading.rejected} but the sample is not suspect")
    if (
        sample.suspect
        and not reading.rejected
        and not any((sample.suspect_reason or "").startswith(f) for f in SIGNAL_FIELDS)
    ):
        raise AssertionError(f"suspect without a reason: {sample.suspect_reason!r}")
    if sample.suspect:
        counts_suspect[0] += 1
    for text in _strings(reading.info):
        if not is_clean(text):
            raise AssertionError(f"unclean info string {text!r}")
    return "read"


def _strings(value: object):  # type: ignore[no-untyped-def]
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    counts = {"read": 0, "refused": 0, "crash": 0, "suspect": 0}
    crashes: list[dict[str, str]] = []
    windows = [CounterWindow(f"t{i}", 60) for i in range(len(CAPTURES))]
    started = time.monotonic()
    for i in range(args.n):
        which = rng.randrange(len(CAPTURES))
        data = mutate(rng, CAPTURES[which])
        try:
            outcome = check(data, windows[which], 1000.0 + i)
        except Exception as exc:  # noqa: BLE001 - the point: count and show anything unexpected
            counts["crash"] += 1
            if len(crashes) < 20:
                crashes.append(
                    {
                        "input": data[:2000].decode("latin-1"),
                        "error": repr(exc),
                        "trace": traceback.format_exc(limit=4),
                    }
                )
            continue
        counts[outcome] += 1
    counts["suspect"] = counts_suspect[0]
    report = {
        "inputs": args.n,
        "seed": args.seed,
        **counts,
        "seconds": round(time.monotonic() - started, 1),
        "crashes_shown": crashes,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text)
    print(json.dumps({k: v for k, v in report.items() if k != "crashes_shown"}))
    for c in crashes[:5]:
        print(c["error"], c["trace"], sep="\n")
    return 1 if counts["crash"] else 0


if __name__ == "__main__":
    sys.exit(main())
