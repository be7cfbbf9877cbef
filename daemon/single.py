"""One acting daemon per database on a machine: a second one would carry out the same rollouts twice.

`charter-tui daemon` beside the TUI's embedded daemon used to start with only a warning about the metrics
port; both then stepped every approved rollout. An acting (not read-only) daemon now holds an exclusive
`flock` on a lock file named after its database, under the state dir; a second one on the same database
is refused with the first one's pid. The kernel drops the lock when the process dies (SIGKILL included),
so a crash never leaves a stale lock. Read-only daemons take no lock: they only watch.

Across machines (a fleet sharing PostgreSQL) a lock file cannot help: there each rollout is leased in the
database itself (daemon/rollouts/lease.py), so exactly one daemon drives it wherever the daemons run.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO

from daemon.errors import UserError
from daemon.redaction import redact_url


class AnotherDaemon(UserError):
    """An acting daemon already runs on this database; the message names its pid and the database."""


class DaemonLock:
    def __init__(self, state_dir: Path, database_url: str) -> None:
        digest = hashlib.sha256(database_url.encode()).hexdigest()[:12]
        self.path = state_dir / f"daemon-{digest}.lock"
        self.database_url = database_url
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()[:20] or "unknown"
            handle.close()
            raise AnotherDaemon(
                f"another charter-tui daemon (pid {holder}) already acts on {redact_url(self.database_url)}; "
                "stop it, or start this one with --readonly (or `tui --connect` to watch it)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
