"""Reading a relaunched server's log: where the last relaunch starts, and the error that stopped it.

A failed vLLM start ends in a wrapper ("RuntimeError: Engine core initialization failed. See root cause
above."); the last lines a user was shown said only that. The cause is the first exception of the
relaunch's section — Python prints a chained traceback cause first — so that line is quoted.
"""

from __future__ import annotations

import re

RELAUNCH_MARKER = "--- charter-tui relaunch at "
MAX_CAUSE_CHARS = 400
MAX_CONTINUATION_LINES = 3

# `ValueError: ...`, `torch.OutOfMemoryError: ...`, `pydantic_core._pydantic_core.ValidationError: 1 ...`,
# after an optional log prefix such as `(EngineCore_DP0 pid=12) ERROR 12-05 10:00:01 [core.py:1] `.
_EXCEPTION = re.compile(r"(?:^|\s)((?:[A-Za-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception|Exit)): (\S.*)$")
_WRAPPERS = ("see root cause above", "engine core initialization failed")


def root_cause(log_text: str) -> str | None:
    """The first exception line of the log that is not a wrapper pointing elsewhere, with the indented
    lines that continue it (pydantic puts the reason there), cut to a bound."""
    lines = log_text.splitlines()
    for i, line in enumerate(lines):
        match = _EXCEPTION.search(line.strip())
        if match is None or any(w in match.group(2).lower() for w in _WRAPPERS):
            continue
        parts = [f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2).strip()}"]
        for more in lines[i + 1 : i + 1 + MAX_CONTINUATION_LINES]:
            if not more[:1].isspace() or more.strip().startswith(("File ", "For further information")):
                break
            parts.append(more.strip())
        cause = " ".join(parts)
        return cause if len(cause) <= MAX_CAUSE_CHARS else cause[: MAX_CAUSE_CHARS - 1] + "…"
    return None


def last_lines(log_text: str, count: int) -> str:
    return "\n".join(log_text.splitlines()[-count:]) if log_text.strip() else "(no log)"
