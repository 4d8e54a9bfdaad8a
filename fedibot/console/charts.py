"""Small inline SVG charts rendered on the server (no JavaScript, no chart library).

Only numbers and escaped labels go into the markup."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

W, H = 480, 120
PAD_L, PAD_B, PAD_T = 36, 18, 8


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _frame(inner: list[str], title: str, top_label: str) -> Markup:
    plot_h = H - PAD_B - PAD_T
    parts = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{W}" y2="{PAD_T + plot_h}"/>',
        f'<text class="tick" x="{PAD_L - 4}" y="{PAD_T + 8}" text-anchor="end">'
        f"{escape(top_label)}</text>",
        f'<text class="tick" x="{PAD_L - 4}" y="{PAD_T + plot_h}" text-anchor="end">0</text>',
        f'<text class="tick" x="{PAD_L}" y="{H - 4}">-24 h</text>',
        f'<text class="tick" x="{W}" y="{H - 4}" text-anchor="end">now</text>',
        *inner,
        "</svg>",
    ]
    return Markup("".join(parts))


def bar_chart(values: Sequence[float], title: str, unit: str = "") -> Markup:
    top = max([*values, 1])
    plot_w, plot_h = W - PAD_L, H - PAD_B - PAD_T
    step = plot_w / max(1, len(values))
    bars = []
    for i, value in enumerate(values):
        h = plot_h * value / top
        x = PAD_L + i * step + 1
        y = PAD_T + plot_h - h
        bars.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(1.0, step - 2):.1f}" '
            f'height="{h:.1f}"><title>{escape(_fmt(value))} {escape(unit)}</title></rect>'
        )
    return _frame(bars, title, f"{_fmt(top)}")


def line_chart(series: dict[str, Sequence[float | None]], title: str, unit: str = "s") -> Markup:
    """One polyline per series (a None value breaks the line)."""
    values = [v for s in series.values() for v in s if v is not None]
    top = max([*values, 1.0])
    plot_w, plot_h = W - PAD_L, H - PAD_B - PAD_T
    inner = []
    for n, (name, points) in enumerate(series.items()):
        step = plot_w / max(1, len(points) - 1)
        segments: list[list[str]] = [[]]
        for i, value in enumerate(points):
            if value is None:
                segments.append([])
                continue
            x = PAD_L + i * step
            y = PAD_T + plot_h - plot_h * value / top
            segments[-1].append(f"{x:.1f},{y:.1f}")
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                inner.append(f'<circle class="s{n}" cx="{cx}" cy="{cy}" r="2"/>')
            elif seg:
                inner.append(f'<polyline class="line s{n}" points="{" ".join(seg)}"/>')
        inner.append(
            f'<text class="legend s{n}" x="{PAD_L + 8 + n * 60}" y="{PAD_T + 10}">'
            f"{escape(name)}</text>"
        )
    return _frame(inner, title, f"{_fmt(top)} {unit}")
