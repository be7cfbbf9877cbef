"""Logging to a rotating file under the XDG state dir: never to the terminal the TUI owns.

Every record that reaches the file passes `RedactingFilter` first: URL credentials (the database URL of
the start line), `X_TOKEN=...`, credential argv flags and every secret value of the loaded config
(`daemon.redaction.remember`) are masked in the message and in any traceback, whichever module logged it.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from daemon.redaction import redact_text

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class RedactingFilter(logging.Filter):
    """Masks secrets in a record before any handler formats it. On the handler, not a logger: a logger's
    filters see only records logged on that logger itself, a handler's see every record it writes."""

    _tracebacks = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad %-format must still be logged (logging itself would)
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact_text(message), None
        if record.exc_info and not record.exc_text:
            # Formatted here so the traceback's text (exception messages quote URLs) is redacted too.
            record.exc_text = self._tracebacks.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def setup_file_logging(log_file: Path, level: int = logging.INFO) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=10 * 1024 * 1024, backupCount=3)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):  # the TUI must own the terminal: drop stderr handlers
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request at INFO; at 100 targets x 1 Hz that would drown the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
