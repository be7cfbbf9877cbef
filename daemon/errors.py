"""Errors a user can act on. The CLI prints them as one line and exits 2; nothing else is caught."""

from __future__ import annotations

import re

# C0/C1 controls, DEL, and the Unicode line/paragraph separators: anything that could break the
# one-line promise of an error message or repaint a terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def shown(value: object, limit: int = 120) -> str:
    """`value` as text fit for one line of an error: controls escaped, long values cut."""
    text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


class UserError(Exception):
    """Something the user can fix: a bad path, a config mistake, an unreachable target."""


class ConfigError(UserError):
    """A config file that cannot be used: names the file, the key and the reason."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file, self.key, self.reason = file, key, reason
        where = f"{shown(file, 160)}: {shown(key, 80)}" if key else shown(file, 160)
        super().__init__(f"config error in {where}: {shown(reason, 400)}")
