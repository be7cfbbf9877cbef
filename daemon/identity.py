"""Who this daemon is in a fleet: `[daemon] id`, or the host name made into a valid id.

The id is one MQTT topic level (`charter/v1/<id>/...`) and the name on the rollout leases it holds, so it
must not contain '/', '+', '#' or spaces; a host name that does (rare, but `hostname` is user-set) is mended,
not refused, since a daemon must start without configuration.
"""

from __future__ import annotations

import re
import socket

from daemon.config import DaemonConfig

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.-]+")
FALLBACK_ID = "charter"


def daemon_id(config: DaemonConfig) -> str:
    if config.id:
        return config.id
    return host_id(socket.gethostname())


def host_id(hostname: str) -> str:
    """`gpu box 1.local` -> `gpu-box-1.local`; at most 64 characters, never empty."""
    mended = _NOT_ALLOWED.sub("-", hostname).strip("-.")[:64]
    return mended or FALLBACK_ID
