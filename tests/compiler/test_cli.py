"""`charter-tui compile`: formats, diffs, --fix with a backup, and --target token counting."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from charter_tui.cli import main
from compiler.api import compile_source
from compiler.tokens import estimate_tokens
from testkit.vllm import VllmKit
from daemon.tokenize import VllmTokenCounter
from tests.compiler.conftest import AGENTS


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def doc_agent(tmp_path: Path) -> Path:
    dst = tmp_path / "document_processor.py"
    shutil.copy(AGENTS / "document_processor.py", dst)
    return dst


def test_text_output_lists_calls_patterns_and_plan(capsys, doc_agent: Path):
    code, out, _ = _run(capsys, "compile", str(doc_agent))
    assert code == 0
    assert "3 LLM call(s), 2 edge(s) (token counts are estimates)" in out
    assert "ANTI-PATTERN MISPLACED_SHARED_CONTEXT [c1, c2, c3]" in out
    assert "--enable-prefix-caching = on" in out
    assert "@@" not in out  # no diff unless asked


def test_json_output_is_the_versioned_schema(capsys, doc_agent: Path):
    code, out, _ = _run(capsys, "compile", str(doc_agent), "--format", "json", "--engine", "trtllm")
    assert code == 0
    data = json.loads(out)
    assert data["schema_version"] == "1.3"
    assert {"calls", "edges", "patterns", "plan", "estimates"} <= set(data)
    assert data["plan"]["engine"] == "trtllm"
    assert data["estimates"]["tokens_estimated"] is True
    names = {(s["engine"], s["name"]) for s in data["plan"]["settings"]}
    assert ("trtllm", "tokens_per_block") in names and ("sglang", "--schedule-policy") in names
    build = next(s for s in data["plan"]["settings"] if s["name"] == "tokens_per_block")
    assert build["where"] == "engine_build" and build["applies"] == "engine_rebuild"


def test_dot_and_mermaid(capsys, doc_agent: Path):
    _, dot, _ = _run(capsys, "compile", str(doc_agent), "--format", "dot")
    assert dot.startswith("digraph") and 'c1 -> c2 [label="entities"];' in dot
    _, mermaid, _ = _run(capsys, "compile", str(doc_agent), "--format", "mermaid")
    assert mermaid.startswith("flowchart LR") and 'c2 -->|"validated"| c3' in mermaid


def test_trtllm_text_shows_retention_configs(capsys, doc_agent: Path):
    _, out, _ = _run(capsys, "compile", str(doc_agent), "--engine", "trtllm")
    assert "config.pbtxt enable_kv_cache_reuse = true  [model_reload]" in out
    assert "retention tokens [0, " in out and "priority 90" in out


def test_diff_is_shown_but_nothing_is_written(capsys, doc_agent: Path):
    before = doc_agent.read_text()
    code, out, _ = _run(capsys, "compile", str(doc_agent), "--diff")
    assert code == 0
    assert (
        '+            prompt=f"{SYSTEM_PROMPT}\\nDocument:\\n{document}\\n\\nValidate these entities:' in out
    )
    assert "warning: Reordering a prompt changes what the model sees" in out
    assert doc_agent.read_text() == before
    assert not list(doc_agent.parent.glob("*.bak*"))


def test_fix_writes_backup_then_restructured_file(capsys, doc_agent: Path):
    original = doc_agent.read_text()
    code, _, err = _run(capsys, "compile", str(doc_agent), "--fix")
    assert code == 0
    backup = doc_agent.with_name("document_processor.py.bak")
    assert backup.read_text() == original
    assert "restructured (MISPLACED_SHARED_CONTEXT[c1,c2,c3])" in err and str(backup) in err
    fixed = compile_source(doc_agent.read_text(), "fixed.py")
    assert "MISPLACED_SHARED_CONTEXT" not in fixed.pattern_kinds()
    assert not list(doc_agent.parent.glob(".document_processor.py.*.tmp"))
    # A second --fix finds nothing to do and keeps the first backup.
    code, _, err = _run(capsys, "compile", str(doc_agent), "--fix")
    assert code == 0 and "nothing to restructure automatically" in err
    assert backup.read_text() == original and not doc_agent.with_name("document_processor.py.bak.1").exists()


def test_dynamic_prefix_fix_moves_the_timestamp_behind_the_policy(capsys, tmp_path: Path):
    agent = tmp_path / "bot.py"
    shutil.copy(AGENTS / "examples" / "dynamic_prefix_agent.py", agent)
    code, _, _ = _run(capsys, "compile", str(agent), "--fix")
    assert code == 0
    new = agent.read_text()
    assert (
        'system = f"{POLICY}\\n\\nCurrent time: {datetime.now().isoformat()}\\nRequest id: {uuid.uuid4()}\\n"'
        in new
    )
    assert "DYNAMIC_PREFIX" not in compile_source(new, "bot.py").pattern_kinds()


def kit_token_count(kit_dir: Path, text: str) -> int:
    """The model's own tokenizer, loaded by the kit's `tokenizers` package: a count independent of vLLM."""
    kit = VllmKit.locate(kit_dir)
    code = (
        "import sys; from tokenizers import Tokenizer; "
        "t = Tokenizer.from_file(sys.argv[1]); "
        "print(len(t.encode(sys.stdin.read(), add_special_tokens=False).ids))"
    )
    out = subprocess.run(
        [str(kit.python), "-c", code, str(kit.model_dir / "tokenizer.json")],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(out.stdout.strip())


@pytest.mark.vllm
def test_target_counts_literal_text_with_the_servers_tokenizer(
    capsys, doc_agent: Path, vllm_server, vllm_kit_dir: Path
):
    """Against the test kit's real vLLM: its `POST /tokenize` is the only way these counts come out right."""
    code, out, err = _run(
        capsys, "compile", str(doc_agent), "--format", "json", "--target", vllm_server.url + "/v1"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["estimates"]["tokens_estimated"] is False
    assert f"vLLM /tokenize ({vllm_server.model} at {vllm_server.url})" == data["estimates"]["tokenizer"]
    counted = [
        s
        for call in data["calls"]
        for s in call["segments"]
        if s["kind"] == "static" and not s["synthetic"] and s["text"].strip()
    ]
    assert counted and all(s["tokens_basis"] == "counted" for s in counted)
    longest = max(counted, key=lambda s: len(s["text"]))
    assert longest["tokens"] == kit_token_count(vllm_kit_dir, longest["text"])
    # Not the chars/4 estimate by accident: the tiny model's tokenizer splits this text differently.
    assert longest["tokens"] != estimate_tokens(longest["text"])
    dynamic = next(s for s in data["calls"][0]["segments"] if s["kind"] == "dynamic")
    assert dynamic["tokens_basis"] == "assumed"


@pytest.mark.vllm
def test_token_counter_against_the_real_server(vllm_server, vllm_kit_dir: Path):
    text = "Summarise the following document in three bullet points, citing section numbers."
    counter = VllmTokenCounter(vllm_server.url)
    try:
        assert counter.model == vllm_server.model
        assert counter(text) == kit_token_count(vllm_kit_dir, text)
    finally:
        counter.close()


def test_unreachable_target_is_a_user_error(capsys, doc_agent: Path):
    code, _, err = _run(capsys, "compile", str(doc_agent), "--target", "http://127.0.0.1:9")
    assert code == 2 and "cannot list models at http://127.0.0.1:9/v1/models" in err


def test_several_files_as_json_give_a_list(capsys, doc_agent: Path):
    other = doc_agent.with_name("delta_processor.py")
    shutil.copy(AGENTS / "delta_processor.py", other)
    code, out, _ = _run(capsys, "compile", str(doc_agent.parent), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [Path(d["path"]).name for d in data] == ["delta_processor.py", "document_processor.py"]


def test_schema_flag_prints_the_json_schema(capsys):
    code, out, _ = _run(capsys, "compile", "--schema")
    schema = json.loads(out)
    assert code == 0 and schema["$id"].endswith("/1.3")
    assert {"calls", "edges", "patterns", "plan", "estimates"} <= set(schema["properties"])
    code, _, err = _run(capsys, "compile")
    assert code == 2 and "at least one PATH" in err


def test_fail_on_for_ci(capsys, doc_agent: Path):
    code, _, err = _run(capsys, "compile", str(doc_agent), "--fail-on", "anti")
    assert code == 1 and f"--fail-on: {doc_agent}:63: MISPLACED_SHARED_CONTEXT" in err
    code, _, _ = _run(capsys, "compile", str(doc_agent), "--fail-on", "dynamic_prefix")
    assert code == 0
    code, _, err = _run(capsys, "compile", str(doc_agent), "--fail-on", "nonsense")
    assert code == 2 and "unknown pattern 'nonsense'" in err


def test_compile_follows_the_projects_imports_unless_single_file(capsys, tmp_path: Path):
    root = tmp_path / "desk"
    shutil.copytree(AGENTS / "projects" / "support_desk", root / "support_desk")
    (root / "setup.py").write_text("")
    agent = str(root / "support_desk" / "agent.py")
    code, out, _ = _run(capsys, "compile", "--format", "json", agent)
    data = json.loads(out)
    assert code == 0 and data["modules"] == ["support_desk.prompts"]
    assert "You are the support desk of Acme Cloud." in data["calls"][0]["segments"][1]["text"]
    code, out, _ = _run(capsys, "compile", "--format", "json", "--single-file", agent)
    data = json.loads(out)
    assert code == 0 and data["modules"] == []
    assert not any("Acme Cloud" in s["text"] for s in data["calls"][0]["segments"])


def test_inputs_estimate_the_traffic_beside_the_one_request_figure(capsys, tmp_path: Path) -> None:
    from tests.executor.test_estimate import ONE_CALL

    agent = tmp_path / "agent.py"
    agent.write_text(ONE_CALL)
    inputs = tmp_path / "requests.jsonl"
    inputs.write_text('{"question": "q a b"}\n{"question": "q c d"}\n')
    code, out, err = _run(capsys, "compile", str(agent), "--inputs", str(inputs), "--block-size", "4")
    assert code == 0, err
    # Worked by hand in tests/executor/test_estimate.py: 12 of 30 tokens in whole blocks, 13 at token level.
    assert "traffic: 2 request(s) from" in out
    assert (
        "estimate 40.0% of 30 prompt tokens (first request alone 0.0%); ceiling 43.3% at token level" in out
    )
    code, out, _ = _run(
        capsys, "compile", str(agent), "--inputs", str(inputs), "--block-size", "4", "--requests", "3"
    )
    assert "traffic: 3 request(s)" in out and "of 45 prompt tokens" in out  # the records taken in turn


def test_inputs_that_miss_a_variable_or_do_not_parse_are_one_line_each(capsys, tmp_path: Path) -> None:
    from tests.executor.test_estimate import ONE_CALL

    agent = tmp_path / "agent.py"
    agent.write_text(ONE_CALL)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"query": "the variable is called question"}\n')
    code, out, err = _run(capsys, "compile", str(agent), "--inputs", str(wrong))
    assert code == 2 and "question" in err and "Traceback" not in err
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    code, out, err = _run(capsys, "compile", str(agent), "--inputs", str(broken))
    assert code == 2 and f"{broken}:1: not JSON" in err and out == ""  # refused before compiling
