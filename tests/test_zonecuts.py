"""Tests for analyzer.zonecuts: where a DNSSEC breakage starts, from the capture's evidence.

Crafted captures put broken delegated child zones (``shop.example.com``, and
``eu.store.example.com`` two labels below a healthy ``example.com`` whose ``store`` is not
a zone) below a healthy signed parent, answered by a validating resolver with and without
EXTRA-TEXT, and add one kind of evidence each: RRSIG signers, SOA owners, referrals, or
none (the failure boundary). The kernel and its Python twin are held to the same answers.
"""

from __future__ import annotations

import io
import random
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.packet import Raw

from analyzer import codes, reports, speedups, zonecuts
from tests.captures import (
    AA,
    AD,
    CD,
    IN,
    QR,
    RA,
    RD,
    SERVFAIL,
    a_rr,
    frame,
    message,
    opt_rr,
    pcap,
    pure_python_kernels,
    question,
    records,
    response,
    scan_bytes,
    wire_name,
)

NXDOMAIN = 3
RESOLVER, CLIENT, AUTH = "198.51.100.53", "192.0.2.10", "203.0.113.7"
CHILDREN = ("shop.example.com", "eu.store.example.com")
PARENT = "example.com"


# -- records ------------------------------------------------------------------------------------

def rrsig_rr(signer: str, owner: bytes = b"\xc0\x0c", covered: int = 1) -> bytes:
    """An RRSIG (RFC 4034 §3.1): 18 fixed bytes, the signer's name, a short signature."""
    rdata = struct.pack("!HBBIIIH", covered, 13, 3, 300, 1_800_000_000, 1_700_000_000,
                        4242) + wire_name(signer) + b"\x01" * 16
    return owner + struct.pack("!HHIH", 46, IN, 300, len(rdata)) + rdata


def soa_rr(zone: str) -> bytes:
    rdata = wire_name(f"ns1.{zone}") + wire_name(f"hostmaster.{zone}") + struct.pack(
        "!5I", 1, 7200, 3600, 1209600, 300)
    return wire_name(zone) + struct.pack("!HHIH", 6, IN, 300, len(rdata)) + rdata


def ns_rr(zone: str) -> bytes:
    rdata = wire_name(f"ns1.{zone}")
    return wire_name(zone) + struct.pack("!HHIH", 2, IN, 300, len(rdata)) + rdata


def rr(owner: str, rtype: int, rdata: bytes = b"\x00\x01\x03\x0d" + b"\x02" * 8) -> bytes:
    return wire_name(owner) + struct.pack("!HHIH", rtype, IN, 300, len(rdata)) + rdata


def packet(msg: bytes, src: str = RESOLVER, dst: str = CLIENT, dport: int = 40000) -> bytes:
    return frame(IP(src=src, dst=dst, id=1) / UDP(sport=53, dport=dport) / Raw(msg))


# -- the capture --------------------------------------------------------------------------------

def broken_children(evidence: str, *, texts: bool, failures: int = 400, good: int = 400,
                    seed: int = 14) -> bytes:
    """A validating resolver's traffic: good answers under the parent, failures in two broken
    child zones, and the ``evidence`` kind on the resolver's upstream leg to AUTH.

    With ``texts``, 1 failure in 100 carries Unbound's ``for key ZONE``; the rest carry
    BIND's ``name/A`` (a query name, not a zone) or nothing, as PowerDNS sends.
    """
    rng = random.Random(seed)
    frames: list[bytes] = []
    for zone in CHILDREN:
        probe = f"www.{zone}"
        if evidence == "signer":  # an authoritative answer, signed by the child
            msg = message(7, QR | AA, qd=[question(probe)], an=[a_rr(), rrsig_rr(zone)])
        elif evidence == "soa":  # NXDOMAIN from the child's server names its zone
            # (unsigned here: with its RRSIG, the signer would be the stronger evidence)
            msg = message(7, QR | AA | NXDOMAIN, qd=[question(f"nope.{zone}")],
                          ns=[soa_rr(zone)])
        elif evidence == "referral":  # the parent's server refers the resolver down
            msg = message(7, QR, qd=[question(probe)], ns=[ns_rr(zone)])
        elif evidence == "dnskey":
            msg = message(7, QR | AA, qd=[question(zone, 48)], an=[rr(zone, 48)])
        else:
            msg = b""
        if msg:
            frames.append(packet(msg, src=AUTH, dst=RESOLVER, dport=33333))
    healthy = [f"{w}.{PARENT}" for w in ("www", "mail", "api", "static", "login")] + [
        f"{w}.store.{PARENT}" for w in ("www", "cdn", "img")]
    for i in range(failures + good):
        if i % 2 == 0 and i // 2 < failures:
            zone = CHILDREN[(i // 2) % 2]
            name = f"h{rng.randrange(60)}.{zone}"
            code = rng.choice((6, 7, 9))
            if texts and rng.random() < 0.01:
                text = (f"validation failure <{name}. A IN>: signature expired from {AUTH} "
                        f"for key {zone}. while building chain of trust")
            elif texts:
                text = f"{name}/A"
            else:
                text = ""
            msg = response(name, dns_id=i, rcode=SERVFAIL, edes=((code, text),))
        else:
            name = rng.choice(healthy)
            msg = message(i, QR | RD | RA | AD, qd=[question(name)],
                          an=[a_rr(), rrsig_rr(PARENT)], ar=[opt_rr(do=True)])
        frames.append(packet(msg))
    return pcap(records(frames))


def attributions(capture: bytes) -> tuple[dict[str, float], set[str], object]:
    """Return the shares of child-zone DNSSEC EDEs placed in their own zone and in the
    parent, the evidence labels used, and the work frame."""
    scan = scan_bytes(capture)
    work = reports.work_frame(scan.ede, zones=scan.zone_evidence)
    dnssec = work[np.isin(work["code"], list(zonecuts.DNSSEC_CODES))]
    qname = dnssec["qname"].astype(str)
    own = np.zeros(len(dnssec), bool)
    for zone in CHILDREN:
        under = qname.str.endswith("." + zone).to_numpy()
        own |= under & (dnssec["zone"].astype(str) == zone).to_numpy()
    parent = (dnssec["zone"].astype(str) == PARENT).to_numpy()
    shares = {"own": own.mean(), "parent": parent.mean()}
    return shares, set(dnssec["zone_evidence"].astype(str)), work


@pytest.mark.parametrize("texts", [False, True], ids=["no-text", "texts"])
@pytest.mark.parametrize(("evidence", "label"), [
    ("signer", "signer"), ("soa", "soa"), ("referral", "referral"), ("dnskey", "referral"),
    ("none", "boundary")])
def test_broken_children_below_a_healthy_parent(evidence: str, label: str,
                                                texts: bool) -> None:
    shares, labels, _ = attributions(broken_children(evidence, texts=texts))
    assert shares["own"] >= 0.95
    assert shares["parent"] <= 0.01
    assert "qname" not in labels
    assert label in labels
    if texts:
        assert "text" in labels  # the 1% that name the zone keep their own evidence


def test_without_evidence_the_registrable_zone_is_the_last_resort() -> None:
    # no validating traffic and no cut evidence: nothing can place the failures
    capture = pcap(records([packet(response(f"h{i}.shop.example.com", dns_id=i,
                                            rcode=SERVFAIL, edes=((7, ""),)))
                            for i in range(20)]))
    scan = scan_bytes(capture)
    work = reports.work_frame(scan.ede, zones=scan.zone_evidence)
    assert set(work["zone"].astype(str)) == {"example.com"}
    assert set(work["zone_evidence"].astype(str)) == {"qname"}


def test_the_report_says_where_each_zone_came_from() -> None:
    scan = scan_bytes(broken_children("signer", texts=False))
    report = reports.build_report(scan)
    zones = {(z["zone"], z["evidence"]) for z in report["zones"]}
    assert ("shop.example.com", "signer") in zones
    assert ("eu.store.example.com", "signer") in zones
    assert not any(z["zone"] == PARENT for z in report["zones"])
    assert all(z["source"] == "qname" for z in report["zones"])


def test_same_attribution_with_the_python_twins_and_the_per_packet_path() -> None:
    capture = broken_children("soa", texts=False)
    fast = attributions(capture)[2]
    with pure_python_kernels():
        twin = attributions(capture)[2]
    assert fast["zone"].astype(str).tolist() == twin["zone"].astype(str).tolist()
    assert fast["zone_evidence"].astype(str).tolist() == twin["zone_evidence"].astype(
        str).tolist()


def test_jobs_merge_the_evidence() -> None:
    from analyzer import pipeline

    capture = broken_children("referral", texts=False)
    partial = pipeline.scan_partial(io.BytesIO(capture), {})
    merged = zonecuts.merge([partial.zones, partial.zones])
    assert merged["cuts"]["shop.example.com"] == zonecuts.REFERRAL
    assert merged["good"]["example.com"] == 2 * partial.zones["good"]["example.com"]


# -- attribution, table by table ----------------------------------------------------------------

def test_attribute_rules() -> None:
    failing = ["a.shop.example.com", "b.shop.example.com", "x.y.deep.example.com",
               "z.y.deep.example.com", "www.example.com", "lone.q.example.org"]
    evidence = {"good": {"example.com": 10, "example.org": 3, "y.deep.example.com": 0},
                "cuts": {"shop.example.com": zonecuts.SOA | zonecuts.REFERRAL,
                         "example.com": zonecuts.SIGNER}}
    placed = zonecuts.attribute(failing, evidence)
    assert placed["a.shop.example.com"] == ("shop.example.com", "soa")
    # no cut below the healthy parent: the deepest suffix all failing names there share
    assert placed["x.y.deep.example.com"] == ("y.deep.example.com", "boundary")
    # one failing name alone: its branch just below the healthy suffix
    assert placed["lone.q.example.org"] == ("q.example.org", "boundary")
    assert placed["www.example.com"] == ("www.example.com", "boundary")
    # nothing validates: the deepest cut above the name is its zone
    assert zonecuts.attribute(["a.shop.example.com"], {"good": {}, "cuts": evidence["cuts"]}
                              ) == {"a.shop.example.com": ("shop.example.com", "soa")}
    assert zonecuts.attribute(["a.b.example.co.uk"], None) == {
        "a.b.example.co.uk": ("example.co.uk", "qname")}


def test_suffixes_and_hashes() -> None:
    assert zonecuts.suffixes("A.Shop.Example.COM.") == [
        "example.com", "shop.example.com", "a.shop.example.com"]
    assert zonecuts.suffixes("www.example.co.uk") == ["example.co.uk", "www.example.co.uk"]
    assert zonecuts.suffixes("com") == ["com"]
    assert zonecuts.name_hash("WWW.example.com.") == zonecuts.name_hash("www.example.com")
    assert zonecuts.name_hash("a.b") != zonecuts.name_hash("ab")


def test_dnssec_codes_match_the_catalogue() -> None:
    assert zonecuts.DNSSEC_CODES == {c for c in range(64)
                                     if codes.describe(c).category == "dnssec"}


def test_watch_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zonecuts, "WATCH_MAX", 5)
    watch = zonecuts.SuffixWatch(slots=4)
    for i in range(9):
        watch.watch(f"n{i}.example.com")
    assert len(watch.names) == 5 and watch.dropped == 4
    assert len(watch.keys) >= 2 * 5 and (len(watch.keys) & (len(watch.keys) - 1)) == 0


def test_message_cuts() -> None:
    signed = message(1, QR | AA, qd=[question("www.shop.example.com")],
                     an=[a_rr(), rrsig_rr("shop.example.com")])
    assert zonecuts.message_cuts(signed) == [("shop.example.com", zonecuts.SIGNER)]
    nx = message(1, QR | AA | NXDOMAIN, qd=[question("n.shop.example.com")],
                 ns=[soa_rr("shop.example.com")])
    assert zonecuts.message_cuts(nx) == [("shop.example.com", zonecuts.SOA)]
    referral = message(1, QR, qd=[question("www.shop.example.com")],
                       ns=[ns_rr("shop.example.com")])
    assert zonecuts.message_cuts(referral) == [("shop.example.com", zonecuts.REFERRAL)]
    # an authoritative NS set in the authority section of an answer is not a referral
    answer = message(1, QR | AA, qd=[question("www.shop.example.com")], an=[a_rr()],
                     ns=[ns_rr("shop.example.com")])
    assert zonecuts.message_cuts(answer) == []
    ds = message(1, QR, qd=[question("shop.example.com", 43)], an=[rr("shop.example.com", 43)])
    assert zonecuts.message_cuts(ds) == [("shop.example.com", zonecuts.REFERRAL)]
    assert zonecuts.message_cuts(signed[:40]) == []  # cut short: what was read, no error


# -- the kernel and its twin --------------------------------------------------------------------

def _messages(rng: random.Random) -> list[bytes]:
    names = ["www.example.com", "a.shop.example.com", "WWW.Shop.Example.com", "x.y.z.example.org",
             "shop.example.com", "example.com"]
    out = []
    for _ in range(300):
        name = rng.choice(names)
        flags = QR | rng.choice((0, AA)) | rng.choice((0, RA)) | rng.choice((0, AD)) | \
            rng.choice((0, CD)) | rng.choice((0, 0, 2, 3))
        an = rng.choice(([], [a_rr()], [a_rr(), rrsig_rr("example.com")]))
        ns = rng.choice(([], [ns_rr("shop.example.com")], [soa_rr("example.com")]))
        qtype = rng.choice((1, 1, 43, 48, 2))
        msg = message(rng.randrange(65536), flags, qd=[question(name, qtype)], an=an, ns=ns)
        if rng.random() < 0.2:  # cut or corrupt
            cut = rng.randrange(len(msg) + 1)
            msg = msg[:cut] + bytes(rng.randrange(256) for _ in range(rng.randrange(4)))
        out.append(msg)
    out.append(message(1, RD, qd=[question("www.example.com")]))  # a query: never counted
    out.append(message(1, QR, qd=[question("a.b"), question("c.d")]))  # two questions
    return out


def _both(msgs: list[bytes], watched: list[str]) -> tuple[list[list[int]], ...]:
    arr = np.frombuffer(b"".join(msgs), np.uint8)
    lengths = np.array([len(m) for m in msgs], np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    results = []
    for kernel in (True, False):
        watch = zonecuts.SuffixWatch(slots=8)
        for name in watched:
            watch.watch(name)
        seen = np.zeros(64, np.uint64)
        scan = speedups.kernels.zone_scan if kernel else zonecuts.zone_scan_py
        raw = scan(arr, starts, lengths, watch.keys, watch.good, seen)
        results.append((np.frombuffer(raw, np.int64).reshape(-1, 2).tolist(),
                        watch.good.tolist(), seen.tolist()))
    return results[0], results[1]


needs_kernels = pytest.mark.skipif(speedups.kernels is None, reason="C kernels not built")


@needs_kernels
@pytest.mark.parametrize("seed", range(5))
def test_kernel_matches_twin(seed: int) -> None:
    rng = random.Random(seed)
    msgs = _messages(rng)
    compiled, twin = _both(msgs, ["example.com", "shop.example.com", "y.z.example.org"])
    assert compiled == twin
    assert compiled[0], "some messages must be flagged"
    assert sum(compiled[1]) > 0, "some responses must validate under a watched suffix"


@needs_kernels
@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=80), min_size=1, max_size=20))
def test_kernel_matches_twin_on_any_bytes(blobs: list[bytes]) -> None:
    # a response header that claims one question, then anything
    msgs = [b"\x00\x01\x81\xa0\x00\x01" + b for b in blobs]
    compiled, twin = _both(msgs, ["example.com", "a"])
    assert compiled == twin


@needs_kernels
def test_kernel_refuses_bad_tables() -> None:
    arr = np.zeros(16, np.uint8)
    one = np.zeros(1, np.int64)
    seen = np.zeros(8, np.uint64)
    with pytest.raises(ValueError, match="power of two"):
        speedups.kernels.zone_scan(arr, one, one, np.zeros(3, np.uint64), np.zeros(3, np.int64),
                                   seen)
    with pytest.raises(ValueError, match="power of two"):
        speedups.kernels.zone_scan(arr, one, one, np.zeros(4, np.uint64), np.zeros(4, np.int64),
                                   np.zeros(6, np.uint64))
    with pytest.raises(ValueError, match="must match"):
        speedups.kernels.zone_scan(arr, one, np.zeros(2, np.int64), np.zeros(4, np.uint64),
                                   np.zeros(4, np.int64), seen)


def test_good_counts_need_validation() -> None:
    # AD set, or RA with a signed answer and CD clear: counted; an authoritative signed
    # answer (no RA) or CD set is not validation by this resolver
    watch = zonecuts.SuffixWatch()
    watch.watch("example.com")
    good = [message(1, QR | RA | AD, qd=[question("www.example.com")], an=[a_rr()]),
            message(1, QR | RA, qd=[question("www.example.com")],
                    an=[a_rr(), rrsig_rr("example.com")]),
            message(1, QR | RA | AD | NXDOMAIN, qd=[question("nx.example.com")])]
    not_good = [message(1, QR | AA, qd=[question("www.example.com")],
                        an=[a_rr(), rrsig_rr("example.com")]),
                message(1, QR | RA | CD, qd=[question("www.example.com")],
                        an=[a_rr(), rrsig_rr("example.com")]),
                message(1, QR | RA | AD | SERVFAIL, qd=[question("www.example.com")])]
    seen = np.zeros(16, np.uint64)
    for msg in good + not_good:
        zonecuts._scan_one(msg, watch.table, watch.good, seen)
    assert watch.counts() == {"example.com": len(good)}


def test_a_name_is_flagged_once_and_still_counted() -> None:
    watch = zonecuts.SuffixWatch()
    watch.watch("example.com")
    seen = np.zeros(16, np.uint64)
    signed = message(1, QR | RA | AD, qd=[question("www.example.com")],
                     an=[a_rr(), rrsig_rr("example.com")])
    flagged = [zonecuts._scan_one(signed, watch.table, watch.good, seen) for _ in range(3)]
    assert flagged[0] == zonecuts.name_hash("www.example.com") - (1 << 64) * (
        zonecuts.name_hash("www.example.com") >= 1 << 63)
    assert flagged[1:] == [None, None]
    assert watch.counts() == {"example.com": 3}
