"""The daemon's HTTP API (issue 16 item 4): a real daemon serving on a free loopback port, real HTTP.

Commands carry the same signed envelope as MQTT: a valid one from a permitted identity is carried out; a
bad signature, a replayed nonce, an identity not permitted the action, and an unsigned body are refused
with 403 and audited. The rollouts are real (the knob command actuator); nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from daemon.auth import CommandSigner
from daemon.config import load_config
from daemon.contract import RolloutCommand
from daemon.models import AuditEvent
from daemon.service import DaemonService
from testkit.ports import free_port
from tests.rollouts.helpers import KNOB

OPS = b"ops-secret-0123456789abcdef0123"
DEV = b"dev-secret-0123456789abcdef0123"


def secret_file(tmp_path: Path, name: str, value: bytes) -> Path:
    path = tmp_path / f"{name}.secret"
    path.write_bytes(value)
    path.chmod(0o600)
    return path


@pytest.fixture
async def api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, DaemonService, Path]]:
    state = tmp_path / "knob.json"
    state.write_text('{"batch": "8"}')
    port = free_port()
    config = tmp_path / "c.toml"
    config.write_text(
        f'[daemon]\nid = "gpu-box-7"\nmetrics_port = 0\n[http]\nport = {port}\n'
        f'[[auth.identities]]\nname = "ops"\nsecret_file = "{secret_file(tmp_path, "ops", OPS)}"\n'
        'actions = ["propose", "approve", "reject", "pause", "resume", "rollback"]\n'
        f'[[auth.identities]]\nname = "dev"\nsecret_file = "{secret_file(tmp_path, "dev", DEV)}"\n'
        '[[targets]]\nname = "knob"\nurl = "http://127.0.0.1:9"\n'
        f'[rollouts.commands.knob]\napply = ["python3", "{KNOB}", "{state}", "set", "{{param}}", "{{value}}"]\n'
        f'read = ["python3", "{KNOB}", "{state}", "get", "{{param}}"]\n'
        '[rollouts.commands.knob.params.batch]\ntype = "int"\nmin = 1\nmax = 512\n'
    )
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", f"sqlite:///{tmp_path / 'd.db'}")
    service = DaemonService(load_config(config))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.ready.wait(), 30)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(100):  # the server binds in its own loop
            try:
                await client.get(f"{url}/openapi.json")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
    try:
        yield url, service, state
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def refusals(service: DaemonService) -> list[AuditEvent]:
    assert service.store is not None
    return [e for e in service.store.store.all(AuditEvent) if e.action == "refused"]


async def test_a_signed_approval_is_carried_out_and_forgeries_are_refused_and_audited(api) -> None:  # type: ignore[no-untyped-def]
    url, service, _ = api
    ops, dev = CommandSigner("ops", OPS), CommandSigner("dev", DEV)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        me = (await client.get("/v1/daemon")).json()["id"]  # commands are signed for this daemon
        assert me == "gpu-box-7"
        propose = RolloutCommand(
            action="propose", targets=["knob"], changes=[{"param": "batch", "value": "16"}], request_id="p1"
        )
        r = await client.post("/v1/commands/propose", content=ops.encode(propose, me))
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        rollout_id = r.json()["rollout"]["id"]
        rollouts = (await client.get("/v1/rollouts")).json()
        assert [(ro["id"], ro["state"]) for ro in rollouts] == [(rollout_id, "PENDING_APPROVAL")]

        approve = RolloutCommand(action="approve", id=rollout_id, request_id="a1")
        # dev may only propose: refused, with the reason, before anything changes.
        r = await client.post("/v1/commands/approve", content=dev.encode(approve, me))
        assert r.status_code == 403 and "'dev' may not approve" in r.json()["refused"], r.text
        # A bad signature: ops's envelope, one byte of its signature changed.
        forged = ops.envelope(approve, me)
        forged["sig"] = ("0" if forged["sig"][0] != "0" else "1") + forged["sig"][1:]
        r = await client.post("/v1/commands/approve", content=json.dumps(forged))
        assert r.status_code == 403 and "signature" in r.json()["refused"]
        # Unsigned: a bare command.
        r = await client.post("/v1/commands/approve", content=approve.model_dump_json())
        assert r.status_code == 403 and "unsigned or malformed" in r.json()["refused"]
        assert (await client.get(f"/v1/rollouts/{rollout_id}")).json()["state"] == "PENDING_APPROVAL"

        # Signed by ops, but for another daemon of the fleet (whose rollout of this id is another one).
        r = await client.post("/v1/commands/approve", content=ops.encode(approve, "another-box"))
        assert r.status_code == 403 and "signed for another daemon" in r.json()["refused"], r.text
        assert (await client.get(f"/v1/rollouts/{rollout_id}")).json()["state"] == "PENDING_APPROVAL"

        # The real thing, then the same bytes again: applied once, the replay refused.
        signed = ops.encode(approve, me)
        r = await client.post("/v1/commands/approve", content=signed)
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        r = await client.post("/v1/commands/approve", content=signed)
        assert r.status_code == 403 and "replayed" in r.json()["refused"], r.text
        state = (await client.get(f"/v1/rollouts/{rollout_id}")).json()["state"]
        assert state not in ("PENDING_APPROVAL", "REJECTED"), state

    audited = refusals(service)
    assert len(audited) == 5, [(e.actor, e.comment) for e in audited]
    assert {e.actor for e in audited} == {"dev", "ops", "unverified"}


async def test_the_reads_an_orchestrator_needs_and_their_contract(api) -> None:  # type: ignore[no-untyped-def]
    url, _, _ = api
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        targets = (await client.get("/v1/targets")).json()
        assert [t["name"] for t in targets] == ["knob"]
        assert (await client.get("/v1/targets/knob/samples")).status_code == 200
        r = await client.get("/v1/targets/nope/samples")
        assert r.status_code == 404 and "no target 'nope'" in r.json()["detail"]
        assert (await client.get("/v1/bottlenecks")).json() == []
        assert (await client.get("/v1/recommendations")).status_code == 200
        assert (await client.get("/v1/rollouts/999")).status_code == 404
        spec = (await client.get("/openapi.json")).json()
        paths = set(spec["paths"])
        assert {"/v1/targets", "/v1/rollouts", "/v1/commands/{action}", "/v1/bottlenecks"} <= paths
        # Hostile input: an oversized body, an unknown action.
        r = await client.post("/v1/commands/approve", content=b"x" * (65 * 1024))
        assert r.status_code == 413
        assert (await client.post("/v1/commands/deploy", content=b"{}")).status_code == 422
