"""Reading an agent's project from real files: only what it imports, bounded, re-read on change."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from daemon.project_files import ProjectFiles, project_root


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_root_is_the_nearest_directory_with_a_project_marker(tmp_path: Path) -> None:
    write(tmp_path, {"repo/pyproject.toml": "", "repo/src/pkg/agent.py": "", "loose/agent.py": ""})
    assert project_root(tmp_path / "repo/src/pkg/agent.py") == tmp_path / "repo"
    assert project_root(tmp_path / "loose/agent.py") == tmp_path / "loose"


def test_only_the_imported_modules_and_their_packages_are_read(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": "",
            "pkg/__init__.py": "from .prompts import SYSTEM\n",
            "pkg/prompts.py": "from pkg.fragments import TAIL\nSYSTEM = 'Be brief. ' + TAIL\n",
            "pkg/fragments.py": "TAIL = 'Cite sources.'\n",
            "pkg/unrelated.py": "X = 1\n",
            "pkg/agent.py": "import os\nfrom openai import OpenAI\nfrom .prompts import SYSTEM\n",
        },
    )
    project = ProjectFiles(tmp_path).project_for(tmp_path / "pkg/agent.py")
    assert project.module == "pkg.agent"
    assert sorted(project.modules) == ["pkg", "pkg.agent", "pkg.fragments", "pkg.prompts"]
    assert project.modules["pkg.fragments"] == "TAIL = 'Cite sources.'\n"


def test_a_script_imports_the_module_beside_it(tmp_path: Path) -> None:
    write(
        tmp_path, {".git/HEAD": "", "agents/prompts.py": "S = 'x'\n", "agents/agent.py": "import prompts\n"}
    )
    project = ProjectFiles(tmp_path).project_for(tmp_path / "agents/agent.py")
    assert sorted(project.modules) == ["agents.agent", "agents.prompts"]


def test_a_changed_module_is_read_again_and_an_unchanged_one_is_not(tmp_path: Path) -> None:
    write(tmp_path, {"setup.py": "", "prompts.py": "S = 'one'\n", "agent.py": "from prompts import S\n"})
    files = ProjectFiles(tmp_path)
    assert files.project_for(tmp_path / "agent.py").modules["prompts"] == "S = 'one'\n"
    reads: list[str] = []
    real_open = os.open

    def counting_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    os.open = counting_open
    try:
        files.project_for(tmp_path / "agent.py")
        assert reads == [], "nothing changed: nothing read"
        (tmp_path / "prompts.py").write_text("S = 'two, longer'\n")
        assert files.project_for(tmp_path / "agent.py").modules["prompts"] == "S = 'two, longer'\n"
        assert reads == [str(tmp_path / "prompts.py")]
    finally:
        os.open = real_open


def test_bounds_and_bad_files_leave_modules_out_and_say_why(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "setup.cfg": "",
            "a.py": "A = 'a' * 10\n",
            "b.py": "B = 'b'\n",
            "latin.py": "",
            "agent.py": "import a\nimport b\nimport latin\nimport pipe\n",
        },
    )
    (tmp_path / "latin.py").write_bytes(b"S = '\xe9t\xe9'\n")  # not UTF-8 and no coding cookie
    os.mkfifo(tmp_path / "pipe.py")
    files = ProjectFiles(tmp_path, max_modules=2)
    done = threading.Event()
    result: list[object] = []
    threading.Thread(
        target=lambda: (result.append(files.project_for(tmp_path / "agent.py")), done.set())
    ).start()
    assert done.wait(10), "a FIFO named pipe.py must not block the read"
    project = result[0]
    assert sorted(project.modules) == ["a", "agent"]  # max_modules=2: the agent itself and a
    text = "\n".join(files.problems)
    assert "b.py: not followed (over 2 modules" in text
    assert "latin.py" in text and "not valid utf-8" in text
    assert "pipe" not in project.modules  # not a regular file: never opened, never a module


def test_a_loop_of_imports_ends(tmp_path: Path) -> None:
    write(tmp_path, {"setup.py": "", "a.py": "import b\n", "b.py": "import a\n", "agent.py": "import a\n"})
    project = ProjectFiles(tmp_path).project_for(tmp_path / "agent.py")  # returns: each module once
    assert sorted(project.modules) == ["a", "agent", "b"]
