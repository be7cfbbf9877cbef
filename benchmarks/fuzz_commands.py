"""Long fuzz run of the MQTT command path (the suite runs a short one: tests/daemon_bus/test_command_fuzz.py).

    .venv/bin/python benchmarks/fuzz_commands.py --inputs 100000

Feeds `CommandVerifier.verify` the same generated shapes as the suite (tests/daemon_bus/command_fuzz.py):
raw bytes, arbitrary JSON, and signed envelopes mutated or not, on right and wrong topics. Counts inputs,
accepted and refused commands, and crashes (any exception other than CommandRefused, or a changed command
accepted). Exits 1 on any crash, printing the first few.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import strategies as st  # noqa: E402

from daemon.auth import CommandRefused, CommandVerifier  # noqa: E402
from daemon.config import AuthConfig, IdentityConfig  # noqa: E402
from tests.daemon_bus.command_fuzz import (  # noqa: E402
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--inputs", type=int, default=100_000, help="how many inputs to feed (default 100000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "ops.key"
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
        verifier = CommandVerifier(auth, DAEMON_ID, clock=lambda: NOW)

    rng = random.Random(args.seed)
    raw_bytes = st.binary(max_size=400)
    shapes = {"bytes": 0, "json": 0, "signed": 0}
    accepted = refused = 0
    crashes: list[str] = []
    started = time.monotonic()
    for i in range(args.inputs):
        kind = rng.choice(("bytes", "json", "signed", "signed"))
        shapes[kind] += 1
        topic = topics.example() if kind != "signed" else ""
        expect_ok = False
        if kind == "bytes":
            raw = raw_bytes.example()
        elif kind == "json":
            raw = json.dumps(json_values.example()).encode()
        else:
            command, how = commands.example(), mutations.example()
            envelope = mutate(signed(command, NOW), how, json_values.example())
            topic = topics.example() if how == "wrong_topic" else command.topic
            expect_ok = how == "none" or (how == "wrong_topic" and topic == command.topic)
            raw = json.dumps(envelope).encode()
        try:
            result = verifier.verify(topic, raw)
        except CommandRefused:
            refused += 1
            if expect_ok:
                crashes.append(f"input {i}: a valid signed command was refused")
            continue
        except Exception as exc:  # noqa: BLE001 - a crash is what we count
            crashes.append(f"input {i}: {type(exc).__name__}: {exc} (topic {topic!r}, payload {raw[:120]!r})")
            continue
        accepted += 1
        if not expect_ok:
            crashes.append(f"input {i}: accepted a changed command {result!r}")
    took = time.monotonic() - started
    print(
        f"inputs: {args.inputs} ({shapes['bytes']} raw bytes, {shapes['json']} arbitrary JSON, "
        f"{shapes['signed']} signed envelopes mutated or not)"
    )
    print(f"accepted: {accepted}, refused: {refused}, crashes: {len(crashes)}, in {took:.0f} s")
    for line in crashes[:10]:
        print("  " + line)
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
