"""The incident detector of ``ede-pcap watch``: ``report``'s detector over a sliding window,
turned into start and end events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analyzer import codes, reports

_NS = 1_000_000_000


_TOPS = ("top_domains", "top_zones", "top_resolvers")
_COALESCE = 64  # pieces held before they are joined into one (a stream's are small)


# The EDE frame's columns that reports.work_frame reads
WORK_COLUMNS = ("capture", "frame_number", "src_ip", "src_port", "dst_ip", "dns_id", "qname",
                "rcode", "rd", "edns_udp_size", "ede_count", "ede_code", "extra_text")


@dataclass(slots=True)
class Piece:
    """EDE rows that arrived together, as plain arrays (joining typed frames, categoricals
    and all, costs far more), with their times and codes; rows without a time are left
    out, as no bucket holds them."""

    ts: np.ndarray     # int64 ns
    code: np.ndarray   # int64
    columns: dict[str, np.ndarray]  # WORK_COLUMNS

    @classmethod
    def of(cls, df: pd.DataFrame) -> Piece:
        stamped = df["ts"].notna().to_numpy(dtype=bool)
        if not stamped.all():
            df = df.loc[stamped]
        columns = {name: df[name].to_numpy(dtype=object) for name in WORK_COLUMNS
                   if name in df}
        return cls(df["ts"].to_numpy(dtype=np.int64),
                   df["ede_code"].to_numpy(dtype=np.int64, na_value=-1), columns)

    def take(self, mask: np.ndarray) -> Piece:
        return Piece(self.ts[mask], self.code[mask],
                     {name: values[mask] for name, values in self.columns.items()})


def join_pieces(pieces: list[Piece]) -> Piece:
    return Piece(np.concatenate([p.ts for p in pieces]),
                 np.concatenate([p.code for p in pieces]),
                 {name: np.concatenate([p.columns[name] for p in pieces])
                  for name in pieces[0].columns})


def _frame(piece: Piece) -> pd.DataFrame:
    """The piece as the EDE frame's columns that the work frame reads."""
    return pd.DataFrame({**piece.columns, "ts": pd.to_datetime(piece.ts, utc=True)})


@dataclass(slots=True)
class Incidents:
    """The EDE rows of the last ``window_s`` seconds (packet time) and the incidents open.

    ``evaluate`` runs the detector of ``report`` (``reports.timeline`` and
    ``reports.incidents``) over the window and returns the events: ``start`` when an
    incident reaches the newest bucket, ``end`` when it no longer does (or the stream
    ended, or watch is stopping). The series per code comes from the rows' times and codes
    alone; the work frame (zones, names, resolvers) is built only for the rows inside an
    incident's buckets, which gives the same top lists as building it for the whole window.
    """

    interval_s: int = 60
    window_s: int = 3600
    pieces: list[Piece] = field(default_factory=list)
    first_ns: int | None = None
    newest_ns: int | None = None
    open: dict[int, dict[str, Any]] = field(default_factory=dict)  # code -> its incident
    ended: list[tuple[int, int, int]] = field(default_factory=list)  # (code, start, end) ns
    fresh: bool = False   # rows arrived since the last evaluation
    bucket: int = -1      # the newest bucket at the last evaluation
    # the top lists of each run's rows, by (code, start, end, rows, sum of their times)
    tops: dict[tuple[int, int, int, int, int], dict[str, Any]] = field(default_factory=dict)

    def add(self, df: pd.DataFrame, first_ns: int | None, newest_ns: int | None) -> None:
        if first_ns is not None and (self.first_ns is None or first_ns < self.first_ns):
            self.first_ns = first_ns
        if newest_ns is not None and (self.newest_ns is None or newest_ns > self.newest_ns):
            self.newest_ns = newest_ns
        if len(df):
            self.pieces.append(Piece.of(df))
            self.fresh = True
            if len(self.pieces) > _COALESCE:  # many small chunks within a bucket
                self.pieces = [join_pieces(self.pieces)]

    def held_rows(self) -> int:
        """The EDE rows held for the window (some of its oldest piece may be older)."""
        return sum(len(p.ts) for p in self.pieces)

    def due(self) -> bool:
        """Return whether new rows arrived and the newest packet is in a later bucket than
        at the last evaluation (within a bucket the answer could only flicker)."""
        if not self.fresh or self.newest_ns is None:
            return False
        return self.newest_ns // (self.interval_s * _NS) > self.bucket

    def _prune(self, lo: int) -> None:
        """Drop the pieces wholly before ``lo``; join the rest when they are many."""
        self.pieces = [p for p in self.pieces if len(p.ts) and p.ts.max() >= lo]
        if len(self.pieces) > _COALESCE:
            self.pieces = [join_pieces([p.take(p.ts >= lo) for p in self.pieces])]

    def evaluate(self, final: str | None = None) -> list[dict[str, Any]]:
        """Return the incident events since the last call; ``final`` (``stream-ended``,
        ``shutdown``) ends every incident still open, with that reason.

        Without ``final`` the detector looks at the buckets that are complete: once at every
        bucket boundary the newest packet crossed since the last call (at most a window's
        worth), each over the buckets before it. So the bucket still filling cannot make an
        incident flicker (end, start again) as packets trickle in, and what is found does
        not depend on how the packets were cut into chunks. A start is written when the
        packets of the bucket after the incident's first hot one begin to arrive."""
        self.fresh = False
        if self.newest_ns is None or self.first_ns is None:
            return []
        step = self.interval_s * _NS
        newest = self.newest_ns // step
        if final is not None:
            self.bucket = newest
            return self._evaluate(max(self.first_ns, self.newest_ns - self.window_s * _NS),
                                  self.newest_ns, final)
        events = []
        first = max(self.bucket + 1, newest - self.window_s // self.interval_s)
        for boundary in range(min(first, newest), newest + 1):
            cut = boundary * step
            if cut > self.first_ns:  # a complete bucket holds packets
                events += self._evaluate(max(self.first_ns, cut - self.window_s * _NS),
                                         cut - 1, None)
        self.bucket = newest
        return events

    def _evaluate(self, lo: int, hi: int, final: str | None) -> list[dict[str, Any]]:
        """The events of the detector over the buckets of [lo, hi] (ns, inclusive)."""
        step = self.interval_s * _NS
        self.ended = [e for e in self.ended if e[2] > lo]
        self.tops = {k: v for k, v in self.tops.items() if k[2] > lo}
        found: list[dict[str, Any]] = []
        series: dict[str, Any] = {}
        self._prune(lo)
        if self.pieces:
            ts = np.concatenate([p.ts for p in self.pieces])
            code = np.concatenate([p.code for p in self.pieces])
            inside = (ts >= lo) & (ts <= hi)
            series = reports.timeline(pd.DataFrame({"code": code[inside], "ts": ts[inside]}),
                                      self.interval_s, window=(lo, hi))
            start = reports.parse_iso_ns(series["start"]) if series["start"] else 0
            runs = [(s["code"], start + first * step, start + (last + 1) * step)
                    for s in series["series"]
                    for first, last, _, _ in reports.hot_runs(np.asarray(s["counts"],
                                                                         dtype=np.int64))]
            if runs:  # the detector again, over the codes with a run and their rows only
                keys = {}
                for c, a, b in runs:  # a run's rows, told apart by their number and times
                    rows = ts[(code == c) & (ts >= max(a, lo)) & (ts < b)]
                    keys[(c, a, b)] = (c, a, b, len(rows), int(rows.sum()))
                fresh_runs = [r for r in runs if keys[r] not in self.tops]
                hot = {c for c, _, _ in runs}
                found = reports.incidents(
                    {**series, "series": [s for s in series["series"] if s["code"] in hot]},
                    reports.work_frame(self._rows_in(fresh_runs, lo)), top=5)
                for inc in found:  # top lists: of the same rows, the same as last time
                    key = keys[(inc["code"], reports.parse_iso_ns(inc["start"]),
                                reports.parse_iso_ns(inc["end"]))]
                    if key in self.tops:
                        inc.update(self.tops[key])
                    else:
                        self.tops[key] = {k: inc[k] for k in _TOPS}
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

    def _rows_in(self, runs: list[tuple[int, int, int]], lo: int) -> pd.DataFrame:
        """The rows of the window inside one of ``runs`` ((code, start, end) ns)."""
        picked = []
        for p in self.pieces:
            mask = np.zeros(len(p.ts), bool)
            for code, start, end in runs:
                mask |= (p.code == code) & (p.ts >= max(start, lo)) & (p.ts < end)
            if mask.any():
                picked.append(p.take(mask))
        return _frame(join_pieces(picked or [self.pieces[0].take(np.zeros(len(self.pieces[0].ts),
                                                                      bool))]))


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
