"""`charter-tui discover [--write] [--json]`: the inference servers listening on this machine.

What the daemon polls by itself when no target is configured (daemon/discovery.py); `--write` keeps
them: each server not yet configured (by URL) is appended to the config file as a `[[targets]]`
table — the rest of the file, comments included, is left as it is. The new text is parsed with the
config's own rules before it replaces the file (atomically), so a write never leaves a config the
next start refuses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import tomli_w

from daemon.atomic_file import atomic_write
from daemon.config import TargetConfig, load_config, parse_config, read_config_file
from daemon.paths import locations, repo_data_dir
from daemon.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "discover",
        help="find the inference servers listening on this machine (and add them to the config)",
        description="Ask every TCP port listening on this machine for /metrics and list the ones an "
        "engine answers (vLLM, Triton, SGLang, TGI, llama.cpp), with the URL to configure. "
        "With no [[targets]] configured, the daemon polls these by itself.",
    )
    p.add_argument(
        "--write", action="store_true", help="append the servers not yet configured to the config file"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--timeout", type=float, default=1.0, metavar="S", help="per-port request timeout (default 1)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from daemon.discovery import discover, found_targets

    if not 0 < args.timeout <= 30:  # NaN fails this too
        raise UserError("--timeout must be a number of seconds in (0, 30]")
    loaded = load_config(args.config)
    found = asyncio.run(discover(exclude_ports=[loaded.config.daemon.metrics_port], timeout_s=args.timeout))
    configured = {t.url.rstrip("/") for t in loaded.config.targets}
    new = [f for f in found if f.url.rstrip("/") not in configured]
    targets = found_targets(new, taken=[t.name for t in loaded.config.targets])
    if args.json:
        rows = [
            {"engine": f.engine, "url": f.url, "metrics_url": f.metrics_url, "configured": f not in new}
            for f in found
        ]
        print(json.dumps(rows, indent=2))
    elif not found:
        print("no inference server found listening on this machine")
    else:
        for f in found:
            mark = "configured" if f not in new else "new"
            metrics = f"  (metrics {f.metrics_url})" if f.metrics_url else ""
            print(f"{f.engine:<8} {f.url}{metrics}  {mark}")
    if args.write:
        if not targets:
            print("nothing to write: every server found is configured", file=sys.stderr)
            return 0
        path = _append_targets(args.config, targets)
        print(
            f"added {len(targets)} target(s) to {path}: {', '.join(t.name for t in targets)}", file=sys.stderr
        )
    return 0


def _append_targets(config_override: str | None, targets: list[TargetConfig]) -> str:
    path = locations(config_override).config_file
    text = read_config_file(path)
    if text is None:  # no file yet: start from the commented default, as `config init` does
        text = (repo_data_dir() / "config" / "default.toml").read_text(encoding="utf-8")
    tables = tomli_w.dumps({"targets": [t.model_dump(exclude_defaults=True) for t in targets]})
    new = text.rstrip("\n") + "\n\n# Found by `charter-tui discover`.\n" + tables
    parse_config(new, str(path))  # a ConfigError names the file and key; nothing is written then
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, new)
    return str(path)
