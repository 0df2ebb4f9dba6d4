"""Tests for analyzer.matching: pairing responses with their queries, and the latency."""

from __future__ import annotations

import functools
import io

import numpy as np
import pandas as pd
import pytest
from captures import (
    MS,
    T0,
    Rec,
    TcpFlow,
    frame,
    framed,
    ipv6_with_ext_headers,
    pcap,
    query,
    records,
    response,
    scan_checked,
    udp,
)
from scapy.layers.inet import IP

from analyzer import pipeline
from analyzer.capture import CaptureReader
from analyzer.matching import QueryTable, fold_ip, fold_ip_np, query_key, query_key_np
from analyzer.pipeline import scan

NAT = pd.NaT


def _one(q_frames: list[tuple[int, bytes]], r_frame: tuple[int, bytes]) -> pd.Series:
    """Scan queries and one EDE response at the given ns offsets; return the response's row."""
    recs = [Rec(T0 + t, f) for t, f in q_frames] + [Rec(T0 + r_frame[0], r_frame[1])]
    result = scan_checked(pcap(sorted(recs, key=lambda r: r.ts_ns), nanos=True))
    assert len(result.ede) == 1
    return result.ede.iloc[0]


def _q(qname: str = "example.com", qtype: int = 1, dns_id: int = 0x1234, **kw) -> bytes:  # type: ignore[no-untyped-def]
    return frame(udp(query(qname, qtype, dns_id=dns_id), to_server=True, **kw))


def _r(qname: str = "example.com", qtype: int = 1, dns_id: int = 0x1234, **kw) -> bytes:  # type: ignore[no-untyped-def]
    return frame(udp(response(qname, qtype, dns_id=dns_id), **kw))


def test_latency_is_response_time_minus_query_time() -> None:
    row = _one([(123, _q())], (4_567_890, _r()))
    assert row.query_ts == pd.Timestamp(T0 + 123, unit="ns", tz="UTC")
    assert row.ts == pd.Timestamp(T0 + 4_567_890, unit="ns", tz="UTC")
    assert row.latency == pd.Timedelta(4_567_767, unit="ns")


def test_response_without_a_query_has_no_latency() -> None:
    row = _one([], (MS, _r()))
    assert row.query_ts is NAT and row.latency is NAT


@pytest.mark.parametrize("asked", [
    _q("other.example.com"),                  # same id, another name
    _q(qtype=28),                             # same id and name, another type
    _q(dns_id=0x4321),                        # another id
    _q(client_port=40001),                    # another client port
    frame(IP(src="192.0.2.99", dst="198.51.100.53") / udp(query(), to_server=True)[1]),
], ids=["qname", "qtype", "id", "port", "client-address"])
def test_queries_that_differ_do_not_match(asked: bytes) -> None:
    row = _one([(0, asked)], (MS, _r()))
    assert row.latency is NAT


def test_0x20_case_is_kept_and_must_be_echoed() -> None:
    # The resolver echoes the question as asked: the pair matches and the case is kept.
    row = _one([(0, _q("ExAmPlE.CoM"))], (MS, _r("ExAmPlE.CoM")))
    assert (row.qname, row.latency) == ("ExAmPlE.CoM", pd.Timedelta(MS, unit="ns"))
    # A response whose question differs in case is not the answer to that query.
    row = _one([(0, _q("ExAmPlE.CoM"))], (MS, _r("example.com")))
    assert (row.qname, row.latency) == ("example.com", NAT)


def test_a_query_after_the_response_does_not_match() -> None:
    row = _one([(2 * MS, _q())], (MS, _r()))
    assert row.latency is NAT


def test_retried_query_matches_the_latest_one_before_the_response() -> None:
    row = _one([(0, _q()), (300 * MS, _q()), (900 * MS, _q())], (500 * MS, _r()))
    assert row.latency == pd.Timedelta(200 * MS, unit="ns")


def test_the_window_limits_how_old_a_query_may_be() -> None:
    recs = [Rec(T0, _q()), Rec(T0 + 10 * 10**9, _r()),                        # 10 s: in
            Rec(T0 + 20 * 10**9, _q(dns_id=2)), Rec(T0 + 30 * 10**9 + 1, _r(dns_id=2))]  # out
    data = pcap(recs, nanos=True)
    result = scan_checked(data)
    assert result.ede.latency.tolist() == [pd.Timedelta(10, unit="s"), NAT]
    narrow = scan([io.BytesIO(data)], match_window_ns=5 * 10**9)
    assert narrow.ede.latency.isna().tolist() == [True, True]


def test_udp_query_does_not_match_a_tcp_response() -> None:
    f = TcpFlow(client_port=40000)
    segments = [frame(udp(query(dns_id=1), to_server=True)), *(frame(s) for s in f.handshake()),
                frame(f.server(framed(response(dns_id=1))))]
    result = scan_checked(pcap(records(segments)))
    assert result.ede.latency.isna().tolist() == [True]


def test_ipv6_and_slow_path_packets_match_too() -> None:
    # The query takes the fast path, the response (behind extension headers) the slow one.
    q = frame(udp(query(), v6=True, to_server=True))
    r = frame(ipv6_with_ext_headers(response()))
    result = scan_checked(pcap(records([q, r])))
    assert result.ede.latency.tolist() == [pd.Timedelta(MS, unit="ns")]


def test_queries_match_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # 200-byte chunks: every query and its response come in different chunks.
    frames = [f for i in range(20) for f in (_q(f"n{i}.example.com", dns_id=i),
                                             _r(f"n{i}.example.com", dns_id=i))]
    data = pcap(records(frames))
    monkeypatch.setattr(pipeline, "CaptureReader", functools.partial(CaptureReader,
                                                                     chunk_bytes=200))
    result = scan([io.BytesIO(data)])
    assert len(result.ede) == 20
    assert result.ede.latency.tolist() == [pd.Timedelta(MS, unit="ns")] * 20


def test_all_responses_get_a_latency() -> None:
    frames = [_q(), frame(udp(response(edes=None))), frame(udp(response(dns_id=9, edes=None)))]
    frame_ = scan_checked(pcap(records(frames)), all_responses=True).responses
    assert frame_.latency.tolist() == [pd.Timedelta(MS, unit="ns"), NAT]
    assert frame_.ede_codes.tolist() == ["", ""]


@pytest.mark.parametrize("client, server", [
    (bytes([192, 0, 2, 10]), bytes([198, 51, 100, 53])),
    (bytes([255, 255, 255, 255]), bytes([0, 0, 0, 1])),
    (bytes.fromhex("20010db8000000000000000000000010"), bytes.fromhex("20010db8" + "ff" * 12)),
])
def test_python_and_numpy_keys_agree(client: bytes, server: bytes) -> None:
    # Queries settled with numpy must be found by responses keyed in Python, and back.
    buf = np.frombuffer(client + server + bytes(16), np.uint8)
    ver = np.array([6 if len(client) == 16 else 4])
    c = fold_ip_np(buf, np.array([0]), ver)
    s = fold_ip_np(buf, np.array([len(client)]), ver)
    assert (int(c[0]), int(s[0])) == (fold_ip(client), fold_ip(server))
    key = query_key_np(c, s, np.array([40000]), np.array([53]), np.array([0xBEEF]))
    assert int(key[0]) == query_key(client, server, 40000, 53, 0xBEEF, False)
    assert query_key(client, server, 40000, 53, 0xBEEF, True) != int(key[0])


def test_query_table_keeps_the_window_and_compares_questions() -> None:
    table = QueryTable(window_ns=10)
    q1, q2 = query("a.example"), query("b.example")
    table.add(1, 100, q1)
    table.add(1, 105, q2)  # same key, another question
    table.seal()
    question_a = q1[12:12 + len(b"\x01a\x07example\x00") + 4]
    assert table.match(np.array([1, 1, 2], np.uint64), np.array([108, 120, 108]),
                       [question_a, question_a, question_a]) == [100, None, None]
