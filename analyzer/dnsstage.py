"""DNS messages with their endpoints -> matched, decoded, counted rows (any source).

The sources (``packetstage.py`` for captures, ``logstage.py`` for dnstap) hand over the
messages of a chunk column-wise, as the packet classifier describes them (``Classified``:
where each message and its addresses are, and whether it is a query, a plain response or
a candidate for an EDE), plus the columns only the source knows (``SourceColumns``).
Unusual messages come one at a time through ``on_dns``. This stage does the rest the same
way for both: queries into the table, responses decoded (the kernel for the clean bulk,
the Python decoder for the rest), matched to their queries, counted, and their EDE rows
stored, with the zone-cut evidence gathered on the way.
"""

from __future__ import annotations

import socket
from typing import Any

import numpy as np

from analyzer import errorreport, fastpath, matching, speedups, zonecuts
from analyzer.capture import Chunk
from analyzer.counts import MessageCounts
from analyzer.errors import Malformed, Tally
from analyzer.layers import Endpoint, addresses
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
from analyzer.rowstore import RowStore

# Columns of the kernel's decoded responses (_speedups.c, decode_responses).
DECODED_COLUMNS = ("candidate", "dns_id", "flags", "qtype", "qclass", "rcode", "udp_size", "do",
                   "edes", "question_len")
_EDES, _QUESTION_LEN = DECODED_COLUMNS.index("edes"), DECODED_COLUMNS.index("question_len")
# AA, TC, RD, RA, AD, CD for every combination of those header bits (RFC 1035 §4.1.1,
# RFC 4035 §3.2): a lookup instead of six tests per row.
_FLAG_BITS = {bits: tuple(bool(bits & f) for f in (FLAG_AA, FLAG_TC, FLAG_RD, FLAG_RA,
                                                   FLAG_AD, FLAG_CD))
              for bits in range(0x0800) if not bits & ~0x07B0}
_NO_LOG = (None, None, None)  # dnstap_type, dnstap_identity, dnstap_version of a packet
_CACHE_LIMIT = 200_000  # distinct names, texts and addresses kept formatted


class SourceColumns:
    """The columns a message's source decides (transport, encap, dnstap fields), for the
    messages at given positions of a chunk; the rest comes from the DNS message."""

    def columns(self, at: np.ndarray) -> dict[str, list[Any]]:
        raise NotImplementedError


class DnsStage:
    """One scan's message stage; ``new_file`` between files (queries do not carry over)."""

    def __init__(self, accounting: Tally, problems: Tally, *, all_responses: bool = False,
                 strict: bool = False, match_window_ns: int = matching.DEFAULT_WINDOW_NS,
                 count_senders: bool = False):
        self.accounting = accounting
        self.problems = problems
        self.all_responses = all_responses
        self.strict = strict
        self.counts = MessageCounts(count_senders)
        self.store = RowStore(all_responses)
        # zone-cut evidence (zonecuts.py), gathered per file as --jobs and Dask workers do,
        # so that a report does not depend on how files were shared out
        self.zones = zonecuts.ZoneEvidence()
        self.zone_state: dict[str, Any] | None = None
        self.warming = False  # a split part's lead-in: state only, nothing counted
        self.capture = ""
        self._window = match_window_ns
        self._strings: dict[str, str] = {}
        self._ip_text: dict[bytes, str] = {}
        self._fold: dict[bytes, int] = {}
        self._pending: list[tuple[Endpoint, Any]] = []
        self.table = matching.QueryTable(self._window)

    def new_file(self, capture: str) -> None:
        self.capture = capture
        self.table = matching.QueryTable(self._window)

    def end_file(self) -> None:
        """Settle what the file left pending, and keep its zone evidence."""
        self.table.seal()
        self.flush_pending()
        self.zone_state = zonecuts.merge([self.zone_state, self.zones.state()])
        self.zones = zonecuts.ZoneEvidence()

    def zone_evidence(self) -> dict[str, Any] | None:
        return zonecuts.merge([self.zone_state, self.zones.state()])

    # -- messages column-wise ---------------------------------------------------------------

    def settled(self, chunk: Chunk, cls: fastpath.Classified, counts: np.ndarray) -> None:
        """Book the messages the classifier settled: plain responses and queries."""
        cat, ts = cls.cat, chunk.ts_ns
        if counts[fastpath.RESPONSE]:
            plain = np.flatnonzero(cat == fastpath.RESPONSE)
            self.counts.responses_at(ts[plain])
            if self.counts.senders is not None:  # the header's RCODE: not decoded further
                self._count_senders(chunk.arr, cls.l3[plain], cls.ip_version[plain],
                                    chunk.arr[cls.payload[plain] + 3] & 0xF)
        q = np.flatnonzero(cat == fastpath.QUERY)
        if len(q):
            self.counts.dns_queries += len(q)
            payload = cls.payload[q]
            keys = matching.query_keys(chunk.arr, cls.l3[q], cls.ip_version[q], cls.sport[q],
                                       cls.dport[q], payload)
            self.table.add_many(chunk.buf, keys, ts[q], payload, cls.payload_len[q])
        for i in cls.reports.tolist():
            l3, ver, p = int(cls.l3[i]), int(cls.ip_version[i]), int(cls.payload[i])
            src, dst = addresses(chunk.buf, l3, ver)
            self.error_report(chunk.buf[p:p + int(cls.payload_len[i])],
                              Endpoint(int(ts[i]), chunk.first_frame + i, src, dst,
                                       int(cls.sport[i]), int(cls.dport[i]), ver, "udp"))

    def candidates(self, chunk: Chunk, cls: fastpath.Classified, cat: np.ndarray,
                   source: SourceColumns) -> None:
        """Decode the candidate responses (kernel first, the rest one by one), store their
        rows, gather zone evidence from the plain responses, compact when due."""
        buf, ts, first = chunk.buf, chunk.ts_ns, chunk.first_frame
        accounting = self.accounting
        clean = None
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
            accounting[self.response(buf[p:p + plen], ep, candidate=True)] += 1
        self.settle()
        if clean is not None:
            self._clean_rows(chunk, cls, source, *clean)
        if not self.warming and not self.all_responses:
            # after this chunk's EDEs, so that their names are watched already
            plain = np.flatnonzero(cat == fastpath.RESPONSE)
            self.zones.scan(chunk.arr, cls.payload[plain], cls.payload_len[plain])

    def settle(self) -> None:
        """Match what is pending once the chunk's queries are all in the table."""
        self.table.seal()
        self.flush_pending()

    def end_chunk(self) -> None:
        self.zones.flush()  # the per-message path's responses, one kernel call
        if not self.warming:
            self.store.maybe_compact()
            self.counts.coarsen()

    def _decode_clean(self, chunk: Chunk, cls: fastpath.Classified,
                      sel: np.ndarray) -> tuple[np.ndarray, tuple[Any, ...]]:
        """Decode the chunk's candidate responses with the kernel; count the clean ones.

        Returns the candidates left for the per-message decoder (malformed or unusual ones)
        and what ``_clean_rows`` needs once this chunk's queries are all in the table.
        """
        assert speedups.kernels is not None
        if len(self._strings) > _CACHE_LIMIT:  # bound the cache on captures with many names
            self._strings.clear()
        raw, qnames, codes, texts = speedups.kernels.decode_responses(
            chunk.arr, np.ascontiguousarray(cls.payload[sel]),
            np.ascontiguousarray(cls.payload_len[sel]), self._strings)
        msgs = np.frombuffer(raw, np.int64).reshape(-1, len(DECODED_COLUMNS))
        taken = np.zeros(len(sel), bool)
        taken[msgs[:, 0]] = True
        packets = sel[msgs[:, 0]]
        if len(msgs):
            self.accounting["dns-response"] += len(msgs)
            self.counts.responses_at(chunk.ts_ns[packets])
            if self.counts.senders is not None:
                self._count_senders(chunk.arr, cls.l3[packets], cls.ip_version[packets],
                                    msgs[:, 5])
            self.counts.responses_with_ede += int(np.count_nonzero(msgs[:, _EDES]))
            self.counts.ede_options += len(codes)
        return sel[~taken], (packets, msgs, qnames, codes, texts)

    def _clean_rows(self, chunk: Chunk, cls: fastpath.Classified, source: SourceColumns,
                    packets: np.ndarray, msgs: np.ndarray, qnames: list[str],
                    codes: list[int], texts: list[str]) -> None:
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
        asked = self.table.match(keys, ts, questions)
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
            "capture": [self.capture] * rows,
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
        self.store.parts.append(piece)

    def _count_senders(self, a: np.ndarray, l3: np.ndarray, ver: np.ndarray,
                       rcode: np.ndarray) -> None:
        """Add responses to ``counts.senders`` by source address and RCODE, column-wise:
        one key of version, RCODE and address bytes per message, counted by ``np.unique``."""
        senders = self.counts.senders
        if senders is None or self.warming or not len(l3):
            return
        key = np.zeros((len(l3), 19), np.uint8)
        key[:, 0] = ver
        key[:, 1] = rcode >> 8
        key[:, 2] = rcode & 0xFF
        v6 = ver == 6
        for rows, offset, width in ((np.flatnonzero(~v6), 12, 4), (np.flatnonzero(v6), 8, 16)):
            if len(rows):
                key[rows, 3:3 + width] = a[(l3[rows] + offset)[:, None] + np.arange(width)]
        distinct, per = np.unique(key.view("V19").ravel(), return_counts=True)
        for k, n in zip(distinct.tolist(), per.tolist(), strict=True):
            senders[(k[3:7] if k[0] == 4 else k[3:19], k[1] << 8 | k[2])] += n

    def sender_texts(self) -> dict[tuple[str, int], int]:
        """Take the responses counted per (source address, RCODE) since the last call, the
        addresses as text."""
        ip_text = self._ip_text
        if len(ip_text) > _CACHE_LIMIT:
            ip_text.clear()
        return {(ip_text.get(addr) or ip_text.setdefault(addr, _ip(addr)), rcode): n
                for (addr, rcode), n in self.counts.take_senders().items()}

    def _ip_texts(self, a: np.ndarray, l3: np.ndarray, ver: np.ndarray,
                  source: bool) -> np.ndarray:
        """The source (or destination) address of each message as text, one format per
        address.

        Each distinct address is formatted once: IPv4 addresses are told apart as 32-bit
        numbers (a tenth of the time of comparing byte strings), IPv6 ones as 16 bytes.
        """
        ip_text = self._ip_text
        if len(ip_text) > _CACHE_LIMIT:
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

    def error_report(self, msg: bytes, ep: Endpoint) -> None:
        """Record an RFC 9567 error-report query, if ``msg`` is one."""
        try:
            qname, _ = read_name(msg, 12)
        except (Malformed, IndexError):
            return
        found = errorreport.parse_report_name(qname)
        if found is not None:
            self.store.report_rows.append((self.capture, ep.frame, ep.ts, _ip(ep.src), ep.sport,
                                           _ip(ep.dst), ep.dport, ep.transport, found.qname,
                                           found.qtype, found.info_code, found.agent))

    # -- messages one at a time -------------------------------------------------------------

    def on_dns(self, msg: bytes, ep: Endpoint) -> str:
        """Handle one DNS message (from the per-packet decoder or a log); return its
        accounting category."""
        if len(msg) < 12:
            return "malformed-dns-short-header"
        if not msg[2] & 0x80:
            self.counts.dns_queries += 1
            key = matching.query_key(ep.src, ep.dst, ep.sport, ep.dport,
                                     (msg[0] << 8) | msg[1], matching.own_stream(ep))
            self.table.add(key, ep.ts, msg)
            if msg[12:16].lower() == errorreport.MARK:
                self.error_report(msg, ep)
            return "dns-query"
        return self.response(msg, ep)

    def response(self, msg: bytes, ep: Endpoint, candidate: bool = False) -> str:
        if not (candidate or self.all_responses or may_hold_ede(msg)):
            self.counts.response_at(ep.ts)
            if self.counts.senders is not None and not self.warming:
                self.counts.senders[(ep.src, msg[3] & 0xF)] += 1  # not decoded further
            if not self.warming:
                self.zones.scan_message(msg)
            return "dns-response"
        try:
            resp = parse_response(msg)
        except Malformed as e:
            if self.strict:
                raise Malformed(e.reason, f"{self.capture} frame {ep.frame}") from None
            return "malformed-" + e.reason
        self.counts.response_at(ep.ts)
        if self.counts.senders is not None and not self.warming:
            self.counts.senders[(ep.src, resp.rcode)] += 1
        for problem in resp.problems:
            self.problems[problem] += 1
        if resp.edes:
            self.counts.responses_with_ede += 1
            self.counts.ede_options += len(resp.edes)
        if resp.edes or self.all_responses:
            self._pending.append((ep, resp))
        return "dns-response"

    def flush_pending(self) -> None:
        """Match and store the responses decoded one at a time since the last flush."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        fold = self._fold
        if len(fold) > _CACHE_LIMIT:
            fold.clear()
        keys = np.array([
            matching.mix_key(fold.get(ep.dst) or fold.setdefault(ep.dst, matching.fold_ip(ep.dst)),
                             fold.get(ep.src) or fold.setdefault(ep.src, matching.fold_ip(ep.src)),
                             ep.dport, ep.sport, r.dns_id, matching.own_stream(ep))
            for ep, r in pending], np.uint64)
        ts = np.array([ep.ts for ep, _ in pending], np.int64)
        asked = self.table.match(keys, ts, [r.question for _, r in pending])
        ip_text = self._ip_text
        if len(ip_text) > _CACHE_LIMIT:  # bound the address cache on captures with many clients
            ip_text.clear()
        flag_bits = _FLAG_BITS
        capture = self.capture
        rows = self.store.rows
        strings = self._strings  # one object per distinct name and text, not one per row
        if len(strings) > _CACHE_LIMIT:
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


def _log_fields(extra: dict[str, list[Any]], n: int) -> list[tuple[Any, ...] | None]:
    types = extra["dnstap_type"]
    if not n or types[0] is None and all(t is None for t in types):
        return [None] * n
    return list(zip(types, extra["dnstap_identity"], extra["dnstap_version"], strict=True))


def _ip(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)
