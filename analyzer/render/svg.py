"""Inline SVG charts for the HTML report: no script inside, no external reference, every
label escaped. Each function returns one ``<svg>`` element as a string; the page's script
(``interactive.py``) zooms ``time_chart``, which reads whole without it."""

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
    """Return a colour for the ``index``-th series, distinct for any number of series: the
    palette first, then hues a golden angle apart, alternating two lightnesses."""
    if index < len(PALETTE):
        return PALETTE[index]
    hue = (index * 137.508) % 360
    return f"hsl({hue:.0f} 65% {42 if index % 2 else 58}%)"


# Tick spacings for a time axis, in seconds: the first that gives at most MAX_TICKS ticks.
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
              43200, 86400, 172800, 604800)
MAX_TICKS = 8


def time_ticks(start_s: float, end_s: float) -> list[tuple[float, str]]:
    """Return (epoch seconds, label) ticks at a round spacing between start and end (UTC):
    ``09:12:15`` below a minute, ``09:12`` below a day, ``03-12`` (month-day) above."""
    import time

    span = max(end_s - start_s, 1e-9)
    step = next((s for s in TICK_STEPS if span / s <= MAX_TICKS), TICK_STEPS[-1])
    first = -(-start_s // step) * step
    fmt = "%H:%M:%S" if step < 60 else "%H:%M" if step < 86400 else "%m-%d"
    ticks = []
    t = first
    while t <= end_s + 1e-9:
        ticks.append((t, time.strftime(fmt, time.gmtime(t))))
        t += step
    return ticks


def time_chart(series: Sequence[dict[str, Any]], *, start_s: int, step_s: int,
               highlights: Sequence[tuple[int, int, str]] = (), title: str,
               width: int = 960, height: int = 300) -> str:
    """Return one time chart for all codes: a line per code on a shared time axis.

    The plot is a nested ``<svg>`` whose viewBox is in buckets (x) and EDEs (y), so the
    page's script zooms by changing its x range (lines keep their width:
    ``vector-effect``). Without the script it is a still chart whose hover titles give
    each bucket's time and counts.

    :param series: ``{"code", "name", "counts", "color"}`` per code, ``counts`` per bucket.
    :param highlights: (first bucket, last bucket, label) of incidents, inclusive.
    """
    import time

    left, right, top, bottom = 48, 28, 10, 26  # room for the last tick's label
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max((len(s["counts"]) for s in series), default=0) or 1
    peak = max((max(s["counts"], default=0) for s in series), default=0) or 1
    parts = [f'<svg class="chart timechart" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{esc(title)}" data-start="{start_s}" '
             f'data-step="{step_s}" data-buckets="{n}" data-peak="{peak}" data-left="{left}" '
             f'data-plot-width="{plot_w}"><title>{esc(title)}</title>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
             'class="axis"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" class="axis"/>']
    for value, y in ((peak, top + 9), (0, top + plot_h)):
        parts.append(f'<text x="{left - 4}" y="{y}" text-anchor="end" class="value">'
                     f"{fmt_count(value)}</text>")
    parts.append('<g class="xticks">')
    for t, label in time_ticks(start_s, start_s + n * step_s):
        x = left + (t - start_s) / (n * step_s) * plot_w
        parts.append(f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" '
                     f'y2="{top + plot_h + 4}" class="axis"/><text x="{x:.1f}" '
                     f'y="{height - 8}" text-anchor="middle" class="value">{esc(label)}</text>')
    parts.append("</g>")
    parts.append(f'<svg class="plot" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" '
                 f'viewBox="0 0 {n} {peak}" preserveAspectRatio="none">')
    for first, last, label in highlights:
        parts.append(f'<rect x="{first}" y="0" width="{last - first + 1}" height="{peak}" '
                     f'class="incident"><title>{esc(label)}</title></rect>')
    for s in series:
        points = " ".join(f"{i + 0.5},{peak - c}" for i, c in enumerate(s["counts"]))
        parts.append(f'<polyline class="line" data-code="{int(s["code"])}" '
                     f'stroke="{s["color"]}" points="{points}" fill="none" '
                     'vector-effect="non-scaling-stroke"/>')
    # hover targets: one column per bucket that holds EDEs, titled with its time and counts
    for i in range(n):
        counts = sorted(((s["counts"][i], s) for s in series
                         if i < len(s["counts"]) and s["counts"][i]),
                        key=lambda cs: -cs[0])
        if not counts:
            continue
        begin = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start_s + i * step_s))
        total = sum(c for c, _ in counts)
        detail = "; ".join(f"{s['code']} {s['name']}: {fmt_count(c)}" for c, s in counts[:8])
        more = f"; +{len(counts) - 8} more codes" if len(counts) > 8 else ""
        parts.append(f'<rect class="hit" x="{i}" y="0" width="1" height="{peak}">'
                     f"<title>{esc(begin)} UTC (+{step_s}s): {fmt_count(total)} EDE"
                     f"{'' if total == 1 else 's'}; {esc(detail)}{esc(more)}</title></rect>")
    parts.append(f'<rect class="selection" x="0" y="0" width="0" height="{peak}"/>')
    parts.append("</svg></svg>")
    return "".join(parts)


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
