"""RFC 9567 error reporting in the report: the report queries seen, reconciled with the
EDEs on the wire, from a crafted capture, through every format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer import cli, pipeline, reports

scapy = pytest.importorskip("scapy.all")

T0 = 1_718_000_000
CLIENT, RESOLVER, AGENT_NS = "198.51.100.10", "192.0.2.53", "203.0.113.53"
AGENT = "agent.example.net"


def _wire(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def _opt(code: int | None = None, channel: str | None = None) -> object:
    options = []
    if code is not None:
        options.append(scapy.EDNS0TLV(optcode=15, optdata=code.to_bytes(2, "big")))
    if channel is not None:
        # RFC 9567 §5: Report-Channel, option 18, the agent domain in wire format
        options.append(scapy.EDNS0TLV(optcode=18, optdata=_wire(channel)))
    return scapy.DNSRROPT(rclass=1232, rdata=options)


def _packet(t: float, src: str, dst: str, sport: int, dport: int, dns: object) -> object:
    # MACs set explicitly, so scapy does no ARP lookup
    ether = scapy.Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    p = ether / scapy.IP(src=src, dst=dst) / scapy.UDP(sport=sport, dport=dport) / dns
    p.time = T0 + t
    return p


def _exchange(t: float, qname: str, qid: int, code: int | None, channel: str | None) -> list:
    q = scapy.DNS(id=qid, rd=1, qd=scapy.DNSQR(qname=qname))
    r = scapy.DNS(id=qid, qr=1, rd=1, ra=1, rcode=2, qd=scapy.DNSQR(qname=qname),
                  ar=[_opt(code, channel)])
    return [_packet(t, CLIENT, RESOLVER, 40000 + qid, 53, q),
            _packet(t + 0.01, RESOLVER, CLIENT, 53, 40000 + qid, r)]


def _report(t: float, qname: str, qtype: int, code: int, qid: int) -> object:
    # RFC 9567 §6.1.1: _er.<QTYPE>.<QNAME>.<INFO-CODE>._er.<agent domain>, TXT
    name = f"_er.{qtype}.{qname}.{code}._er.{AGENT}"
    return _packet(t, RESOLVER, AGENT_NS, 50000 + qid, 53,
                   scapy.DNS(id=qid, rd=0, qd=scapy.DNSQR(qname=name, qtype="TXT")))


def reporting_capture(path: Path) -> Path:
    """Write: a reported 7 (twice), a report without an EDE on the wire, an EDE offered a
    channel but never reported, and an EDE without a channel (not expected to be reported)."""
    packets = []
    packets += _exchange(0, "www.a.example", 1, 7, AGENT)
    packets.append(_report(0.02, "www.a.example", 1, 7, 2))
    packets += _exchange(1, "www.a.example", 3, 7, AGENT)
    packets.append(_report(1.02, "www.a.example", 1, 7, 4))
    packets.append(_report(2.00, "www.b.example", 28, 6, 5))
    packets += _exchange(3, "www.c.example", 6, 9, AGENT)
    packets += _exchange(4, "www.d.example", 7, 22, None)
    scapy.wrpcap(str(path), packets)
    return path


@pytest.fixture()
def capture(tmp_path: Path) -> Path:
    return reporting_capture(tmp_path / "reports.pcap")


def test_reports_listed_and_reconciled(capture: Path) -> None:
    scan = pipeline.scan(capture)
    assert len(scan.error_reports) == 3
    section = reports.build_report(scan)["error_reports"]
    assert section["report_queries"] == 3
    assert [(r["reporter"], r["agent"], r["qname"], r["qtype"], r["code"], r["count"])
            for r in section["reports"]] == [
        (RESOLVER, AGENT, "www.a.example", "A", 7, 2),
        (RESOLVER, AGENT, "www.b.example", "AAAA", 6, 1)]
    assert section["reports"][0]["first_seen"] == reports.iso(int((T0 + 0.02) * 1e9))
    rows = {(r["qname"], r["code"]): r for r in section["reconciliation"]}
    assert set(rows) == {("www.a.example", 7), ("www.b.example", 6), ("www.c.example", 9)}
    assert (rows[("www.a.example", 7)]["status"], rows[("www.a.example", 7)]["reports"],
            rows[("www.a.example", 7)]["edes"]) == ("reported", 2, 2)
    assert rows[("www.b.example", 6)]["status"] == "report-without-ede"
    assert (rows[("www.c.example", 9)]["status"],
            rows[("www.c.example", 9)]["edes_with_channel"]) == ("ede-not-reported", 1)
    assert section["channels"] == [{"agent": AGENT, "count": 3}]
    assert section["summary"] == {"ede-not-reported": 1, "report-without-ede": 1,
                                  "reported": 1}


def test_filters_apply_to_the_reports(capture: Path) -> None:
    from analyzer import filters

    scan = pipeline.scan(capture)
    section = reports.build_report(scan, filters=filters.build(codes=["7"]))["error_reports"]
    assert [r["qname"] for r in section["reports"]] == ["www.a.example"]


def test_no_section_without_reports_or_channels() -> None:
    root = Path(__file__).resolve().parent.parent
    report = reports.build_report(pipeline.scan(root / "samples" / "incident.pcap"))
    assert "error_reports" not in report


@pytest.mark.parametrize("fmt", ["text", "json", "csv", "markdown", "html"])
def test_every_format_shows_the_reports(capture: Path, fmt: str) -> None:
    result = CliRunner().invoke(cli.app, ["report", str(capture), "--format", fmt],
                                prog_name="ede-pcap",
                                env={"COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for needle in ("www.b.example", AGENT, "report-without-ede" if fmt in ("json", "csv")
                   else "report without EDE", "www.c.example"):
        assert needle in out, (fmt, needle)
    if fmt == "json":
        assert json.loads(out)["error_reports"]["report_queries"] == 3
    if fmt == "text":
        assert all(len(line) <= 80 for line in out.splitlines())
