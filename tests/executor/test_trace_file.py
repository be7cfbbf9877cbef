"""A traced run on disk: written whole and private, read back exactly, hostile files refused by line."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from executor import trace_file
from executor.trace_file import BadTrace, load_trace, write_trace
from executor.tracing import TraceRecord, Tracer


def record(seq: int, **kw: object) -> TraceRecord:
    base: dict[str, object] = dict(
        seq=seq,
        kind="call",
        site="agent.py:9",
        call_id="c1",
        api="chat.completions",
        prompt="<|user|>\nhi",
        started_at=1000.0 + seq,
        latency_s=0.25,
        ttft_s=0.05,
        prompt_tokens=12,
        cached_tokens=8,
        cached_source="usage",
        messages=[{"role": "user", "content": "hi"}],
        replica="http://h:8000/v1/",
    )
    base.update(kw)
    return TraceRecord(**base)  # type: ignore[arg-type]


def test_saved_in_the_order_sent_private_and_read_back_equal(tmp_path: Path):
    tracer = Tracer()
    second, first = record(1), record(0, kind="warmup", continue_final=True, error=None)
    tracer.add(second)  # concurrent calls finish out of order
    tracer.add(first)
    path = tmp_path / "run.jsonl"
    tracer.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_trace(path) == [first, second]


def test_seq_numbers_follow_the_sends_not_the_finishes():
    tracer = Tracer()
    assert [tracer.next_seq() for _ in range(3)] == [0, 1, 2]  # none finished yet: still distinct


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json\n", "run.jsonl:1: not a trace record"),
        ('{"seq": "x"}\n', "run.jsonl:1: not a trace record (seq:"),
        ("", "run.jsonl: no records"),
        (b"\xff\xfe".decode("latin-1"), "not a trace record"),
    ],
)
def test_a_bad_file_is_refused_with_its_line_and_reason(tmp_path: Path, text: str, message: str):
    path = tmp_path / "run.jsonl"
    write_trace(path, [record(0)])
    path.write_text(path.read_text() + text if text.startswith("{") else text)
    with pytest.raises(BadTrace) as caught:
        load_trace(path)
    assert message.replace("run.jsonl:1", f"run.jsonl:{2 if text.startswith('{') else 1}") in str(
        caught.value
    )


def test_size_and_count_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "run.jsonl"
    write_trace(path, [record(i) for i in range(3)])
    monkeypatch.setattr(trace_file, "MAX_TRACE_RECORDS", 2)
    with pytest.raises(BadTrace, match="more than 2 records"):
        load_trace(path)
    monkeypatch.setattr(trace_file, "MAX_TRACE_BYTES", 10)
    with pytest.raises(BadTrace, match="bytes; a trace is read up to 10"):
        load_trace(path)


def test_not_utf8_and_missing_files_name_the_file(tmp_path: Path):
    path = tmp_path / "run.jsonl"
    path.write_bytes(b'{"seq": 0\xff}\n')
    with pytest.raises(BadTrace, match="run.jsonl: not UTF-8 text"):
        load_trace(path)
    with pytest.raises(BadTrace, match="nope.jsonl: cannot read"):
        load_trace(tmp_path / "nope.jsonl")
