"""One packet, from its first byte: link layer, IP, UDP/TCP -> DNS payloads (the general path).

``fastpath`` settles the common packets of a chunk with numpy; every packet it is unsure of
comes here. This module handles everything: VLAN stacks, every supported link type, IPv4
and IPv6 with extension headers, fragment reassembly, TCP stream reassembly, snaplen cuts
and lying length fields. Each packet gets exactly one accounting category.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

from analyzer.reassembly import IpReassembler, tcp_reassembler

ETH_IP4, ETH_IP6 = 0x0800, 0x86DD
_VLAN_TAGS = frozenset((0x8100, 0x88A8, 0x9100))
_IP6_SKIPPABLE = frozenset((0, 43, 60, 135, 139, 140, 253, 254))  # RFC 8200 §4, RFC 7045
_IP6_FRAGMENT, _IP6_AH = 44, 51


class Endpoint(NamedTuple):
    """Where a DNS payload came from and went to."""

    ts: int
    frame: int
    src: bytes
    dst: bytes
    sport: int
    dport: int
    ip_version: int
    transport: str  # "udp" or "tcp"


DnsHandler = Callable[[bytes, Endpoint], str]


def addresses(buf: bytes, l3: int, ip_version: int) -> tuple[bytes, bytes]:
    """Return the source and destination address of the IP header at ``buf[l3:]``."""
    if ip_version == 4:
        return buf[l3 + 12:l3 + 16], buf[l3 + 16:l3 + 20]
    return buf[l3 + 8:l3 + 24], buf[l3 + 24:l3 + 40]


class PacketDecoder:
    """Decode packets one at a time, keeping reassembly state across them."""

    def __init__(self, ports: frozenset[int], on_dns: DnsHandler, evicted: Counter[str]):
        self.ports = ports
        self.on_dns = on_dns
        self.fragments = IpReassembler(evicted)
        self.tcp = tcp_reassembler(evicted)

    def finish(self) -> None:
        """Deliver what TCP segments held behind a gap still hold (end of a capture)."""
        self.tcp.flush()

    def decode(self, ts: int, frame: int, linktype: int, data: bytes, origlen: int) -> str:
        """Return the accounting category of one packet, handing DNS payloads to ``on_dns``."""
        cut = len(data) < origlen
        try:
            return self._link(ts, frame, linktype, data, cut)
        except IndexError:
            return "snaplen-truncated" if cut else "malformed-packet"

    def _link(self, ts: int, frame: int, lt: int, data: bytes, cut: bool) -> str:
        if lt == 1:  # Ethernet, with any number of 802.1Q/802.1ad tags
            if len(data) < 14:
                return "snaplen-truncated" if cut else "malformed-link"
            et = (data[12] << 8) | data[13]
            off = 14
            while et in _VLAN_TAGS:
                if len(data) < off + 4:
                    return "snaplen-truncated" if cut else "malformed-link"
                et = (data[off + 2] << 8) | data[off + 3]
                off += 4
        elif lt == 113:  # Linux cooked v1: protocol at bytes 14-15
            if len(data) < 16:
                return "snaplen-truncated" if cut else "malformed-link"
            et, off = (data[14] << 8) | data[15], 16
        elif lt == 276:  # Linux cooked v2: protocol at bytes 0-1
            if len(data) < 20:
                return "snaplen-truncated" if cut else "malformed-link"
            et, off = (data[0] << 8) | data[1], 20
        elif lt in (12, 14, 101, 228, 229):  # raw IP
            if not data:
                return "malformed-link"
            ver = data[0] >> 4
            et = ETH_IP4 if ver == 4 else ETH_IP6 if ver == 6 else -1
            if lt == 228 and ver != 4 or lt == 229 and ver != 6:
                et = -1
            off = 0
            if et < 0:
                return "malformed-ip-header"
        elif lt in (0, 108):  # BSD loopback: a 4-byte address family
            if len(data) < 4:
                return "snaplen-truncated" if cut else "malformed-link"
            if lt == 108:
                fam = data[3]
            else:  # the capturing host's byte order
                fam = data[0] or data[3]
            et = ETH_IP4 if fam == 2 else ETH_IP6 if fam in (10, 24, 28, 30) else -1
            off = 4
            if et < 0:
                return "non-ip"
        else:
            return "unsupported-linktype"
        if et == ETH_IP4:
            return self._ip4(ts, frame, data, off, cut)
        if et == ETH_IP6:
            return self._ip6(ts, frame, data, off, cut)
        return "non-ip"

    def _ip4(self, ts: int, frame: int, data: bytes, off: int, cut: bool) -> str:
        avail = len(data) - off
        if avail < 20:
            return "snaplen-truncated" if cut else "malformed-ip-header"
        vihl = data[off]
        ihl = (vihl & 15) * 4
        if vihl >> 4 != 4 or ihl < 20 or avail < ihl:
            return "malformed-ip-header"
        total = (data[off + 2] << 8) | data[off + 3]
        if total < ihl:
            return "malformed-ip-length"
        proto = data[off + 9]
        src, dst = data[off + 12:off + 16], data[off + 16:off + 20]
        frag = ((data[off + 6] & 0x3F) << 8) | data[off + 7]
        l4 = data[off + ihl:off + total]
        short = total > avail  # claimed more than the frame holds
        if frag:
            if short:
                return "snaplen-truncated" if cut else "malformed-ip-length"
            more = bool(frag & 0x2000)
            whole = self.fragments.feed((4, src, dst, data[off + 4:off + 6], proto),
                                        (frag & 0x1FFF) * 8, more, l4, ts)
            if whole is None:
                return "ip-fragment"
            return self._transport(ts, frame, proto, src, dst, 4, whole, False, False)
        return self._transport(ts, frame, proto, src, dst, 4, l4, short, cut)

    def _ip6(self, ts: int, frame: int, data: bytes, off: int, cut: bool) -> str:
        avail = len(data) - off
        if avail < 40:
            return "snaplen-truncated" if cut else "malformed-ip-header"
        if data[off] >> 4 != 6:
            return "malformed-ip-header"
        plen = (data[off + 4] << 8) | data[off + 5]
        nh = data[off + 6]
        src, dst = data[off + 8:off + 24], data[off + 24:off + 40]
        payload = data[off + 40:off + 40 + plen]
        short = 40 + plen > avail
        pos = 0
        fragment: tuple[int, bool, bytes] | None = None
        # Walk extension headers (RFC 8200 §4): each says what follows and how long it is.
        for _ in range(16):
            if nh in _IP6_SKIPPABLE or nh == _IP6_AH:
                if pos + 2 > len(payload):
                    return "snaplen-truncated" if short and cut else "malformed-ip-header"
                length = (payload[pos + 1] + 2) * 4 if nh == _IP6_AH else (payload[pos + 1] + 1) * 8
                nh = payload[pos]
                pos += length
            elif nh == _IP6_FRAGMENT:
                if pos + 8 > len(payload):
                    return "snaplen-truncated" if short and cut else "malformed-ip-header"
                fo = (payload[pos + 2] << 8) | payload[pos + 3]
                fragment = (fo & 0xFFF8, bool(fo & 1), payload[pos + 4:pos + 8])
                nh = payload[pos]
                pos += 8
            else:
                break
        else:
            return "malformed-ip-header"
        if pos > len(payload):
            return "snaplen-truncated" if short and cut else "malformed-ip-header"
        l4 = payload[pos:]
        if fragment is not None:
            offset, more, ident = fragment
            if short:
                return "snaplen-truncated" if cut else "malformed-ip-length"
            if offset == 0 and not more:  # an atomic fragment (RFC 6946): already whole
                return self._transport(ts, frame, nh, src, dst, 6, l4, False, False)
            whole = self.fragments.feed((6, src, dst, ident), offset, more, l4, ts)
            if whole is None:
                return "ip-fragment"
            return self._transport(ts, frame, nh, src, dst, 6, whole, False, False)
        return self._transport(ts, frame, nh, src, dst, 6, l4, short, cut)

    def _transport(self, ts: int, frame: int, proto: int, src: bytes, dst: bytes, ver: int,
                   l4: bytes, short: bool, cut: bool) -> str:
        """Dispatch UDP/TCP. ``short``: the IP header claimed more bytes than are present."""
        if proto not in (6, 17):
            return "not-udp-tcp"
        if len(l4) < 4:
            return "snaplen-truncated" if short and cut else "malformed-" + (
                "udp" if proto == 17 else "tcp")
        sport, dport = (l4[0] << 8) | l4[1], (l4[2] << 8) | l4[3]
        if sport not in self.ports and dport not in self.ports:
            return "not-dns-port"
        if short:
            return "snaplen-truncated" if cut else "malformed-ip-length"
        if proto == 17:
            if len(l4) < 8:
                return "malformed-udp"
            ulen = (l4[4] << 8) | l4[5]
            if ulen < 8 or ulen > len(l4):
                return "malformed-udp-length"
            return self.on_dns(l4[8:ulen], Endpoint(ts, frame, src, dst, sport, dport, ver, "udp"))
        return self.tcp_segment(ts, frame, src, dst, sport, dport, ver, l4)

    def tcp_segment(self, ts: int, frame: int, src: bytes, dst: bytes, sport: int, dport: int,
                    ver: int, l4: bytes) -> str:
        """Feed one TCP segment (header included) to a DNS port into stream reassembly."""
        if len(l4) < 20:
            return "malformed-tcp"
        hlen = (l4[12] >> 4) * 4
        if hlen < 20 or hlen > len(l4):
            return "malformed-tcp"
        seq = (l4[4] << 24) | (l4[5] << 16) | (l4[6] << 8) | l4[7]
        if hlen == len(l4):  # SYN, FIN, RST or ACK without data: no message can complete
            return self.tcp.control((src, dst, sport, dport), seq, l4[13], ts)
        return self.tcp_data(ts, frame, src, dst, sport, dport, ver, seq, l4[13], l4[hlen:])

    def tcp_data(self, ts: int, frame: int, src: bytes, dst: bytes, sport: int, dport: int,
                 ver: int, seq: int, flags: int, data: bytes) -> str:
        """Feed the data of a checked TCP segment into stream reassembly."""
        meta = Endpoint(ts, frame, src, dst, sport, dport, ver, "tcp")
        from_server, to_server = sport in self.ports, dport in self.ports
        qr = None if from_server == to_server else int(from_server)
        return self.tcp.feed((src, dst, sport, dport), seq, flags, data,
                             lambda msg: self.on_dns(msg, meta), qr, ts)
