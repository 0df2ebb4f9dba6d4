"""Capture chunks -> DNS messages: the packet source of the message stage.

The classifier (``fastpath.classify``) settles most packets of a chunk at once and says
where their DNS messages are; the packets it leaves (SLOW: fragments, odd headers,
tunnels the numpy twin does not open) and TCP segments go one by one through
``layers.PacketDecoder`` with reassembly, which hands whole messages to the message stage.
Every packet is booked in one accounting category, and the tunnels opened and the
packets that could not be opened are tallied.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from analyzer import fastpath, tunnels
from analyzer.capture import Chunk
from analyzer.dnsstage import DnsStage, SourceColumns
from analyzer.errors import Malformed, Tally
from analyzer.layers import EncapProbe, PacketDecoder, addresses

_SEQ_AND_FLAGS = np.array([4, 5, 6, 7, 13])  # offsets in the TCP header (RFC 9293 §3.1)
_ENCAP_CACHE = 10_000  # distinct encapsulation paths kept as text


class PacketStage:
    """Packets of one scan; ``new_file`` between files (reassembly does not carry over)."""

    def __init__(self, dns: DnsStage, ports: Iterable[int] = (53,), *, force_slow: bool = False,
                 strict: bool = False):
        self.dns = dns
        self.ports = frozenset(ports)
        self._ports_np = np.array(sorted(self.ports), np.int64)
        # Decode every packet one by one: tests compare the paths, and --strict needs
        # packets in capture order to stop at the first malformed one.
        self.force_slow = force_slow or strict
        self.strict = strict
        self.tunnels = Tally()   # packets opened, per tunnel kind (tunnels.KINDS)
        self.unopened = Tally()  # what the packets that could not be opened look like
        self._probe = EncapProbe(self.ports)
        self._encap_text: dict[int, str] = {0: ""}  # Classified.encap -> the path's text
        self.decoder = self._new_decoder()

    def _new_decoder(self) -> PacketDecoder:
        return PacketDecoder(self.ports, self.dns.on_dns, self.dns.problems, self.tunnels,
                             self.unopened)

    def new_file(self) -> None:
        """Start with no reassembly. The decoder refers back to the message stage (its
        callback), so state left in place would wait for the garbage collector."""
        self.decoder = self._new_decoder()

    def end_file(self) -> None:
        self.decoder.finish()

    def chunk(self, chunk: Chunk) -> None:
        accounting = self.dns.accounting
        if self.force_slow:
            cat = np.full(len(chunk), fastpath.SLOW, np.int8)
            cls = None
        else:
            cls = fastpath.classify(chunk, self._ports_np, self.dns.all_responses)
            cat = cls.cat
        counts = np.bincount(cat, minlength=len(fastpath.CATEGORY_NAMES) + 3)
        for code, name in fastpath.CATEGORY_NAMES.items():
            if counts[code]:
                accounting[name] += int(counts[code])
        if cls is not None:
            self.dns.settled(chunk, cls, counts)
            self._opened(chunk, cls, counts)
        self._one_by_one(chunk, cls, cat)
        if cls is not None:
            self.dns.candidates(chunk, cls, cat, PacketColumns(self, chunk, cls))
        else:
            self.dns.settle()
        self.dns.end_chunk()

    def _one_by_one(self, chunk: Chunk, cls: fastpath.Classified | None,
                    cat: np.ndarray) -> None:
        """Decode the SLOW packets and TCP segments one by one, with reassembly."""
        buf, ts, first = chunk.buf, chunk.ts_ns, chunk.first_frame
        data_off, caplen, origlen, linktype = chunk.data_off, chunk.caplen, chunk.origlen, \
            chunk.linktype
        decoder = self.decoder
        streams = decoder.tcp
        accounting = self.dns.accounting
        # SLOW and TCP packets in capture order: TCP streams may pass through both.
        # Columns become lists first: indexing numpy scalars one by one is slow.
        sel = np.flatnonzero((cat == fastpath.SLOW) | (cat == fastpath.TCP_SEGMENT))
        if not len(sel):
            return
        fields = [sel, cat[sel], ts[sel], linktype[sel], data_off[sel], caplen[sel],
                  origlen[sel]]
        if cls is not None:
            # TCP sequence numbers and flags, read for all segments at once
            l4 = np.where(cat[sel] == fastpath.TCP_SEGMENT, cls.l4[sel], 0)
            header = chunk.arr[l4[:, None] + _SEQ_AND_FLAGS]
            fields += [cls.l3[sel], cls.ip_version[sel], cls.sport[sel], cls.dport[sel],
                       cls.payload[sel], cls.payload[sel] + cls.payload_len[sel],
                       np.ascontiguousarray(header[:, :4]).view(">u4").ravel(),
                       header[:, 4], np.array(self.encap_texts(chunk, cls, sel), object)]
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
                                f"{self.dns.capture} frame {first + i}")
            accounting[category] += 1

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

    def encap_texts(self, chunk: Chunk, cls: fastpath.Classified,
                    packets: np.ndarray) -> list[str]:
        """The encapsulation path of each of ``packets``, walking one packet per new path."""
        numbers = cls.encap[packets]
        if not numbers.any():
            return [""] * len(packets)
        known = self._encap_text
        if len(known) > _ENCAP_CACHE:  # bound the cache on captures with many VNIs or VLANs
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


class PacketColumns(SourceColumns):
    """Messages from UDP packets the classifier settled: transport "udp", the tunnel path."""

    def __init__(self, stage: PacketStage, chunk: Chunk, cls: fastpath.Classified):
        self.stage, self.chunk, self.cls = stage, chunk, cls

    def columns(self, at: np.ndarray) -> dict[str, list[Any]]:
        n = len(at)
        nothing = [None] * n
        return {"transport": ["udp"] * n,
                "encap": self.stage.encap_texts(self.chunk, self.cls, at),
                "dnstap_type": nothing, "dnstap_identity": nothing, "dnstap_version": nothing}
