"""Daemons sharing the machine's PostgreSQL: the rows they share say whose they are, and a target name one live
daemon polls is refused to another (their samples would mix under one name)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from daemon.config import load_config
from daemon.errors import UserError
from daemon.models import Instance, Rollout
from daemon.rollouts import commands as cmd
from daemon.rollouts.repo import RolloutRepo
from daemon.service import DaemonService, claimed_by
from tests.daemon.helpers import replaying
from tests.rollouts.helpers import knob_commands

pytestmark = pytest.mark.postgres


def test_a_name_a_live_daemon_gives_another_server_is_refused_the_same_server_is_a_standby_pair() -> None:
    row = Instance(name="vllm", url="http://x:1", daemon="box-a", last_seen=1000.0)
    other_server = Instance(name="vllm", url="http://y:1", daemon="box-b")
    claimed_by(row, Instance(name="vllm", url="http://y:1", daemon="box-a"), 1001.0)  # its own
    claimed_by(None, other_server, 1001.0)  # nobody's
    claimed_by(Instance(name="vllm", url="http://x:1"), other_server, 1001.0)  # a row from before fleets
    claimed_by(
        row, Instance(name="vllm", url="http://x:1", daemon="box-b"), 1001.0
    )  # one server, two daemons
    with pytest.raises(
        UserError, match="'vllm' is http://x:1 for daemon 'box-a'.*rename this daemon's target"
    ):
        claimed_by(row, other_server, 1030.0)
    claimed_by(row, other_server, 1000.0 + 3600)  # box-a silent for an hour: let go


async def test_two_daemons_on_one_postgresql_keep_their_targets_apart(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with replaying() as vllm, replaying() as other_vllm:

        def config(daemon: str, target: str, url: str = vllm.url) -> Path:
            path = tmp_path / f"{daemon}-{target}.toml"
            path.write_text(
                f'[daemon]\nid = "{daemon}"\nmetrics_port = 0\npoll_interval_s = 0.3\n'
                f'[storage]\nurl = "{postgres_url}"\n[[targets]]\nname = "{target}"\nurl = "{url}"\n'
            )
            monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / f"{daemon}-state"))  # each box its own
            return path

        first = DaemonService(load_config(str(config("box-a", "vllm"))))
        stop = asyncio.Event()
        task = asyncio.create_task(first.run(stop))
        try:
            await asyncio.wait_for(first.ready.wait(), 30)
            assert first.store is not None
            store = first.store.store
            for _ in range(100):
                [row] = store.all(Instance, Instance.name == "vllm")
                if row.last_seen is not None:
                    break
                await asyncio.sleep(0.1)
            assert row.daemon == "box-a" and row.last_seen is not None

            with pytest.raises(UserError, match="'vllm' is http.* for daemon 'box-a'"):
                await DaemonService(load_config(str(config("box-b", "vllm", other_vllm.url)))).run(
                    asyncio.Event()
                )

            second = DaemonService(load_config(str(config("box-b", "vllm-b"))))
            stop_b = asyncio.Event()
            task_b = asyncio.create_task(second.run(stop_b))
            await asyncio.wait_for(second.ready.wait(), 30)
            stop_b.set()
            await asyncio.wait_for(task_b, 30)
            assert {(i.name, i.daemon) for i in store.all(Instance)} == {
                ("vllm", "box-a"),
                ("vllm-b", "box-b"),
            }

            # A rollout is recorded as the proposing daemon's.
            knob = tmp_path / "knob.json"
            knob.write_text('{"batch": "8"}')
            loaded = load_config(str(config("box-b", "vllm-b")))
            with_knob = loaded.config.model_copy(
                update={
                    "rollouts": loaded.config.rollouts.model_copy(
                        update={"commands": {"vllm-b": knob_commands(knob)}}
                    )
                }
            )
            row = cmd.propose(
                RolloutRepo(store),
                with_knob,
                targets=["vllm-b"],
                changes=[{"param": "batch", "value": "16"}],
                actor="x",
            )
            assert store.all(Rollout, Rollout.id == row.id)[0].daemon == "box-b"
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def test_two_daemons_registering_one_target_at_once_both_start(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two daemons of a fleet started together on one database both read no row for a target and both
    insert it: the second insert failed the daemon's start with a UniqueViolation traceback (seen in a
    full run of tests/rollouts/test_fleet_lease.py). The loser reads again and updates. Reproduced here by
    letting the other daemon's insert land between this one's read and write."""
    from sqlalchemy.exc import IntegrityError

    from daemon.store import Store

    real_merge = Store.merge
    raced: list[str] = []

    def merge_after_the_other_daemon(self: Store, row):  # type: ignore[no-untyped-def]
        if isinstance(row, Instance) and not raced:
            raced.append(row.name)
            real_merge(self, Instance(name=row.name, url=row.url, daemon="box-a"))  # box-a's insert wins
            raise IntegrityError("INSERT INTO instance ...", {}, Exception("duplicate key value"))
        return real_merge(self, row)

    monkeypatch.setattr(Store, "merge", merge_after_the_other_daemon)
    with replaying() as vllm:
        path = tmp_path / "box-b.toml"
        path.write_text(
            f'[daemon]\nid = "box-b"\nmetrics_port = 0\n[storage]\nurl = "{postgres_url}"\n'
            f'[[targets]]\nname = "vllm"\nurl = "{vllm.url}"\n'
        )
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "box-b-state"))
        service = DaemonService(load_config(str(path)))
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        try:
            await asyncio.wait_for(service.ready.wait(), 30)  # started: the race was read again, not fatal
            assert raced == ["vllm"] and service.store is not None
            assert [(i.name, i.daemon) for i in service.store.store.all(Instance)] == [("vllm", "box-b")]
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
