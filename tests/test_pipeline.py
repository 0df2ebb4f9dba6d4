"""Tests for analyzer.pipeline: scan() and friends, and the fast path against the slow path."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from captures import (
    AA,
    AD,
    CD,
    CRAFTED,
    MS,
    QR,
    RA,
    RD,
    SERVFAIL,
    T0,
    TC,
    Rec,
    TcpFlow,
    assert_same_result,
    bad_pointer_capture,
    ede_rows,
    ede_text_capture,
    exchange,
    frame,
    framed,
    pcap,
    query,
    records,
    response,
    scan_bytes,
    scan_checked,
    udp,
)

from analyzer.errors import Malformed
from analyzer.frame import EDE_COLUMNS, RESPONSE_COLUMNS
from analyzer.pipeline import iter_ede_frames, read_ede, read_responses, scan


@pytest.mark.parametrize("name", list(CRAFTED))
def test_fast_path_and_slow_path_agree(name: str) -> None:
    crafted = CRAFTED[name]
    data = crafted.build()
    result = scan_checked(data, ports=crafted.ports)  # compares both paths, checks accounting
    assert result.packets == result.captures[0].packets > 0


@pytest.mark.parametrize("name", list(CRAFTED))
def test_fast_path_and_slow_path_agree_on_all_responses(name: str) -> None:
    crafted = CRAFTED[name]
    result = scan_checked(crafted.build(), ports=crafted.ports, all_responses=True)
    assert tuple(result.responses.columns) == RESPONSE_COLUMNS
    assert len(result.responses) == result.dns_responses


def test_fast_path_and_slow_path_agree_on_several_files() -> None:
    files = [CRAFTED[n].build() for n in ("noise", "tcp-split-3", "ipv4-fragments-shuffled",
                                           "pcapng-sections", "lying-lengths")]
    assert_same_result(scan_bytes(*files), scan_bytes(*files, force_slow=True))


def test_every_column_of_an_ede_row() -> None:
    flags = QR | AA | TC | RD | RA | AD | CD
    msg = response("Dnssec-Failed.example", 48, dns_id=0xBEEF, rcode=SERVFAIL, flags=flags,
                   do=True, edes=[(6, "bogus"), (65000, "private")])
    data = pcap([Rec(T0, frame(udp(query("Dnssec-Failed.example", 48, dns_id=0xBEEF),
                                   to_server=True))),
                 Rec(T0 + 2 * MS, frame(udp(msg)))])
    result = scan_checked(data)
    rows = result.ede.to_dict("records")
    common = {
        "capture": "<stream>", "frame_number": 2, "ts": pd.Timestamp(T0 + 2 * MS, tz="UTC"),
        "src_ip": "198.51.100.53", "src_port": 53, "dst_ip": "192.0.2.10", "dst_port": 40000,
        "transport": "udp", "ip_version": 4, "dns_id": 0xBEEF, "qname": "Dnssec-Failed.example",
        "qtype": "DNSKEY", "qclass": "IN", "rcode": "SERVFAIL", "aa": True, "tc": True,
        "rd": True, "ra": True, "ad": True, "cd": True, "edns_udp_size": 1232, "do": True,
        "ede_count": 2, "query_ts": pd.Timestamp(T0, tz="UTC"),
        "latency": pd.Timedelta(2 * MS, unit="ns"), "extra_text_utf8_valid": True,
    }
    assert [{k: r[k] for k in common} for r in rows] == [common, common]
    assert [(r["ede_index"], r["ede_code"], r["ede_name"], r["ede_category"], r["extra_text"])
            for r in rows] == [(0, 6, "DNSSEC Bogus", "dnssec", "bogus"),
                               (1, 65000, "Private Use (65000)", "other", "private")]
    assert tuple(result.ede.columns) == EDE_COLUMNS
    assert (result.dns_queries, result.dns_responses) == (1, 1)
    assert (result.responses_with_ede, result.ede_options) == (1, 2)


def test_extra_texts_and_codes_through_a_scan() -> None:
    result = scan_checked(ede_text_capture())
    assert ede_rows(result) == [
        (1, 6, "bad \\xff\\xfe bytes"), (2, 9, "ends in NUL"), (3, 22, ""),
        (4, 3, "stale"), (4, 22, "no reachable"), (4, 300, "unknown"), (4, 65000, "private")]
    e = result.ede
    assert e.extra_text_utf8_valid.tolist() == [False] + [True] * 6
    assert e.ede_index.tolist() == [0, 0, 0, 0, 1, 2, 3]
    assert e.ede_count.tolist() == [1, 1, 1, 4, 4, 4, 4]
    assert e.ede_name.tolist()[-2:] == ["Unassigned (300)", "Private Use (65000)"]
    assert result.problems == {"ede-text-not-utf8": 1}
    assert (result.responses_with_ede, result.ede_options) == (4, 7)


def test_bad_pointers_are_counted_and_strict_raises() -> None:
    data = bad_pointer_capture()
    assert scan_checked(data).accounting == {"malformed-dns-bad-pointer": 3}
    with pytest.raises(Malformed) as caught:
        scan([io.BytesIO(data)], strict=True)
    assert caught.value.reason == "dns-bad-pointer"


def test_response_seconds_and_time_span() -> None:
    times = [T0 + 500 * MS, T0 + 900 * MS, T0 + 2_100 * MS]
    frames = [frame(udp(response(dns_id=i, edes=None))) for i in range(3)]
    result = scan_checked(pcap([Rec(t, f) for t, f in zip(times, frames, strict=True)]))
    s = T0 // 10**9
    assert result.response_seconds == {s: 2, s + 2: 1}
    assert (result.first_ts_ns, result.last_ts_ns) == (times[0], times[-1])


def test_files_are_scanned_independently(tmp_path: Path) -> None:
    # A query in one file and its response in the next are not paired, and a TCP message
    # whose halves are in two files is not joined.
    f = TcpFlow()
    msg = framed(response("tcp.example.com", dns_id=2, edes=[(23, "network")]))
    first = pcap(records([exchange()[0], *(frame(s) for s in f.handshake()),
                          frame(f.server(msg[:30]))]))
    second = pcap(records([exchange()[1], frame(f.server(msg[30:]))]))
    paths = [tmp_path / "first.pcap", tmp_path / "second.pcap"]
    paths[0].write_bytes(first)
    paths[1].write_bytes(second)
    result = scan(paths)
    assert ede_rows(result) == [(1, 9, "no DNSKEY")]
    assert result.ede.capture.tolist() == [str(paths[1])]
    assert result.ede.latency.isna().tolist() == [True]
    assert result.accounting == {"tcp-no-payload": 3, "dns-query": 1, "dns-response": 1,
                                 "tcp-segment": 1, "tcp-unsynced": 1}
    assert [c.packets for c in result.captures] == [5, 2]


def test_read_ede_read_responses_and_iter_ede_frames(tmp_path: Path) -> None:
    paths = []
    for i, edes in enumerate(([(3, "stale")], [(22, "a"), (23, "b")])):
        path = tmp_path / f"{i}.pcap"
        path.write_bytes(pcap(records([*exchange(qname=f"f{i}.example.com", edes=edes),
                                       frame(udp(response("plain.example", dns_id=7,
                                                          edes=None)))])))
        paths.append(path)
    ede = read_ede(paths)
    assert ede.ede_code.tolist() == [3, 22, 23]
    assert ede.capture.tolist() == [str(paths[0]), str(paths[1]), str(paths[1])]
    responses = read_responses([str(p) for p in paths])
    assert responses.ede_codes.tolist() == ["3", "", "22,23", ""]
    assert responses.qname.tolist() == ["f0.example.com", "plain.example",
                                        "f1.example.com", "plain.example"]
    pieces = list(iter_ede_frames(paths, rows_per_frame=1))
    assert [len(p) for p in pieces] == [1, 2]
    # (categories differ from piece to piece, so compare values)
    pd.testing.assert_frame_equal(pd.concat(pieces, ignore_index=True).astype(object),
                                  ede.astype(object))


def test_a_scan_of_nothing_has_the_full_schema() -> None:
    result = scan([])
    assert (result.packets, result.accounting, result.captures) == (0, {}, [])
    assert tuple(result.ede.columns) == EDE_COLUMNS
    assert result.ede.empty


def test_a_single_source_need_not_be_a_list() -> None:
    result = scan(io.BytesIO(pcap(records(exchange()))))
    assert ede_rows(result) == [(2, 9, "no DNSKEY")]


def test_a_dnstap_log_and_a_capture_merge_across_processes() -> None:
    # a pcap's dnstap_* columns are all NA (object categories), a log's are filled (str
    # categories): merging the two files' partials once failed in union_categoricals
    root = Path(__file__).resolve().parent / "real" / "dnstap"
    paths = [root / "bind.dnstap", root / "bind.pcap"]
    one, two = scan(paths), scan(paths, jobs=2)
    assert len(two.ede) == len(one.ede) == 6
    pd.testing.assert_frame_equal(two.ede.astype(object), one.ede.astype(object))
    assert two.ede["dnstap_type"].value_counts().to_dict() == \
        one.ede["dnstap_type"].value_counts().to_dict()
