"""dnstap written by real Unbound, BIND, Knot Resolver and dnsdist, against independent
decoders: the protobuf package with dnspython (``*.oracle.jsonl``) and tshark on a pcap of
the same traffic (``*.pcap.oracle.jsonl``). tests/real/dnstap/README.md says how they were
made and what each server logs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import analyzer

HERE = Path(__file__).parent / "real" / "dnstap"
SOFTWARE = ["unbound", "bind", "knot-resolver", "dnsdist"]
TRANSPORTS = {"UDP": "udp", "TCP": "tcp", "DOT": "dot", "DOH": "doh", "DOQ": "doq", None: "unknown"}


def oracle(name: str) -> list[dict[str, Any]]:
    with open(HERE / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def logged_responses(software: str) -> tuple[list[dict[str, Any]], int]:
    """The oracle's response messages, with a repeat folded (as the reader folds them),
    and how many were folded. A repeat is the same message with the same endpoints and
    type, logged again within 100 ms (Unbound's second copy comes 5-60 us later)."""
    kept, folded = [], 0
    last: dict[str, Any] = {}
    times = ("frame", "query_time_ns", "response_time_ns")
    for row in oracle(f"{software}.oracle.jsonl"):
        if not row["type"].endswith("_RESPONSE") or row["dns"] is None:
            continue
        key = json.dumps({k: v for k, v in row.items() if k not in times}, sort_keys=True)
        when = row["response_time_ns"] or row["query_time_ns"]
        if key in last and 0 <= when - last[key] <= 100_000_000:
            folded += 1
            continue
        last[key] = when
        kept.append(row)
    return kept, folded


@pytest.fixture(scope="module", params=SOFTWARE)
def software(request: pytest.FixtureRequest) -> str:
    return request.param


def test_every_response_and_ede_agrees_with_the_protobuf_oracle(software: str) -> None:
    path = HERE / f"{software}.dnstap"
    expected, folded = logged_responses(software)
    responses = analyzer.read_responses(path)
    assert responses["frame_number"].tolist() == [r["frame"] for r in expected]
    for row, want in zip(responses.itertuples(index=False), expected, strict=True):
        dns = want["dns"]
        assert row.dnstap_type == want["type"]
        assert row.dnstap_identity == want["identity"]
        assert row.dnstap_version == want["version"]
        assert (row.src_ip, row.src_port) == (want["response_address"], want["response_port"])
        assert (row.dst_ip, row.dst_port) == (want["query_address"], want["query_port"])
        assert row.transport == TRANSPORTS[want["socket_protocol"]]
        ts = want["response_time_ns"] or want["query_time_ns"]
        assert row.ts == pd.Timestamp(ts, unit="ns", tz="UTC")
        assert (row.dns_id, row.qname.rstrip(".").lower() or ".") == (dns["id"], dns["qname"])
        assert row.ede_codes == ",".join(str(c) for c, _ in dns["edes"])
    ede = analyzer.read_ede(path)
    want_edes = [(r["frame"], code, text) for r in expected for code, text in r["dns"]["edes"]]
    got = list(zip(ede["frame_number"], ede["ede_code"], ede["extra_text"], strict=True))
    assert got == want_edes
    result = analyzer.scan(path)
    assert result.dnstap is not None
    assert result.dnstap["duplicates_folded"] == folded
    assert result.packets == len(oracle(f"{software}.oracle.jsonl"))


def test_the_report_names_the_software_from_its_version(software: str) -> None:
    report = analyzer.scan(HERE / f"{software}.dnstap").report()
    versions = {r["version"] for r in oracle(f"{software}.oracle.jsonl")}
    assert report["resolvers"], software
    for resolver in report["resolvers"]:
        assert resolver["software"] in versions
        assert resolver["software_basis"] == "dnstap"


def client_facing_edes(ede: pd.DataFrame) -> Counter[tuple[Any, ...]]:
    """The EDEs sent to clients on port 53 (DoT is encrypted in a pcap), as a multiset."""
    rows = ede[(ede["src_port"] == 53) & (ede["src_ip"] != "127.0.0.54")]
    if "dnstap_type" in rows and rows["dnstap_type"].notna().any():
        rows = rows[rows["dnstap_type"] == "CLIENT_RESPONSE"]
    return Counter(zip(rows["dst_ip"], rows["dst_port"], rows["dns_id"], rows["qname"],
                       rows["ede_code"], rows["extra_text"], strict=True))


def test_a_pcap_and_a_dnstap_of_the_same_traffic_give_the_same_client_edes(
        software: str) -> None:
    from_log = client_facing_edes(analyzer.read_ede(HERE / f"{software}.dnstap"))
    from_wire = client_facing_edes(analyzer.read_ede(HERE / f"{software}.pcap"))
    assert from_log == from_wire
    assert from_log, software
    # and tshark saw the same on the wire (the pcap oracle)
    wire = Counter((r["dst"], r["dport"], r["dns"]["id"], code, text)
                   for r in oracle(f"{software}.pcap.oracle.jsonl")
                   for code, text in r["dns"]["edes"])
    assert Counter((d, p, i, c, t) for d, p, i, _, c, t in from_log.elements()) == wire


def test_unbound_logs_stale_answers_twice_and_they_are_folded() -> None:
    result = analyzer.scan(HERE / "unbound.dnstap")
    assert result.dnstap is not None and result.dnstap["duplicates_folded"] == 2
    assert result.accounting["dnstap-duplicate"] == 2


def test_upstream_legs_come_from_the_log_itself() -> None:
    """Unbound logs its upstream queries from 0.0.0.0: the legs are tied to the server by
    its identity. The stale server (127.0.0.3) was stopped: its queries time out."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "analyzer", "report", "--upstream", "-q",
                           "--format", "json", str(HERE / "unbound.dnstap")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    legs = {(c["code"], c["zone"]): c for c in report["upstream"]["codes"]}
    stale = legs[(3, "stale.example")]
    assert stale["edes_with_upstream"] == 2 and stale["timeouts"] >= 1
    assert "127.0.0.3" in stale["servers"]
    expired = legs[(7, "expired.example")]
    assert expired["upstream_queries"] > 0 and expired["timeouts"] == 0
    assert expired["servers"] == ["127.0.0.2"]


def test_client_responses_are_matched_to_their_logged_queries(software: str) -> None:
    responses = analyzer.read_responses(HERE / f"{software}.dnstap")
    client = responses[responses["dnstap_type"] == "CLIENT_RESPONSE"]
    latency = client["latency"].dropna()
    # BIND logs no CLIENT_QUERY for the query its ACL refused: that one stays unmatched
    assert len(latency) >= len(client) - (software == "bind")
    assert (latency.dt.total_seconds() >= 0).all()
    assert (latency.dt.total_seconds() < 10).all()


def test_one_logged_server_on_two_addresses_is_one_instance() -> None:
    """Unbound answered on 127.0.0.53 and ::1; its log names one server for both."""
    report = analyzer.scan(HERE / "unbound.dnstap").report()
    by = {r["resolver"]: r for r in report["resolvers"]}
    assert by["127.0.0.53"]["same_instance"] == [
        {"resolver": "::1", "shared": None, "of": None, "basis": "dnstap"}]
    assert by["::1"]["same_instance"][0]["resolver"] == "127.0.0.53"
    from analyzer.render import instance_note
    assert instance_note(by["::1"]) == "the same server as 127.0.0.53 (its dnstap identity)"
