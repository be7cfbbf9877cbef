"""The Triton test kit against the real tritonserver: loading, config read-back, config overrides that
change what the model does (as a rollout will), /generate, metrics, and clean start/stop."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from testkit.ports import StartupError
from testkit.triton import (
    BUILD_HINT,
    TEST_MODEL,
    TritonKit,
    TritonKitMissing,
    TritonServer,
    default_model_repository,
    start_triton,
)

pytestmark = pytest.mark.triton

PBTXT = default_model_repository() / TEST_MODEL / "config.pbtxt"


def pbtxt_parameters(path: Path = PBTXT) -> dict[str, str]:
    """The `parameters` of a config.pbtxt as written on disk (only the simple form the repo uses)."""
    pattern = re.compile(r'key:\s*"([^"]+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"\s*\}', re.S)
    found = dict(pattern.findall(path.read_text()))
    assert found, f"no parameters parsed from {path}"
    return found


def metric(server: TritonServer, family: str, **labels: str) -> float:
    """Sum of the samples of `family` whose labels include `labels` (0 if there are none yet)."""
    # prometheus_client's parser reports a counter's samples as `<name>_total` even where Triton's
    # text has no suffix; accept both spellings.
    names = {family, f"{family}_total"}
    total = 0.0
    for fam in text_string_to_metric_families(server.metrics_text()):
        for sample in fam.samples:
            if sample.name in names and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def http_client(server: TritonServer) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(
        url=server.http_url.removeprefix("http://"), network_timeout=120.0
    )


def with_parameters(config: dict[str, Any], **changes: str) -> dict[str, Any]:
    """A full config (as read back) with some `parameters` changed: what a rollout sends as override."""
    new = json.loads(json.dumps(config))
    for key, value in changes.items():
        new["parameters"][key] = {"string_value": value}
    return new


def timed_generate(server: TritonServer, text: str, max_tokens: int) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    body = server.generate(TEST_MODEL, {"text_input": text, "max_tokens": max_tokens})
    return body, time.perf_counter() - started


def test_textgen_loaded_and_config_read_back(triton_server: TritonServer) -> None:
    client = http_client(triton_server)
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index[TEST_MODEL]["state"] == "READY"
    assert client.is_model_ready(TEST_MODEL)

    disk = pbtxt_parameters()
    config = client.get_model_config(TEST_MODEL)
    assert config["backend"] == "python"
    assert {k: v["string_value"] for k, v in config["parameters"].items()} == disk
    assert [i["name"] for i in config["input"]] == ["text_input", "max_tokens"]

    # The gRPC endpoint serves the same model config.
    grpc = grpcclient.InferenceServerClient(url=triton_server.grpc_url)
    try:
        grpc_config = grpc.get_model_config(TEST_MODEL, as_json=True)["config"]
    finally:
        grpc.close()
    assert {k: v["string_value"] for k, v in grpc_config["parameters"].items()} == disk


def test_generate_returns_text_and_moves_core_metrics(triton_textgen: TritonServer) -> None:
    labels = {"model": TEST_MODEL, "version": "1"}
    before_ok = metric(triton_textgen, "nv_inference_request_success", **labels)
    before_us = metric(triton_textgen, "nv_inference_request_duration_us", **labels)

    body = triton_textgen.generate(TEST_MODEL, {"text_input": "the quick brown fox", "max_tokens": 6})
    assert body["model_name"] == TEST_MODEL
    assert body["output_tokens"] == 6
    assert body["text_output"] == "[baseline] the quick brown fox the quick"

    # Without max_tokens the model's default_max_tokens applies.
    default_tokens = int(pbtxt_parameters()["default_max_tokens"])
    assert triton_textgen.generate(TEST_MODEL, {"text_input": "x"})["output_tokens"] == default_tokens

    assert metric(triton_textgen, "nv_inference_request_success", **labels) == before_ok + 2
    assert metric(triton_textgen, "nv_inference_request_duration_us", **labels) > before_us
    # The other core families the collectors read are there for the model. (The first-response
    # histogram is not: Triton 2.51 exports it for decoupled models only, even with histogram_latencies.)
    for family in (
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_exec_count",
        "nv_inference_count",
    ):
        assert metric(triton_textgen, family, **labels) > 0, family
    assert "nv_inference_pending_request_count{" in triton_textgen.metrics_text()


def test_config_override_replaces_config_and_changes_behaviour(
    triton_textgen: TritonServer, textgen_baseline_config: dict[str, Any]
) -> None:
    labels = {"model": TEST_MODEL, "version": "1"}
    prompt = "alpha beta gamma delta epsilon zeta eta theta"

    def window(n: int, max_tokens: int) -> tuple[list[float], float, list[dict[str, Any]]]:
        """n requests; client latencies, and the server-side mean duration from the core counters
        (delta of nv_inference_request_duration_us over delta of successes: what the collectors use)."""
        ok0 = metric(triton_textgen, "nv_inference_request_success", **labels)
        us0 = metric(triton_textgen, "nv_inference_request_duration_us", **labels)
        bodies, latencies = [], []
        for _ in range(n):
            body, seconds = timed_generate(triton_textgen, prompt, max_tokens)
            bodies.append(body)
            latencies.append(seconds)
        d_ok = metric(triton_textgen, "nv_inference_request_success", **labels) - ok0
        d_us = metric(triton_textgen, "nv_inference_request_duration_us", **labels) - us0
        assert d_ok == n
        return latencies, d_us / d_ok / 1e6, bodies

    base_lat, base_server_s, base_bodies = window(3, 8)
    assert all(b["text_output"].startswith("[baseline] ") and b["output_tokens"] == 8 for b in base_bodies)

    # Canary config: slower per token, capped at 5 tokens, a new variant label.
    canary = with_parameters(
        textgen_baseline_config, delay_ms_per_token="60", max_tokens_cap="5", variant="canary-1"
    )
    client = http_client(triton_textgen)
    client.load_model(TEST_MODEL, config=json.dumps(canary))
    assert client.is_model_ready(TEST_MODEL)
    read_back = client.get_model_config(TEST_MODEL)["parameters"]
    assert read_back["variant"] == {"string_value": "canary-1"}
    assert read_back["delay_ms_per_token"] == {"string_value": "60"}
    assert read_back["max_tokens_cap"] == {"string_value": "5"}

    canary_lat, canary_server_s, canary_bodies = window(3, 8)
    for body in canary_bodies:
        assert body["output_tokens"] == 5  # capped
        assert body["text_output"] == "[canary-1] alpha beta gamma delta epsilon"
    # 5 tokens x 60 ms: the model sleeps 300 ms per request, so the server's own duration and the
    # client's latency are at least that. Only lower bounds: a sleep is never shorter, while a
    # difference against the baseline depends on how loaded the machine is (it flaked on 2 cores).
    assert canary_server_s >= 0.3 - 1e-3, canary_server_s
    assert min(canary_lat) >= 0.3 - 1e-3, canary_lat
    assert base_server_s > 0 and min(base_lat) > 0

    # The override REPLACES the config: parameters left out of it are gone, not merged from disk.
    only_variant = json.loads(json.dumps(textgen_baseline_config))
    only_variant["parameters"] = {"variant": {"string_value": "bare"}}
    client.load_model(TEST_MODEL, config=json.dumps(only_variant))
    assert set(client.get_model_config(TEST_MODEL)["parameters"]) == {"variant"}
    bare = triton_textgen.generate(TEST_MODEL, {"text_input": "x"})
    # model.py's built-in defaults now apply (default_max_tokens 16, cap 64), not the pbtxt's values.
    assert bare["text_output"].startswith("[bare] ") and bare["output_tokens"] == 16

    # Loading the recorded original as override restores it exactly (a rollback).
    client.load_model(TEST_MODEL, config=json.dumps(textgen_baseline_config))
    assert client.get_model_config(TEST_MODEL) == textgen_baseline_config
    assert (
        triton_textgen.generate(TEST_MODEL, {"text_input": "x", "max_tokens": 1})["text_output"]
        == "[baseline] x"
    )


def test_rejected_config_keeps_the_serving_version(
    triton_textgen: TritonServer, textgen_baseline_config: dict[str, Any]
) -> None:
    """A config the model refuses fails the load and leaves the old version serving: a canary that
    pushes a bad value fails without an outage."""
    client = http_client(triton_textgen)
    bad = with_parameters(textgen_baseline_config, delay_ms_per_token="-5")
    with pytest.raises(InferenceServerException, match="delay_ms_per_token=-5 must be >= 0"):
        client.load_model(TEST_MODEL, config=json.dumps(bad))
    assert client.is_model_ready(TEST_MODEL)
    assert client.get_model_config(TEST_MODEL) == textgen_baseline_config
    assert (
        triton_textgen.generate(TEST_MODEL, {"text_input": "still here", "max_tokens": 2})["output_tokens"]
        == 2
    )


def test_server_listens_on_loopback_only(triton_server: TritonServer) -> None:
    log = triton_server.log_path.read_text(errors="replace")
    for service, port in (
        ("GRPCInferenceService", triton_server.grpc_port),
        ("HTTPService", triton_server.http_port),
        ("Metrics Service", triton_server.metrics_port),
    ):
        assert f'Started {service} at 127.0.0.1:{port}"' in log
    assert "0.0.0.0" not in log
    assert httpx.get(f"{triton_server.http_url}/v2/health/ready", timeout=5).status_code == 200


def test_start_and_stop_leave_nothing_behind(triton_kit_dir: Path, tmp_path: Path) -> None:
    with start_triton(triton_kit_dir, load=[TEST_MODEL], log_dir=tmp_path) as server:
        assert server.model_ready(TEST_MODEL)
        stub_pids = [p for p in _children(server.process.pid)]
        assert stub_pids, "the Python backend stub should run as a child of tritonserver"
        started = time.monotonic()
    assert time.monotonic() - started < 20
    assert server.process.returncode is not None
    assert not any(Path(f"/proc/{pid}").exists() for pid in stub_pids)
    assert not list(Path("/dev/shm").glob(f"{server.shm_prefix}*"))
    assert not server.repository.exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.http_url}/v2/health/live", timeout=2)


def test_a_model_that_fails_to_load_reports_the_server_log(triton_kit_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "repo" / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "config.pbtxt").write_text(
        'name: "broken"\nbackend: "python"\nmax_batch_size: 0\n'
        'input [ { name: "x" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
        'output [ { name: "y" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
    )
    (broken / "1" / "model.py").write_text(
        "class TritonPythonModel:\n    def initialize(self, args):\n"
        "        raise RuntimeError('kit-test-marker: refusing to load')\n"
    )
    with pytest.raises(StartupError) as failure:
        with start_triton(
            triton_kit_dir, model_repository=tmp_path / "repo", load=["broken"], log_dir=tmp_path
        ):
            pass
    message = str(failure.value)
    assert "could not load 'broken'" in message
    assert "kit-test-marker: refusing to load" in message  # the reason, from the server's log tail


def test_missing_kit_names_what_and_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(TritonKitMissing) as missing:
        TritonKit.locate(tmp_path)
    assert str(tmp_path / "triton-venv") in str(missing.value)
    assert "scripts/build-triton-kit.sh" in str(missing.value) and "make testkit" in str(missing.value)
    assert "scripts/build-triton-kit.sh" in BUILD_HINT


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        match = re.search(r"^PPid:\s+(\d+)$", text, re.M)
        if match and int(match.group(1)) == pid:
            found.append(int(status.parent.name))
    return found
