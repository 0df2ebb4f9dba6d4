"""Tests for analyzer.message: the DNS header, question, OPT record and EDE options."""

from __future__ import annotations

import pytest
from captures import (
    QR,
    RA,
    RD,
    a_rr,
    ede_option,
    edns_option,
    frame,
    message,
    opt_rr,
    pcap,
    question,
    records,
    response,
    scan_checked,
    udp,
)
from scapy.layers.dns import DNS, DNSQR, DNSRROPT, EDNS0ExtendedDNSError

from analyzer.errors import EdePcapError, Malformed
from analyzer.message import EdeOption, may_hold_ede, parse_response, read_name

# A SERVFAIL from a validating resolver, written out byte by byte.
SERVFAIL_WITH_EDE = (
    # id 0xbeef; QR RD RA, RCODE 2 (SERVFAIL); QD 1, AN 0, NS 0, AR 1
    b"\xbe\xef\x81\x82\x00\x01\x00\x00\x00\x00\x00\x01"
    # dnssec-failed.org A IN
    b"\x0ddnssec-failed\x03org\x00\x00\x01\x00\x01"
    # OPT: root owner, type 41, UDP size 1232, extended RCODE 0, version 0, DO, RDLEN 34
    b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x22"
    # EDE: option 15, length 30, INFO-CODE 9 (DNSKEY Missing), "no SEP matching the DS found"
    b"\x00\x0f\x00\x1e\x00\x09no SEP matching the DS found"
)


def test_parse_a_servfail_with_ede() -> None:
    r = parse_response(SERVFAIL_WITH_EDE)
    assert (r.dns_id, r.flags, r.rcode) == (0xBEEF, 0x8182, 2)
    assert (r.qname, r.qtype, r.qclass) == ("dnssec-failed.org", 1, 1)
    assert r.question == b"\x0ddnssec-failed\x03org\x00\x00\x01\x00\x01"
    assert (r.has_opt, r.edns_udp_size, r.do) == (True, 1232, True)
    assert r.edes == [EdeOption(9, "no SEP matching the DS found", True)]
    assert (r.problems, r.report_channel) == ([], None)
    assert may_hold_ede(SERVFAIL_WITH_EDE)


def test_response_without_opt() -> None:
    # id 1, QR AA, NXDOMAIN; example.com A IN
    msg = b"\x00\x01\x84\x03\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
    r = parse_response(msg)
    assert (r.rcode, r.has_opt, r.edns_udp_size, r.do, r.edes) == (3, False, None, None, [])
    assert not may_hold_ede(msg)


def test_extended_rcode_combines_opt_and_header() -> None:
    # Header RCODE 0 with OPT extended RCODE 1: 16 (BADVERS, RFC 6891 §6.1.3).
    r = parse_response(message(qd=[question()], ar=[opt_rr(ede_option(0), ext_rcode=1)]))
    assert r.rcode == 16


def test_records_before_the_opt_are_skipped_by_their_length() -> None:
    # An answer, an RRSIG (type 46) with binary RDATA, glue A, then the OPT.
    rrsig = b"\xc0\x0c\x00\x2e\x00\x01\x00\x00\x0e\x10\x00\x06\x00\x01\x08\x02\xff\x00"
    msg = message(qd=[question("signed.example", 1)], an=[a_rr(), rrsig],
                  ns=[a_rr("192.0.2.2")], ar=[a_rr("192.0.2.3"), opt_rr(ede_option(3, "st"))])
    r = parse_response(msg)
    assert r.edes == [EdeOption(3, "st", True)]
    assert r.qname == "signed.example"


@pytest.mark.parametrize("wire, name", [
    (b"\x00", "."),                                          # the root
    (b"\x07ExAmPlE\x03CoM\x00", "ExAmPlE.CoM"),              # 0x20 mixed case kept
    (b"\x03a.b\x07example\x00", "a\\.b.example"),            # a dot inside a label
    (b"\x02\xc3\xa9\x07example\x00", "\\195\\169.example"),  # non-ASCII bytes
    (b"\x03a b\x01@\x00", "a\\032b.\\@"),                    # space and a special
    (b"\x01*\x04_tcp\x00", "*._tcp"),
])
def test_question_names_in_presentation_format(wire: bytes, name: str) -> None:
    msg = message(qd=[wire + b"\x00\x10\x00\x01"])
    r = parse_response(msg)
    assert (r.qname, r.qtype) == (name, 16)
    assert r.question == wire + b"\x00\x10\x00\x01"


def test_read_name_follows_backward_pointers() -> None:
    # example.com at 12, www + pointer to it at 25, a + pointer to www.example.com at 31
    msg = bytes(12) + b"\x07example\x03com\x00" + b"\x03www\xc0\x0c" + b"\x01a\xc0\x19"
    assert read_name(msg, 25) == ("www.example.com", 31)
    assert read_name(msg, 31) == ("a.www.example.com", 35)


# Header tails: QR set, then QD/AN/NS/AR counts.
QD1 = b"\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00"
AN1 = b"\x80\x00\x00\x00\x00\x01\x00\x00\x00\x00"
A_IN = b"\x00\x01\x00\x01"


@pytest.mark.parametrize("msg, reason", [
    # QNAME is a pointer to itself
    (b"\x11\x11" + QD1 + b"\xc0\x0c" + A_IN, "dns-bad-pointer"),
    # the DNS id 0xc00c points to the question, whose pointer goes back to the id
    (b"\xc0\x0c" + QD1 + b"\xc0\x00" + A_IN, "dns-bad-pointer"),
    # a forward pointer, to offset 32
    (b"\x33\x33" + QD1 + b"\xc0\x20" + A_IN + bytes(20), "dns-bad-pointer"),
    # label type 0x40 (RFC 6891 §5: extended label types are obsolete)
    (b"\x00\x01" + QD1 + b"\x41\x00" + A_IN, "dns-bad-label-type"),
    # a label running past the end
    (b"\x00\x01" + QD1 + b"\x09abc", "dns-name-truncated"),
    # a name of 5 * 64 octets
    (b"\x00\x01" + QD1 + (b"\x3f" + b"x" * 63) * 5 + b"\x00" + A_IN, "dns-name-too-long"),
    # the pointer's second byte is missing
    (b"\x00\x01" + QD1 + b"\xc0", "dns-truncated"),
    # a header of 11 bytes
    (b"\x00\x01" + QD1[:-1], "dns-short-header"),
    # QTYPE and QCLASS missing
    (b"\x00\x01" + QD1 + b"\x01a\x00\x00", "dns-question-truncated"),
    # ANCOUNT 1, the RR stops after its TYPE
    (b"\x00\x01" + AN1 + b"\xc0\x0c\x00\x01", "dns-rr-truncated"),
    # ANCOUNT 1, RDLENGTH 4 with 2 bytes of RDATA
    (b"\x00\x01" + AN1 + b"\x00" + A_IN + b"\x00\x00\x00\x00\x00\x04\xc0\x00",
     "dns-rdata-overrun"),
])
def test_malformed_messages_name_their_reason(msg: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as caught:
        parse_response(msg)
    assert caught.value.reason == reason
    assert isinstance(caught.value, EdePcapError)


# Lying lengths around the OPT record and the EDE option.
LIES = {
    "arcount": (message(qd=[question()], ar=[opt_rr(ede_option(9, "x"))], counts=(1, 0, 0, 2)),
                "dns-arcount-overrun"),
    "opt-rdlen-long": (message(qd=[question()], ar=[opt_rr(ede_option(9, "x"), rdlen=200)]),
                       "dns-rdata-overrun"),
    "opt-rdlen-short": (message(qd=[question()], ar=[opt_rr(ede_option(9, "hello"), rdlen=6)]),
                        "dns-option-overrun"),
    "ede-length-long": (message(qd=[question()], ar=[opt_rr(ede_option(9, "x", length=40))]),
                        "dns-option-overrun"),
    "ede-length-short": (message(qd=[question()], ar=[opt_rr(ede_option(9, "hello", length=5))]),
                         "dns-option-truncated"),
    "ede-length-1": (message(qd=[question()], ar=[opt_rr(edns_option(15, b"\x00"))]),
                     "dns-ede-too-short"),
}


@pytest.mark.parametrize("name", list(LIES))
def test_lying_lengths_make_the_message_malformed(name: str) -> None:
    msg, reason = LIES[name]
    with pytest.raises(Malformed) as caught:
        parse_response(msg)
    assert caught.value.reason == reason


@pytest.mark.parametrize("name", list(LIES))
def test_lying_lengths_are_counted_by_reason(name: str) -> None:
    msg, reason = LIES[name]
    result = scan_checked(pcap(records([frame(udp(msg))])))
    assert result.accounting == {f"malformed-{reason}": 1}
    assert (result.dns_responses, result.ede_options) == (0, 0)


@pytest.mark.parametrize("text, parsed", [
    (b"stale answer served", "stale answer served"),
    (b"", ""),
    (b"ends in NUL\x00", "ends in NUL"),       # one trailing NUL is tolerated and dropped
    (b"two NULs\x00\x00", "two NULs\x00"),     # ... only one
    (b"\x00", ""),
    (b"NUL\x00inside", "NUL\x00inside"),
    ("résolveur ✓".encode(), "résolveur ✓"),
])
def test_extra_text(text: bytes, parsed: str) -> None:
    r = parse_response(response(edes=[(3, text)]))
    assert r.edes == [EdeOption(3, parsed, True)]
    assert r.problems == []


def test_invalid_utf8_extra_text_is_kept_escaped() -> None:
    r = parse_response(response(edes=[(6, b"bad \xff\xfe bytes\x00")]))
    assert r.edes == [EdeOption(6, "bad \\xff\\xfe bytes", False)]
    assert r.problems == ["ede-text-not-utf8"]


@pytest.mark.parametrize("code", [0, 9, 33, 300, 49151, 49152, 65000, 65535])
def test_every_info_code_is_kept_as_a_number(code: int) -> None:
    assert parse_response(response(edes=[(code, "t")])).edes == [EdeOption(code, "t", True)]


def test_several_ede_options_keep_their_order_among_other_options() -> None:
    options = [edns_option(10, bytes(8)),           # COOKIE
               ede_option(22, "no reachable authority"),
               edns_option(3, b"ns1"),              # NSID
               ede_option(23, "network error"),
               ede_option(0),
               edns_option(12, bytes(20))]          # PADDING
    r = parse_response(message(qd=[question()], ar=[opt_rr(*options)]))
    assert r.edes == [EdeOption(22, "no reachable authority", True),
                      EdeOption(23, "network error", True), EdeOption(0, "", True)]


def test_a_second_opt_is_a_problem_and_ignored() -> None:
    msg = message(qd=[question()], ar=[opt_rr(ede_option(1, "first")),
                                       opt_rr(ede_option(2, "second"))])
    r = parse_response(msg)
    assert r.edes == [EdeOption(1, "first", True)]
    assert r.problems == ["dns-multiple-opt"]


def test_opt_option_with_rdlen_zero_and_no_question() -> None:
    r = parse_response(message(ar=[opt_rr()]))
    assert (r.qname, r.qtype, r.qclass, r.question) == (None, None, None, b"")
    assert (r.has_opt, r.edes) == (True, [])


def test_only_the_first_question_is_reported() -> None:
    msg = message(qd=[question("first.example"), question("second.example", 28)],
                  ar=[opt_rr(ede_option(9))])
    r = parse_response(msg)
    assert (r.qname, r.qtype) == ("first.example", 1)
    assert r.edes == [EdeOption(9, "", True)]


def test_report_channel_option() -> None:
    # RFC 9567 §5: option 18 holds the agent domain, uncompressed.
    good = parse_response(message(qd=[question()], ar=[opt_rr(
        ede_option(6), edns_option(18, b"\x05agent\x07example\x00"))]))
    assert (good.report_channel, good.problems) == ("agent.example", [])
    bad = parse_response(message(qd=[question()], ar=[opt_rr(
        ede_option(6), edns_option(18, b"\x05agent\x07exa"))]))
    assert (bad.report_channel, bad.problems) == (None, ["report-channel-malformed"])


@pytest.mark.parametrize("msg, expected", [
    (response(edes=[(9, "x")]), True),
    (response(edes=()), False),                     # OPT without options
    (response(edes=None), False),                   # no OPT
    (message(qd=[question()], ar=[opt_rr(edns_option(10, bytes(8)))]), False),  # COOKIE only
    (message(qd=[question()], ar=[opt_rr(ede_option(9))], counts=(1, 0, 0, 0)), False),
    (b"\x00\x01\x81\x80", False),                   # shorter than a header
])
def test_may_hold_ede(msg: bytes, expected: bool) -> None:
    assert may_hold_ede(msg) is expected
    if expected:  # the test is a superset: whatever holds an EDE passes it
        assert parse_response(msg).edes


def test_scapy_built_response_parses_the_same() -> None:
    built = bytes(DNS(id=7, qr=1, rd=1, ra=1, rcode=2, qd=DNSQR(qname="scapy.example"),
                      ar=DNSRROPT(rclass=1232, z=0, rdata=[
                          EDNS0ExtendedDNSError(info_code=22, extra_text="no reachable")])))
    r = parse_response(built)
    assert (r.dns_id, r.flags & (QR | RD | RA), r.rcode, r.qname) == (
        7, QR | RD | RA, 2, "scapy.example")
    assert (r.edns_udp_size, r.do) == (1232, False)
    assert r.edes == [EdeOption(22, "no reachable", True)]
