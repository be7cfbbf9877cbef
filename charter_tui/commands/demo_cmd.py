"""`charter-tui demo` (what `make run` starts): the TUI over the bundled agents and a local vLLM.

If the config names targets, it is plain `charter-tui` with the bundled sample agents watched as
well, and nothing is sent to those servers. If it names none, a local vLLM CPU server from the test
kit is started first (about a minute on 2 cores), a bundled agent is run against it at a modest rate
so that every screen has numbers (`t` pauses it; `--no-traffic` starts without), and the server is
stopped when the TUI exits.
"""

from __future__ import annotations

import argparse
import sys

from daemon.config import TargetConfig, load_config
from daemon.logs import setup_file_logging
from daemon.paths import repo_data_dir
from executor.demo_traffic import DEFAULT_INTERVAL_S, DEFAULT_MAX_TOKENS

DEMO_AGENT = "document_processor.py"  # a bundled agent with sample inputs (data/agents/inputs)
DEMO_TARGET = "local-vllm"


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} s is outside 0.1-3600 s")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the TUI over the bundled sample agents and a local vLLM CPU server (what `make run` starts)",
        description=(
            "Start the TUI watching the bundled sample agents (data/agents). Unless the config names "
            "targets, first start a local vLLM CPU server from the test kit (`make testkit` builds it), "
            f"run the bundled {DEMO_AGENT} against it every few seconds (synthetic traffic, answers "
            f"capped at {DEFAULT_MAX_TOKENS} tokens; `t` in the TUI pauses and resumes it) and stop the "
            "server when the TUI exits. Servers named in the config never get demo traffic."
        ),
    )
    p.add_argument("--no-traffic", action="store_true", help="start the local server without demo traffic")
    p.add_argument(
        "--traffic-interval",
        type=_interval,
        default=DEFAULT_INTERVAL_S,
        metavar="SECONDS",
        help=f"pause between two runs of the demo agent (default {DEFAULT_INTERVAL_S:g})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from charter_tui.compose import embedded_app
    from executor.demo_traffic import DemoTraffic
    from testkit.ports import StartupError
    from testkit.vllm import start_vllm

    loaded = load_config(args.config)
    setup_file_logging(loaded.log_file)
    agents = repo_data_dir() / "agents"
    config = loaded.config
    watch = config.watch.model_copy(update={"paths": [*config.watch.paths, str(agents)]})
    readonly = args.readonly or config.daemon.readonly

    if config.targets:
        demo = loaded.model_copy(update={"config": config.model_copy(update={"watch": watch})})
        embedded_app(demo, readonly=readonly).run()
        return 0

    print("charter-tui demo: starting a local vLLM CPU server (about a minute)...", file=sys.stderr)
    try:
        with start_vllm() as server:
            target = TargetConfig(name=DEMO_TARGET, url=server.url, engine="vllm")
            demo = loaded.model_copy(
                update={"config": config.model_copy(update={"watch": watch, "targets": [target]})}
            )
            traffic = None
            if not args.no_traffic:
                traffic = DemoTraffic(
                    agents / DEMO_AGENT,
                    agents / "inputs" / DEMO_AGENT.replace(".py", ".jsonl"),
                    server.url,
                    target_name=DEMO_TARGET,
                    interval_s=args.traffic_interval,
                )
            embedded_app(demo, readonly=readonly, traffic=traffic).run()
    except StartupError as exc:
        from daemon.errors import UserError

        raise UserError(f"the local vLLM server did not start: {exc}") from None
    return 0
