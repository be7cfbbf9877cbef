"""`make lint` runs `ruff format --check`: the tree as committed is formatted, and one misformatted line in a
copy makes the check fail, naming the file (one style, no review comments about it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")
LINT_PATHS = ("charter_tui", "executor", "testkit", "daemon", "compiler", "benchmarks", "tests", "scripts")

pytestmark = pytest.mark.skipif(not RUFF.exists(), reason="ruff is installed by `make install`")


def format_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUFF), "format", "--check", "--no-cache", *LINT_PATHS],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_makefile_lint_step_runs_the_format_check() -> None:
    lint = (REPO / "Makefile").read_text().split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "ruff format --check $(LINT_PATHS)" in lint


def test_the_tree_is_formatted_and_a_misformatted_copy_is_not(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for path in LINT_PATHS:
        shutil.copytree(REPO / path, root / path, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    assert format_check(root).returncode == 0
    target = root / "compiler" / "refs.py"
    target.write_text(target.read_text() + "\n_planted = {  'a':1 }\n")
    run = format_check(root)
    assert run.returncode == 1
    assert "compiler/refs.py" in run.stdout + run.stderr
