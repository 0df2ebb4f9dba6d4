"""The stages composed: captures -> chunks -> packets -> DNS messages -> EDE rows -> frames.

    reader = capture.CaptureReader(source)            # records, a chunk at a time
    classified = fastpath.classify(chunk, ports)      # most packets settled in one pass
    kernels.decode_responses(...)                     # clean UDP responses -> columns
    layers.PacketDecoder.decode(...)                  # the rest, one by one, with reassembly
    message.parse_response(payload)                   # DNS -> header, question, OPT, EDEs
    matching.QueryTable.match(...)                    # query time and latency
    frame.build_ede_columns(columns)                  # one typed DataFrame

Every packet read lands in exactly one accounting category.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from analyzer import (
    errorreport,
    fastpath,
    frame,
    logstage,
    matching,
    memory,
    speedups,
    split,
    tunnels,
    zonecuts,
)
from analyzer.capture import CaptureReader, Chunk
from analyzer.framestreams import LogChunk
from analyzer.errors import CaptureError, Malformed, Tally
from analyzer.layers import EncapProbe, Endpoint, PacketDecoder, addresses
from analyzer.message import (
    FLAG_AA,
    FLAG_AD,
    FLAG_CD,
    FLAG_RA,
    FLAG_RD,
    FLAG_TC,
    may_hold_ede,
    parse_response,
    read_name,
)
from analyzer.result import CaptureInfo, ScanResult

Source = str | Path | BinaryIO
COMPACT_ROWS = 10_000  # rows held (tuples or columns) before they are built into a frame
MAX_RESPONSE_BUCKETS = 10_000  # past this, response counts go to coarser time buckets
Progress = Callable[[int, int], None]


class Scanner:
    """One pass over captures, accumulating rows, accounting and counters."""

    def __init__(self, ports: Iterable[int] = (53,), all_responses: bool = False,
                 strict: bool = False, match_window_ns: int = matching.DEFAULT_WINDOW_NS,
                 force_slow: bool = False):
        self.ports = frozenset(ports)
        self._ports_np = np.array(sorted(self.ports), np.int64)
        self.all_responses = all_responses
        self.strict = strict
        # Decode every packet one by one: tests compare the paths, and --strict needs
        # packets in capture order to stop at the first malformed one.
        self.force_slow = force_slow or strict
        self.accounting = Tally()
        self.problems = Tally()
        self.tunnels = Tally()   # packets opened, per tunnel kind (tunnels.KINDS)
        self.unopened = Tally()  # what the packets that could not be opened look like
        self._probe = EncapProbe(self.ports)
        self._encap_text: dict[int, str] = {0: ""}  # Classified.encap -> the path's text
        self.captures: list[CaptureInfo] = []
        self.rows: list[tuple[Any, ...]] = []
        self.frames: list[Any] = []  # rows already built into frames (see _compact)
        self.ede_parts: list[dict[str, Any]] = []  # EDE rows in column form (see _clean_rows)
        self.report_rows: list[tuple[Any, ...]] = []
        self.compact_rows = COMPACT_ROWS
        self._warming = False
        self._strings: dict[str, str] = {}
        self.dns_queries = self.dns_responses = self.responses_with_ede = self.ede_options = 0
        self.seconds: Counter[int] = Counter()  # responses per bucket (start, epoch seconds)
        self._second_step = 1
        self._window = match_window_ns
        self._ip_text: dict[bytes, str] = {}
        self._fold: dict[bytes, int] = {}
        self._capture = ""
        self._pending: list[tuple[Endpoint, Any]] = []
        # zone-cut evidence (zonecuts.py), gathered per file as --jobs and Dask workers do,
        # so that a report does not depend on how files were shared out
        self.zones = zonecuts.ZoneEvidence()
        self._zone_state: dict[str, Any] | None = None
        self.log_stats = logstage.LogStats()  # what dnstap files add (logstage.py)
        self._fresh_state()
        self.end_position: int | None = None

    def _fresh_state(self) -> None:
        """Start with no queries and no reassembly: state does not carry across files.

        Called after each file too: the decoder refers back to this scanner (its callback),
        so state left in place would wait for the garbage collector, with the chunk
        buffers the held queries point into (12 MiB at 1,400 packets/s).
        """
        self._table = matching.QueryTable(self._window)
        self._logs: Any = None  # logstage.LogStage of the current file, once it has logs
        self._decoder = PacketDecoder(self.ports, self._on_dns, self.problems, self.tunnels,
                                      self.unopened)

    # -- files ----------------------------------------------------------------------------------

    def run(self, sources: Sequence[Source], progress: Progress | None = None,
            part: split.Part | None = None) -> Iterator[None]:
        """Scan ``sources`` one after another, yielding after every chunk.

        With ``part``, read only that part of the (single) source; see ``split``.
        """
        done_bytes = 0
        for source in sources:
            name = "-" if source == "-" else str(getattr(source, "name", source))
            try:
                span = None if part is None else (part.lead_in, part.start, part.stop)
                reader = CaptureReader(source, span=span)
            except CaptureError as e:
                self.captures.append(CaptureInfo(path=name, error=str(e), error_offset=e.offset))
                continue
            self._capture = reader.name
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
            self._decoder.finish()
            self._table.seal()
            self._flush_pending()
            self.end_position = reader.end_position
            if reader.truncated_at is not None:
                self.accounting["capture-truncated"] += 1
                info.packets += 1
            done_bytes += reader.raw_position()
            self._fresh_state()
            self._zone_state = zonecuts.merge([self._zone_state, self.zones.state()])
            self.zones = zonecuts.ZoneEvidence()

    @property
    def packets(self) -> int:
        return sum(self.accounting.values())

    # -- one chunk -----------------------------------------------------------------------------

    def _chunk(self, chunk: Chunk | LogChunk) -> None:
        if isinstance(chunk, LogChunk):  # the messages of a dnstap log: no packet layers
            if self._logs is None:
                self._logs = logstage.LogStage(self, self.log_stats)
            self._logs.chunk(chunk)
            return
        if chunk.warm:
            w = chunk.warm
            self._warm_up(Chunk(chunk.buf, chunk.data_off[:w], chunk.caplen[:w],
                                chunk.origlen[:w], chunk.ts_ns[:w], chunk.linktype[:w],
                                chunk.first_frame, 0, chunk.arr))
            if w == len(chunk):
                return
            chunk = Chunk(chunk.buf, chunk.data_off[w:], chunk.caplen[w:], chunk.origlen[w:],
                          chunk.ts_ns[w:], chunk.linktype[w:], chunk.first_frame + w, 0,
                          chunk.arr)
        if self.force_slow:
            cat = np.full(len(chunk), fastpath.SLOW, np.int8)
            cls = None
        else:
            cls = fastpath.classify(chunk, self._ports_np, self.all_responses)
            cat = cls.cat
        counts = np.bincount(cat, minlength=len(fastpath.CATEGORY_NAMES) + 3)
        for code, name in fastpath.CATEGORY_NAMES.items():
            if counts[code]:
                self.accounting[name] += int(counts[code])
        if cls is not None:
            self._settled(chunk, cls, counts)
            self._opened(chunk, cls, counts)
        self._per_packet(chunk, cls, cat)
        self._columns(chunk, cls, cat)

    def _per_packet(self, chunk: Chunk, cls: fastpath.Classified | None,
                    cat: np.ndarray) -> None:
        """Decode the SLOW packets and TCP segments one by one, with reassembly."""
        buf, ts, first = chunk.buf, chunk.ts_ns, chunk.first_frame
        data_off, caplen, origlen, linktype = chunk.data_off, chunk.caplen, chunk.origlen, \
            chunk.linktype
        decoder = self._decoder
        streams = decoder.tcp
        accounting = self.accounting
        # SLOW and TCP packets in capture order: TCP streams may pass through both.
        # Columns become lists first: indexing numpy scalars one by one is slow.
        sel = np.flatnonzero((cat == fastpath.SLOW) | (cat == fastpath.TCP_SEGMENT))
        if len(sel):
            fields = [sel, cat[sel], ts[sel], linktype[sel], data_off[sel], caplen[sel],
                      origlen[sel]]
            if cls is not None:
                # TCP sequence numbers and flags, read for all segments at once
                l4 = np.where(cat[sel] == fastpath.TCP_SEGMENT, cls.l4[sel], 0)
                header = chunk.arr[l4[:, None] + _SEQ_AND_FLAGS]
                fields += [cls.l3[sel], cls.ip_version[sel], cls.sport[sel], cls.dport[sel],
                           cls.payload[sel], cls.payload[sel] + cls.payload_len[sel],
                           np.ascontiguousarray(header[:, :4]).view(">u4").ravel(),
                           header[:, 4], np.array(self._encap_texts(chunk, cls, sel), object)]
            for i, c, t, lt, d, cl, ol, *at in zip(*(f.tolist() for f in fields), strict=True):
                if c == fastpath.SLOW:
                    category = decoder.decode(t, first + i, lt, buf[d:d + cl], ol)
                else:
                    # fastpath checked the header; go straight to the stream.
                    l3, ver, sport, dport, start, end, seq_no, flags, encap = at
                    src, dst = addresses(buf, l3, ver)
                    if start == end:
                        category = streams.control((src, dst, sport, dport), seq_no, flags, t)
                    else:
                        category = decoder.tcp_data(t, first + i, src, dst, sport, dport, ver,
                                                    seq_no, flags, buf[start:end], encap)
                if self.strict and category.startswith(("malformed-", "snaplen-")):
                    raise Malformed(category.removeprefix("malformed-"),
                                    f"{self._capture} frame {first + i}")
                accounting[category] += 1

    def _columns(self, chunk: Chunk, cls: fastpath.Classified | None, cat: np.ndarray,
                 source: SourceColumns | None = None) -> None:
        """Candidate responses (kernel first, the rest one by one), rows, zone evidence."""
        buf, ts, first = chunk.buf, chunk.ts_ns, chunk.first_frame
        accounting = self.accounting
        clean = None
        if cls is not None:
            source = source or PacketColumns(self, chunk, cls)
            sel = np.flatnonzero(cat == fastpath.CANDIDATE)
            if len(sel) and speedups.kernels is not None and not self.all_responses:
                sel, clean = self._decode_clean(chunk, cls, sel)
            fields = [sel, ts[sel], cls.l3[sel], cls.ip_version[sel], cls.sport[sel],
                      cls.dport[sel], cls.payload[sel], cls.payload_len[sel]]
            extra = source.columns(sel)
            columns = [f.tolist() for f in fields] + [extra["transport"], extra["encap"],
                                                      _log_fields(extra, len(sel))]
            for i, t, l3, ver, sport, dport, p, plen, transport, encap, log in zip(
                    *columns, strict=True):
                src, dst = addresses(buf, l3, ver)
                ep = Endpoint(t, first + i, src, dst, sport, dport, ver, transport, encap, log)
                accounting[self._response(buf[p:p + plen], ep, candidate=True)] += 1
        self._table.seal()
        self._flush_pending()
        if clean is not None:
            self._clean_rows(chunk, cls, source, *clean)  # type: ignore[arg-type]
        if cls is not None and not self._warming and not self.all_responses:
            # after this chunk's EDEs, so that their names are watched already
            plain = np.flatnonzero(cat == fastpath.RESPONSE)
            self.zones.scan(chunk.arr, cls.payload[plain], cls.payload_len[plain])
        self.zones.flush()  # the per-packet path's responses, one kernel call
        if self._pending_rows() >= self.compact_rows and not self._warming:
            self._compact()
        if len(self.seconds) > MAX_RESPONSE_BUCKETS and not self._warming:
            self._coarsen()

    def _coarsen(self) -> None:
        """Keep the response counts in coarser time buckets: memory must not grow with span.

        One bucket per second would hold 2.6M entries for a month; the report's intervals
        are far coarser than the buckets by then.
        """
        while len(self.seconds) > MAX_RESPONSE_BUCKETS // 4:
            step = self._second_step = self._second_step * 60 if self._second_step < 3600 \
                else self._second_step * 24
            merged: Counter[int] = Counter()
            for start, n in self.seconds.items():
                merged[start // step * step] += n
            self.seconds = merged

    def _pending_rows(self) -> int:
        return len(self.rows) + sum(frame.column_rows(p) for p in self.ede_parts)

    def _compact(self) -> None:
        """Turn the rows so far into a frame: a row tuple costs several times its columns."""
        rows, self.rows = self.rows, []
        if self.all_responses:
            self.frames.append(frame.build_responses(rows))
            return
        parts, self.ede_parts = self.ede_parts, []
        if rows:
            parts.append(frame.ede_columns(rows))
        if parts:
            self.frames.append(frame.build_ede_columns(frame.merge_columns(parts)))

    def flush_frames(self) -> None:
        """Build every row still held into a frame (``frames`` then holds everything)."""
        if self.rows or self.ede_parts:
            self._compact()

    def _warm_up(self, chunk: Chunk) -> None:
        """Decode records before a part's start for their state only: nothing is counted."""
        kept = (self.accounting, self.rows, self.report_rows, self.seconds, self.dns_queries,
                self.dns_responses, self.responses_with_ede, self.ede_options, self.ede_parts,
                self.tunnels, self.unopened)
        self.accounting, self.rows, self.report_rows, self.seconds = Tally(), [], [], Counter()
        self.ede_parts = []
        self.tunnels = self._decoder.tunnels = Tally()
        self.unopened = self._decoder.unopened = Tally()
        self._warming = True
        try:
            self._chunk(chunk)
        finally:
            self._warming = False
            (self.accounting, self.rows, self.report_rows, self.seconds, self.dns_queries,
             self.dns_responses, self.responses_with_ede, self.ede_options,
             self.ede_parts, self.tunnels, self.unopened) = kept
            self._decoder.tunnels, self._decoder.unopened = self.tunnels, self.unopened

    def _opened(self, chunk: Chunk, cls: fastpath.Classified, counts: np.ndarray) -> None:
        """Book the tunnels the kernel opened, and what the packets it could not open are."""
        if cls.tunnels.any():  # a plain capture skips the sort
            bits, per = np.unique(cls.tunnels, return_counts=True)
            for value, n in zip(bits.tolist(), per.tolist(), strict=True):
                for bit, kind in enumerate(tunnels.KINDS):
                    if value >> bit & 1:
                        self.tunnels[kind] += n
        for code in (fastpath.NON_IP, fastpath.NOT_UDP_TCP, fastpath.UNSUPPORTED_TUNNEL,
                     fastpath.UNSUPPORTED_LINKTYPE):
            if not counts[code]:
                continue
            which = cls.cat == code
            values = (chunk.linktype if code == fastpath.UNSUPPORTED_LINKTYPE
                      else cls.detail)[which]
            seen, per = np.unique(values, return_counts=True)
            for value, n in zip(seen.tolist(), per.tolist(), strict=True):
                self.unopened[fastpath.unopened_text(code, value)] += n

    def _encap_texts(self, chunk: Chunk, cls: fastpath.Classified,
                     packets: np.ndarray) -> list[str]:
        """The encapsulation path of each of ``packets``, walking one packet per new path."""
        numbers = cls.encap[packets]
        if not numbers.any():
            return [""] * len(packets)
        known = self._encap_text
        if len(known) > 10_000:  # bound the cache on captures with many VNIs or VLANs
            known.clear()
            known[0] = ""
        distinct, first, inverse = np.unique(numbers, return_index=True, return_inverse=True)
        texts = []
        for number, i in zip(distinct.tolist(), packets[first].tolist(), strict=True):
            text = known.get(number)
            if text is None:
                d = int(chunk.data_off[i])
                text = known[number] = self._probe.path(
                    int(chunk.linktype[i]), chunk.buf[d:d + int(chunk.caplen[i])])
            texts.append(text)
        return [texts[k] for k in inverse.ravel().tolist()]

    def _settled(self, chunk: Chunk, cls: fastpath.Classified, counts: np.ndarray) -> None:
        """Book the packets numpy settled: plain responses and queries."""
        cat, ts = cls.cat, chunk.ts_ns
        n_resp = int(counts[fastpath.RESPONSE])
        if n_resp:
            self.dns_responses += n_resp
            step = self._second_step
            secs, per = np.unique(ts[cat == fastpath.RESPONSE] // (1_000_000_000 * step) * step,
                                  return_counts=True)
            self.seconds.update(dict(zip(secs.tolist(), per.tolist(), strict=True)))
        q = np.flatnonzero(cat == fastpath.QUERY)
        if len(q):
            self.dns_queries += len(q)
            payload = cls.payload[q]
            keys = matching.query_keys(chunk.arr, cls.l3[q], cls.ip_version[q], cls.sport[q],
                                       cls.dport[q], payload)
            self._table.add_many(chunk.buf, keys, ts[q], payload, cls.payload_len[q])
        for i in cls.reports.tolist():
            l3, ver, p = int(cls.l3[i]), int(cls.ip_version[i]), int(cls.payload[i])
            src, dst = addresses(chunk.buf, l3, ver)
            self._error_report(chunk.buf[p:p + int(cls.payload_len[i])],
                               Endpoint(int(ts[i]), chunk.first_frame + i, src, dst,
                                        int(cls.sport[i]), int(cls.dport[i]), ver, "udp"))

    # -- clean responses, column-wise ----------------------------------------------------------

    def _decode_clean(self, chunk: Chunk, cls: fastpath.Classified,
                      sel: np.ndarray) -> tuple[np.ndarray, tuple[Any, ...]]:
        """Decode the chunk's candidate responses with the kernel; count the clean ones.

        Returns the candidates left for the per-packet decoder (malformed or unusual ones)
        and what ``_clean_rows`` needs once this chunk's queries are all in the table.
        """
        assert speedups.kernels is not None
        if len(self._strings) > 200_000:  # bound the cache on captures with many names
            self._strings.clear()
        raw, qnames, codes, texts = speedups.kernels.decode_responses(
            chunk.arr, np.ascontiguousarray(cls.payload[sel]),
            np.ascontiguousarray(cls.payload_len[sel]), self._strings)
        msgs = np.frombuffer(raw, np.int64).reshape(-1, len(DECODED_COLUMNS))
        taken = np.zeros(len(sel), bool)
        taken[msgs[:, 0]] = True
        packets = sel[msgs[:, 0]]
        count = len(msgs)
        if count:
            self.accounting["dns-response"] += count
            self.dns_responses += count
            step = self._second_step
            secs, per = np.unique(chunk.ts_ns[packets] // (1_000_000_000 * step) * step,
                                  return_counts=True)
            self.seconds.update(dict(zip(secs.tolist(), per.tolist(), strict=True)))
            edes = msgs[:, _EDES]
            self.responses_with_ede += int(np.count_nonzero(edes))
            self.ede_options += len(codes)
        return sel[~taken], (packets, msgs, qnames, codes, texts)

    def _clean_rows(self, chunk: Chunk, cls: fastpath.Classified, source: SourceColumns,
                    packets: np.ndarray,
                    msgs: np.ndarray, qnames: list[str], codes: list[int],
                    texts: list[str]) -> None:
        """Add the EDE rows of clean responses as one column-form piece (no row tuples)."""
        with_ede = np.flatnonzero(msgs[:, _EDES])
        if not len(with_ede):
            return
        pk, m = packets[with_ede], msgs[with_ede]
        a, buf = chunk.arr, chunk.buf
        l3, ver, sport, dport = cls.l3[pk], cls.ip_version[pk], cls.sport[pk], cls.dport[pk]
        payload, ts = cls.payload[pk], chunk.ts_ns[pk]
        keys = matching.query_keys(a, l3, ver, sport, dport, payload, responses=True)
        questions = [buf[p + 12:p + 12 + q]
                     for p, q in zip(payload.tolist(), m[:, _QUESTION_LEN].tolist(), strict=True)]
        asked = self._table.match(keys, ts, questions)
        query_ts = np.array([-1 if t is None else t for t in asked], np.int64)
        counts = m[:, _EDES]
        owner = np.repeat(np.arange(len(pk)), counts)  # the message of each EDE row
        rows = len(owner)
        flags = m[:, 2][owner]
        names = np.array(qnames, dtype=object)[with_ede]  # one object per distinct name
        extra = source.columns(pk)
        failed = np.isin(np.asarray(codes, np.int64), zonecuts.dnssec_codes())
        if failed.any():
            self.zones.failed(set(names[owner[failed]].tolist()))
        piece: dict[str, Any] = {
            "capture": [self._capture] * rows,
            "frame_number": (chunk.first_frame + pk)[owner],
            "ts": ts[owner],
            "src_ip": self._ip_texts(a, l3, ver, source=True)[owner].tolist(),
            "src_port": sport[owner],
            "dst_ip": self._ip_texts(a, l3, ver, source=False)[owner].tolist(),
            "dst_port": dport[owner],
            **{name: [values[k] for k in owner.tolist()] for name, values in extra.items()},
            "ip_version": ver[owner],
            "dns_id": m[:, 1][owner],
            "qname": names[owner].tolist(),
            "qtype": m[:, 3][owner],
            "qclass": m[:, 4][owner],
            "rcode": m[:, 5][owner],
            "edns_udp_size": m[:, 6][owner],
            "do": m[:, 7][owner],
            "ede_count": counts[owner],
            "query_ts": query_ts[owner],
            "ede_index": np.arange(rows) - np.repeat(np.cumsum(counts) - counts, counts),
            "ede_code": np.array(codes, np.int64),
            "extra_text": texts,
            "extra_text_utf8_valid": np.ones(rows, np.int64),
            "report_channel": [None] * rows,
        }
        for name, bit in (("aa", FLAG_AA), ("tc", FLAG_TC), ("rd", FLAG_RD), ("ra", FLAG_RA),
                          ("ad", FLAG_AD), ("cd", FLAG_CD)):
            piece[name] = (flags & bit) != 0
        self.ede_parts.append(piece)

    def _ip_texts(self, a: np.ndarray, l3: np.ndarray, ver: np.ndarray,
                  source: bool) -> np.ndarray:
        """The source (or destination) address of each packet as text, one format per address.

        Each distinct address is formatted once: IPv4 addresses are told apart as 32-bit
        numbers (a tenth of the time of comparing byte strings), IPv6 ones as 16 bytes.
        """
        ip_text = self._ip_text
        if len(ip_text) > 200_000:
            ip_text.clear()
        texts = np.empty(len(l3), dtype=object)
        v6 = ver == 6
        for rows, width in ((np.flatnonzero(~v6), 4), (np.flatnonzero(v6), 16)):
            if not len(rows):
                continue
            at = l3[rows] + ((12 if source else 16) if width == 4 else (8 if source else 24))
            if width == 4:  # the address as a number, exactly (matching's fold of IPv4)
                key = matching.fold_ip_np(a, at, ver[rows])
                distinct, inverse = np.unique(key, return_inverse=True)
                addrs = [int(k).to_bytes(4, "big") for k in distinct.tolist()]
            else:
                raw = np.ascontiguousarray(a[at[:, None] + np.arange(16)])
                distinct, inverse = np.unique(raw.view("V16").ravel(), return_inverse=True)
                addrs = distinct.tolist()
            names = [ip_text.get(addr) or ip_text.setdefault(addr, _ip(addr)) for addr in addrs]
            texts[rows] = np.array(names, dtype=object)[inverse.ravel()]
        return texts

    def _error_report(self, msg: bytes, ep: Endpoint) -> None:
        """Record an RFC 9567 error-report query, if ``msg`` is one."""
        try:
            qname, _ = read_name(msg, 12)
        except (Malformed, IndexError):
            return
        found = errorreport.parse_report_name(qname)
        if found is not None:
            self.report_rows.append((self._capture, ep.frame, ep.ts, _ip(ep.src), ep.sport,
                                     _ip(ep.dst), ep.dport, ep.transport, found.qname,
                                     found.qtype, found.info_code, found.agent))

    # -- DNS messages ----------------------------------------------------------------------------

    def _on_dns(self, msg: bytes, ep: Endpoint) -> str:
        """Handle one DNS payload from the per-packet decoder; return its category."""
        if len(msg) < 12:
            return "malformed-dns-short-header"
        if not msg[2] & 0x80:
            self.dns_queries += 1
            key = matching.query_key(ep.src, ep.dst, ep.sport, ep.dport,
                                     (msg[0] << 8) | msg[1], matching.own_stream(ep))
            self._table.add(key, ep.ts, msg)
            if msg[12:16].lower() == errorreport.MARK:
                self._error_report(msg, ep)
            return "dns-query"
        return self._response(msg, ep)

    def _response(self, msg: bytes, ep: Endpoint, candidate: bool = False) -> str:
        if not (candidate or self.all_responses or may_hold_ede(msg)):
            self.dns_responses += 1
            self.seconds[ep.ts // (1_000_000_000 * self._second_step) * self._second_step] += 1
            if not self._warming:
                self.zones.scan_message(msg)
            return "dns-response"
        try:
            resp = parse_response(msg)
        except Malformed as e:
            if self.strict:
                raise Malformed(e.reason, f"{self._capture} frame {ep.frame}") from None
            return "malformed-" + e.reason
        self.dns_responses += 1
        self.seconds[ep.ts // (1_000_000_000 * self._second_step) * self._second_step] += 1
        for problem in resp.problems:
            self.problems[problem] += 1
        if resp.edes:
            self.responses_with_ede += 1
            self.ede_options += len(resp.edes)
        if resp.edes or self.all_responses:
            self._pending.append((ep, resp))
        return "dns-response"

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        fold = self._fold
        if len(fold) > 200_000:
            fold.clear()
        keys = np.array([
            matching.mix_key(fold.get(ep.dst) or fold.setdefault(ep.dst, matching.fold_ip(ep.dst)),
                             fold.get(ep.src) or fold.setdefault(ep.src, matching.fold_ip(ep.src)),
                             ep.dport, ep.sport, r.dns_id, matching.own_stream(ep))
            for ep, r in pending], np.uint64)
        ts = np.array([ep.ts for ep, _ in pending], np.int64)
        asked = self._table.match(keys, ts, [r.question for _, r in pending])
        ip_text = self._ip_text
        if len(ip_text) > 200_000:  # bound the address cache on captures with many clients
            ip_text.clear()
        flag_bits = _FLAG_BITS
        capture = self._capture
        rows = self.rows
        strings = self._strings  # one object per distinct name and text, not one per row
        if len(strings) > 200_000:
            strings.clear()
        failed: set[str] = set()  # names that failed DNSSEC validation
        dnssec = zonecuts.DNSSEC_CODES
        for (ep, r), query_ts in zip(pending, asked, strict=True):
            src = ip_text.get(ep.src) or ip_text.setdefault(ep.src, _ip(ep.src))
            dst = ip_text.get(ep.dst) or ip_text.setdefault(ep.dst, _ip(ep.dst))
            head = (capture, ep.frame, ep.ts, src, ep.sport, dst, ep.dport, ep.transport,
                    ep.encap, *(ep.log or _NO_LOG), ep.ip_version, r.dns_id,
                    r.qname and (strings.get(r.qname) or strings.setdefault(r.qname, r.qname)),
                    r.qtype, r.qclass, r.rcode,
                    *flag_bits[r.flags & 0x07B0], r.edns_udp_size, r.do, len(r.edes), query_ts)
            if self.all_responses:
                rows.append(head + (",".join(str(e.info_code) for e in r.edes),
                                    r.report_channel))
            else:
                if r.qname and any(e.info_code in dnssec for e in r.edes):
                    failed.add(r.qname)
                for index, ede in enumerate(r.edes):
                    text = ede.extra_text
                    text = strings.get(text) or strings.setdefault(text, text)
                    rows.append(head + (index, ede.info_code, text, ede.utf8_valid,
                                        r.report_channel))
        if failed:
            self.zones.failed(failed)

    # -- results ---------------------------------------------------------------------------------

    def partial(self) -> Partial:
        """Return what this scanner found, in a form that pickles and merges.

        The frames built so far are handed over (``combine`` spends them): call this, or
        ``result``, once, when the scan is done.
        """
        if self.ede_parts:
            self._compact()
        frames, self.frames = self.frames, []
        return Partial(self.rows, dict(self.accounting), dict(self.problems), self.captures,
                       self.dns_queries, self.dns_responses, self.responses_with_ede,
                       self.ede_options, dict(self.seconds), self.all_responses,
                       None, self.end_position, self.report_rows, frames,
                       dict(self.tunnels), dict(self.unopened),
                       zonecuts.merge([self._zone_state, self.zones.state()]),
                       self.log_stats.as_dict() if self.log_stats.messages else None)

    def result(self) -> ScanResult:
        """Return what the scan found, with the frame built (once: see ``partial``)."""
        return combine([self.partial()])


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


# AA, TC, RD, RA, AD, CD for every combination of those header bits (RFC 1035 §4.1.1,
# RFC 4035 §3.2): a lookup instead of six tests per row.
# Columns of the kernel's decoded responses (_speedups.c, decode_responses).
DECODED_COLUMNS = ("candidate", "dns_id", "flags", "qtype", "qclass", "rcode", "udp_size", "do",
                   "edes", "question_len")
_EDES, _QUESTION_LEN = DECODED_COLUMNS.index("edes"), DECODED_COLUMNS.index("question_len")
_FLAG_BITS = {bits: tuple(bool(bits & f) for f in (FLAG_AA, FLAG_TC, FLAG_RD, FLAG_RA,
                                                   FLAG_AD, FLAG_CD))
              for bits in range(0x0800) if not bits & ~0x07B0}


_SEQ_AND_FLAGS = np.array([4, 5, 6, 7, 13])  # offsets in the TCP header (RFC 9293 §3.1)
_NO_LOG = (None, None, None)  # dnstap_type, dnstap_identity, dnstap_version of a packet


class SourceColumns:
    """The columns a message's source decides (transport, encapsulation, dnstap fields),
    for the messages at given positions of a chunk; the rest comes from the DNS message."""

    def columns(self, at: np.ndarray) -> dict[str, list[Any]]:
        raise NotImplementedError


class PacketColumns(SourceColumns):
    """Messages from UDP packets the classifier settled: transport "udp", the tunnel path."""

    def __init__(self, scanner: Scanner, chunk: Chunk, cls: fastpath.Classified):
        self.scanner, self.chunk, self.cls = scanner, chunk, cls

    def columns(self, at: np.ndarray) -> dict[str, list[Any]]:
        n = len(at)
        nothing = [None] * n
        return {"transport": ["udp"] * n,
                "encap": self.scanner._encap_texts(self.chunk, self.cls, at),
                "dnstap_type": nothing, "dnstap_identity": nothing, "dnstap_version": nothing}


def _log_fields(extra: dict[str, list[Any]], n: int) -> list[tuple[Any, ...] | None]:
    types = extra["dnstap_type"]
    if not n or types[0] is None and all(t is None for t in types):
        return [None] * n
    return list(zip(types, extra["dnstap_identity"], extra["dnstap_version"], strict=True))


def _ip(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


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
