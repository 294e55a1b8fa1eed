"""A grouped bar chart as SVG text, written without a plotting library: one group of bars
per scenario, one bar per policy, a dashed line at the rescue threshold. The output is a
pure function of its input (fixed number formatting, no timestamps), so a rerun with the
same results rewrites the same bytes."""

from xml.sax.saxutils import escape

# Colour-blind-safe (Okabe–Ito); retune's bars get the two strongest colours.
COLOURS = {
    "none": "#999999",
    "rop10": "#56B4E9",
    "rop2": "#009E73",
    "pbt": "#E69F00",
    "retune": "#D55E00",
    "retune-llm": "#CC79A7",
}
FALLBACK = "#000000"

WIDTH = 960
HEIGHT = 420
LEFT, RIGHT, TOP, BOTTOM = 56, 92, 96, 40
LEGEND_COLUMNS = 2
LEGEND_COLUMN_WIDTH = 420


def grouped_bars(groups, series, values, title, threshold, legend):
    """groups: x labels; series: bar names in order; values[(group, name)] in [0, ∞)."""
    top = max(1.1, max(values.values(), default=1.0) * 1.05)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    group_w = plot_w / max(1, len(groups))
    bar_w = group_w * 0.8 / max(1, len(series))

    def y(v):
        return TOP + plot_h * (1 - min(v, top) / top)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{WIDTH / 2:.1f}" y="20" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    # Legend: two columns, as many rows as it takes.
    for i, name in enumerate(series):
        lx = LEFT + (i % LEGEND_COLUMNS) * LEGEND_COLUMN_WIDTH
        ly = 36 + (i // LEGEND_COLUMNS) * 18
        out.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{COLOURS.get(name, FALLBACK)}"/>')
        out.append(f'<text x="{lx + 17}" y="{ly + 10}">{escape(legend.get(name, name))}</text>')
    # Axis, grid and the threshold.
    tick = 0.0
    while tick <= top + 1e-9:
        ty = y(tick)
        out.append(f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{WIDTH - RIGHT}" y2="{ty:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
        tick += 0.25
    out.append(
        f'<text x="14" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">score (val acc ÷ best of grid)</text>'
    )
    for g, group in enumerate(groups):
        x0 = LEFT + g * group_w + group_w * 0.1
        for i, name in enumerate(series):
            v = values[(group, name)]
            bx = x0 + i * bar_w
            by = y(v)
            out.append(
                f'<rect x="{bx:.1f}" y="{by:.1f}" width="{bar_w - 1:.1f}" height="{TOP + plot_h - by:.1f}" '
                f'fill="{COLOURS.get(name, FALLBACK)}"><title>{escape(group)} / {escape(name)}: {v:.3f}</title></rect>'
            )
        label_x = LEFT + (g + 0.5) * group_w
        out.append(f'<text x="{label_x:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{escape(group)}</text>')
    out.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#333333"/>')
    # The threshold goes over the bars, its label in the right margin.
    ty = y(threshold)
    out.append(
        f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{WIDTH - RIGHT}" y2="{ty:.1f}" stroke="#333333" stroke-dasharray="6 4"/>'
    )
    out.append(f'<text x="{WIDTH - RIGHT + 6}" y="{ty + 4:.1f}" fill="#333333">rescued ≥ {threshold:g}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
