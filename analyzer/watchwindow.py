"""The recent traffic of ``ede-pcap watch`` as pieces that add up, for full reports and the view.

    window = Window(bucket_s=60, span_s=900)
    tracker = window.tracker()             # one per scanner (a file, a stream, a connection)
    window.take(scanner, tracker, frames)  # after every chunk: what it added, into buckets
    parts = window.parts()                 # copies of the buckets (under Watcher.lock)
    result = window.trim(pipeline.combine(parts))  # a ScanResult (= window.result())

Each bucket of packet time is a ``pipeline.Partial``, the form in which ``--jobs`` and Dask
add up scans of different files, so ``reports.build_report`` of ``result()`` is what
``report`` says of the same traffic. Per-second response counts, EDE options and responses
with EDE are counted in the bucket of their own time; the other counters of a chunk, and its
EDE rows, go to the bucket of its newest packet (``trim`` drops rows behind the window).
Buckets older than the span (behind the newest packet) are dropped: memory holds the rows
and counters of the span, never per-name state beyond it. Callers hold ``Watcher.lock``
around ``take`` and ``parts`` (connections are read concurrently); ``parts`` returns copies,
so combining them needs no lock.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from analyzer import frame, logstage, pipeline, zonecuts
from analyzer.result import CaptureInfo, ScanResult

_NS = 1_000_000_000
FRAMES_PER_BUCKET = 16  # EDE frames a bucket holds before they are joined into one


@dataclass(slots=True)
class Tracker:
    """What was taken from one scanner so far (its counters only grow)."""

    number: int  # the order in which sources were opened: the report lists captures so
    seen: dict[str, Any] = field(default_factory=dict)  # counter name -> value taken
    last_ts_ns: int | None = None  # the newest packet of the previous take


@dataclass(slots=True)
class _Piece:
    partial: pipeline.Partial
    infos: dict[int, CaptureInfo] = field(default_factory=dict)  # Tracker.number -> its delta


class Window:
    """The last ``span_s`` seconds of packet time, in buckets of ``bucket_s``."""

    def __init__(self, bucket_s: int = 60, span_s: int = 900):
        self.bucket_ns = bucket_s * _NS
        self.span_ns = span_s * _NS
        self.pieces: dict[int, _Piece] = {}  # bucket number (ts // bucket_ns) -> its piece
        self.newest_ns: int | None = None
        self.version = 0  # taken chunks so far: an unchanged window needs no new report
        self._numbers = itertools.count()

    def tracker(self) -> Tracker:
        return Tracker(next(self._numbers))

    # -- in -------------------------------------------------------------------------------

    def take(self, scanner: pipeline.Scanner, tracker: Tracker, frames: list[pd.DataFrame],
             done: bool = False) -> None:
        """Add what ``scanner`` counted since the last take, and its EDE ``frames`` (the
        rows it built since then); ``done``: its source is read to the end."""
        info = scanner.captures[-1] if scanner.captures else None
        newest = info.last_ts_ns if info is not None else None
        if newest is not None and (self.newest_ns is None or newest > self.newest_ns):
            self.newest_ns = newest
        here = newest if newest is not None else self.newest_ns
        if here is None:  # nothing with a time yet: the counters wait for the first packet
            return
        piece = self._piece(here // self.bucket_ns)
        p = piece.partial
        seen = tracker.seen
        counts = scanner.dns.counts
        for name, now in (("accounting", scanner.accounting), ("problems", scanner.problems),
                          ("tunnels", scanner.packets_stage.tunnels),
                          ("unopened", scanner.packets_stage.unopened)):
            _add(getattr(p, name), _gain(now, seen.setdefault(name, {})))
        gains: dict[str, int] = {}
        for name in ("dns_queries", "dns_responses", "responses_with_ede", "ede_options"):
            now = getattr(counts, name)
            gains[name] = now - seen.get(name, 0)
            seen[name] = now
        # responses, EDE options and responses with EDE are counted in the bucket of their
        # own time (a file read in one chunk still spreads over its minutes); the first
        # take finds what the first chunk counted before tracking began
        fresh = counts.take_fresh() if counts.fresh is not None else dict(counts.seconds)
        counts.track_fresh()
        spread: dict[str, dict[int, int]] = {"dns_responses": {}, "ede_options": {},
                                             "responses_with_ede": {}}
        oldest = self._oldest()
        for second, n in fresh.items():
            bucket = second * _NS // self.bucket_ns
            if bucket >= oldest:
                _add(self._piece(bucket).partial.seconds, {second: n})
            _add(spread["dns_responses"], {bucket: n})
        for df in frames:
            self._rows(df, here, spread)
        for name, gain in gains.items():
            by_bucket = spread.get(name, {})
            if sum(by_bucket.values()) != gain:  # not one to one: all to the newest bucket
                by_bucket = {here // self.bucket_ns: gain}
            for bucket, n in by_bucket.items():
                if bucket >= oldest:  # behind the window: counted, then dropped at once
                    q = self._piece(bucket).partial
                    setattr(q, name, getattr(q, name) + n)
        p.report_rows.extend(scanner.dns.store.report_rows)
        scanner.dns.store.report_rows.clear()  # taken: watch keeps them only in the window
        if scanner.log_stats.messages:
            stats = scanner.log_stats.as_dict()
            p.dnstap = logstage.merge_stats([p.dnstap, _stats_gain(stats, seen)])
        if info is not None:
            self._capture(piece, tracker, info, done)
        if done and scanner.dns.zone_state:  # gathered per file (DnsStage.end_file)
            p.zones = zonecuts.merge([p.zones, scanner.dns.zone_state])
        tracker.last_ts_ns = newest if newest is not None else tracker.last_ts_ns
        self.version += 1
        self._drop_old()

    def _piece(self, bucket: int) -> _Piece:
        piece = self.pieces.get(bucket)
        if piece is None:
            piece = self.pieces[bucket] = _Piece(pipeline.Partial(
                rows=[], accounting={}, problems={}, captures=[], dns_queries=0,
                dns_responses=0, responses_with_ede=0, ede_options=0, seconds={},
                all_responses=False))
        return piece

    def _capture(self, piece: _Piece, tracker: Tracker, info: CaptureInfo, done: bool) -> None:
        seen = tracker.seen
        delta = piece.infos.get(tracker.number)
        if delta is None:
            # a later piece starts where the previous one ended: the packets in between
            # are not known one by one here
            first = info.first_ts_ns if tracker.last_ts_ns is None else tracker.last_ts_ns
            delta = piece.infos[tracker.number] = CaptureInfo(
                path=info.path, first_ts_ns=first)
        delta.file_format, delta.compression = info.file_format, info.compression
        delta.linktypes = list(info.linktypes)
        delta.packets += info.packets - seen.get(" packets", 0)
        delta.bytes_read += max(0, info.bytes_read - seen.get(" bytes", 0))
        seen[" packets"], seen[" bytes"] = info.packets, max(info.bytes_read,
                                                              seen.get(" bytes", 0))
        if info.last_ts_ns is not None:
            delta.last_ts_ns = info.last_ts_ns
            if delta.first_ts_ns is None:
                delta.first_ts_ns = info.first_ts_ns
        if done:
            delta.error, delta.error_offset = info.error, info.error_offset
            delta.truncated_at = info.truncated_at

    def _rows(self, df: pd.DataFrame, here: int, spread: dict[str, dict[int, int]]) -> None:
        """File the EDE rows of ``df`` by their time; count options and first options
        (one per response) per bucket in ``spread``, those behind the window too."""
        if not len(df):
            return
        ts = df["ts"].to_numpy(dtype="int64", na_value=here)
        buckets = ts // self.bucket_ns
        first = (df["ede_index"] == 0).to_numpy(dtype=bool, na_value=False)
        numbers, counts = np.unique(buckets, return_counts=True)
        _add(spread["ede_options"], dict(zip(numbers.tolist(), counts.tolist(), strict=True)))
        firsts, n_firsts = np.unique(buckets[first], return_counts=True)
        _add(spread["responses_with_ede"],
             dict(zip(firsts.tolist(), n_firsts.tolist(), strict=True)))
        oldest = self._oldest()
        if numbers[-1] < oldest:
            return
        if numbers[0] < oldest:  # a backlog's chunk spans hours: what is behind goes now
            df = df[buckets >= oldest].reset_index(drop=True)
        # in the bucket of its newest row, which drops after every row in it is behind the
        # window; result() trims the rows of older buckets (cheaper than a split per bucket)
        self._keep(int(numbers[-1]), df)

    def _keep(self, bucket: int, df: pd.DataFrame) -> None:
        frames = self._piece(bucket).partial.frames
        frames.append(df)
        if len(frames) > FRAMES_PER_BUCKET:
            # a stream gives a frame a chunk, often of a few rows: joined, a bucket costs
            # its rows, and a report joins a few frames per bucket rather than thousands
            joined = frame.concat(list(frames), frame.EDE_DTYPES)
            frames[:] = [joined]

    def _oldest(self) -> int:
        """Return the oldest bucket the window keeps."""
        if self.newest_ns is None:
            return -(1 << 62)
        return (self.newest_ns - self.span_ns) // self.bucket_ns + 1

    def _drop_old(self) -> None:
        oldest = self._oldest()
        for bucket in [b for b in self.pieces if b < oldest]:
            del self.pieces[bucket]

    # -- out ------------------------------------------------------------------------------

    def start_ns(self) -> int | None:
        """Return where the window starts: the start of its oldest bucket kept."""
        if self.newest_ns is None:
            return None
        return self._oldest() * self.bucket_ns

    def result(self) -> ScanResult:
        """Return the window as one scan's result (the pieces stay: copies are combined)."""
        return self.trim(pipeline.combine(self.parts()))

    def parts(self) -> list[pipeline.Partial]:
        """Return copies of the pieces, the captures merged into the first: what ``result``
        combines. Call under the lock; combining them (the costly part) needs no lock."""
        self._drop_old()
        parts: list[pipeline.Partial] = []
        infos: dict[int, CaptureInfo] = {}
        for bucket in sorted(self.pieces):
            piece = self.pieces[bucket]
            p = piece.partial
            # copies of what readers go on adding to while the copies are combined
            parts.append(replace(p, frames=list(p.frames), captures=[], rows=[],
                                 report_rows=list(p.report_rows),
                                 accounting=dict(p.accounting), problems=dict(p.problems),
                                 seconds=dict(p.seconds), tunnels=dict(p.tunnels),
                                 unopened=dict(p.unopened)))
            for number, delta in piece.infos.items():
                merged = infos.get(number)
                if merged is None:
                    infos[number] = replace(delta, linktypes=list(delta.linktypes))
                else:
                    _absorb(merged, delta)
        start = self.start_ns()
        captures = [infos[n] for n in sorted(infos)]
        for info in captures:  # a piece's first packet is after the previous one's end
            if start is not None and info.first_ts_ns is not None:
                info.first_ts_ns = max(info.first_ts_ns, start)
        if not parts:
            parts.append(self._empty())
        parts[0].captures = captures
        return parts

    def trim(self, result: ScanResult) -> ScanResult:
        """Drop from ``result`` (of ``parts()``) the EDE rows behind the window's start,
        which a bucket holding a chunk that spans several buckets keeps."""
        start = self.start_ns()
        if start is None or not len(result.ede):
            return result
        ts = result.ede["ts"].to_numpy(dtype="int64", na_value=start)
        if (ts < start).any():
            result.ede = result.ede[ts >= start].reset_index(drop=True)
        return result

    @staticmethod
    def _empty() -> pipeline.Partial:
        return pipeline.Partial(rows=[], accounting={}, problems={}, captures=[],
                                dns_queries=0, dns_responses=0, responses_with_ede=0,
                                ede_options=0, seconds={}, all_responses=False)


def _gain(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """Return how much each counter of ``now`` grew since ``before``, and remember it."""
    out = {k: n - before.get(k, 0) for k, n in now.items() if n != before.get(k, 0)}
    before.update(now)
    return out


def _add(into: dict[Any, int], more: dict[Any, int]) -> None:
    for k, n in more.items():
        into[k] = into.get(k, 0) + n


def _stats_gain(stats: dict[str, Any], seen: dict[str, Any]) -> dict[str, Any]:
    """Return what a scanner's ``LogStats.as_dict()`` grew by since the last take."""
    before = seen.setdefault("dnstap", {})
    gain: dict[str, Any] = {}
    for key in ("messages", "duplicates_folded", "upstream_responses",
                "upstream_responses_with_ede", "upstream_ede_options"):
        gain[key] = stats[key] - before.get(key, 0)
    for key in ("by_type", "transport"):
        gain[key] = _gain(stats[key], before.setdefault(key, {}))
    servers = {(s["identity"], s["version"]): s["messages"] for s in stats["servers"]}
    grown = _gain(servers, before.setdefault("servers", {}))  # type: ignore[arg-type]
    gain["servers"] = [{"identity": i, "version": v, "messages": n}
                       for (i, v), n in grown.items()]
    for key in ("messages", "duplicates_folded", "upstream_responses",
                "upstream_responses_with_ede", "upstream_ede_options"):
        before[key] = stats[key]
    return gain


def _absorb(info: CaptureInfo, more: CaptureInfo) -> None:
    info.packets += more.packets
    info.bytes_read += more.bytes_read
    for name, pick in (("first_ts_ns", min), ("last_ts_ns", max)):
        values = [v for v in (getattr(info, name), getattr(more, name)) if v is not None]
        setattr(info, name, pick(values) if values else None)
    info.file_format = info.file_format or more.file_format
    info.compression = info.compression or more.compression
    info.linktypes = info.linktypes or list(more.linktypes)
    if more.error and not info.error:
        info.error, info.error_offset = more.error, more.error_offset
    if more.truncated_at is not None:
        info.truncated_at = more.truncated_at

