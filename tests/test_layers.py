"""Tests for analyzer.layers: link types, IPv4/IPv6, UDP and the accounting of odd packets.

Every capture goes through ``scan_checked``, which also runs the slow path and checks that
both give the same result and that every packet is counted once.
"""

from __future__ import annotations

import struct

import pandas as pd
import pytest
from captures import (
    CLIENT4,
    CLIENT6,
    CLIENT_PORT,
    LINKS,
    MS,
    SERVER4,
    SERVER6,
    T0,
    Rec,
    ede_rows,
    exchange,
    frame,
    ipv6_with_ext_headers,
    link_capture,
    noise_capture,
    pcap,
    query,
    records,
    response,
    scan_checked,
    udp,
)
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.packet import Raw

LINK_NAMES = {1: "ethernet", 113: "linux-sll", 276: "linux-sll2", 101: "raw", 12: "raw",
              14: "raw", 228: "ipv4", 229: "ipv6", 0: "null", 108: "loop"}
CASES = [(name, False) for name in LINKS if name != "ipv6-229"] + [
    (name, True) for name, link in LINKS.items() if link.ipv6]


@pytest.mark.parametrize("link, v6", CASES, ids=[f"{n}-{'v6' if v else 'v4'}" for n, v in CASES])
def test_every_link_type_carries_dns(link: str, v6: bool) -> None:
    result = scan_checked(link_capture(link, v6))
    assert result.accounting == {"dns-query": 1, "dns-response": 1}
    assert result.captures[0].linktypes == [LINK_NAMES[LINKS[link].linktype]]
    row = result.ede.iloc[0]
    assert len(result.ede) == 1
    assert (row.frame_number, row.ede_code, row.extra_text) == (2, 9, "no DNSKEY")
    assert (row.src_ip, row.dst_ip) == ((SERVER6, CLIENT6) if v6 else (SERVER4, CLIENT4))
    assert (row.src_port, row.dst_port, row.transport, row.ip_version) == (
        53, CLIENT_PORT, "udp", 6 if v6 else 4)
    assert (row.qname, row.qtype, row.qclass, row.rcode) == ("example.com", "A", "IN", "NOERROR")
    assert row.ts == pd.Timestamp(T0 + MS, unit="ns", tz="UTC")
    assert row.latency == pd.Timedelta(MS, unit="ns")


def test_unsupported_link_type_is_counted_per_packet() -> None:
    result = scan_checked(pcap(records(exchange() * 2), linktype=147))
    assert result.accounting == {"unsupported-linktype": 4}
    assert result.captures[0].linktypes == ["linktype-147"]
    assert result.ede.empty


@pytest.mark.parametrize("linktype, v6", [(228, True), (229, False)])
def test_raw_ip_link_type_with_the_other_ip_version_is_malformed(linktype: int, v6: bool) -> None:
    data = pcap(records([bytes(udp(response(), v6=v6))]), linktype=linktype)
    assert scan_checked(data).accounting == {"malformed-ip-header": 1}


def test_raw_ip_with_an_unknown_version_is_malformed() -> None:
    packet = bytearray(bytes(udp(response())))
    packet[0] = 0x55  # version 5
    assert scan_checked(pcap(records([bytes(packet)]), linktype=101)).accounting == {
        "malformed-ip-header": 1}


@pytest.mark.parametrize("header", [struct.pack("<I", 7), struct.pack(">I", 7)], ids=["le", "be"])
def test_null_with_a_non_ip_family_is_non_ip(header: bytes) -> None:
    data = pcap(records([header + bytes(udp(response()))]), linktype=0)
    assert scan_checked(data).accounting == {"non-ip": 1}


@pytest.mark.parametrize("family, v6", [(2, False), (24, True), (28, True), (30, True)])
def test_null_accepts_every_bsd_address_family(family: int, v6: bool) -> None:
    data = pcap(records([struct.pack("<I", family) + bytes(udp(response(), v6=v6))]), linktype=0)
    result = scan_checked(data)
    assert result.ede.ip_version.tolist() == [6 if v6 else 4]


def test_ipv6_hop_by_hop_and_destination_options_are_walked() -> None:
    q = frame(udp(query(), v6=True, to_server=True))
    r = frame(ipv6_with_ext_headers(response(edes=[(18, "prohibited by policy")])))
    result = scan_checked(pcap(records([q, r])))
    assert result.accounting == {"dns-query": 1, "dns-response": 1}
    assert ede_rows(result) == [(2, 18, "prohibited by policy")]
    assert result.ede.ip_version.tolist() == [6]
    assert result.ede.latency.tolist() == [pd.Timedelta(MS, unit="ns")]


def test_ipv6_routing_header_is_walked() -> None:
    packet = (IPv6(src=SERVER6, dst=CLIENT6) / IPv6ExtHdrRouting(addresses=[]) /
              IPv6ExtHdrDestOpt() / UDP(sport=53, dport=CLIENT_PORT) / Raw(response()))
    assert ede_rows(scan_checked(pcap(records([frame(packet)])))) == [(1, 9, "no DNSKEY")]


def test_ipv6_extension_header_running_past_the_packet_is_malformed() -> None:
    packet = bytearray(bytes(IPv6(src=SERVER6, dst=CLIENT6, nh=0, plen=8)
                             / IPv6ExtHdrHopByHop()))
    packet[41] = 30  # the hop-by-hop header claims 248 bytes
    assert scan_checked(pcap(records([frame(bytes(packet))]))).accounting == {
        "malformed-ip-header": 1}


def test_ipv4_options_are_skipped() -> None:
    packet = IP(src=SERVER4, dst=CLIENT4, options=b"\x01\x01\x01\x00") / UDP(
        sport=53, dport=CLIENT_PORT) / Raw(response())
    assert IP(bytes(packet)).ihl == 6
    result = scan_checked(pcap(records([frame(packet)])))
    assert ede_rows(result) == [(1, 9, "no DNSKEY")]


def test_ethernet_padding_after_the_ip_packet_is_ignored() -> None:
    # A short query padded to Ethernet's 60-byte minimum, and a response with trailing junk.
    q = frame(udp(b"\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", to_server=True))
    r = frame(udp(response())) + b"\xaa" * 20
    result = scan_checked(pcap(records([q + bytes(60 - len(q)), r])))
    assert result.accounting == {"dns-query": 1, "dns-response": 1}
    assert ede_rows(result) == [(2, 9, "no DNSKEY")]


def test_noise_is_counted_by_kind() -> None:
    result = scan_checked(noise_capture())
    # ARP, ICMP, TCP to 443, NTP, then two exchanges and a response without OPT.
    assert result.accounting == {"dns-response": 3, "dns-query": 2, "not-dns-port": 2,
                                 "non-ip": 1, "not-udp-tcp": 1}
    assert (result.dns_queries, result.dns_responses) == (2, 3)
    assert (result.responses_with_ede, result.ede_options) == (1, 1)
    assert ede_rows(result) == [(6, 3, "stale")]


@pytest.mark.parametrize("ports, found", [((5300,), True), ((53,), False), ((53, 5300), True)])
def test_dns_on_another_port(ports: tuple[int, ...], found: bool) -> None:
    result = scan_checked(pcap(records(exchange(port=5300))), ports=ports)
    if found:
        assert result.accounting == {"dns-query": 1, "dns-response": 1}
        assert result.ede.src_port.tolist() == [5300]
        assert ede_rows(result) == [(2, 9, "no DNSKEY")]
    else:
        assert result.accounting == {"not-dns-port": 2}
        assert result.ede.empty


def test_either_port_makes_it_dns() -> None:
    # A response from port 53 to a client on 5300 is still DNS (the port set is checked
    # on both ends), so the row keeps both ports as they were.
    data = pcap(records([frame(udp(response(), client_port=5300))]))
    result = scan_checked(data)
    assert (result.ede.src_port.tolist(), result.ede.dst_port.tolist()) == ([53], [5300])


@pytest.mark.parametrize("keep", [10, 20, 30, 40, 60, 90], ids=lambda k: f"caplen-{k}")
def test_snaplen_cut_packets_are_counted_as_truncated(keep: int) -> None:
    # Ethernet header 14, IPv4 20, UDP 8: cut in each layer and in the DNS message.
    q, r = exchange()
    data = pcap([Rec(T0, q), Rec(T0 + MS, r[:keep], origlen=len(r))], snaplen=keep)
    result = scan_checked(data)
    assert result.accounting == {"dns-query": 1, "snaplen-truncated": 1}
    assert result.ede.empty


def test_snaplen_cut_after_the_dns_message_is_harmless() -> None:
    q, r = exchange()
    padded = r + bytes(30)  # the capture kept the whole DNS message, but not the padding
    data = pcap([Rec(T0, q), Rec(T0 + MS, r, origlen=len(padded))])
    assert ede_rows(scan_checked(data)) == [(2, 9, "no DNSKEY")]


def _lie(packet, **fields) -> bytes:  # type: ignore[no-untyped-def]
    p = packet.copy()
    for layer, (name, value) in fields.items():
        setattr(p[{"ip": IP, "udp": UDP}[layer]], name, value)
    return frame(p)


def test_lying_lengths_are_malformed_by_layer() -> None:
    good = udp(response(edes=[(9, "ok")]))
    frames = [
        _lie(good, ip=("len", len(good) + 40)),      # IP total length past the frame
        _lie(good, ip=("len", 19)),                  # IP total length below the header
        _lie(good, ip=("ihl", 4)),                   # IHL below 5 words
        _lie(good, udp=("len", len(good[UDP]) + 1)),  # UDP length past the IP payload
        _lie(good, udp=("len", 7)),                  # UDP length below its header
    ]
    result = scan_checked(pcap(records(frames)))
    assert result.accounting == {"malformed-ip-length": 2, "malformed-udp-length": 2,
                                 "malformed-ip-header": 1}


@pytest.mark.parametrize("cut, category", [
    (4, "malformed-dns-rdata-overrun"),  # the OPT's RDATA now runs past the message
    (10, "dns-response"),                # the EDE option code is gone: not parsed at all
])
def test_udp_length_shorter_than_the_payload_cuts_the_message(cut: int, category: str) -> None:
    # Bytes past the UDP length are not DNS, however many the IP packet holds.
    msg = response(edes=[(9, "ok")])
    result = scan_checked(pcap(records([_lie(udp(msg), udp=("len", 8 + len(msg) - cut))])))
    assert result.accounting == {category: 1}
    assert result.ede.empty


def test_short_ethernet_frame_is_malformed_link() -> None:
    assert scan_checked(pcap(records([b"\x00" * 10]))).accounting == {"malformed-link": 1}


def test_dns_payload_shorter_than_a_header() -> None:
    data = pcap(records([frame(udp(b"\x12\x34\x81\x80"))]))
    assert scan_checked(data).accounting == {"malformed-dns-short-header": 1}


def test_response_without_ede_gives_no_row_but_is_counted() -> None:
    frames = [frame(udp(response(edes=None))), frame(udp(response(edes=())))]
    result = scan_checked(pcap(records(frames)))
    assert result.accounting == {"dns-response": 2}
    assert (result.dns_responses, result.responses_with_ede) == (2, 0)
    assert result.ede.empty
