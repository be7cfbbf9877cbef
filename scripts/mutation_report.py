"""Summarise a finished `mutmut run`: the score per module and every surviving mutant as a one-line diff.

Run from the repository root after `mutmut run` (`make mutation` does both). Reads mutmut's own
result files under mutants/ and its diff helper, so the figures are the ones `mutmut results` has.
Prints Markdown: paste the tables into docs/mutation.md and give each survivor its reason.
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
    rows, survivors = [], []
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
        rows.append(f"| {source} | {len(codes)} | {killed} | {counts['survived']} | {counts['no tests']} | "
                    f"{counts['not checked']} | {score} |")
        for name in sorted(n for n, s in status.items() if s in ("survived", "no tests")):
            diff = get_diff_for_mutant(name, path=source)
            survivors.append(f"| `{name.split('.')[-1]}` | {source} | {status[name]} | {changed_lines(diff)} |")
    print("| module | mutants | killed | survived | no tests | not run | score |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("| mutant | module | status | change |")
    print("|---|---|---|---|")
    print("\n".join(survivors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
