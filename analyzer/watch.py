"""Follow live traffic: rotating capture directories, streams, dnstap sockets -> metrics, events.

    watcher = Watcher(metrics, incidents, emit)     # counters, sliding window, incident state
    for path in follower.ready():                   # each file once, when it is complete
        watcher.read(path)                          # pipeline.Scanner, a chunk at a time
    watcher.read("-", eager=True)                   # a pcap stream on standard input
    SocketSource(listener, watcher).start()         # dnstap writers: a thread per connection

Connections are read concurrently, each by a scanner of its own; the counters and the
detector are updated under ``Watcher.lock``.

State stays bounded: the counters are labelled by code and by at most ``max_resolvers``
resolvers (the rest are ``other``), and EDE rows are kept only for the detector's window.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import prometheus_client

from analyzer import codes, dnstap, fstrmsocket, reports
from analyzer.pipeline import Scanner

OTHER = "other"  # the resolver label of everything past --max-resolvers
_NS = 1_000_000_000

Emit = Callable[[dict[str, Any]], None]


class Metrics:
    """The Prometheus counters of one ``watch`` run, in a registry of their own."""

    def __init__(self, max_resolvers: int = 50):
        self.registry = prometheus_client.CollectorRegistry()
        self.max_resolvers = max_resolvers
        self._resolvers: set[str] = set()
        self.newest_ns: int | None = None
        r = self.registry
        self.ede_options = prometheus_client.Counter(
            "ede_options", "EDE options seen in DNS responses", ["code", "name", "resolver"],
            registry=r)
        self.ede_responses = prometheus_client.Counter(
            "ede_responses", "DNS responses carrying at least one EDE option", ["resolver"],
            registry=r)
        self.dns_responses = prometheus_client.Counter(
            "dns_responses", "DNS responses decoded", registry=r)
        self.packets = prometheus_client.Counter(
            "packets", "Packets (or dnstap frames) read, by accounting category", ["category"],
            registry=r)
        self.bytes_read = prometheus_client.Counter(
            "capture_bytes_read", "Capture bytes read (decompressed)", registry=r)
        self.files = prometheus_client.Counter(
            "capture_files_read", "Capture files read to the end without an error", registry=r)
        self.lag = prometheus_client.Gauge(
            "lag_seconds", "Wall clock minus the time of the newest packet read", registry=r)
        self.lag.set_function(self._lag)
        self.connections = prometheus_client.Counter(
            "dnstap_connections", "dnstap writer connections on the socket, by outcome "
            "(finished: STOP and FINISH; cut: closed without STOP; refused: handshake failed)",
            ["outcome"], registry=r)

    def _lag(self) -> float:
        if self.newest_ns is None:
            return math.nan
        return time.time() - self.newest_ns / _NS

    def resolver(self, address: str) -> str:
        """Return the label for ``address``: itself while fewer than ``max_resolvers`` are
        known, ``other`` after that (cardinality cannot grow with the traffic)."""
        if address in self._resolvers:
            return address
        if len(self._resolvers) < self.max_resolvers:
            self._resolvers.add(address)
            return address
        return OTHER

    def add_ede(self, df: pd.DataFrame) -> None:
        """Count the EDE rows of ``df`` (the EDE frame's schema)."""
        if not len(df):
            return
        src = df["src_ip"].astype("string").fillna("").to_numpy(dtype=object)
        labels = pd.Series([self.resolver(str(a)) for a in src], index=df.index)
        by_code = pd.DataFrame({"code": df["ede_code"].astype("Int64"), "resolver": labels})
        for (code, resolver), n in by_code.value_counts(sort=False).items():
            self.ede_options.labels(code=str(code), name=codes.describe(int(code)).name,
                                    resolver=resolver).inc(int(n))
        first = (df["ede_index"] == 0).to_numpy(dtype=bool, na_value=False)
        for resolver, n in labels[first].value_counts(sort=False).items():
            self.ede_responses.labels(resolver=resolver).inc(int(n))


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


class Watcher:
    """Read sources through ``pipeline.Scanner`` and feed the metrics and the detector."""

    def __init__(self, metrics: Metrics, incidents: Incidents, emit: Emit,
                 ports: Iterable[int] = (53,), warn: Callable[[str], None] | None = None):
        self.metrics = metrics
        self.incidents = incidents
        self.emit = emit
        self.ports = tuple(ports)
        self.warn = warn
        self.lock = threading.RLock()  # around the metrics and the detector
        self.closed = False  # after close(): nothing more is counted or emitted

    def read(self, source: str | Path | BinaryIO, eager: bool = False,
             file: bool = True) -> bool:
        """Read ``source`` to its end, updating the metrics after every chunk; return
        whether it was read without an error (``file``: count it in ``capture_files_read``)."""
        scanner = Scanner(ports=self.ports, eager=eager)
        seen: dict[str, int] = {}
        for _ in scanner.run([source]):
            self._update(scanner, seen)
        self._update(scanner, seen)
        info = scanner.captures[-1]
        if info.error is None:
            if file:
                self.metrics.files.inc()
        elif self.warn is not None:
            self.warn(info.error)
        self.check(force=True)
        return info.error is None

    def check(self, final: str | None = None, force: bool = False) -> None:
        """Run the detector when it is due (``force``: whenever rows arrived; ``final``:
        always) and emit its events."""
        with self.lock:
            if self.closed:
                return
            if final is not None or self.incidents.due() or (force and self.incidents.fresh):
                for event in self.incidents.evaluate(final):
                    self.emit(event)

    def close(self, reason: str = "shutdown") -> None:
        """End the incidents still open (``reason``) and stop counting."""
        with self.lock:
            self.check(final=reason)
            self.closed = True

    def _update(self, scanner: Scanner, seen: dict[str, int]) -> None:
        with self.lock:
            if not self.closed:
                self._count(scanner, seen)

    def _count(self, scanner: Scanner, seen: dict[str, int]) -> None:
        m = self.metrics
        for category, n in scanner.accounting.items():
            if n > seen.get(category, 0):
                m.packets.labels(category=category).inc(n - seen.get(category, 0))
                seen[category] = n
        responses = scanner.dns_responses
        m.dns_responses.inc(responses - seen.get(" responses", 0))
        seen[" responses"] = responses
        info = scanner.captures[-1] if scanner.captures else None
        if info is not None:
            m.bytes_read.inc(max(0, info.bytes_read - seen.get(" bytes", 0)))
            seen[" bytes"] = max(info.bytes_read, seen.get(" bytes", 0))
            if info.last_ts_ns is not None and (m.newest_ns is None
                                                or info.last_ts_ns > m.newest_ns):
                m.newest_ns = info.last_ts_ns
        scanner.flush_frames()
        while scanner.frames:
            df = scanner.frames.pop(0)
            if scanner.log_stats.messages:  # received upstream: not the resolver's answer
                df = df[~df["dnstap_type"].isin(dnstap.UPSTREAM_TYPES).to_numpy(dtype=bool)]
            m.add_ede(df)
            self.incidents.add(df, None, None)
        if info is not None:
            self.incidents.add(_EMPTY, info.first_ts_ns, info.last_ts_ns)
        self.check()


_EMPTY = pd.DataFrame()


class SocketSource:
    """dnstap writers connecting to a unix socket (``fstrmsocket.Listener``), each
    connection handshaken and read by a thread of its own through ``Watcher.read``.

    At most ``max_connections`` are read at once; a writer beyond that is closed with a
    warning (writers reconnect). ``stop`` stops listening, removes the socket file and
    closes the connections still open.
    """

    def __init__(self, listener: fstrmsocket.Listener, watcher: Watcher,
                 max_connections: int = 64):
        self.listener = listener
        self.watcher = watcher
        self.max_connections = max_connections
        self._open: set[socket.socket] = set()
        self._guard = threading.Lock()  # around _open
        self._count = 0
        self._stopping = False

    def start(self) -> None:
        threading.Thread(target=self._accept, name=f"accept {self.listener.path}",
                         daemon=True).start()

    def stop(self) -> None:
        with self._guard:
            self._stopping = True
            conns = list(self._open)
        self.listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _warn(self, message: str) -> None:
        if self.watcher.warn is not None:
            self.watcher.warn(message)

    def _accept(self) -> None:
        while True:
            try:
                conn = self.listener.accept()
            except OSError:
                return  # the listener was closed by stop()
            with self._guard:
                if self._stopping:
                    conn.close()
                    return
                self._count += 1
                name = f"unix:{self.listener.path} connection {self._count}"
                if len(self._open) >= self.max_connections:
                    conn.close()
                    self._warn(f"{name}: closed, {self.max_connections} writers are "
                               "connected already")
                    continue
                self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn, name), name=name,
                             daemon=True).start()

    def _serve(self, conn: socket.socket, name: str) -> None:
        outcomes = self.watcher.metrics.connections
        try:
            try:
                stream = fstrmsocket.open_stream(conn, name)
            except (fstrmsocket.Refused, OSError) as e:
                outcomes.labels(outcome="refused").inc()
                self._warn(f"{name}: refused: {e}")
                return
            data = stream.raw
            self.watcher.read(stream, eager=True, file=False)
            finished = data.finished  # type: ignore[attr-defined]
            outcomes.labels(outcome="finished" if finished else "cut").inc()
        finally:
            with self._guard:
                self._open.discard(conn)
            conn.close()


@dataclass(slots=True)
class Follower:
    """The files of directories of rotating captures, each handed out once, in order, when
    complete: its size has not changed for ``settle_s`` seconds, or a newer file exists."""

    directories: list[Path]
    settle_s: float = 10.0
    done: set[str] = field(default_factory=set)
    sizes: dict[str, tuple[int, float]] = field(default_factory=dict)  # path -> (size, since)

    def ready(self, now: float | None = None) -> list[Path]:
        now = time.monotonic() if now is None else now
        listed: list[tuple[float, str, int]] = []
        for directory in self.directories:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or not entry.is_file():
                        continue  # hidden files are ones still being copied in
                    st = entry.stat()
                    listed.append((st.st_mtime, entry.path, st.st_size))
        listed.sort()
        present = {path for _, path, _ in listed}
        self.done &= present  # rotated away: forget it (memory stays bounded)
        self.sizes = {p: v for p, v in self.sizes.items() if p in present}
        out = []
        pending = [(path, size) for _, path, size in listed if path not in self.done]
        for i, (path, size) in enumerate(pending):
            before = self.sizes.get(path)
            if before is None or before[0] != size:
                self.sizes[path] = (size, now)
            newer = i + 1 < len(pending)
            if not newer and now - self.sizes[path][1] < self.settle_s:
                break  # still growing, or not quiet for long enough yet
            out.append(Path(path))
            self.done.add(path)
            self.sizes.pop(path, None)
        return out


def to_json_line(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n"
