"""Every screen, driven with the keyboard, asserting on what its widgets show."""

from __future__ import annotations

from charter_tui.app import CharterApp
from tests.tui.fixtures import AGENT_PATH, NOW, compile_record, syntax_error_record
from tests.tui.helpers import screen_text, settle, static_text, table_rows
from daemon.bus import topic
from daemon.models import Bottleneck, Instance, InstanceState, MetricSample, Rollout, Severity


async def wait_until_live(pilot, check, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Wait for the app's own refresh (no forced flush), so this checks the live path."""
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the screen did not update by itself"
        await pilot.pause(0.05)


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


async def test_instances_rows_show_state_engine_model_and_latest_values(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        rows = table_rows(app, "#instances")
        assert list(rows) == ["sglang-c", "triton-b", "vllm-a"]
        vllm = rows["vllm-a"]
        assert vllm[0] == "vllm-a ▲", "an open bottleneck is flagged on the row"
        assert vllm[1:4] == ["● UP", "vllm", "tiny-llama"]
        # Latest sample: ttft 0.12+0.08*(1+sin(119/12)) = 162ms, KV 0.35+0.25*119/120 = 60%.
        assert vllm[4].split()[0] == "162ms"
        assert vllm[6].split()[0] == "60%"
        assert len(vllm[4].split()[1]) >= 8, "wide terminals get inline sparklines"
        assert rows["sglang-c"][1] == "● DOWN" and rows["sglang-c"][4].strip() == "-"
        assert rows["triton-b"][1] == "● STALE" and rows["triton-b"][-1] == "20s"


async def test_instances_panel_follows_the_cursor_and_updates_live(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("down", "down")
        await settle(app, pilot)
        panel = static_text(app, "#instance-panel")
        assert panel.startswith("vllm-a  http://127.0.0.1:8000  ● UP")
        assert _line(panel, "TTFT p95").split()[2] == "162ms"
        assert "▁" in panel or "▇" in panel or "█" in panel, "the panel draws sparklines"
        # A new poll arrives: the row and the panel show it after the next refresh tick.
        app.source.bus.publish(
            topic("sample", "vllm-a"),
            MetricSample(
                instance="vllm-a",
                ts=NOW + 1,
                ttft_p95_s=2.5,
                generation_tokens_per_s=12.0,
                kv_cache_usage=0.97,
                prefix_hit_rate=0.05,
                waiting=14,
            ),
        )
        # Samples redraw at most once a second, by the app's own refresh tick.
        await wait_until_live(pilot, lambda: table_rows(app, "#instances")["vllm-a"][4].split()[0] == "2.50s")
        row = table_rows(app, "#instances")["vllm-a"]
        assert [c.split()[0] for c in row[4:9]] == ["2.50s", "12", "97%", "5%", "14"]
        assert _line(static_text(app, "#instance-panel"), "TTFT p95").split()[2] == "2.50s"


async def test_instance_state_change_is_shown(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        app.source.bus.publish(
            topic("instance", "sglang-c"),
            Instance(
                name="sglang-c",
                url="http://127.0.0.1:30000",
                engine="sglang",
                model="qwen",
                state=InstanceState.UP,
            ),
        )
        await settle(app, pilot)
        assert table_rows(app, "#instances")["sglang-c"][1:4] == ["● UP", "sglang", "qwen"]
        assert "● 2/3 up" in screen_text(app).splitlines()[0]


async def test_instance_detail_plots_and_window_cycle(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        await pilot.press("down", "down", "enter")
        await settle(app, pilot)
        header = static_text(app, "#detail-header")
        assert header.startswith("vllm-a  vllm  tiny-llama  http://127.0.0.1:8000")
        assert " 5m " in header and "(w cycles; live)" in header
        ttft = static_text(app, "#plot-ttft_p95_s")
        assert ttft.startswith("TTFT p95  now 162ms  min 120ms  max 280ms  n=120")
        assert "│" in ttft and "█" in ttft
        kv = static_text(app, "#plot-kv_cache_usage")
        assert "100%" in kv.splitlines()[1], "KV usage is plotted on a fixed 0-100% scale"
        await pilot.press("w")
        await settle(app, pilot)
        assert "1h" in static_text(app, "#detail-header")
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen.query("#instances"), "esc goes back to the list"


async def test_instance_detail_says_which_backend_a_vllm_runs(make_app) -> None:
    """What decides the settings offered (no 16-token KV blocks on vLLM's CPU backend) is on screen once read."""
    app: CharterApp = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.show_instance_detail("vllm-a")
        await settle(app, pilot)
        assert static_text(app, "#detail-header").startswith("vllm-a  vllm  tiny-llama")  # not read yet
        inst = app.state.instances["vllm-a"].model_copy(update={"info": {"platform": "cpu"}})
        app.source.bus.publish(topic("instance", "vllm-a"), inst)
        await wait_until_live(pilot, lambda: "vllm on CPU" in static_text(app, "#detail-header"))
        assert static_text(app, "#detail-header").startswith("vllm-a  vllm on CPU  tiny-llama")
        unknown = inst.model_copy(update={"info": {"platform": "unknown"}})
        app.source.bus.publish(topic("instance", "vllm-a"), unknown)
        await wait_until_live(pilot, lambda: "vllm on" not in static_text(app, "#detail-header"))


async def test_agents_dag_prompt_plan_and_diff(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        await settle(app, pilot)
        files = table_rows(app, "#files")
        assert files[AGENT_PATH] == ["research_agent.py", "✓ ok", "4", "!DP BR SEQ SP"]
        assert table_rows(app, "#calls")["c1"] == ["c1 !", "plan:14", "480", "88%"]
        dag = static_text(app, "#dag")
        for label in ("c1 plan:14", "c2 search:25", "c3 outline:33", "c4 write_report:41"):
            assert label in dag
        assert "[!DP]" in dag and "[SP]" in dag and "×3" in dag and "↻topic" in dag
        assert "▼ plan" in dag and "▼ notes, outline" in dag, "edges carry their variables"
        lines = dag.splitlines()
        row_of = {
            name: next(i for i, line in enumerate(lines) if name in line) for name in ("c1 ", "c2 ", "c4 ")
        }
        assert row_of["c1 "] < row_of["c2 "] < row_of["c4 "], "layers go top-down in data-flow order"
        assert "dynamic prefix (anti-pattern)" in static_text(app, "#legend")
        prompt = static_text(app, "#prompt")
        assert "480 tok, static prefix 420 (88%)" in prompt and "{request_id}(volatile~8)" in prompt
        assert "block  16: ceiling 58% (1680/2886 tok) -> 72% after fixes" in static_text(app, "#plan")
        fixes = static_text(app, "#fixes")
        assert "cacheable share 0% -> 89%" in fixes
        assert (
            '+        {"role": "user", "content": f"Plan the research for: {question} [{request_id}]"},'
            in fixes
        )
        # Select another call: the prompt follows and the box is highlighted.
        await pilot.press("tab", "down", "down")
        await settle(app, pilot)
        assert static_text(app, "#prompt").startswith("c3 outline:33")


async def test_the_plan_advises_each_vllm_server_a_block_size_it_accepts(make_app) -> None:
    """Issue 15 item 2: the compiler's plan says `--block-size=16` (vLLM's GPU default), which a vLLM on
    CPU refuses. Once vllm-a reports the 128-token blocks the CPU platform picks by itself (its real
    `cache_config_info` labels), the Agents screen advises it 32 instead; a server at 16 keeps 16."""
    from pathlib import Path

    from compiler.api import compile_source
    from daemon.models import CompileRecord

    agent = Path(__file__).resolve().parents[2] / "data" / "agents" / "document_processor.py"
    result = compile_source(agent.read_text(), AGENT_PATH)  # a real plan, with its --block-size advice
    app: CharterApp = make_app()
    app.source.bus.publish(
        topic("compile", AGENT_PATH),
        CompileRecord(
            path=AGENT_PATH,
            content_hash=result.source_sha256,
            compiled_at=NOW,
            ok=True,
            result=result.model_dump(mode="json"),
        ),
    )
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        assert "flag --block-size=16 (restart)" in static_text(app, "#plan")
        cpu = {"cache_config": {"block_size": "128", "user_specified_block_size": "False"}}
        gpu = {"cache_config": {"block_size": "16", "user_specified_block_size": "False"}}
        for name, info in (("vllm-a", cpu), ("vllm-gpu", gpu)):
            inst = Instance(
                name=name,
                url="http://127.0.0.1:8000",
                engine="vllm",
                state=InstanceState.UP,
                last_seen=NOW - 1,
                info=info,
            )
            app.source.bus.publish(topic("instance", name), inst)
        await settle(app, pilot)
        plan = static_text(app, "#plan")
        assert (
            "flag --block-size=32 for vllm-a (restart): its attention backend takes no block under 32" in plan
        )
        assert "flag --block-size=16 (restart)" in plan  # still right for vllm-gpu
        app.source.bus.publish(topic("instance", "vllm-gpu"), inst.model_copy(update={"info": cpu}))
        await settle(app, pilot)
        plan = static_text(app, "#plan")
        assert "--block-size=32 for vllm-gpu" in plan and "flag --block-size=16 (restart)" not in plan


async def test_agents_syntax_error_keeps_last_good_dag_and_redraws_on_recompile(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        bus = app.source.bus
        bus.publish(topic("compile", AGENT_PATH), syntax_error_record())
        await settle(app, pilot)
        # The list has no room for the long form beside the patterns: it gives the position as line:col,
        # the header below says it in full.
        assert table_rows(app, "#files")[AGENT_PATH][1] == "✗ 27:12"
        status = static_text(app, "#compile-status")
        assert "✗ line 27, col 12: SyntaxError: '(' was never closed" in status
        assert "showing the last good compile (14:13:15 UTC)" in status
        assert "c4 write_report:41" in static_text(app, "#dag"), "the last good DAG stays"
        bus.publish(topic("compile", AGENT_PATH), compile_record(at=NOW, extra_call=True))
        # Live redraw, no settle(): the app's own refresh tick picks the recompile up.
        await wait_until_live(pilot, lambda: "c5 critique:52" in static_text(app, "#dag"))
        assert "▼ report" in static_text(app, "#dag")
        assert table_rows(app, "#files")[AGENT_PATH][1:3] == ["✓ ok", "5"]


async def test_cache_screen_measured_vs_ceiling(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        await settle(app, pilot)
        rows = table_rows(app, "#cache-targets")
        assert rows["vllm-a"][:6] == ["vllm-a", "vllm", "49%", "38%", "58% b16", "-9pt"]
        assert rows["sglang-c"][2] == "-" and rows["sglang-c"][4] == "-"
        agents = table_rows(app, "#cache-agents")
        assert agents[f"{AGENT_PATH}#vllm16"] == [
            "research_agent.py",
            "vllm",
            "16",
            "58%",
            "-",  # the pinned plan has no steady-state figure
            "72%",
            "1680/2886",
        ]
        # Where the plan has one, a live server is compared with the steady state (a request on the cache
        # the one before it left), not with one request on an empty cache, which traffic beats.
        steady = compile_record()
        for share in steady.result["plan"]["block_shares"]:
            share["steady_state_share"] = 0.81
        app.source.bus.publish(topic("compile", AGENT_PATH), steady)
        await settle(app, pilot)
        assert table_rows(app, "#cache-targets")["vllm-a"][4:6] == ["81% b16", "-32pt"]
        assert table_rows(app, "#cache-agents")[f"{AGENT_PATH}#vllm16"][3:5] == ["58%", "81%"]
        app.source.bus.publish(topic("compile", AGENT_PATH), compile_record())
        await settle(app, pilot)
        await pilot.press("down", "down")
        await settle(app, pilot)
        plot = static_text(app, "#cache-plot")
        assert plot.startswith(
            "vllm-a hit rate, last 120 polls   ╌ ceiling 58% (research_agent.py, block 16)"
        )
        ceiling_rows = [line for line in plot.splitlines()[1:] if "╌" in line]
        assert len(ceiling_rows) == 1 and ceiling_rows[0].count("╌") > 50, "the ceiling is one dashed line"


async def test_bottlenecks_and_recommendations_with_evidence(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("4")
        await settle(app, pilot)
        rows = table_rows(app, "#bottlenecks")
        assert list(rows) == ["2", "1", "3"], "critical first, then warning, cleared last"
        assert rows["2"] == [
            " CRITICAL ",
            "vllm-a",
            "QUEUE_BUILDUP",
            "1m",
            "12 requests waiting (threshold 8)",
        ]
        assert rows["3"][0] == "cleared" and rows["3"][3] == "50m ago"
        evidence = static_text(app, "#evidence")
        assert "QUEUE_BUILDUP on vllm-a" in evidence
        assert "waiting         12" in evidence and "kv_cache_usage  0.93" in evidence
        assert "→ recommendation #7" in evidence
        recs = table_rows(app, "#recommendations")
        assert list(recs) == ["7", "8"], "priority 1 is the most urgent"
        assert recs["7"] == ["1", "PROPOSED", "vllm-a", "Raise --gpu-memory-utilization 0.5 -> 0.8 on vllm-a"]
        await pilot.press("tab")
        await settle(app, pilot)
        evidence = static_text(app, "#evidence")
        assert evidence.startswith("#7 Raise --gpu-memory-utilization")
        assert "- --gpu-memory-utilization = 0.5\n+ --gpu-memory-utilization = 0.8   (restart)" in evidence
        assert "OOM if another process" in evidence and "estimated_improvement  queue wait -60%" in evidence
        # A bottleneck clearing moves it down and changes its badge.
        app.source.bus.publish(
            topic("bottleneck", "vllm-a"),
            Bottleneck(
                id=2,
                instance="vllm-a",
                kind="QUEUE_BUILDUP",
                severity=Severity.CRITICAL,
                active=False,
                started_at=NOW - 60,
                cleared_at=NOW - 5,
                summary="12 requests waiting (threshold 8)",
            ),
        )
        await settle(app, pilot)
        rows = table_rows(app, "#bottlenecks")
        assert list(rows)[0] == "1" and rows["2"][0] == "cleared"


async def test_rollouts_queue_history_and_detail(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("5")
        await settle(app, pilot)
        queue = table_rows(app, "#queue")
        assert list(queue) == ["11", "10"], "awaiting approval first"
        assert queue["11"][1] == " PENDING "
        assert table_rows(app, "#history")["9"][1] == " ROLLED_BACK "
        detail = static_text(app, "#rollout")
        assert detail.startswith("#11 Raise --gpu-memory-utilization on vllm-a")
        assert "- --max-num-seqs = 64\n+ --max-num-seqs = 128" in detail, (
            "current values come from the optimizer"
        )
        assert "expected impact  high — queue wait -60%, KV 93% -> 58%" in detail
        assert "why              QUEUE_BUILDUP on vllm-a" in detail
        assert "risks            OOM if another process uses the GPU" in detail
        assert "daemon   propose - → PENDING_APPROVAL" in detail
        await pilot.press("down")
        await settle(app, pilot)
        detail = static_text(app, "#rollout")
        assert detail.startswith("#10 Enable prefix caching on triton-b")
        assert "- textgen:enable_kv_cache_reuse = false\n+ textgen:enable_kv_cache_reuse = true" in detail
        assert "canary   triton-b" in detail
        assert "  triton-b        applied" in detail and "  triton-c        pending" in detail
        assert " PASS  ttft_p95_s within threshold (-26%)" in detail
        squeezed = [" ".join(line.split()) for line in detail.splitlines()]
        assert "ttft_p95_s 0.82 0.61 -26% pass" in squeezed
        assert "prefix_hit_rate 0.05 0.44 +780% pass" in squeezed
        assert "alice    approve PENDING_APPROVAL → CANARY  “looks safe”" in detail
        await pilot.press("tab")
        await settle(app, pilot)
        detail = static_text(app, "#rollout")
        assert "- --max-num-batched-tokens = 2048" in detail, "current value from the pre-change snapshot"
        assert "failure_reason  validation failed: ttft_p95_s worse by 0.65 (+217%)" in detail
        assert " FAIL " in detail and "+217%  fail" in detail
        # The manager reports a state change: the rollout moves from the queue to the history.
        app.source.bus.publish(
            topic("rollout", "10"),
            Rollout(
                id=10,
                state="COMPLETED",
                created_at=NOW - 900,
                updated_at=NOW,
                title="Enable prefix caching on triton-b",
                targets=["triton-b"],
            ),
        )
        await settle(app, pilot)
        assert list(table_rows(app, "#queue")) == ["11"]
        assert list(table_rows(app, "#history")) == ["10", "9"]


async def test_empty_daemon_shows_guidance_not_blank_screens(make_app) -> None:
    app: CharterApp = make_app(data=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert "No targets yet" in static_text(app, "#instance-panel")
        await pilot.press("2")
        await settle(app, pilot)
        assert "No watched agent files" in static_text(app, "#compile-status")
        await pilot.press("5")
        await settle(app, pilot)
        assert "No rollouts" in static_text(app, "#rollout")


async def test_resizing_drops_inline_sparklines_and_keeps_the_cursor(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        await pilot.press("down", "down")
        await settle(app, pilot)
        assert len(table_rows(app, "#instances")["vllm-a"][4].split()) == 2, "value and sparkline"
        await pilot.resize_terminal(80, 24)
        await settle(app, pilot)
        assert table_rows(app, "#instances")["vllm-a"][4].split() == ["162ms"], "narrow: the value only"
        assert static_text(app, "#instance-panel").startswith("vllm-a "), "the cursor stayed on vllm-a"


async def test_top_bar_shows_a_crashing_daemon_loop(make_app) -> None:
    """The supervisor's health (daemon/health) reaches the status bar; recovery clears it."""
    from daemon.supervisor import HEALTH_TOPIC, DaemonHealth, LoopHealth

    app: CharterApp = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        assert "● 1/3 up" in screen_text(app).splitlines()[0]
        app.source.bus.publish(
            HEALTH_TOPIC,
            DaemonHealth(
                status="degraded",
                loops={
                    "rollouts": LoopHealth(crashes=3, restarting=True, degraded=True),
                    "poller": LoopHealth(),
                },
            ),
        )
        await settle(app, pilot)
        assert screen_text(app).splitlines()[0].rstrip().endswith("▲ degraded: rollouts")
        app.source.bus.publish(HEALTH_TOPIC, DaemonHealth(loops={"rollouts": LoopHealth(crashes=3)}))
        await settle(app, pilot)
        assert "● 1/3 up" in screen_text(app).splitlines()[0]


async def test_markup_in_titles_and_names_is_shown_as_written(make_app) -> None:
    """A rollout title or a bottleneck summary with Rich markup in it is text: shown with its brackets,
    never interpreted (DataTable reads a plain str cell as markup)."""
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(app, pilot)
        app.source.bus.publish(
            topic("rollout", "77"),
            Rollout(
                id=77,
                state="PENDING_APPROVAL",
                created_at=NOW,
                updated_at=NOW + 5,
                title="[reverse]batch[/] 64",
                targets=["vllm-a"],
            ),
        )
        await pilot.press("5")
        await settle(app, pilot)
        assert "[reverse]batch[/] 64" in screen_text(app)


async def test_each_target_is_compared_with_the_ceiling_at_its_own_block_and_cache(make_app) -> None:
    """vLLM at block 32 (its `cache_config_info`) is compared with the agents' block-32 ceiling, not the
    block-16 one every target used to get; a Triton model without TensorRT-LLM has no prefix cache and
    no ceiling; a vLLM with prefix caching off has no ceiling either."""
    from tests.tui.fixtures import instances

    app: CharterApp = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        await settle(app, pilot)
        assert table_rows(app, "#cache-targets")["vllm-a"][4] == "58% b16"  # block not reported: 16
        vllm, triton, _ = instances()
        vllm.info = {"cache_config": {"block_size": "32", "enable_prefix_caching": "True"}}
        app.source.bus.publish(topic("instance", "vllm-a"), vllm)
        app.source.bus.publish(topic("instance", "triton-b"), triton)
        await settle(app, pilot)
        rows = table_rows(app, "#cache-targets")
        assert rows["vllm-a"][4:6] == ["53% b32", "-4pt"]
        assert rows["triton-b"][4:6] == ["no prefix cache", "-"]
        vllm.info = {"cache_config": {"block_size": "32", "enable_prefix_caching": "False"}}
        app.source.bus.publish(topic("instance", "vllm-a"), vllm.model_copy(update={"last_seen": NOW}))
        await settle(app, pilot)
        assert table_rows(app, "#cache-targets")["vllm-a"][4] == "no prefix cache"


async def test_a_triton_row_shows_the_request_figures_its_core_exports(make_app) -> None:
    """Triton's core exports request durations and counts, not token timings: its TTFT and tok/s cells
    show the e2e mean and the request rate, marked as such, instead of "-" (issue 15 item 6)."""
    from charter_tui.render import numbers

    app: CharterApp = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        app.source.bus.publish(
            topic("sample", "triton-b"),
            MetricSample(
                instance="triton-b",
                ts=NOW,
                engine="triton",
                e2e_mean_s=0.12,
                requests_success_per_s=3.5,
                waiting=1,
            ),
        )
        await settle(app, pilot)
        row = table_rows(app, "#instances")["triton-b"]
        assert row[4].strip() == f"{numbers.seconds(0.12)} e2e", row
        assert row[5].strip() == f"{numbers.rate(3.5)} rq/s", row
        assert table_rows(app, "#instances")["vllm-a"][4].split()[0] == "162ms"  # its own TTFT, unmarked
