"""Encapsulation headers: what a tunnel or mirror wraps around the packet, and what it carries.

Traffic mirrors and tunnels deliver the resolver's packets inside other packets: VXLAN
(RFC 7348) and Geneve (RFC 8926) over UDP, GRE (RFC 2784/2890) with its ERSPAN payloads,
MPLS label stacks (RFC 3032), PPPoE sessions (RFC 2516), IP in IP (RFC 2003/4213/2473), and
802.1Q/802.1ad tags. Each function here reads one such header from ``data`` at ``off`` and
says what follows it: an ``Inner`` (the next layer's kind, where it starts, the label it adds
to the encapsulation path), or a ``str`` describing what cannot be opened ("GRE protocol
0x1234"). They raise ``IndexError`` when the header runs past the bytes, as the layer stage
expects of every read.

``layers.PacketDecoder`` walks packets with these; the compiled classifier
(``_speedups.c``, ``peel``) opens the same headers in bulk, and tests hold both to the same
paths and verdicts. Labels name the field that tells a mirror's sources apart: the VNI,
GRE key, ERSPAN session, MPLS label, PPPoE session or VLAN ID.
"""

from __future__ import annotations

from typing import NamedTuple

# What a header says comes next (its "kind"): an EtherType where there is one.
ETH_IP4, ETH_IP6, ETH_TEB = 0x0800, 0x86DD, 0x6558
ETHERNET = -1  # an Ethernet header follows (VXLAN, Geneve 0x6558, GRE 0x6558, ERSPAN)

VLAN_TAGS = frozenset((0x8100, 0x88A8, 0x9100))
MPLS_TYPES = frozenset((0x8847, 0x8848))
PPPOE_SESSION = 0x8864
GRE_ERSPAN_2, GRE_ERSPAN_3, GRE_PPP = 0x88BE, 0x22EB, 0x880B
IP_IN_IP, IP6_IN_IP, IP_GRE = 4, 41, 47

# UDP ports that carry Ethernet or IP frames (either end of the outer datagram).
VXLAN_PORTS = frozenset((4789, 8472))  # IANA; the Linux kernel's historical default
GENEVE_PORT = 6081
VXLAN_GPE_PORT = 4790
GTP_U_PORT = 2152  # a mobile core's user plane (3GPP TS 29.281): subscribers' DNS inside
L2TP_PORT = 1701   # broadband's LAC-LNS leg: subscribers' PPP sessions inside
TUNNEL_PORTS = VXLAN_PORTS | {GENEVE_PORT, VXLAN_GPE_PORT, GTP_U_PORT, L2TP_PORT}

MAX_TUNNELS = 8   # tunnels opened inside one packet; deeper is "tunnel-too-deep"
MAX_LABELS = 16   # VLAN tags in one Ethernet header, labels in one MPLS stack

# The tunnel kinds, as named in the accounting breakdown and in encapsulation paths. The
# compiled classifier reports them as bits of one number, in this order.
KINDS: tuple[str, ...] = ("vxlan", "geneve", "gre", "erspan", "mpls", "pppoe", "ip4-in-ip",
                          "ip6-in-ip", "vxlan-gpe", "gtp-u", "l2tp")
KIND_BIT = {name: 1 << i for i, name in enumerate(KINDS)}

# What cannot be opened, in words; the compiled classifier reports these as
# ``(number << 32) | value`` (``fastpath.unopened_text``).
GRE_PROTOCOL = "GRE protocol 0x{:04x}"
GENEVE_PROTOCOL = "Geneve protocol 0x{:04x}"
MPLS_PAYLOAD = "MPLS payload starting with 0x{:x} (not IP)"
PPP_PROTOCOL = "PPP protocol 0x{:04x}"
LINKTYPE = "link type {}"
# Names for what a capture commonly holds beside DNS, so that the report can say it plainly.
_ETHERTYPE_NAMES = {0x0806: "ARP", 0x8035: "RARP", 0x88CC: "LLDP", 0x888E: "EAPOL",
                    0x8809: "LACP", 0x88F7: "PTP", 0x8863: "PPPoE discovery", 0x9000: "loopback",
                    0x22F0: "AVTP", 0x8906: "FCoE", 0x88E5: "MACsec"}
_IP_PROTOCOL_NAMES = {1: "ICMP", 2: "IGMP", 50: "ESP", 51: "AH", 58: "ICMPv6", 89: "OSPF",
                      103: "PIM", 112: "VRRP", 115: "L2TP", 132: "SCTP", 0: "hop-by-hop",
                      59: "no next header"}


def ethertype_text(value: int) -> str:
    """``EtherType 0x0806 (ARP)``: what a frame that is not IP carries."""
    name = _ETHERTYPE_NAMES.get(value)
    return f"EtherType 0x{value:04x}" + (f" ({name})" if name else "")


def ip_protocol_text(value: int) -> str:
    """``IP protocol 50 (ESP)``: what an IP packet that is not UDP or TCP carries."""
    name = _IP_PROTOCOL_NAMES.get(value)
    return f"IP protocol {value}" + (f" ({name})" if name else "")
UNOPENED_TUNNEL = {1: GRE_PROTOCOL, 2: GENEVE_PROTOCOL, 3: MPLS_PAYLOAD, 4: PPP_PROTOCOL}

# PPP protocol numbers (RFC 1661, RFC 5072) for IPv4 and IPv6.
_PPP_IP = {0x0021: ETH_IP4, 0x0057: ETH_IP6}


class Inner(NamedTuple):
    """The layer a header carries: ``kind`` (an EtherType or ``ETHERNET``) at ``off``."""

    kind: int
    off: int
    label: str  # the encapsulation path's element for this header, "" for none
    tunnel: str  # the accounting kind, "" when the header only tags (VLAN)


def _u16(data: bytes, off: int) -> int:
    return (data[off] << 8) | data[off + 1]


def vlan(data: bytes, off: int) -> tuple[int, int]:
    """802.1Q/802.1ad tag at ``off`` (after its TPID): return (VLAN ID, the next EtherType)."""
    return _u16(data, off) & 0x0FFF, _u16(data, off + 2)


def ethernet(data: bytes, off: int) -> int:
    """The EtherType of the Ethernet II header at ``off`` (14 bytes; no FCS is expected)."""
    if off + 14 > len(data):
        raise IndexError(off)
    return _u16(data, off + 12)


def vxlan(data: bytes, off: int) -> Inner | str:
    """VXLAN (RFC 7348): 8 bytes, the I flag set, a 24-bit VNI; an Ethernet frame follows."""
    if off + 8 > len(data):
        raise IndexError(off)
    if not data[off] & 0x08:
        return "VXLAN without a valid VNI (I flag clear)"
    vni = (data[off + 4] << 16) | (data[off + 5] << 8) | data[off + 6]
    return Inner(ETHERNET, off + 8, f"vxlan:{vni}", "vxlan")


def geneve(data: bytes, off: int) -> Inner | str:
    """Geneve (RFC 8926): 8 bytes plus options; Ethernet (0x6558) or IP follows."""
    if off + 8 > len(data):
        raise IndexError(off)
    version = data[off] >> 6
    if version:
        return f"Geneve version {version}"
    proto = _u16(data, off + 2)
    vni = (data[off + 4] << 16) | (data[off + 5] << 8) | data[off + 6]
    start = off + 8 + (data[off] & 0x3F) * 4
    if start > len(data):
        raise IndexError(start)
    kind = ETHERNET if proto == ETH_TEB else proto
    if kind not in (ETHERNET, ETH_IP4, ETH_IP6):
        return GENEVE_PROTOCOL.format(proto)
    return Inner(kind, start, f"geneve:{vni}", "geneve")


_GPE_PROTOCOLS = {1: ETH_IP4, 2: ETH_IP6, 3: ETHERNET, 5: 0x8847}


def vxlan_gpe(data: bytes, off: int) -> Inner | str:
    """VXLAN-GPE (UDP 4790): like VXLAN, with a next-protocol byte (flag P) saying what
    follows: IPv4 (1), IPv6 (2), Ethernet (3) or MPLS (5)."""
    if off + 8 > len(data):
        raise IndexError(off)
    flags = data[off]
    proto = data[off + 3] if flags & 0x04 else 3
    kind = _GPE_PROTOCOLS.get(proto)
    if flags & 0x30 or kind is None:
        return f"VXLAN-GPE next protocol {proto}" if kind is None else \
            f"VXLAN-GPE version {flags >> 4 & 3}"
    vni = (data[off + 4] << 16) | (data[off + 5] << 8) | data[off + 6]
    return Inner(kind, off + 8, f"vxlan-gpe:{vni}", "vxlan-gpe")


def gtp_u(data: bytes, off: int) -> Inner | str:
    """GTP-U version 1 (3GPP TS 29.281): a G-PDU carries a subscriber's IP packet.

    The path element has no TEID: one is allotted per subscriber session, far too many to
    split a capture by.
    """
    if off + 8 > len(data):
        raise IndexError(off)
    flags, message = data[off], data[off + 1]
    if flags >> 5 != 1 or not flags & 0x10:
        return f"GTP version {flags >> 5}" if flags >> 5 != 1 else "GTP' (charging)"
    if message != 0xFF:
        return f"GTP-U message type {message}"
    pos = off + 8
    if flags & 0x07:  # sequence number, N-PDU number, next extension header type
        pos += 4
        following = data[pos - 1] if flags & 0x04 else 0
        for _ in range(MAX_LABELS):
            if not following:
                break
            length = data[pos] * 4
            if not length:
                return "GTP-U extension header of length 0"
            following = data[pos + length - 1]
            pos += length
        else:
            return "GTP-U extension headers deeper than 16"
    if pos >= len(data):
        raise IndexError(pos)
    nibble = data[pos] >> 4
    if nibble not in (4, 6):
        return f"GTP-U payload starting with 0x{nibble:x} (not IP)"
    return Inner(ETH_IP4 if nibble == 4 else ETH_IP6, pos, "gtp-u", "gtp-u")


def l2tp(data: bytes, off: int) -> Inner | str:
    """An L2TPv2 data message (RFC 2661 §3.1) carrying PPP; control messages are not opened.

    The path element names the tunnel, not the session (one per subscriber).
    """
    if off + 6 > len(data):
        raise IndexError(off)
    flags = _u16(data, off)
    if flags & 0x0F != 2:
        return f"L2TP version {flags & 0x0F}"
    if flags & 0x8000:
        return "L2TP control message"
    pos = off + 2 + (2 if flags & 0x4000 else 0)
    tunnel = _u16(data, pos)
    pos += 4 + (4 if flags & 0x0800 else 0)
    if flags & 0x0200:  # an offset size, then that many bytes of padding
        pos += 2 + _u16(data, pos)
    inner = ppp(data, pos)
    if isinstance(inner, str):
        return inner
    return Inner(inner.kind, inner.off, f"l2tp:{tunnel}", "l2tp")


def gre(data: bytes, off: int) -> Inner | str:
    """GRE (RFC 2784, RFC 2890 key and sequence, RFC 2637 version 1), with ERSPAN inside.

    ERSPAN type I is GRE 0x88BE without a sequence number and carries Ethernet directly;
    type II (0x88BE) has an 8-byte header, type III (0x22EB) 12 bytes plus an optional
    8-byte platform sub-header (flag O).
    """
    if off + 4 > len(data):
        raise IndexError(off)
    flags, version = data[off], data[off + 1] & 0x07
    proto = _u16(data, off + 2)
    if flags & 0x40 or version > 1:  # source routing (RFC 1701) is obsolete
        return f"GRE version {version}" if version > 1 else "GRE with source routing"
    checksum, keyed, sequenced = flags & 0x80, flags & 0x20, flags & 0x10
    pos = off + 4 + (4 if checksum else 0)
    key = None
    if keyed:
        if pos + 4 > len(data):
            raise IndexError(pos)
        key = int.from_bytes(data[pos:pos + 4], "big")
        pos += 4
    if sequenced:
        pos += 4
    if version == 1:  # PPTP's enhanced GRE: an acknowledgement may follow; PPP inside
        pos += 4 if data[off + 1] & 0x80 else 0
        if proto != GRE_PPP:
            return f"GRE version 1 protocol 0x{proto:04x}"
        inner = ppp(data, pos)
        if isinstance(inner, str):
            return inner
        call = "" if key is None else f":{key & 0xFFFF}"  # the key's low half: the call ID
        return Inner(inner.kind, inner.off, "pptp" + call, "gre")
    if pos > len(data):
        raise IndexError(pos)
    label = "gre" if key is None else f"gre:{key}"
    if proto in (ETH_IP4, ETH_IP6) or proto in MPLS_TYPES:
        return Inner(proto, pos, label, "gre")
    if proto == ETH_TEB:
        return Inner(ETHERNET, pos, label, "gre")
    if proto == GRE_ERSPAN_2 and not sequenced:  # ERSPAN type I: no header of its own
        return Inner(ETHERNET, pos, "erspan", "erspan")
    if proto in (GRE_ERSPAN_2, GRE_ERSPAN_3):
        return erspan(data, pos, proto == GRE_ERSPAN_3)
    return GRE_PROTOCOL.format(proto)


def erspan(data: bytes, off: int, type3: bool) -> Inner | str:
    """ERSPAN type II or III header at ``off``: the session ID, then an Ethernet frame."""
    size = 12 if type3 else 8
    if off + size > len(data):
        raise IndexError(off)
    version = data[off] >> 4
    if version != (2 if type3 else 1):
        return f"ERSPAN version {version}"
    session = _u16(data, off + 2) & 0x03FF
    if type3 and data[off + 11] & 0x01:  # O: a platform-specific sub-header follows
        size += 8
    return Inner(ETHERNET, off + size, f"erspan:{session}", "erspan")


def mpls(data: bytes, off: int) -> Inner | str:
    """An MPLS label stack (RFC 3032); the payload's first nibble says IPv4 or IPv6, and
    0 an Ethernet pseudowire (RFC 4448), with or without the control word (RFC 4385).

    The stack becomes one path element with its labels, outermost first: ``mpls:16,17``.
    """
    labels = []
    for _ in range(MAX_LABELS):
        if off + 4 > len(data):
            raise IndexError(off)
        entry = int.from_bytes(data[off:off + 4], "big")
        labels.append(str(entry >> 12))
        off += 4
        if entry & 0x100:  # bottom of stack
            break
    else:
        return "MPLS label stack deeper than 16"
    if off >= len(data):
        raise IndexError(off)
    nibble = data[off] >> 4
    label = "mpls:" + ",".join(labels)
    if nibble == 0:
        start = pseudowire(data, off)
        if start is not None:
            return Inner(ETHERNET, start, label, "mpls")
    if nibble not in (4, 6):
        return MPLS_PAYLOAD.format(nibble)
    return Inner(ETH_IP4 if nibble == 4 else ETH_IP6, off, label, "mpls")


def pseudowire(data: bytes, off: int) -> int | None:
    """Where the Ethernet frame of an Ethernet pseudowire starts, or None if the payload
    does not look like one: behind a control word when the frame there names IP (and its
    header's version agrees), a VLAN tag, MPLS or PPPoE, else at once on the same test.

    A frame without control word that starts with a VLAN tag reads as one behind a control
    word: both put the IP header at the same offset, and the path then lacks the tag.
    """
    for start in (off + 4, off):
        if start + 15 > len(data):
            continue
        et = _u16(data, start + 12)
        if et in _PW_CARRIED or (et, data[start + 14] >> 4) in ((ETH_IP4, 4), (ETH_IP6, 6)):
            return start
    return None


_PW_CARRIED = frozenset((*VLAN_TAGS, *MPLS_TYPES, PPPOE_SESSION))


def pppoe(data: bytes, off: int) -> Inner | str:
    """A PPPoE session header (RFC 2516): 6 bytes, then the PPP protocol."""
    if off + 6 > len(data):
        raise IndexError(off)
    if data[off] != 0x11 or data[off + 1] != 0:
        return f"PPPoE session with version/type 0x{data[off]:02x} code 0x{data[off + 1]:02x}"
    session = _u16(data, off + 2)
    inner = ppp_protocol(data, off + 6)
    if isinstance(inner, str):
        return inner
    return Inner(inner.kind, inner.off, f"pppoe:{session}", "pppoe")


def ppp(data: bytes, off: int) -> Inner | str:
    """A PPP frame (RFC 1661): the HDLC address and control bytes (FF 03) are optional."""
    if off + 2 <= len(data) and data[off] == 0xFF and data[off + 1] == 0x03:
        off += 2
    return ppp_protocol(data, off)


def ppp_protocol(data: bytes, off: int) -> Inner | str:
    """The PPP protocol field at ``off``: one byte when compressed (odd), else two."""
    if off >= len(data):
        raise IndexError(off)
    if data[off] & 1:
        proto, off = data[off], off + 1
    else:
        proto, off = _u16(data, off), off + 2
    kind = _PPP_IP.get(proto)
    if kind is None:
        return PPP_PROTOCOL.format(proto)
    return Inner(kind, off, "", "")


def nflog(data: bytes) -> Inner | str:
    """Linux NFLOG (link type 239): a 4-byte header, then TLVs; NFULA_PAYLOAD (9) holds IP.

    TLV lengths and types are in the capturing host's byte order: a type is below 256, so
    the byte that is zero tells the order.
    """
    if len(data) < 4:
        raise IndexError(0)
    family = data[0]
    kind = ETH_IP4 if family == 2 else ETH_IP6 if family == 10 else None
    off = 4
    while off + 4 <= len(data):
        little = data[off + 3] == 0 and data[off + 2] != 0
        order = "little" if little else "big"
        length = int.from_bytes(data[off:off + 2], order)
        tlv_type = int.from_bytes(data[off + 2:off + 4], order) & 0x7FFF  # NLA_F_* bits off
        if length < 4:
            return "NFLOG with a TLV shorter than its header"
        if tlv_type == 9:
            if kind is None:
                return f"NFLOG address family {family}"
            if off + length > len(data):
                raise IndexError(off + length)
            return Inner(kind, off + 4, "", "")
        off += (length + 3) & ~3
    if off < len(data):
        raise IndexError(off)
    return "NFLOG without a packet payload"


# The header each tunnel port carries.
UDP_TUNNELS = {**dict.fromkeys(VXLAN_PORTS, vxlan), GENEVE_PORT: geneve,
               VXLAN_GPE_PORT: vxlan_gpe, GTP_U_PORT: gtp_u, L2TP_PORT: l2tp}
