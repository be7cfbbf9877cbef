"""The rollout manager as its own process, for the SIGKILL fault tests.

    python -m tests.rollouts.run_manager CONFIG_JSON DATABASE_URL STATE_DIR [--crash-at POINT]

Runs `RolloutManager.run` exactly as the daemon does. With `--crash-at`, the process SIGKILLs itself
at that checkpoint (`state:CANARY`, `before_apply`, `after_apply`, `before_restore`, ...): nothing
after it runs, no finally block, no flush — the real thing, at a precise point.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from daemon.config import Config
from daemon.rollouts.manager import RolloutManager
from daemon.store import Store


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("database_url")
    parser.add_argument("state_dir")
    parser.add_argument("--crash-at")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    config = Config.model_validate_json(Path(args.config).read_text())

    def checkpoint(name: str, rollout_id: int) -> None:
        if name == args.crash_at:
            print(f"crashing at {name} (rollout {rollout_id})", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    manager = RolloutManager(
        config, Store(args.database_url), state_dir=Path(args.state_dir), checkpoint=checkpoint
    )
    stop = asyncio.Event()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await manager.run(stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
