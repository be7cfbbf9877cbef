"""A traced run on disk: one JSON line per request, written by `Tracer.save`, read by `doctor --trace`.

The file is the user's data (prompts) and may come from anywhere: it is read with bounds (size, lines,
fields validated as the record's types), and a bad line is refused with its line number.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from daemon.atomic_file import atomic_write
from daemon.errors import UserError
from executor.tracing import TraceRecord

MAX_TRACE_BYTES = 64 * 1024 * 1024
MAX_TRACE_RECORDS = 50_000

_RECORD = TypeAdapter(TraceRecord)


class BadTrace(UserError):
    """A trace file that cannot be read as one: named, with the line and the reason."""


def write_trace(path: str | os.PathLike[str], records: Sequence[TraceRecord]) -> None:
    text = "".join(json.dumps(asdict(r), ensure_ascii=True) + "\n" for r in records)
    atomic_write(path, text, mode=0o600)


def load_trace(path: Path) -> list[TraceRecord]:
    try:
        size = path.stat().st_size
        if size > MAX_TRACE_BYTES:
            raise BadTrace(f"{path}: {size:,} bytes; a trace is read up to {MAX_TRACE_BYTES:,}")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadTrace(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise BadTrace(f"{path}: cannot read: {exc.strerror or exc}") from None
    records: list[TraceRecord] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if len(records) >= MAX_TRACE_RECORDS:
            raise BadTrace(f"{path}: more than {MAX_TRACE_RECORDS:,} records")
        try:
            records.append(_RECORD.validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"])) or "the line"
            raise BadTrace(f"{path}:{n}: not a trace record ({where}: {first['msg']})") from None
    if not records:
        raise BadTrace(f"{path}: no records (write one with `client.tracer.save(path)`)")
    return records
