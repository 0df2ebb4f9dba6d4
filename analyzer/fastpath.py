"""Classify a whole chunk of packets at once, leaving only hard cases to Python.

One pass of the compiled kernel (``_speedups.c``) does it; ``classify_numpy`` is its twin,
a dozen whole-chunk numpy passes, used where the kernel was not built.

Contract: for every packet, ``classify`` either settles its final accounting category
(``QUERY``, ``RESPONSE``, ``NOT_DNS_PORT``, ``NON_IP``, ``NOT_UDP_TCP``,
``UNSUPPORTED_LINKTYPE``, ``UNSUPPORTED_TUNNEL``), marks it ``CANDIDATE`` (a UDP DNS
response that might carry an EDE option: Python decodes its DNS payload, located by the
returned offsets), or marks it
``TCP_SEGMENT`` (a well-formed TCP segment to or from a DNS port that carries data or
SYN/FIN/RST: it goes to the stream reassembler, located by ``l4``/``payload``), or
``SLOW`` (anything unusual: fragments, IPv6 extension headers, short or lying lengths,
snaplen cuts). Pure ACKs to a DNS port change no stream state and are settled here.
``layers.PacketDecoder`` handles SLOW packets from the first byte and reaches the same
verdicts as this module would; tests run every fixture both ways.

Tunnels (``tunnels.py``): the kernel opens them in the same pass and classifies the
innermost packet, with offsets into the outer frame; each packet's encapsulation path comes
back as a number (``encap``) and its tunnel kinds as bits (``tunnels``). The numpy twin
leaves tunnelled packets ``SLOW``, and tests hold the kernel's verdicts on them to
``layers.PacketDecoder``'s.

The EDE test is deliberately a superset: a response is a candidate when ARCOUNT > 0 and its
payload holds the OPT type bytes ``00 29`` followed, at least 8 bytes later, by the option
code ``00 0f``. A real EDE option always satisfies that; most clean responses do not, and
they are counted without being decoded.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from analyzer import speedups, tunnels
from analyzer.capture import Chunk

(SLOW, QUERY, RESPONSE, CANDIDATE, NOT_DNS_PORT, NON_IP, NOT_UDP_TCP, UNSUPPORTED_LINKTYPE,
 TCP_NO_PAYLOAD, TCP_SEGMENT, UNSUPPORTED_TUNNEL) = range(11)
CATEGORY_NAMES = {
    QUERY: "dns-query", RESPONSE: "dns-response", NOT_DNS_PORT: "not-dns-port",
    NON_IP: "non-ip", NOT_UDP_TCP: "not-udp-tcp", UNSUPPORTED_LINKTYPE: "unsupported-linktype",
    TCP_NO_PAYLOAD: "tcp-no-payload", UNSUPPORTED_TUNNEL: "unsupported-tunnel",
}

ETH_IP4, ETH_IP6 = 0x0800, 0x86DD
_VLAN_TAGS = tuple(tunnels.VLAN_TAGS)
_RAW_LINKTYPES = (12, 14, 101)
# What the numpy twin leaves to the per-packet path: tunnels are opened by the kernel, or
# one packet at a time (EtherTypes, IP protocols, UDP ports and link types that carry one).
_TUNNEL_ETHERTYPES = (*tunnels.MPLS_TYPES, tunnels.PPPOE_SESSION, tunnels.ETH_TEB)
_TUNNEL_PROTOCOLS = (tunnels.IP_IN_IP, tunnels.IP6_IN_IP, tunnels.IP_GRE)
_TUNNEL_PORTS = tuple(sorted(tunnels.TUNNEL_PORTS))
_OPENED_LINKTYPES = (9, 50, 104, 105, 127, 226, 239)

# The encapsulation path as a number (``Classified.encap``): each layer mixes in its kind
# and its identifier, so equal paths give equal numbers, and 0 is a packet without any.
# The kernel computes it for every path it opens; the numpy twin for VLAN tags.
ENCAP_MIX = 0x9E3779B97F4A7C15
ENCAP_VLAN = 1
# IPv6 next-header values that are extension headers we walk in Python (RFC 8200 §4).
_IP6_EXTENSIONS = (0, 43, 44, 51, 60, 135, 139, 140, 253, 254)


@dataclass(slots=True)
class Classified:
    """Per-packet verdicts for one chunk, and where the DNS payloads of UDP packets are."""

    cat: np.ndarray        # int8 category per packet
    l3: np.ndarray         # int64 offset of the IP header (valid for every IP packet settled)
    l4: np.ndarray         # int64 offset of the UDP/TCP header
    ip_version: np.ndarray  # int64 4 or 6
    sport: np.ndarray
    dport: np.ndarray
    payload: np.ndarray    # int64 offset of the DNS message
    payload_len: np.ndarray  # int64 length of the DNS message
    reports: np.ndarray    # indices of QUERY packets that may be RFC 9567 error reports
    encap: np.ndarray      # uint64 the encapsulation path as a number (ENCAP_MIX), 0 if none
    tunnels: np.ndarray    # int64 bits of tunnels.KINDS opened (0 for SLOW packets)
    detail: np.ndarray     # int64 NON_IP: the EtherType; NOT_UDP_TCP: the IP protocol;
    #                        UNSUPPORTED_TUNNEL: see UNOPENED_TUNNEL


def _u16(a: np.ndarray, i: np.ndarray) -> np.ndarray:
    return (a[i].astype(np.int64) << 8) | a[i + 1]


def classify(chunk: Chunk, ports: np.ndarray, decode_all_responses: bool = False) -> Classified:
    """Return the verdicts for every packet of ``chunk`` (see the module docstring).

    The compiled kernel does this in one pass when it was built; ``classify_numpy`` is its
    twin and gives the same verdicts and offsets for every packet the pipeline reads on.
    """
    kernels = speedups.kernels
    if kernels is None:
        return classify_numpy(chunk, ports, decode_all_responses)
    n = len(chunk)
    cat = np.empty(n, np.int8)
    l3, l4, ipver, sport, dport, payload, payload_len, opened, detail = (
        np.empty(n, np.int64) for _ in range(9))
    encap = np.empty(n, np.uint64)
    reports = kernels.classify(
        chunk.arr, np.ascontiguousarray(chunk.data_off), np.ascontiguousarray(chunk.caplen),
        np.ascontiguousarray(chunk.linktype), _port_map(ports), decode_all_responses,
        cat, l3, l4, ipver, sport, dport, payload, payload_len, encap, opened, detail)
    return Classified(cat, l3, l4, ipver, sport, dport, payload, payload_len,
                      np.array(reports, np.int64), encap, opened, detail)


@functools.lru_cache(maxsize=8)
def _port_bits(ports: tuple[int, ...]) -> bytes:
    bits = np.zeros(65536, bool)
    bits[[p for p in ports if 0 <= p < 65536]] = True
    return np.packbits(bits, bitorder="little").tobytes()


def _port_map(ports: np.ndarray) -> bytes:
    """The DNS ports as 8192 bytes, one bit per port (bit ``p & 7`` of byte ``p >> 3``)."""
    return _port_bits(tuple(ports.tolist()))


def classify_numpy(chunk: Chunk, ports: np.ndarray,
                   decode_all_responses: bool = False) -> Classified:
    """The numpy twin of the compiled classifier: a dozen whole-chunk passes."""
    a = chunk.arr
    d, cap, lt = chunk.data_off, chunk.caplen, chunk.linktype
    n = len(d)
    end = d + cap
    cat = np.full(n, SLOW, np.int8)
    etype = np.full(n, -1, np.int64)
    l3 = np.full(n, -1, np.int64)

    # -- link layer: where the IP header starts, and which IP it is ------------------------
    known = np.zeros(n, bool)
    eth = lt == 1
    if eth.any():
        ok = eth & (cap >= 14)
        etype[ok], l3[ok] = _u16(a, d + 12)[ok], (d + 14)[ok]
        known |= ok
    sll = lt == 113
    if sll.any():
        ok = sll & (cap >= 16)
        etype[ok], l3[ok] = _u16(a, d + 14)[ok], (d + 16)[ok]
        known |= ok
    sll2 = lt == 276
    if sll2.any():
        ok = sll2 & (cap >= 20)
        etype[ok], l3[ok] = _u16(a, d)[ok], (d + 20)[ok]
        known |= ok
    # 802.1Q/802.1ad tags after a header that names an EtherType; too many go to Python.
    encap = np.zeros(n, np.uint64)
    tagged = known & np.isin(etype, _VLAN_TAGS)
    for _ in range(tunnels.MAX_LABELS):
        if not tagged.any():
            break
        ok = tagged & (l3 + 4 <= end)
        known &= ~(tagged & ~ok)
        vid = _u16(a, l3) & 0x0FFF
        encap = np.where(ok, mix_encap(mix_encap(encap, ENCAP_VLAN), vid + 1), encap)
        etype = np.where(ok, _u16(a, l3 + 2), etype)
        l3 = np.where(ok, l3 + 4, l3)
        tagged = ok & np.isin(etype, _VLAN_TAGS)
    known &= ~tagged
    raw = np.isin(lt, _RAW_LINKTYPES)
    if raw.any():
        ok = raw & (cap >= 1)
        ver = a[d] >> 4
        etype[ok] = np.where(ver == 4, ETH_IP4, np.where(ver == 6, ETH_IP6, -2))[ok]
        l3[ok] = d[ok]
        known |= ok
    for lt_v, et_v in ((228, ETH_IP4), (229, ETH_IP6)):
        m = lt == lt_v
        if m.any():
            etype[m], l3[m] = et_v, d[m]
            known |= m
    for lt_v, big in ((0, False), (108, True)):
        m = lt == lt_v
        if m.any():
            ok = m & (cap >= 4)
            fam = a[d].astype(np.int64) if not big else a[d + 3].astype(np.int64)
            if not big:  # NULL's family is in the capturing host's byte order
                fam = np.where(fam == 0, a[d + 3], fam)
            etype[ok] = np.where(fam == 2, ETH_IP4,
                                 np.where(np.isin(fam, (10, 24, 28, 30)), ETH_IP6, -2))[ok]
            l3[ok] = (d + 4)[ok]
            known |= ok
    supported = eth | sll | sll2 | raw | np.isin(lt, (0, 108, 228, 229, *_OPENED_LINKTYPES))
    cat[~supported] = UNSUPPORTED_LINKTYPE
    # A link header that names something other than IP (ARP, LLDP, ...) is settled here;
    # a raw/NULL frame whose IP version is unknown goes to the slow path, which names it,
    # and so do EtherTypes that carry a tunnel.
    non_ip = known & (etype >= 0) & (etype != ETH_IP4) & (etype != ETH_IP6) & ~np.isin(
        etype, _TUNNEL_ETHERTYPES)
    cat[non_ip] = NON_IP
    detail = np.where(non_ip, etype, 0)

    # -- IPv4 -----------------------------------------------------------------------------------
    l4 = np.full(n, -1, np.int64)
    proto = np.full(n, -1, np.int64)
    ip_end = np.zeros(n, np.int64)
    ipver = np.zeros(n, np.int64)
    v4 = known & (etype == ETH_IP4) & (l3 + 20 <= end)
    if v4.any():
        vihl = a[l3]
        ihl = (vihl & 15).astype(np.int64) * 4
        total = _u16(a, l3 + 2)
        frag = ((a[l3 + 6].astype(np.int64) & 0x3F) << 8) | a[l3 + 7]
        good = v4 & ((vihl >> 4) == 4) & (ihl >= 20) & (frag == 0) & (total >= ihl) & (
            l3 + total <= end)
        l4[good] = (l3 + ihl)[good]
        proto[good] = a[l3 + 9][good]
        ip_end[good] = (l3 + total)[good]
        ipver[good] = 4
    # -- IPv6 without extension headers -------------------------------------------------------
    v6 = known & (etype == ETH_IP6) & (l3 + 40 <= end)
    if v6.any():
        plen = _u16(a, l3 + 4)
        nh = a[l3 + 6].astype(np.int64)
        good = v6 & ((a[l3] >> 4) == 6) & (l3 + 40 + plen <= end) & ~np.isin(nh, _IP6_EXTENSIONS)
        l4[good] = (l3 + 40)[good]
        proto[good] = nh[good]
        ip_end[good] = (l3 + 40 + plen)[good]
        ipver[good] = 6
    has_ip = l4 >= 0
    other = has_ip & (proto != 6) & (proto != 17) & ~np.isin(proto, _TUNNEL_PROTOCOLS)
    cat[other] = NOT_UDP_TCP
    detail = np.where(other, proto, detail)

    # -- transport ------------------------------------------------------------------------------
    sport = _u16(a, l4)
    dport = _u16(a, l4 + 2)
    dns_port = np.isin(sport, ports) | np.isin(dport, ports)
    tcp = has_ip & (proto == 6)
    cat[tcp & ~dns_port & (l4 + 4 <= ip_end)] = NOT_DNS_PORT
    tcp_dns = tcp & dns_port
    if tcp_dns.any():
        hlen = (a[l4 + 12] >> 4).astype(np.int64) * 4
        flags = a[l4 + 13]
        sane = tcp_dns & (hlen >= 20) & (l4 + hlen <= ip_end)
        bare = sane & (l4 + hlen == ip_end)
        cat[bare & ((flags & 0x07) == 0)] = TCP_NO_PAYLOAD
        cat[sane & ~(bare & ((flags & 0x07) == 0))] = TCP_SEGMENT
    udp = has_ip & (proto == 17) & (l4 + 8 <= ip_end)
    tunnel_port = np.isin(sport, _TUNNEL_PORTS) | np.isin(dport, _TUNNEL_PORTS)
    cat[udp & ~dns_port & ~tunnel_port] = NOT_DNS_PORT
    ulen = _u16(a, l4 + 4)
    dns = udp & dns_port & (ulen >= 20) & (l4 + ulen <= ip_end)
    payload = np.where(proto == 6, l4 + (a[l4 + 12] >> 4).astype(np.int64) * 4, l4 + 8)
    payload_len = np.where(proto == 6, ip_end - payload, ulen - 8)
    qr = a[payload + 2] >> 7
    query = dns & (qr == 0)
    cat[query] = QUERY
    # RFC 9567 §6.1.1: a report's QNAME starts with the label "_er" (any case: 0x20 bits).
    asked = np.flatnonzero(query & (payload_len >= 16))
    first = payload[asked] + 12
    reports = asked[(a[first] == 3) & (a[first + 1] == 0x5F) & ((a[first + 2] | 0x20) == 0x65)
                    & ((a[first + 3] | 0x20) == 0x72)]
    resp = dns & (qr == 1)
    if decode_all_responses:
        cat[resp] = CANDIDATE
    elif resp.any():
        cat[resp] = RESPONSE
        arcount = _u16(a, payload + 10)
        maybe = np.flatnonzero(resp & (arcount > 0))
        if len(maybe):
            cat[maybe[_may_hold_ede(a, payload[maybe] + 12, (payload + payload_len)[maybe])]] = \
                CANDIDATE
    encap[cat == SLOW] = 0
    return Classified(cat, l3, l4, ipver, sport, dport, payload, payload_len, reports, encap,
                      np.zeros(n, np.int64), detail)


def mix_encap(encap: np.ndarray, value: np.ndarray | int) -> np.ndarray:
    """One step of the encapsulation number (see ``ENCAP_MIX``), on uint64 arrays."""
    return (encap ^ np.uint64(value) if isinstance(value, int)
            else encap ^ value.astype(np.uint64)) * np.uint64(ENCAP_MIX)


def _may_hold_ede(a: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Return, per byte range, whether ``00 29`` occurs and ``00 0f`` follows it 8+ bytes on."""
    # Look for the rare second byte first, then check the zero before it: fewer passes.
    opt_at = np.flatnonzero(a[1:] == 0x29)
    opt_at = opt_at[a[opt_at] == 0]
    ede_at = np.flatnonzero(a[1:] == 0x0F)
    ede_at = ede_at[a[ede_at] == 0]
    if not len(opt_at) or not len(ede_at):
        return np.zeros(len(start), bool)
    i = np.searchsorted(opt_at, start)
    first_opt = opt_at[np.minimum(i, len(opt_at) - 1)]
    has_opt = (i < len(opt_at)) & (first_opt + 1 < stop)
    # TYPE(2) CLASS(2) TTL(4) RDLEN(2): the first option code starts 10 bytes after TYPE.
    j = np.searchsorted(ede_at, first_opt + 10)
    next_ede = ede_at[np.minimum(j, len(ede_at) - 1)]
    return has_opt & (j < len(ede_at)) & (next_ede + 1 < stop)


def unopened_text(category: int, value: int) -> str:
    """What a packet the classifier settled without opening it looks like, in words."""
    if category == NON_IP:
        return tunnels.ethertype_text(value)
    if category == NOT_UDP_TCP:
        return tunnels.ip_protocol_text(value)
    if category == UNSUPPORTED_LINKTYPE:
        return tunnels.LINKTYPE.format(value)
    return tunnels.UNOPENED_TUNNEL[value >> 32].format(value & 0xFFFFFFFF)
