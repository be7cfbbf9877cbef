"""Fuzz inputs for the MQTT command path: topics and payloads as an attacker on the broker can send them.

Shared by the short hypothesis test in the suite (tests/daemon_bus/test_command_fuzz.py) and the long run by
hand (`benchmarks/fuzz_commands.py`), so both feed the verifier the same shapes:
- raw bytes and text, JSON of any shape, deep nesting;
- envelopes with every field of the wrong type, missing, or extra;
- correctly signed envelopes whose command is then mutated (or not), on the right or a wrong topic;
- topics with huge ids, unknown actions, extra levels, wildcards and control characters.
The property: `CommandVerifier.verify` either returns an `AuthorizedCommand` for a command that was signed
unchanged by a granted identity on its own topic, or raises `CommandRefused` — never anything else, and never
accepts anything that was changed after signing.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from daemon.auth import CommandSigner
from daemon.contract import COMMAND_ACTIONS, COMMAND_PREFIX, RolloutCommand

SECRET = b"fuzz-secret-0123456789abcdef"
IDENTITY = "ops"
DAEMON_ID = "fuzz-box"  # the daemon the commands are signed for (the verifier\'s id)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

topics = st.one_of(
    st.sampled_from([f"{COMMAND_PREFIX}/{a}" for a in COMMAND_ACTIONS]),
    st.builds(lambda n: f"{COMMAND_PREFIX}/{n}", st.integers(min_value=-(2**80), max_value=2**80)),
    st.builds(lambda s: f"{COMMAND_PREFIX}/{s}", st.text(max_size=30)),
    st.text(max_size=60),
)

commands = st.builds(
    lambda action, rid, comment, rq: _command(action, rid, comment, rq),
    st.sampled_from(COMMAND_ACTIONS),
    st.integers(min_value=1, max_value=2**63 - 1),
    st.none() | st.text(max_size=50),
    st.none() | st.from_regex(r"[A-Za-z0-9_.:-]{1,40}", fullmatch=True),
)


def _command(action: str, rid: int, comment: str | None, request_id: str | None) -> RolloutCommand:
    if action == "propose":
        return RolloutCommand.model_validate(
            {
                "action": "propose",
                "targets": ["a"],
                "changes": [{"param": "batch", "value": "8"}],
                "request_id": request_id,
            }
        )
    return RolloutCommand.model_validate(
        {"action": action, "id": rid, "comment": comment, "request_id": request_id}
    )


def signed(command: RolloutCommand, clock: float, daemon_id: str = DAEMON_ID) -> dict[str, Any]:
    return CommandSigner(IDENTITY, SECRET, clock=lambda: clock).envelope(command, daemon_id)


mutations = st.sampled_from(
    [
        "none",
        "drop_field",
        "retype_ts",
        "retype_command",
        "change_command",
        "change_identity",
        "add_field",
        "nan_ts",
        "sig_case",
        "wrong_topic",
    ]
)


def mutate(envelope: dict[str, Any], how: str, junk: Any) -> dict[str, Any]:
    env = json.loads(json.dumps(envelope))
    if how == "drop_field":
        env.pop(sorted(env)[hash(str(junk)) % len(env)])
    elif how == "retype_ts":
        env["ts"] = junk if not isinstance(junk, (int, float)) or isinstance(junk, bool) else str(junk)
    elif how == "retype_command":
        env["command"] = junk if not isinstance(junk, dict) else [junk]
    elif how == "change_command":
        env["command"]["comment"] = f"{env['command'].get('comment')}!"
    elif how == "change_identity":
        env["identity"] = "ops2"
    elif how == "add_field":
        env["actor"] = "bob"
    elif how == "nan_ts":
        env["ts"] = float("nan")
    elif how == "sig_case":
        env["sig"] = env["sig"].upper()
    return env
