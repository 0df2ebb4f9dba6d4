"""RFC 9567: error-report query names, Report-Channel options, and both in a capture."""

from __future__ import annotations

import pytest

from analyzer import pipeline
from analyzer.errorreport import ErrorReport, parse_report_name

scapy = pytest.importorskip("scapy.all")

AGENT_WIRE = b"\x05agent\x07example\x03net\x00"  # agent.example.net, uncompressed


@pytest.mark.parametrize(("qname", "expected"), [
    ("_er.1.www.example.com.7._er.agent.example.net",
     ErrorReport("www.example.com", 1, 7, "agent.example.net")),
    # the reported name may hold "_er" labels itself: the code label is the last one
    ("_er.28._er.example.org.22._er.a.example",
     ErrorReport("_er.example.org", 28, 22, "a.example")),
    ("_ER.16.x.example.49152._ER.agent.example",
     ErrorReport("x.example", 16, 49152, "agent.example")),
])
def test_report_names(qname: str, expected: ErrorReport) -> None:
    assert parse_report_name(qname) == expected


@pytest.mark.parametrize("qname", [
    "www.example.com", "_er.1.www.example.com", "_er.A.www.example.com.7._er.agent",
    "_er.1.7._er.agent.example", "_er.1.x.example.70000._er.agent.example",
    "_er.1.x.example.7._er",
])
def test_not_report_names(qname: str) -> None:
    assert parse_report_name(qname) is None


def _capture(tmp_path, report_name="_er.1.www.shop.example.com.7._er.agent.example.net."):
    DNS, DNSQR, DNSRROPT, EDNS0TLV = scapy.DNS, scapy.DNSQR, scapy.DNSRROPT, scapy.EDNS0TLV
    IP, UDP = scapy.IP, scapy.UDP
    macs = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}  # no ARP lookups
    report = (scapy.Ether(**macs) / IP(src="192.0.2.53", dst="198.51.100.9")
              / UDP(sport=33333, dport=53)
              / DNS(id=7, rd=0, qd=DNSQR(qname=report_name, qtype="TXT")))
    answer = (scapy.Ether(**macs) / IP(src="192.0.2.53", dst="198.51.100.10")
              / UDP(sport=53, dport=4444)
              / DNS(id=8, qr=1, rcode=2, qd=DNSQR(qname="www.shop.example.com"),
                    ar=DNSRROPT(rclass=1232, rdata=[EDNS0TLV(optcode=18, optdata=AGENT_WIRE),
                                                    EDNS0TLV(optcode=15, optdata=b"\x00\x07exp")])))
    report.time, answer.time = 1_700_000_000, 1_700_000_001
    path = tmp_path / "er.pcap"
    scapy.wrpcap(str(path), [report, answer])
    return path


@pytest.mark.parametrize("force_slow", [False, True])
def test_reports_and_channel_in_capture(tmp_path, force_slow: bool) -> None:
    scanner = pipeline.Scanner(force_slow=force_slow)
    for _ in scanner.run([_capture(tmp_path)]):
        pass
    result = scanner.result()
    reports = result.error_reports
    assert len(reports) == 1
    row = reports.iloc[0]
    assert (row.frame_number, row.src_ip, row.reported_qname, row.reported_qtype,
            row.ede_code, row.ede_name, row.agent_domain) == (
        1, "192.0.2.53", "www.shop.example.com", "A", 7, "Signature Expired",
        "agent.example.net")
    assert result.accounting == {"dns-query": 1, "dns-response": 1}
    assert result.ede.report_channel.tolist() == ["agent.example.net"]
    assert result.ede.extra_text.tolist() == ["exp"]


@pytest.mark.parametrize("force_slow", [False, True])
def test_report_label_in_any_case(tmp_path, force_slow: bool) -> None:
    # DNS names are case-insensitive, and resolvers may randomise case (0x20).
    scanner = pipeline.Scanner(force_slow=force_slow)
    capture = _capture(tmp_path, "_Er.1.www.shop.example.com.7._ER.agent.example.net.")
    for _ in scanner.run([capture]):
        pass
    reports = scanner.result().error_reports
    assert reports[["reported_qname", "ede_code", "agent_domain"]].values.tolist() == [
        ["www.shop.example.com", 7, "agent.example.net"]]
