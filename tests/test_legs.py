"""Upstream legs: client EDEs linked to the resolver's upstream exchanges; forwarders."""

from __future__ import annotations

import pytest

from analyzer import legs, pipeline

scapy = pytest.importorskip("scapy.all")

T0 = 1_700_000_000.0
CLIENT, RESOLVER, AUTHORITY = "198.51.100.10", "192.0.2.53", "203.0.113.1"
FORWARDER, CLIENT2 = "192.0.2.54", "198.51.100.11"


def _udp(t, src, dst, sport, dport, dns):  # type: ignore[no-untyped-def]
    ether = scapy.Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")  # no ARP lookups
    pkt = ether / scapy.IP(src=src, dst=dst) / scapy.UDP(sport=sport, dport=dport) / dns
    pkt.time = T0 + t
    return pkt


def _ede(code: int, text: bytes = b"") -> object:
    return scapy.DNSRROPT(rclass=1232, rdata=[scapy.EDNS0TLV(
        optcode=15, optdata=code.to_bytes(2, "big") + text)])


def _q(name: str, qid: int, qtype: str = "A") -> object:
    return scapy.DNS(id=qid, rd=1, qd=scapy.DNSQR(qname=name, qtype=qtype))


def _r(name: str, qid: int, rcode: int, ar=None, qtype: str = "A") -> object:  # type: ignore[no-untyped-def]
    return scapy.DNS(id=qid, qr=1, rd=1, ra=1, rcode=rcode,
                     qd=scapy.DNSQR(qname=name, qtype=qtype), ar=[] if ar is None else ar)


@pytest.fixture()
def capture(tmp_path):  # type: ignore[no-untyped-def]
    www, shop = "www.shop.example.com", "shop.example.com"
    packets = [
        # 1-2: the client asks the resolver; the resolver asks the authority for DNSKEY
        _udp(0.000, CLIENT, RESOLVER, 40000, 53, _q(www, 1)),
        _udp(0.001, RESOLVER, AUTHORITY, 50000, 53, _q(shop, 2, "DNSKEY")),
        # 3-4: no DNSKEY answer (a timeout); the A query gets SERVFAIL
        _udp(0.002, RESOLVER, AUTHORITY, 50001, 53, _q(www, 3)),
        _udp(0.010, AUTHORITY, RESOLVER, 53, 50001, _r(www, 3, 2)),
        # 5: the resolver answers the client with EDE 22
        _udp(0.020, RESOLVER, CLIENT, 53, 40000, _r(www, 1, 2, _ede(22, b"at delegation "
                                                                     b"shop.example.com."))),
        # 6-9: a forwarder gets EDE 6 from the resolver and drops it towards its client
        _udp(1.000, CLIENT2, FORWARDER, 40001, 53, _q("x.example.org", 4)),
        _udp(1.001, FORWARDER, RESOLVER, 50002, 53, _q("x.example.org", 5)),
        _udp(1.010, RESOLVER, FORWARDER, 53, 50002, _r("x.example.org", 5, 2, _ede(6))),
        _udp(1.011, FORWARDER, CLIENT2, 53, 40001, _r("x.example.org", 4, 2)),
    ]
    path = tmp_path / "legs.pcap"
    scapy.wrpcap(str(path), packets)
    return path


def test_client_ede_linked_to_upstream_timeouts_and_rcodes(capture) -> None:  # type: ignore[no-untyped-def]
    ede = pipeline.read_ede(capture)
    linked = legs.upstream_for_edes([capture], ede)
    row = linked[linked.frame_number == 5].iloc[0]
    assert (row.resolver, row.qname, row.ede_code) == (RESOLVER, "www.shop.example.com", 22)
    assert (row.upstream_queries, row.upstream_timeouts, row.upstream_rcodes) == (2, 1,
                                                                                   "SERVFAIL:1")
    assert row.upstream_servers == AUTHORITY
    assert row.upstream_names == "shop.example.com www.shop.example.com"
    assert row.upstream_ede == ""


def test_forwarder_that_dropped_an_ede(capture) -> None:  # type: ignore[no-untyped-def]
    ede = pipeline.read_ede(capture)
    verdicts = legs.forwarded([capture], ede)
    assert verdicts[["resolver", "upstream_server", "qname", "upstream_frame", "upstream_ede",
                     "client_frame", "client_ede", "verdict"]].values.tolist() == [
        [FORWARDER, RESOLVER, "x.example.org", 8, "6", 9, "", "dropped"]]


def test_no_edes_no_pass(capture) -> None:  # type: ignore[no-untyped-def]
    empty = pipeline.read_ede(capture).iloc[0:0]
    assert legs.upstream_for_edes([capture], empty).empty
    assert legs.forwarded([capture], empty).empty
