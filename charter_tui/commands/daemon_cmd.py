"""`charter-tui daemon`: the daemon headless, logging to a file, stopping cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from daemon.config import load_config
from daemon.logs import setup_file_logging
from daemon.redaction import redact_url


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "daemon",
        help="run the daemon headless (polls targets, watches agents, serves its own metrics)",
        description=(
            "Run the charter-tui daemon without the TUI: it polls the configured inference servers into "
            "the database, detects bottlenecks, recompiles watched agent files and carries out approved "
            "rollouts. Logs go to the log file (`charter-tui config path`). Stops cleanly on SIGTERM or "
            "SIGINT: in-flight writes are committed, then it exits."
        ),
    )
    p.add_argument("--readonly", action="store_true", help="refuse every mutating command")
    p.add_argument("--verbose", "-v", action="store_true", help="log at DEBUG level")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    setup_file_logging(loaded.log_file, logging.DEBUG if args.verbose else logging.INFO)
    print(
        f"charter-tui daemon: {len(loaded.config.targets)} target(s), database {redact_url(loaded.database_url)}, "
        f"log {loaded.log_file}",
        file=sys.stderr,
    )
    asyncio.run(_serve(loaded, readonly=args.readonly))
    return 0


async def _serve(loaded, readonly: bool) -> None:  # noqa: ANN001 - LoadedConfig
    from daemon.service import DaemonService

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await DaemonService(loaded, readonly=readonly or loaded.config.daemon.readonly).run(stop)
