"""Project compiles: an agent importing 50 project modules, and a save of a 500-line module.

Goals (issue 14, item 6): a 50-module project compiles in under 2x the time of parsing its modules
(`libcst.parse_module`, the baseline of benchmarks/compile_bench.py); a save in a 500-line module
recompiles it and its dependents in under 100 ms. Not a timed test: run it by hand, commit the report.

    .venv/bin/python benchmarks/project_bench.py [--repeat 7] [--out benchmarks/results/project_compile.md]

The project is generated into a temporary directory and read from disk the way the CLI and the
watcher read it (`daemon.project_files.ProjectFiles`). Each figure is the median CPU time of `--repeat`
runs after one warm-up (`compile_bench.median_ms`).
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import libcst

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.compile_bench import generated_module, median_ms  # noqa: E402 - after the sys.path line
from compiler.api import compile_source  # noqa: E402
from daemon.project_files import ProjectFiles  # noqa: E402

MODULES = 50

_MODULE = '''"""Project module {i}: its prompts and the helpers that build and send them."""

from openai import OpenAI

client = OpenAI()

POLICY_{i} = (
    "You are step {i} of the review pipeline. Quote the input exactly where you cite it, keep figures "
    "as written, and answer in short plain sentences. Say 'not stated' when the input does not say."
)
TEMPLATE_{i} = "Step {i}: {{task}}\\nInput:\\n{{body}}\\nAnswer:"


def build_{i}(task, body):
    return POLICY_{i} + "\\n" + TEMPLATE_{i}.format(task=task, body=body)


def ask_{i}(task, body):
    response = client.chat.completions.create(
        model="default", messages=[{{"role": "user", "content": build_{i}(task, body)}}], max_tokens=128
    )
    return response.choices[0].message.content
'''


def write_project(root: Path, modules: int) -> Path:
    (root / "pyproject.toml").write_text("")
    pkg = root / "review"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for i in range(modules - 1):
        (pkg / f"step_{i}.py").write_text(_MODULE.format(i=i))
    imports = "\n".join(f"from .step_{i} import ask_{i}" for i in range(modules - 1))
    body = "\n".join(f"    out = ask_{i}('check {i}', out)" for i in range(modules - 1))
    (pkg / "agent.py").write_text(
        f'"""Runs every step in turn."""\n\n{imports}\n\n\ndef review(document):\n    out = document\n{body}\n    return out\n'
    )
    return pkg / "agent.py"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "project_compile.md")
    args = ap.parse_args(argv)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        agent = write_project(root, MODULES)
        files = ProjectFiles(root)
        project = files.project_for(agent)
        sources = list(project.modules.values())
        assert len(sources) == MODULES + 1, sorted(project.modules)  # the modules and the package __init__
        lines = sum(s.count("\n") + 1 for s in sources)
        agent_source = agent.read_text()
        calls = len(compile_source(agent_source, str(agent), project=project).calls)

        libcst_parse = median_ms(lambda: [libcst.parse_module(s) for s in sources], args.repeat)
        ast_parse = median_ms(lambda: [ast.parse(s) for s in sources], args.repeat)
        compile_only = median_ms(
            lambda: compile_source(agent_source, str(agent), project=project), args.repeat
        )
        read_and_compile = median_ms(
            lambda: compile_source(agent_source, str(agent), project=ProjectFiles(root).project_for(agent)),
            args.repeat,
        )

        # A save of a 500-line module that the agent imports: re-read (only it changed) and recompile it
        # and the agent that imports it, as the watcher does.
        big = root / "review" / "step_0.py"
        big.write_text(_MODULE.format(i=0) + generated_module(460))
        big_lines = big.read_text().count("\n") + 1
        files.project_for(agent)  # the cache now holds every module

        def save() -> None:
            big.write_text(big.read_text() + "\n")
            for path in (big, agent):
                compile_source(path.read_text(), str(path), project=files.project_for(path))

        save_ms = median_ms(save, args.repeat)

    ratio = compile_only / libcst_parse
    report = f"""# Project compiles (issue 14, item 6)

Command: `.venv/bin/python benchmarks/project_bench.py --repeat {args.repeat}`
Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, libcst {version("libcst")},
{os.cpu_count()} CPUs, load average {load_start:.2f} at the start. Median CPU time of {args.repeat} runs.

A generated project: a package of {MODULES - 1} modules (each a policy, a template, a prompt builder and
an LLM wrapper) and `agent.py` importing all of them and calling each in turn; {len(sources)} files,
{lines} lines in all, read from disk by `daemon.project_files.ProjectFiles`. The compile finds
{calls} calls (one per module, each reported where `agent.py` calls its wrapper).

| measure | ms |
| --- | ---: |
| parse every module, `libcst.parse_module` | {libcst_parse:.1f} |
| parse every module, `ast.parse` | {ast_parse:.1f} |
| compile the agent with the project (modules already read) | {compile_only:.1f} |
| read the project from disk and compile | {read_and_compile:.1f} |
| save a {big_lines}-line module: re-read it, recompile it and the agent that imports it | {save_ms:.1f} |

Compile / libcst parse of all modules: **{ratio:.2f}x** (goal: under 2x).
Save of a {big_lines}-line module with its dependent: **{save_ms:.1f} ms** (goal: under 100 ms).
"""
    args.out.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
