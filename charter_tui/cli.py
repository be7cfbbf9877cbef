"""The `charter-tui` command line: the TUI by default, and headless subcommands.

Each subcommand lives in its own module under `charter_tui/commands/` and exposes
`register(subparsers)`; this module only wires them together and turns the user's
mistakes into one clear line on stderr and exit code 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from daemon.errors import UserError, shown

# Order here is the order `charter-tui --help` lists them in.
COMMAND_MODULES = (
    "charter_tui.commands.tui",
    "charter_tui.commands.daemon_cmd",
    "charter_tui.commands.config_cmd",
    "charter_tui.commands.demo_cmd",
    "charter_tui.commands.compile_cmd",
    "charter_tui.commands.probe_cmd",
    "charter_tui.commands.rollouts_cmd",
    "charter_tui.commands.bench_cmd",
    "charter_tui.commands.discover_cmd",
    "charter_tui.commands.doctor_cmd",
    "charter_tui.commands.fleet_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="charter-tui",
        description=(
            "A terminal control room for LLM inference: live vLLM/Triton metrics and bottlenecks, "
            "agent files compiled into DAGs of their LLM calls with a cache plan, and "
            "approval-gated config rollouts. With no subcommand, starts the TUI with the daemon embedded."
        ),
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="the TOML config to use (default: $CHARTER_TUI_CONFIG, else the XDG config dir; "
        "`charter-tui config path` shows where)",
    )
    parser.add_argument(
        "--readonly",
        dest="global_readonly",
        action="store_true",
        help="refuse every mutating command (approve, reject, rollback, propose) in the TUI or daemon",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a subcommand that has not landed yet
                continue
            raise
        module.register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("charter-tui")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # `--readonly` may come before or after the subcommand; either sets it.
    args.readonly = getattr(args, "readonly", False) or args.global_readonly
    if args.command is None:
        from charter_tui.commands import tui

        args.func = tui.run
        tui.add_defaults(args)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        # shown(): one line whatever the message carries (a driver's multi-line error, a path with a
        # newline in it), bounded, controls escaped so the terminal prints it rather than obeys it.
        print(f"charter-tui: {shown(exc, 2000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
