"""Properties that hold for any input (hypothesis): robustness, round-trips, TCP delivery."""

from __future__ import annotations

import io
import struct
from collections import Counter
from dataclasses import dataclass

from captures import (
    LINKS,
    T0,
    Rec,
    TcpFlow,
    assert_same_result,
    ede_option,
    exchange,
    frame,
    framed,
    ip_fragments,
    ipv6_with_ext_headers,
    message,
    opt_rr,
    pcap,
    pcapng_capture,
    question,
    records,
    response,
    scan_bytes,
    tcp_capture,
    udp,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.packet import Packet

from analyzer.errors import Malformed
from analyzer.message import DnsResponse, EdeOption, parse_response
from analyzer.pipeline import scan

FAST = settings(max_examples=300, deadline=None)
SCANS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

VALID = [
    response(edes=[(9, "no DNSKEY"), (22, "")]),
    message(qd=[question("x.example", 28)], ar=[opt_rr(ede_option(65000, b"\xff\x00"),
                                                        do=True)]),
    response("a.b.c.example", 48, rcode=2, edes=[(6, "bogus " * 10)], an=[b"\xc0\x0c" + bytes(10)]),
]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A valid input with a few bytes overwritten, then possibly cut or extended."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=8)) if draw(st.booleans()) else bytes(data)


@FAST
@given(st.one_of(st.binary(max_size=300), mutated(VALID)))
def test_any_bytes_parse_or_raise_malformed(msg: bytes) -> None:
    try:
        result = parse_response(msg)
    except Malformed as e:
        assert e.reason and e.reason == e.reason.lower()
        return
    assert isinstance(result, DnsResponse)
    assert all(isinstance(e, EdeOption) and 0 <= e.info_code <= 0xFFFF for e in result.edes)


text_without_final_nul = st.text(max_size=200).filter(lambda t: not t.endswith("\x00"))


@FAST
@given(code=st.integers(0, 0xFFFF), text=text_without_final_nul)
def test_ede_round_trip(code: int, text: str) -> None:
    # RFC 8914 lets EXTRA-TEXT end in a NUL that is not part of the text: that one exception
    # is why texts ending in NUL are left out here.
    r = parse_response(response(edes=[(code, text)]))
    assert r.edes == [EdeOption(code, text, True)]


@FAST
@given(code=st.integers(0, 0xFFFF), raw=st.binary(max_size=100).filter(
    lambda b: not b.endswith(b"\x00")))
def test_ede_round_trip_of_any_bytes(code: int, raw: bytes) -> None:
    (ede,) = parse_response(response(edes=[(code, raw)])).edes
    assert ede.info_code == code
    assert ede.extra_text == raw.decode("utf-8", "backslashreplace")
    try:
        raw.decode()
    except UnicodeDecodeError:
        assert not ede.utf8_valid
    else:
        assert ede.utf8_valid


@SCANS
@given(code=st.integers(0, 0xFFFF), text=text_without_final_nul)
def test_ede_round_trip_through_a_capture(code: int, text: str) -> None:
    q, r = exchange(edes=[(code, text)])
    result = scan_bytes(pcap(records([q, r])))
    assert list(zip(result.ede.ede_code, result.ede.extra_text, strict=True)) == [(code, text)]


PCAP_HEADER = pcap([])
FRAMES = exchange() + exchange(v6=True)
# IP packets of every kind the decoder walks: UDP over IPv4/IPv6, extension headers,
# fragments, and TCP segments (one with a whole message, one with part of one).
_FLOW = TcpFlow()
_BIG = response(edes=[(22, "x" * 100)])
IP_PACKETS = [f[14:] for f in FRAMES] + [bytes(p) for p in (
    ipv6_with_ext_headers(response()), *ip_fragments(udp(_BIG))[:2],
    *ip_fragments(udp(_BIG, v6=True))[:2], _FLOW.server(framed(_BIG)),
    _FLOW.server(framed(_BIG)[:50]))]


def _scan_anything(data: bytes) -> None:
    result = scan([io.BytesIO(data)])
    assert sum(result.accounting.values()) == result.packets
    assert result.packets == sum(c.packets for c in result.captures)


@SCANS
@given(tail=st.binary(max_size=400))
def test_any_bytes_after_a_pcap_header_are_read_or_recorded(tail: bytes) -> None:
    _scan_anything(PCAP_HEADER + tail)


@SCANS
@given(data=mutated([pcap(records(FRAMES)), pcapng_capture()[:600]]))
def test_damaged_captures_are_read_or_recorded(data: bytes) -> None:
    _scan_anything(data)


@st.composite
def odd_packets(draw: st.DrawFn) -> tuple[int, list[Rec]]:
    """Records of one link type: damaged copies of real DNS frames, some cut by a snaplen."""
    link = draw(st.sampled_from(sorted(LINKS)))
    seeds = [frame(p, link) for p in IP_PACKETS]
    recs = []
    for i in range(draw(st.integers(1, 4))):
        data = draw(mutated(seeds))
        orig = len(data) + draw(st.sampled_from([0, 0, 10]))
        recs.append(Rec(T0 + i * 1000, data, orig))
    return LINKS[link].linktype, recs


@SCANS
@given(odd_packets())
def test_fast_and_slow_path_agree_on_damaged_packets(case: tuple[int, list[Rec]]) -> None:
    linktype, recs = case
    data = pcap(recs, linktype)
    fast, slow = scan_bytes(data), scan_bytes(data, force_slow=True)
    assert_same_result(fast, slow)
    assert sum(fast.accounting.values()) == fast.packets == len(recs)


@dataclass
class Stream:
    """A DNS-over-TCP response stream cut into segments, and an order they were captured in."""

    count: int                 # messages in the stream, DNS ids 0..count-1
    syn_ack: Packet
    pieces: list[Packet]       # the segments in stream order
    captured: list[Packet]     # as captured: any order, some repeated, maybe with the SYN-ACK


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    count = draw(st.integers(1, 4))
    data = b"".join(framed(response(f"m{i}.example", dns_id=i, edes=[(i, f"m{i}")]))
                    for i in range(count))
    cuts = sorted(draw(st.sets(st.integers(1, len(data) - 1), max_size=6)))
    bounds = [0, *cuts, len(data)]
    flow = TcpFlow(server_isn=draw(st.sampled_from([1000, 0xFFFFFF80])))
    pieces = [flow.server_at(a, data[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    order = draw(st.permutations(range(len(pieces))))
    repeats = draw(st.lists(st.sampled_from(range(len(pieces))), max_size=2))
    syn_ack = flow.handshake()[1]
    captured = [pieces[i] for i in [*order, *repeats]]
    if draw(st.booleans()):
        captured.insert(0, syn_ack)
    return Stream(count, syn_ack, pieces, captured)


@SCANS
@given(streams())
def test_tcp_segments_in_any_order_deliver_each_message_at_most_once(stream: Stream) -> None:
    data = tcp_capture(stream.captured)
    result = scan_bytes(data)
    assert_same_result(result, scan_bytes(data, force_slow=True))
    delivered = Counter(result.ede.dns_id.tolist())
    assert set(delivered) <= set(range(stream.count))
    assert all(n == 1 for n in delivered.values())
    assert result.dns_responses == len(delivered)
    for row in result.ede.itertuples():
        assert (row.ede_code, row.extra_text) == (row.dns_id, f"m{row.dns_id}")


@SCANS
@given(streams())
def test_tcp_segments_in_order_deliver_every_message(stream: Stream) -> None:
    result = scan_bytes(tcp_capture([stream.syn_ack, *stream.pieces]))
    assert result.ede.dns_id.tolist() == list(range(stream.count))


def test_pcap_header_alone_is_an_empty_capture() -> None:
    result = scan([io.BytesIO(PCAP_HEADER)])
    assert (result.packets, result.captures[0].error) == (0, None)
    assert struct.unpack("<I", PCAP_HEADER[:4])[0] == 0xA1B2C3D4
