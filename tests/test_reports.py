"""Tests for analyzer.reports and analyzer.filters, on frames built from synthetic rows."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import filters, frame, reports
from analyzer.result import CaptureInfo, ScanResult

T0 = 1_714_564_800 * 10**9  # 2024-05-01T12:00:00Z in ns
SEC = 10**9
SERVFAIL, NXDOMAIN, NOERROR = 2, 3, 0


def ede_row(n: int, *, ts: int | None, code: int, qname: str = "www.example.com",
            text: str | None = None, resolver: str = "192.0.2.53", client: str = "192.0.2.10",
            rcode: int = SERVFAIL, index: int = 0, count: int = 1, dns_id: int | None = None,
            capture: str = "test.pcap") -> tuple:
    """Return one decoder row (``frame.EDE_FIELDS`` order) for an EDE option; fields this
    helper does not know are None."""
    values = {
        "capture": capture, "frame_number": n, "ts": ts, "src_ip": resolver, "src_port": 53,
        "dst_ip": client, "dst_port": 40000 + n % 20000, "transport": "udp", "ip_version": 4,
        "dns_id": n % 65536 if dns_id is None else dns_id, "qname": qname, "qtype": 1,
        "qclass": 1, "rcode": rcode, "aa": False, "tc": False, "rd": True, "ra": True,
        "ad": False, "cd": False, "edns_udp_size": 1232, "do": True, "ede_count": count,
        "query_ts": None if ts is None else ts - 2_000_000, "ede_index": index,
        "ede_code": code, "extra_text": text,
        "extra_text_utf8_valid": True,
    }
    return tuple(values.get(field) for field in frame.EDE_FIELDS)


def make_scan(rows: list[tuple], *, responses: int | None = None,
              first: int | None = None, last: int | None = None,
              accounting: dict[str, int] | None = None) -> ScanResult:
    """Return a ScanResult around ``rows`` with consistent counters."""
    df = frame.build_ede(rows)
    stamps = [r[2] for r in rows if r[2] is not None]
    first = first if first is not None else (min(stamps) if stamps else None)
    last = last if last is not None else (max(stamps) if stamps else None)
    with_ede = len({(r[0], r[1]) for r in rows})
    responses = responses if responses is not None else max(with_ede, 1) * 4
    accounting = accounting or {"dns-query": responses, "dns-response": responses}
    # responses spread evenly over the seconds that have EDEs (bounded by the row count,
    # whatever the span)
    busy = sorted({ts // SEC for ts in stamps})
    seconds = {second: max(1, responses // len(busy)) for second in busy}
    return ScanResult(
        ede=df, responses=None, accounting=accounting, problems={},
        captures=[CaptureInfo("test.pcap", "pcap", None, ["ethernet"], sum(accounting.values()),
                              1000, first, last)],
        packets=sum(accounting.values()), dns_queries=responses, dns_responses=responses,
        responses_with_ede=with_ede, ede_options=len(rows), response_seconds=seconds,
        first_ts_ns=first, last_ts_ns=last)


def outage_rows(n_background: int = 600, burst: int = 120) -> list[tuple]:
    """Ten minutes of background EDEs (code 3 every second) with a 60 s burst of code 7
    starting at +300 s, naming the broken zone in EXTRA-TEXT."""
    rows = []
    n = 0
    for i in range(n_background):
        n += 1
        rows.append(ede_row(n, ts=T0 + i * SEC, code=3, qname=f"host{i % 7}.example.net",
                            rcode=NOERROR))
    for i in range(burst):
        n += 1
        rows.append(ede_row(n, ts=T0 + 300 * SEC + i * SEC // 2, code=7,
                            qname=f"{'www' if i % 3 else 'api'}.shop.example.com",
                            text="for key shop.example.com.", resolver="2001:db8::53"))
    return rows


# --- registrable zone ----------------------------------------------------------------------

@pytest.mark.parametrize(("qname", "zone"), [
    ("www.example.com", "example.com"),
    ("a.b.c.example.com", "example.com"),
    ("example.com", "example.com"),
    ("WWW.Example.COM.", "example.com"),
    ("com", "com"),
    ("", "."),
    (".", "."),
    ("www.example.co.uk", "example.co.uk"),
    ("shop.example.com.au", "example.com.au"),
    ("x.y.gov.uk", "y.gov.uk"),
    ("example.co.uk", "example.co.uk"),
    ("co.uk", "co.uk"),
    ("a.example.de", "example.de"),
    ("a.b.co.com", "co.com"),          # 3-letter TLD: no second-level rule
    ("host.example.org.br", "example.org.br"),
])
def test_registrable_zone(qname: str, zone: str) -> None:
    assert reports.registrable_zone(qname) == zone


@given(st.lists(st.from_regex(r"[a-z0-9-]{1,10}", fullmatch=True), min_size=1, max_size=6))
def test_registrable_zone_is_a_suffix_of_the_name(labels: list[str]) -> None:
    name = ".".join(labels)
    zone = reports.registrable_zone(name)
    assert name == zone or name.endswith("." + zone)
    assert 1 <= zone.count(".") + 1 <= 3


# --- the report as a whole ------------------------------------------------------------------

def test_report_has_the_documented_shape() -> None:
    report = reports.build_report(make_scan(outage_rows()))
    for key in ("schema_version", "captures", "summary", "accounting", "codes", "domains",
                "zones", "resolvers", "timeseries", "incidents"):
        assert key in report
    for key in ("packets", "dns_responses", "responses_with_ede", "ede_options", "first_seen",
                "last_seen"):
        assert key in report["summary"]
    for entry in report["codes"]:
        assert {"code", "name", "count", "responses"} <= set(entry)
    assert sum(report["accounting"].values()) == report["summary"]["packets"]
    json.dumps(report, allow_nan=False)  # plain types only


def test_timestamps_are_iso_utc_with_z() -> None:
    report = reports.build_report(make_scan(outage_rows()))
    assert report["summary"]["first_seen"] == "2024-05-01T12:00:00Z"
    stamps = [report["summary"]["ede_last_seen"]] + [c["first_seen"] for c in report["codes"]]
    for stamp in stamps:
        assert stamp.endswith("Z")
        datetime.fromisoformat(stamp)


def test_empty_scan_gives_empty_sections() -> None:
    report = reports.build_report(make_scan([], responses=0, accounting={"not-dns-port": 3}))
    assert report["codes"] == report["domains"] == report["zones"] == []
    assert report["resolvers"] == report["incidents"] == []
    assert report["summary"]["ede_options"] == 0
    assert report["summary"]["ede_share"] is None
    assert report["summary"]["skipped_packets"] == 3
    json.dumps(report, allow_nan=False)


def test_no_timestamps_at_all() -> None:
    empty = make_scan([], responses=0, accounting={})
    empty.first_ts_ns = empty.last_ts_ns = None
    report = reports.build_report(empty)
    assert report["timeseries"]["buckets"] == 0
    assert report["summary"]["first_seen"] is None


# --- codes ---------------------------------------------------------------------------------

def test_code_counts_options_responses_share_and_rcodes() -> None:
    rows = [
        # one response carrying two options of code 22 and one of 23
        ede_row(1, ts=T0, code=22, index=0, count=3, text="at delegation lame.example.net."),
        ede_row(1, ts=T0, code=22, index=1, count=3),
        ede_row(1, ts=T0, code=23, index=2, count=3),
        ede_row(2, ts=T0 + SEC, code=22, qname="b.example.org", rcode=NOERROR),
        ede_row(3, ts=T0 + 2 * SEC, code=15, qname="ads.example.org", rcode=NXDOMAIN),
    ]
    report = reports.build_report(make_scan(rows, responses=10))
    by_code = {c["code"]: c for c in report["codes"]}
    assert [c["code"] for c in report["codes"]] == [22, 15, 23]  # by count, then code
    assert by_code[22]["count"] == 3
    assert by_code[22]["responses"] == 2
    assert by_code[22]["share"] == pytest.approx(0.2)
    assert by_code[22]["domains"] == 2
    assert by_code[22]["rcodes"] == {"NOERROR": 1, "SERVFAIL": 2}
    assert by_code[22]["first_seen"] == "2024-05-01T12:00:00Z"
    assert by_code[22]["last_seen"] == "2024-05-01T12:00:01Z"
    assert by_code[22]["name"] == "No Reachable Authority"
    assert by_code[22]["next_step"]
    assert by_code[22]["extra_texts"] == [{"text": "at delegation lame.example.net.",
                                          "count": 1}]
    assert report["summary"]["responses_with_ede"] == 3
    assert report["summary"]["ede_options"] == 5


def test_unassigned_and_private_codes_keep_their_number() -> None:
    rows = [ede_row(1, ts=T0, code=300), ede_row(2, ts=T0, code=65535)]
    names = {c["code"]: c["name"] for c in reports.build_report(make_scan(rows))["codes"]}
    assert names == {300: "Unassigned (300)", 65535: "Private Use (65535)"}


# --- domains and zones ---------------------------------------------------------------------

def test_domains_are_case_folded_and_limited_per_code() -> None:
    rows = [ede_row(i, ts=T0 + i, code=6, qname=q) for i, q in enumerate(
        ["WWW.example.com", "www.EXAMPLE.com", "a.example.com", "b.example.com",
         "c.example.com"], 1)]
    rows.append(ede_row(9, ts=T0, code=9, qname="x.example.org"))
    domains = reports.build_report(make_scan(rows), top=2)["domains"]
    assert [(d["code"], d["qname"], d["count"]) for d in domains] == [
        (6, "www.example.com", 2), (6, "a.example.com", 1), (9, "x.example.org", 1)]


@pytest.mark.parametrize(("text", "zone", "tag"), [
    ("for key expired.test.", "expired.test", None),
    ("for DNSKEY example.com., id = 12345", "example.com", 12345),
    ("at delegation example.com.", "example.com", None),
    ("no SEP matching the DS found for dnssec-failed.org.", "dnssec-failed.org", None),
])
def test_zone_named_by_extra_text_wins_over_the_qname(text: str, zone: str,
                                                     tag: int | None) -> None:
    rows = [ede_row(1, ts=T0, code=6, qname="deep.www.sub." + zone, text=text)]
    zones = reports.build_report(make_scan(rows))["zones"]
    assert zones[0]["zone"] == zone
    assert zones[0]["source"] == "extra-text"
    assert zones[0]["key_tags"] == ([tag] if tag else [])
    assert zones[0]["examples"] == ["deep.www.sub." + zone]


def test_zone_falls_back_to_the_registrable_zone() -> None:
    rows = [ede_row(1, ts=T0, code=15, qname="ads.tracker.example.co.uk", text="blocked"),
            ede_row(2, ts=T0, code=15, qname="pixel.example.co.uk")]
    zones = reports.build_report(make_scan(rows))["zones"]
    assert [(z["zone"], z["source"], z["count"], z["domains"]) for z in zones] == [
        ("example.co.uk", "qname", 2, 2)]


def test_broken_parent_zone_groups_many_names() -> None:
    report = reports.build_report(make_scan(outage_rows()))
    zones = {(z["code"], z["zone"]): z for z in report["zones"]}
    assert zones[(7, "shop.example.com")]["source"] == "extra-text"
    assert zones[(7, "shop.example.com")]["domains"] == 2
    assert zones[(3, "example.net")]["domains"] == 7


# --- resolvers -----------------------------------------------------------------------------

def test_resolvers_with_codes_and_fingerprint() -> None:
    unbound = ("validation failure <www.expired.test. A IN>: signature expired from "
               "192.0.2.1 for key expired.test. while building chain of trust")
    rows = [ede_row(i, ts=T0 + i, code=7, text=unbound, resolver="192.0.2.53")
            for i in range(1, 4)]
    rows.append(ede_row(10, ts=T0, code=15, resolver="2001:db8::53", client="2001:db8::10"))
    found = reports.build_report(make_scan(rows))["resolvers"]
    assert [r["resolver"] for r in found] == ["192.0.2.53", "2001:db8::53"]
    first = found[0]
    assert first["codes"] == [{"code": 7, "name": "Signature Expired", "count": 3}]
    assert first["software"] == "unbound"
    assert first["evidence"] == [unbound]
    assert first["software_basis"] == "text" and first["software_confidence"] == "medium"
    # no text and no DNSSEC code: honestly unknown, and why
    assert found[1]["software"] is None and found[1]["software_basis"] == "unknown"
    assert found[1]["software_candidates"] == [] and found[1]["software_confidence"] is None
    assert found[1]["evidence"] == [
        "unknown: its EDEs carry no EXTRA-TEXT, and none are DNSSEC codes, which every "
        "resolver may send bare; the response of its one EDE advertises an EDNS UDP size of "
        "1232, never the 512 PowerDNS Recursor always writes; the size does not tell "
        "Unbound, BIND and Knot Resolver apart (1232 by default)"]


# --- time series and incidents -------------------------------------------------------------

@pytest.mark.parametrize(("span_s", "interval"), [
    (0, 1), (5, 1), (120, 1), (121, 2), (600, 5), (1800, 15), (3600, 30), (7200, 60),
    (86400, 900), (7 * 86400, 7200), (400 * 86400, 604800),
])
def test_choose_interval(span_s: int, interval: int) -> None:
    assert reports.choose_interval(span_s * SEC) == interval


@given(st.integers(min_value=30, max_value=400 * 86400))
def test_chosen_interval_gives_30_to_120_buckets(span_s: int) -> None:
    seconds = reports.choose_interval(span_s * SEC)
    buckets = span_s // seconds + 1  # +1: the buckets are aligned, so one may be partial
    assert 30 <= buckets <= 121 or seconds == 1


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1), ("10s", 10), ("1min", 60), ("5m", 300), ("1h", 3600), ("2d", 172800),
    ("30", 30), (" 15 sec ", 15), ("1w", 604800), (45, 45),
])
def test_interval_seconds(text: str | int, seconds: int) -> None:
    assert reports.interval_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "fast", "0s", "1.5min", "-1h", "10 parsecs"])
def test_interval_seconds_rejects(text: str) -> None:
    with pytest.raises(reports.ReportError):
        reports.interval_seconds(text)


@pytest.mark.parametrize(("seconds", "label"), [
    (1, "1s"), (45, "45s"), (60, "1min"), (300, "5min"), (3600, "1h"), (5400, "90min"),
    (86400, "1d"),
])
def test_interval_label(seconds: int, label: str) -> None:
    assert reports.interval_label(seconds) == label


def test_timeline_buckets_are_aligned_and_complete() -> None:
    rows = [ede_row(1, ts=T0 + 5 * SEC, code=6), ede_row(2, ts=T0 + 25 * SEC, code=6),
            ede_row(3, ts=T0 + 29 * SEC, code=9)]
    scan = make_scan(rows, first=T0 + 3 * SEC, last=T0 + 29 * SEC)
    ts = reports.build_report(scan, interval="10s")["timeseries"]
    assert ts["interval"] == "10s" and ts["interval_seconds"] == 10
    assert ts["start"] == "2024-05-01T12:00:00Z" and ts["end"] == "2024-05-01T12:00:30Z"
    assert ts["buckets"] == 3
    assert [(s["code"], s["counts"]) for s in ts["series"]] == [(6, [1, 0, 1]), (9, [0, 0, 1])]
    assert len(ts["responses"]) == 3


def test_too_many_buckets_is_an_error_with_advice() -> None:
    rows = [ede_row(1, ts=T0, code=6), ede_row(2, ts=T0 + 30 * 86400 * SEC, code=6)]
    with pytest.raises(reports.ReportError, match="--interval"):
        reports.build_report(make_scan(rows), interval="1s")


def test_incident_found_with_start_end_peak_and_top_domains() -> None:
    report = reports.build_report(make_scan(outage_rows()), interval="10s")
    found = report["incidents"]
    assert len(found) == 1
    incident = found[0]
    assert incident["code"] == 7
    assert incident["start"] == "2024-05-01T12:05:00Z"
    assert incident["end"] == "2024-05-01T12:06:00Z"
    assert incident["count"] == 120
    assert incident["peak"] == 20 and incident["peak_per_minute"] == 120
    assert incident["baseline"] == 0
    assert incident["top_domains"][0] == {"qname": "www.shop.example.com", "count": 80}
    assert incident["top_zones"] == [{"zone": "shop.example.com", "count": 120}]
    assert incident["top_resolvers"] == [{"resolver": "2001:db8::53", "count": 120}]


@pytest.mark.parametrize(("counts", "runs"), [
    ([], []),
    ([0] * 50, []),
    ([2] * 50, []),                                     # steady: no incident
    ([0] * 20 + [30] + [0] * 20, [(20, 20)]),           # one spike
    ([0] * 20 + [9, 2, 7, 1, 0, 6, 8] + [0] * 20, [(20, 26)]),  # wobbly outage stays one
    ([0] * 10 + [9] + [0] * 10 + [9] + [0] * 10, [(10, 10), (21, 21)]),  # far apart: two
    ([0] * 20 + [4, 4, 4] + [0] * 20, []),              # below the minimum count
    ([10] * 40 + [31, 40] + [10] * 40, [(40, 41)]),     # above a non-zero baseline
    ([10] * 40 + [25] + [10] * 40, []),                 # < RATIO x baseline
])
def test_hot_runs(counts: list[int], runs: list[tuple[int, int]]) -> None:
    found = reports.hot_runs(np.asarray(counts, dtype=np.int64))
    assert [(a, b) for a, b, _, _ in found] == runs


@settings(max_examples=200)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=150))
def test_hot_runs_are_ordered_disjoint_and_hold_a_hot_bucket(counts: list[int]) -> None:
    array = np.asarray(counts, dtype=np.int64)
    found = reports.hot_runs(array)
    previous_end = -2
    for first, last, _baseline, threshold in found:
        assert 0 <= first <= last < len(counts)
        assert first > previous_end + 1
        assert array[first:last + 1].max() >= threshold >= reports.INCIDENT_MIN_COUNT
        previous_end = last


# --- filters -------------------------------------------------------------------------------

def test_filters_build_from_command_line_strings() -> None:
    f = filters.build(codes=["7", "dnssec-bogus", "DNSSEC Bogus"], domains=["Example.COM."],
                      resolvers=["192.0.2.0/24", "2001:db8::53"], since="2024-05-01",
                      until="2024-05-01T13:00:00+01:00")
    assert f.codes == (7, 6)
    assert f.domains == ("example.com",)
    assert [str(n) for n in f.resolvers] == ["192.0.2.0/24", "2001:db8::53/128"]
    assert f.since == datetime(2024, 5, 1, tzinfo=UTC)
    assert f.until == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert f.to_dict()["until"] == "2024-05-01T12:00:00Z"


@pytest.mark.parametrize(("kwargs", "option"), [
    ({"codes": ["70000"]}, "--code"),
    ({"codes": ["not-a-code"]}, "--code"),
    ({"domains": ["a..b"]}, "--domain"),
    ({"resolvers": ["300.1.2.3"]}, "--resolver"),
    ({"since": "yesterday"}, "--since"),
    ({"since": "2024-05-02", "until": "2024-05-01"}, "--until"),
])
def test_filters_reject_bad_values_naming_the_option(kwargs: dict, option: str) -> None:
    with pytest.raises(filters.FilterError, match=option):
        filters.build(**kwargs)


@pytest.mark.parametrize(("qname", "suffixes", "hit"), [
    ("www.example.com", ("example.com",), True),
    ("example.com", ("example.com",), True),
    ("WWW.EXAMPLE.COM", ("example.com",), True),
    ("badexample.com", ("example.com",), False),
    ("example.com.evil", ("example.com",), False),
    ("anything", (".",), True),
    (None, ("example.com",), False),
])
def test_domain_matches_labels_not_characters(qname: str | None, suffixes: tuple,
                                              hit: bool) -> None:
    assert filters.domain_matches(qname, suffixes) is hit


def test_apply_each_filter() -> None:
    rows = [
        ede_row(1, ts=T0, code=6, qname="www.example.com", resolver="192.0.2.53"),
        ede_row(2, ts=T0 + 60 * SEC, code=7, qname="a.example.org", resolver="192.0.2.54"),
        ede_row(3, ts=T0 + 120 * SEC, code=6, qname="badexample.com",
                resolver="2001:db8::53"),
    ]
    df = frame.build_ede(rows)

    def kept(**kw: object) -> list[int]:
        return filters.apply(df, filters.build(**kw))["frame_number"].tolist()

    assert kept() == [1, 2, 3]
    assert kept(codes=["6"]) == [1, 3]
    assert kept(domains=["example.com"]) == [1]
    assert kept(domains=["example.com", "example.org"]) == [1, 2]
    assert kept(resolvers=["192.0.2.0/24"]) == [1, 2]
    assert kept(resolvers=["2001:db8::/32"]) == [3]
    assert kept(since="2024-05-01T12:01:00Z") == [2, 3]
    assert kept(until="2024-05-01T12:01:00Z") == [1]
    assert kept(codes=["6"], resolvers=["192.0.2.53"]) == [1]


def test_apply_code_filter_to_response_rows() -> None:
    import pandas as pd

    df = pd.DataFrame({"ede_codes": pd.array(["6,22", "", "7", None], dtype="string"),
                       "qname": pd.array(["a", "b", "c", "d"], dtype="string")})
    out = filters.apply(df, filters.build(codes=["22", "7"]))
    assert out["qname"].tolist() == ["a", "c"]


def test_filtered_report_recounts_from_the_rows() -> None:
    scan = make_scan(outage_rows())
    report = reports.build_report(scan, filters=filters.build(codes=["7"]))
    assert report["summary"]["filtered"] is True
    assert report["summary"]["ede_options"] == 120
    assert report["summary"]["responses_with_ede"] == 120
    assert [c["code"] for c in report["codes"]] == [7]
    assert report["filters"]["codes"] == [7]
    assert report["summary"]["dns_responses"] == scan.dns_responses  # capture-wide


def test_time_window_narrows_the_time_series() -> None:
    scan = make_scan(outage_rows())
    window = filters.build(since="2024-05-01T12:04:00Z", until="2024-05-01T12:07:00Z")
    report = reports.build_report(scan, filters=window, interval="1min")
    assert report["timeseries"]["start"] == "2024-05-01T12:04:00Z"
    assert report["timeseries"]["buckets"] == 3
    assert report["summary"]["ede_options"] == 180 + 120


# --- scale ---------------------------------------------------------------------------------

def test_200k_rows_report_in_seconds() -> None:
    rng = np.random.default_rng(7)
    n = 200_000
    code_pool = np.array([3, 6, 7, 9, 15, 22, 23])
    texts = [None, "for key shop.example.com.", "at delegation lame.example.net.",
             "no SEP matching the DS found for dnssec-failed.org."]
    codes = code_pool[rng.integers(0, len(code_pool), n)]
    hosts = rng.integers(0, 5000, n)
    zones = rng.integers(0, 400, n)
    which_text = rng.integers(0, len(texts), n)
    rows = [ede_row(i + 1, ts=T0 + i * 10_000_000, code=int(codes[i]),
                    qname=f"h{hosts[i]}.z{zones[i]}.example.com", text=texts[which_text[i]],
                    resolver=f"192.0.2.{i % 40}") for i in range(n)]
    scan = make_scan(rows, responses=n)
    start = time.perf_counter()
    report = reports.build_report(scan)
    elapsed = time.perf_counter() - start
    assert report["summary"]["ede_options"] == n
    assert sum(c["count"] for c in report["codes"]) == n
    assert elapsed < 10, f"build_report took {elapsed:.1f}s on {n} rows"


def test_rows_without_a_timestamp_and_a_span_before_1970() -> None:
    # the frame stores timestamps it cannot represent (before 1970) as NaT; the scan's
    # span can still start before 1970 (pcapng if_tsoffset)
    rows = [ede_row(1, ts=None, code=6), ede_row(2, ts=T0, code=6),
            ede_row(3, ts=None, code=9)]
    scan = make_scan([r for r in rows if r[2] is not None], first=-5 * SEC, last=T0)
    scan.ede = frame.build_ede(rows)
    report = reports.build_report(scan)
    json.dumps(report, allow_nan=False)
    codes = {c["code"]: c for c in report["codes"]}
    assert codes[6]["count"] == 2 and codes[6]["first_seen"] == "2024-05-01T12:00:00Z"
    assert codes[9]["count"] == 1 and codes[9]["first_seen"] is None
    assert report["summary"]["first_seen"] == "1969-12-31T23:59:55Z"
    assert sum(s["total"] for s in report["timeseries"]["series"]) == 1


@pytest.mark.parametrize("window", [{"since": "3000-01-01"}, {"until": "1000-01-01"},
                                    {"since": "0001-01-01", "until": "9999-12-31"}])
def test_time_filters_outside_the_nanosecond_range(window: dict) -> None:
    scan = make_scan(outage_rows(60, 10))
    report = reports.build_report(scan, filters=filters.build(**window))
    json.dumps(report, allow_nan=False)
    assert report["summary"]["ede_options"] in (0, 70)


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_iso_round_trips_to_the_microsecond(ns: int) -> None:
    text = reports.iso(ns)
    assert text is not None and text.endswith("Z")
    assert reports.parse_iso_ns(text) == ns // 1000 * 1000


def test_iso() -> None:
    assert reports.iso(None) is None
    assert reports.iso(T0) == "2024-05-01T12:00:00Z"
    assert reports.iso(T0 + 1500) == "2024-05-01T12:00:00.000001Z"
    assert reports.iso(T0 + 250_000_000) == "2024-05-01T12:00:00.250000Z"
    assert reports.parse_iso_ns("2024-05-01T12:00:00.250000Z") == T0 + 250_000_000
    assert not math.isnan(reports.parse_iso_ns("2024-05-01T12:00:00Z"))


# --- advice that reads the traffic (issue 14) --------------------------------------------------

def _refusals(code: int, flags: int, clients: list[str]) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.packet import Raw

    from tests.captures import frame, pcap, records, response

    frames = [frame(IP(src="198.51.100.53", dst=client) / UDP(sport=53, dport=40000)
                    / Raw(response(f"n{i}.example.net", dns_id=i, rcode=5, flags=flags,
                                   edes=((code, ""),))))
              for i, client in enumerate(clients)]
    return pcap(records(frames))


def test_code_20_for_queries_without_rd_says_the_client_did_not_ask_to_recurse() -> None:
    from tests.captures import QR, RA, RD, scan_bytes

    no_rd = reports.build_report(scan_bytes(_refusals(20, QR | RA, ["192.0.2.1"] * 8)))
    (entry,) = no_rd["codes"]
    assert entry["traffic_advice"] and entry["traffic_advice"][0].startswith(
        "All were answers to queries sent with RD=0")
    mixed = reports.build_report(scan_bytes(_refusals(20, QR | RA, ["192.0.2.1"] * 3),
                                            _refusals(20, QR | RD | RA, ["192.0.2.1"] * 5)))
    assert mixed["codes"][0]["traffic_advice"][0].startswith(
        "3 of 8 were answers to queries sent with RD=0")
    with_rd = reports.build_report(scan_bytes(_refusals(20, QR | RD | RA, ["192.0.2.1"] * 8)))
    assert with_rd["codes"][0]["traffic_advice"] == []


def test_code_18_names_the_refused_clients_per_resolver() -> None:
    from tests.captures import QR, RA, RD, scan_bytes

    clients = ["192.0.2.77"] * 40 + ["192.0.2.5", "192.0.2.6", "192.0.2.7"] * 2
    report = reports.build_report(scan_bytes(_refusals(18, QR | RD | RA, clients)))
    (entry,) = report["codes"]
    assert entry["top_clients"] == [{"resolver": "198.51.100.53", "count": 46, "clients": [
        {"client": "192.0.2.77", "count": 40}, {"client": "192.0.2.5", "count": 2},
        {"client": "192.0.2.6", "count": 2}]}]
    assert entry["traffic_advice"] == [
        "40 of the 46 at 198.51.100.53 went to one client, 192.0.2.77: check whether the "
        "resolver's ACL should allow it, or why it queries a resolver that refuses it."]
    spread = reports.build_report(scan_bytes(_refusals(18, QR | RD | RA, clients[40:])))
    assert spread["codes"][0]["traffic_advice"] == [
        "198.51.100.53 refused 6: most to 192.0.2.5 (2), 192.0.2.6 (2), 192.0.2.7 (2)."]


# --- resolver identity (issue 14) --------------------------------------------------------------

def _bare(resolver: str, names: list[str], *, start: int = 0, code: int = 9,
          udp_size: int = 1232, edes: tuple = ()) -> list[bytes]:
    """Return SERVFAIL responses from ``resolver``, each with one bare EDE ``code`` (or the
    ``edes`` given), advertising ``udp_size``."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.packet import Raw

    from tests.captures import frame, response

    ip = IPv6(src=resolver, dst="2001:db8:1::10") if ":" in resolver else IP(
        src=resolver, dst="192.0.2.10")
    return [frame(ip / UDP(sport=53, dport=40000) / Raw(response(
        name, dns_id=start + i, rcode=2, edes=edes or ((code, ""),), udp_size=udp_size)))
        for i, name in enumerate(names)]


def _software(*frames: list[bytes]) -> dict[str, dict]:
    from tests.captures import pcap, records, scan_bytes

    report = reports.build_report(scan_bytes(pcap(records([f for fs in frames for f in fs]))))
    return {r["resolver"]: r for r in report["resolvers"]}


def test_resolvers_without_text_are_fingerprinted_from_behaviour_and_paired() -> None:
    names = [f"h{i}.shop.example.com" for i in range(12)]
    # PowerDNS Recursor: bare DNSSEC codes, and 512 in every answer's OPT
    pair = [f for p in zip(_bare("198.51.100.53", names, udp_size=512),
                           _bare("2001:db8::53", names, udp_size=512), strict=True) for f in p]
    by = _software(pair, _bare("2001:db8::99", [f"x{i}.other.example" for i in range(12)],
                               udp_size=512),
                   _bare("203.0.113.9", names[:6], code=18))  # no DNSSEC code, no text
    v4, v6, other = by["198.51.100.53"], by["2001:db8::53"], by["2001:db8::99"]
    assert v4["software"] is None and v4["software_basis"] == "behaviour"
    assert v4["software_candidates"] == ["powerdns"]
    assert v4["software_confidence"] == "medium"  # two behaviours agree on one
    assert v4["evidence"] == [
        "12 DNSSEC EDEs and no EXTRA-TEXT at all: PowerDNS Recursor sends them without text, "
        "and so does Unbound below val-log-level 2; BIND and Knot Resolver would word them; "
        "the responses of all its 12 EDEs advertise an EDNS UDP size of 512, the value "
        "PowerDNS Recursor always writes; Unbound, BIND and Knot Resolver advertise their "
        "buffer size, 1232 by default"]
    assert v4["same_instance"] == [{"resolver": "2001:db8::53", "shared": 12, "of": 12,
                                   "basis": "behaviour"}]
    assert v6["same_instance"] == [{"resolver": "198.51.100.53", "shared": 12, "of": 12,
                                   "basis": "behaviour"}]
    assert other["same_instance"] == []  # other names: not the same instance
    unknown = by["203.0.113.9"]
    assert unknown["software_basis"] == "unknown" and unknown["software_confidence"] is None
    assert unknown["evidence"][0].startswith("unknown: its EDEs carry no EXTRA-TEXT")
    assert unknown["same_instance"] == []  # both IPv4: not a dual-stack pair


def test_bare_dnssec_at_1232_is_unbound_not_powerdns() -> None:
    by = _software(_bare("198.51.100.7", [f"n{i}.example.com" for i in range(5)], code=6))
    entry = by["198.51.100.7"]
    assert (entry["software_basis"], entry["software_confidence"],
            entry["software_candidates"]) == ("behaviour", "low", ["unbound"])
    assert "never the 512 PowerDNS Recursor always writes" in entry["evidence"][0]


@pytest.mark.parametrize(("frames", "candidates", "confidence"), [
    # 512 alone points to PowerDNS Recursor; a non-DNSSEC bare code says nothing more
    (lambda: _bare("192.0.2.8", ["a.example"] * 3, code=3, udp_size=512), ["powerdns"], "low"),
    # bare DNSSEC at 4096 (an older Unbound's default): not PowerDNS
    (lambda: _bare("192.0.2.8", ["a.example"] * 3, udp_size=4096), ["unbound"], "low"),
    # bare code 33 (Negative Trust Anchor) is not in Unbound's table, and 1232 is not
    # PowerDNS (1.1.1.1 sends 33 bare): it fits none of the four, so unknown
    (lambda: _bare("192.0.2.8", ["a.example"] * 3, code=33), [], None),
    # two options in one answer: not PowerDNS, whatever the size says
    (lambda: _bare("192.0.2.8", ["a.example"] * 3, udp_size=512, edes=((9, ""), (22, ""))),
     [], None),
    # mixed sizes at one address: the size is not used
    (lambda: _bare("192.0.2.8", ["a.example"] * 2, udp_size=512)
     + _bare("192.0.2.8", ["b.example"] * 2, start=9), ["powerdns", "unbound"], "low"),
])
def test_software_from_behaviour(frames, candidates: list[str], confidence: str | None
                                 ) -> None:
    entry = _software(frames())["192.0.2.8"]
    assert entry["software_candidates"] == candidates
    assert entry["software_confidence"] == confidence
    assert entry["software_basis"] == ("behaviour" if candidates else "unknown")
    assert entry["software"] is None and entry["evidence"]


def test_behaviour_evidence_names_what_rules_software_out() -> None:
    frames = _bare("192.0.2.8", ["a.example"] * 2, edes=((6, ""), (6, ""), (33, "")))
    (evidence,) = _software(frames)["192.0.2.8"]["evidence"]
    assert evidence.startswith("unknown: its behaviour fits none of Unbound, BIND, Knot "
                               "Resolver and PowerDNS Recursor")
    assert "6 EDEs came in responses with more than one EDE option" in evidence
    assert "2 responses carry one code twice: BIND sends each code once" in evidence
    assert "code 33 is not in Unbound's code table" in evidence


def test_since_counts_responses_from_its_own_second_on(tmp_path) -> None:
    """A response half a second before --since is not counted in the window's DNS
    responses (the per-second bucket ending at --since lies wholly before it); one at or
    after it is."""
    from captures import Rec, pcap, response, udp
    from captures import frame as link_frame

    import analyzer

    t = int(datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()) * 10**9
    recs = [Rec(t - 500_000_000, link_frame(udp(response(dns_id=1)))),
            Rec(t, link_frame(udp(response(dns_id=2)))),
            Rec(t + 1_500_000_000, link_frame(udp(response(dns_id=3))))]
    path = tmp_path / "edge.pcap"
    path.write_bytes(pcap(recs))
    scan = analyzer.scan([path])
    assert scan.dns_responses == 3

    def responses(**kw: object) -> int:
        return reports.build_report(scan, filters=filters.build(**kw))["summary"]["dns_responses"]

    assert responses(since="2024-05-01T12:00:00Z") == 2
    assert responses(since="2024-05-01T11:59:59.6Z") == 3  # its bucket reaches past since
    assert responses(until="2024-05-01T12:00:00Z") == 1
