"""The incident detector of ``ede-pcap watch``: ``report``'s detector over a sliding window,
turned into start and end events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analyzer import codes, reports

_NS = 1_000_000_000


@dataclass(slots=True)
class Incidents:
    """The EDE rows of the last ``window_s`` seconds (packet time) and the incidents open.

    ``evaluate`` runs ``reports.incidents`` (the detector of ``report``) over the window
    and returns the events: ``start`` when an incident reaches the newest bucket, ``end``
    when it no longer does (or the stream ended, or watch is stopping).
    """

    interval_s: int = 60
    window_s: int = 3600
    rows: pd.DataFrame | None = None
    first_ns: int | None = None
    newest_ns: int | None = None
    open: dict[int, dict[str, Any]] = field(default_factory=dict)  # code -> its incident
    ended: list[tuple[int, int, int]] = field(default_factory=list)  # (code, start, end) ns
    fresh: bool = False   # rows arrived since the last evaluation
    bucket: int = -1      # the newest bucket at the last evaluation

    def add(self, df: pd.DataFrame, first_ns: int | None, newest_ns: int | None) -> None:
        if first_ns is not None and (self.first_ns is None or first_ns < self.first_ns):
            self.first_ns = first_ns
        if newest_ns is not None and (self.newest_ns is None or newest_ns > self.newest_ns):
            self.newest_ns = newest_ns
        if len(df):
            self.rows = df if self.rows is None else pd.concat([self.rows, df],
                                                               ignore_index=True)
            self.fresh = True

    def due(self) -> bool:
        """Return whether new rows arrived and the newest packet is in a later bucket than
        at the last evaluation (within a bucket the answer could only flicker)."""
        if not self.fresh or self.newest_ns is None:
            return False
        return self.newest_ns // (self.interval_s * _NS) > self.bucket

    def evaluate(self, final: str | None = None) -> list[dict[str, Any]]:
        """Return the incident events since the last call; ``final`` (``stream-ended``,
        ``shutdown``) ends every incident still open, with that reason."""
        self.fresh = False
        if self.newest_ns is None or self.first_ns is None:
            return []
        self.bucket = self.newest_ns // (self.interval_s * _NS)
        lo = max(self.first_ns, self.newest_ns - self.window_s * _NS)
        self.ended = [e for e in self.ended if e[2] > lo]
        found: list[dict[str, Any]] = []
        series: dict[str, Any] = {}
        if self.rows is not None:
            ts = self.rows["ts"].to_numpy(dtype="int64", na_value=0)
            self.rows = self.rows.loc[ts >= lo].reset_index(drop=True)
            work = reports.work_frame(self.rows)
            series = reports.timeline(work, self.interval_s, window=(lo, self.newest_ns))
            found = reports.incidents(series, work, top=5)
        events = []
        seen = set()
        for inc in found:
            code = inc["code"]
            ongoing = final is None and inc["end"] == series["end"]
            if ongoing:
                seen.add(code)
                if code not in self.open:
                    events.append(_event("start", inc))
                self.open[code] = inc
                continue
            start, end = reports.parse_iso_ns(inc["start"]), reports.parse_iso_ns(inc["end"])
            if code in self.open:
                del self.open[code]
                seen.add(code)
            elif any(c == code and s < end and start < e for c, s, e in self.ended):
                continue  # reported already (its bounds may have moved with the baseline)
            else:
                events.append(_event("start", inc))
            events.append(_event("end", inc, final or "ended"))
            self.ended.append((code, start, end))
        for code in [c for c in self.open if c not in seen]:  # the baseline caught up
            inc = self.open.pop(code)
            events.append(_event("end", inc, final or "ended"))
            self.ended.append((code, reports.parse_iso_ns(inc["start"]),
                               reports.parse_iso_ns(inc["end"])))
        return events


def _event(kind: str, inc: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
    event = {
        "event": kind, "code": inc["code"], "name": inc["name"], "start": inc["start"],
        "end": inc["end"] if kind == "end" else None,
        "count": inc["count"], "peak": inc["peak"], "peak_at": inc["peak_at"],
        "baseline": inc["baseline"], "threshold": inc["threshold"],
        "zones": inc["top_zones"], "resolvers": inc["top_resolvers"],
        "domains": inc["top_domains"], "next_step": codes.describe(inc["code"]).next_step,
    }
    if reason is not None:
        event["reason"] = reason
    return event


def to_json_line(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n"
