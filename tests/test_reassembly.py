"""Tests for analyzer.reassembly: IPv4/IPv6 fragments and DNS over TCP, through scan()."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
from captures import (
    BIG_EDES,
    CLIENT_PORT,
    MS,
    SHUFFLED,
    T0,
    Rec,
    TcpFlow,
    ede_rows,
    fragments_capture,
    frame,
    framed,
    ip_fragments,
    pcap,
    query,
    records,
    response,
    scan_checked,
    tcp_capture,
    tcp_gap_segments,
    tcp_handshake_segments,
    tcp_many_in_one_segments,
    tcp_no_syn_segments,
    tcp_out_of_order_segments,
    tcp_retransmission_segments,
    tcp_split_segments,
    udp,
)

from analyzer.reassembly import IpReassembler, TcpReassembler

BIG_ROWS = [(5, 22, BIG_EDES[0][1]), (5, 23, BIG_EDES[1][1])]


def _ms(n: float) -> pd.Timedelta:
    return pd.Timedelta(int(n * MS), unit="ns")


# -- IP fragments ---------------------------------------------------------------------------


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("order", [None, SHUFFLED], ids=["in-order", "shuffled"])
def test_fragments_are_reassembled_at_the_last_one(v6: bool, order) -> None:  # type: ignore[no-untyped-def]
    # Frame 1 is the query, frames 2-5 the four fragments of one response.
    result = scan_checked(fragments_capture(order, v6=v6))
    assert result.accounting == {"ip-fragment": 3, "dns-query": 1, "dns-response": 1}
    assert ede_rows(result) == BIG_ROWS
    e = result.ede
    assert (e.ede_index.tolist(), e.ede_count.tolist()) == ([0, 1], [2, 2])
    assert e.ip_version.tolist() == ([6, 6] if v6 else [4, 4])
    assert e.latency.tolist() == [_ms(4), _ms(4)]


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_fragments_never_completed_are_each_counted(v6: bool) -> None:
    result = scan_checked(fragments_capture(v6=v6, drop_last=True))
    assert result.accounting == {"ip-fragment": 3, "dns-query": 1}
    assert (result.dns_responses, result.ede_options) == (0, 0)


def test_duplicate_fragment_does_not_break_reassembly() -> None:
    frags = ip_fragments(udp(response(edes=BIG_EDES)))
    frames = [frame(f) for f in (frags[0], frags[1], frags[1], frags[2], frags[3])]
    result = scan_checked(pcap(records(frames)))
    assert result.accounting == {"ip-fragment": 4, "dns-response": 1}
    assert [r[0] for r in ede_rows(result)] == [5, 5]


def test_interleaved_datagrams_are_kept_apart_by_ip_id() -> None:
    one = ip_fragments(udp(response("one.example.com", dns_id=1, edes=BIG_EDES)))
    two = udp(response("two.example.com", dns_id=2, edes=BIG_EDES))
    two.id = 8
    two = ip_fragments(two)
    frames = [frame(f) for pair in zip(one, two, strict=True) for f in pair]
    result = scan_checked(pcap(records(frames)))
    assert result.accounting == {"ip-fragment": 6, "dns-response": 2}
    assert result.ede.qname.tolist() == ["one.example.com"] * 2 + ["two.example.com"] * 2
    assert result.ede.frame_number.tolist() == [7, 7, 8, 8]


def test_fragments_older_than_the_timeout_are_dropped() -> None:
    frags = [frame(f) for f in ip_fragments(udp(response(edes=BIG_EDES)))]
    recs = [Rec(T0, frags[0])] + [Rec(T0 + 31 * 10**9 + i, f) for i, f in enumerate(frags[1:])]
    result = scan_checked(pcap(recs, nanos=True))
    assert result.accounting == {"ip-fragment": 4}
    assert result.problems == {"ip-fragments-expired": 1}


def test_ip_reassembler_overlapping_and_oversized_pieces() -> None:
    evicted: Counter[str] = Counter()
    ip = IpReassembler(evicted)
    key = (4, b"a", b"b", b"\x00\x01", 17)
    assert ip.feed(key, 8, True, b"BBBBBBBB", 0) is None
    assert ip.feed(key, 0, True, b"AAAAAAAAAAAA", 0) is None   # overlaps the next piece
    whole = ip.feed(key, 16, False, b"CC", 0)
    assert whole is not None and len(whole) == 18              # which copy wins is policy
    assert (whole[:8], whole[12:]) == (b"A" * 8, b"BBBBCC")
    assert len(ip) == 0
    assert ip.feed(key, 65_528, True, b"x" * 100, 0) is None   # past any datagram
    assert evicted == Counter({"ip-fragments-oversized": 1})
    assert len(ip) == 0


# -- DNS over TCP ---------------------------------------------------------------------------


def test_tcp_with_handshake() -> None:
    # SYN, SYN-ACK, ACK, query, response, FIN, FIN
    result = scan_checked(tcp_capture(tcp_handshake_segments()))
    assert result.accounting == {"tcp-no-payload": 5, "dns-query": 1, "dns-response": 1}
    assert ede_rows(result) == [(5, 15, "blocked")]
    row = result.ede.iloc[0]
    assert (row.transport, row.src_port, row.dst_port, row.dns_id) == (
        "tcp", 53, CLIENT_PORT + 1, 1)
    assert row.latency == _ms(1)


def test_tcp_several_messages_in_one_segment() -> None:
    result = scan_checked(tcp_capture(tcp_many_in_one_segments()))
    # One packet each way, but three queries and three responses.
    assert result.accounting == {"tcp-no-payload": 3, "dns-query": 1, "dns-response": 1}
    assert (result.dns_queries, result.dns_responses, result.responses_with_ede) == (3, 3, 3)
    assert ede_rows(result) == [(5, 1, "text 1"), (5, 2, "text 2"), (5, 3, "text 3")]
    assert result.ede.qname.tolist() == ["q1.example.com", "q2.example.com", "q3.example.com"]
    assert result.ede.latency.tolist() == [_ms(1)] * 3


@pytest.mark.parametrize("pieces, last_frame", [(2, 6), (3, 7)])
def test_tcp_message_across_segments(pieces: int, last_frame: int) -> None:
    result = scan_checked(tcp_capture(tcp_split_segments(pieces)))
    assert result.accounting == {"tcp-no-payload": 3, "dns-query": 1, "tcp-segment": pieces - 1,
                                 "dns-response": 1}
    assert ede_rows(result) == [(last_frame, c, t) for _, c, t in BIG_ROWS]
    assert result.ede.latency.tolist() == [_ms(last_frame - 4)] * 2


def test_tcp_retransmission_is_delivered_once() -> None:
    result = scan_checked(tcp_capture(tcp_retransmission_segments()))
    assert result.accounting == {"tcp-no-payload": 3, "dns-query": 1, "dns-response": 1,
                                 "tcp-retransmission": 1}
    assert ede_rows(result) == [(5, 6, "bogus")]
    assert result.dns_responses == 1


def test_tcp_out_of_order_pair_is_delivered_once() -> None:
    # Frame 5 holds the second half of the response, frame 6 the first half.
    result = scan_checked(tcp_capture(tcp_out_of_order_segments()))
    assert result.accounting == {"tcp-no-payload": 3, "dns-query": 1, "tcp-out-of-order": 1,
                                 "dns-response": 1}
    assert [r[1:] for r in ede_rows(result)] == [(7, "signature expired")]
    assert result.dns_responses == 1


def test_tcp_out_of_order_pair_is_reported_at_the_completing_frame() -> None:
    result = scan_checked(tcp_capture(tcp_out_of_order_segments()))
    assert ede_rows(result) == [(6, 7, "signature expired")]
    assert result.ede.ts.tolist() == [pd.Timestamp(T0 + 5 * MS, unit="ns", tz="UTC")]
    assert result.ede.latency.tolist() == [_ms(2)]


def test_tcp_out_of_order_segment_that_looks_framed_is_still_held() -> None:
    result = scan_checked(tcp_capture(tcp_out_of_order_segments(tail_at_opt=True)))
    assert [r[1:] for r in ede_rows(result)] == [(7, "signature expired")]
    assert result.accounting == {"tcp-no-payload": 3, "dns-query": 1, "tcp-out-of-order": 1,
                                 "dns-response": 1}


def test_tcp_stream_without_syn_starting_on_a_message() -> None:
    result = scan_checked(tcp_capture(tcp_no_syn_segments()))
    assert result.accounting == {"dns-query": 1, "dns-response": 1}
    assert ede_rows(result) == [(2, 20, "not authoritative")]
    assert result.ede.latency.tolist() == [_ms(1)]


def _picked_up_mid_message(cut: int) -> bytes:
    """A capture starting ``cut`` bytes into a framed response, then one more response."""
    f = TcpFlow(server_isn=9_000)
    first = framed(response("lost.example.com", dns_id=1))
    f.server(first[:cut])  # before the capture started
    return tcp_capture([f.server(first[cut:]),
                        f.server(framed(response("next.example.com", dns_id=2,
                                                 edes=[(3, "stale")])))])


def test_tcp_stream_picked_up_mid_message_resynchronises() -> None:
    # The first segment starts inside the question name: no length prefix fits there.
    result = scan_checked(_picked_up_mid_message(20))
    assert result.accounting == {"tcp-unsynced": 1, "dns-response": 1}
    assert ede_rows(result) == [(2, 3, "stale")]


def test_tcp_stream_picked_up_where_the_tail_looks_framed_resynchronises() -> None:
    # 6d 00 | 00 01 | 00 01 | 00 00 | 29 04: size 27904, opcode 0, QDCOUNT 0, ANCOUNT 10500.
    result = scan_checked(_picked_up_mid_message(30))
    assert ede_rows(result) == [(2, 3, "stale")]


def test_tcp_gap_at_a_message_boundary_resumes() -> None:
    # The segment with the second of three responses was not captured.
    result = scan_checked(tcp_capture(tcp_gap_segments()))
    # The third response is held behind the gap (it could be reordered) and delivered when
    # the capture ends; its packet counts as out of order, its message as a response.
    assert result.accounting == {"tcp-no-payload": 3, "dns-response": 1, "tcp-out-of-order": 1}
    assert result.dns_responses == 2
    assert result.problems == {"tcp-gaps-skipped": 1}
    assert ede_rows(result) == [(4, 1, "m1"), (5, 3, "m3")]


@pytest.mark.parametrize("closing", [False, True], ids=["end-of-capture", "fin"])
def test_tcp_gap_inside_a_message_gives_up_on_it(closing: bool) -> None:
    # The second half of m1 is lost; m2 is held behind the gap until the stream ends.
    f = TcpFlow()
    m1 = framed(response("m1.example.com", dns_id=1, edes=[(1, "m1")]))
    m2 = framed(response("m2.example.com", dns_id=2, edes=[(2, "m2")]))
    segments = [*f.handshake(), f.server(m1[:40])]
    f.server(m1[40:])  # lost
    segments.append(f.server(m2))
    if closing:
        segments.append(f.fin(False))
    result = scan_checked(tcp_capture(segments))
    assert result.accounting == {"tcp-no-payload": 3 + closing, "tcp-segment": 1,
                                 "tcp-out-of-order": 1}
    assert result.problems == {"tcp-gaps-skipped": 1}
    assert ede_rows(result) == [(5, 2, "m2")]
    assert result.dns_responses == 1


def test_tcp_sequence_numbers_wrap() -> None:
    f = TcpFlow(server_isn=0xFFFFFFF0)
    msgs = [framed(response(f"w{i}.example.com", dns_id=i, edes=[(i, "")])) for i in range(4)]
    segments = [*f.handshake(), *(f.server(m) for m in msgs)]
    assert segments[-1]["TCP"].seq < 1000  # the last one is past the wrap
    result = scan_checked(tcp_capture(segments))
    assert ede_rows(result) == [(4 + i, i, "") for i in range(4)]


def test_tcp_interleaved_connections_and_ipv6() -> None:
    a = TcpFlow(client_port=41000)
    b = TcpFlow(v6=True, client_port=42000)
    ra = framed(response("a.example.com", dns_id=1, edes=[(9, "a")]))
    rb = framed(response("b.example.com", dns_id=2, edes=[(10, "b")]))
    segments = [*a.handshake(), *b.handshake(), a.client(framed(query("a.example.com", dns_id=1))),
                b.client(framed(query("b.example.com", dns_id=2))), a.server(ra[:20]),
                b.server(rb[:20]), b.server(rb[20:]), a.server(ra[20:])]
    result = scan_checked(tcp_capture(segments))
    assert ede_rows(result) == [(11, 10, "b"), (12, 9, "a")]
    assert result.ede.ip_version.tolist() == [6, 4]
    assert result.ede.dst_port.tolist() == [42000, 41000]
    assert result.ede.latency.tolist() == [_ms(3), _ms(5)]


def test_tcp_reassembler_gives_up_after_too_many_held_segments() -> None:
    evicted: Counter[str] = Counter()
    tcp = TcpReassembler(evicted)
    got: list[bytes] = []

    def deliver(msg: bytes) -> str:
        got.append(msg)
        return "dns-response"

    key = ("s", "c", 53, 4000)
    assert tcp.feed(key, 99, 0x02, b"", deliver) == "tcp-no-payload"  # SYN: data from 100
    body = response(edes=None)
    # Byte 100 is never seen; 64 segments of junk pile up behind the gap.
    cats = [tcp.feed(key, 101 + 10 * i, 0x18, b"\xff" * 10, deliver) for i in range(63)]
    assert set(cats) == {"tcp-out-of-order"}
    tcp.feed(key, 101 + 630, 0x18, b"\xff" * 10, deliver)
    assert evicted["tcp-gaps-skipped"] >= 1
    assert got == []
    # The stream resynchronises on the next framed message.
    assert tcp.feed(key, 101 + 640, 0x18, framed(body), deliver) == "dns-response"
    assert got == [body]


@pytest.mark.parametrize("compiled", [False, True], ids=["twin", "kernel"])
def test_idle_streams_that_held_nothing_are_not_data_loss(compiled: bool) -> None:
    # A resolver that resets a pipelined connection leaves the client's direction open
    # with every query delivered: forgetting it loses nothing (issue 14). A stream cut
    # inside a message did lose data.
    from analyzer import reassembly, speedups

    if compiled and speedups.kernels is None:
        pytest.skip("C kernels not built")
    evicted: Counter[str] = Counter()
    tcp = reassembly.tcp_reassembler(evicted) if compiled else TcpReassembler(evicted)
    whole = framed(query())
    second = 10**9
    tcp.feed(("c", "s", 4000, 53), 99, 0x02, b"", lambda m: "dns-query", ts=0)
    tcp.feed(("c", "s", 4000, 53), 100, 0x18, whole, lambda m: "dns-query", ts=second)
    tcp.feed(("c", "s", 4001, 53), 99, 0x02, b"", lambda m: "dns-query", ts=0)
    tcp.feed(("c", "s", 4001, 53), 100, 0x18, whole[:7], lambda m: "dns-query", ts=second)
    later = second + reassembly.TCP_IDLE_NS + 2 * second
    tcp.feed(("x", "s", 4002, 53), 99, 0x02, b"", lambda m: "dns-query", ts=later)
    assert evicted == Counter({"tcp-streams-idle": 1, "tcp-streams-expired": 1})
