"""Tests for analyzer.diffs: what changed between two captures, per DNS response."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer import diffs, filters, frame, pipeline, reports
from analyzer.result import CaptureInfo, ScanResult

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
T0 = 1_714_564_800 * 10**9


@pytest.fixture(scope="module")
def pair() -> tuple[ScanResult, ScanResult]:
    return pipeline.scan(SAMPLES / "before.pcap"), pipeline.scan(SAMPLES / "after.pcap")


def by(entries: list[dict], *keys: str) -> dict:
    return {tuple(e[k] for k in keys) if len(keys) > 1 else e[keys[0]]: e for e in entries}


def test_the_fix_worked_on_the_sample_pair(pair) -> None:  # type: ignore[no-untyped-def]
    d = diffs.diff(*pair)
    codes = by(d["codes"], "code")
    assert (codes[7]["change"], codes[6]["change"], codes[15]["change"]) == (
        "disappeared", "disappeared", "appeared")
    assert codes[3]["change"] == codes[22]["change"] == "unchanged"
    zones = by(d["zones"], "code", "zone")
    assert zones[(7, "shop.example.com")]["change"] == "disappeared"
    assert zones[(6, "shop.example.com")]["change"] == "disappeared"
    assert zones[(7, "shop.example.com")]["notable"] is True
    assert zones[(22, "lame.example.net")]["change"] == "unchanged"
    # one 22 for shop.example.com rode along with a 7: it went, but it is not headlined
    assert (zones[(22, "shop.example.com")]["change"],
            zones[(22, "shop.example.com")]["notable"]) == ("disappeared", False)
    assert [c["code"] for c in d["codes"]] == [7, 6, 15, 3, 22]  # gone, new, unchanged
    assert d["before"]["dns_responses"] == 432 and d["after"]["dns_responses"] == 364
    assert codes[7]["before_rate"] == round(68 / 432, 6)
    assert d["summary"]["codes"] == {"disappeared": 2, "appeared": 1, "increased": 0,
                                     "decreased": 0, "unchanged": 2}


def test_report_dicts_give_the_same_codes(pair) -> None:  # type: ignore[no-untyped-def]
    from_scans = diffs.diff(*pair)
    from_reports = diffs.diff(*(reports.build_report(s) for s in pair))
    assert from_reports["codes"] == from_scans["codes"]
    assert from_reports["before"]["complete"] is False


def scan_of(counts: dict[int, int], responses: int) -> ScanResult:
    """Return a scan holding ``counts[code]`` EDE options on ``responses`` DNS responses."""
    rows, n = [], 0
    for code, count in counts.items():
        for _ in range(count):
            n += 1
            values = {"capture": "t.pcap", "frame_number": n, "ts": T0 + n * 10**9,
                      "src_ip": "192.0.2.53", "src_port": 53, "dst_ip": "192.0.2.10",
                      "dst_port": 40000, "transport": "udp", "ip_version": 4, "dns_id": n,
                      "qname": "www.example.com", "qtype": 1, "qclass": 1, "rcode": 2,
                      "ede_count": 1, "ede_index": 0, "ede_code": code, "extra_text": ""}
            rows.append(tuple(values.get(f) for f in frame.EDE_FIELDS))
    return ScanResult(ede=frame.build_ede(rows), responses=None,
                      accounting={"dns-response": responses}, problems={},
                      captures=[CaptureInfo("t.pcap", "pcap")], packets=responses,
                      dns_responses=responses, responses_with_ede=n, ede_options=n)


@pytest.mark.parametrize(("before", "after", "change", "notable"), [
    ((10, 1000), (10, 1000), "unchanged", False),
    ((10, 1000), (30, 1000), "increased", True),     # 3x and 20 apart
    ((10, 1000), (60, 5000), "unchanged", False),    # more EDEs, same rate: a bigger capture
    ((30, 1000), (10, 1000), "decreased", True),
    ((2, 1000), (6, 1000), "unchanged", False),      # 3x, but only 4 EDEs apart
    ((0, 1000), (3, 1000), "appeared", False),       # new, but too few to headline
    ((0, 1000), (5, 1000), "appeared", True),
    ((7, 1000), (0, 1000), "disappeared", True),
])
def test_changes_are_rates_with_a_floor(before, after, change, notable) -> None:  # type: ignore[no-untyped-def]
    d = diffs.diff(scan_of({9: before[0]}, before[1]), scan_of({9: after[0]}, after[1]))
    [entry] = d["codes"]
    assert (entry["change"], entry["notable"]) == (change, notable)


def test_factor_and_min_change_options() -> None:
    a, b = scan_of({9: 10}, 1000), scan_of({9: 16}, 1000)
    assert diffs.diff(a, b)["codes"][0]["change"] == "unchanged"
    assert diffs.diff(a, b, factor=1.5)["codes"][0]["change"] == "increased"
    assert diffs.diff(a, b, factor=1.5, min_change=7)["codes"][0]["change"] == "unchanged"
    with pytest.raises(ValueError):
        diffs.diff(a, b, factor=1.0)


def test_two_windows_of_one_capture() -> None:
    scan = pipeline.scan(SAMPLES / "incident.pcap")
    moment = filters.parse_time("2024-03-12T09:12:00Z")
    before = diffs.side(scan, filters=filters.Filters(until=moment))
    after = diffs.side(scan, filters=filters.Filters(since=moment))
    assert before.dns_responses + after.dns_responses >= scan.dns_responses
    assert before.last_seen == after.first_seen == "2024-03-12T09:12:00Z"
    d = diffs.diff(before, after)
    codes = by(d["codes"], "code")
    assert codes[7]["change"] == codes[6]["change"] == "appeared"


def test_no_edes_on_either_side() -> None:
    d = diffs.diff(scan_of({}, 10), scan_of({}, 0))
    assert d["codes"] == d["zones"] == d["resolvers"] == []
    assert d["after"]["ede_share"] is None
