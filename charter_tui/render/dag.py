"""Draw an agent's call DAG as a layered graph of boxes in the terminal (Sugiyama-style).

Steps, each small enough to reason about:
1. layering by longest path from the sources (networkx topological order), so every edge points
   down; edges that skip layers get one-column dummy nodes so they route around boxes;
2. ordering within layers by barycenters of neighbours, a few down/up sweeps, which removes most
   crossings on the DAGs agents have (chains, fan-outs, diamonds);
3. placement: each layer centred, boxes a few columns apart;
4. routing: in the channel between two layers every source gets its own horizontal track, and
   lines are drawn as direction bits per cell so crossings and junctions come out as proper
   box-drawing characters (┼ ┬ ┴ ├ ┤) instead of overwriting each other.
A hand-written layout instead of a dependency (netext) because these graphs are small (tens of
calls) and the terminal output must be deterministic for snapshot tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
from rich.text import Text

from compiler.model import ANTI_PATTERNS, CompileResult, PatternKind

# Short, stable badges for the patterns (the legend under the graph spells them out).
BADGES: dict[str, str] = {
    PatternKind.SHARED_PREFIX: "SP",
    PatternKind.SEQUENTIAL_CHAIN: "SEQ",
    PatternKind.MAP_REDUCE: "MR",
    PatternKind.GROWING_HISTORY: "GH",
    PatternKind.BRANCHING: "BR",
    PatternKind.LOOP_INVARIANT: "LI",
    PatternKind.DELTA_MATCHING: "DM",
    PatternKind.DYNAMIC_PREFIX: "!DP",
    PatternKind.MISPLACED_SHARED_CONTEXT: "!MC",
}
BADGE_NAMES: dict[str, str] = {
    "SP": "shared prefix",
    "SEQ": "sequential chain",
    "MR": "map -> reduce",
    "GH": "growing history",
    "BR": "branching",
    "LI": "loop invariant",
    "DM": "delta matching",
    "!DP": "dynamic prefix (anti-pattern)",
    "!MC": "misplaced shared context (anti-pattern)",
}
MAX_LABEL = 26
H_GAP = 3
BOX_H = 4  # top border, two text lines, bottom border

UP, DOWN, LEFT, RIGHT = 1, 2, 4, 8
LINE_CHARS = {
    UP | DOWN: "│",
    LEFT | RIGHT: "─",
    DOWN | RIGHT: "┌",
    DOWN | LEFT: "┐",
    UP | RIGHT: "└",
    UP | LEFT: "┘",
    UP | DOWN | RIGHT: "├",
    UP | DOWN | LEFT: "┤",
    DOWN | LEFT | RIGHT: "┬",
    UP | LEFT | RIGHT: "┴",
    UP | DOWN | LEFT | RIGHT: "┼",
    UP: "│",
    DOWN: "│",
    LEFT: "─",
    RIGHT: "─",
}


@dataclass
class Node:
    id: str
    lines: list[list[tuple[str, str]]]
    dummy: bool = False
    width: int = 1
    layer: int = 0
    x: int = 0  # left column

    @property
    def center(self) -> int:
        return self.x + self.width // 2


@dataclass
class Canvas:
    bits: dict[tuple[int, int], int] = field(default_factory=dict)
    text: dict[tuple[int, int], tuple[str, str]] = field(default_factory=dict)
    line_style: dict[tuple[int, int], str] = field(default_factory=dict)

    def line(self, r: int, c: int, bits: int, style: str = "") -> None:
        self.bits[(r, c)] = self.bits.get((r, c), 0) | bits
        if style:
            self.line_style[(r, c)] = style

    def vline(self, c: int, r0: int, r1: int, style: str = "") -> None:
        for r in range(r0, r1 + 1):
            self.line(r, c, (UP if r > r0 else 0) | (DOWN if r < r1 else 0), style)

    def hline(self, r: int, c0: int, c1: int, style: str = "") -> None:
        lo, hi = min(c0, c1), max(c0, c1)
        for c in range(lo, hi + 1):
            self.line(r, c, (LEFT if c > lo else 0) | (RIGHT if c < hi else 0), style)

    def put(self, r: int, c: int, s: str, style: str = "") -> None:
        for i, ch in enumerate(s):
            self.text[(r, c + i)] = (ch, style)

    def free(self, r: int, c: int) -> bool:
        return (r, c) not in self.bits and (r, c) not in self.text

    def render(self) -> Text:
        cells = set(self.bits) | set(self.text)
        if not cells:
            return Text()
        rows = max(r for r, _ in cells) + 1
        cols = max(c for _, c in cells) + 1
        out = Text()
        for r in range(rows):
            for c in range(cols):
                if (r, c) in self.text:
                    ch, style = self.text[(r, c)]
                    out.append(ch, style=style)
                elif (r, c) in self.bits:
                    out.append(
                        LINE_CHARS.get(self.bits[(r, c)], "·"), style=self.line_style.get((r, c), "dim")
                    )
                else:
                    out.append(" ")
            if r < rows - 1:
                out.append("\n")
        out.rstrip()
        return out


def badges_by_call(result: CompileResult) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {c.id: [] for c in result.calls}
    for finding in result.patterns:
        badge = BADGES.get(finding.kind, finding.kind.value[:3])
        for cid in finding.calls:
            if cid in out and badge not in out[cid]:
                out[cid].append(badge)
    return out


Run = list[tuple[str, str]]  # a line of a box: (text, style) pieces


def _box_lines(result: CompileResult, badges: dict[str, list[str]]) -> dict[str, list[Run]]:
    lines: dict[str, list[Run]] = {}
    self_loops = {e.source: e.variables for e in result.edges if e.source == e.target}
    for call in result.calls:
        func = call.function.rsplit(".", 1)[-1]
        title = f"{call.id} {func}:{call.line}"
        if len(title) > MAX_LABEL:
            title = title[: MAX_LABEL - 1] + "…"
        second: Run = []
        for b in badges.get(call.id, []):
            second.append((f"[{b}]", "bold white on red" if b.startswith("!") else "bold black on green"))
        if call.fanout not in (None, 1):
            second.append((f"×{call.fanout}", "yellow"))
        if call.loops:
            loop_var = ",".join(self_loops.get(call.id, [])) or (call.loops[0].target or "")
            second.append((f"↻{loop_var}", "yellow"))
        # Badges separated by a space; a line that would not fit is cut with an ellipsis.
        spaced: Run = []
        used = 0
        for k, (txt, style) in enumerate(second):
            piece = ("" if k == 0 else " ") + txt
            if used + len(piece) > MAX_LABEL:
                spaced.append(("…", "dim"))
                break
            if k:
                spaced.append((" ", ""))
            spaced.append((txt, style))
            used += len(piece)
        lines[call.id] = [[(title, "")], spaced]
    return lines


def _run_len(run: Run) -> int:
    return sum(len(t) for t, _ in run)


def layout(result: CompileResult) -> tuple[dict[str, Node], list[list[str]], list[tuple[str, str, str]]]:
    """Layers (lists of node ids, dummies included) and the drawn edge segments (src, dst, label)."""
    order_index = {cid: i for i, cid in enumerate(result.order or [c.id for c in result.calls])}
    for c in result.calls:
        order_index.setdefault(c.id, len(order_index))
    g = nx.DiGraph()
    g.add_nodes_from(sorted(order_index, key=order_index.__getitem__))
    labels: dict[tuple[str, str], list[str]] = {}
    for e in result.edges:
        if e.source == e.target or e.source not in order_index or e.target not in order_index:
            continue
        # An edge against source order can only come from a loop: drawn reversed it would make a
        # cycle; the loop is shown as the ↻ badge instead.
        if order_index[e.source] > order_index[e.target]:
            continue
        g.add_edge(e.source, e.target)
        labels.setdefault((e.source, e.target), [])
        labels[(e.source, e.target)] += [v for v in e.variables if v not in labels[(e.source, e.target)]]

    layer: dict[str, int] = {}
    for n in nx.topological_sort(g):
        layer[n] = max((layer[p] + 1 for p in g.predecessors(n)), default=0)

    badges = badges_by_call(result)
    box_lines = _box_lines(result, badges)
    nodes: dict[str, Node] = {}
    for n in g.nodes:
        lines = box_lines.get(n, [[(n, "")], []])
        width = max(_run_len(lines[0]), _run_len(lines[1])) + 4
        nodes[n] = Node(n, lines, width=width, layer=layer[n])

    segments: list[tuple[str, str, str]] = []
    for (src, dst), variables in labels.items():
        label = ",".join(variables)
        prev = src
        for lyr in range(layer[src] + 1, layer[dst]):
            dummy_id = f"~{src}>{dst}@{lyr}"
            nodes[dummy_id] = Node(dummy_id, [], dummy=True, width=1, layer=lyr)
            segments.append((prev, dummy_id, ""))
            prev = dummy_id
        segments.append((prev, dst, label))

    n_layers = max((n.layer for n in nodes.values()), default=-1) + 1
    layers: list[list[str]] = [[] for _ in range(n_layers)]
    for nid in sorted(nodes, key=lambda k: (order_index.get(k.split(">")[0].lstrip("~"), 0), k)):
        layers[nodes[nid].layer].append(nid)

    preds: dict[str, list[str]] = {}
    succs: dict[str, list[str]] = {}
    for s, d, _ in segments:
        succs.setdefault(s, []).append(d)
        preds.setdefault(d, []).append(s)

    def sweep(neighbours: dict[str, list[str]], rng: range) -> None:
        for i in rng:
            pos = {nid: j for j, nid in enumerate(layers[i - (1 if rng.step > 0 else -1)])}
            cur = {nid: j for j, nid in enumerate(layers[i])}

            def key(nid: str, pos: dict[str, int] = pos, cur: dict[str, int] = cur) -> tuple[float, int]:
                ns = [pos[m] for m in neighbours.get(nid, []) if m in pos]
                return (sum(ns) / len(ns) if ns else float(cur[nid]), cur[nid])

            layers[i].sort(key=key)

    for _ in range(4):
        sweep(preds, range(1, n_layers))
        sweep(succs, range(n_layers - 2, -1, -1))

    return nodes, layers, segments


def render_dag(result: CompileResult, selected: str | None = None) -> Text:
    if not result.calls:
        return Text("no LLM calls found in this file", style="dim italic")
    nodes, layers, segments = layout(result)
    widths = [sum(nodes[n].width for n in lyr) + H_GAP * (len(lyr) - 1) for lyr in layers]
    total = max(widths, default=0)
    for lyr, w in zip(layers, widths):
        x = (total - w) // 2
        for nid in lyr:
            nodes[nid].x = x
            x += nodes[nid].width + H_GAP

    # Channel heights: one track per source that needs a horizontal run, plus a drop and an arrow row.
    tracks: list[dict[str, int]] = []
    for i in range(len(layers) - 1):
        srcs = [
            s
            for s in layers[i]
            if any(nodes[d].center != nodes[s].center for s2, d, _ in segments if s2 == s)
        ]
        tracks.append({s: k for k, s in enumerate(srcs)})
    tops: list[int] = []
    row = 0
    for i in range(len(layers)):
        tops.append(row)
        row += BOX_H
        if i < len(layers) - 1:
            row += 2 + len(tracks[i])

    canvas = Canvas()
    for nid, node in nodes.items():
        top = tops[node.layer]
        if node.dummy:
            canvas.vline(node.center, top, top + BOX_H - 1)
            continue
        style = "bold yellow" if nid == selected else "blue"
        left, right, bottom = node.x, node.x + node.width - 1, top + BOX_H - 1
        canvas.hline(top, left, right, style)
        canvas.hline(bottom, left, right, style)
        canvas.vline(left, top, bottom, style)
        canvas.vline(right, top, bottom, style)
        title_style = "bold reverse" if nid == selected else "bold"
        for k, line in enumerate(node.lines):
            canvas.put(top + 1 + k, left + 1, " " * (node.width - 2))
            col = left + 2
            for txt, piece_style in line:
                canvas.put(top + 1 + k, col, txt, piece_style or (title_style if k == 0 else ""))
                col += len(txt)

    arrow_labels: dict[tuple[int, int], list[str]] = {}
    for src, dst, label in segments:
        s, d = nodes[src], nodes[dst]
        lyr = s.layer
        start = tops[lyr] + BOX_H - 1
        chan_top = tops[lyr] + BOX_H
        arrow_row = tops[lyr + 1] - 1
        sx, dx = s.center, d.center
        canvas.line(start, sx, DOWN)  # the port on the box's bottom border (┬), or a dummy's line
        if sx == dx:
            canvas.vline(sx, start, arrow_row)
        else:
            track_row = chan_top + 1 + tracks[lyr][src]
            canvas.vline(sx, start, track_row)
            canvas.hline(track_row, sx, dx)
            canvas.vline(dx, track_row, arrow_row)
        if d.dummy:
            canvas.line(arrow_row, dx, DOWN)
            canvas.line(arrow_row + 1, dx, UP)
        else:
            canvas.put(arrow_row, dx, "▼", "cyan")
            canvas.line(arrow_row + 1, dx, UP)  # joins the target's top border (┴)
            if label:
                arrow_labels.setdefault((arrow_row, dx), []).append(label)
    # Edges into one call share its port, so their variables share one label after the arrow.
    for (r, c), names in arrow_labels.items():
        text = " " + ", ".join(sorted(set(names)))
        for ch in text[: MAX_LABEL + 2]:
            c += 1
            if not canvas.free(r, c):
                break
            canvas.put(r, c, ch, "italic cyan")
    return canvas.render()


def legend(result: CompileResult) -> Text:
    used = sorted({b for bs in badges_by_call(result).values() for b in bs})
    out = Text()
    for b in used:
        anti = b.startswith("!")
        out.append(f"[{b}]", style="bold white on red" if anti else "bold black on green")
        out.append(f" {BADGE_NAMES.get(b, b)}  ")
    return out


def is_anti(kind: str) -> bool:
    return kind in {k.value for k in ANTI_PATTERNS}
