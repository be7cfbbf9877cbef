"""The pure renderers: DAG layout, plots, prompts, diffs and numbers."""

from __future__ import annotations

from charter_tui.render import numbers
from charter_tui.render.dag import layout, render_dag
from charter_tui.render.plot import bucket, plot, sparkline
from charter_tui.render.text import config_changes, prompt
from compiler.model import CompileResult, Edge
from tests.tui.fixtures import compile_result


def test_layers_follow_data_flow_and_long_edges_get_dummies() -> None:
    result = compile_result()
    result.edges.append(Edge(source="c1", target="c4", variables=["question"]))  # skips a layer
    nodes, layers, segments = layout(result)
    real = [[n for n in lyr if not nodes[n].dummy] for lyr in layers]
    assert real == [["c1"], ["c2", "c3"], ["c4"]]
    dummies = [n for n in nodes if nodes[n].dummy]
    assert dummies == ["~c1>c4@1"]
    assert ("~c1>c4@1", "c4", "question") in segments


def test_dag_draws_boxes_arrows_labels_and_highlights_the_selected_call() -> None:
    text = render_dag(compile_result(), selected="c3")
    plain = text.plain
    assert plain.count("┌") >= 4 and "▼ plan" in plain and "▼ notes, outline" in plain
    assert "┴" in plain and "┬" in plain, "edges join the boxes' borders"
    c3 = plain.index("c3 outline:33")
    styles = {str(span.style) for span in text.spans if span.start <= c3 < span.end}
    assert any("reverse" in s for s in styles), "the selected call is highlighted"


def test_dag_survives_cycles_and_self_loops_and_empty_files() -> None:
    result = compile_result()
    result.edges += [
        Edge(source="c4", target="c1", variables=["feedback"]),
        Edge(source="c2", target="c2", variables=["notes"]),
    ]
    plain = render_dag(result).plain
    assert "c1 plan:14" in plain and "feedback" not in plain, (
        "a back edge is shown as a loop badge, not drawn"
    )
    assert "↻notes" in plain
    empty = CompileResult.model_validate(
        {**compile_result().model_dump(), "calls": [], "edges": [], "order": [], "patterns": [], "fixes": []}
    )
    assert render_dag(empty).plain == "no LLM calls found in this file"


def test_sparkline_shows_gaps_and_fixed_scales() -> None:
    assert sparkline([None, None, 1.0, 0.5], 4, lo=0, hi=1) == "··█▄"
    assert sparkline([0.1] * 3, 3, lo=0, hi=1) == "▁▁▁"
    assert len(sparkline(list(range(1000)), 10)) == 10
    assert bucket([1, 5, 2, 2], 2) == [5, 2], "buckets keep the peak"


def test_plot_axis_and_ceiling() -> None:
    out = plot(
        [0.2, 0.4, None, 0.3], 30, 4, lo=0.0, hi=1.0, ceiling=0.8, label=numbers.percent
    ).plain.splitlines()
    assert out[0].startswith("100% │") and out[-1].startswith("  0% │")
    assert sum("╌" in line for line in out) == 1


def test_prompt_marks_static_and_dynamic_segments() -> None:
    call = compile_result().calls[0]
    text = prompt(call)
    assert "480 tok, static prefix 420 (88%)" in text.plain
    start = text.plain.index("{request_id}")
    styles = [str(s.style) for s in text.spans if s.start <= start < s.end]
    assert "bold white on red" in styles, "a volatile value is flagged"
    static = text.plain.index("Plan the research")
    assert "green" in [str(s.style) for s in text.spans if s.start <= static < s.end]


def test_config_changes_reads_manager_and_optimizer_shapes() -> None:
    manager = config_changes([{"param": "--max-num-seqs", "value": 128}], {"--max-num-seqs": 64}).plain
    assert manager == "- --max-num-seqs = 64\n+ --max-num-seqs = 128"
    optimizer = config_changes(
        [{"parameter": "kv", "current_value": 0.5, "recommended_value": 0.8, "apply": "restart"}]
    ).plain
    assert optimizer == "- kv = 0.5\n+ kv = 0.8   (restart)"
    triton = config_changes([{"param": "max_batch_size", "value": 8, "model": "textgen"}]).plain
    assert triton.startswith("- textgen:max_batch_size = (current)")


def test_numbers() -> None:
    assert (
        numbers.seconds(0.1234) == "123ms"
        and numbers.seconds(2.5) == "2.50s"
        and numbers.seconds(None) == "-"
    )
    assert numbers.rate(1234.0) == "1.2k" and numbers.rate(12.34) == "12.3" and numbers.rate(3.0) == "3"
    assert numbers.percent(0.876) == "88%"
    assert numbers.age(100.0, 104.0) == "4s" and numbers.age(0.0, 7200.0) == "2h"
