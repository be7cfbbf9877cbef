"""Generate the Grafana dashboard for charter-tui and the engines it watches: docs/grafana/charter-tui.json.

    .venv/bin/python scripts/grafana_dashboard.py          # regenerate
    .venv/bin/python scripts/grafana_dashboard.py --check  # exit 1 if the committed file is out of date

Built as code with Grafana's own `grafana-foundation-sdk` builders, never edited by hand. Panels read the
engines' own metrics (vLLM; Triton core and TensorRT-LLM; SGLang) and the daemon's exporter (`charter_*`):
TTFT and inter-token latency quantiles, prefix-cache hit rate with the compiler's ceiling beside it, KV
usage, queue, preemptions, throughput, rollouts by state, SLO compliance, open bottlenecks; rollout state
changes are annotations. Import it as is and pick the Prometheus data source (`${datasource}`).
`tests/integration/test_grafana_dashboard.py` runs every query against a real Prometheus scraping the
test kit's vLLM and a daemon's exporter.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grafana_foundation_sdk.builders.common import VizLegendOptions, VizTooltipOptions
from grafana_foundation_sdk.builders.dashboard import AnnotationQuery, Dashboard, DatasourceVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).resolve().parent.parent / "docs" / "grafana" / "charter-tui.json"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"

# (row, [(panel title, unit, description, [(expr, legend)], min, max)])
PanelSpec = tuple[str, str, str, list[tuple[str, str]], float | None, float | None]


def quantile(q: float, family: str, scale: str = "") -> str:
    return f"histogram_quantile({q}, sum by (le, instance) (rate({family}_bucket[{RATE}]))){scale}"


ROWS: list[tuple[str, list[PanelSpec]]] = [
    (
        "Latency",
        [
            (
                "Time to first token",
                "s",
                "vLLM's and SGLang's time-to-first-token histograms: p50 and p95 per server.",
                [
                    (quantile(0.5, "vllm:time_to_first_token_seconds"), "{{instance}} p50"),
                    (quantile(0.95, "vllm:time_to_first_token_seconds"), "{{instance}} p95"),
                    (quantile(0.95, "sglang:time_to_first_token_seconds"), "{{instance}} p95 (SGLang)"),
                ],
                0,
                None,
            ),
            (
                "Inter-token latency",
                "s",
                "Time between streamed tokens, p50 and p95.",
                [
                    (quantile(0.5, "vllm:inter_token_latency_seconds"), "{{instance}} p50"),
                    (quantile(0.95, "vllm:inter_token_latency_seconds"), "{{instance}} p95"),
                ],
                0,
                None,
            ),
            (
                "Request latency (end to end)",
                "s",
                "vLLM's e2e p95; Triton's mean request duration (its core exports sums and counts, no histogram).",
                [
                    (quantile(0.95, "vllm:e2e_request_latency_seconds"), "{{instance}} p95"),
                    (
                        f"sum by (instance) (rate(nv_inference_request_duration_us[{RATE}])) / "
                        f"sum by (instance) (rate(nv_inference_request_success[{RATE}])) / 1e6",
                        "{{instance}} mean (Triton)",
                    ),
                ],
                0,
                None,
            ),
        ],
    ),
    (
        "Prefix cache and KV",
        [
            (
                "Prefix-cache hit rate vs the compiler's ceiling",
                "percentunit",
                "Share of prompt tokens served from the prefix cache, beside the best share the watched agents' "
                "prompts allow at the server's block size (charter-tui's compiler, steady state).",
                [
                    (
                        f"sum by (instance) (rate(vllm:prefix_cache_hits_total[{RATE}])) / "
                        f"sum by (instance) (rate(vllm:prefix_cache_queries_total[{RATE}]))",
                        "{{instance}} hit rate",
                    ),
                    ("sglang:cache_hit_rate", "{{instance}} hit rate (SGLang)"),
                    ("charter_prefix_cache_ceiling", "{{target}} ceiling"),
                ],
                0,
                1,
            ),
            (
                "KV-cache usage",
                "percentunit",
                "vLLM's KV usage; TensorRT-LLM's used blocks over its maximum; SGLang's token usage.",
                [
                    ("vllm:kv_cache_usage_perc", "{{instance}}"),
                    (
                        'sum by (instance) (nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used"}) / '
                        'sum by (instance) (nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max"})',
                        "{{instance}} (TensorRT-LLM)",
                    ),
                    ("sglang:token_usage", "{{instance}} (SGLang)"),
                ],
                0,
                1,
            ),
            (
                "Preemptions",
                "short",
                "Requests preempted per second: the KV cache ran out mid-flight.",
                [(f"sum by (instance) (rate(vllm:num_preemptions_total[{RATE}]))", "{{instance}}")],
                0,
                None,
            ),
        ],
    ),
    (
        "Load",
        [
            (
                "Queue",
                "short",
                "Requests waiting for the engine.",
                [
                    ("sum by (instance) (vllm:num_requests_waiting)", "{{instance}}"),
                    ("sum by (instance) (nv_inference_pending_request_count)", "{{instance}} (Triton)"),
                    ("sum by (instance) (sglang:num_queue_reqs)", "{{instance}} (SGLang)"),
                ],
                0,
                None,
            ),
            (
                "Throughput",
                "short",
                "Generated tokens per second; Triton's successful requests per second.",
                [
                    (f"sum by (instance) (rate(vllm:generation_tokens_total[{RATE}]))", "{{instance}} tok/s"),
                    (f"sum by (instance) (rate(nv_inference_request_success[{RATE}]))", "{{instance}} req/s"),
                ],
                0,
                None,
            ),
        ],
    ),
    (
        "charter-tui",
        [
            (
                "Rollouts by state",
                "short",
                "charter-tui's rollouts in each state (its daemon's exporter).",
                [("charter_rollouts", "{{state}}")],
                0,
                None,
            ),
            (
                "SLO compliance",
                "percentunit",
                "Share of the window's samples meeting every SLO, per target and window.",
                [("charter_slo_compliance", "{{target}} {{window}}")],
                0,
                1,
            ),
            (
                "Open bottlenecks",
                "short",
                "Bottlenecks the daemon has open, by kind.",
                [("sum by (kind) (charter_bottlenecks_active)", "{{kind}}")],
                0,
                None,
            ),
        ],
    ),
]

# A rollout entering one of these states is an annotation on every panel.
ANNOTATION_EXPR = 'changes(charter_rollouts{state=~"CANARY|COMPLETED|ROLLED_BACK|FAILED"}[1m]) > 0'


def queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every query, the annotation's included (for the tests)."""
    out = [
        (title, expr) for _, panels in ROWS for title, _, _, targets, _, _ in panels for expr, _ in targets
    ]
    return [*out, ("annotation: rollouts", ANNOTATION_EXPR)]


def build() -> Dashboard:
    dash = (
        Dashboard("charter-tui: inference servers, prefix cache, rollouts")
        .uid("charter-tui")
        .tags(["charter-tui", "llm", "vllm", "triton"])
        .refresh("30s")
        .time("now-1h", "now")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .annotation(
            AnnotationQuery()
            .name("Rollouts")
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color("purple")
            .expr(ANNOTATION_EXPR)
        )
    )
    for row, panels in ROWS:
        dash = dash.with_row(Row(row))
        for title, unit, description, targets, lo, hi in panels:
            panel = Timeseries().title(title).description(description).unit(unit).datasource(DATASOURCE)
            panel = panel.height(8).span(8)
            # Options set explicitly: the SDK writes `"options": null` otherwise, which it cannot read back.
            panel = panel.legend(
                VizLegendOptions()
                .display_mode(LegendDisplayMode.LIST)
                .placement(LegendPlacement.BOTTOM)
                .show_legend(True)
            ).tooltip(VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
            if lo is not None:
                panel = panel.min(lo)
            if hi is not None:
                panel = panel.max(hi)
            for i, (expr, legend) in enumerate(targets):
                panel = panel.with_target(
                    Dataquery()
                    .expr(expr)
                    .legend_format(legend)
                    .ref_id(chr(ord("A") + i))
                    .datasource(DATASOURCE)
                )
            dash = dash.with_panel(panel)
    return dash


def render() -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(build().build()) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="generate docs/grafana/charter-tui.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run scripts/grafana_dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
