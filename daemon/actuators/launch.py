"""What a configured `[targets.launch]` is, as the operating system sees it: the program its argv runs,
the account the server runs as, and the environment it gets. The relaunch actuator uses these both to
start a server and to decide whether a process it finds on the target's port is that server.

The account rule: a server never runs as root by accident. A root daemon starts it as
`[targets.launch] user` (its primary group, no supplementary groups: root's must not leak); with no
user configured, or a user that is root, it refuses unless `allow_root = true` says so on purpose.
A daemon that is not root runs the server as itself, and refuses a `user` other than itself (only root
can switch accounts).

The environment is not the daemon's: a few neutral variables (PATH, locale, TZ, TMPDIR), the account's
HOME/USER/LOGNAME, then `[targets.launch] env`. So the daemon's own secrets (a database URL with a
password, a broker password) never reach a server that may run as another user, and the configured
env (HF_TOKEN, ...) is passed to the child only: it is not written to the state dir, the log, or the
rollout's recorded config.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from daemon.actuators.params import InvalidChange
from daemon.config import LaunchConfig

# Neutral variables a server may need to start at all; anything else goes in [targets.launch] env.
_PASSED_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR")
_SHEBANG_BYTES = 256


@dataclass(frozen=True)
class RunAs:
    """The account a launched server runs as."""

    uid: int
    gid: int
    name: str
    home: str
    switch: bool  # the daemon's own account differs: start it with user=/group=/extra_groups=[]


def resolve_run_as(launch: LaunchConfig, target: str) -> RunAs:
    """The account for `launch`, or InvalidChange saying why the server may not be started."""
    me = os.geteuid()
    if launch.user is not None:
        try:
            entry = pwd.getpwnam(launch.user)
        except KeyError:
            raise InvalidChange(
                f"target {target}: [targets.launch] user {launch.user!r} does not exist on this machine"
            ) from None
    else:
        try:
            entry = pwd.getpwuid(me)
        except KeyError:
            raise InvalidChange(
                f"target {target}: the daemon's uid {me} has no account entry to run the server as"
            ) from None
    if entry.pw_uid == 0 and not launch.allow_root:
        raise InvalidChange(
            f'target {target}: the server would run as root; set [targets.launch] user = "..." to an '
            "unprivileged account, or allow_root = true to run it as root on purpose"
        )
    switch = entry.pw_uid != me
    if switch and me != 0:
        raise InvalidChange(
            f"target {target}: [targets.launch] user {entry.pw_name!r} is not the daemon's own account, and only "
            "a daemon running as root can start a process as another user"
        )
    return RunAs(uid=entry.pw_uid, gid=entry.pw_gid, name=entry.pw_name, home=entry.pw_dir, switch=switch)


def child_env(launch: LaunchConfig, run_as: RunAs) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _PASSED_ENV or k.startswith("LC_")}
    env.update(HOME=run_as.home, USER=run_as.name, LOGNAME=run_as.name)
    env.update(launch.env)
    return env


def child_cwd(launch: LaunchConfig, run_as: RunAs, target: str) -> str | None:
    """Where the server starts: the configured cwd; for another account, its home (the daemon's own
    working directory is usually not readable by it), else /. Checked before anything is stopped."""
    cwd = launch.cwd
    if cwd is None and run_as.switch:
        cwd = run_as.home if os.path.isdir(run_as.home) else "/"
    if cwd is not None and not os.path.isdir(cwd):
        raise InvalidChange(f"target {target}: [targets.launch] cwd {cwd!r} is not a directory")
    return cwd


def _real(path: str) -> str | None:
    return os.path.realpath(path) if os.path.isabs(path) else None


@dataclass(frozen=True)
class Program:
    """The executable a configured argv[0] runs, found as exec would find it."""

    argv0: str
    path: str  # real path of the file argv[0] names
    interpreter: str | None  # real path of its #! interpreter, when it is a script

    def runs(self, exe: str | None) -> bool:
        """Whether a process whose /proc/PID/exe is `exe` runs this program (or its interpreter)."""
        return exe is not None and exe in {self.path, self.interpreter}

    def args(self, cmdline: Sequence[str]) -> list[str] | None:
        """The arguments after the program in a process's command line, or None if the command line
        does not run it. A script's command line starts with its interpreter (and the interpreter's own
        argument, for `#!/usr/bin/env python3`): the program then sits at index 1 or 2."""
        for i in (0, 1, 2) if self.interpreter else (0,):
            if i < len(cmdline) and (cmdline[i] == self.argv0 or _real(cmdline[i]) == self.path):
                return list(cmdline[i + 1 :])
        return None


def resolve_program(argv0: str, env: dict[str, str], cwd: str | None, target: str) -> Program:
    found: str | None
    if os.sep in argv0:
        found = argv0 if os.path.isabs(argv0) else os.path.join(cwd or os.getcwd(), argv0)
        found = found if os.path.isfile(found) and os.access(found, os.X_OK) else None
    else:
        found = shutil.which(argv0, path=env.get("PATH", os.defpath))
    if found is None:
        raise InvalidChange(
            f"target {target}: [targets.launch] argv[0] {argv0!r} is not an executable file (PATH searched)"
        )
    path = os.path.realpath(found)
    interpreter = None
    try:
        with open(path, "rb") as f:
            head = f.read(_SHEBANG_BYTES)
    except OSError as exc:
        raise InvalidChange(f"target {target}: cannot read {path}: {exc.strerror}") from None
    if head.startswith(b"#!"):
        words = head[2:].split(b"\n", 1)[0].decode(errors="replace").split()
        if words:
            name = words[1] if os.path.basename(words[0]) == "env" and len(words) > 1 else words[0]
            where = name if os.path.isabs(name) else shutil.which(name, path=env.get("PATH", os.defpath))
            interpreter = os.path.realpath(where) if where else None
    return Program(argv0=argv0, path=path, interpreter=interpreter)
