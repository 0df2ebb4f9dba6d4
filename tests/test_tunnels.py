"""Tunnels and mirror links: any nesting of encapsulations opens to the same DNS rows.

Packets are built byte by byte here (no checksums: nothing checks them), so hypothesis can
nest encapsulations freely: every nesting up to the depth bound gives the inner response's
EDE row with the inner endpoints and the path, on the kernel, the numpy twin and the
per-packet decoder alike (``scan_checked``); deeper nestings, cuts anywhere and lying length
fields are counted, never crash, and agree on all three paths.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Callable

import pytest
from captures import CLIENT4, CLIENT_PORT, SERVER4, Rec, pcap, records, response, scan_checked
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import tunnels

TAP4, COLLECTOR4 = "203.0.113.70", "203.0.113.71"
TAP6, COLLECTOR6 = "2001:db8:7::70", "2001:db8:7::71"
ETH_IP4, ETH_IP6, ETH_TEB = 0x0800, 0x86DD, 0x6558
MAC = bytes.fromhex("00005e005301") + bytes.fromhex("00005e005302")


def ip4(proto: int, payload: bytes, src: str = TAP4, dst: str = COLLECTOR4) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                       ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed) + payload


def ip6(nh: int, payload: bytes, src: str = TAP6, dst: str = COLLECTOR6) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64,
                       ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def eth(ethertype: int, payload: bytes) -> bytes:
    return MAC + struct.pack("!H", ethertype) + payload


# A packet under construction: what it is (an EtherType, or "eth" for a whole Ethernet frame)
# and its bytes. Each layer wraps one and says the path element it adds and its tunnel kind.
Packet = tuple[int | str, bytes]
Layer = Callable[[Packet], tuple[Packet, str, str]]


def as_ethernet(p: Packet) -> bytes:
    return p[1] if p[0] == "eth" else eth(int(p[0]), p[1])


def as_ip(p: Packet, v6: bool, proto: int) -> bytes:
    return (ip6 if v6 else ip4)(proto, p[1])


def vlan(vid: int) -> Layer:
    def wrap(p: Packet) -> tuple[Packet, str, str]:
        frame = as_ethernet(p)
        tagged = frame[:12] + struct.pack("!HH", 0x8100, vid) + frame[12:]
        return ("eth", tagged), f"vlan:{vid}", ""
    return wrap


def vxlan(vni: int, port: int, v6: bool) -> Layer:
    def wrap(p: Packet) -> tuple[Packet, str, str]:
        body = udp(50000, port, struct.pack("!B3xI", 0x08, vni << 8) + as_ethernet(p))
        return (ETH_IP6 if v6 else ETH_IP4, (ip6 if v6 else ip4)(17, body)), f"vxlan:{vni}", \
            "vxlan"
    return wrap


def geneve(vni: int, options: int) -> Layer:
    def wrap(p: Packet) -> tuple[Packet, str, str]:
        inner = as_ethernet(p) if p[0] == "eth" or p[0] not in (ETH_IP4, ETH_IP6) else p[1]
        proto = ETH_TEB if inner is not p[1] or p[0] == "eth" else int(p[0])
        head = struct.pack("!BBHI", options, 0, proto, vni << 8) + bytes(4 * options)
        return (ETH_IP4, ip4(17, udp(50001, 6081, head + inner))), f"geneve:{vni}", "geneve"
    return wrap


def vxlan_gpe(vni: int) -> Layer:
    def wrap(p: Packet) -> tuple[Packet, str, str]:
        proto = {ETH_IP4: 1, ETH_IP6: 2}.get(p[0], 3)  # type: ignore[call-overload]
        inner = p[1] if proto != 3 else as_ethernet(p)
        head = struct.pack("!BBBBI", 0x0C, 0, 0, proto, vni << 8)
        return (ETH_IP4, ip4(17, udp(50002, 4790, head + inner))), f"vxlan-gpe:{vni}", \
            "vxlan-gpe"
    return wrap


def gtp_u(teid: int, extension: bool) -> Layer:
    def wrap(p: Packet) -> tuple[Packet, str, str]:
        if p[0] not in (ETH_IP4, ETH_IP6):
            return vxlan(3, 4789, False)(p)
        extra = struct.pack("!HBB", 0, 0, 0x85) + bytes([1, 0x10, 9, 0]) if extension else b""
        head = struct.pack("!BBHI", 0x34 if extension else 0x30, 0xFF, len(extra) + len(p[1]),
                           teid) + extra
        return (ETH_IP4, ip4(17, udp(2152, 2152, head + p[1]))), "gtp-u", "gtp-u"
    return wrap


def l2tp(tunnel: int, sequenced: bool) -> Layer:
    def wrap(p: Packet) -> tuple[Packet, str, str]:
        if p[0] not in (ETH_IP4, ETH_IP6):
            return vxlan(4, 4789, False)(p)
        ppp = b"\xff\x03" + struct.pack("!H", 0x0021 if p[0] == ETH_IP4 else 0x0057) + p[1]
        seq = bytes(4) if sequenced else b""
        head = struct.pack("!HHHH", 0x4002 | (0x0800 if sequenced else 0), 0, tunnel, 1) + seq
        return (ETH_IP4, ip4(17, udp(1701, 1701, head + ppp))), f"l2tp:{tunnel}", "l2tp"
    return wrap


def gre(key: int | None, seq: bool, checksum: bool, v6: bool) -> Layer:
    def wrap(p: Packet) -> tuple[Packet, str, str]:
        proto, inner = (ETH_TEB, p[1]) if p[0] == "eth" else (int(p[0]), p[1])
        if proto not in (ETH_IP4, ETH_IP6, ETH_TEB, 0x8847):
            proto, inner = ETH_TEB, as_ethernet(p)
        flags = (0x80 if checksum else 0) | (0x20 if key is not None else 0) | (
            0x10 if seq else 0)
        head = (struct.pack("!BBH", flags, 0, proto) + (bytes(4) if checksum else b"")
                + (struct.pack("!I", key) if key is not None else b"")
                + (bytes(4) if seq else b""))
        return (ETH_IP6 if v6 else ETH_IP4, (ip6 if v6 else ip4)(47, head + inner)), \
            "gre" if key is None else f"gre:{key}", "gre"
    return wrap


def erspan(kind: int, session: int) -> Layer:
    def wrap(p: Packet) -> tuple[Packet, str, str]:
        frame = as_ethernet(p)
        if kind == 1:
            head, label = struct.pack("!BBH", 0, 0, 0x88BE), "erspan"
        elif kind == 2:
            head = struct.pack("!BBHI", 0x10, 0, 0x88BE, 1) + struct.pack(
                "!HHI", 0x1000, session, 0)
            label = f"erspan:{session}"
        else:
            head = struct.pack("!BBHI", 0x10, 0, 0x22EB, 1) + struct.pack(
                "!HHIHH", 0x2000, session, 0, 0, 1) + bytes(8)
            label = f"erspan:{session}"
        return (ETH_IP4, ip4(47, head + frame)), label, "erspan"
    return wrap


def mpls(control_word: bool, *labels: int) -> Layer:
    """MPLS carrying IP, or an Ethernet frame as a pseudowire (with or without a control
    word); a frame whose EtherType is a tag, MPLS or PPPoE is only sent with the control
    word: without it, its 4-byte header reads as one (see ``tunnels.pseudowire``)."""
    def wrap(p: Packet) -> tuple[Packet, str, str]:
        stack = b"".join(struct.pack("!I", label << 12 | (0x100 if i == len(labels) - 1 else 0))
                         for i, label in enumerate(labels))
        payload = p[1]
        if p[0] not in (ETH_IP4, ETH_IP6):
            payload = as_ethernet(p)
            tagged = payload[12:14] in (b"\x81\x00", b"\x88\x47", b"\x88\x64")
            payload = (bytes(4) if control_word or tagged else b"") + payload
        return (0x8847, stack + payload), "mpls:" + ",".join(map(str, labels)), "mpls"
    return wrap


def pppoe(session: int) -> Layer:
    def wrap(p: Packet) -> tuple[Packet, str, str]:
        if p[0] not in (ETH_IP4, ETH_IP6):
            return vxlan(2, 4789, False)(p)
        ppp = struct.pack("!H", 0x0021 if p[0] == ETH_IP4 else 0x0057) + p[1]
        return (0x8864, struct.pack("!BBHH", 0x11, 0, session, len(ppp)) + ppp), \
            f"pppoe:{session}", "pppoe"
    return wrap


def ip_in_ip(v6_outer: bool) -> Layer:
    def wrap(p: Packet) -> tuple[Packet, str, str]:
        if p[0] not in (ETH_IP4, ETH_IP6):
            return gre(None, False, False, v6_outer)(p)
        kind = "ip4-in-ip" if p[0] == ETH_IP4 else "ip6-in-ip"
        proto = 4 if p[0] == ETH_IP4 else 41
        return (ETH_IP6 if v6_outer else ETH_IP4, as_ip(p, v6_outer, proto)), kind, kind
    return wrap


layers_st = st.one_of(
    st.builds(vlan, st.integers(1, 4094)),
    st.builds(vxlan, st.integers(0, 2**24 - 1), st.sampled_from([4789, 8472]), st.booleans()),
    st.builds(geneve, st.integers(0, 2**24 - 1), st.integers(0, 3)),
    st.builds(vxlan_gpe, st.integers(0, 2**24 - 1)),
    st.builds(gtp_u, st.integers(0, 2**32 - 1), st.booleans()),
    st.builds(l2tp, st.integers(0, 0xFFFF), st.booleans()),
    st.builds(gre, st.one_of(st.none(), st.integers(0, 2**32 - 1)), st.booleans(),
              st.booleans(), st.booleans()),
    st.builds(erspan, st.sampled_from([1, 2, 3]), st.integers(0, 1023)),
    st.builds(mpls, st.booleans(), st.integers(16, 2**20 - 1), st.integers(16, 2**20 - 1)),
    st.builds(pppoe, st.integers(1, 0xFFFE)),
    st.builds(ip_in_ip, st.booleans()),
)


def dns_response_ip(v6: bool = False) -> Packet:
    msg = response("www.shop.example.com", edes=((7, "expired"),))
    if v6:
        from captures import CLIENT6, SERVER6
        return ETH_IP6, ip6(17, udp(53, CLIENT_PORT, msg), SERVER6, CLIENT6)
    return ETH_IP4, ip4(17, udp(53, CLIENT_PORT, msg), SERVER4, CLIENT4)


def nest(layers: list[Layer], v6: bool = False) -> tuple[bytes, list[str], Counter[str]]:
    """Apply ``layers`` innermost first; return the frame, the path (outermost first) and
    the tunnel kinds opened."""
    packet = dns_response_ip(v6)
    path: list[str] = []
    kinds: Counter[str] = Counter()
    for layer in layers:
        packet, label, kind = layer(packet)
        path.insert(0, label)
        if kind:
            kinds[kind] += 1
    return as_ethernet(packet), path, kinds


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers=st.lists(layers_st, max_size=10), v6=st.booleans())
def test_any_nesting_opens_to_the_inner_response(layers: list[Layer], v6: bool) -> None:
    frame, path, kinds = nest(layers, v6)
    result = scan_checked(pcap(records([frame])))
    assert result.packets == 1
    if sum(kinds.values()) > tunnels.MAX_TUNNELS:
        assert result.accounting == {"tunnel-too-deep": 1}
        assert result.ede.empty
        return
    assert result.accounting == {"dns-response": 1}, (path, result.accounting)
    row = result.ede.iloc[0]
    assert (row.src_port, row.dst_port, row.ede_code, row.extra_text) == (
        53, CLIENT_PORT, 7, "expired")
    assert row.src_ip == ("2001:db8::53" if v6 else SERVER4)
    assert row.encap == "/".join(path)
    assert result.tunnels == dict.fromkeys(kinds, 1)


def test_a_tunnel_inside_itself_stops_at_the_depth_bound() -> None:
    """GRE in GRE: 8 levels open, the 9th is counted as tunnel-too-deep, with no row."""
    for depth, want in ((tunnels.MAX_TUNNELS, "dns-response"),
                        (tunnels.MAX_TUNNELS + 1, "tunnel-too-deep")):
        frame, _, _ = nest([gre(None, False, False, False)] * depth)
        result = scan_checked(pcap(records([frame])))
        assert result.accounting == {want: 1}
        assert len(result.ede) == (want == "dns-response")


def test_vlan_tags_past_the_bound_are_too_deep() -> None:
    frame, _, _ = nest([vlan(1)] * (tunnels.MAX_LABELS + 1))
    assert scan_checked(pcap(records([frame]))).accounting == {"tunnel-too-deep": 1}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers=st.lists(layers_st, min_size=1, max_size=4), data=st.data())
def test_a_cut_inside_any_header_is_counted_once(layers: list[Layer],
                                                 data: st.DataObject) -> None:
    """Snaplen cuts at every length: one category each, the same on every path."""
    frame, _, _ = nest(layers)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(frame)), min_size=1,
                                         max_size=12))))
    recs = [Rec(i * 1000, frame[:keep], len(frame)) for i, keep in enumerate(cuts)]
    result = scan_checked(pcap(recs))
    assert result.packets == len(recs)
    whole = cuts[-1] == len(frame)
    assert len(result.ede) == (1 if whole else 0)
    assert result.accounting.get("dns-response", 0) == (1 if whole else 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers=st.lists(layers_st, min_size=1, max_size=4), data=st.data())
def test_lying_lengths_and_flipped_bytes_never_crash(layers: list[Layer],
                                                     data: st.DataObject) -> None:
    """Length fields, flags and protocol numbers overwritten anywhere in the outer headers."""
    frame, _, _ = nest(layers)
    head = max(1, len(frame) - 60)  # the DNS message is the last 60-odd bytes
    mutated = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, head - 1))
        mutated[at] = data.draw(st.sampled_from([0, 1, 0x08, 0x40, 0x86, 0xDD, 0xFF,
                                                 data.draw(st.integers(0, 255))]))
    result = scan_checked(pcap(records([bytes(mutated), frame])))
    assert result.packets == 2
    assert result.accounting.get("dns-response", 0) >= 1


def test_unopened_packets_are_described() -> None:
    unknown_gre = eth(ETH_IP4, ip4(47, struct.pack("!BBH", 0, 0, 0x1234) + bytes(40)))
    esp = eth(ETH_IP4, ip4(50, bytes(40)))
    mpls_eth = eth(0x8847, struct.pack("!I", 16 << 12 | 0x100) + bytes(40))
    geneve_odd = eth(ETH_IP4, ip4(17, udp(1, 6081, struct.pack("!BBHI", 0, 0, 0x8035, 0)
                                          + bytes(30))))
    frame, _, _ = nest([])
    result = scan_checked(pcap(records([unknown_gre, unknown_gre, esp, mpls_eth, geneve_odd,
                                        frame])))
    assert result.accounting == {"unsupported-tunnel": 4, "not-udp-tcp": 1, "dns-response": 1}
    assert result.unopened == {"GRE protocol 0x1234": 2, "IP protocol 50 (ESP)": 1,
                               "MPLS payload starting with 0x0 (not IP)": 1,
                               "Geneve protocol 0x8035": 1}


@pytest.mark.parametrize("little", [True, False])
def test_nflog_in_either_byte_order(little: bool) -> None:
    order = "<" if little else ">"
    _, packet = dns_response_ip()

    def tlv(kind: int, value: bytes) -> bytes:
        return struct.pack(order + "HH", 4 + len(value), kind) + value + bytes(-len(value) % 4)

    record = struct.pack("!BBH", 2, 0, 1) + tlv(1, bytes(4)) + tlv(10, b"x\0") + tlv(9, packet)
    result = scan_checked(pcap(records([record]), linktype=239))
    assert result.accounting == {"dns-response": 1}
    assert result.ede.ede_code.tolist() == [7]


# -- what the report says -----------------------------------------------------------------------

def _report(data: bytes, fmt: str) -> str:
    import io
    import tempfile
    from pathlib import Path

    from analyzer import pipeline, reports
    from analyzer.render import render

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "capture.pcap"
        path.write_bytes(data)
        report = reports.build_report(pipeline.scan([path]))
    out = io.StringIO()
    render(report, fmt, out)
    return out.getvalue()


def test_a_capture_of_unopenable_tunnels_says_what_its_packets_are() -> None:
    """Not "check --port": the report names what it cannot open, most first."""
    unknown_gre = eth(ETH_IP4, ip4(47, struct.pack("!BBH", 0, 0, 0x1234) + bytes(40)))
    esp = eth(ETH_IP4, ip4(50, bytes(40)))
    data = pcap(records([unknown_gre] * 1200 + [esp] * 3))
    text = " ".join(_report(data, "text").split())
    assert ("No DNS responses found. 1,200 packets are GRE protocol 0x1234 and 3 are IP "
            "protocol 50 (ESP), which ede-pcap cannot open") in text
    assert "--port" not in text
    html = _report(data, "html")
    assert "1,200 packets are GRE protocol 0x1234 and 3 are IP protocol 50 (ESP)" in html


def test_the_report_counts_the_tunnels_it_opened() -> None:
    import json

    frames = [nest([vlan(10), vxlan(100, 4789, False)])[0],
              nest([gre(5, False, False, False)])[0]]
    report = json.loads(_report(pcap(records(frames)), "json"))
    assert report["tunnels"] == {"gre": 1, "vxlan": 1}
    assert report["unopened"] == {}
    assert report["summary"]["ede_options"] == 2
    text = _report(pcap(records(frames)), "text")
    assert "opened gre 1, vxlan 1" in text
