"""`charter-tui` (no subcommand): the Textual TUI with the daemon embedded in the same event loop.

`charter-tui tui --connect mqtt[s]://[user@]host[:port] [--daemon ID ...]` instead attaches to daemons running
elsewhere, through the MQTT broker their bridges publish to: every daemon on it, or those named. Only the data
source changes; the screens are the same, with Instances grouped by daemon.
"""

from __future__ import annotations

import argparse
import logging
import re
from urllib.parse import urlsplit

from daemon.config import DAEMON_ID_PATTERN, MqttConfig, load_config
from daemon.errors import UserError
from daemon.logs import setup_file_logging

KEYS_HELP = (
    "Keys: 1-5 screens (instances, agents, cache, bottlenecks, rollouts), ? every key, : command palette, "
    "/ filter, esc back, q quit; on rollouts a approve, r reject, b rollback (each asks y/n), p pause/resume. "
    "Remap keys by id under [keymap.bindings] in the config."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tui",
        help="the TUI with the daemon embedded (the default when no command is given)",
        description="Start the terminal UI; the daemon runs inside it. " + KEYS_HELP,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--readonly", action="store_true", help="hide and refuse every mutating key")
    p.add_argument(
        "--connect",
        metavar="mqtt[s]://[USER@]HOST[:PORT]",
        help="attach to remote daemons through their MQTT broker instead of embedding one; HOST[:PORT] "
        "alone works too. mqtts:// turns TLS on (port 8883 by default). The password, CA and client "
        "certificate, and the topic prefix come from [mqtt] in the config, never from the command line",
    )
    p.add_argument(
        "--daemon",
        metavar="ID",
        action="append",
        default=[],
        help="with --connect: show only this daemon ([daemon] id on that box); repeat for several. "
        "Default: every daemon that publishes on the broker",
    )


def add_defaults(args: argparse.Namespace) -> None:
    """Defaults for a bare `charter-tui` (argparse leaves subcommand options unset then)."""
    args.connect = getattr(args, "connect", None)
    args.daemon = getattr(args, "daemon", [])


def connect_config(value: str, mqtt: MqttConfig) -> MqttConfig:
    """`[mqtt]` with the broker `--connect` names: `mqtt[s]://[user@]host[:port]` or `host[:port]`."""
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise UserError(f"--connect {value!r}: the scheme must be mqtt:// or mqtts://")
        if parts.password is not None:
            raise UserError(
                "--connect: a password on the command line ends up in shell history and `ps`; "
                "put it in [mqtt] password_file (mode 600) instead"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise UserError(f"--connect {value!r}: only mqtt[s]://[user@]host[:port], no path or query")
        try:
            port = parts.port
        except ValueError:
            raise UserError(f"--connect {value!r}: the port must be a number between 1 and 65535") from None
        if not parts.hostname:
            raise UserError(f"--connect {value!r}: no host")
        tls = parts.scheme == "mqtts"
        update: dict[str, object] = {
            "host": parts.hostname,
            "port": port or (8883 if tls else 1883),
            "tls": tls or mqtt.tls,
        }
        if parts.username:
            update["username"] = parts.username
        return mqtt.model_copy(update=update)
    host, sep, port_text = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if not sep:
        return mqtt.model_copy(update={"host": value})
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UserError(f"--connect {value!r}: the port must be a number between 1 and 65535")
    return mqtt.model_copy(update={"host": host, "port": int(port_text)})


def run(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    # Logs must never reach the terminal the TUI owns.
    setup_file_logging(loaded.log_file)
    from charter_tui.compose import embedded_app, remote_app  # Textual is imported only when the TUI runs

    readonly = args.readonly or loaded.config.daemon.readonly
    connect = getattr(args, "connect", None)
    daemons = tuple(getattr(args, "daemon", []) or [])
    if daemons and not connect:
        raise UserError("--daemon picks daemons on a broker: it goes with --connect")
    for daemon in daemons:
        if not re.fullmatch(DAEMON_ID_PATTERN, daemon):
            raise UserError(f"--daemon {daemon!r}: a daemon id is 1-64 letters, digits, '.', '_' or '-'")
    app = (
        remote_app(loaded, connect, daemons=daemons, readonly=readonly)
        if connect
        else embedded_app(loaded, readonly=readonly)
    )
    app.run()
    logging.getLogger(__name__).info(
        "TUI closed"
    )  # after Textual's own shutdown: a hang before it shows here
    return 0
