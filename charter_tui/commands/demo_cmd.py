"""`charter-tui demo` (what `make run` starts): the TUI over the bundled agents and a local vLLM.

If the config names targets, it is plain `charter-tui` with the bundled sample agents watched as
well. If it names none, a local vLLM CPU server from the test kit is started first (about a minute
on 2 cores) and stopped when the TUI exits.
"""

from __future__ import annotations

import argparse
import sys

from daemon.config import TargetConfig, load_config
from daemon.logs import setup_file_logging
from daemon.paths import repo_data_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the TUI over the bundled sample agents and a local vLLM CPU server (what `make run` starts)",
        description=(
            "Start the TUI watching the bundled sample agents (data/agents). Unless the config names "
            "targets, first start a local vLLM CPU server from the test kit (`make testkit` builds it) "
            "and stop it when the TUI exits."
        ),
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from charter_tui.compose import embedded_app
    from testkit.ports import StartupError
    from testkit.vllm import start_vllm

    loaded = load_config(args.config)
    setup_file_logging(loaded.log_file)
    agents = str(repo_data_dir() / "agents")
    config = loaded.config
    watch = config.watch.model_copy(update={"paths": [*config.watch.paths, agents]})
    readonly = args.readonly or config.daemon.readonly

    if config.targets:
        demo = loaded.model_copy(update={"config": config.model_copy(update={"watch": watch})})
        embedded_app(demo, readonly=readonly).run()
        return 0

    print("charter-tui demo: starting a local vLLM CPU server (about a minute)...", file=sys.stderr)
    try:
        with start_vllm() as server:
            target = TargetConfig(name="local-vllm", url=server.url, engine="vllm")
            demo = loaded.model_copy(
                update={"config": config.model_copy(update={"watch": watch, "targets": [target]})}
            )
            embedded_app(demo, readonly=readonly).run()
    except StartupError as exc:
        from daemon.errors import UserError

        raise UserError(f"the local vLLM server did not start: {exc}") from None
    return 0
