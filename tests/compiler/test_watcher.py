"""The watcher on real files: initial compile, recompile on save, unchanged content skipped,
syntax errors keep the last good result, pattern changes reported. Also `charter-tui watch`."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import pytest

from charter_tui.cli import main
from daemon.watcher import AgentWatcher, CompileEvent
from tests.compiler.conftest import AGENTS

TIMEOUT = 15.0


async def _next(it, timeout: float = TIMEOUT) -> CompileEvent:
    return await asyncio.wait_for(it.__anext__(), timeout)


@pytest.fixture
def agent(tmp_path: Path) -> Path:
    dst = tmp_path / "agents" / "document_processor.py"
    dst.parent.mkdir()
    shutil.copy(AGENTS / "document_processor.py", dst)
    return dst


async def test_recompiles_on_save_and_reports_pattern_changes(agent: Path):
    stop = asyncio.Event()
    watcher = AgentWatcher([agent], debounce_ms=50)
    events = watcher.events(stop)
    first = await _next(events)
    assert first.initial and first.error is None and len(first.result.calls) == 3
    assert "MISPLACED_SHARED_CONTEXT" in first.result.pattern_kinds()

    # Move the document up in all three prompts: the anti-pattern disappears.
    src = agent.read_text()
    fixed = (
        src.replace('Extract entities from:\\n{document}"', '{document}\\nExtract entities from above."')
        .replace(
            'Validate these entities:\\n{entities}\\nAgainst document:\\n{document}"',
            '{document}\\nValidate these entities:\\n{entities}"',
        )
        .replace("Classify document:\\n{document}\\nWith", "{document}\\nClassify the document with")
        .replace('prompt=f"{SYSTEM_PROMPT}\\nExtract', 'prompt=f"{SYSTEM_PROMPT}\\nExtract')
    )
    assert fixed != src
    agent.write_text(fixed)
    event = await _next(events)
    assert event.error is None and not event.initial
    assert any(r.startswith("MISPLACED_SHARED_CONTEXT") for r in event.changed_patterns.removed)
    assert "-MISPLACED_SHARED_CONTEXT[c1,c2,c3]" in event.summary()
    stop.set()


async def test_syntax_error_keeps_last_good_result_and_touch_is_ignored(agent: Path):
    stop = asyncio.Event()
    calls: list[Path] = []
    watcher = AgentWatcher([agent.parent], debounce_ms=50)
    original = watcher._compile

    def counting(path: Path, data: bytes):
        calls.append(path)
        return original(path, data)

    watcher._compile = counting
    events = watcher.events(stop)
    good = await _next(events)
    assert good.error is None and len(calls) == 1

    text = agent.read_text()
    agent.write_text(text.replace("def process(self, document: str)", "def process(self, document: str"))
    broken = await _next(events)
    assert broken.error is not None and broken.stale
    assert broken.error.startswith(f"{agent}:")  # file:line:col
    line = int(broken.error.split(":")[1])
    assert 60 <= line <= 75
    assert broken.result is good.result  # the last good result is kept
    assert "keeping last good result (3 calls)" in broken.summary()

    # Saving identical content again (an editor "touch") must not recompile.
    n = len(calls)
    agent.write_text(agent.read_text())
    agent.write_text(text)  # then a real change back to the good content
    restored = await _next(events)
    assert restored.error is None and len(restored.result.calls) == 3
    assert len(calls) == n + 1
    stop.set()


async def test_new_file_in_a_watched_directory_is_compiled(agent: Path):
    stop = asyncio.Event()
    watcher = AgentWatcher([agent.parent], debounce_ms=50)
    events = watcher.events(stop)
    await _next(events)
    other = agent.parent / "second.py"
    other.write_text(
        "import litellm\n\ndef f(q):\n    return litellm.completion(model='m', messages=[{'role': 'user', 'content': q}])\n"
    )
    event = await _next(events)
    assert event.path == other.resolve() and len(event.result.calls) == 1
    stop.set()


def test_watch_command_prints_one_line_per_change(agent: Path, capsys):
    done = threading.Event()
    original = agent.read_text()

    def keep_editing() -> None:
        # Edit until the command exits: under load the first compile may still be running at any
        # single fixed moment, and an edit it already saw is (rightly) not a change.
        n = 0
        while not done.wait(0.4):
            n += 1
            agent.write_text(original.replace("temperature=0.0", f"temperature=0.{n % 10}"))

    threading.Thread(target=keep_editing, daemon=True).start()
    try:
        code = main(["watch", str(agent), "--debounce-ms", "50", "--exit-after", "2"])
    finally:
        done.set()
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(out) == 2
    assert "document_processor.py: 3 calls, 2 edges" in out[0]
    assert out[1].endswith("patterns unchanged")


async def test_nothing_to_watch_idles_until_stopped():
    stop = asyncio.Event()
    events = AgentWatcher([]).events(stop)
    pending = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(0.2)
    assert not pending.done()
    stop.set()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 5)


async def test_saving_an_imported_module_recompiles_the_agent_that_imports_it(tmp_path: Path):
    """prompts.py holds the system prompt; agent.py imports it. A save of prompts.py alone must
    bring a new result for agent.py (its own content did not change)."""
    project = tmp_path / "desk"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    (project / "prompts.py").write_text('SYSTEM = "Answer from the manual only."\n')
    (project / "agent.py").write_text(
        "from openai import OpenAI\nfrom prompts import SYSTEM\n\nclient = OpenAI()\n\n\n"
        "def ask(q):\n"
        '    return client.chat.completions.create(model="m", messages=[{"role": "system", "content": SYSTEM}, '
        '{"role": "user", "content": q}])\n'
    )
    stop = asyncio.Event()
    watcher = AgentWatcher([project], debounce_ms=50)
    events = watcher.events(stop)
    first = {e.path.name: e for e in [await _next(events), await _next(events)]}
    agent_result = first["agent.py"].result
    assert agent_result is not None and agent_result.modules == ["prompts"]
    assert "Answer from the manual only." in agent_result.calls[0].segments[1].text

    (project / "prompts.py").write_text('SYSTEM = "Answer from the manual and the ticket."\n')
    seen = [await _next(events), await _next(events)]
    assert [e.path.name for e in seen] == ["prompts.py", "agent.py"]
    again = seen[1]
    assert again.error is None and again.result is not None
    assert "Answer from the manual and the ticket." in again.result.calls[0].segments[1].text
    stop.set()
