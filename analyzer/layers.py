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

from analyzer import tunnels
from analyzer.reassembly import IpReassembler, tcp_reassembler

ETH_IP4, ETH_IP6 = 0x0800, 0x86DD
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
    transport: str  # "udp" or "tcp"; from a log also "dot", "doh", "doq"...
    encap: str = ""  # the encapsulation path, outermost first: "vxlan:100/vlan:10"
    # a logged message's (dnstap type, identity, version); None for a packet
    log: tuple[str, str | None, str | None] | None = None


DnsHandler = Callable[[bytes, Endpoint], str]


def addresses(buf: bytes, l3: int, ip_version: int) -> tuple[bytes, bytes]:
    """Return the source and destination address of the IP header at ``buf[l3:]``."""
    if ip_version == 4:
        return buf[l3 + 12:l3 + 16], buf[l3 + 16:l3 + 20]
    return buf[l3 + 8:l3 + 24], buf[l3 + 24:l3 + 40]


class PacketDecoder:
    """Decode packets one at a time, keeping reassembly state across them.

    ``tunnels`` counts the packets that were opened per tunnel kind (``tunnels.KINDS``);
    ``unopened`` says what the packets counted as ``non-ip``, ``not-udp-tcp``,
    ``unsupported-linktype`` or ``unsupported-tunnel`` look like ("GRE protocol 0x1234").
    """

    def __init__(self, ports: frozenset[int], on_dns: DnsHandler, evicted: Counter[str],
                 tunnels: Counter[str] | None = None, unopened: Counter[str] | None = None):
        self.ports = ports
        self.on_dns = on_dns
        self.fragments = IpReassembler(evicted)
        self.tcp = tcp_reassembler(evicted)
        self.tunnels: Counter[str] = Counter() if tunnels is None else tunnels
        self.unopened: Counter[str] = Counter() if unopened is None else unopened
        self._path: list[str] = []    # the encapsulation path of the packet being decoded
        self._opened: list[str] = []  # the tunnel kinds opened in it
        self._cut = False

    def finish(self) -> None:
        """Deliver what TCP segments held behind a gap still hold (end of a capture)."""
        self.tcp.flush()

    def decode(self, ts: int, frame: int, linktype: int, data: bytes, origlen: int) -> str:
        """Return the accounting category of one packet, handing DNS payloads to ``on_dns``."""
        cut = self._cut = len(data) < origlen
        self._path, self._opened = [], []
        try:
            category = self._link(ts, frame, linktype, data, cut)
        except IndexError:
            category = "snaplen-truncated" if cut else "malformed-packet"
        for kind in set(self._opened):
            self.tunnels[kind] += 1
        return category

    @property
    def encap(self) -> str:
        """The encapsulation path of the last packet decoded, outermost first ("" if none)."""
        return "/".join(self._path)

    def _link(self, ts: int, frame: int, lt: int, data: bytes, cut: bool) -> str:
        if lt == 1:  # Ethernet, with any number of 802.1Q/802.1ad tags
            if len(data) < 14:
                return "snaplen-truncated" if cut else "malformed-link"
            et, off = (data[12] << 8) | data[13], 14
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
                self.unopened[f"loopback address family {fam}"] += 1
                return "non-ip"
        elif lt in _LINK_OPENERS:
            opened = _LINK_OPENERS[lt](data)
            if isinstance(opened, str):
                self.unopened[opened] += 1
                return "non-ip"
            et, off = opened.kind, opened.off
        else:
            self.unopened[tunnels.LINKTYPE.format(lt)] += 1
            return "unsupported-linktype"
        return self._ethertype(ts, frame, et, data, off, cut)

    def _ethertype(self, ts: int, frame: int, et: int, data: bytes, off: int, cut: bool) -> str:
        """Open what an EtherType (or a tunnel's ``ETHERNET``) says follows, down to IP."""
        tags = 0
        while True:
            if et in tunnels.VLAN_TAGS:
                if len(data) < off + 4:
                    return "snaplen-truncated" if cut else "malformed-link"
                tags += 1
                if tags > tunnels.MAX_LABELS:
                    return "tunnel-too-deep"
                vid, et = tunnels.vlan(data, off)
                self._path.append(f"vlan:{vid}")
                off += 4
            elif et == ETH_IP4:
                return self._ip4(ts, frame, data, off, cut)
            elif et == ETH_IP6:
                return self._ip6(ts, frame, data, off, cut)
            elif et == tunnels.ETHERNET:
                if len(data) < off + 14:
                    return "snaplen-truncated" if cut else "malformed-link"
                et, off, tags = (data[off + 12] << 8) | data[off + 13], off + 14, 0
            elif et in tunnels.MPLS_TYPES or et == tunnels.PPPOE_SESSION:
                try:
                    inner = (tunnels.mpls if et != tunnels.PPPOE_SESSION else tunnels.pppoe)(
                        data, off)
                except IndexError:
                    return "snaplen-truncated" if cut else "malformed-tunnel"
                stop = self._enter(inner)
                if stop:
                    return stop
                assert not isinstance(inner, str)
                et, off = inner.kind, inner.off
            else:
                self.unopened[tunnels.ethertype_text(et)] += 1
                return "non-ip"

    def _enter(self, inner: tunnels.Inner | str) -> str:
        """Step into an encapsulated layer; return the packet's category if it ends here."""
        if isinstance(inner, str):
            self.unopened[inner] += 1
            return "unsupported-tunnel"
        if inner.tunnel:
            if len(self._opened) >= tunnels.MAX_TUNNELS:
                return "tunnel-too-deep"
            self._opened.append(inner.tunnel)
        if inner.label:
            self._path.append(inner.label)
        return ""

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
        """Dispatch UDP/TCP and IP tunnels. ``short``: the IP header claimed more bytes than
        are present."""
        if proto in (tunnels.IP_IN_IP, tunnels.IP6_IN_IP, tunnels.IP_GRE):
            return self._ip_tunnel(ts, frame, proto, l4, short, cut)
        if proto not in (6, 17):
            self.unopened[tunnels.ip_protocol_text(proto)] += 1
            return "not-udp-tcp"
        if len(l4) < 4:
            return "snaplen-truncated" if short and cut else "malformed-" + (
                "udp" if proto == 17 else "tcp")
        sport, dport = (l4[0] << 8) | l4[1], (l4[2] << 8) | l4[3]
        if sport not in self.ports and dport not in self.ports:
            tunnel = dport if dport in tunnels.TUNNEL_PORTS else sport
            if proto == 6 or tunnel not in tunnels.TUNNEL_PORTS:
                return "not-dns-port"
        else:
            tunnel = 0
        if short:
            return "snaplen-truncated" if cut else "malformed-ip-length"
        if proto == 17:
            if len(l4) < 8:
                return "malformed-udp"
            ulen = (l4[4] << 8) | l4[5]
            if ulen < 8 or ulen > len(l4):
                return "malformed-udp-length"
            if tunnel:
                return self._udp_tunnel(ts, frame, tunnel, l4[8:ulen], cut)
            return self.on_dns(l4[8:ulen], Endpoint(ts, frame, src, dst, sport, dport, ver, "udp",
                                                    "/".join(self._path)))
        return self.tcp_segment(ts, frame, src, dst, sport, dport, ver, l4)

    def _ip_tunnel(self, ts: int, frame: int, proto: int, l4: bytes, short: bool,
                   cut: bool) -> str:
        """Open IP in IP (protocol 4 or 41) or GRE (47); a tunnel is opened whole or not."""
        if short:
            return "snaplen-truncated" if cut else "malformed-ip-length"
        if proto == tunnels.IP_GRE:
            try:
                inner: tunnels.Inner | str = tunnels.gre(l4, 0)
            except IndexError:
                return "malformed-tunnel"
        elif proto == tunnels.IP_IN_IP:
            inner = tunnels.Inner(ETH_IP4, 0, "ip4-in-ip", "ip4-in-ip")
        else:
            inner = tunnels.Inner(ETH_IP6, 0, "ip6-in-ip", "ip6-in-ip")
        return self._enter(inner) or self._ethertype(
            ts, frame, inner.kind, l4, inner.off, cut)  # type: ignore[union-attr]

    def _udp_tunnel(self, ts: int, frame: int, port: int, payload: bytes, cut: bool) -> str:
        """Open VXLAN, Geneve, VXLAN-GPE or GTP-U, named by its UDP port."""
        try:
            inner = tunnels.UDP_TUNNELS[port](payload, 0)
        except IndexError:
            return "malformed-tunnel"
        return self._enter(inner) or self._ethertype(
            ts, frame, inner.kind, payload, inner.off, cut)  # type: ignore[union-attr]

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
                 ver: int, seq: int, flags: int, data: bytes, encap: str | None = None) -> str:
        """Feed the data of a checked TCP segment into stream reassembly.

        ``encap``: the segment's encapsulation path, when it was not decoded here.
        """
        meta = Endpoint(ts, frame, src, dst, sport, dport, ver, "tcp",
                        "/".join(self._path) if encap is None else encap)
        from_server, to_server = sport in self.ports, dport in self.ports
        qr = None if from_server == to_server else int(from_server)
        return self.tcp.feed((src, dst, sport, dport), seq, flags, data,
                             lambda msg: self.on_dns(msg, meta), qr, ts)


# -- link types whose header says where IP starts ------------------------------------------------

def _cisco_hdlc(data: bytes) -> tunnels.Inner | str:
    """Cisco HDLC (link type 104): address, control, then an EtherType."""
    if len(data) < 4:
        raise IndexError(4)
    return tunnels.Inner((data[2] << 8) | data[3], 4, "", "")


def _ipnet(data: bytes) -> tunnels.Inner | str:
    """Solaris IPNET (link type 226): a 24-byte header whose second byte is the family."""
    if len(data) < 24:
        raise IndexError(24)
    family = data[1]
    if family not in (2, 26):
        return f"IPNET address family {family}"
    return tunnels.Inner(ETH_IP4 if family == 2 else ETH_IP6, 24, "", "")


def _ieee80211(data: bytes, off: int = 0) -> tunnels.Inner | str:
    """An 802.11 data frame (link type 105) with an LLC/SNAP header, as tshark opens it."""
    if off + 24 > len(data):
        raise IndexError(off + 24)
    fc, flags = data[off], data[off + 1]
    if (fc >> 2) & 3 != 2:
        return "802.11 management or control frame"
    subtype = fc >> 4
    if subtype & 0x4:
        return "802.11 data frame without a body"
    if flags & 0x40:
        return "802.11 protected (encrypted) frame"
    pos = off + 24 + (6 if flags & 0x03 == 0x03 else 0)
    if subtype & 0x8:  # QoS data: a QoS field, and an HT control field when Order is set
        pos += 2 + (4 if flags & 0x80 else 0)
    if pos + 8 > len(data):
        raise IndexError(pos + 8)
    if data[pos:pos + 6] != b"\xaa\xaa\x03\x00\x00\x00":
        return "802.11 frame without LLC/SNAP"
    return tunnels.Inner((data[pos + 6] << 8) | data[pos + 7], pos + 8, "", "")


def _radiotap(data: bytes) -> tunnels.Inner | str:
    """Radiotap (link type 127): a little-endian header length, then an 802.11 frame."""
    if len(data) < 4:
        raise IndexError(4)
    return _ieee80211(data, data[2] | (data[3] << 8))


_LINK_OPENERS: dict[int, Callable[[bytes], tunnels.Inner | str]] = {
    9: lambda data: tunnels.ppp(data, 0),  # PPP
    50: lambda data: tunnels.ppp(data, 0),  # PPP in HDLC-like framing: FF 03 first
    104: _cisco_hdlc,
    105: _ieee80211,
    127: _radiotap,
    226: _ipnet,
    239: tunnels.nflog,
}


class EncapProbe(PacketDecoder):
    """Tells the encapsulation path of packets the fast path settled, without side effects.

    The compiled classifier opens tunnels in bulk but gives only a number for each path;
    the text of a path is found here, once per distinct number, by walking one packet.
    """

    def __init__(self, ports: frozenset[int]):
        super().__init__(ports, lambda msg, ep: "probe", Counter())

    def tcp_segment(self, ts: int, frame: int, src: bytes, dst: bytes, sport: int, dport: int,
                    ver: int, l4: bytes) -> str:
        return "probe"  # the path is known by now; the stream state is not the probe's

    def path(self, linktype: int, data: bytes) -> str:
        """Return the encapsulation path of one packet."""
        self.decode(0, 0, linktype, data, len(data))
        self.fragments = IpReassembler(Counter())  # keep nothing between packets
        return self.encap
