"""`charter-tui` (no subcommand): the Textual TUI with the daemon embedded in the same event loop."""

from __future__ import annotations

import argparse

from daemon.config import load_config
from daemon.logs import setup_file_logging


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tui",
        help="the TUI with the daemon embedded (the default when no command is given)",
        description="Start the terminal UI; the daemon runs inside it. Keys: q quits.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--readonly", action="store_true", help="hide and refuse every mutating key")


def add_defaults(args: argparse.Namespace) -> None:
    """Defaults for a bare `charter-tui` (argparse leaves subcommand options unset then)."""


def run(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    # Logs must never reach the terminal the TUI owns.
    setup_file_logging(loaded.log_file)
    from charter_tui.app import CharterApp  # Textual is imported only when the TUI runs

    CharterApp(loaded, readonly=args.readonly or loaded.config.daemon.readonly).run()
    return 0
