"""Errors a user can act on. The CLI prints them as one line and exits 2; nothing else is caught."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: a bad path, a config mistake, an unreachable target."""


class ConfigError(UserError):
    """A config file that cannot be used: names the file, the key and the reason."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file, self.key, self.reason = file, key, reason
        where = f"{file}: {key}" if key else file
        super().__init__(f"config error in {where}: {reason}")
