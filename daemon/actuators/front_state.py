"""The two small files between a blue-green front (daemon/front_proxy.py) and its actuator
(daemon/actuators/blue_green.py): the state the actuator writes (`{"backend": PORT}`: where new requests
go) and the status the front writes back (its pid and start time, the backend it uses now, the requests
in flight per backend). Defined once here; read with a size bound, written whole or not at all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MODULE = "daemon.front_proxy"  # what a front's command line runs: python -I -m MODULE
STATE_MAX_BYTES = 64 * 1024


def read_json(path: Path) -> dict[str, object] | None:
    """The file's JSON object; None when it is missing, too big or not one."""
    try:
        with open(path, "rb") as f:
            raw = json.loads(f.read(STATE_MAX_BYTES + 1)[:STATE_MAX_BYTES])
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def read_backend(path: Path) -> int | None:
    """The backend port in a state or status file; None when it is missing or is not one (nothing changes)."""
    port = (read_json(path) or {}).get("backend")
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        return port
    return None


def backend_of(argv: list[str]) -> int | None:
    """If `argv` is a front's command line, the backend port its status file says it uses now."""
    if MODULE not in argv[:4] or "--status" not in argv:
        return None
    status = argv.index("--status") + 1
    return read_backend(Path(argv[status])) if status < len(argv) else None


def write_json(path: Path, record: dict[str, object]) -> None:
    """Written whole or not at all (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(record))
    os.replace(tmp, path)
