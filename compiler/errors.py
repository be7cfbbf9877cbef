"""The one error the compiler raises: input it cannot read, with the place to look at."""

from __future__ import annotations


class CompileError(Exception):
    """Unparseable or undecodable agent source; `str()` is `file:line:col: message`."""

    def __init__(self, path: str, line: int, col: int, message: str) -> None:
        self.path, self.line, self.col, self.message = path, line, col, message
        super().__init__(f"{path}:{line}:{col}: {message}")
