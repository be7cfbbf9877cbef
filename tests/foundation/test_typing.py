"""`make lint` type-checks the daemon, the compiler, the executor and the test kit strictly ([tool.mypy] in pyproject.toml): mypy runs on
a copy of the tree, which must pass as it is, and must fail, naming each, on errors planted in a second copy
(an untyped function, a wrong assignment, a stale `type: ignore`, a bad pydantic constructor)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MYPY = Path(sys.executable).with_name("mypy")

pytestmark = pytest.mark.skipif(not MYPY.exists(), reason="mypy is installed by `make install`")

# (module, appended source, the error code mypy must report in that module)
PLANTED = [
    ("daemon/topics.py", "def planted(x):\n    return x\n", "no-untyped-def"),
    ("compiler/values.py", "_planted: int = 'text'\n", "assignment"),
    ("daemon/exporter.py", "_planted = 1  # type: ignore[attr-defined]\n", "unused-ignore"),
    # Only the pydantic plugin types model_construct(): this one checks the plugin is on.
    (
        "daemon/auth.py",
        "from daemon.optimizer.models import ConfigChange\n"
        "_planted = ConfigChange.model_construct(parameter=1)\n",
        "arg-type",
    ),
]


def mypy(root: Path) -> subprocess.CompletedProcess[str]:
    # The cache lives in the copy: a copy of a checked tree starts warm, and nothing is written to the repo.
    return subprocess.run(
        [str(MYPY), "--cache-dir", str(root / ".mypy_cache")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def checked_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("typing") / "tree"
    for package in ("daemon", "compiler", "executor", "testkit"):  # [tool.mypy] files
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root, mypy(root)


def test_the_tree_as_it_is_type_checks(checked_tree: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, run = checked_tree
    assert run.returncode == 0 and run.stdout.startswith("Success"), run.stdout


def test_planted_type_errors_fail_the_check(
    tmp_path: Path, checked_tree: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    root = tmp_path / "tree"
    shutil.copytree(checked_tree[0], root)
    for module, source, _ in PLANTED:
        target = root / module
        target.write_text(target.read_text() + "\n\n" + source)
    run = mypy(root)
    assert run.returncode != 0, run.stdout
    errors = [ln for ln in run.stdout.splitlines() if ": error: " in ln]
    for module, _, code in PLANTED:
        assert any(ln.startswith(f"{module}:") and ln.endswith(f"[{code}]") for ln in errors), (
            module,
            run.stdout,
        )
    # Nothing else: each plant is reported where it was planted, and only there.
    assert all(ln.split(":")[0] in {m for m, _, _ in PLANTED} for ln in errors), run.stdout
