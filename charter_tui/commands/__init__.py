"""One module per `charter-tui` subcommand; each exposes `register(subparsers)`.

A command's `run(args) -> int` does the work; raise `daemon.errors.UserError` for anything the
user can fix (bad path, bad config, unreachable target): the CLI prints it as one line and exits 2.
"""
