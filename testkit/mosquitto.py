"""A private Mosquitto broker on a free loopback port, from a temporary config.

The machine may already run a shared broker on 1883; tests that need their own settings (auth, ACL)
or must not see other people's traffic start this one instead::

    with start_mosquitto() as broker:
        async with aiomqtt.Client(broker.host, broker.port) as client: ...

    with start_mosquitto(users={"charter": "s3cret"}, acl="user charter\\ntopic readwrite charter/#\\n") as b:
        ...  # anonymous clients are refused; `charter` may only use charter/#
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from testkit.ports import StartupError, die_with_parent, free_port, log_tail

DEFAULT_BINARY = "/usr/sbin/mosquitto"
INSTALL_HINT = "install it with `apt-get install mosquitto` (Debian/Ubuntu; it provides mosquitto_passwd too)"


class MosquittoMissing(StartupError):
    """No mosquitto (or mosquitto_passwd) binary; the message says how to install it."""


@dataclass(frozen=True)
class TlsFiles:
    """A TLS listener: the CA that signed the broker's (and clients') certificates, the broker's own pair."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = False  # clients must then present a certificate signed by the CA


@dataclass
class MosquittoBroker:
    host: str
    port: int
    config_path: Path
    log_path: Path
    users: dict[str, str]
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)


def find_mosquitto(binary: str | os.PathLike[str] | None = None) -> Path:
    """The broker binary: `binary` if given, else $CHARTER_MOSQUITTO if set, else /usr/sbin/mosquitto or
    `mosquitto` on PATH. A binary named explicitly is never silently replaced by another one."""
    explicit = binary or os.environ.get("CHARTER_MOSQUITTO")
    candidates = [explicit] if explicit else [DEFAULT_BINARY, shutil.which("mosquitto")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    looked = explicit or f"{DEFAULT_BINARY} and on PATH"
    raise MosquittoMissing(f"mosquitto is not installed (looked for {looked}); {INSTALL_HINT}")


def _mosquitto_passwd(broker: Path) -> Path:
    for candidate in (
        broker.parent.parent / "bin" / "mosquitto_passwd",
        broker.parent / "mosquitto_passwd",
        shutil.which("mosquitto_passwd"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise MosquittoMissing(
        f"mosquitto_passwd is not installed (needed for a broker with users); {INSTALL_HINT}"
    )


def write_password_file(path: Path, users: Mapping[str, str], broker: Path) -> None:
    """Hash the passwords with mosquitto_passwd (the broker only reads its own hash format)."""
    tool = _mosquitto_passwd(broker)
    path.touch(mode=0o600)
    for user, password in users.items():
        if not user or ":" in user or "\n" in user or "\n" in password:
            raise ValueError(f"invalid MQTT user name or password for {user!r}")
        subprocess.run([str(tool), "-b", str(path), user, password], check=True, capture_output=True)
    path.chmod(0o600)


def broker_config(
    port: int,
    *,
    host: str = "127.0.0.1",
    log_path: Path,
    password_file: Path | None = None,
    acl_file: Path | None = None,
    tls: TlsFiles | None = None,
) -> str:
    lines = [
        "# written by charter-tui's test kit; removed when the broker stops",
        f"listener {port} {host}",
        "allow_anonymous " + ("false" if password_file else "true"),
        "persistence false",
        # Run as whoever started it: as root, mosquitto would otherwise switch to the `mosquitto` user,
        # which cannot read a private temporary directory.
        f"user {pwd.getpwuid(os.getuid()).pw_name}",
        f"log_dest file {log_path}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
    ]
    if password_file:
        lines.append(f"password_file {password_file}")
    if acl_file:
        lines.append(f"acl_file {acl_file}")
    if tls is not None:  # options of the listener above
        lines += [f"cafile {tls.ca_file}", f"certfile {tls.cert_file}", f"keyfile {tls.key_file}"]
        if tls.require_certificate:
            lines.append("require_certificate true")
    return "\n".join(lines) + "\n"


def _wait_accepting(
    host: str, port: int, process: subprocess.Popen[bytes], timeout_s: float, log: Path
) -> None:
    """Wait until *this* broker says it is running and its port accepts a connection.

    A connect alone is not proof: another broker already on the port (the shared one on 1883, say)
    would accept while ours died with "Address already in use".
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartupError(
                f"mosquitto exited with code {process.returncode} before {host}:{port} accepted "
                f"connections; log {log}:\n{_all_output(log)}"
            )
        if " running" in log_tail(log, 20):
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    pass
            except OSError:
                pass
            else:
                if process.poll() is None:
                    return
        time.sleep(0.05)
    raise StartupError(
        f"mosquitto did not accept connections on {host}:{port} within {timeout_s:.0f} s; "
        f"log {log}:\n{_all_output(log)}"
    )


def _all_output(log: Path) -> str:
    """The broker's log plus what it printed before opening the log (config errors go to stderr)."""
    return log_tail(log.with_suffix(".out"), 20) + "\n" + log_tail(log, 40)


def _stop(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def start_mosquitto(
    *,
    users: Mapping[str, str] | None = None,
    acl: str | None = None,
    binary: str | os.PathLike[str] | None = None,
    port: int | None = None,
    startup_timeout_s: float = 10.0,
    keep_dir: Path | None = None,
    tls: TlsFiles | None = None,
) -> Iterator[MosquittoBroker]:
    """Start a private broker, wait until its port accepts connections, yield it, stop it on exit.

    `users` (name -> password) turns anonymous access off; `acl` is the text of a Mosquitto ACL file.
    `keep_dir`, if given, holds the config and log and is left in place (for a test's tmp_path).
    """
    broker_bin = find_mosquitto(binary)
    workdir = keep_dir or Path(tempfile.mkdtemp(prefix="charter-mosquitto-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        password_file = None
        if users:
            password_file = workdir / "passwd"
            write_password_file(password_file, users, broker_bin)
        acl_file = None
        if acl is not None:
            acl_file = workdir / "acl"
            acl_file.write_text(acl if acl.endswith("\n") else acl + "\n")
            acl_file.chmod(0o600)
        # A port taken between free_port() and the broker's bind makes it exit at once; retry then.
        for attempt in range(3):
            chosen = port or free_port()
            log_path = workdir / f"mosquitto-{chosen}.log"
            config_path = workdir / f"mosquitto-{chosen}.conf"
            log_path.write_text("")  # a kept dir may hold an older run's "running" line for this port
            config_path.write_text(
                broker_config(
                    chosen, log_path=log_path, password_file=password_file, acl_file=acl_file, tls=tls
                )
            )
            with open(log_path.with_suffix(".out"), "wb") as out:
                process = subprocess.Popen(
                    [str(broker_bin), "-c", str(config_path)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
            try:
                _wait_accepting("127.0.0.1", chosen, process, startup_timeout_s, log_path)
            except StartupError:
                _stop(process)
                if port is None and attempt < 2 and "Address already in use" in _all_output(log_path):
                    continue
                raise
            break
        try:
            yield MosquittoBroker(
                host="127.0.0.1",
                port=chosen,
                config_path=config_path,
                log_path=log_path,
                users=dict(users or {}),
                process=process,
            )
        finally:
            _stop(process)
    finally:
        if keep_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
