"""`charter-tui fleet rollout`: one change over several daemons, stage by stage (charter_tui/fleet_rollout.py).

    charter-tui fleet rollout --connect mqtt://ops@broker --stage gpu-box-1:vllm --stage gpu-box-2:vllm \\
        --set max_num_seqs=64

The first stage is the canary; each next stage starts when the previous one completed; a failed stage rolls
back every stage before it. Commands are signed with [auth.client] for each daemon in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from daemon.config import DAEMON_ID_PATTERN, load_config
from daemon.errors import UserError
from daemon.logs import setup_file_logging
from daemon.rollouts import commands as cmd

if TYPE_CHECKING:
    from charter_tui.fleet_rollout import Stage

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fleet",
        help="act on several daemons through their MQTT broker (fleet rollouts)",
        description="Commands over a fleet of daemons sharing an MQTT broker.",
    )
    fleet_sub = p.add_subparsers(dest="fleet_command", metavar="COMMAND", required=True)
    r = fleet_sub.add_parser(
        "rollout",
        help="one change on several daemons: canary on the first stage, then the others in order",
        description=(
            "Propose and approve the change on each stage's daemon in turn, with commands signed by "
            "[auth.client] for that daemon. A stage starts when the previous one COMPLETED (each is canaried "
            "and validated by its daemon); if a stage fails, every completed stage is rolled back. Exit 0: "
            "every stage completed; 1: a stage failed (what was rolled back is printed); 2: bad arguments."
        ),
    )
    r.add_argument(
        "--connect",
        metavar="mqtt[s]://[USER@]HOST[:PORT]",
        help="the broker (default: [mqtt] host and port of the config)",
    )
    r.add_argument(
        "--stage",
        action="append",
        default=[],
        required=True,
        metavar="DAEMON:TARGET[,TARGET...]",
        help="a stage: the daemon's id and its targets (repeatable, in order; the first is the canary)",
    )
    r.add_argument("--set", action="append", default=[], dest="sets", required=True, metavar="PARAM=VALUE")
    r.add_argument("--reason", help="why (kept with each stage's rollout and in each daemon's audit log)")
    r.add_argument(
        "--stage-timeout", type=float, default=3600.0, metavar="SECONDS", help="give up on a stage after this"
    )
    r.add_argument("--json", action="store_true", help="the outcome as JSON on stdout")
    r.set_defaults(func=run_rollout)


def parse_stage(value: str) -> Stage:
    from charter_tui.fleet_rollout import Stage  # MQTT is imported only when a fleet command runs

    daemon, sep, targets = value.partition(":")
    names = [t.strip() for t in targets.split(",") if t.strip()]
    if not sep or not names:
        raise UserError(f"--stage {value!r}: write DAEMON:TARGET[,TARGET...]")
    if not re.fullmatch(DAEMON_ID_PATTERN, daemon):
        raise UserError(f"--stage {value!r}: {daemon!r} is not a daemon id (letters, digits, '.', '_', '-')")
    bad = [n for n in names if not NAME.fullmatch(n)]
    if bad:
        raise UserError(f"--stage {value!r}: {bad[0]!r} is not a target name")
    return Stage(daemon, names)


def run_rollout(args: argparse.Namespace) -> int:
    from charter_tui.commands.tui import connect_config
    from charter_tui.fleet_rollout import FleetOutcome, FleetPlan, FleetRollout
    from charter_tui.mqtt_source import MqttSource
    from daemon.auth import CommandSigner

    loaded = load_config(args.config)
    setup_file_logging(loaded.log_file)
    stages = [parse_stage(s) for s in args.stage]
    if len({s.daemon for s in stages}) != len(stages):
        raise UserError("--stage: each daemon once (put a daemon's targets in one stage: d:a,b)")
    changes = [cmd.parse_set(s) for s in args.sets]
    if not args.stage_timeout > 0:
        raise UserError("--stage-timeout must be a positive number of seconds")
    signer = CommandSigner.from_config(loaded.config.auth)
    if signer is None:
        raise UserError("a fleet rollout sends signed commands: set [auth.client] identity and secret_file")
    mqtt = connect_config(args.connect, loaded.config.mqtt) if args.connect else loaded.config.mqtt
    source = MqttSource(mqtt, signer=signer, daemons=tuple(s.daemon for s in stages))
    plan = FleetPlan(stages, changes, reason=args.reason, stage_timeout_s=args.stage_timeout)

    def report(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    async def run() -> FleetOutcome:
        try:
            return await FleetRollout(source, plan, report=report).run()
        finally:
            source.close()

    outcome = asyncio.run(run())
    logging.getLogger(__name__).info("fleet rollout: %s", outcome)
    if args.json:
        print(json.dumps(asdict(outcome), indent=2))
    else:
        for stage in outcome.stages:
            what = f"rollout {stage.rollout_id}" if stage.rollout_id is not None else "no rollout"
            print(f"  {stage.daemon}: {what} {stage.state}" + (f" ({stage.error})" if stage.error else ""))
    return 0 if outcome.ok else 1
