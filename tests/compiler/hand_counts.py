"""Exact token counts for figure tests worked out by hand.

A counter that counts the letter `w` gives each literal an exact, chosen token count: `words(n)` is n
tokens, and text without a `w` is 0. Run-time values keep their documented assumed sizes
(`compiler/tokens.py`).
"""

from __future__ import annotations

from compiler.api import CompileOptions, compile_source
from compiler.model import CompileResult, Finding, PatternKind


def count_w(text: str) -> int:
    return text.count("w")


def words(n: int) -> str:
    """n tokens: "w w ... w" (2n - 1 characters)."""
    return " ".join(["w"] * n)


def line_of(source: str, text: str) -> int:
    """The line of `source` holding `text` (exactly one must)."""
    [n] = [i for i, line in enumerate(source.splitlines(), 1) if text in line]
    return n


def compiled(source: str) -> CompileResult:
    return compile_source(source, "agent.py", token_counter=count_w, options=CompileOptions(with_fixes=False))


def findings(source: str, kind: PatternKind) -> list[Finding]:
    return [f for f in compiled(source).patterns if f.kind is kind]
