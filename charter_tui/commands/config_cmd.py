"""`charter-tui config path|show|init`: where things live, the effective config, a commented default."""

from __future__ import annotations

import argparse
import json
import sys

import tomli_w

from daemon.config import load_config
from daemon.atomic_file import atomic_write
from daemon.errors import UserError
from daemon.paths import locations, repo_data_dir
from daemon.redaction import redact_config, redact_url


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="show where the config, database and log live; print or create the config",
        description="Inspect and create charter-tui's configuration (TOML, in the XDG config dir).",
    )
    actions = p.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    path = actions.add_parser(
        "path",
        help="print the config file, database URL, log file and data/state/cache dirs",
        description="Print where charter-tui reads its config and writes its database and log. "
        "Override with --config / $CHARTER_TUI_CONFIG, $CHARTER_TUI_DATABASE_URL, $CHARTER_TUI_LOG_FILE, "
        "or the XDG_*_HOME variables.",
    )
    path.add_argument("--json", action="store_true", help="machine-readable output")
    path.set_defaults(func=run_path)
    show = actions.add_parser("show", help="print the effective config (file + defaults) as TOML")
    show.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    show.set_defaults(func=run_show)
    init = actions.add_parser(
        "init",
        help="write a commented default config",
        description="Write the commented default config file.",
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file (a .bak is kept)")
    init.set_defaults(func=run_init)


def run_path(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    locs = loaded.locations
    rows = {
        "config": str(locs.config_file) + ("" if locs.config_file.exists() else "  (not created yet)"),
        "database": redact_url(loaded.database_url),  # printed: credentials masked
        "log": str(loaded.log_file),
        "data_dir": str(locs.data_dir),
        "state_dir": str(locs.state_dir),
        "cache_dir": str(locs.cache_dir),
        "testkit": str(locs.testkit_dir),
    }
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for key, value in rows.items():
            print(f"{key:<10} {value}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    # Passwords, launch env values and URL credentials masked: this output lands in terminals and tickets.
    data = redact_config(loaded.config, exclude_none=True)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        source = loaded.source or "defaults (no config file)"
        print(f"# effective config from {source}")
        sys.stdout.write(tomli_w.dumps(data))
    return 0


def run_init(args: argparse.Namespace) -> int:
    # Not load_config: init must work when the named file does not exist yet, or does not parse.
    target = locations(args.config).config_file
    if target.exists() and not args.force:
        raise UserError(f"{target} exists; use --force to overwrite it (a .bak copy is kept)")
    text = (repo_data_dir() / "config" / "default.toml").read_text(encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.with_suffix(target.suffix + ".bak").write_bytes(target.read_bytes())
    atomic_write(target, text)
    print(f"wrote {target}")
    return 0
