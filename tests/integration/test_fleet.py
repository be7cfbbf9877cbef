"""Two daemons, one broker, one TUI (issue 17's first "Done when").

A private Mosquitto with a password file and the shipped ACL plus one block per daemon (each daemon's broker
user may write only under its own id). Two real `charter-tui daemon` processes on loopback, `box-1` and
`box-2`, each polling its own replayed vLLM (a real capture, tests/daemon/fixtures, served over HTTP);
each also has a `knob` target whose setting the generic command actuator changes (tests/rollouts/knob.py).
One TUI (Pilot, the real composition root `remote_app`, signing as `ops`) shows both daemons, approves the
rollout waiting on box-2, and box-2 carries it out; a TUI that connects afterwards has the current state
from retained messages within a second.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from charter_tui.compose import remote_app
from charter_tui.mqtt_source import MqttSource
from daemon.config import load_config
from daemon.models import AuditEvent, Instance
from daemon.mqtt_bridge import encode
from daemon.paths import repo_data_dir
from daemon.store import Store
from testkit.mosquitto import start_mosquitto
from tests.daemon.helpers import daemon_env, replaying
from tests.rollouts.helpers import Traffic, knob_commands_toml, knob_value
from tests.tui.helpers import settle, table_rows, wait_until

pytestmark = pytest.mark.mqtt

REPO = Path(__file__).resolve().parents[2]
PASSWORDS = {"box-1": "box-1-pw", "box-2": "box-2-pw", "ops": "ops-pw"}
OPS_SECRET = "ops-signing-secret-0123456789abcdef"


def fleet_acl() -> str:
    """The shipped ACL with its commented per-daemon block filled in for the two boxes."""
    shipped = (repo_data_dir() / "mosquitto" / "charter.acl").read_text()
    blocks = "".join(f"\nuser {d}\ntopic readwrite charter/v1/{d}/#\n" for d in ("box-1", "box-2"))
    return shipped + blocks


def private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def daemon_config(
    tmp: Path, daemon: str, port: int, targets: dict[str, str], knob: str, knob_state: Path
) -> Path:
    key = private(tmp / "ops.key", OPS_SECRET)
    lines = [
        "[daemon]",
        f'id = "{daemon}"',
        "metrics_port = 0",
        "poll_interval_s = 0.5",
        "[storage]",
        f'url = "sqlite:///{tmp / f"{daemon}.db"}"',
        "[mqtt]",
        "enabled = true",
        'host = "127.0.0.1"',
        f"port = {port}",
        f'username = "{daemon}"',
        f'password_file = "{private(tmp / f"{daemon}.pw", PASSWORDS[daemon])}"',
        "[[auth.identities]]",
        'name = "ops"',
        f'secret_file = "{key}"',
        'actions = ["propose", "approve", "reject", "pause", "resume", "rollback"]',
    ]
    for name, url in targets.items():
        lines += ["[[targets]]", f'name = "{name}"', f'url = "{url}"']
    lines += [
        "[rollouts]",
        "warmup_s = 0.0",
        "canary_window_s = 2.0",
        "baseline_window_s = 60.0",
        "min_samples = 3",
        'default_signals = ["ttft_p95_s"]',
        "step_interval_s = 0.2",
        knob_commands_toml(knob, knob_state),
    ]
    path = tmp / f"{daemon}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def tui_config(tmp: Path, port: int) -> Path:
    path = tmp / "tui.toml"
    path.write_text(
        "[mqtt]\n"
        f"port = {port}\n"
        f'password_file = "{private(tmp / "ops.pw", PASSWORDS["ops"])}"\n'
        "[auth.client]\n"
        'identity = "ops"\n'
        f'secret_file = "{tmp / "ops.key"}"\n'
    )
    return path


def cli(config: Path, *args: str, tmp: Path, daemon: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "charter_tui", "--config", str(config), *args],
        cwd=REPO,
        env=own_env(tmp, daemon),
        capture_output=True,
        text=True,
        timeout=60,
    )


def own_env(tmp: Path, daemon: str) -> dict[str, str]:
    return daemon_env(tmp / f"{daemon}-xdg")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[dict[str, object]]:
    """The broker and two daemon processes; each daemon has a replayed vLLM and a knob (knob-1, knob-2)."""
    with (
        start_mosquitto(users=PASSWORDS, acl=fleet_acl(), keep_dir=tmp_path / "broker") as broker,
        replaying() as vllm_1,
        replaying() as vllm_2,
        replaying() as knob_metrics,
    ):
        knobs = {}
        configs = {}
        for n, (daemon, vllm) in enumerate((("box-1", vllm_1), ("box-2", vllm_2)), start=1):
            knobs[daemon] = tmp_path / f"knob-{n}.json"
            knobs[daemon].write_text(json.dumps({"batch": "8"}))
            targets = {f"vllm-{n}": vllm.url, f"knob-{n}": knob_metrics.url}
            configs[daemon] = daemon_config(
                tmp_path, daemon, broker.port, targets, f"knob-{n}", knobs[daemon]
            )
        procs = {}
        try:
            for daemon, config in configs.items():
                log = open(tmp_path / f"{daemon}.log", "wb")  # noqa: SIM115 - closed with the process
                procs[daemon] = subprocess.Popen(
                    [sys.executable, "-m", "charter_tui", "--config", str(config), "daemon"],
                    cwd=REPO,
                    env=own_env(tmp_path, daemon),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            yield {"broker": broker, "configs": configs, "procs": procs, "knobs": knobs, "tmp": tmp_path}
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()


def logs(tmp: Path) -> str:
    return "\n".join(
        f"--- {d}.log\n{(tmp / f'{d}.log').read_text(errors='replace')[-3000:]}" for d in ("box-1", "box-2")
    )


async def test_one_tui_shows_two_daemons_approves_on_the_second_and_a_late_tui_sees_it_at_once(
    fleet: dict[str, object],
) -> None:
    tmp: Path = fleet["tmp"]  # type: ignore[assignment]
    broker = fleet["broker"]
    configs: dict[str, Path] = fleet["configs"]  # type: ignore[assignment]
    knob_state: Path = fleet["knobs"]["box-2"]  # type: ignore[index]
    port: int = broker.port  # type: ignore[attr-defined]
    loaded = load_config(str(tui_config(tmp, port)))

    # A rollout waits for approval on box-2 (proposed with the CLI on that box, as its operator would).
    proposed = cli(
        configs["box-2"],
        "rollouts",
        "propose",
        "--target",
        "knob-2",
        "--set",
        "batch=16",
        "--json",
        tmp=tmp,
        daemon="box-2",
    )
    assert proposed.returncode == 0, proposed.stderr
    rollout_id = json.loads(proposed.stdout)["id"]

    store = Store(f"sqlite:///{tmp / 'box-2.db'}")  # box-2's knob samples, as traffic would make them
    app = remote_app(loaded, f"mqtt://ops@127.0.0.1:{port}")
    try:
        async with Traffic(store, ["knob-2"], lambda _t: 0.1), app.run_test(size=(160, 48)) as pilot:
            both = ["box-1/", "box-1/knob-1", "box-1/vllm-1", "box-2/", "box-2/knob-2", "box-2/vllm-2"]
            try:
                await wait_until(
                    app,
                    pilot,
                    lambda: (
                        all(k in table_rows(app, "#instances") for k in both)
                        and table_rows(app, "#instances")["box-2/vllm-2"][1] == "● UP"
                    ),
                    timeout=60,
                    what="both daemons' targets, grouped",
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{logs(tmp)}") from None
            rows = table_rows(app, "#instances")
            assert list(rows)[: len(both)] == both, list(rows)  # grouped: each daemon, then its targets
            assert rows["box-1/"][1] == "● online" and rows["box-2/"][2].startswith("2/2 up")
            assert "1 to approve" in rows["box-2/"][2]

            # Show box-2 (its summary row, enter), then approve its rollout: a command signed for box-2.
            table = app.screen.query_one("#instances")
            table.move_cursor(row=list(rows).index("box-2/"))  # type: ignore[attr-defined]
            await pilot.press("enter")
            await settle(app, pilot)
            assert app.fleet.current_id == "box-2"
            await pilot.press("5")
            await wait_until(
                app, pilot, lambda: str(rollout_id) in table_rows(app, "#queue"), what="box-2's rollout"
            )
            await pilot.press("a")
            await settle(app, pilot)
            await pilot.press("y")
            try:
                await wait_until(
                    app,
                    pilot,
                    lambda: app.fleet.state_of("box-2").rollouts[rollout_id].state == "COMPLETED",
                    timeout=60,
                    what="box-2 to carry the rollout out",
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{logs(tmp)}") from None
            assert knob_value(knob_state) == "16"
            assert app.fleet.state_of("box-1").rollouts == {}  # nothing of it on box-1
    finally:
        store.close()

    # The broker ACL: box-1's broker user cannot speak for box-2.
    async with aiomqtt.Client("127.0.0.1", port, username="ops", password=PASSWORDS["ops"]) as watcher:
        await watcher.subscribe("charter/v1/box-2/instance/forged")
        async with aiomqtt.Client("127.0.0.1", port, username="box-1", password=PASSWORDS["box-1"]) as box_1:
            await box_1.publish(
                "charter/v1/box-2/instance/forged", encode(Instance(name="forged", url="http://x:1")), qos=1
            )
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                async for _ in watcher.messages:
                    break

    # A TUI that connects now: everything current at once, from the broker's retained messages.
    late = remote_app(loaded, f"mqtt://ops@127.0.0.1:{port}")
    source: MqttSource = late.source  # type: ignore[assignment]
    async with late.run_test(size=(160, 48)) as pilot:
        await asyncio.wait_for(source.connected.wait(), 10)
        await wait_until(
            late,
            pilot,
            lambda: (
                all(k in table_rows(late, "#instances") for k in both)
                and late.fleet.state_of("box-2").rollouts[rollout_id].state == "COMPLETED"
            ),
            timeout=10,
            what="the retained state",
        )
        assert source.connected_at is not None
        took = time.monotonic() - source.connected_at
        print(
            f"late TUI: both daemons' targets and the completed rollout on screen {took:.2f} s after connecting"
        )
        assert took < 1.0, f"the retained state took {took:.2f} s"


def audit(db: Path, rollout_id: int) -> list[tuple[float, str, str | None, str]]:
    store = Store(f"sqlite:///{db}")
    try:
        return [
            (e.ts, e.action, e.to_state, e.actor)
            for e in store.all(
                AuditEvent, AuditEvent.entity == "rollout", AuditEvent.entity_id == str(rollout_id)
            )
        ]
    finally:
        store.close()


async def test_a_fleet_rollout_canaries_on_one_daemon_then_the_other_and_a_regression_rolls_back_both(
    fleet: dict[str, object],
) -> None:
    """`charter-tui fleet rollout`: box-1's knob-1 first (the canary stage), then box-2's knob-2, where the change
    makes latency 10x worse: box-2 rolls its stage back by itself, and the coordinator rolls back box-1's
    completed stage; both knobs end where they started, and each daemon's store tells its part."""
    tmp: Path = fleet["tmp"]  # type: ignore[assignment]
    knobs: dict[str, Path] = fleet["knobs"]  # type: ignore[assignment]
    port: int = fleet["broker"].port  # type: ignore[attr-defined]
    stores = {d: Store(f"sqlite:///{tmp / f'{d}.db'}") for d in ("box-1", "box-2")}

    def slower_at_16(_target: str) -> float:
        return 1.0 if knob_value(knobs["box-2"]) == "16" else 0.1

    try:
        async with (
            Traffic(stores["box-1"], ["knob-1"], lambda _t: 0.1),
            Traffic(stores["box-2"], ["knob-2"], slower_at_16),
        ):
            await asyncio.sleep(2.0)  # a baseline before the change
            run = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "charter_tui",
                    "--config",
                    str(tui_config(tmp, port)),
                    "fleet",
                    "rollout",
                    "--connect",
                    f"mqtt://ops@127.0.0.1:{port}",
                    "--stage",
                    "box-1:knob-1",
                    "--stage",
                    "box-2:knob-2",
                    "--set",
                    "batch=16",
                    "--reason",
                    "fleet test",
                    "--stage-timeout",
                    "90",
                    "--json",
                ],
                cwd=REPO,
                env=own_env(tmp, "tui"),
                capture_output=True,
                text=True,
                timeout=300,
            )
    finally:
        for store in stores.values():
            store.close()
    assert run.returncode == 1, f"{run.stdout}\n{run.stderr}\n{logs(tmp)}"
    outcome = json.loads(run.stdout)
    print(run.stderr)
    first, second = outcome["stages"]
    assert (first["daemon"], second["daemon"]) == ("box-1", "box-2")
    assert second["state"] == "ROLLED_BACK", outcome  # box-2 rolled its own stage back (the regression)
    assert first["state"] == "ROLLED_BACK" and outcome["rolled_back"] == ["box-1"], outcome
    assert knob_value(knobs["box-1"]) == "8" and knob_value(knobs["box-2"]) == "8"

    # Each daemon's store: box-1 completed its stage before box-2's was even proposed, then was rolled back.
    box_1 = audit(tmp / "box-1.db", first["rollout_id"])
    box_2 = audit(tmp / "box-2.db", second["rollout_id"])
    completed = next(ts for ts, _a, to, _who in box_1 if to == "COMPLETED")
    proposed = next(ts for ts, action, _to, _who in box_2 if action == "propose")
    assert completed < proposed, (box_1, box_2)
    assert [to for _ts, _a, to, _who in box_1 if to][-2:] == ["ROLLING_BACK", "ROLLED_BACK"]
    assert {
        who for _ts, action, _to, who in box_1 + box_2 if action in ("propose", "approve", "rollback")
    } == {"ops"}  # the verified signer, on both boxes
    assert "FAILED" in [to for _ts, _a, to, _who in box_2]
