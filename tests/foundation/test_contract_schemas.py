"""The contract's documentation is generated from the code and kept in step with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from daemon.bus import TOPIC_VERSION
from daemon.topics import TOPICS, model_for

REPO = Path(__file__).resolve().parents[2]


def test_committed_schemas_match_the_models() -> None:
    run = subprocess.run(
        [sys.executable, "scripts/contract_schemas.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


def test_every_outgoing_topic_decodes_to_its_model_and_commands_to_none() -> None:
    from daemon.contract import CommandResult
    from daemon.models import MetricSample
    from daemon.supervisor import DaemonHealth

    assert model_for(f"{TOPIC_VERSION}/sample/vllm-a") is MetricSample
    assert model_for(f"{TOPIC_VERSION}/daemon/health") is DaemonHealth
    assert model_for(f"{TOPIC_VERSION}/command_result/rollout") is CommandResult
    assert model_for(f"{TOPIC_VERSION}/command/rollout/approve") is None, "commands are never state"
    assert model_for(f"{TOPIC_VERSION}/nothing/x") is None
    assert len({spec.pattern for spec in TOPICS}) == len(TOPICS), "one entry per topic"
