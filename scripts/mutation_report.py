"""Summarise a finished `mutmut run`: the score per module and every surviving mutant as a one-line diff.

Run from the repository root after `mutmut run` (`make mutation` does both). Reads mutmut's own
result files under mutants/ and its diff helper, so the figures are the ones `mutmut results` has.
Prints Markdown: paste the tables into docs/mutation.md and give each survivor its reason.
`--by-function` lists the survivors grouped by function (mutant numbers, one sample change each),
the form docs/mutation.md uses.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code

MUTANTS = Path("mutants")


def changed_lines(diff: str) -> str:
    """`old -> new` from a unified diff of one function (the lines that differ, stripped)."""
    old = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    new = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    text = f"`{' / '.join(old)}` → `{' / '.join(new) or '(removed)'}`"
    return text.replace("|", "\\|")


def main() -> int:
    metas = sorted(MUTANTS.rglob("*.py.meta"))
    if not metas:
        print("no mutmut results under mutants/: run `make mutation` first", file=sys.stderr)
        return 2
    by_function = "--by-function" in sys.argv
    rows, survivors = [], []
    groups: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    for meta in metas:
        source = meta.relative_to(MUTANTS).with_suffix("")  # daemon/x.py.meta -> daemon/x.py
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        status = {name: status_by_exit_code[code] for name, code in codes.items()}
        counts = Counter(status.values())
        tested = sum(counts.values()) - counts["skipped"] - counts["not checked"]
        killed = counts["killed"] + counts["timeout"] + counts["caught by type check"]
        score = f"{100 * killed / tested:.0f}%" if tested else "-"
        rows.append(
            f"| {source} | {len(codes)} | {killed} | {counts['survived']} | {counts['no tests']} | "
            f"{counts['not checked']} | {score} |"
        )
        for name in sorted(n for n, s in status.items() if s in ("survived", "no tests")):
            change = changed_lines(get_diff_for_mutant(name, path=source))
            survivors.append(f"| `{name.split('.')[-1]}` | {source} | {status[name]} | {change} |")
            function, _, number = name.split(".")[-1].rpartition("__mutmut_")
            # mutmut's mangling: `x_func` for functions, `xǁClassǁmethod` for methods.
            function = function.replace("\u01c1", ".").removeprefix("x.").removeprefix("x_").strip(".")
            groups.setdefault((str(source), function), []).append((int(number), status[name], change))
    print("| module | mutants | killed | survived | no tests | not run | score |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    if by_function:
        print("| module | function | surviving mutants (numbers) | sample change |")
        print("|---|---|---|---|")
        for (source, function), items in sorted(groups.items()):
            items.sort()
            numbers = ", ".join(f"{n}" + ("?" if st == "no tests" else "") for n, st, _ in items)
            print(f"| {source} | `{function}` | {numbers} | {items[0][2]} |")
        return 0
    print("| mutant | module | status | change |")
    print("|---|---|---|---|")
    print("\n".join(survivors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
