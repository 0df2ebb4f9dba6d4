"""The stages composed: captures and logs -> DNS messages -> EDE rows -> frames.

    reader = capture.CaptureReader(source)            # a chunk at a time, any format
    packetstage.PacketStage.chunk(chunk)              # pcap/pcapng: packets -> messages
    logstage.LogStage.chunk(chunk)                    # dnstap: frames -> messages
    dnsstage.DnsStage                                 # match, decode, count, keep rows
    rowstore.RowStore                                 # rows held compactly
    frame.build_ede_columns(columns)                  # one typed DataFrame

Every packet or log frame read lands in exactly one accounting category.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from analyzer import frame, logstage, matching, memory, split, zonecuts
from analyzer.capture import CaptureReader, Chunk
from analyzer.dnsstage import DnsStage
from analyzer.errors import CaptureError, Tally
from analyzer.framestreams import LogChunk
from analyzer.packetstage import PacketStage
from analyzer.result import CaptureInfo, ScanResult
from analyzer.rowstore import COMPACT_ROWS  # noqa: F401 - the knob's home; kept importable

Source = str | Path | BinaryIO
Progress = Callable[[int, int], None]


class Scanner:
    """One pass over captures and dnstap logs: the stages composed, and the accounting.

    A source stage turns each chunk into DNS messages (``packetstage.PacketStage`` for
    captures, ``logstage.LogStage`` for dnstap); the message stage (``dnsstage.DnsStage``)
    matches, decodes and counts them and keeps their rows (``rowstore.RowStore``). Every
    packet or log frame read lands in exactly one category of ``accounting``.
    """

    def __init__(self, ports: Iterable[int] = (53,), all_responses: bool = False,
                 strict: bool = False, match_window_ns: int = matching.DEFAULT_WINDOW_NS,
                 force_slow: bool = False, eager: bool = False, count_senders: bool = False):
        self.eager = eager  # CaptureReader(eager=...): chunks as records arrive, for streams
        self.all_responses = all_responses
        self.strict = strict
        self.accounting = Tally()
        self.problems = Tally()
        self.dns = DnsStage(self.accounting, self.problems, all_responses=all_responses,
                            strict=strict, match_window_ns=match_window_ns,
                            count_senders=count_senders)
        self.packets_stage = PacketStage(self.dns, ports, force_slow=force_slow, strict=strict)
        self.force_slow = self.packets_stage.force_slow
        self.log_stats = logstage.LogStats()  # what dnstap files add (logstage.py)
        self._logs: logstage.LogStage | None = None  # the current file's, once it has logs
        self.captures: list[CaptureInfo] = []
        self.end_position: int | None = None
        self.reader: CaptureReader | None = None

    # -- files ----------------------------------------------------------------------------------

    def run(self, sources: Sequence[Source], progress: Progress | None = None,
            part: split.Part | None = None, skip: int = 0) -> Iterator[None]:
        """Scan ``sources`` one after another, yielding after every chunk.

        With ``part``, read only that part of the (single) source; see ``split``. With
        ``skip``, its first records only warm up state, uncounted (a resumed ``watch``).
        """
        done_bytes = 0
        for source in sources:
            name = "-" if source == "-" else str(getattr(source, "name", source))
            try:
                span = None if part is None else (part.lead_in, part.start, part.stop)
                reader = CaptureReader(source, span=span, eager=self.eager, skip=skip)
            except CaptureError as e:
                self.captures.append(CaptureInfo(path=name, error=str(e), error_offset=e.offset))
                continue
            self.reader = reader  # the source being read (watch notes where records end)
            self.dns.new_file(reader.name)
            self.packets_stage.new_file()
            self._logs = None
            info = reader.info
            self.captures.append(info)
            try:
                for chunk in reader.chunks():
                    self._chunk(chunk)
                    if progress is not None:
                        progress(done_bytes + reader.raw_position(), self.packets)
                    yield
            except CaptureError as e:
                info.error, info.error_offset = str(e), e.offset
            finally:
                reader.close()
            self.packets_stage.end_file()
            self.dns.end_file()
            self.end_position = reader.end_position
            if reader.truncated_at is not None:
                self.accounting["capture-truncated"] += 1
                info.packets += 1
            done_bytes += reader.raw_position()
            # nothing of this file's state is kept: its queries hold its chunk buffers
            self.dns.new_file("")
            self.packets_stage.new_file()
            self._logs = None

    @property
    def packets(self) -> int:
        return sum(self.accounting.values())

    def _chunk(self, chunk: Chunk | LogChunk) -> None:
        if isinstance(chunk, LogChunk):  # the messages of a dnstap log: no packet layers
            if self._logs is None:
                self._logs = logstage.LogStage(self.dns, self.log_stats,
                                               force_slow=self.force_slow)
            if chunk.warm:
                w = chunk.warm
                stats = copy.deepcopy(self.log_stats)
                with self._uncounted():
                    self._logs.chunk(_log_slice(chunk, 0, w))
                self.log_stats.__dict__.update(stats.__dict__)  # the stage holds this one
                if w == len(chunk):
                    return
                chunk = _log_slice(chunk, w, len(chunk))
            self._logs.chunk(chunk)
            return
        if chunk.warm:
            w = chunk.warm
            with self._uncounted():
                self.packets_stage.chunk(Chunk(chunk.buf, chunk.data_off[:w], chunk.caplen[:w],
                                               chunk.origlen[:w], chunk.ts_ns[:w],
                                               chunk.linktype[:w], chunk.first_frame, 0,
                                               chunk.arr))
            if w == len(chunk):
                return
            chunk = Chunk(chunk.buf, chunk.data_off[w:], chunk.caplen[w:], chunk.origlen[w:],
                          chunk.ts_ns[w:], chunk.linktype[w:], chunk.first_frame + w, 0,
                          chunk.arr)
        self.packets_stage.chunk(chunk)

    @contextmanager
    def _uncounted(self) -> Iterator[None]:
        """Decode records before a part's start for their state only (queries, streams,
        fragments): what they add to the counts and rows is taken back."""
        tallies = (self.accounting, self.packets_stage.tunnels, self.packets_stage.unopened)
        saved = [dict(t) for t in tallies]
        counts = self.dns.counts.snapshot()
        marks = self.dns.store.marks()
        self.dns.warming = True
        try:
            yield
        finally:
            self.dns.warming = False
            for tally, before in zip(tallies, saved, strict=True):
                tally.clear()
                tally.update(before)
            self.dns.counts.restore(counts)
            self.dns.store.truncate(marks)

    # -- what tests and iter_ede_frames look at ---------------------------------------------------

    @property
    def frames(self) -> list[Any]:
        return self.dns.store.frames

    @property
    def compact_rows(self) -> int:
        return self.dns.store.compact_rows

    @compact_rows.setter
    def compact_rows(self, value: int) -> None:
        self.dns.store.compact_rows = value

    def flush_frames(self) -> None:
        """Build every row still held into a frame (``frames`` then holds everything)."""
        self.dns.store.flush()

    def take_rows(self, plain: bool = True) -> list[Any]:
        """Hand over the EDE rows found since the last call: the frames built so far, then
        the rows still held, as a plain frame (``frame.plain_frame``: no categoricals, times
        in ns; cheap enough after every chunk) or, with ``plain`` false, a typed one."""
        if not plain:
            self.flush_frames()
        out = self.dns.store.take_frames()
        columns = self.dns.store.take_columns()
        if columns is not None:
            out.append(frame.plain_frame(columns))
        return out

    @property
    def dns_responses(self) -> int:
        return self.dns.counts.dns_responses

    def take_responses_by_sender(self) -> dict[tuple[str, int], int]:
        """With ``count_senders``: the DNS responses counted since the last call, per source
        address (text) and RCODE (extended by the OPT record's bits when the response was
        decoded, as in the EDE rows). Responses a dnstap log says were received upstream
        are not among them, as they are not in ``dns_responses``."""
        return self.dns.sender_texts()

    @property
    def responses_with_ede(self) -> int:
        return self.dns.counts.responses_with_ede

    @property
    def ede_options(self) -> int:
        return self.dns.counts.ede_options

    @property
    def seconds(self) -> dict[int, int]:
        return self.dns.counts.seconds

    # -- results ---------------------------------------------------------------------------------

    def partial(self) -> Partial:
        """Return what this scanner found, in a form that pickles and merges.

        The frames built so far are handed over (``combine`` spends them): call this, or
        ``result``, once, when the scan is done.
        """
        store, counts = self.dns.store, self.dns.counts
        if store.parts:
            store.compact()
        return Partial(store.rows, dict(self.accounting), dict(self.problems), self.captures,
                       counts.dns_queries, counts.dns_responses, counts.responses_with_ede,
                       counts.ede_options, dict(counts.seconds), self.all_responses,
                       None, self.end_position, store.report_rows, store.take_frames(),
                       dict(self.packets_stage.tunnels), dict(self.packets_stage.unopened),
                       self.dns.zone_evidence(),
                       self.log_stats.as_dict() if self.log_stats.messages else None)

    def result(self) -> ScanResult:
        """Return what the scan found, with the frame built (once: see ``partial``)."""
        return combine([self.partial()])


def _log_slice(chunk: LogChunk, lo: int, hi: int) -> LogChunk:
    """Frames ``lo`` to ``hi`` of a log chunk (the kernels want contiguous columns)."""
    return LogChunk(chunk.buf, chunk.arr, np.ascontiguousarray(chunk.columns[:, lo:hi]),
                    chunk.first_frame + lo, chunk.servers)


@dataclass(slots=True)
class Partial:
    """One scan's rows and counters before the frame is built; partials add up."""

    rows: list[tuple[Any, ...]]
    accounting: dict[str, int]
    problems: dict[str, int]
    captures: list[CaptureInfo]
    dns_queries: int
    dns_responses: int
    responses_with_ede: int
    ede_options: int
    seconds: dict[int, int]
    all_responses: bool
    part: split.Part | None = None   # which part of a split file, if it was split
    end_position: int | None = None  # where that part's reading actually stopped
    report_rows: list[tuple[Any, ...]] = field(default_factory=list)  # RFC 9567 reports
    frames: list[Any] = field(default_factory=list)  # rows already built into frames
    tunnels: dict[str, int] = field(default_factory=dict)   # packets opened per tunnel kind
    unopened: dict[str, int] = field(default_factory=dict)  # what unopened packets look like
    zones: dict[str, Any] | None = None  # zonecuts.ZoneEvidence.state()
    dnstap: dict[str, Any] | None = None  # logstage.LogStats.as_dict() of dnstap files


def combine(partials: Sequence[Partial]) -> ScanResult:
    """Merge partial scans (of different files, in any order) into one result.

    The partials' frames are moved into the result (``frame.concat`` spends them): a
    partial is merged once.
    """
    accounting, problems, seconds = Tally(), Tally(), Counter[int]()
    opened, unopened = Tally(), Tally()
    rows: list[tuple[Any, ...]] = []
    report_rows: list[tuple[Any, ...]] = []
    frames: list[Any] = []
    captures: list[CaptureInfo] = []
    totals = [0, 0, 0, 0]
    all_responses = any(p.all_responses for p in partials)
    for p in partials:
        rows.extend(p.rows)
        frames.extend(p.frames)
        p.frames = []
        report_rows.extend(p.report_rows)
        accounting.update(p.accounting)
        problems.update(p.problems)
        seconds.update(p.seconds)
        opened.update(p.tunnels)
        unopened.update(p.unopened)
        captures.extend(p.captures)
        for k, v in enumerate((p.dns_queries, p.dns_responses, p.responses_with_ede,
                               p.ede_options)):
            totals[k] += v
    if all_responses:
        frames.append(frame.build_responses(rows))
        built = frame.concat(frames, frame.RESPONSE_DTYPES)
    else:
        frames.append(frame.build_ede(rows))
        built = frame.concat(frames, frame.EDE_DTYPES)
    firsts = [c.first_ts_ns for c in captures if c.first_ts_ns is not None]
    lasts = [c.last_ts_ns for c in captures if c.last_ts_ns is not None]
    return ScanResult(
        ede=frame.empty_ede() if all_responses else built,
        responses=built if all_responses else None,
        accounting=accounting.as_dict(), problems=problems.as_dict(), captures=captures,
        packets=sum(accounting.values()), dns_queries=totals[0], dns_responses=totals[1],
        responses_with_ede=totals[2], ede_options=totals[3],
        response_seconds=dict(sorted(seconds.items())),
        first_ts_ns=min(firsts) if firsts else None, last_ts_ns=max(lasts) if lasts else None,
        error_reports=frame.build_error_reports(report_rows),
        tunnels=opened.as_dict(), unopened=unopened.as_dict(),
        zone_evidence=zonecuts.merge(p.zones for p in partials),
        dnstap=logstage.merge_stats([p.dnstap for p in partials]),
    )


def scan_partial(source: Source, options: dict[str, Any],
                 part: split.Part | None = None) -> Partial:
    """Scan one capture, or one part of it, and return the partial result.

    This is the unit of work for ``--jobs`` and for Dask workers.
    """
    scanner = Scanner(**options)
    for _ in scanner.run([source], part=part):
        pass
    result = scanner.partial()
    result.part = part
    return result


def join_parts(parts: Sequence[Partial]) -> Partial | None:
    """Join the partials of one split file into one, or None if the cuts did not line up.

    Frame numbers restart at 1 in each part; here they become the file's.
    """
    parts = sorted(parts, key=lambda p: p.part.index)  # type: ignore[union-attr]
    for before, after in zip(parts, parts[1:], strict=False):
        if before.end_position != after.part.start:  # type: ignore[union-attr]
            return None
    rows: list[tuple[Any, ...]] = []
    report_rows: list[tuple[Any, ...]] = []
    frames: list[Any] = []
    offset = 0
    accounting, problems, seconds = Counter[str](), Counter[str](), Counter[int]()
    opened, unopened = Counter[str](), Counter[str]()
    info = CaptureInfo(path=parts[0].captures[0].path)
    for p in parts:
        for mine, theirs in ((rows, p.rows), (report_rows, p.report_rows)):
            mine.extend(theirs if not offset else
                        [r[:1] + (r[1] + offset,) + r[2:] for r in theirs])
        for built in p.frames:
            if offset:
                built = built.assign(frame_number=built["frame_number"] + offset)
            frames.append(built)
        part_info = p.captures[0]
        offset += part_info.packets
        accounting.update(p.accounting)
        problems.update(p.problems)
        seconds.update(p.seconds)
        opened.update(p.tunnels)
        unopened.update(p.unopened)
        _absorb(info, part_info)
    first = parts[0]
    return Partial(rows, dict(accounting), dict(problems), [info],
                   sum(p.dns_queries for p in parts), sum(p.dns_responses for p in parts),
                   sum(p.responses_with_ede for p in parts), sum(p.ede_options for p in parts),
                   dict(seconds), first.all_responses, report_rows=report_rows, frames=frames,
                   tunnels=dict(opened), unopened=dict(unopened),
                   zones=zonecuts.merge(p.zones for p in parts))


def _absorb(info: CaptureInfo, part: CaptureInfo) -> None:
    info.file_format = info.file_format or part.file_format
    info.compression = info.compression or part.compression
    info.linktypes = info.linktypes or part.linktypes
    info.packets += part.packets
    info.bytes_read = max(info.bytes_read, part.bytes_read)
    for name, pick in (("first_ts_ns", min), ("last_ts_ns", max)):
        values = [v for v in (getattr(info, name), getattr(part, name)) if v is not None]
        setattr(info, name, pick(values) if values else None)
    if part.error and not info.error:
        info.error, info.error_offset = part.error, part.error_offset
    if part.truncated_at is not None:
        info.truncated_at = part.truncated_at


def _as_list(sources: Source | Sequence[Source]) -> list[Source]:
    if isinstance(sources, (str, Path)) or hasattr(sources, "read"):
        return [sources]  # type: ignore[list-item]
    return list(sources)  # type: ignore[arg-type]


def scan(sources: Source | Sequence[Source], *, ports: Iterable[int] = (53,),
         all_responses: bool = False, strict: bool = False, progress: Progress | None = None,
         match_window_ns: int = matching.DEFAULT_WINDOW_NS, jobs: int = 1) -> ScanResult:
    """Read captures once and return the EDE frame, accounting and counters.

    A capture that cannot be read is recorded in ``captures`` with its error; what was read
    before the error is kept, and the other captures are still read. With ``jobs`` > 1,
    files are scanned in that many processes and merged; the result is the same.
    """
    options = {"ports": tuple(ports), "all_responses": all_responses, "strict": strict,
               "match_window_ns": match_window_ns}
    listed = _as_list(sources)
    if jobs > 1:
        return _scan_parallel(listed, options, jobs, progress)
    scanner = Scanner(**options)
    for _ in scanner.run(listed, progress):
        pass
    result = scanner.result()
    del scanner  # its chunk buffers, queries and streams: free them before trimming
    memory.release_free_memory()
    return result


def _scan_parallel(sources: list[Source], options: dict[str, Any], jobs: int,
                   progress: Progress | None) -> ScanResult:
    from concurrent.futures import ProcessPoolExecutor

    tasks = plan_tasks(sources, jobs)
    results: dict[int, Partial] = {}
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
        futures = {}
        for i, (source, part) in enumerate(tasks):
            if isinstance(source, (str, Path)) and source != "-":
                futures[pool.submit(scan_partial, source, options, part)] = i
            else:  # standard input and open files cannot be handed to another process
                results[i] = scan_partial(source, options, part)
        done_bytes = packets = 0
        for future in _completed(futures):
            part_result = future.result()
            results[futures[future]] = part_result
            done_bytes += sum(c.bytes_read for c in part_result.captures)
            packets += sum(part_result.accounting.values())
            if progress is not None:
                progress(done_bytes, packets)
    return combine(merge_tasks(tasks, [results[i] for i in range(len(tasks))], options))


def plan_tasks(sources: Sequence[Source], jobs: int) -> list[tuple[Source, split.Part | None]]:
    """Return the units of work: one per file, or one per part of a large plain pcap."""
    tasks: list[tuple[Source, split.Part | None]] = []
    for source in sources:
        parts = None
        if isinstance(source, (str, Path)) and source != "-" and jobs > len(sources):
            parts = split.plan(source, max(2, jobs // max(1, len(sources))))
        if parts:
            tasks.extend((source, part) for part in parts)
        else:
            tasks.append((source, None))
    return tasks


def merge_tasks(tasks: Sequence[tuple[Source, split.Part | None]], results: Sequence[Partial],
                options: dict[str, Any]) -> list[Partial]:
    """Return one partial per source, joining split parts (rereading if cuts misaligned)."""
    merged: list[Partial] = []
    i = 0
    while i < len(tasks):
        source, part = tasks[i]
        if part is None:
            merged.append(results[i])
            i += 1
            continue
        j = i
        while j < len(tasks) and tasks[j][0] is source and tasks[j][1] is not None:
            j += 1
        joined = join_parts(results[i:j])
        merged.append(joined if joined is not None else scan_partial(source, options))
        i = j
    return merged


def _completed(futures: Any) -> Iterator[Any]:
    from concurrent.futures import as_completed

    return as_completed(futures)


def read_ede(sources: Source | Sequence[Source], **options: Any) -> Any:
    """Return one row per EDE option found in the captures, as a pandas DataFrame.

    Example: ``analyzer.read_ede("samples/incident.pcap").ede_code.value_counts()``
    """
    return scan(sources, **options).ede


def read_responses(sources: Source | Sequence[Source], **options: Any) -> Any:
    """Return one row per DNS response (with its EDE codes, if any), as a pandas DataFrame."""
    return scan(sources, all_responses=True, **options).responses


def iter_ede_frames(sources: Source | Sequence[Source], rows_per_frame: int = 100_000,
                    **options: Any) -> Iterator[Any]:
    """Yield the EDE frame in pieces of about ``rows_per_frame`` rows, in capture order.

    Memory stays bounded by the piece size, whatever the size of the captures.
    """
    scanner = Scanner(**options)
    scanner.compact_rows = rows_per_frame
    for _ in scanner.run(_as_list(sources)):
        while scanner.frames:
            yield scanner.frames.pop(0)
    scanner.flush_frames()
    yield from scanner.frames
