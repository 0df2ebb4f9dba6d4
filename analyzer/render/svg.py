"""Inline SVG charts for the HTML report: no script, no external reference, every label
escaped. Each function returns one ``<svg>`` element as a string."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from analyzer.render import fmt_count, safe_text

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")
HIGHLIGHT = "#e15759"


def esc(value: Any) -> str:
    """Return capture text escaped for SVG/HTML text and attribute values."""
    return html.escape(safe_text(value), quote=True)


def color(index: int) -> str:
    """Return the palette colour for the ``index``-th series."""
    return PALETTE[index % len(PALETTE)]


def bar_chart(bars: Sequence[tuple[str, int]], *, title: str, width: int = 640) -> str:
    """Return a horizontal bar chart: one bar per (label, value), largest first as given."""
    row, label_w, pad = 22, 230, 6
    height = pad * 2 + row * max(1, len(bars))
    peak = max((v for _, v in bars), default=0) or 1
    room = width - label_w - 70
    parts = [_open(width, height, title)]
    for i, (label, value) in enumerate(bars):
        y = pad + i * row
        w = max(1.0, value / peak * room) if value else 0.0
        text = label if len(label) <= 34 else label[:33] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" class="label">'
            f"{esc(text)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
            f'fill="{color(i)}"><title>{esc(label)}: {fmt_count(value)}</title></rect>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 15}" class="value">'
            f"{fmt_count(value)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def series_chart(counts: Sequence[int], *, title: str, fill: str, start: str, end: str,
                 bucket_label: str, highlights: Sequence[tuple[int, int]] = (),
                 width: int = 640, height: int = 110) -> str:
    """Return a column chart of one code's EDEs per bucket, with incident windows shaded.

    :param highlights: (first, last) bucket indexes of incidents, inclusive.
    :param bucket_label: what one column is, e.g. ``per 10s``, for the y-axis caption.
    """
    left, right, top, bottom = 44, 8, 8, 20
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(counts))
    step = plot_w / n
    peak = max(counts, default=0) or 1
    parts = [_open(width, height, title)]
    for first, last in highlights:
        parts.append(f'<rect x="{left + first * step:.2f}" y="{top}" '
                     f'width="{(last - first + 1) * step:.2f}" height="{plot_h}" '
                     f'class="incident"><title>incident</title></rect>')
    bar_w = max(step * 0.85, 0.5)
    for i, value in enumerate(counts):
        if value <= 0:
            continue
        h = value / peak * plot_h
        parts.append(f'<rect x="{left + i * step:.2f}" y="{top + plot_h - h:.2f}" '
                     f'width="{bar_w:.2f}" height="{h:.2f}" fill="{fill}">'
                     f"<title>{fmt_count(value)}</title></rect>")
    axis_y = top + plot_h
    parts.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" class="axis"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{axis_y}" class="axis"/>'
        f'<text x="{left - 4}" y="{top + 9}" text-anchor="end" class="value">'
        f"{fmt_count(max(counts, default=0))}</text>"
        f'<text x="{left - 4}" y="{axis_y}" text-anchor="end" class="value">0</text>'
        f'<text x="{left}" y="{height - 5}" class="value">{esc(start)}</text>'
        f'<text x="{left + plot_w}" y="{height - 5}" text-anchor="end" class="value">'
        f"{esc(end)}</text>"
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 5}" text-anchor="middle" '
        f'class="value">{esc(bucket_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int, height: int, title: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{esc(title)}">'
            f"<title>{esc(title)}</title>")
