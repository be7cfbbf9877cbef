"""The spec's two agents really run (openai client, real HTTP) and send the prompts the compiler says.

A small OpenAI-compatible server records every request; each agent's `main()` runs over its bundled
inputs; then every recorded prompt is checked against the compiled call's segments: the literal
segments must appear in order, and the run-time values where the compiler placed them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from compiler.model import CallSite
from tests.compiler.conftest import AGENTS


class _OpenAICompatible(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict]] = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _OpenAICompatible.requests.append({"path": self.path, **body})
        n = len(_OpenAICompatible.requests)
        common = {
            "id": f"r{n}",
            "created": int(time.time()),
            "model": body.get("model", "m"),
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        if self.path.endswith("/chat/completions"):
            reply = {
                **common,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": f"answer {n}"},
                    }
                ],
            }
        else:
            reply = {
                **common,
                "object": "text_completion",
                "choices": [{"index": 0, "finish_reason": "stop", "text": f"profile {n}", "logprobs": None}],
            }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server(monkeypatch) -> Iterator[list[dict]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAICompatible)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _OpenAICompatible.requests = []
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{httpd.server_address[1]}/v1")
    monkeypatch.setenv("CHARTER_MODEL", "tiny")
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    try:
        yield _OpenAICompatible.requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def _run_agent(name: str, capsys, monkeypatch) -> list[str]:
    spec = importlib.util.spec_from_file_location(f"agent_{name}", AGENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    assert module.main([str(AGENTS / "inputs" / f"{name}.jsonl")]) == 0
    return capsys.readouterr().out.splitlines()


def _prompt(request: dict) -> str:
    if "messages" in request:
        return "".join(m["content"] for m in request["messages"])
    return request["prompt"]


def _matches(call: CallSite, prompt: str, values: dict[str, str]) -> bool:
    """Walk the segments over the real prompt: literals in order, known values exactly in place."""
    pos = 0
    pending_dynamic = False
    for seg in call.segments:
        if seg.synthetic:
            continue
        if seg.kind == "dynamic":
            if seg.name in values:
                value = values[seg.name]
                found = prompt.find(value, pos)
                if found < 0 or (not pending_dynamic and found != pos):
                    return False
                pos = found + len(value)
                pending_dynamic = False
            else:
                pending_dynamic = (
                    True  # a run-time value we do not know: it ends where the next literal starts
                )
            continue
        found = prompt.find(seg.text, pos)
        if found < 0 or (not pending_dynamic and found != pos):
            return False
        pos = found + len(seg.text)
        pending_dynamic = False
    return pending_dynamic or pos == len(prompt)


def test_document_processor_runs_and_sends_the_compiled_prompts(server, capsys, compiled, monkeypatch):
    out = _run_agent("document_processor", capsys, monkeypatch)
    records = [
        json.loads(line) for line in (AGENTS / "inputs" / "document_processor.jsonl").read_text().splitlines()
    ]
    assert len(out) == len(records) and len(server) == 3 * len(records)
    calls = compiled["document_processor"].calls
    for i, record in enumerate(records):
        for stage, call in enumerate(calls):
            request = server[3 * i + stage]
            assert request["path"] == "/v1/chat/completions" and request["model"] == "tiny"
            assert _matches(call, _prompt(request), {"document": record["document"]}), (
                call.id,
                _prompt(request),
            )
        # Data flow as compiled: c2 sees c1's answer, c3 sees c2's.
        assert f"answer {3 * i + 1}" in _prompt(server[3 * i + 1])
        assert f"answer {3 * i + 2}" in _prompt(server[3 * i + 2])


def test_delta_processor_runs_and_only_the_fields_change(server, capsys, compiled, monkeypatch):
    out = _run_agent("delta_processor", capsys, monkeypatch)
    record = json.loads((AGENTS / "inputs" / "delta_processor.jsonl").read_text().splitlines()[0])
    assert len(out) == len(record["variables"]) == len(server)
    [call] = compiled["delta_processor"].calls
    prompts = [_prompt(r) for r in server]
    for prompt, fields in zip(prompts, record["variables"], strict=True):
        assert _matches(call, prompt, {}), prompt
        assert prompt.startswith(
            call.segments[0].text if not call.segments[0].synthetic else call.segments[1].text
        )
        for value in fields.values():
            assert value in prompt
    # What the compiler called the delta really is small: all prompts share all but their tail.
    first, second = prompts[0], prompts[1]
    common = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    assert common / len(first) > 0.8


def test_the_prompt_check_itself_rejects_a_wrong_layout(compiled):
    c1, c2, c3 = compiled["document_processor"].calls
    system = c1.segments[1].text.split("\n")[0]
    doc = "DOC"
    assert _matches(c2, f"{system}\nValidate these entities:\nE\nAgainst document:\n{doc}", {"document": doc})
    # The fixed layout (document first) is not what c2's compiled segments describe.
    assert not _matches(
        c2, f"{system}\n{doc}\n\nValidate these entities:\nE\nAgainst document:\n", {"document": doc}
    )
    assert not _matches(
        c3, f"{system}\nValidate these entities:\nE\nAgainst document:\n{doc}", {"document": doc}
    )
