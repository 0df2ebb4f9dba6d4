"""The live terminal view of ``ede-pcap watch --view``: the window's report as one screen.

``render`` is a pure function from the report of the window (``reports.build_report`` of
``watchwindow.Window.result()``, what ``--report`` writes) and a few reader facts to a rich
renderable, so it is tested without a terminal. Names, addresses and texts come from the
traffic (anyone can send them): each goes through ``render.safe_text`` into a ``Text``, so
neither rich markup nor control characters act on the terminal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import rich.box
import rich.console
import rich.table
import rich.text

from analyzer import reports
from analyzer.render import fmt_count, fmt_duration, fmt_time, safe_text, sparkline

TOP = 5        # zones and resolvers shown
SPARK_MAX = 40  # characters in a code's timeline at most


@dataclass(slots=True)
class Status:
    """What the view shows beside the window's report: the reader's state."""

    window_s: int                      # the window's span (--report-window)
    packets_read: int = 0              # since watch started
    lag_s: float | None = None         # wall clock minus the newest packet's time
    open_incidents: list[dict[str, Any]] = field(default_factory=list)  # Incidents.open


def render(report: dict[str, Any], status: Status) -> rich.console.Group:
    """Return the screen for ``report`` (of the window) and ``status``."""
    summary = report["summary"]
    span = summary.get("span_seconds") or 0.0
    lag = "-" if status.lag_s is None or math.isnan(status.lag_s) else fmt_duration(
        max(0.0, status.lag_s))
    head = rich.text.Text()
    head.append("ede-pcap watch", style="bold")
    head.append(f"  window {fmt_duration(status.window_s)}: "
                f"{fmt_time(summary.get('first_seen')) or '-'} to "
                f"{fmt_time(summary.get('last_seen')) or '-'} UTC")
    facts = rich.text.Text(
        f"packets read {fmt_count(status.packets_read)} (window {fmt_count(summary['packets'])})"
        f"  responses {fmt_count(summary['dns_responses'])}"
        f"  with EDE {fmt_count(summary['responses_with_ede'])}"
        f"  EDE options {fmt_count(summary['ede_options'])}  lag {lag}")
    return rich.console.Group(head, facts, _codes(report, span), _incidents(status),
                              _zones(report), _resolvers(report))


def _table(title: str) -> rich.table.Table:
    return rich.table.Table(title=title, title_justify="left", box=rich.box.SIMPLE_HEAD,
                            pad_edge=False, expand=False)


def _t(value: Any) -> rich.text.Text:
    return rich.text.Text(safe_text(value))


def _codes(report: dict[str, Any], span_s: float) -> rich.console.RenderableType:
    if not report["codes"]:
        return rich.text.Text("\nno EDE in the window")
    timeseries = report["timeseries"]
    buckets = timeseries.get("buckets") or 0
    # the whole window in at most SPARK_MAX characters: neighbouring buckets added up
    factor = max(1, math.ceil(buckets / SPARK_MAX))
    series = {s["code"]: _regroup(s["counts"], factor) for s in timeseries.get("series", [])}
    step = reports.interval_label(int(timeseries.get("interval_seconds") or 1) * factor)
    table = _table(f"Codes (timeline: one character per {step})")
    table.add_column("code", justify="right")
    table.add_column("name")
    table.add_column("count", justify="right")
    table.add_column("/min", justify="right")
    table.add_column("timeline", no_wrap=True, overflow="crop")
    for entry in report["codes"]:
        # over at least a minute: a burst of three in 2 ms is not 90,000 a minute
        per_min = entry["count"] * 60 / max(span_s, 60.0)
        counts = series.get(entry["code"], [])
        table.add_row(str(entry["code"]), _t(entry["name"]), fmt_count(entry["count"]),
                      f"{per_min:.1f}", sparkline(counts) if counts else "")
    return table


def _regroup(counts: list[int], factor: int) -> list[int]:
    return [sum(counts[i:i + factor]) for i in range(0, len(counts), factor)]


def _incidents(status: Status) -> rich.console.RenderableType:
    if not status.open_incidents:
        return rich.text.Text("open incidents: none")
    table = _table("Open incidents")
    for name in ("code", "name", "since", "count", "top zone"):
        table.add_column(name, justify="right" if name in ("code", "count") else "left")
    for inc in status.open_incidents:
        zones = inc.get("top_zones") or []
        table.add_row(str(inc["code"]), _t(inc["name"]), fmt_time(inc["start"]),
                      fmt_count(inc["count"]), _t(zones[0]["zone"] if zones else ""))
    return table


def _zones(report: dict[str, Any]) -> rich.console.RenderableType:
    rows = report["zones"][:TOP]
    table = _table("Top zones")
    for name in ("zone", "code", "count", "names, e.g."):
        table.add_column(name, justify="right" if name in ("code", "count") else "left")
    for z in rows:
        table.add_row(_t(z["zone"]), str(z["code"]), fmt_count(z["count"]),
                      _t(", ".join(z["examples"][:2])))
    return table if rows else rich.text.Text("")


def _resolvers(report: dict[str, Any]) -> rich.console.RenderableType:
    rows = report["resolvers"][:TOP]
    table = _table("Top resolvers")
    for name in ("resolver", "EDEs", "responses", "codes"):
        table.add_column(name, justify="left" if name in ("resolver", "codes") else "right")
    for r in rows:
        codes = ", ".join(f"{c['code']}:{fmt_count(c['count'])}" for c in r["codes"][:4])
        table.add_row(_t(r["resolver"]), fmt_count(r["count"]), fmt_count(r["responses"]),
                      codes)
    return table if rows else rich.text.Text("")
