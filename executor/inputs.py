"""The inputs file: JSON Lines, one object of the agent's input variables per run.

Blank lines and lines starting with `#` are skipped (so a file can say what it is for); every other
line must be a JSON object. Line numbers are the file's own (1-based), because every later error
about a run names the line its values came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.errors import UserError

MAX_INPUT_BYTES = 64 * 1024 * 1024  # a benchmark input, not a data lake: refuse before reading it all


@dataclass(frozen=True)
class InputRecord:
    line: int
    values: dict[str, Any]


def load_inputs(path: str | Path) -> list[InputRecord]:
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise UserError(f"inputs file {p}: {exc.strerror or exc}") from None
    if size > MAX_INPUT_BYTES:
        raise UserError(f"inputs file {p} is {size} bytes; the limit is {MAX_INPUT_BYTES}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"inputs file {p} is not UTF-8 (byte {exc.start})") from None
    return parse_inputs(text, str(p))


def parse_inputs(text: str, name: str = "<inputs>") -> list[InputRecord]:
    records: list[InputRecord] = []
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{name}:{no}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(value, dict):
            raise UserError(
                f"{name}:{no}: expected a JSON object of input variables, got {type(value).__name__}"
            )
        records.append(InputRecord(line=no, values=value))
    if not records:
        raise UserError(f"{name}: no input records (one JSON object per line)")
    return records
