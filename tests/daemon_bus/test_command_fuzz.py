"""Fuzzing the MQTT command path (short budget here; `benchmarks/fuzz_commands.py` runs the long one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.auth import CommandRefused, CommandVerifier
from daemon.config import AuthConfig, IdentityConfig
from daemon.contract import AuthorizedCommand, RolloutCommand
from tests.daemon_bus.command_fuzz import (
    DAEMON_ID,
    IDENTITY,
    SECRET,
    commands,
    json_values,
    mutate,
    mutations,
    signed,
    topics,
)

NOW = 1_800_000_000.0
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> CommandVerifier:
    key = Path(tmp_path_factory.mktemp("keys")) / "ops.key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    auth = AuthConfig(
        identities=[
            IdentityConfig(
                name=IDENTITY,
                secret_file=str(key),
                actions=["propose", "approve", "reject", "pause", "resume", "rollback"],
            )
        ]
    )
    return CommandVerifier(auth, DAEMON_ID, clock=lambda: NOW)


def verdict(verifier: CommandVerifier, topic: str, raw: bytes) -> AuthorizedCommand | CommandRefused:
    try:
        return verifier.verify(topic, raw)
    except CommandRefused as refused:
        assert refused.reason and "\n" not in refused.reason, "one line, for the reply and the audit"
        return refused


@FUZZ
@given(topic=topics, raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_on_any_topic_are_refused(verifier: CommandVerifier, topic: str, raw: bytes) -> None:
    assert isinstance(verdict(verifier, topic, raw), CommandRefused)


@FUZZ
@given(topic=topics, value=json_values)
def test_arbitrary_json_is_refused(verifier: CommandVerifier, topic: str, value: Any) -> None:
    assert isinstance(verdict(verifier, topic, json.dumps(value).encode()), CommandRefused)


@FUZZ
@given(command=commands, how=mutations, junk=json_values, other_topic=topics)
def test_only_unchanged_signed_commands_on_their_own_topic_pass(
    verifier: CommandVerifier, command: RolloutCommand, how: str, junk: Any, other_topic: str
) -> None:
    envelope = mutate(signed(command, NOW), how, junk)
    topic = other_topic if how == "wrong_topic" else command.topic
    result = verdict(verifier, topic, json.dumps(envelope).encode())
    if how == "none" or (how == "wrong_topic" and other_topic == command.topic):
        assert isinstance(result, AuthorizedCommand), result
        assert (result.command, result.identity) == (command, IDENTITY)
        assert isinstance(verdict(verifier, topic, json.dumps(envelope).encode()), CommandRefused), "replay"
    else:
        assert isinstance(result, CommandRefused), f"{how} must not pass"


def test_deep_and_large_payloads_are_refused_with_the_reason(verifier: CommandVerifier) -> None:
    topic = "charter/v1/command/rollout/approve"
    assert "nested" in verdict(verifier, topic, b"[" * 5000 + b"]" * 5000).reason
    assert "bytes refused" in verdict(verifier, topic, b" " * 20_000).reason


def test_a_signer_cannot_put_one_action_under_another_actions_topic(verifier: CommandVerifier) -> None:
    """Even signed by a real identity, a reject published (and signed) for the approve topic is refused."""
    from daemon.auth import canonical, signature
    from daemon.bus import daemon_topic

    command = {"action": "reject", "id": 3}
    ts, nonce, topic = NOW, "ab" * 16, "charter/v1/command/rollout/approve"
    envelope = {
        "identity": IDENTITY,
        "ts": ts,
        "nonce": nonce,
        "command": command,
        "sig": signature(SECRET, canonical(daemon_topic(DAEMON_ID, topic), IDENTITY, ts, nonce, command)),
    }
    refused = verdict(verifier, topic, json.dumps(envelope).encode())
    assert (
        isinstance(refused, CommandRefused)
        and "topic says approve but the command says reject" in refused.reason
    )


@FUZZ
@given(command=commands, other=st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True))
def test_a_command_signed_for_another_daemon_is_refused(
    verifier: CommandVerifier, command: RolloutCommand, other: str
) -> None:
    """A fleet's daemons may share identities; a command signed for one (its rollout 3) replayed to another
    (whose rollout 3 is another rollout) must not pass."""
    result = verdict(verifier, command.topic, json.dumps(signed(command, NOW, other)).encode())
    if other == DAEMON_ID:
        assert isinstance(result, AuthorizedCommand)
    else:
        assert isinstance(result, CommandRefused) and "signed for another daemon" in result.reason
