"""Blue-green vLLM relaunch (issue 15 item 3): a change starts the new server beside the old one, validates
it, switches the front, then drains and stops the old one; the clients, who use the target's URL (the
front), never meet a refused connection.

Real processes: the front (daemon/actuators/front_state.py) and tests/rollouts/mini_vllm.py servers, a
small real HTTP server that answers as vLLM does and starts in a second (the real vLLM is
tests/rollouts/test_blue_green_vllm.py). Each test fails if what it names is taken out: the switch before
the old server stops (clients would see refusals), the validation before the switch (a server that
cannot start would take the traffic), the stranger check on the idle port.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from daemon.actuators import front_state, procs
from daemon.actuators.blue_green import BlueGreenVllmActuator, backend_host, ensure_fronts, with_port
from daemon.models import MetricSample
from daemon.config import BlueGreenConfig, Config, DaemonConfig, LaunchConfig, RolloutConfig, TargetConfig
from daemon.rollouts import commands as cmd
from daemon.rollouts.manager import RolloutManager
from daemon.models import Rollout
from daemon.rollouts.model import RolloutState as S
from daemon.rollouts.repo import stage_of
from daemon.store import Store
from testkit.ports import free_port, stop_listeners
from tests.rollouts.helpers import drive, trail

MINI = str(Path(__file__).with_name("mini_vllm.py"))
FINAL = {S.COMPLETED, S.ROLLED_BACK, S.PAUSED, S.REJECTED, S.FAILED}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the relaunch actuator runs a root test as root")


# --- the argv and config rules ---------------------------------------------------------------
def test_the_port_flag_is_replaced_in_every_spelling() -> None:
    assert with_port(["vllm", "serve", "m", "--port", "8000", "--max-num-seqs", "8"], 8101) == [
        "vllm",
        "serve",
        "m",
        "--max-num-seqs",
        "8",
        "--port",
        "8101",
    ]
    assert with_port(["vllm", "serve", "--port=8000"], 8102) == ["vllm", "serve", "--port", "8102"]
    assert with_port(["vllm", "serve"], 8101)[-2:] == ["--port", "8101"]


def test_the_front_reaches_the_server_where_it_listens() -> None:
    assert backend_host(["vllm", "serve", "--host", "0.0.0.0"]) == "127.0.0.1"
    assert backend_host(["vllm", "serve", "--host=10.0.0.5"]) == "10.0.0.5"
    assert backend_host(["vllm", "serve"]) == "127.0.0.1"


def launch(**blue_green: object) -> LaunchConfig:
    return LaunchConfig(argv=["vllm", "serve", "m"], blue_green=BlueGreenConfig(**blue_green))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "url", "reason"),
    [
        ({"ports": [8101, 8101]}, "http://127.0.0.1:8000", "two different ports"),
        ({"ports": [8000, 8101]}, "http://127.0.0.1:8000", "include the url's port 8000"),
        ({"ports": [8101]}, "http://127.0.0.1:8000", "at least 2 items"),
        (
            {"ports": [8101, 8102], "env": [{"CUDA_VISIBLE_DEVICES": "0"}]},
            "http://127.0.0.1:8000",
            "one table per port",
        ),
    ],
)
def test_a_careless_blue_green_config_is_refused_with_its_reason(
    settings: dict[str, object], url: str, reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        TargetConfig(name="t", url=url, engine="vllm", launch=launch(**settings))


def test_blue_green_cannot_be_a_systemd_unit() -> None:
    with pytest.raises(ValidationError, match="cannot be used with systemd_unit"):
        LaunchConfig(argv=["vllm"], systemd_unit="vllm.service", blue_green=BlueGreenConfig(ports=[1, 2]))


# --- real processes ------------------------------------------------------------------------------
@pytest.fixture
def ports() -> Iterator[tuple[int, int, int]]:
    """The front's port (the target URL's) and the two server ports."""
    chosen = (free_port(), free_port(), free_port())
    yield chosen
    stop_listeners(*chosen, grace_s=5)


def mini_argv(port: int) -> list[str]:
    return [sys.executable, MINI, "--port", str(port), "--served-model-name", "mini", "--max-num-seqs", "8"]


def start_mini(port: int, **env: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        mini_argv(port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, **env},
    )
    deadline = time.monotonic() + 30
    while procs.server_pid(port) != process.pid:
        assert process.poll() is None and time.monotonic() < deadline, f"mini on {port} did not start"
        time.sleep(0.05)
    return process


def whoami(url: str) -> int:
    return int(httpx.get(f"{url}/whoami", timeout=5).text)


def front_argv(front: int, state: Path, status: Path) -> list[str]:
    return [
        sys.executable,
        "-I",
        "-m",
        front_state.MODULE,
        "--listen",
        f"127.0.0.1:{front}",
        "--state",
        str(state),
        "--status",
        str(status),
    ]


def test_the_front_sends_each_new_request_to_the_backend_of_the_moment(
    ports: tuple[int, int, int], tmp_path: Path
) -> None:
    front, blue, green = ports
    servers = [start_mini(blue), start_mini(green)]
    state, status = tmp_path / "front.json", tmp_path / "status.json"
    front_state.write_json(state, {"backend": blue})
    process = subprocess.Popen(front_argv(front, state, status), start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while procs.server_pid(front) is None:
            assert process.poll() is None and time.monotonic() < deadline, "the front did not listen"
            time.sleep(0.05)
        url = f"http://127.0.0.1:{front}"
        # The server behind the front is what the GPU panel and the platform check see on the URL's port.
        assert procs.server_pid(front) == servers[0].pid
        with httpx.Client(base_url=url, timeout=10) as client:  # one keep-alive connection throughout
            assert int(client.get("/whoami").text) == blue
            slow: list[int] = []
            running = threading.Thread(
                target=lambda: slow.append(int(httpx.get(f"{url}/slow", timeout=10).text))
            )
            running.start()
            time.sleep(0.5)
            assert json.loads(status.read_text())["in_flight"] == {str(blue): 1}
            front_state.write_json(state, {"backend": green})
            deadline = time.monotonic() + 5
            while json.loads(status.read_text()).get("backend") != green:
                assert time.monotonic() < deadline, "the front did not say it switched"
                time.sleep(0.05)
            # The same kept-alive connection's next request goes to the new server: nothing is pinned.
            assert int(client.get("/whoami").text) == green
            assert procs.server_pid(front) == servers[1].pid
            running.join(10)
            assert slow == [blue]  # the request running at the switch finished where it started
            time.sleep(0.3)
            assert json.loads(status.read_text())["in_flight"] == {}  # drained: what the actuator waits for
            # Query strings, bodies and status codes pass through.
            assert client.get("/nothing-here?x=1").status_code == 404
        # A state file that is not one (hostile or half-written by hand) changes nothing.
        state.write_text('{"backend": "8000; rm -rf /"}')
        time.sleep(0.5)
        assert whoami(url) == green
        # A backend that is gone: a 502 that says so, not a hang.
        front_state.write_json(state, {"backend": free_port()})
        time.sleep(0.5)
        r = httpx.get(f"{url}/whoami", timeout=10)
        assert r.status_code == 502 and "did not answer" in r.text
    finally:
        procs.stop(process.pid, 5)
        for server in servers:
            procs.stop(server.pid, 5)


def bg_config(ports: tuple[int, int, int], **rollouts: object) -> Config:
    front, blue, green = ports
    target = TargetConfig(
        name="mini",
        url=f"http://127.0.0.1:{front}",
        engine="vllm",
        timeout_s=5.0,
        launch=LaunchConfig(
            argv=mini_argv(blue),
            allow_root=True,  # the test runs as root and so does its server: said on purpose
            blue_green=BlueGreenConfig(
                ports=[blue, green], env=[{"MINI_SLOT": "blue"}, {"MINI_SLOT": "green"}], drain_s=5.0
            ),
        ),
    )
    settings: dict[str, object] = dict(
        warmup_s=0.0,
        canary_window_s=3.0,  # samples come from the client's requests: a loaded box may send few
        baseline_window_s=60.0,
        min_samples=3,
        default_signals=["ttft_p95_s"],
        step_interval_s=0.05,
        apply_timeout_s=60.0,
        stop_grace_s=5.0,
    )
    settings.update(rollouts)
    return Config(
        daemon=DaemonConfig(metrics_port=0),
        targets=[target],
        rollouts=RolloutConfig(**settings),  # type: ignore[arg-type]
    )


class Client:
    """A client of the target's URL in a thread, a request every 20 ms on a fresh connection: every
    failure is kept (a refused connection is what an outage is to a client). It also stores a latency
    sample per request, as the poller would, so the canary has something to be judged on."""

    def __init__(self, url: str, store: Store) -> None:
        self.url, self.store, self.ok = url, store, 0
        self.failures: list[str] = []
        self.served_by: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                r = httpx.get(f"{self.url}/whoami", timeout=5)
                r.raise_for_status()
                self.ok += 1
                self.served_by.add(int(r.text))
                self.store.add_all(
                    [MetricSample(instance="mini", ts=time.time(), window_s=0.0, ttft_p95_s=0.01)]
                )
            except (httpx.HTTPError, ValueError) as exc:
                self.failures.append(f"{time.strftime('%X')} {type(exc).__name__}: {exc}")

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


async def propose_and_run(manager: RolloutManager, config: Config, value: str) -> Rollout:
    row = cmd.propose(
        manager.repo,
        config,
        targets=["mini"],
        actor="alice",
        changes=[{"param": "max_num_seqs", "value": value}],
    )
    assert row.id is not None
    cmd.apply_command(manager.repo, "approve", row.id, actor="bob")
    return await drive(manager, row.id, FINAL, timeout_s=120)


def running_max_num_seqs(url: str) -> str:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return next(line.split()[1] for line in text.splitlines() if line.startswith("mini_vllm_max_num_seqs"))


async def test_a_change_goes_blue_green_with_no_refused_request_and_rolls_back_the_same_way(
    ports: tuple[int, int, int], sqlite_url: str, tmp_path: Path
) -> None:
    front, blue, green = ports
    config = bg_config(ports)
    first = start_mini(blue)  # the configured server, started by its user on the first port
    state_dir = tmp_path / "rollouts"
    assert await ensure_fronts(config.targets, state_dir) == []  # what the daemon does at start
    url = config.targets[0].url
    assert whoami(url) == blue
    assert cmd.outage_warning(config, ["mini"]) is None  # nothing stops serving: no outage to warn of

    store = Store(sqlite_url)
    manager = RolloutManager(config, store, state_dir=state_dir)
    with Client(url, store) as client:
        await asyncio.sleep(0.5)
        done = await propose_and_run(manager, config, "16")
        assert done.id is not None
        assert done.state == "COMPLETED", (stage_of(done).failure_reason, trail(store, done.id))
        readback = stage_of(done).progress["mini"].readback or {}
        assert readback["blue_green"] == {"from_port": blue, "to_port": green}
        assert readback["downtime_s"] == 0.0 and "drained" in readback["stopped_previous"]
        assert whoami(url) == green and running_max_num_seqs(url) == "16"
        assert first.wait(10) is not None  # the old server was stopped
        new_pid = procs.listener_roots(green)[0]
        assert (procs.cmdline(new_pid) or [])[-2:] == ["--port", str(green)]
        environ = Path(f"/proc/{new_pid}/environ").read_bytes()
        assert b"MINI_SLOT=green" in environ  # the port's own environment (a second GPU's, in life)

        cmd.apply_command(manager.repo, "rollback", done.id, actor="carol", comment="back")
        back = await drive(manager, done.id, {S.ROLLED_BACK, S.FAILED}, timeout_s=120)
        assert back.state == "ROLLED_BACK", trail(store, done.id)
        assert whoami(url) == blue and running_max_num_seqs(url) == "8"
        await asyncio.sleep(0.3)
    assert client.failures == [], client.failures[:5]
    assert client.ok > 20 and client.served_by == {blue, green}
    assert procs.listener_roots(green) == []  # the green server went once the blue one took over again
    store.close()


async def test_a_new_server_that_cannot_start_never_takes_the_traffic(
    ports: tuple[int, int, int], sqlite_url: str, tmp_path: Path
) -> None:
    front, blue, green = ports
    config = bg_config(ports)
    bad = config.targets[0].launch
    assert bad is not None and bad.blue_green is not None
    failing = bad.model_copy(
        update={
            "blue_green": bad.blue_green.model_copy(
                update={"env": [{}, {"MINI_VLLM_FAIL": "no KV space for 2 servers"}]}
            )
        }
    )
    config = config.model_copy(update={"targets": [config.targets[0].model_copy(update={"launch": failing})]})
    first = start_mini(blue)
    assert await ensure_fronts(config.targets, tmp_path / "rollouts") == []
    store = Store(sqlite_url)
    manager = RolloutManager(config, store, state_dir=tmp_path / "rollouts")
    url = config.targets[0].url
    with Client(url, store) as client:
        done = await propose_and_run(manager, config, "16")
        await asyncio.sleep(0.3)
    assert done.id is not None
    assert done.state in ("ROLLED_BACK", "FAILED"), trail(store, done.id)
    reason = stage_of(done).failure_reason or ""
    assert "root cause: ValueError: no KV space for 2 servers" in reason, reason
    assert f"the one on port {blue} kept serving" in reason
    assert first.poll() is None and whoami(url) == blue and running_max_num_seqs(url) == "8"
    assert procs.listener_roots(green) == []
    assert client.failures == [] and client.ok > 5, client.failures[:5]
    store.close()


async def test_a_stranger_on_the_idle_port_is_refused_before_anything_changes(
    ports: tuple[int, int, int], tmp_path: Path
) -> None:
    front, blue, green = ports
    config = bg_config(ports)
    first = start_mini(blue)
    stranger = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(green)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while procs.server_pid(green) != stranger.pid:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        actuator = BlueGreenVllmActuator(config.targets[0], [], state_dir=tmp_path)
        snap = await actuator.snapshot()
        # What a dry run shows: the change runs on the other port.
        assert snap["port"] == blue and snap["argv"][-2:] == ["--port", str(blue)]
        planned = actuator.desired(snap)
        assert planned["port"] == green and planned["argv"][-2:] == ["--port", str(green)]
        with pytest.raises(Exception, match=f"port {green} is held by pid {stranger.pid}"):
            await actuator.converge({**snap, "flags": {"max_num_seqs": 16}})
        assert stranger.poll() is None and first.poll() is None
        assert whoami(config.targets[0].url) == blue
    finally:
        procs.stop(stranger.pid, 5)


async def test_a_stranger_on_the_url_port_is_named_not_replaced(
    ports: tuple[int, int, int], tmp_path: Path
) -> None:
    front, blue, _green = ports
    config = bg_config(ports)
    squatter = start_mini(front)  # the user's old server still on the URL's port
    problems = await ensure_fronts(config.targets, tmp_path)
    assert len(problems) == 1 and f"port {front} (the url's) is held by pid {squatter.pid}" in problems[0]
    assert "not charter-tui's blue-green front" in problems[0] and squatter.poll() is None


async def test_the_daemon_starts_the_front_which_outlives_it(
    ports: tuple[int, int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients need the front before any rollout, and must not lose it when the daemon stops."""
    from daemon.config import load_config
    from daemon.service import DaemonService

    front, blue, green = ports
    start_mini(blue)
    config_path = tmp_path / "c.toml"
    config_path.write_text(
        f'[daemon]\nmetrics_port = 0\n[[targets]]\nname = "mini"\nurl = "http://127.0.0.1:{front}"\n'
        f'engine = "vllm"\n[targets.launch]\nargv = {json.dumps(mini_argv(blue))}\nallow_root = true\n'
        f"[targets.launch.blue_green]\nports = [{blue}, {green}]\n"
    )
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", f"sqlite:///{tmp_path / 'd.db'}")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    service = DaemonService(load_config(config_path))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.ready.wait(), 30)
    url = f"http://127.0.0.1:{front}"
    assert whoami(url) == blue
    stop.set()
    await asyncio.wait_for(task, 30)
    assert whoami(url) == blue  # the daemon is gone; the clients' path is not


def test_a_request_the_server_closed_without_answering_is_sent_once_more(
    ports: tuple[int, int, int], tmp_path: Path
) -> None:
    """The keep-alive race: a server closes a connection as the front reuses it, and the request gets no
    response. The front sends it again (body and all) instead of handing the client a 502."""
    import socket

    front, backend, _ = ports
    listener = socket.create_server(("127.0.0.1", backend))
    seen: list[bytes] = []

    def serve() -> None:
        for answer in (False, True):  # the first connection is dropped unanswered, the second answered
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 7:
                    data += conn.recv(4096)
                seen.append(data.split(b"\r\n\r\n", 1)[1])
                if answer:
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    state, status = tmp_path / "front.json", tmp_path / "status.json"
    front_state.write_json(state, {"backend": backend})
    process = subprocess.Popen(front_argv(front, state, status), start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not procs.listener_roots(front):
            assert process.poll() is None and time.monotonic() < deadline, "the front did not listen"
            time.sleep(0.05)
        r = httpx.post(f"http://127.0.0.1:{front}/v1/completions", content=b"payload", timeout=10)
        assert (r.status_code, r.text) == (200, "ok")
        assert seen == [b"payload", b"payload"]  # the same body, twice
    finally:
        procs.stop(process.pid, 5)
        listener.close()
