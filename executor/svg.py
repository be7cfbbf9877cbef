"""Small, dependency-free SVG bar charts for the benchmark report (grouped bars, one colour per series).

The report is read on GitHub or in a browser, both of which render SVG; generating it here keeps the
daemon free of a plotting stack. Values that are missing (None) leave a gap instead of a zero bar,
so "not measured" never reads as "zero".
"""

from __future__ import annotations

from html import escape

PALETTE = ("#9aa5b1", "#2f80ed", "#27ae60", "#f2994a", "#eb5757")


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return value


def bar_chart(
    title: str,
    categories: list[str],
    series: dict[str, list[float | None]],
    unit: str = "",
    percent: bool = False,
    width: int = 720,
    height: int = 300,
) -> str:
    left, right, top, bottom = 60, 20, 40, 70
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if v is not None]
    vmax = 1.0 if percent else _nice_max(max(values, default=0.0) * 1.05)
    n_cat, n_ser = max(1, len(categories)), max(1, len(series))
    group_w = plot_w / n_cat
    bar_w = max(2.0, group_w * 0.8 / n_ser)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for i in range(5):
        tick = vmax * i / 4
        y = top + plot_h - plot_h * i / 4
        label = f"{tick * 100:.0f}%" if percent else f"{tick:.3g}{unit}"
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    for ci, cat in enumerate(categories):
        gx = left + ci * group_w + group_w * 0.1
        for si, (name, vs) in enumerate(series.items()):
            v = vs[ci] if ci < len(vs) else None
            if v is None:
                continue
            h = plot_h * min(v, vmax) / vmax
            x = gx + si * bar_w
            shown = f"{v * 100:.1f}%" if percent else f"{v:.4g}{unit}"
            out.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[si % len(PALETTE)]}"><title>{escape(name)} {escape(cat)}: '
                f"{escape(shown)}</title></rect>"
            )
        label_x = left + ci * group_w + group_w / 2
        out.append(
            f'<text x="{label_x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{escape(cat[:18])}</text>'
        )
    lx = left
    for si, name in enumerate(series):
        out.append(
            f'<rect x="{lx}" y="{height - 22}" width="12" height="12" fill="{PALETTE[si % len(PALETTE)]}"/>'
        )
        out.append(f'<text x="{lx + 16}" y="{height - 12}">{escape(name)}</text>')
        lx += 28 + 7 * len(name)
    out.append("</svg>")
    return "\n".join(out)
