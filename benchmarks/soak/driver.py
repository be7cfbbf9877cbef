"""The people of the soak: rollouts proposed, approved, rejected, paused and rolled back on the knob
targets, through the CLI (the local path) and through signed MQTT commands, plus junk commands that
must all be refused.

One rollout at a time, so the knob files' expected values are a simple chain the checks can follow.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from daemon.auth import CommandSigner
from daemon.bus import daemon_topic
from daemon.contract import RESULT_TOPIC, CommandResult, RolloutCommand, command_topic

from benchmarks.soak.rig import BROKER_USERS, CHARTER, KNOBS, SECRETS, Broker, DaemonProc

PREFIX = "charter/v1"  # the default topic prefix (the config sets no other)
DAEMON_ID = (
    "soak-box"  # the rig's [daemon] id (benchmarks/soak/rig.py): its topics and what commands are signed for
)
FINAL = {"COMPLETED", "ROLLED_BACK", "REJECTED"}
VALUES = ("4", "16", "32", "64", "128")  # 64 halves the knob target's token rate: a regression


def mqtt_topic(bus_topic: str) -> str:
    return PREFIX + daemon_topic(DAEMON_ID, bus_topic).removeprefix("charter/v1")


def knob_value(workdir: Path, target: str) -> str:
    return json.loads((workdir / f"{target}.json").read_text())["batch"]


@dataclass
class DriverStats:
    proposed: dict[str, int] = field(default_factory=lambda: {"cli": 0, "mqtt": 0})
    commands: dict[str, int] = field(default_factory=dict)  # "approve/cli" -> n
    mqtt_unanswered: int = 0
    junk_sent: dict[str, int] = field(default_factory=dict)
    junk_refused: int = 0
    junk_unanswered: int = 0
    junk_accepted: list[str] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Driver:
    def __init__(
        self, workdir: Path, daemon: DaemonProc, broker: Broker, rng: random.Random, violation: Any
    ) -> None:
        self.workdir = workdir
        self.daemon = daemon
        self.broker = broker
        self.rng = rng
        self.violation = violation  # callback(kind, text)
        self.stats = DriverStats()
        self.ops = CommandSigner("ops", SECRETS["ops"].encode())
        self.team = CommandSigner("team", SECRETS["team"].encode())
        self.current: int | None = None
        self._last_ok_envelope: tuple[str, bytes] | None = None

    # --- the two paths ------------------------------------------------------------------------
    async def cli(self, *args: str, timeout_s: float = 90.0) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            str(CHARTER),
            "--config",
            str(self.daemon.config),
            *args,
            env=self.daemon.environment(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return -9, "", f"timed out after {timeout_s:.0f}s"
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    async def mqtt(
        self, payload: bytes, action: str, request_id: str | None, user: str = "ops", timeout_s: float = 20.0
    ) -> CommandResult | None:
        """Publish on the command topic and wait for the answer naming `request_id` (None: no answer)."""
        if not self.broker.up:
            return None
        try:
            async with asyncio.timeout(timeout_s):
                async with aiomqtt.Client(
                    "127.0.0.1", self.broker.port, username=user, password=BROKER_USERS[user]
                ) as client:
                    await client.subscribe(mqtt_topic(RESULT_TOPIC), qos=1)
                    await client.publish(mqtt_topic(command_topic(action)), payload, qos=1)  # type: ignore[arg-type]
                    async for message in client.messages:
                        try:
                            result = CommandResult.model_validate_json(message.payload)
                        except ValueError:
                            continue
                        if result.request_id == request_id:  # garbage has none: matched only by none
                            return result
        except (TimeoutError, aiomqtt.MqttError):
            return None
        return None

    def _count(self, key: str) -> None:
        self.stats.commands[key] = self.stats.commands.get(key, 0) + 1

    # --- rollouts -------------------------------------------------------------------------------
    def _state(self, rollout_id: int) -> dict[str, Any] | None:
        import sqlite3

        try:
            with sqlite3.connect(self.daemon.db, timeout=10) as conn:
                row = conn.execute(
                    "SELECT state, changes, previous_config, targets FROM rollout WHERE id = ?", (rollout_id,)
                ).fetchone()
        except sqlite3.Error:
            return None
        if row is None:
            return None
        return {
            "state": row[0],
            "changes": json.loads(row[1]),
            "previous": json.loads(row[2]),
            "targets": json.loads(row[3]),
        }

    def _max_id(self) -> int:
        import sqlite3

        try:
            with sqlite3.connect(self.daemon.db, timeout=10) as conn:
                return conn.execute("SELECT COALESCE(MAX(id), 0) FROM rollout").fetchone()[0]
        except sqlite3.Error:
            return 0

    async def propose(self, targets: list[str], value: str) -> tuple[int | None, str]:
        via = "mqtt" if self.rng.random() < 0.5 and self.broker.up and self.daemon.up else "cli"
        before = self._max_id()
        if via == "mqtt":
            rid = f"p-{uuid.uuid4().hex[:12]}"
            signer = self.team if self.rng.random() < 0.5 else self.ops  # team may propose, nothing else
            cmd = RolloutCommand(
                action="propose",
                targets=targets,
                changes=[{"param": "batch", "value": value}],
                reason="soak",
                request_id=rid,
            )
            result = await self.mqtt(signer.encode(cmd, DAEMON_ID), "propose", rid, user=signer.identity)
            if result is not None and result.ok and result.rollout:
                self.stats.proposed["mqtt"] += 1
                return int(result.rollout["id"]), "mqtt"
            if result is not None and not result.ok:
                self.stats.errors.append(f"mqtt propose refused: {result.error}")
            else:
                self.stats.mqtt_unanswered += 1
                # Maybe it landed and the answer was lost (broker or daemon stopped in between).
                await asyncio.sleep(3)
                if self._max_id() > before:
                    self.stats.proposed["mqtt"] += 1
                    return self._max_id(), "mqtt"
        args = ["rollouts", "propose", "--json", "--reason", "soak"]
        for t in targets:
            args += ["--target", t]
        args += ["--set", f"batch={value}"]
        code, out, err = await self.cli(*args)
        if code != 0:
            self.stats.errors.append(f"cli propose failed ({code}): {err.strip()[-300:]}")
            return None, "cli"
        self.stats.proposed["cli"] += 1
        return int(json.loads(out)["id"]), "cli"

    async def act(self, action: str, rollout_id: int) -> None:
        """approve/reject/resume/rollback through MQTT or the CLI; the CLI when MQTT got no answer."""
        if self.rng.random() < 0.5 and self.broker.up and self.daemon.up:
            rid = f"{action[:3]}-{uuid.uuid4().hex[:12]}"
            payload = self.ops.encode(RolloutCommand(action=action, id=rollout_id, request_id=rid), DAEMON_ID)  # type: ignore[arg-type]
            result = await self.mqtt(payload, action, rid)
            if result is not None:
                self._count(f"{action}/mqtt")
                if result.ok:
                    self._last_ok_envelope = (action, payload)
                return  # refused (e.g. already final) is an answer too
            self.stats.mqtt_unanswered += 1
            await asyncio.sleep(2)
        code, _, err = await self.cli("rollouts", action, str(rollout_id), "-m", "soak")
        self._count(f"{action}/cli")
        if code != 0:  # e.g. a second approval after a lost MQTT answer: refused, and noted in the report
            self.stats.errors.append(f"cli {action} {rollout_id} refused ({code}): {err.strip()[-300:]}")

    async def wait_for(self, rollout_id: int, states: set[str], timeout_s: float) -> str | None:
        deadline = time.monotonic() + timeout_s
        state = None
        while time.monotonic() < deadline:
            row = self._state(rollout_id)
            state = row["state"] if row else None
            if state in states:
                return state
            await asyncio.sleep(0.5)
        return state

    async def one_rollout(self) -> None:
        targets = [self.rng.choice(KNOBS)] if self.rng.random() < 0.7 else list(KNOBS)
        current = {t: knob_value(self.workdir, t) for t in targets}
        value = self.rng.choice([v for v in VALUES if v not in current.values()])
        rollout_id, via = await self.propose(targets, value)
        if rollout_id is None:
            return
        self.current = rollout_id
        plan = self.rng.choices(["reject", "run", "rollback-mid", "rollback-after"], [1, 5, 2, 2])[0]
        outcome: dict[str, Any] = {
            "id": rollout_id,
            "targets": targets,
            "value": value,
            "via": via,
            "plan": plan,
        }
        if plan == "reject":
            await self.act("reject", rollout_id)
        else:
            await self.act("approve", rollout_id)
            if plan == "rollback-mid":
                await self.wait_for(rollout_id, {"CANARY", "VALIDATING", "ROLLING_OUT"} | FINAL, 60)
                await self.act("rollback", rollout_id)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            state = await self.wait_for(rollout_id, FINAL | {"PAUSED"}, 30)
            if state == "PAUSED":
                await self.act(self.rng.choice(["resume", "rollback"]), rollout_id)
                await asyncio.sleep(2)
            elif state == "PENDING_APPROVAL":  # the approval was lost with a fault: a person tries again
                await self.act("approve", rollout_id)
            elif state in FINAL:
                if state == "COMPLETED" and plan == "rollback-after":
                    await self.act("rollback", rollout_id)
                    plan = "rolled-back-after"
                    continue
                break
        row = self._state(rollout_id)
        outcome["final"] = row["state"] if row else None
        self.check_knobs(rollout_id, row)
        self.stats.outcomes.append(outcome)
        self.current = None

    def check_knobs(self, rollout_id: int, row: dict[str, Any] | None) -> None:
        """The knob files' real values against what the final record says, right when it is final."""
        if row is None or row["state"] not in ("COMPLETED", "ROLLED_BACK"):
            return
        for t in row["targets"]:
            real = knob_value(self.workdir, t)
            if row["state"] == "COMPLETED":
                want = str(row["changes"][0]["value"])
            elif t in row["previous"]:
                want = str(row["previous"][t]["values"]["batch"])
            else:
                continue  # never touched: nothing recorded, nothing to restore
            if real != want:
                self.violation(
                    "knob_mismatch",
                    f"rollout {rollout_id} {row['state']}: {t} runs batch={real}, the record says {want}",
                )

    # --- junk ---------------------------------------------------------------------------------
    async def junk(self) -> None:
        """One refused-by-contract command; an `ok` answer to any of them is a violation."""
        target_id = self.current or max(self._max_id(), 1)
        kind = self.rng.choice(
            ["unsigned", "forged", "stranger", "team-approve", "garbage", "oversized", "replay", "actor"]
        )
        rid = f"junk-{uuid.uuid4().hex[:10]}"
        approve = RolloutCommand(action="approve", id=target_id, request_id=rid)
        action = "approve"
        if kind == "unsigned":
            payload = json.dumps(approve.model_dump(mode="json", exclude_none=True)).encode()
        elif kind == "forged":
            payload = CommandSigner("ops", b"not-the-ops-secret-at-all-000000").encode(approve, DAEMON_ID)
        elif kind == "stranger":
            payload = CommandSigner("mallory", b"mallory-secret-0123456789abcdef").encode(approve, DAEMON_ID)
        elif kind == "team-approve":
            payload = self.team.encode(approve, DAEMON_ID)
        elif kind == "garbage":
            payload, rid = bytes(self.rng.getrandbits(8) for _ in range(200)), None
        elif kind == "oversized":
            payload, rid = b'{"identity":"ops","pad":"' + b"x" * 20_000 + b'"}', None
        elif kind == "actor":
            body = self.ops.envelope(approve, DAEMON_ID)
            body["command"]["actor"] = "mallory"
            payload = json.dumps(body).encode()
        else:  # replay of a command that was carried out
            if self._last_ok_envelope is None:
                return
            action, payload = self._last_ok_envelope
            rid = json.loads(payload)["command"].get("request_id")
        self.stats.junk_sent[kind] = self.stats.junk_sent.get(kind, 0) + 1
        user = "team" if kind == "team-approve" else "ops"
        result = await self.mqtt(payload, action, rid, user=user, timeout_s=10)
        if result is None:
            self.stats.junk_unanswered += 1
        elif result.ok:
            self.stats.junk_accepted.append(kind)
            self.violation(
                "junk_accepted", f"{kind} command was carried out: {result.model_dump_json()[:300]}"
            )
        else:
            self.stats.junk_refused += 1
