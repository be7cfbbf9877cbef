"""Helpers for the compiler tests: compile a fixture agent by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler.api import compile_source
from compiler.model import CompileResult

REPO = Path(__file__).resolve().parents[2]
AGENTS = REPO / "data" / "agents"
EXAMPLES = AGENTS / "examples"


def compile_path(path: Path) -> CompileResult:
    return compile_source(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))


@pytest.fixture(scope="session")
def compiled() -> dict[str, CompileResult]:
    """Every agent under data/agents compiled once per session, keyed by file stem."""
    out: dict[str, CompileResult] = {}
    for path in sorted(AGENTS.rglob("*.py")):
        out[path.stem] = compile_path(path)
    return out
