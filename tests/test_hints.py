"""Clock-skew hints (``reports.hints``): crafted captures where the RRSIG time quoted in
EXTRA-TEXT contradicts the packet time, through the report and every format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer import cli, pipeline, reports

scapy = pytest.importorskip("scapy.all")

REPO = Path(__file__).resolve().parent.parent
T0 = 1_718_000_000  # 2024-06-10T06:13:20Z
CLIENT, AHEAD, BEHIND, ZONED = "198.51.100.10", "192.0.2.53", "192.0.2.54", "192.0.2.55"
LINE = "a clock problem at the resolver, not a zone problem"


def _ede(code: int, text: str) -> object:
    return scapy.DNSRROPT(rclass=1232, rdata=[scapy.EDNS0TLV(
        optcode=15, optdata=code.to_bytes(2, "big") + text.encode())])


def _exchange(t: float, resolver: str, qname: str, qid: int, rcode: int = 0,
              ar: list | None = None) -> list:
    # MACs set explicitly, so scapy does no ARP lookup
    ether = scapy.Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    q = ether / scapy.IP(src=CLIENT, dst=resolver) / scapy.UDP(sport=40000 + qid, dport=53) \
        / scapy.DNS(id=qid, rd=1, qd=scapy.DNSQR(qname=qname))
    r = ether / scapy.IP(src=resolver, dst=CLIENT) / scapy.UDP(sport=53, dport=40000 + qid) \
        / scapy.DNS(id=qid, qr=1, rd=1, ra=1, rcode=rcode, qd=scapy.DNSQR(qname=qname),
                    ar=ar or [])
    q.time, r.time = T0 + t, T0 + t + 0.01
    return [q, r]


def _ymdhms(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%d%H%M%S")


def expired(zone: str, when: int | str) -> str:
    # 1.1.1.1 wording for EDE 7 (textfacts)
    return f"for DNSKEY {zone}., id = 4242: RRSIG {zone}., expiration = {when}"


def not_yet(zone: str, when: int | str) -> str:
    return f"for DNSKEY {zone}., id = 4242: RRSIG {zone}., inception = {when}"


def write(path: Path, packets: list) -> Path:
    scapy.wrpcap(str(path), packets)
    return path


@pytest.fixture()
def skewed(tmp_path: Path) -> Path:
    return skewed_capture(tmp_path / "skewed.pcap")


def skewed_capture(path: Path) -> Path:
    """Write three resolvers with three clock problems, and one genuine expiry as a
    control, to ``path``."""
    packets: list = []
    qid = 1
    # ordinary answers first, so the capture runs before any EDE begins
    for i in range(5):
        packets += _exchange(i, AHEAD, "www.example.org", qid)
        qid += 1
    for i in range(6):
        t = 600 + i * 10
        # AHEAD: 7 although the expiration is 3 h after the packet (epoch seconds)
        packets += _exchange(t, AHEAD, "www.ahead.example", qid, 2,
                             [_ede(7, expired("ahead.example", T0 + 3 * 3600 + 600))])
        # BEHIND: 8 although the inception was 2 days before the packet (YYYYMMDDHHmmSS)
        packets += _exchange(t + 1, BEHIND, "www.behind.example", qid + 1, 2,
                             [_ede(8, not_yet("behind.example", _ymdhms(T0 - 2 * 86400)))])
        # ZONED: 7 that begins exactly 2 h after the expiration, mid-capture
        packets += _exchange(t + 2, ZONED, "www.zoned.example", qid + 2, 2,
                             [_ede(7, expired("zoned.example", T0 + 600 - 7200))])
        # control: expired 2 s before the first EDE, a real expiry
        packets += _exchange(t + 3, AHEAD, "www.real.example", qid + 3, 2,
                             [_ede(7, expired("real.example", T0 + 598))])
        qid += 4
    packets.sort(key=lambda p: p.time)
    return write(path, packets)


def test_clock_skew_hints_from_a_crafted_capture(skewed: Path) -> None:
    report = reports.build_report(pipeline.scan(skewed))
    hints = {h["resolver"]: h for h in report["hints"]}
    assert set(hints) == {AHEAD, BEHIND, ZONED}  # the genuine expiry gives none
    ahead = hints[AHEAD]
    assert (ahead["kind"], ahead["code"], ahead["zone"], ahead["field"]) == (
        "clock-skew", 7, "ahead.example", "expiration")
    # the first EDE is at T0+600.01: the resolver's clock must be at least 3 h ahead
    assert ahead["offset_seconds"] == 3 * 3600 and ahead["timezone"] is True
    assert ahead["count"] == 6
    assert ahead["evidence"] == [expired("ahead.example", T0 + 3 * 3600 + 600)]
    behind = hints[BEHIND]
    assert (behind["code"], behind["zone"], behind["field"]) == (8, "behind.example",
                                                                  "inception")
    # the last EDE is at T0+651.01, the inception 2 days before T0: behind by that much
    assert behind["offset_seconds"] == -(2 * 86400 + 651)
    assert behind["timezone"] is False
    assert behind["signature_time"] == reports.iso((T0 - 2 * 86400) * 10**9)
    zoned = hints[ZONED]
    # its first EDE is at T0+602.01, 2 h and 2 s after the expiration
    assert zoned["offset_seconds"] == -7202 and zoned["timezone"] is True
    for hint in hints.values():
        assert LINE in hint["message"]
    assert "2 h after the RRSIG expiration" in zoned["message"]


def test_no_hint_when_the_capture_starts_with_the_edes(tmp_path: Path) -> None:
    # EDEs 2 h after the expiration, but from the capture's first packet on: the onset was
    # not seen, so nothing says the resolver noticed the expiry late
    packets: list = []
    for i in range(6):
        packets += _exchange(i, ZONED, "www.zoned.example", i + 1, 2,
                             [_ede(7, expired("zoned.example", T0 - 7200))])
    report = reports.build_report(pipeline.scan(write(tmp_path / "late.pcap", packets)))
    assert report["hints"] == []


def test_a_skew_beyond_a_few_days_is_not_a_clock_hint(tmp_path: Path) -> None:
    packets = _exchange(0, AHEAD, "www.far.example", 1, 2,
                        [_ede(7, expired("far.example", T0 + 30 * 86400))])
    packets += _exchange(1, AHEAD, "www.near.example", 2, 2,
                         [_ede(7, expired("near.example", T0 + 30))])  # NTP noise
    report = reports.build_report(pipeline.scan(write(tmp_path / "far.pcap", packets)))
    assert report["hints"] == []


def test_the_incident_sample_is_a_genuine_expiry() -> None:
    # expiration 2 s before the burst: the zone's signatures expired, the clock is fine
    report = reports.build_report(pipeline.scan(REPO / "samples" / "incident.pcap"))
    assert report["hints"] == []


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli.app, list(args), prog_name="ede-pcap",
                              env={"COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"})


@pytest.mark.parametrize("fmt", ["text", "json", "csv", "markdown", "html"])
def test_every_format_says_it_is_the_clock(skewed: Path, fmt: str) -> None:
    result = run("report", str(skewed), "--format", fmt)
    assert result.exit_code == 0, result.stderr
    flat = " ".join(result.stdout.split())
    assert LINE in flat
    assert "ahead.example" in flat
    if fmt == "json":
        assert len(json.loads(result.stdout)["hints"]) == 3
    if fmt == "text":
        assert all(len(line) <= 80 for line in result.stdout.splitlines())
