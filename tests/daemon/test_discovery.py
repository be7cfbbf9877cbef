"""Finding the inference servers on this machine (daemon/discovery.py, `charter-tui discover`), against
the test kit's real vLLM and Triton; and a box with no config: the daemon polls both within 10 s.

Other servers may be listening while this runs (other tests' replay servers): every assertion is about
the kit's servers and the hostile ones started here, never about the whole list.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from charter_tui.cli import main
from daemon.config import load_config, parse_config
from daemon.discovery import NOT_HTTP, Found, discover, found_targets, listening_ports
from daemon.models import Instance, InstanceState
from daemon.service import DaemonService
from daemon.store import Store

pytestmark = [pytest.mark.vllm, pytest.mark.triton]


def test_finds_the_kits_vllm_and_triton_with_tritons_api_and_metrics_ports(
    vllm_server, triton_server
) -> None:
    found = asyncio.run(discover())
    assert Found("vllm", vllm_server.url) in found
    # Triton's metrics are on their own port: the target is the API port, the metrics port beside it.
    assert Found("triton", triton_server.http_url, f"{triton_server.metrics_url}") in found
    assert not any(f.url == f"http://127.0.0.1:{triton_server.metrics_port}" for f in found)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server, or not HTTP at all)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def not_an_engine() -> Iterator[int]:
    """An HTTP server whose /metrics is some other exporter's (and a 200 full of junk elsewhere)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b'node_cpu_seconds_total{cpu="0"} 12.5\n' if self.path == "/metrics" else b"\x1b[2J junk"
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_hung_port_costs_the_deadline_at_most_and_other_exporters_are_not_servers(
    silent_port: int, not_an_engine: int
) -> None:
    started = time.monotonic()
    found = asyncio.run(discover(timeout_s=0.5, deadline_s=3.0))
    assert time.monotonic() - started < 6.0  # the deadline plus the client's own teardown
    urls = {f.url for f in found}
    assert f"http://127.0.0.1:{silent_port}" not in urls and f"http://127.0.0.1:{not_an_engine}" not in urls


def test_ports_that_do_not_speak_http_are_never_asked() -> None:
    ports = {p.port for p in listening_ports()}
    assert not ports & NOT_HTTP
    assert not {p.port for p in listening_ports(exclude=ports)}  # and what the caller excludes


def test_discover_write_appends_the_new_servers_keeps_the_file_and_is_idempotent(
    vllm_server, triton_server, tmp_path: Path, capsys
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '# my notes\n[daemon]\npoll_interval_s = 2.0\n\n[[targets]]\nname = "mine"\nurl = "%s"\n'
        % vllm_server.url
    )
    assert main(["--config", str(config), "discover", "--write"]) == 0
    out, err = capsys.readouterr()
    assert f"vllm     {vllm_server.url}  configured" in out
    assert f"triton   {triton_server.http_url}  (metrics {triton_server.metrics_url})  new" in out
    text = config.read_text()
    assert text.startswith("# my notes\n[daemon]\npoll_interval_s = 2.0\n")  # the user's file, untouched
    loaded = parse_config(text, str(config))
    [triton] = [t for t in loaded.targets if t.url == triton_server.http_url]
    assert (triton.name, triton.engine, triton.metrics_url) == (
        f"triton-{triton_server.http_port}",
        "triton",
        triton_server.metrics_url,
    )
    assert [t.name for t in loaded.targets].count("mine") == 1 and len(
        {t.name for t in loaded.targets}
    ) == len(loaded.targets)
    assert main(["--config", str(config), "discover", "--write"]) == 0
    assert config.read_text() == text, "a second run finds everything configured and writes nothing"


def test_names_stay_unique_against_the_configured_ones() -> None:
    found = [Found("vllm", "http://127.0.0.1:8000"), Found("vllm", "http://[::1]:8000")]
    assert [t.name for t in found_targets(found, taken=["vllm-8000"])] == ["vllm-8000-2", "vllm-8000-3"]


def test_a_daemon_with_no_targets_polls_the_servers_of_this_box_within_10_s(
    vllm_server, triton_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_TUI_DISCOVER", "1")  # the test isolation turns it off
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path / "charter.db"}"\n[daemon]\nmetrics_port = 0\n')
    loaded = load_config(str(config))
    assert loaded.config.targets == []

    async def run() -> dict[str, Instance]:
        service = DaemonService(loaded)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        started = time.monotonic()
        try:
            store = Store(loaded.database_url)
            while time.monotonic() - started < 10.0:
                rows = {i.url: i for i in store.all(Instance)}
                if all(
                    rows.get(u) is not None and rows[u].state == InstanceState.UP
                    for u in (vllm_server.url, triton_server.http_url)
                ):
                    return rows
                await asyncio.sleep(0.25)
            return {i.url: i for i in store.all(Instance)}
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    rows = asyncio.run(run())
    assert rows[vllm_server.url].state == InstanceState.UP, rows.get(vllm_server.url)
    assert rows[triton_server.http_url].state == InstanceState.UP, rows.get(triton_server.http_url)
    assert (rows[vllm_server.url].engine, rows[triton_server.http_url].engine) == ("vllm", "triton")


def test_the_environment_turns_discovery_off_and_a_bad_value_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from daemon.errors import ConfigError

    monkeypatch.setenv("CHARTER_TUI_DISCOVER", "1")
    assert load_config().config.daemon.discover is True
    monkeypatch.setenv("CHARTER_TUI_DISCOVER", "off")
    assert load_config().config.daemon.discover is False
    monkeypatch.setenv("CHARTER_TUI_DISCOVER", "maybe")
    with pytest.raises(ConfigError, match="CHARTER_TUI_DISCOVER.*not a boolean"):
        load_config()
