"""Compile time against nesting depth for pathological agent shapes (issue 13).

An agent file with 20 nested `for` loops around one LLM call never finished compiling: the time grew
about 4x per level. This measures compile time per depth for that shape and for the other shapes
that stress the same machinery (nested `while`, nested if/else, long elif ladders, many sequential
calls, loops that grow a history, deeply nested expressions), for one or more compiler trees, so
the committed report shows before and after side by side.

    .venv/bin/python benchmarks/compile_depth.py [--max-depth 20] [--timeout 20] \
        [--src before=/tmp/old-tree --src after=.] [--out benchmarks/results/compile_depth.md]

`--src LABEL=DIR` names a directory holding a `compiler/` package (e.g. `git archive HEAD~3 compiler
| tar -x -C /tmp/old`). Each (tree, shape) runs in its own process, depths in increasing order; once
one compile takes longer than `--timeout` the process is killed and deeper levels are reported as not
run (every shape here costs at least as much one level deeper). Times are wall-clock
`time.perf_counter` of one `compile_source` call, after one warm-up compile of depth 1.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CALL = "litellm.completion(model='m', messages=[{{'role': 'user', 'content': {prompt}}}])"


def _call(prompt: str) -> str:
    return CALL.format(prompt=prompt)


def nested_for(depth: int) -> str:
    lines = ["import litellm", "", "", "def agent(items):"]
    pad = "    "
    for i in range(depth):
        lines.append(f"{pad}for x{i} in items:")
        pad += "    "
    lines.append(f"{pad}r = {_call(repr('Summarise: ') + ' + x0')}")
    return "\n".join(lines) + "\n"


def nested_while(depth: int) -> str:
    lines = ["import litellm", "", "", "def agent(q, more):"]
    pad = "    "
    for i in range(depth):
        lines.append(f"{pad}while more({i}):")
        pad += "    "
    lines.append(f"{pad}q = {_call('q')}")
    return "\n".join(lines) + "\n"


def growing_history(depth: int) -> str:
    """Nested loops whose innermost call's prompt grows every iteration (the `_grows` check)."""
    lines = ["import litellm", "", "", "def agent(items):", "    history = 'You are helpful.\\n'"]
    pad = "    "
    for i in range(depth):
        lines.append(f"{pad}for x{i} in items:")
        pad += "    "
    lines.append(f"{pad}r = {_call('history')}")
    lines.append(f"{pad}history += f'Q: {{x0}}\\nA: {{r}}\\n'")
    return "\n".join(lines) + "\n"


def nested_if(depth: int) -> str:
    lines = ["import litellm", "", "", "def agent(q, c):"]
    pad = "    "
    for i in range(depth):
        lines.append(f"{pad}if c({i}):")
        lines.append(f"{pad}    q = q + 'a{i}'")
        lines.append(f"{pad}else:")
        lines.append(f"{pad}    q = {_call('q')}")
        lines.append(f"{pad}    if c({i}, 1):")
        pad += "        "
    lines.append(f"{pad}q = {_call('q')}")
    return "\n".join(lines) + "\n"


def elif_ladder(depth: int) -> str:
    lines = [
        "import litellm",
        "",
        "",
        "def agent(q, kind):",
        "    if kind == 0:",
        f"        r = {_call('q')}",
    ]
    for i in range(1, depth):
        lines.append(f"    elif kind == {i}:")
        lines.append(f"        r = {_call(repr(f'arm {i}: ') + ' + q')}")
    lines.append("    else:")
    lines.append("        r = q")
    lines.append(f"    return {_call('r')}")
    return "\n".join(lines) + "\n"


def sequential_calls(depth: int) -> str:
    lines = ["import litellm", "", "", "def agent(q):", "    r0 = q"]
    for i in range(1, depth + 1):
        prompt = "f'Step " + str(i) + ": {r" + str(i - 1) + "}'"
        lines.append(f"    r{i} = {_call(prompt)}")
    lines.append(f"    return r{depth}")
    return "\n".join(lines) + "\n"


def nested_expression(depth: int) -> str:
    inner = "q"
    for i in range(depth):
        inner = f"wrap{i % 3}('(' + {inner} + ') {i}')"
    return (
        "\n".join(["import litellm", "", "", "def agent(q):", f"    p = {inner}", f"    return {_call('p')}"])
        + "\n"
    )


def doubling(depth: int) -> str:
    """`h = h + h` on `depth` lines: the prompt's shape doubles per line."""
    body = "".join("    h = h + h\n" for _ in range(depth))
    return f"import litellm\n\n\ndef agent(q):\n    h = 'Context: ' + q\n{body}    return {_call('h')}\n"


def self_containers(depth: int) -> str:
    """`m = [m, m]` on `depth` lines: a list that holds itself twice, a tree of 2^depth nodes."""
    body = "".join("    m = [m, m]\n" for _ in range(depth))
    return (
        f"import litellm\n\n\ndef agent(q):\n    m = [{{'role': 'user', 'content': q}}]\n{body}"
        "    return litellm.completion(model='m', messages=m)\n"
    )


def constant_loops(depth: int) -> str:
    """`depth` nested loops over constant 32-element lists: unrolling them all is 32^depth iterations."""
    items = "[" + ", ".join(f"'i{i}'" for i in range(32)) + "]"
    lines = ["import litellm", "", "", "def agent(q):"]
    pad = "    "
    for i in range(depth):
        lines.append(f"{pad}for a{i} in {items}:")
        pad += "    "
    lines.append(f"{pad}x = q + 't0' + 't1'")
    lines.append(f"    return {_call('q')}")
    return "\n".join(lines) + "\n"


SHAPES: dict[str, Callable[[int], str]] = {
    "nested_for": nested_for,
    "nested_while": nested_while,
    "growing_history": growing_history,
    "nested_if": nested_if,
    "elif_ladder": elif_ladder,
    "sequential_calls": sequential_calls,
    "nested_expression": nested_expression,
    "doubling": doubling,
    "self_containers": self_containers,
    "constant_loops": constant_loops,
}
# Shapes whose "depth" is a count of arms or calls rather than a nesting level: measured further out.
LINEAR_SCALE = {"elif_ladder": 25, "sequential_calls": 25}

_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from compiler.api import compile_source
sys.path.insert(0, sys.argv[2])
from compile_depth import SHAPES, LINEAR_SCALE
shape = SHAPES[sys.argv[3]]
compile_source(shape(1), "warm.py")
for depth in json.loads(sys.argv[4]):
    src = shape(depth)
    t = time.perf_counter()
    r = compile_source(src, "shape.py")
    dt = time.perf_counter() - t
    print(json.dumps({"depth": depth, "s": dt, "calls": len(r.calls), "lines": src.count("\n")}), flush=True)
"""


def measure(src: Path, shape: str, depths: list[int], timeout: float) -> dict[int, dict | None]:
    """depth -> {"s", "calls", "lines"}, or None where it timed out or was not run."""
    out: dict[int, dict | None] = {d: None for d in depths}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(src), str(Path(__file__).parent), shape, json.dumps(depths)],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:  # a thread, so the wait for the next line can time out
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    wait = timeout + 30  # the first depth also pays for the imports
    try:
        while True:
            try:
                line = lines.get(timeout=wait)
            except queue.Empty:
                break  # this depth ran past the timeout: it and the deeper ones stay None
            if line is None:
                break
            row = json.loads(line)
            out[row["depth"]] = row
            wait = timeout
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-depth", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds one compile may take")
    ap.add_argument(
        "--src",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="a tree holding compiler/ (repeatable; default: this checkout, labelled 'now')",
    )
    ap.add_argument("--shape", action="append", choices=sorted(SHAPES), help="only these shapes")
    ap.add_argument("--out", type=Path, help="write the markdown report here (default: print it)")
    args = ap.parse_args(argv)
    srcs = [tuple(s.split("=", 1)) for s in args.src] or [("now", str(REPO))]
    shapes = args.shape or list(SHAPES)
    load0 = os.getloadavg()[0]
    started = datetime.now(UTC)
    tables: dict[str, dict[str, dict[int, dict | None]]] = {}
    for shape in shapes:
        depths = list(range(1, args.max_depth + 1))
        if shape in LINEAR_SCALE:
            depths += [
                args.max_depth * k for k in (2, 5, 10, LINEAR_SCALE[shape]) if args.max_depth * k > depths[-1]
            ]
        if shape not in LINEAR_SCALE:
            depths += [d for d in (25, 30, 40, 60, 90) if d > depths[-1]]
        depths = [d for d in depths if _parses(SHAPES[shape](d))]  # e.g. nested_if past 100 indents
        tables[shape] = {}
        for label, src in srcs:
            tables[shape][label] = measure(Path(src).resolve(), shape, depths, args.timeout)
            print(
                f"{shape} {label}: "
                + " ".join(f"{d}:{r['s']:.3f}" if r else f"{d}:-" for d, r in tables[shape][label].items()),
                file=sys.stderr,
            )
    report = _report(args, srcs, tables, started, load0)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    else:
        print(report)
    return 0


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, RecursionError, MemoryError):
        return False
    return True


def _fmt(row: dict | None, timeout: float, prev_missing: bool) -> str:
    if row is None:
        return "not run" if prev_missing else f"> {timeout:.0f} s"
    s = row["s"]
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def _report(args: argparse.Namespace, srcs: list, tables: dict, started: datetime, load0: float) -> str:
    labels = [label for label, _ in srcs]
    lines = [
        "# Compile time against nesting depth",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs (shared with other engineers' work), "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}",
        "- command: `.venv/bin/python benchmarks/compile_depth.py "
        + " ".join(f"--src {label}={src}" for label, src in srcs)
        + f" --max-depth {args.max_depth} --timeout "
        f"{args.timeout:g} --out benchmarks/results/compile_depth.md`",
        f"- one `compile_source` call per cell, wall time; a compile over {args.timeout:g} s is killed and deeper "
        f"levels are not run; load average at start / end: {load0:.1f} / {os.getloadavg()[0]:.1f}",
        "",
    ]
    for shape, by_label in tables.items():
        doc = (SHAPES[shape].__doc__ or "").strip()
        lines += [f"## {shape}", ""]
        if doc:
            lines += [doc, ""]
        lines.append("| depth | lines | " + " | ".join(labels) + " | calls |")
        lines.append("|---:|---:|" + "---:|" * len(labels) + "---:|")
        depths = list(next(iter(by_label.values())))
        missing = {label: False for label in labels}
        for d in depths:
            rows = {label: by_label[label].get(d) for label in labels}
            known = next((r for r in rows.values() if r), None)
            n_lines = known["lines"] if known else SHAPES[shape](d).count("\n")
            calls = sorted({str(r["calls"]) for r in rows.values() if r}) or ["-"]
            cells = []
            for label in labels:
                cells.append(_fmt(rows[label], args.timeout, missing[label]))
                missing[label] = missing[label] or rows[label] is None
            lines.append(f"| {d} | {n_lines} | " + " | ".join(cells) + f" | {'/'.join(calls)} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
