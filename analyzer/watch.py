"""Follow live traffic: rotating capture directories, streams, dnstap sockets -> metrics, events.

    watcher = Watcher(metrics, incidents, emit)     # counters, sliding window, incident state
    for path in follower.ready():                   # each file once, in order
        follower.read(watcher, path)                # the newest as it is written; resumable
    FileFollower(path).run(watcher)                 # one growing file, like tail -F
    watcher.read("-", eager=True)                   # a pcap stream on standard input
    SocketSource(listener, watcher).start()         # dnstap writers: a thread per connection

The pieces, one job each: ``watchmetrics.Metrics`` (Prometheus counters, bounded labels),
``watchevents.Incidents`` (report's detector over a sliding window -> start/end events),
``follow.Follower`` (a directory's files in order, the newest as it is written),
``tail.FileFollower`` (a file that grows), ``watchsocket.SocketSource`` (dnstap writers on
a unix socket), ``watchstate.Checkpoint`` (``--state``: all of the above, to resume from).
``Watcher`` here reads a source through ``pipeline.Scanner`` and feeds the first two, under
``Watcher.lock`` (connections are read concurrently, each by a scanner of its own).

State stays bounded: the counters are labelled by code and by at most ``max_resolvers``
resolvers (the rest are ``other``), and EDE rows are kept only for the detector's window.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from analyzer import dnstap, split
from analyzer.errors import Stopped
from analyzer.pipeline import Scanner
from analyzer.watchevents import Incidents
from analyzer.watchmetrics import Metrics
from analyzer.watchwindow import Tracker, Window

Emit = Callable[[dict[str, Any]], None]
PCAP_START = 24  # a pcap file's first record
LEAD_IN_S = split.LEAD_IN_SECONDS  # what a resumed read rebuilds state from, at least
_NO_END = 1 << 62


@dataclass(slots=True)
class Progress:
    """How much of the file being read the counters hold: its first ``records`` records
    (packets or dnstap frames) and ``bytes`` bytes. A resumed read does not count those.

    For a plain pcap file, ``offset`` is where the record after them starts and ``lead_in``
    a record boundary about ``LEAD_IN_S`` of traffic before it: a resumed read starts there
    (``split.Part``), rebuilding state from the records in between (queries, TCP streams)
    without counting them. Otherwise (``offset`` None) it reads the file from its start,
    the counted records only warming up state.
    """

    records: int = 0
    bytes: int = 0
    offset: int | None = None
    lead_in: int = PCAP_START


def progress_of(state: dict[str, Any]) -> Progress:
    """A ``Progress`` from a checkpoint's fields (records, bytes, offset, lead_in)."""
    offset = state["offset"]
    progress = Progress(int(state["records"]), int(state["bytes"]),
                        None if offset is None else int(offset), int(state["lead_in"]))
    if progress.offset is not None and not PCAP_START <= progress.lead_in <= progress.offset:
        raise ValueError(f"lead-in {progress.lead_in} is not before offset {progress.offset}")
    return progress


class _LeadIn:
    """Record boundaries passed while reading a plain pcap, with the time of the packet
    before each: the newest at least ``LEAD_IN_S`` of packet time (or ``MAX_LEAD_IN``
    bytes) back is where a resumed read's warm-up starts."""

    def __init__(self, start: int):
        self.marks: deque[tuple[int, int | None]] = deque([(start, None)])

    def update(self, offset: int, ts_ns: int | None) -> int:
        marks = self.marks
        if ts_ns is None:
            return marks[0][0]  # only warm-up records so far: their time is not known
        marks.append((offset, ts_ns))
        while len(marks) > 1 and (offset - marks[0][0] > split.MAX_LEAD_IN or (
                marks[1][1] is not None and marks[1][1] <= ts_ns - LEAD_IN_S * 1_000_000_000)):
            marks.popleft()
        return marks[0][0]


class Watcher:
    """Read sources through ``pipeline.Scanner`` and feed the metrics and the detector."""

    def __init__(self, metrics: Metrics, incidents: Incidents, emit: Emit,
                 ports: Iterable[int] = (53,), warn: Callable[[str], None] | None = None,
                 window: Window | None = None):
        self.metrics = metrics
        self.window = window  # the recent traffic for full reports and the view
        self.incidents = incidents
        self.emit = emit
        self.ports = tuple(ports)
        self.warn = warn
        self.lock = threading.RLock()  # around the metrics and the detector
        self.closed = False  # after close(): nothing more is counted or emitted
        self.stop = threading.Event()  # set by SIGTERM: reads raise Stopped between chunks
        self.after_chunk: Callable[[], None] | None = None  # e.g. a checkpoint when due
        self.updates = 0  # counter updates so far: a checkpoint with nothing new is skipped

    def read(self, source: str | Path | BinaryIO, eager: bool = False,
             file: bool = True, progress: Progress | None = None) -> bool:
        """Read ``source`` to its end, updating the metrics after every chunk; return
        whether it was read without an error (``file``: count it in ``capture_files_read``).

        With ``progress``, the records it names were counted already (by a run that
        stopped): they only warm up state; it is kept current after every chunk, and
        ``stop`` is obeyed between chunks (``Stopped``), where the counters and it agree.
        """
        scanner = Scanner(ports=self.ports, eager=eager, count_senders=True)
        seen: dict[str, int] = {}
        tracker = self.window.tracker() if self.window is not None else None
        skip, base, part, lead = 0, 0, None, _LeadIn(PCAP_START)
        if progress is not None:
            base, seen[" bytes"] = progress.records, progress.bytes
            if progress.offset is not None:
                part = split.Part(0, progress.lead_in, progress.offset, _NO_END)
                lead = _LeadIn(progress.lead_in)
            else:
                skip = progress.records
        for _ in scanner.run([source], part=part, skip=skip):
            self._update(scanner, seen, tracker, progress=progress, base=base, lead=lead)
            if progress is not None:
                if self.stop.is_set():
                    raise Stopped("stop")
                if self.after_chunk is not None:
                    self.after_chunk()
        self._update(scanner, seen, tracker, done=True, progress=progress, base=base,
                     lead=lead)
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

    def _update(self, scanner: Scanner, seen: dict[str, int], tracker: Tracker | None,
                done: bool = False, progress: Progress | None = None, base: int = 0,
                lead: _LeadIn | None = None) -> None:
        with self.lock:
            if not self.closed:
                self._count(scanner, seen, tracker, done)
                if progress is not None and scanner.captures:
                    info = scanner.captures[-1]
                    progress.records = base + info.packets
                    progress.bytes = seen.get(" bytes", 0)
                    reader = scanner.reader
                    if reader is not None and reader.records_end is not None and \
                            lead is not None and info.file_format == "pcap" and \
                            info.compression is None:
                        progress.offset = reader.records_end
                        progress.lead_in = lead.update(reader.records_end, info.last_ts_ns)
                    else:
                        progress.offset = None

    def _count(self, scanner: Scanner, seen: dict[str, int], tracker: Tracker | None,
               done: bool) -> None:
        m = self.metrics
        self.updates += 1
        for category, n in scanner.accounting.items():
            if n > seen.get(category, 0):
                m.packets.labels(category=category).inc(n - seen.get(category, 0))
                seen[category] = n
        m.add_responses(scanner.take_responses_by_sender())
        info = scanner.captures[-1] if scanner.captures else None
        if info is not None:
            m.bytes_read.inc(max(0, info.bytes_read - seen.get(" bytes", 0)))
            seen[" bytes"] = max(info.bytes_read, seen.get(" bytes", 0))
            if info.last_ts_ns is not None and (m.newest_ns is None
                                                or info.last_ts_ns > m.newest_ns):
                m.newest_ns = info.last_ts_ns
        # plain frames are cheap after every chunk; the window's reports need typed ones
        built = scanner.take_rows(plain=self.window is None)
        for df in built:
            if scanner.log_stats.messages:  # received upstream: not the resolver's answer
                df = df[~df["dnstap_type"].isin(dnstap.UPSTREAM_TYPES).to_numpy(dtype=bool)]
            m.add_ede(df)
            self.incidents.add(df, None, None)
        if info is not None:
            self.incidents.add(_EMPTY, info.first_ts_ns, info.last_ts_ns)
        if self.window is not None and tracker is not None:
            self.window.take(scanner, tracker, built, done)
        self.check()


_EMPTY = pd.DataFrame()
