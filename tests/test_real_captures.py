"""Captures that real software wrote: Unbound's EDEs inside Linux's VXLAN, and in NFLOG.

Made by tests/real/make_real_captures.sh (Linux network namespaces, Debian's Unbound 1.17
validating a zone whose signatures expired, dig, tcpdump). The kernel wrote the VXLAN and
NFLOG framing, not us; what the tests assert holds whenever the script is run again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from captures import scan_checked
from test_oracle import assert_same_as_tshark, our_ede, tshark_ede

from analyzer.pipeline import scan

REAL = Path(__file__).resolve().parent / "real"
CAPTURES = sorted(REAL.glob("*.pcap"))
UNBOUND_SHOP = "shop.example"  # the zone whose signatures expired


def _by_encap(path: Path) -> dict[str, list[int]]:
    ede = scan_checked(path.read_bytes()).ede
    return {str(k): sorted(g.ede_code.tolist())
            for k, g in ede.groupby("encap", observed=True)}


def test_there_are_real_captures() -> None:
    assert {p.name for p in CAPTURES} == {"vxlan.pcap", "vxlan-any.pcap", "nflog.pcap"}


def test_linux_vxlan_opens_to_unbound_answers() -> None:
    result = scan_checked((REAL / "vxlan.pcap").read_bytes())
    assert result.dns_responses == 3
    # every DNS packet came out of VXLAN (the overlay's ARP too; the underlay's own
    # neighbour discovery did not)
    assert result.tunnels["vxlan"] >= result.dns_queries + result.dns_responses == 6
    ede = result.ede
    assert set(ede.encap) == {"vxlan:100"}
    assert set(ede.src_ip) == {"10.1.0.53"} and set(ede.dst_ip) == {"10.1.0.10"}
    assert set(ede.rcode) == {"SERVFAIL"}
    assert set(ede.ede_code.tolist()) <= {6, 9}  # DNSKEY Missing first, then Bogus
    assert all(UNBOUND_SHOP in q for q in ede.qname)
    assert any("signature expired" in t for t in ede.extra_text.dropna())


def test_tcpdump_any_on_a_vtep_sees_each_answer_twice() -> None:
    """Inside VXLAN on the underlay, and bare on the VXLAN device (Linux cooked v2)."""
    by_encap = _by_encap(REAL / "vxlan-any.pcap")
    assert set(by_encap) == {"", "vxlan:100"}
    assert by_encap[""] == by_encap["vxlan:100"]


def test_nflog_from_iptables_opens_to_unbound_answers() -> None:
    result = scan_checked((REAL / "nflog.pcap").read_bytes())
    assert result.captures[0].linktypes == ["linktype-239"]
    assert result.dns_responses == 3 and result.dns_queries == 3
    assert set(result.ede.src_ip) == {"10.99.0.1"}
    assert set(result.ede.encap) == {""}


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_real_capture_agrees_with_tshark(path: Path, tshark: str) -> None:
    ours, not_utf8 = our_ede(scan([path]))
    assert ours, "no EDE found"
    assert_same_as_tshark(ours, not_utf8, tshark_ede(tshark, path))
