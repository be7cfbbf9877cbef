"""Regular expressions written by users, compiled and matched by RE2 (linear time, no backtracking).

A rule pattern from the config is matched against values a person proposes; with Python's `re`, a
pattern like `(a+)+` takes exponential time on a near-miss and hangs `rollouts propose`. RE2 runs
in time linear in the input whatever the pattern, and refuses what it cannot do that way
(backreferences, lookaround) at compile time, which is where the config loader asks.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

MAX_PATTERN_CHARS = 256

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print its own line on stderr for every bad pattern
_OPTIONS.max_mem = 1 << 20  # a pattern whose program needs more is refused, not compiled


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """The compiled pattern, or ValueError with the reason (too long, or not valid RE2 syntax)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"pattern is {len(pattern)} characters long (max {MAX_PATTERN_CHARS})")
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else "invalid"
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValueError(f"pattern is not a valid RE2 regular expression: {detail}") from None


def fullmatch(pattern: str, text: str) -> bool:
    return compile_pattern(pattern).fullmatch(text) is not None
