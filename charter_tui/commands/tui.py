"""`charter-tui` (no subcommand): the Textual TUI with the daemon embedded in the same event loop.

`charter-tui tui --connect HOST[:PORT]` instead attaches to a daemon running elsewhere, through
the MQTT broker its bridge publishes to; only the data source changes, the screens are the same.
"""

from __future__ import annotations

import argparse
import logging

from daemon.config import load_config
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
        metavar="HOST[:PORT]",
        help="attach to a remote daemon through its MQTT broker instead of embedding one "
        "(credentials and topic prefix from [mqtt] in the config)",
    )


def add_defaults(args: argparse.Namespace) -> None:
    """Defaults for a bare `charter-tui` (argparse leaves subcommand options unset then)."""
    args.connect = getattr(args, "connect", None)


def parse_connect(value: str, default_port: int) -> tuple[str, int]:
    host, sep, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if not sep:
        return value, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--connect {value!r}: the port must be a number between 1 and 65535")
    return host, int(port)


def run(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    # Logs must never reach the terminal the TUI owns.
    setup_file_logging(loaded.log_file)
    from charter_tui.compose import embedded_app, remote_app  # Textual is imported only when the TUI runs

    readonly = args.readonly or loaded.config.daemon.readonly
    connect = getattr(args, "connect", None)
    app = (
        remote_app(loaded, connect, readonly=readonly) if connect else embedded_app(loaded, readonly=readonly)
    )
    app.run()
    logging.getLogger(__name__).info(
        "TUI closed"
    )  # after Textual's own shutdown: a hang before it shows here
    return 0
