"""Strings from inference servers, made safe to show: one function, applied where the daemon takes them in.

Model names, versions, label values and error text built from responses all end up on a user's
terminal (the TUI, `probe`, logs tailed in a shell). A server — broken or hostile — can put
terminal escape sequences in them: `ESC[2J` clears the screen, OSC 52 writes the user's clipboard,
OSC 8 plants links, BEL rings, CR rewrites the line already printed, bidi overrides reorder what is
read. `clean()` removes every escape sequence whole (CSI, OSC, DCS/APC/PM/SOS strings, two-byte
ESC forms) and replaces each one, and every other control or format character, with one visible
placeholder `PLACEHOLDER`, so the reader sees that something was there without the terminal
acting on it. Lengths are bounded too: a 1 MB "model name" is a fault, not a name.

Placeholder rather than silent removal: `llama\x1b[2J` shown as `llama` would hide that the
server sent something odd; shown as `llama�` it does not.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

PLACEHOLDER = (
    "\ufffd"  # U+FFFD REPLACEMENT CHARACTER: printable everywhere, and reads as "something was here"
)
MAX_CHARS = 256  # model names, versions, reasons: anything longer is cut with an ellipsis
_MAX_ITEMS = 256  # collections (model lists, config dicts) cleaned by `clean_json`
_MAX_DEPTH = 8

# Whole escape sequences first, so `ESC[2J` becomes one placeholder rather than `�[2J`:
# - CSI: ESC [ or the 8-bit C1 CSI (U+009B), parameters, intermediates, one final byte;
# - OSC / DCS / SOS / PM / APC strings (ESC ] P X ^ _ or their C1 forms) up to BEL or ST
#   (ESC \ or U+009C) — or to the end of the text when unterminated, which a terminal would also
#   swallow;
# - any other ESC followed by one character (ESC c resets the terminal, ESC 7/8, ESC ( B, ...).
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)


def _unsafe(ch: str) -> bool:
    # Cc: C0/C1 controls (BEL, BS, CR, LF, TAB, DEL, ...); Cf: format characters (bidi overrides,
    # zero-width joiners) that change how the rest reads; Cs: lone surrogates that cannot be
    # encoded; Zl/Zp: line/paragraph separators that break a one-line cell.
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def clean(value: object, limit: int = MAX_CHARS) -> str:
    """`value` as a one-line string with no escape sequences or control characters, at most `limit` chars.

    The common case — plain printable text — costs one `isprintable()` and a length check.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit * 4:
        text = text[: limit * 4]  # bound the work before scanning; the cut below is the one shown
    if not text.isprintable():
        text = _SEQUENCE.sub(PLACEHOLDER, text)
        text = "".join(PLACEHOLDER if _unsafe(ch) else ch for ch in text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def is_clean(text: str) -> bool:
    """True when `text` holds nothing a terminal would act on (for tests and assertions)."""
    return not any(_unsafe(ch) for ch in text)


def clean_json(value: Any, *, limit: int = MAX_CHARS, _depth: int = 0) -> Any:
    """A JSON-like value (a model's config, a list of names) with every string — keys included —
    passed through `clean`, and its size bounded: at most `_MAX_ITEMS` entries per collection and
    `_MAX_DEPTH` levels (deeper values become a placeholder string)."""
    if isinstance(value, str):
        return clean(value, limit)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if _depth >= _MAX_DEPTH:
        return PLACEHOLDER
    if isinstance(value, dict):
        items = list(value.items())[:_MAX_ITEMS]
        return {clean(k, limit): clean_json(v, limit=limit, _depth=_depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [clean_json(v, limit=limit, _depth=_depth + 1) for v in list(value)[:_MAX_ITEMS]]
    return clean(value, limit)
