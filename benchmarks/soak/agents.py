"""Watched agent files edited on a schedule: prompt edits, a syntax error and its fix, and a
pathological file (20 nested for loops around an LLM call) rewritten now and then."""

from __future__ import annotations

import random
from pathlib import Path

DEPTH = 20


def pathological(n: int) -> str:
    lines = ["from openai import OpenAI", "", "client = OpenAI()", "", "", "def deep(xs):"]
    for d in range(DEPTH):
        lines.append("    " * (d + 1) + f"for a{d} in xs:")
    body = "    " * (DEPTH + 1)
    lines.append(
        body + "client.chat.completions.create(model='m', messages=[{'role': 'user', 'content': "
        f"f'edit {n} ' + str(a0) + str(a{DEPTH - 1})}}])"
    )
    return "\n".join(lines) + "\n"


class AgentEditor:
    def __init__(self, files: list[Path], watch_dir: Path, rng: random.Random) -> None:
        self.files = files
        self.originals = {f: f.read_text() for f in files}
        self.deep = watch_dir / "deep_loops.py"
        self.rng = rng
        self.edits = {"edit": 0, "syntax_error": 0, "fixed": 0, "pathological": 0}
        self.broken: Path | None = None
        self.n = 0
        self.deep.write_text(pathological(0))

    def step(self) -> None:
        self.n += 1
        if self.broken is not None:  # a person fixes what they broke on the next save
            self.broken.write_text(self.originals[self.broken] + f"\n# soak edit {self.n}\n")
            self.broken = None
            self.edits["fixed"] += 1
            return
        roll = self.rng.random()
        if roll < 0.15:
            self.deep.write_text(pathological(self.n))
            self.edits["pathological"] += 1
            return
        f = self.rng.choice(self.files)
        if roll < 0.3:
            f.write_text(self.originals[f] + "\ndef broken(:\n")
            self.broken = f
            self.edits["syntax_error"] += 1
            return
        text = self.originals[f].replace("You are", f"(edit {self.n}) You are", 1)
        f.write_text(text + f"\n# soak edit {self.n}\n")
        self.edits["edit"] += 1
