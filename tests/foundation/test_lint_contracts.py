"""`make lint` fails when a house rule is broken: the import contracts are run on a copy of the tree with a
violation planted, and must fail naming it (and pass on the tree as it is)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.exists(), reason="import-linter is installed by `make install`"
)


def copy_tree(tmp: Path) -> Path:
    root = tmp / "tree"
    for package in ("charter_tui", "executor", "testkit", "daemon", "compiler"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(root), "COLUMNS": "200"},
        timeout=300,
    )


FLOORS = "Floors: charter_tui -> executor|testkit -> daemon -> compiler"


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("daemon/poller.py", "import textual", "The daemon never imports Textual or Rich"),
        ("compiler/dag.py", "import httpx", "The compiler is pure"),
        ("daemon/store.py", "import charter_tui.app", FLOORS),
        ("compiler/model.py", "import daemon.models", FLOORS),
        ("daemon/service.py", "import executor.bench", FLOORS),  # the daemon carries no bench
        ("daemon/poller.py", "import testkit.vllm", FLOORS),  # nor the test kit
        ("testkit/vllm.py", "import executor.runner", FLOORS),  # siblings: independent
    ],
)
def test_a_planted_violation_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    root = copy_tree(tmp_path)
    target = root / module
    target.write_text(target.read_text() + f"\n{line}  # planted by the test\n")
    run = lint_imports(root)
    assert run.returncode != 0, run.stdout
    broken = [ln for ln in run.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(ln.startswith(contract) for ln in broken), run.stdout


def test_the_tree_as_it_is_keeps_every_contract(tmp_path: Path) -> None:
    run = lint_imports(copy_tree(tmp_path))
    assert run.returncode == 0 and "0 broken" in run.stdout, run.stdout
