"""`charter-tui probe` end to end against a local server serving the real vLLM capture."""

from __future__ import annotations

import json

from charter_tui.cli import main
from tests.daemon.helpers import VLLM_IDLE, MetricsServer, Response, closed_port_url, set_counter, text_response


def growing(n: int, path: str) -> Response:
    if path == "/health":
        return text_response("")
    if path == "/v1/models":
        return text_response(json.dumps({"object": "list", "data": [{"id": "tiny"}]}))
    if path == "/version":
        return text_response(json.dumps({"version": "0.32.0"}))
    text = set_counter(VLLM_IDLE, "vllm:prefix_cache_queries_total", 3828.0 + 1000 * n)
    return text_response(set_counter(text, "vllm:prefix_cache_hits_total", 2304.0 + 250 * n))


def test_probe_json_reports_engine_health_and_windowed_sample(capsys) -> None:
    with MetricsServer(growing) as server:
        code = main(["probe", server.url, "--interval", "0.3", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["engine"] == "vllm" and out["state"] == "UP"
    assert out["health"]["version"] == "0.32.0" and out["health"]["models"] == ["tiny"]
    s = out["sample"]
    assert 0.25 < s["window_s"] < 2 and s["running"] == 0.0
    # the two /metrics scrapes were requests 1 and 2 or so; whatever the gap, the rate is 25%
    assert abs(s["prefix_hit_rate"] - 0.25) < 1e-9
    assert out["server_config"]["cache_config"]["block_size"] == "128"


def test_probe_text_output_and_failure_exit_code(capsys) -> None:
    with MetricsServer(growing) as server:
        assert main(["probe", server.url, "--interval", "0"]) == 0
    text = capsys.readouterr().out
    assert "engine   vllm" in text and "ok   /health" in text and "prefix_hit_rate" in text
    url = closed_port_url()
    assert main(["probe", url, "--interval", "0", "--timeout", "0.5"]) == 1
    text = capsys.readouterr().out
    assert "DOWN" in text and "refused" in text and "FAIL /health" in text


def test_probe_rejects_a_bad_url(capsys) -> None:
    assert main(["probe", "ftp://nowhere"]) == 2
    assert "probe:" in capsys.readouterr().err
