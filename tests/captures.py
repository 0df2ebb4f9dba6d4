"""Craft small captures for the tests: DNS wire messages, packets (scapy) and capture files.

Three layers, each usable on its own:

- DNS messages as bytes (``question``, ``ede_option``, ``opt_rr``, ``message``, ``response``),
  written by hand so that tests can make any field lie;
- IP packets from scapy (``udp``, ``TcpFlow``) and link-layer framing for every link type
  the decoder knows (``frame``, ``LINKS``);
- capture files as bytes (``pcap``, ``pcapng_section``).

The files are written with ``struct`` rather than scapy's writers: ``PcapWriter`` cannot write
LINKTYPE_NULL or a captured length shorter than the packet, and ``PcapNgWriter`` has one link
type and one time resolution per file.

``CRAFTED`` names one capture per decoding case; ``test_pipeline`` runs each through the fast
and the slow path, ``test_oracle`` through tshark.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import pandas as pd
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    fragment6,
)
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw

from analyzer import speedups
from analyzer.frame import EDE_COLUMNS
from analyzer.pipeline import Scanner
from analyzer.result import ScanResult

# -- DNS -----------------------------------------------------------------------------------------

A, IN = 1, 1
NOERROR, SERVFAIL = 0, 2
QR, AA, TC, RD, RA, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0020, 0x0010


def wire_name(name: str) -> bytes:
    """Return ``name`` in uncompressed wire format ("." and "" are the root)."""
    labels = [label for label in name.split(".") if label]
    return b"".join(bytes([len(x)]) + x.encode() for x in labels) + b"\x00"


def question(qname: str = "example.com", qtype: int = A, qclass: int = IN) -> bytes:
    return wire_name(qname) + struct.pack("!HH", qtype, qclass)


def ede_option(code: int, text: bytes | str = b"", *, length: int | None = None) -> bytes:
    """Return an EDE option TLV (RFC 8914 §2); ``length`` overrides OPTION-LENGTH."""
    body = struct.pack("!H", code) + (text.encode() if isinstance(text, str) else text)
    return struct.pack("!HH", 15, len(body) if length is None else length) + body


def edns_option(code: int, data: bytes) -> bytes:
    return struct.pack("!HH", code, len(data)) + data


def opt_rr(*options: bytes, udp_size: int = 1232, ext_rcode: int = 0, do: bool = False,
           rdlen: int | None = None) -> bytes:
    """Return an OPT pseudo-RR (RFC 6891 §6.1.2); ``rdlen`` overrides RDLEN."""
    rdata = b"".join(options)
    ttl = (ext_rcode << 24) | (0x8000 if do else 0)
    return b"\x00" + struct.pack("!HHIH", 41, udp_size, ttl,
                                 len(rdata) if rdlen is None else rdlen) + rdata


def a_rr(addr: str = "192.0.2.1", owner: bytes = b"\xc0\x0c", ttl: int = 300) -> bytes:
    """Return an A record whose owner is, by default, a pointer to the question name."""
    return owner + struct.pack("!HHIH", A, IN, ttl, 4) + bytes(int(x) for x in addr.split("."))


def message(dns_id: int = 0x1234, flags: int = QR | RD | RA, *, qd: Sequence[bytes] = (),
            an: Sequence[bytes] = (), ns: Sequence[bytes] = (), ar: Sequence[bytes] = (),
            counts: tuple[int, int, int, int] | None = None) -> bytes:
    """Return a DNS message; ``counts`` overrides QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT."""
    c = counts or (len(qd), len(an), len(ns), len(ar))
    return struct.pack("!6H", dns_id, flags, *c) + b"".join([*qd, *an, *ns, *ar])


Ede = tuple[int, bytes | str]


def response(qname: str = "example.com", qtype: int = A, *, dns_id: int = 0x1234,
             rcode: int = NOERROR, edes: Sequence[Ede] | None = ((9, "no DNSKEY"),),
             an: Sequence[bytes] = (), flags: int = QR | RD | RA, do: bool = False,
             udp_size: int = 1232) -> bytes:
    """Return a response to ``qname``/``qtype``; one EDE option per ``(code, text)``.

    ``edes=None`` leaves the OPT record out, ``edes=()`` keeps an OPT without options;
    ``udp_size`` is the EDNS UDP payload size the OPT advertises.
    """
    ar = [] if edes is None else [opt_rr(*(ede_option(c, t) for c, t in edes), do=do,
                                         udp_size=udp_size)]
    return message(dns_id, flags | (rcode & 0xF), qd=[question(qname, qtype)], an=an, ar=ar)


def query(qname: str = "example.com", qtype: int = A, *, dns_id: int = 0x1234) -> bytes:
    return message(dns_id, RD, qd=[question(qname, qtype)], ar=[opt_rr()])


def framed(msg: bytes) -> bytes:
    """Return ``msg`` with the 2-byte length prefix of DNS over TCP (RFC 1035 §4.2.2)."""
    return struct.pack("!H", len(msg)) + msg


# -- packets -----------------------------------------------------------------------------------

SERVER4, CLIENT4 = "198.51.100.53", "192.0.2.10"
SERVER6, CLIENT6 = "2001:db8::53", "2001:db8:1::10"
CLIENT_PORT = 40000
ETH_IP4, ETH_IP6 = 0x0800, 0x86DD


def ip(v6: bool = False, *, to_server: bool = False) -> Packet:
    """Return the IP header of a packet from the server (or to it)."""
    server, client = (SERVER6, CLIENT6) if v6 else (SERVER4, CLIENT4)
    src, dst = (client, server) if to_server else (server, client)
    return IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst, id=7)


def udp(payload: bytes, *, v6: bool = False, to_server: bool = False, port: int = 53,
        client_port: int = CLIENT_PORT) -> Packet:
    """Return IP/UDP/payload between client and server (server -> client by default)."""
    sport, dport = (client_port, port) if to_server else (port, client_port)
    return ip(v6, to_server=to_server) / UDP(sport=sport, dport=dport) / Raw(payload)


@dataclass
class TcpFlow:
    """One TCP connection between client and server; sequence numbers are kept for you.

    ``client``/``server`` return the next in-order segment and advance; ``server_at`` returns
    a segment at a given offset of the server's byte stream without advancing.
    """

    v6: bool = False
    port: int = 53
    client_port: int = CLIENT_PORT + 1
    client_isn: int = 1000
    server_isn: int = 0xFFFFFF00  # close to the wrap, so sequence arithmetic is exercised
    sent: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})

    def _segment(self, to_server: bool, rel: int, data: bytes, flags: str) -> Packet:
        isn = self.client_isn if to_server else self.server_isn
        peer = self.server_isn if to_server else self.client_isn
        sport, dport = (self.client_port, self.port) if to_server else (self.port,
                                                                        self.client_port)
        seq = (isn + 1 + rel) & 0xFFFFFFFF if "S" not in flags else isn
        tcp = TCP(sport=sport, dport=dport, seq=seq, ack=(peer + 1) & 0xFFFFFFFF,
                  flags=flags, window=65535)
        return ip(self.v6, to_server=to_server) / tcp / Raw(data) if data else \
            ip(self.v6, to_server=to_server) / tcp

    def handshake(self) -> list[Packet]:
        return [self._segment(True, 0, b"", "S"), self._segment(False, 0, b"", "SA"),
                self._segment(True, 0, b"", "A")]

    def client(self, data: bytes, flags: str = "PA") -> Packet:
        seg = self._segment(True, self.sent[True], data, flags)
        self.sent[True] += len(data)
        return seg

    def server(self, data: bytes, flags: str = "PA") -> Packet:
        seg = self._segment(False, self.sent[False], data, flags)
        self.sent[False] += len(data)
        return seg

    def server_at(self, rel: int, data: bytes, flags: str = "PA") -> Packet:
        return self._segment(False, rel, data, flags)

    def fin(self, to_server: bool) -> Packet:
        return self._segment(to_server, self.sent[to_server], b"", "FA")


def ip_fragments(pkt: Packet, size: int = 64) -> list[Packet]:
    """Return the IPv4 or IPv6 fragments of ``pkt``, payload pieces of ``size`` bytes."""
    if isinstance(pkt, IPv6):
        head = pkt.copy()
        payload = head.payload
        head.remove_payload()
        return list(fragment6(head / IPv6ExtHdrFragment(id=0x5EED) / payload, size + 48))
    return list(fragment(pkt, size))


def ipv6_with_ext_headers(payload: bytes) -> Packet:
    """Return a server -> client IPv6/UDP packet behind hop-by-hop and destination options."""
    return (IPv6(src=SERVER6, dst=CLIENT6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
            / UDP(sport=53, dport=CLIENT_PORT) / Raw(payload))


# -- link layers --------------------------------------------------------------------------------

MAC_SERVER, MAC_CLIENT = "00:00:5e:00:53:01", "00:00:5e:00:53:02"  # RFC 7042 §2.1.2


def _ethertype(data: bytes) -> int:
    return ETH_IP6 if data[0] >> 4 == 6 else ETH_IP4


def _bsd_family(data: bytes) -> int:
    return 24 if data[0] >> 4 == 6 else 2  # AF_INET6 is 24 on NetBSD/OpenBSD, AF_INET is 2


@dataclass(frozen=True)
class Link:
    linktype: int
    wrap: Callable[[bytes], bytes]
    ipv6: bool = True  # whether the link type can carry IPv6


LINKS: dict[str, Link] = {
    "ethernet": Link(1, lambda d: bytes(Ether(src=MAC_SERVER, dst=MAC_CLIENT,
                                              type=_ethertype(d))) + d),
    "802.1q": Link(1, lambda d: bytes(Ether(src=MAC_SERVER, dst=MAC_CLIENT)
                                      / Dot1Q(vlan=11, type=_ethertype(d))) + d),
    "qinq": Link(1, lambda d: bytes(Ether(src=MAC_SERVER, dst=MAC_CLIENT) / Dot1AD(vlan=100)
                                    / Dot1Q(vlan=11, type=_ethertype(d))) + d),
    "sll": Link(113, lambda d: bytes(CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6,
                                                 src=b"\x00\x00\x5e\x00\x53\x01\x00\x00",
                                                 proto=_ethertype(d))) + d),
    "sll2": Link(276, lambda d: bytes(CookedLinuxV2(proto=_ethertype(d), ifindex=2,
                                                    lladdrtype=1, pkttype=0, lladdrlen=6,
                                                    src=b"\x00\x00\x5e\x00\x53\x01\x00\x00"))
                 + d),
    "raw-101": Link(101, lambda d: d),
    "raw-12": Link(12, lambda d: d),
    "raw-14": Link(14, lambda d: d),
    "ipv4-228": Link(228, lambda d: d, ipv6=False),
    "ipv6-229": Link(229, lambda d: d),
    "null-le": Link(0, lambda d: struct.pack("<I", _bsd_family(d)) + d),
    "null-be": Link(0, lambda d: struct.pack(">I", _bsd_family(d)) + d),
    "loop": Link(108, lambda d: struct.pack(">I", _bsd_family(d)) + d),
}


def frame(pkt: Packet | bytes, link: str = "ethernet") -> bytes:
    """Return the bytes of ``pkt`` (an IP packet) behind the link header named ``link``."""
    return LINKS[link].wrap(bytes(pkt))


# -- capture files --------------------------------------------------------------------------

T0 = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z, in ns
MS = 1_000_000


@dataclass(frozen=True)
class Rec:
    """One packet record: time, the bytes captured and, when cut by a snaplen, its length."""

    ts_ns: int
    data: bytes
    origlen: int | None = None
    iface: int = 0


def records(frames: Iterable[bytes], start: int = T0, step: int = MS) -> list[Rec]:
    """Return one record per frame, ``step`` ns apart."""
    return [Rec(start + i * step, f) for i, f in enumerate(frames)]


def pcap(recs: Iterable[Rec], linktype: int = 1, *, nanos: bool = False,
         big_endian: bool = False, snaplen: int = 262144) -> bytes:
    """Return a classic pcap file (microsecond or nanosecond magic, either byte order)."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    div = 1 if nanos else 1000
    for r in recs:
        sec, frac = divmod(r.ts_ns, 10**9)
        orig = len(r.data) if r.origlen is None else r.origlen
        out.append(struct.pack(e + "IIII", sec, frac // div, len(r.data), orig) + r.data)
    return b"".join(out)


@dataclass(frozen=True)
class Iface:
    """A pcapng interface: link type and the raw if_tsresol byte (None: the default 10^-6)."""

    linktype: int
    tsresol: int | None = None
    tsoffset: int | None = None  # if_tsoffset, seconds


def ticks_per_second(tsresol: int | None) -> int:
    if tsresol is None:
        return 10**6
    return 2 ** (tsresol & 0x7F) if tsresol & 0x80 else 10**tsresol


def to_ticks(ts_ns: int, iface: Iface) -> int:
    """Return ``ts_ns`` in ``iface``'s units (rounded down; pick times it can represent)."""
    ts_ns -= (iface.tsoffset or 0) * 10**9
    sec, frac = divmod(ts_ns, 10**9)
    tps = ticks_per_second(iface.tsresol)
    return sec * tps + frac * tps // 10**9


def _block(e: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def _option(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def pcapng_section(ifaces: Sequence[Iface], recs: Iterable[Rec], *,
                   big_endian: bool = False) -> bytes:
    """Return one pcapng section: SHB, one IDB per interface, one EPB per record."""
    e = ">" if big_endian else "<"
    out = [_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for itf in ifaces:
        opts = b""
        if itf.tsresol is not None:
            opts += _option(e, 9, bytes([itf.tsresol]))
        if itf.tsoffset is not None:
            opts += _option(e, 14, struct.pack(e + "q", itf.tsoffset))
        if opts:
            opts += _option(e, 0, b"")
        out.append(_block(e, 1, struct.pack(e + "HHI", itf.linktype, 0, 262144) + opts))
    for r in recs:
        t = to_ticks(r.ts_ns, ifaces[r.iface]) if r.iface < len(ifaces) else 0
        orig = len(r.data) if r.origlen is None else r.origlen
        out.append(_block(e, 6, struct.pack(e + "IIIII", r.iface, t >> 32, t & 0xFFFFFFFF,
                                            len(r.data), orig) + r.data))
    return b"".join(out)


# -- the crafted captures ----------------------------------------------------------------------


@dataclass(frozen=True)
class Crafted:
    """A capture built for one decoding case, and the ports to scan it with."""

    build: Callable[[], bytes]
    ports: tuple[int, ...] = (53,)


def exchange(link: str = "ethernet", *, v6: bool = False, qname: str = "example.com",
             edes: Sequence[Ede] = ((9, "no DNSKEY"),), dns_id: int = 0x1234,
             port: int = 53) -> list[bytes]:
    """Return [query frame, response frame] for one UDP exchange on the named link."""
    return [frame(udp(query(qname, dns_id=dns_id), v6=v6, to_server=True, port=port), link),
            frame(udp(response(qname, dns_id=dns_id, edes=edes), v6=v6, port=port), link)]


def link_capture(link: str, v6: bool = False) -> bytes:
    return pcap(records(exchange(link, v6=v6)), LINKS[link].linktype)


def ipv6_ext_capture() -> bytes:
    q = frame(udp(query(), v6=True, to_server=True))
    r = frame(ipv6_with_ext_headers(response(edes=[(18, "prohibited by policy")])))
    return pcap(records([q, r]))


SHUFFLED = (3, 1, 0, 2)  # an order of the 4 fragments of a BIG_EDES response
BIG_EDES: tuple[Ede, ...] = ((22, "no reachable authority at " + "x" * 120),
                             (23, "network error talking to 192.0.2.99"))


def fragments_capture(order: Sequence[int] | None = None, *, v6: bool = False,
                      drop_last: bool = False) -> bytes:
    """A query, then a response split into IP fragments, sent in ``order``."""
    q = frame(udp(query(), v6=v6, to_server=True))
    frags = ip_fragments(udp(response(edes=BIG_EDES), v6=v6), 64)
    if drop_last:
        frags = frags[:-1]
    picked = [frags[i] for i in (order if order is not None else range(len(frags)))]
    return pcap(records([q, *(frame(f) for f in picked)]))


def tcp_capture(segments: Sequence[Packet | bytes]) -> bytes:
    return pcap(records(frame(s) for s in segments))


def tcp_handshake_segments() -> list[Packet]:
    """Handshake, query, response in one segment, FIN from both."""
    f = TcpFlow()
    return [*f.handshake(), f.client(framed(query(dns_id=1))),
            f.server(framed(response(dns_id=1, edes=[(15, "blocked")]))),
            f.fin(True), f.fin(False)]


def tcp_many_in_one_segments() -> list[Packet]:
    """Three queries, then three responses in one segment."""
    f = TcpFlow()
    queries = b"".join(framed(query(f"q{i}.example.com", dns_id=i)) for i in (1, 2, 3))
    answers = b"".join(framed(response(f"q{i}.example.com", dns_id=i, edes=[(i, f"text {i}")]))
                       for i in (1, 2, 3))
    return [*f.handshake(), f.client(queries), f.server(answers)]


def tcp_split_segments(pieces: int) -> list[Packet]:
    """One response spread over ``pieces`` segments (the length prefix split from its body)."""
    f = TcpFlow()
    data = framed(response(dns_id=7, edes=BIG_EDES))
    half = len(data) // 2
    cuts = [0, half, len(data)] if pieces == 2 else [0, 1, half, len(data)]
    out = [*f.handshake(), f.client(framed(query(dns_id=7)))]
    out += [f.server(data[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    return out


def tcp_retransmission_segments() -> list[Packet]:
    f = TcpFlow()
    seg = f.server(framed(response(dns_id=3, edes=[(6, "bogus")])))
    return [*f.handshake(), f.client(framed(query(dns_id=3))), seg, seg.copy()]


def tcp_out_of_order_segments(tail_at_opt: bool = False) -> list[Packet]:
    """A response in two segments, the second captured first.

    The split falls inside the question name, or, with ``tail_at_opt``, just before the OPT
    record, so that the second segment happens to begin like a length-prefixed DNS header.
    """
    f = TcpFlow()
    data = framed(response(dns_id=4, edes=[(7, "signature expired")]))
    half = data.index(b"\x00\x29") if tail_at_opt else 16
    return [*f.handshake(), f.client(framed(query(dns_id=4))),
            f.server_at(half, data[half:]), f.server_at(0, data[:half])]


def tcp_no_syn_segments() -> list[Packet]:
    """A stream picked up mid-connection, on a message boundary."""
    f = TcpFlow(client_isn=50_000, server_isn=70_000)
    f.sent = {True: 300, False: 900}
    return [f.client(framed(query(dns_id=5))),
            f.server(framed(response(dns_id=5, edes=[(20, "not authoritative")])))]


def tcp_gap_segments() -> list[Packet]:
    """Three responses on one stream; the segment holding the second was not captured."""
    f = TcpFlow()
    msgs = [framed(response(f"m{i}.example.com", dns_id=10 + i, edes=[(i, f"m{i}")]))
            for i in (1, 2, 3)]
    first = f.server(msgs[0])
    f.server(msgs[1])  # lost
    return [*f.handshake(), first, f.server(msgs[2])]


def noise_capture() -> bytes:
    """Queries and responses among non-DNS packets: ARP, ICMP, TCP/443, UDP/123, IPv6 UDP."""
    frames = [
        bytes(Ether(src=MAC_SERVER, dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=SERVER4)),
        frame(IP(src=CLIENT4, dst=SERVER4) / ICMP()),
        frame(IP(src=CLIENT4, dst=SERVER4) / TCP(sport=50000, dport=443, flags="S")),
        frame(IP(src=CLIENT4, dst=SERVER4) / UDP(sport=123, dport=123) / Raw(b"\x23" + bytes(47))),
        *exchange(edes=[(3, "stale")]),
        *exchange(v6=True, qname="v6.example.com", dns_id=0x66, edes=()),
        frame(udp(response("plain.example.com", dns_id=0x77, edes=None))),
    ]
    return pcap(records(frames))


def pcapng_capture() -> bytes:
    """Two sections: little-endian with Ethernet (µs) and raw (ns) interfaces, then a
    big-endian section with a SLL interface at 2^-10 s and a NULL one at the default."""
    eth, raw = exchange("ethernet"), exchange("raw-101", v6=True, qname="ns.example.com",
                                              edes=[(0, "other")])
    sll = exchange("sll", qname="bin.example.com", edes=[(17, "filtered")])
    first = pcapng_section([Iface(1, 6), Iface(101, 9)], [
        Rec(T0 + 1_000, eth[0], iface=0), Rec(T0 + 1_000_000_123, raw[0], iface=1),
        Rec(T0 + 2_000, eth[1], iface=0), Rec(T0 + 1_500_000_007, raw[1], iface=1)])
    second = pcapng_section([Iface(113, 0x8A), Iface(0)], [
        Rec(T0 + 2 * 10**9, sll[0], iface=0), Rec(T0 + 2 * 10**9 + 250_000_000, sll[1], iface=0),
        Rec(T0 + 3 * 10**9, frame(udp(query("loop.example.com"), to_server=True), "null-be"),
            iface=1)], big_endian=True)
    return first + second


def snaplen_capture() -> bytes:
    """A query, then EDE responses cut at 60 bytes (in the UDP payload) and at 10 (Ethernet)."""
    whole = exchange()
    cut = [Rec(T0 + MS, whole[1][:60], len(whole[1])), Rec(T0 + 2 * MS, whole[1][:10],
                                                            len(whole[1]))]
    return pcap([Rec(T0, whole[0]), *cut], snaplen=60)


def ede_text_capture() -> bytes:
    """Responses whose EXTRA-TEXT is invalid UTF-8, NUL-terminated, empty, or absent."""
    edes: list[list[Ede]] = [[(6, b"bad \xff\xfe bytes")], [(9, b"ends in NUL\x00")],
                             [(22, b"")], [(3, "stale"), (22, "no reachable"), (300, "unknown"),
                                           (65000, "private")]]
    frames = [frame(udp(response(f"t{i}.example.com", dns_id=i, edes=e)))
              for i, e in enumerate(edes)]
    return pcap(records(frames))


def lying_capture() -> bytes:
    """Packets whose length fields lie, each ending in a distinct accounting category."""
    good = udp(response(edes=[(9, "ok")]))
    ip_long = good.copy()
    ip_long[IP].len = len(good) + 40            # IP total length beyond the frame
    udp_long = good.copy()
    udp_long[UDP].len = len(good[UDP]) + 40     # UDP length beyond the IP payload
    rdlen = udp(message(qd=[question()], ar=[opt_rr(ede_option(9, "x"), rdlen=200)]))
    ede_len = udp(message(qd=[question()], ar=[opt_rr(ede_option(9, "hello", length=60))]))
    arcount = udp(message(qd=[question()], ar=[opt_rr(ede_option(9, "arcount"))],
                          counts=(1, 0, 0, 3)))
    return pcap(records(frame(p) for p in (ip_long, udp_long, rdlen, ede_len, arcount)))


def bad_pointer_capture() -> bytes:
    """EDE responses whose question name is a compression loop or a forward pointer."""
    tail = opt_rr(ede_option(9, "x"))
    qtail = struct.pack("!HH", A, IN)
    self_loop = struct.pack("!6H", 0x1111, QR, 1, 0, 0, 1) + b"\xc0\x0c" + qtail + tail
    # the header's DNS id (0xC00C) is itself a pointer to the question: 12 -> 0 -> 12
    mutual = struct.pack("!6H", 0xC00C, QR, 1, 0, 0, 1) + b"\xc0\x00" + qtail + tail
    forward = struct.pack("!6H", 0x3333, QR, 1, 0, 0, 1) + b"\xc0\x20" + qtail + tail
    return pcap(records(frame(udp(m)) for m in (self_loop, mutual, forward)))


CRAFTED: dict[str, Crafted] = {
    **{f"link-{name}-v4": Crafted(lambda n=name: link_capture(n))
       for name, link in LINKS.items() if name != "ipv6-229"},
    **{f"link-{name}-v6": Crafted(lambda n=name: link_capture(n, v6=True))
       for name, link in LINKS.items() if link.ipv6},
    "ipv6-ext-headers": Crafted(ipv6_ext_capture),
    "ipv4-fragments-in-order": Crafted(lambda: fragments_capture()),
    "ipv4-fragments-shuffled": Crafted(lambda: fragments_capture(order=SHUFFLED)),
    "ipv4-fragments-incomplete": Crafted(lambda: fragments_capture(drop_last=True)),
    "ipv6-fragments": Crafted(lambda: fragments_capture(v6=True)),
    "tcp-handshake": Crafted(lambda: tcp_capture(tcp_handshake_segments())),
    "tcp-many-in-one": Crafted(lambda: tcp_capture(tcp_many_in_one_segments())),
    "tcp-split-2": Crafted(lambda: tcp_capture(tcp_split_segments(2))),
    "tcp-split-3": Crafted(lambda: tcp_capture(tcp_split_segments(3))),
    "tcp-retransmission": Crafted(lambda: tcp_capture(tcp_retransmission_segments())),
    "tcp-out-of-order": Crafted(lambda: tcp_capture(tcp_out_of_order_segments())),
    "tcp-out-of-order-tail-at-opt": Crafted(
        lambda: tcp_capture(tcp_out_of_order_segments(tail_at_opt=True))),
    "tcp-no-syn": Crafted(lambda: tcp_capture(tcp_no_syn_segments())),
    "tcp-gap": Crafted(lambda: tcp_capture(tcp_gap_segments())),
    "port-5300": Crafted(lambda: pcap(records(exchange(port=5300))), ports=(5300,)),
    "noise": Crafted(noise_capture),
    "pcapng-sections": Crafted(pcapng_capture),
    "snaplen": Crafted(snaplen_capture),
    "ede-texts": Crafted(ede_text_capture),
    "lying-lengths": Crafted(lying_capture),
    "bad-pointers": Crafted(bad_pointer_capture),
    "unsupported-linktype": Crafted(lambda: pcap(records(exchange()), linktype=147)),
}


# -- scanning -----------------------------------------------------------------------------------


@contextlib.contextmanager
def pure_python_kernels() -> Iterator[None]:
    """Run the block with the Python twins of the compiled kernels (see analyzer.speedups)."""
    kept = speedups.kernels
    speedups.kernels = None
    try:
        yield
    finally:
        speedups.kernels = kept


def scan_bytes(*files: bytes, ports: Iterable[int] = (53,), all_responses: bool = False,
               force_slow: bool = False) -> ScanResult:
    """Scan in-memory capture files with the fast path, or with ``force_slow`` without it."""
    scanner = Scanner(ports, all_responses=all_responses, force_slow=force_slow)
    for _ in scanner.run([io.BytesIO(f) for f in files]):
        pass
    return scanner.result()


def assert_same_result(fast: ScanResult, slow: ScanResult) -> None:
    """Assert that two scans of the same input found exactly the same things."""
    assert fast.accounting == slow.accounting
    assert fast.problems == slow.problems
    assert fast.captures == slow.captures
    assert fast.tunnels == slow.tunnels
    assert fast.unopened == slow.unopened
    for name in ("packets", "dns_queries", "dns_responses", "responses_with_ede", "ede_options",
                 "response_seconds", "first_ts_ns", "last_ts_ns"):
        assert getattr(fast, name) == getattr(slow, name), name
    pd.testing.assert_frame_equal(fast.ede, slow.ede)
    if fast.responses is not None or slow.responses is not None:
        pd.testing.assert_frame_equal(fast.responses, slow.responses)


def scan_checked(*files: bytes, ports: Iterable[int] = (53,),
                 all_responses: bool = False) -> ScanResult:
    """Scan with both paths, check they agree and that every packet is accounted for once."""
    ports = tuple(ports)
    fast = scan_bytes(*files, ports=ports, all_responses=all_responses)
    slow = scan_bytes(*files, ports=ports, all_responses=all_responses, force_slow=True)
    assert_same_result(fast, slow)
    with pure_python_kernels():
        assert_same_result(fast, scan_bytes(*files, ports=ports, all_responses=all_responses))
    assert sum(fast.accounting.values()) == fast.packets
    assert sum(c.packets for c in fast.captures) == fast.packets
    if not all_responses:
        assert tuple(fast.ede.columns) == EDE_COLUMNS
    return fast


def ede_rows(result: ScanResult) -> list[tuple[int, int, str]]:
    """Return (frame number, info-code, extra text) per EDE row."""
    e = result.ede
    return list(zip(e.frame_number.tolist(), e.ede_code.tolist(), e.extra_text.tolist(),
                    strict=True))
