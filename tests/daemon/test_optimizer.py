"""Optimizer: the right change for the right cause, current values from the server, de-duplication."""

from __future__ import annotations

from daemon.config import parse_config
from daemon.models import Bottleneck, MetricSample, Recommendation, RecommendationStatus, Severity
from daemon.optimizer import Context, read_settings, recommend, recommend_from_compile, upsert_recommendations
from daemon.prom import parse
from daemon.collectors import read
from daemon.store import Store
from tests.daemon.helpers import VLLM_IDLE


def vllm_info(**overrides: str) -> dict:
    info = read(parse(VLLM_IDLE), "vllm", 0).info
    info["cache_config"] = info["cache_config"] | overrides
    return info


def bn(kind: str, severity=Severity.WARNING, **evidence) -> Bottleneck:
    return Bottleneck(instance="a", kind=kind, severity=severity, summary=f"{kind} test", evidence=evidence)


def ctx_for(
    engine: str, info: dict, *bottlenecks: Bottleneck, sample: MetricSample | None = None, argv=None
) -> Context:
    target = None
    if argv:
        target = parse_config(
            f'[[targets]]\nname = "a"\nurl = "http://127.0.0.1:1"\n[targets.launch]\nargv = {argv!r}\n'.replace(
                "'", '"'
            )
        ).targets[0]
    return Context("a", engine, read_settings(target, engine, info), list(bottlenecks), sample)


def changes(specs):
    return {(c.parameter, str(c.recommended_value)) for s in specs for c in s.changes}


def test_current_values_come_from_cache_config_info() -> None:
    s = read_settings(None, "vllm", vllm_info())
    assert s.get("--enable-prefix-caching") == (True, "vllm:cache_config_info")
    assert s.get("--block-size") == (128, "vllm:cache_config_info")
    assert s.get("--gpu-memory-utilization") == (0.5, "vllm:cache_config_info")
    assert s.get("--max-num-seqs") == (256, "engine default")


def test_disabled_prefix_caching_is_enabled_first() -> None:
    specs = recommend(
        ctx_for(
            "vllm",
            vllm_info(enable_prefix_caching="False"),
            bn("CACHE_INEFFICIENCY", prefix_hit_rate=0.0, kv_cache_usage=0.1),
        )
    )
    assert specs[0].title.startswith("Enable prefix caching")
    c = specs[0].changes[0]
    assert (c.parameter, c.current_value, c.current_source, c.recommended_value) == (
        "--enable-prefix-caching",
        False,
        "vllm:cache_config_info",
        True,
    )
    assert specs[0].priority == 1 and specs[0].risks and specs[0].prerequisites


def test_low_hit_rate_with_room_is_a_layout_and_block_size_problem() -> None:
    specs = recommend(
        ctx_for("vllm", vllm_info(), bn("CACHE_INEFFICIENCY", prefix_hit_rate=0.02, kv_cache_usage=0.1))
    )
    # The capture is the CPU vLLM's: 128-token blocks it chose itself; its backend refuses 16 (issue 15).
    assert ("--block-size", "32") in changes(specs) and ("--block-size", "16") not in changes(specs)
    assert any(s.title == "Use 32-token KV blocks" for s in specs)
    assert any(s.kind == "prompt_layout" for s in specs)
    assert not any(c[0] == "--enable-prefix-caching" for c in changes(specs))


def test_low_hit_rate_with_full_cache_asks_for_capacity() -> None:
    specs = recommend(
        ctx_for("vllm", vllm_info(), bn("CACHE_INEFFICIENCY", prefix_hit_rate=0.1, kv_cache_usage=0.95))
    )
    assert ("--gpu-memory-utilization", "0.55") in changes(specs)
    assert ("--kv-cache-dtype", "fp8") in changes(specs)
    assert not any(s.kind == "prompt_layout" for s in specs)


def test_queue_with_kv_room_raises_batch_cap_but_full_kv_asks_for_a_replica() -> None:
    sample = MetricSample(instance="a", running=256, waiting=40, kv_cache_usage=0.3)
    specs = recommend(
        ctx_for(
            "vllm",
            vllm_info(),
            bn("QUEUE_BUILDUP", kv_cache_usage=0.3),
            sample=sample,
            argv=["python", "-m", "vllm", "--max-num-seqs", "256"],
        )
    )
    (c,) = [c for s in specs for c in s.changes if c.parameter == "--max-num-seqs"]
    assert (c.current_value, c.current_source, c.recommended_value) == (256, "launch argv", 512)
    full = recommend(ctx_for("vllm", vllm_info(), bn("QUEUE_BUILDUP", kv_cache_usage=0.97), sample=sample))
    assert [s.kind for s in full] == ["capacity"]


def test_preemption_storm_lowers_the_cap_and_sustained_pressure_suggests_quantization() -> None:
    sample = MetricSample(instance="a", running=100, kv_cache_usage=0.99, preemptions=50)
    specs = recommend(
        ctx_for(
            "vllm",
            vllm_info(),
            bn("PREEMPTION_STORM"),
            bn("MEMORY_PRESSURE", Severity.CRITICAL, driver="kv_cache_usage"),
            sample=sample,
        )
    )
    assert ("--max-num-seqs", "90") in changes(specs)
    assert ("--quantization", "fp8") in changes(specs)
    kinds = [s.kind for s in specs]
    assert "quantization" in kinds and "batching" in kinds
    assert [s.priority for s in specs] == list(range(1, len(specs) + 1))


def test_triton_reads_model_config_parameters() -> None:
    info = {
        "backend": "tensorrtllm",
        "model_configs": {
            "tensorrt_llm": {
                "max_batch_size": 64,
                "instance_group": [{"count": 1, "kind": "KIND_GPU"}],
                "parameters": {
                    "enable_kv_cache_reuse": {"string_value": "false"},
                    "kv_cache_free_gpu_mem_fraction": {"string_value": "0.85"},
                    "batch_scheduler_policy": {"string_value": "max_utilization"},
                },
            }
        },
    }
    specs = recommend(
        ctx_for("triton", info, bn("CACHE_INEFFICIENCY", prefix_hit_rate=0.01), bn("PREEMPTION_STORM"))
    )
    got = changes(specs)
    assert ("parameters.enable_kv_cache_reuse", "True") in got
    assert ("parameters.batch_scheduler_policy", "guaranteed_no_evict") in got
    reuse = next(c for s in specs for c in s.changes if c.parameter == "parameters.enable_kv_cache_reuse")
    assert (
        reuse.current_value is False
        and reuse.current_source == "model config (tensorrt_llm)"
        and reuse.apply == "reload"
    )


def test_cache_plan_turns_into_recommendations() -> None:
    result = {
        "path": "agents/support.py",
        "source_sha256": "abc",
        "plan": {
            "engine": "vllm",
            "block_shares": [
                {
                    "engine": "vllm",
                    "block_size": 16,
                    "prompt_tokens": 1000,
                    "cached_tokens": 700,
                    "hit_share": 0.7,
                },
                {
                    "engine": "vllm",
                    "block_size": 128,
                    "prompt_tokens": 1000,
                    "cached_tokens": 512,
                    "hit_share": 0.51,
                },
            ],
            "settings": [
                {
                    "engine": "vllm",
                    "where": "flag",
                    "name": "--enable-prefix-caching",
                    "value": "true",
                    "reason": "shared system prompt",
                    "applies": "restart",
                },
                {
                    "engine": "vllm",
                    "where": "flag",
                    "name": "--block-size",
                    "value": "16",
                    "reason": "prefixes end mid-block",
                    "applies": "restart",
                },
            ],
        },
        "fixes": [
            {
                "pattern": "DYNAMIC_PREFIX",
                "calls": ["c1", "c2"],
                "description": "move the ticket id last",
                "diff": "--- a\n+++ b\n",
                "cacheable_share_before": 0.05,
                "cacheable_share_after": 0.8,
                "warning": "check output",
            }
        ],
    }
    off = recommend_from_compile(result, ctx_for("vllm", vllm_info(enable_prefix_caching="False")))
    assert off[0].title.startswith("Enable prefix caching") and "51%" in off[0].changes[0].reason  # block 128
    assert ("--block-size", "32") in changes(off)  # the plan's 16, raised to what the CPU backend takes
    block = next(c for s in off for c in s.changes if c.parameter == "--block-size")
    assert (
        block.reason
        == "prefixes end mid-block (32: the smallest block this server's attention backend takes)"
    )
    assert any(s.kind == "prompt_layout" and "5% -> 80%" in s.estimated_improvement for s in off)
    # Titles name the file (a long absolute path left only its start in view at 80 columns).
    result_abs = {**result, "path": "/home/ops/agents/very/deep/project/agents/support.py"}
    titles = [s.title for s in recommend_from_compile(result_abs, ctx_for("vllm", vllm_info()))]
    assert "Restructure prompts in support.py (DYNAMIC_PREFIX)" in titles, titles
    assert "Apply the cache plan of support.py" in titles, titles
    # ... with its directory when the name alone is generic: two projects' agent.py are two agents.
    for project in ("research_graph", "support_desk"):
        packaged = {**result, "path": f"/srv/agents/projects/{project}/agent.py"}
        titles = [s.title for s in recommend_from_compile(packaged, ctx_for("vllm", vllm_info()))]
        assert f"Apply the cache plan of {project}/agent.py" in titles, titles
    on = recommend_from_compile(result, ctx_for("vllm", vllm_info()))
    assert not any(c[0] == "--enable-prefix-caching" for c in changes(on))  # already on: nothing to enable
    # The planner writes "on"; the server reports True: the same value, not a change (issue 15 item 2).
    result["plan"]["settings"][0]["value"] = "on"
    on = recommend_from_compile(result, ctx_for("vllm", vllm_info()))
    flags = [c[0] for c in changes(on) if c[0].startswith("--")]
    assert flags == ["--block-size"]


def test_recommendations_are_deduplicated_and_dismissals_stick(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    ctx = ctx_for(
        "vllm", vllm_info(enable_prefix_caching="False"), bn("CACHE_INEFFICIENCY", prefix_hit_rate=0.0)
    )
    assert upsert_recommendations(store, recommend(ctx), now=1) == (1, 0)
    # the bottleneck fires again with different evidence: same recommendation, refreshed
    ctx2 = ctx_for(
        "vllm", vllm_info(enable_prefix_caching="False"), bn("CACHE_INEFFICIENCY", prefix_hit_rate=0.05)
    )
    assert upsert_recommendations(store, recommend(ctx2), now=2) == (0, 1)
    (row,) = store.all(Recommendation)
    assert row.updated_at == 2 and row.created_at == 1
    assert row.detail["changes"][0]["recommended_value"] is True
    assert row.detail["source"]["bottlenecks"][0]["evidence"]["prefix_hit_rate"] == 0.05
    row.status = RecommendationStatus.DISMISSED
    store.merge(row)
    upsert_recommendations(store, recommend(ctx2), now=3)
    assert store.all(Recommendation)[0].status == RecommendationStatus.DISMISSED
    store.close()


def test_the_smallest_block_offered_is_the_one_the_servers_backend_takes() -> None:
    """A GPU server (default 16-token blocks; 128 here chosen by the user) is offered 16; a server that
    chose 128 itself, as vLLM's CPU platform does, is offered 32. A server its user started with 32 says
    nothing of its device and is offered 16; if it refuses, the failed rollout dismisses the recommendation
    (tests/rollouts/test_manager.py::test_a_recommendation_the_server_refused_is_not_offered_again)."""
    low = bn("CACHE_INEFFICIENCY", prefix_hit_rate=0.02, kv_cache_usage=0.1)
    # (platform "unknown": the poller looked for the process and could not tell, e.g. a remote server)
    gpu = recommend(
        ctx_for("vllm", {**vllm_info(user_specified_block_size="True"), "platform": "unknown"}, low)
    )
    assert ("--block-size", "16") in changes(gpu)
    cpu = recommend(ctx_for("vllm", vllm_info(), low))
    assert ("--block-size", "32") in changes(cpu)
    at_32_info = vllm_info(block_size="32", user_specified_block_size="True")
    at_32 = recommend(ctx_for("vllm", {**at_32_info, "platform": "unknown"}, low))
    assert ("--block-size", "16") in changes(at_32)  # chosen by the user: a GPU backend may take 16
    # Before the poller has looked at the process, 16 (which a CPU vLLM refuses) is not offered at all: a
    # recommendation made then would outlive the platform being learnt (a new user saw it on the kit's CPU
    # vLLM at block 32). The CPU heuristic (128 chosen by the server itself) needs no wait.
    pending = recommend(ctx_for("vllm", at_32_info, low))
    assert not [c for c in changes(pending) if c[0] == "--block-size"], changes(pending)
    cpu_ctx = ctx_for("vllm", vllm_info(), low)
    assert (
        cpu_ctx.smallest_block() == 32 and ctx_for("vllm", vllm_info(block_size="16")).smallest_block() == 16
    )


def test_a_server_whose_process_runs_on_cpu_is_never_offered_16_token_blocks() -> None:
    """The test kit's vLLM: CPU platform, started with --block-size 32 (user-specified). Its metrics do not
    say CPU; its process does (`info["platform"]`, read by the poller from the local server process). It
    is offered no block change at all: 32 is already the smallest its backend takes, and a change to what
    it runs is a no-op. The same server on a GPU is offered 16."""
    low = bn("CACHE_INEFFICIENCY", prefix_hit_rate=0.02, kv_cache_usage=0.1)
    at_32 = vllm_info(block_size="32", user_specified_block_size="True")
    on_cpu = recommend(ctx_for("vllm", {**at_32, "platform": "cpu"}, low))
    assert not [c for c in changes(on_cpu) if c[0] == "--block-size"], changes(on_cpu)
    on_gpu = recommend(ctx_for("vllm", {**at_32, "platform": "gpu"}, low))
    assert ("--block-size", "16") in changes(on_gpu)
    # The platform read from the process wins over the metrics' hint (128 chosen by the server itself).
    assert ctx_for("vllm", {**vllm_info(), "platform": "gpu"}).smallest_block() == 16
    assert ctx_for("vllm", {**vllm_info(block_size="16"), "platform": "cpu"}).smallest_block() == 32
