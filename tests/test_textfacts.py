"""Tests for analyzer.textfacts: facts from real EXTRA-TEXT wordings, and robustness."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.textfacts import MAX_TEXT, TextFacts, fingerprint, parse_extra_text

# (EXTRA-TEXT, INFO-CODE, expected facts). Wordings come from the reference notes, section 4
# "EXTRA-TEXT wording by implementation", and the 1.1.1.1 documentation page.
WORDINGS: list[tuple[str, int | None, dict[str, Any]]] = [
    # 1.1.1.1 / Cloudflare
    ("failed to verify example.com. A: unsupported key size, DNSKEY example.com., id = 12345", 1,
     {"zone": "example.com", "qname": "example.com", "rrtype": "A", "key_tag": 12345,
      "reason": "unsupported-key-size",
      "vendor": "cloudflare"}),
    ("no supported DS digest type for example.com.", 2,
     {"zone": "example.com", "reason": "unsupported-digest", "vendor": "cloudflare"}),
    ("proof of non-existence of example.com. A", 6,
     {"qname": "example.com", "rrtype": "A", "reason": "bad-denial-proof", "vendor": "cloudflare"}),
    ("found duplicate CNAME records for example.com. (1 duplicate RRs)", 6,
     {"qname": "example.com", "rrtype": "CNAME", "reason": "duplicate-records",
      "vendor": "cloudflare"}),
    ("for DNSKEY example.com., id = 12345: RRSIG example.com., expiration = 123456", 7,
     {"zone": "example.com", "key_tag": 12345, "expiration": 123456,
      "reason": "signature-expired", "vendor": "cloudflare"}),
    ("for DNSKEY example.com., id = 12345: RRSIG www.example.com., inception = 12345", 8,
     {"zone": "example.com", "key_tag": 12345, "inception": 12345,
      "reason": "signature-not-yet-valid", "vendor": "cloudflare"}),
    ("no SEP matching the DS found for dnssec-failed.org.", 9,
     {"zone": "dnssec-failed.org", "reason": "no-sep-matching-ds", "vendor": "cloudflare"}),
    ("for DNSKEY example.com., id = 12345", 10,
     {"zone": "example.com", "key_tag": 12345, "reason": "no-signatures", "vendor": "cloudflare"}),
    ("for DNSKEY example.com., id = 12345", 11,
     {"zone": "example.com", "key_tag": 12345, "reason": "no-zone-key-bit",
      "vendor": "cloudflare"}),
    ("failed to verify an insecure referral proof for example.com", 12,
     {"zone": "example.com", "reason": "nsec-missing", "vendor": "cloudflare"}),
    ("at delegation example.com.", 22,
     {"zone": "example.com", "reason": "no-reachable-authority", "vendor": "cloudflare"}),
    ("time limit exceeded", 22, {"reason": "time-limit-exceeded", "vendor": "cloudflare"}),
    ("1.1.1.1:53 rcode=SERVFAIL for example.com. A", 23,
     {"upstream_ip": "1.1.1.1", "upstream_port": 53, "upstream_rcode": "SERVFAIL",
      "upstream_timeout": False, "qname": "example.com", "rrtype": "A",
      "reason": "upstream-rcode", "vendor": "cloudflare"}),
    ("72.65.106.158:53 timed out for x.example.", 23,
     {"upstream_ip": "72.65.106.158", "upstream_port": 53, "upstream_timeout": True,
      "qname": "x.example", "reason": "upstream-timeout", "vendor": "cloudflare"}),
    # a qname cut short by the resolver ("inv.kyossystems.…"): the name is dropped, not guessed
    ("72.65.106.158:53 timed out for inv.kyossystems.\u2026", 23,
     {"upstream_ip": "72.65.106.158", "upstream_port": 53, "upstream_timeout": True,
      "reason": "upstream-timeout", "vendor": "cloudflare"}),
    # IPv6 upstreams: bracketed, and bare with the port after the last colon
    ("[2001:db8::1]:53 rcode=REFUSED for example.com. AAAA", 23,
     {"upstream_ip": "2001:db8::1", "upstream_port": 53, "upstream_rcode": "REFUSED",
      "upstream_timeout": False, "qname": "example.com", "rrtype": "AAAA",
      "reason": "upstream-rcode", "vendor": "cloudflare"}),
    ("2001:db8::1:53 timed out for example.com. AAAA", 23,
     {"upstream_ip": "2001:db8::1", "upstream_port": 53, "upstream_timeout": True,
      "qname": "example.com", "rrtype": "AAAA", "reason": "upstream-timeout",
      "vendor": "cloudflare"}),
    ("Invalid Query Type", 30, {"reason": "invalid-query-type"}),
    # Unbound
    ("for key expired.test.", 7, {"zone": "expired.test", "vendor": "unbound"}),
    ("validation failure <www.example.com. A IN>: signature expired from 192.0.2.1 for key "
     "example.com. while building chain of trust", 7,
     {"zone": "example.com", "qname": "www.example.com", "rrtype": "A",
      "upstream_ip": "192.0.2.1",
      "reason": "signature-expired", "vendor": "unbound"}),
    ("validation failure <dnssec-failed.org. A IN>: No DNSKEY record from 1.2.3.4 for key "
     "dnssec-failed.org. while building chain of trust", 9,
     {"zone": "dnssec-failed.org", "rrtype": "A", "upstream_ip": "1.2.3.4",
      "reason": "no-dnskey", "vendor": "unbound"}),
    ("validation failure <a.example. AAAA IN>: signature before inception date from cache for "
     "<a.example. AAAA IN>", 8,
     {"qname": "a.example", "rrtype": "AAAA", "reason": "signature-not-yet-valid",
      "vendor": "unbound"}),
    ("validation failure <b.example. A IN>: DS hash mismatches key from 2001:db8::53 for key "
     "b.example. while building chain of trust", 9,
     {"zone": "b.example", "rrtype": "A", "upstream_ip": "2001:db8::53",
      "reason": "no-sep-matching-ds", "vendor": "unbound"}),
    # a DS owner or a query name is not a zone (issue 14): only "for key" or a DNSKEY owner is
    ("validation failure <www.shop.example.com. A IN>: no signatures from 192.0.2.1 for "
     "<shop.example.com. DS IN>", 6,
     {"qname": "shop.example.com", "rrtype": "A", "upstream_ip": "192.0.2.1",
      "reason": "no-signatures", "vendor": "unbound"}),
    ("validation failure <www.shop.example.com. A IN>: no signatures from 192.0.2.1 for "
     "<shop.example.com. DNSKEY IN>", 10,
     {"zone": "shop.example.com", "rrtype": "A", "upstream_ip": "192.0.2.1",
      "reason": "no-signatures", "vendor": "unbound"}),
    ("validation failure <www.shop.example.com. A IN>: signature expired", 7,
     {"qname": "www.shop.example.com", "rrtype": "A", "reason": "signature-expired",
      "vendor": "unbound"}),
    ("upstream server timeout", 22,
     {"reason": "upstream-timeout", "upstream_timeout": True, "vendor": "unbound"}),
    ("exceeded ratelimit for zone example.com.", 0,
     {"zone": "example.com", "reason": "rate-limited", "vendor": "unbound"}),
    ("exceeded the maximum nameserver nxdomains", 22,
     {"reason": "nameserver-nxdomains", "vendor": "unbound"}),
    ("Too many queries queued up and waiting from the IP", 0,
     {"reason": "queue-full", "vendor": "unbound"}),
    ("DNS Cookie needed for UDP replies", 0, {"reason": "cookie-required", "vendor": "unbound"}),
    # BIND 9
    ("DNSKEY found but not matching DS example.net/DNSKEY", 9,
     {"zone": "example.net", "rrtype": "DNSKEY", "reason": "no-sep-matching-ds",
      "vendor": "bind"}),
    ("no DNSKEY found example.net/A", 9,
     {"qname": "example.net", "rrtype": "A", "reason": "no-dnskey", "vendor": "bind"}),
    ("example.net/A", 7,
     {"qname": "example.net", "rrtype": "A", "reason": "signature-expired", "vendor": "bind"}),
    ("RSASHA1 example.net/DNSKEY", 1,
     {"zone": "example.net", "rrtype": "DNSKEY", "reason": "unsupported-algorithm",
      "vendor": "bind"}),
    ("SHA-1 example.net/DS", 2,
     {"qname": "example.net", "rrtype": "DS", "reason": "unsupported-digest", "vendor": "bind"}),
    # 64-byte cut (DNS_EDE_EXTRATEXT_LEN) took the /TYPE tail: reason kept, name dropped
    ("DNSKEY found but not matching DS a-very-long-label.subdomain.exam", 9,
     {"reason": "no-sep-matching-ds", "vendor": "bind"}),
    ("recursion disabled", 20, {"reason": "recursion-disabled", "vendor": "bind"}),
    ("zone expired", 24, {"reason": "zone-expired", "vendor": "bind"}),
    ("Negative Trust Anchor applied (RFC 7646)", 33,
     {"reason": "negative-trust-anchor", "vendor": "bind"}),
    # Knot Resolver
    ("OLX2: delegation example.org", 22,
     {"zone": "example.org", "source_tag": "OLX2", "reason": "no-reachable-authority",
      "vendor": "knot-resolver"}),
    ("NMJZ: no matching SEP", 9,
     {"source_tag": "NMJZ", "reason": "no-sep-matching-ds", "vendor": "knot-resolver"}),
    ("YFJ2", 7, {"source_tag": "YFJ2", "reason": "signature-expired", "vendor": "knot-resolver"}),
    ("CR36", 15, {"source_tag": "CR36", "reason": "blocked", "vendor": "knot-resolver"}),
    ("BHD4: from DNS64", 29, {"source_tag": "BHD4", "reason": "dns64", "vendor": "knot-resolver"}),
    # an unlisted tag that looks like Knot's random base32 still names the vendor
    ("Q7ZZ", 6, {"source_tag": "Q7ZZ", "vendor": "knot-resolver"}),
    # PowerDNS Recursor
    ("Result synthesized from aggressive NSEC cache (RFC8198)", 29,
     {"reason": "aggressive-nsec", "vendor": "powerdns"}),
    ("Result from negative cache", 29, {"reason": "negative-cache", "vendor": "powerdns"}),
    ("Timeout waiting for answer(s)", 22,
     {"reason": "upstream-timeout", "upstream_timeout": True, "vendor": "powerdns"}),
    ("delegation timeout4.com", 22,
     {"zone": "timeout4.com", "reason": "no-reachable-authority", "vendor": "powerdns"}),
    # Technitium
    ("source=blocked-zone; domain=evil.com", 15,
     {"zone": "evil.com", "reason": "blocked", "vendor": "technitium"}),
    ("No response from name servers for www.example.com. A IN", 22,
     {"qname": "www.example.com", "rrtype": "A", "upstream_timeout": True,
      "reason": "no-reachable-authority", "vendor": "technitium"}),
    # trailing NUL (RFC 8914 §2) and upper-case names are normalised
    ("at delegation EXAMPLE.Com.\x00", 22,
     {"zone": "example.com", "reason": "no-reachable-authority", "vendor": "cloudflare"}),
    ("at delegation .", 22,
     {"zone": ".", "reason": "no-reachable-authority", "vendor": "cloudflare"}),
]


@pytest.mark.parametrize(("text", "code", "expected"), WORDINGS, ids=[w[0][:40] for w in WORDINGS])
def test_known_wordings(text: str, code: int | None, expected: dict[str, Any]) -> None:
    assert parse_extra_text(text, code) == TextFacts(**expected)


def test_structured_dns_error_json() -> None:
    sde = {"c": ["mailto:abuse@example.net"], "j": "malware", "s": 6, "o": "Example DNS",
           "l": "en"}
    facts = parse_extra_text(json.dumps(sde, separators=(",", ":")), 17)
    assert facts == TextFacts(sde=sde, reason="filtered", vendor="structured-dns-error")
    hash(facts)  # still usable as a dict key despite the dict field


@pytest.mark.parametrize("text", ['{"x": 1}', '{"s": "five"}', "{not json}", '{"c": [1]}'])
def test_json_that_is_not_structured_dns_error(text: str) -> None:
    assert parse_extra_text(text, 15) == TextFacts()


@pytest.mark.parametrize(
    "text",
    [
        None, "", "\x00", "   ",
        "\U0001f6a7 Blocked \U0001f6a7",  # ede.dn5.dk testbed via 1.1.1.1: decorative, no facts
        "DENY", "NOTE: maintenance tonight",  # four capitals that are words, not Knot tags
        "and/or", "input/output error",  # a slash that is not BIND's name/TYPE
        "for DNSKEY exa mple.com., id = 1",
        "source=x",  # key=value without both Technitium keys is someone else's text
        "something went wrong",
    ],
)
def test_unknown_wording_gives_no_facts(text: str | None) -> None:
    assert parse_extra_text(text) == TextFacts()


def test_bad_values_are_dropped_not_guessed() -> None:
    facts = parse_extra_text("999.1.1.1:99999 rcode=SERVFAIL for -_-. A", 23)
    assert facts.upstream_ip is None and facts.upstream_port is None
    assert facts.upstream_rcode == "SERVFAIL" and facts.qname == "-_-" and facts.zone is None
    # known wording, but an empty label is not a DNS name
    assert parse_extra_text("at delegation ex..ample.com.", 22) == TextFacts(
        reason="no-reachable-authority", vendor="cloudflare")


def test_code_does_not_change_what_the_text_states() -> None:
    text = "for DNSKEY example.com., id = 1: RRSIG example.com., expiration = 9"
    assert parse_extra_text(text, None).reason == "signature-expired"
    assert parse_extra_text("for DNSKEY example.com., id = 1", None).reason is None


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=2 * MAX_TEXT), st.none() | st.integers(0, 65535))
def test_never_raises(text: str, code: int | None) -> None:
    assert isinstance(parse_extra_text(text, code), TextFacts)


# Pieces of real wordings, so hypothesis reaches deep into every pattern.
_PIECES = st.sampled_from([
    "for ", "key ", "DNSKEY ", "example.com.", ", id = ", "12345", ": RRSIG ", "expiration = ",
    "validation failure <", "> ", ":", "[", "]", "2001:db8::1", "1.1.1.1", " rcode=", "timed out",
    "/", "A", "IN", "OLX2", "{", "}", '"c":', "source=", ";", "domain=", "\x00", " ", "\u2026",
    "delegation ", "from ", "signature expired", "exceeded ratelimit for zone",
])


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=40).map("".join), st.none() | st.integers(0, 65535))
def test_never_raises_on_near_misses(text: str, code: int | None) -> None:
    zone = parse_extra_text(text, code).zone
    if zone is not None and zone != ".":
        assert zone == zone.lower() and not zone.endswith(".") and ".." not in zone


@pytest.mark.parametrize(
    "text",
    [
        "a" * 1_000_000,
        "for key " * 500,
        "validation failure <" + "a" * 5000,
        "1" * 5000 + ":53",
        "a=b; " * 1000,
        "DNSKEY found but not matching DS " + "a " * 2000,
        "for DNSKEY " + "a," * 2000,
        "2001:" * 2000,
        "exceeded " * 2000,
    ],
    ids=lambda t: t[:12],
)
def test_long_or_adversarial_input_is_fast(text: str) -> None:
    start = time.perf_counter()
    for _ in range(10):
        parse_extra_text(text, 22)
    # ~20 us per call when written; 5 ms per call leaves room for slow CI machines.
    assert (time.perf_counter() - start) / 10 < 0.005


def test_fingerprint_picks_the_most_frequent_software() -> None:
    texts = ["OLX2: delegation example.org"] * 3 + ["YFJ2", "at delegation example.com.", "",
                                                     "no idea"]
    assert fingerprint(texts) == ("knot-resolver", ["OLX2: delegation example.org", "YFJ2"])


def test_fingerprint_ties_go_to_the_first_seen() -> None:
    texts = ["recursion disabled", "Result from negative cache"]
    assert fingerprint(texts) == ("bind", ["recursion disabled"])


def test_fingerprint_without_evidence() -> None:
    assert fingerprint([]) == (None, [])
    assert fingerprint(["Invalid Query Type", '{"j":"policy"}', "hello"]) == (None, [])


def test_fingerprint_caps_evidence() -> None:
    texts = [f"at delegation z{i}.example." for i in range(20)]
    vendor, evidence = fingerprint(texts)
    assert vendor == "cloudflare" and evidence == texts[:5]


# --- RRSIG times and the fact_* columns ------------------------------------------------------

@pytest.mark.parametrize(("value", "seconds"), [
    (1710234718, 1710234718),              # epoch seconds
    ("1710234718", 1710234718),
    ("20240312091158", 1710234718),        # YYYYMMDDHHmmSS, UTC (RFC 4034 §3.2)
    ("20241332000000", None),              # 14 digits but no date, and past 32 bits
    (2**32, None),                          # past the 32-bit field
    ("12ab", None),
    (None, None),
])
def test_rrsig_time_reads_both_presentation_forms(value: Any, seconds: int | None) -> None:
    from analyzer.textfacts import rrsig_time

    assert rrsig_time(value) == seconds


def _frame(rows: list[tuple[str | None, int]]) -> Any:
    import pandas as pd

    return pd.DataFrame({"extra_text": pd.array([t for t, _ in rows], dtype="string"),
                         "ede_code": pd.array([c for _, c in rows], dtype="UInt16"),
                         "kept": range(len(rows))})


def test_add_fact_columns_parses_each_pair_once_and_keeps_the_frame() -> None:
    from unittest import mock

    import pandas as pd

    from analyzer import textfacts

    text7 = "for DNSKEY example.com., id = 24160: RRSIG example.com., expiration = 20240312091158"
    text23 = "[2001:db8::1]:53 rcode=REFUSED for example.com. AAAA"
    df = _frame([(text7, 7), (text7, 7), (text23, 23), ("", 3), (None, 3), (text7, 7),
                 ("for DNSKEY example.com., id = 1", 10), ("for DNSKEY example.com., id = 1", 11)])
    with mock.patch.object(textfacts, "parse_extra_text",
                           wraps=textfacts.parse_extra_text) as parse:
        out = textfacts.add_fact_columns(df)
    assert parse.call_count == 6  # distinct (text, code) pairs, missing text included
    assert list(out.columns) == ["extra_text", "ede_code", "kept", *textfacts.FACT_COLUMNS]
    assert list(df.columns) == ["extra_text", "ede_code", "kept"]  # the input is untouched
    assert {k: str(v) for k, v in out.dtypes.items() if k.startswith("fact_")} == {
        k: "string" if v == "string" else v for k, v in textfacts.FACT_DTYPES.items()}
    first = out.iloc[0]
    assert (first.fact_zone, first.fact_key_tag, first.fact_reason, first.fact_vendor) == (
        "example.com", 24160, "signature-expired", "cloudflare")
    assert first.fact_expiration == pd.Timestamp("2024-03-12T09:11:58Z")
    assert pd.isna(first.fact_inception) and pd.isna(first.fact_upstream_ip)
    up = out.iloc[2]
    assert (up.fact_upstream_ip, up.fact_upstream_port, up.fact_upstream_rcode,
            bool(up.fact_upstream_timeout), up.fact_rrtype) == (
        "2001:db8::1", 53, "REFUSED", False, "AAAA")
    assert out.iloc[3][list(textfacts.FACT_COLUMNS)].isna().all()
    assert out.iloc[4][list(textfacts.FACT_COLUMNS)].isna().all()
    # the code picks the reason where one wording serves two codes
    assert list(out.fact_reason[6:]) == ["no-signatures", "no-zone-key-bit"]


def test_add_fact_columns_on_an_empty_frame_keeps_the_schema() -> None:
    from analyzer import frame, textfacts

    out = textfacts.add_fact_columns(frame.empty_ede())
    assert out.empty
    assert list(out.columns) == [*frame.EDE_COLUMNS, *textfacts.FACT_COLUMNS]


def test_add_fact_columns_is_public() -> None:
    import analyzer

    assert "add_fact_columns" in analyzer.__all__
    from analyzer import textfacts

    assert analyzer.add_fact_columns is textfacts.add_fact_columns
