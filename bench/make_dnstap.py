#!/usr/bin/env python3
"""Deterministic benchmark dnstap generator: a recursive resolver's dnstap log carrying
Extended DNS Errors (EDE, RFC 8914, EDNS0 option code 15), plus its truth.

Standard library and numpy only (no protobuf package).  Writes a Frame Streams file
(https://farsightsec.github.io/fstrm/): a START control frame with content type
``protobuf:dnstap.Dnstap``, one DATA frame per dnstap message (4-byte big-endian length, then
a ``dnstap.Dnstap`` protobuf), and a STOP control frame.  ``--gzip`` (or OUT ending in ``.gz``)
gzips the whole file.  A JSON "truth" summary lands next to it (``OUT.truth.json``).

Schema: field numbers and types follow dnstap.proto in github.com/dnstap/dnstap.pb (commit
102af68): Dnstap{identity=1, version=2, message=14, type=15}; Message{type=1,
socket_family=2, socket_protocol=3, query_address=4, response_address=5, query_port=6,
response_port=7, query_time_sec=8 (uint64), query_time_nsec=9 (fixed32), query_message=10,
query_zone=11, response_time_sec=12 (uint64), response_time_nsec=13 (fixed32),
response_message=14}.  Fields are written in ascending field-number order, as protobuf-c
(Unbound, BIND, Knot) does, so ``type=15`` comes after ``message=14``; no field repeats and
nothing is packed.  Which fields each message type carries follows Unbound's dnstap/dnstap.c
(``dt_msg_send_*``): CLIENT_* carry the client's address and port, RESOLVER_* the server's
address and port (53) and query_zone, RESOLVER_RESPONSE no query_message.  Beyond Unbound:
CLIENT_RESPONSE also carries its query time, RESOLVER_* the resolver's own address and port,
and with a non-Unbound --version the client messages also carry the resolver's service
address and port (BIND does both).  Times are microsecond-aligned (nsec = usec * 1000), as
gettimeofday() gives Unbound.

Traffic (fractions are expectations, driven by --seed):

* client transactions: CLIENT_QUERY then CLIENT_RESPONSE, from thousands of clients (~85 %
  IPv4, ~15 % IPv6); transport UDP 80 %, TCP 6 %, DoT 5 %, DoH 5 % (DNS id 0, RFC 8484 §4.1),
  DoQ 1 %, and 3 % with socket_protocol absent.
* a cache miss (~30 % of plain queries, ~90 % of the EDE ones that involve an upstream) adds
  RESOLVER_QUERY / RESOLVER_RESPONSE pairs to authoritative servers before the client
  response; timed-out attempts have no RESOLVER_RESPONSE.  Some authoritative responses carry
  EDE themselves (20 with REFUSED from lame servers, 18 Prohibited, 24 "zone expired").
* ``--ede-share`` of client responses carry EDE, with rcodes consistent with the codes
  (3 NOERROR, 6/7/9/10/12/22/23 SERVFAIL, 15/17 NOERROR or NXDOMAIN, 18 REFUSED, ...);
  Unbound and BIND profiles sometimes attach two or three options, Knot and PowerDNS one.
  EXTRA-TEXT follows the wording of the resolver named by --version (Unbound, BIND 9, Knot
  Resolver, PowerDNS Recursor), assembled from the fragments and templates their sources use
  (shared/reference/ede-registry-and-texts.md), not captured from live resolvers.
* ``--duplicates`` of client responses are logged twice: the second DATA frame is an exact
  byte copy written right after the first (reported for Unbound's stale answers; not checked
  against Unbound's source here).  A reader must fold them into one.

Every DNS message is valid wire format with an EDNS0 OPT record (all EDE-carrying ones).
The same arguments always produce byte-identical output (with this numpy's PCG64 streams).
"""

import argparse
import gzip
import json
import os
import random
import struct
import sys
import time

import numpy as np

CONTENT_TYPE = b"protobuf:dnstap.Dnstap"

# dnstap.proto Message.Type
TYPE_NAMES = {
    1: "AUTH_QUERY", 2: "AUTH_RESPONSE", 3: "RESOLVER_QUERY", 4: "RESOLVER_RESPONSE",
    5: "CLIENT_QUERY", 6: "CLIENT_RESPONSE", 7: "FORWARDER_QUERY", 8: "FORWARDER_RESPONSE",
    9: "STUB_QUERY", 10: "STUB_RESPONSE", 11: "TOOL_QUERY", 12: "TOOL_RESPONSE",
    13: "UPDATE_QUERY", 14: "UPDATE_RESPONSE",
}
CLIENT_QUERY, CLIENT_RESPONSE, RESOLVER_QUERY, RESOLVER_RESPONSE = 5, 6, 3, 4
# transport index -> (truth key, dnstap SocketProtocol or None when absent, server port)
TRANSPORTS = [("udp", 1, 53), ("tcp", 2, 53), ("dot", 3, 853), ("doh", 4, 443),
              ("doq", 7, 853), ("absent", None, 53)]
TRANSPORT_WEIGHTS = [0.80, 0.06, 0.05, 0.05, 0.01, 0.03]
DOH = 3

# row kinds of the generated log, in the order of their DATA frames
K_CQ, K_CR, K_DUP, K_RQ, K_RR = 0, 1, 2, 3, 4

EDE_WEIGHTS = {
    0: 4, 1: 2, 2: 1.5, 3: 8, 4: 0.5, 5: 1, 6: 8, 7: 6, 8: 1, 9: 10, 10: 6,
    11: 0.5, 12: 2, 13: 1.5, 14: 0.5, 15: 8, 16: 1, 17: 6, 18: 3, 19: 1.5,
    20: 1, 21: 0.5, 22: 14, 23: 8, 24: 1, 25: 0.3, 26: 0.3, 27: 1, 28: 0.3,
    29: 1, 30: 0.4,
}
# several options in one response (Unbound and BIND only; BIND keeps at most 3, one per code)
EDE_SETS = [(3, 22), (3, 23), (22, 23), (9, 22), (6, 10), (0, 23), (3, 22, 23)]
DNSSEC_CODES = {1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 25, 27}

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16,
          "AAAA": 28, "RRSIG": 46, "DNSKEY": 48, "HTTPS": 65}
QTYPE_NAMES = {v: k for k, v in QTYPES.items()}

VERSIONS = ["unbound 1.17.1", "unbound 1.19.3", "BIND 9.18.28-1~deb12u2-Debian",
            "Knot Resolver 5.7.4", "PowerDNS Recursor 5.1.2"]
IDENTITIES = ["resolver1.example.net", "rec2.fra.example.net", "dns-cache-3.example.org"]

WORDS = ("example acme contoso globex initech umbrella hooli stark wayne "
         "wonka tyrell cyberdyne soylent vandelay oscorp aperture blackmesa "
         "nakatomi monarch gringotts dunder pied octan zorg virtucon massive "
         "weyland abstergo buynlarge duff krusty nuka sirius tessier yoyodyne "
         "ingen kwikemart bluth sterling lacuna prestige ollivander").split()
TLDS = ["com", "com", "com", "net", "org", "de", "io", "co.uk", "nl", "fr"]
HOSTS = ("www api mail cdn static img login m app auth shop blog news dev "
         "portal vpn smtp imap ns1 ns2 assets media video ws push metrics "
         "status docs support files edge beta").split()


def vendor_of(version):
    """Return the resolver family whose EXTRA-TEXT wording a version string implies."""
    v = version.lower()
    for key, vendor in (("bind", "bind"), ("knot", "knot"), ("powerdns", "powerdns"),
                        ("pdns", "powerdns")):
        if key in v:
            return vendor
    return "unbound"


# --------------------------------------------------------------------------
# EXTRA-TEXT wording per resolver family
# --------------------------------------------------------------------------
KNOT_TAGS = {
    0: ["OGHD: exceeded iteration count limit"], 1: ["H6OO", "PBAO"], 2: ["DDDV"],
    3: ["WFAC"], 4: ["5DO5", "DUQR"], 5: ["V5T7: forwarded EDE code"],
    6: ["I74V", "EXRU", "Z4I6", "NXJA", "MISQ", "MJX6", "XLE4"], 7: ["YFJ2", "6GJV"],
    8: ["UBBS", "4DJQ"], 9: ["NMJZ: no matching SEP",
                             "DGVI: DNSKEY matching SEP has the Revoke bit set"],
    10: ["7N4Z: no valid RRSIGs for DNSKEY", "JZAJ"], 11: ["YQEH", "CYNG"],
    12: ["3WKM", "AHXI"], 15: ["CR36"], 18: ["U5KL", "EIM4"], 19: ["QSF6"], 20: ["ABC4"],
    21: ["57CK"], 25: ["XXAP", "4UBF"], 27: ["AUO2"], 29: ["BHD4: from DNS64"],
}


def extra_text(vendor, rng, code, qname, qtype, zone, ip):
    """Return an EXTRA-TEXT for ``code`` worded as ``vendor`` words it (may be empty)."""
    tn = QTYPE_NAMES[qtype]
    bare = zone.rstrip(".")
    if vendor == "knot":
        if code == 22:
            return rng.choice(["OLX2: delegation " + bare, "P3CD: delegation " + bare,
                               "QLPL", "RRPF"])
        return rng.choice(KNOT_TAGS.get(code, [""]))
    if vendor == "powerdns":
        if code == 29:
            return rng.choice(["Result synthesized by root-nx-trust", "Result from negative cache",
                               "Result from negative cache for entire name",
                               "Result synthesized by nothing-below-nxdomain (RFC8020)",
                               "Result synthesized from aggressive NSEC cache (RFC8198)"])
        if code == 22:
            return rng.choice(["Timeout waiting for answer(s)", "delegation " + bare])
        if code in (15, 16, 17):     # RPZ extendedErrorExtra: the operator's own words
            return rng.choice(["Blocked by RPZ policy", "\U0001f6a7 Blocked \U0001f6a7",
                               "Filtr\u00e9 par la politique DNS \u2013 cat\u00e9gorie "
                               "bloqu\u00e9e"])
        return ""
    if vendor == "bind":
        nt = "{}/{}".format(qname.rstrip(".") or ".", tn)
        t = {
            0: ["max. restarts reached"],
            1: ["ECCGOST " + nt, "DSA " + nt],
            2: ["GOST " + nt],
            3: ["query within stale refresh time window", "stale data prioritized over lookup",
                "resolver failure"],
            6: [nt], 7: [nt], 8: [nt], 10: [nt],
            9: [f"DNSKEY found but not matching DS {bare}/DNSKEY",
                f"no DNSKEY found {bare}/DNSKEY"],
            19: ["query within stale refresh time window", "stale data prioritized over lookup"],
            20: ["recursion disabled"],
            24: ["zone not loaded", "zone expired"],
        }.get(code, [""])
        # BIND cuts EXTRA-TEXT to 64 octets (DNS_EDE_EXTRATEXT_LEN)
        return rng.choice(t).encode()[:64].decode("utf-8", "ignore")
    # Unbound, with val-log-level: 2 (else EXTRA-TEXT is empty)
    if rng.random() < 0.25:
        return ""
    head = f"validation failure <{qname} {tn} IN>: "
    src = f"from {ip}"
    t = {
        0: ["Too many queries queued up and waiting from the IP",
            "DNAME expansion became too large"],
        1: [head + f"unsupported algorithm by crypto library for key {zone}"],
        2: [head + f"DS hash mismatches key {src} for key {zone}"],
        5: [head + f"no DNSSEC records {src} for key {zone}"],
        6: [head + f"signature crypto failed {src} for <{qname} {tn} IN>",
            head + f"signatures from unknown keys {src} for <{qname} {tn} IN>"],
        7: [head + f"signature expired {src} for <{qname} {tn} IN>"],
        8: [head + f"signature before inception date {src} for <{qname} {tn} IN>"],
        9: [head + f"No DNSKEY record {src} for key {zone} while building chain of trust"],
        10: [head + f"no signatures {src} for <{qname} {tn} IN>"],
        11: [head + f"dnskey revoked {src} for key {zone}"],
        12: [head + f"NSECs for the referral did not prove no DS {src}"],
        22: ["exceeded the maximum nameserver nxdomains", "no addresses for nameservers",
             "could not fetch nameserver"],
        23: ["upstream server timeout", f"error sending query to auth server {ip} port 53"],
        24: ["sanitize: records of inappropriate length have been removed."],
        25: [head + f"signature inception after expiration {src} for <{qname} {tn} IN>"],
        27: [head + f"NSEC3 iterations mismatch {src}"],
    }.get(code, [""])
    return rng.choice(t)


def client_rcode(rng, code):
    """Return the response code a resolver sends with its first EDE ``code``."""
    if code in (1, 2, 3, 4, 27):
        return 0
    if code in (15, 16, 17):
        return 0 if rng.random() < 0.6 else 3
    if code == 29:
        return 3 if rng.random() < 0.5 else 0
    if code == 19:
        return 3
    if code in (18, 20, 21):
        return 5
    if code == 30:
        return 0 if rng.random() < 0.5 else 5
    return 2            # DNSSEC failures, 0, 13, 14, 22-26, 28


# --------------------------------------------------------------------------
# DNS wire format
# --------------------------------------------------------------------------
class Msg:
    """Tiny DNS message builder with RFC 1035 §4.1.4 name compression."""

    def __init__(self):
        self.b = bytearray(12)
        self.ptr = {}

    def name(self, name, compress=True):
        low = name.lower().strip(".")
        labels = name.strip(".").split(".") if low else []
        pos = 0
        for lab in labels:
            suffix = low[pos:]
            off = self.ptr.get(suffix)
            if compress and off is not None:
                self.b += struct.pack("!H", 0xC000 | off)
                return
            if len(self.b) < 0x3FFF:
                self.ptr.setdefault(suffix, len(self.b))
            raw = lab.encode()
            self.b.append(len(raw))
            self.b += raw
            pos += len(lab) + 1
        self.b.append(0)

    def rr(self, owner, rtype, ttl, rdata):
        """Append one RR; ``rdata`` is bytes, or a function that writes it into the builder."""
        self.name(owner)
        self.b += struct.pack("!HHI", rtype, 1, ttl)
        at = len(self.b)
        self.b += b"\0\0"
        if callable(rdata):
            rdata(self)
        else:
            self.b += rdata
        struct.pack_into("!H", self.b, at, len(self.b) - at - 2)

    def opt(self, udp, do, options):
        # RFC 6891 §6.1.2: root owner, TYPE 41, CLASS = UDP size, TTL = ext-rcode|version|DO
        self.b += b"\0" + struct.pack("!HHIH", 41, udp, 0x8000 if do else 0,
                                      sum(4 + len(d) for _, d in options))
        for code, data in options:
            self.b += struct.pack("!HH", code, len(data)) + data

    def header(self, flags, qd, an, ns, ar):
        struct.pack_into("!HHHHHH", self.b, 0, 0, flags, qd, an, ns, ar)


def wire_name(name):
    """Return ``name`` in uncompressed wire format (for query_zone)."""
    out = bytearray()
    for lab in [x for x in name.split(".") if x]:
        out.append(len(lab))
        out += lab.encode()
    out.append(0)
    return bytes(out)


def _ipv4(rng):
    return bytes([rng.choice([93, 104, 151, 185]), rng.randrange(256), rng.randrange(256),
                  rng.randrange(1, 255)])


def _soa(zone):
    return lambda m: (m.name("ns1." + zone), m.name("hostmaster." + zone),
                      m.b.extend(struct.pack("!IIIII", 2024010101, 7200, 3600, 1209600, 300)))


def answers(m, rng, qname, zone, qtype, ttl, do):
    """Append a plausible answer section for ``qname``/``qtype``; return the RR count."""
    an = 0
    owner = qname
    if qtype in (1, 28, 65) and rng.random() < 0.2:
        target = "{}-{}.edge.fastcdn.net.".format(qname.split(".")[0], zone.split(".")[0])
        m.rr(owner, 5, ttl, lambda mm: mm.name(target))
        owner, an = target, 1
    if qtype == 1:
        for _ in range(rng.choice([1, 1, 1, 2, 4])):
            m.rr(owner, 1, ttl, _ipv4(rng))
            an += 1
    elif qtype == 28:
        for _ in range(rng.choice([1, 1, 2])):
            m.rr(owner, 28, ttl, b"\x26\x06\x47\x00" + rng.getrandbits(96).to_bytes(12, "big"))
            an += 1
    elif qtype == 65:
        m.rr(owner, 65, ttl, b"\x00\x01\x00\x00\x01\x00\x06\x02h3\x02h2\x00\x04\x00\x04"
             + _ipv4(rng))
        an += 1
    elif qtype == 15:
        for i in range(rng.choice([1, 2])):
            ex = f"mx{i + 1}.{zone}"
            m.rr(owner, 15, ttl, lambda mm, i=i, ex=ex: (
                mm.b.extend(struct.pack("!H", 10 * (i + 1))), mm.name(ex)))
            an += 1
    elif qtype == 16:
        txt = (f"v=spf1 include:_spf.{zone} ~all").encode()
        m.rr(owner, 16, ttl, bytes([len(txt)]) + txt)
        an += 1
    elif qtype == 48:
        for flags in (257, 256):
            m.rr(owner, 48, ttl, struct.pack("!HBB", flags, 3, 13)
                 + rng.getrandbits(512).to_bytes(64, "big"))
            an += 1
    elif qtype == 2:
        for i in (1, 2):
            m.rr(owner, 2, ttl, lambda mm, i=i: mm.name(f"ns{i}.{zone}"))
            an += 1
    if do and an:
        m.rr(owner, 46, ttl, lambda mm: (
            mm.b.extend(struct.pack("!HBBIIIH", qtype, 13, owner.count("."), ttl,
                                    1736000000, 1734000000, rng.randrange(65536))),
            mm.name(zone, compress=False), mm.b.extend(rng.getrandbits(512).to_bytes(64, "big"))))
        an += 1
    return an


def build_exchange(rng, qname, zone, qtype, rcode, edes, *, client, with_opt=True,
                   ans=True):
    """Return (query, response) wire messages with DNS id 0.

    :param edes: ``[(info_code, extra_text), ...]`` for the response's OPT record
    :param client: a stub's query (RD, its own EDNS choices) and a resolver's answer (RA);
        else a resolver's iterative query (RD=0, DO) and an authoritative answer (AA)
    :param ans: whether a NOERROR response has an answer section (else NODATA)
    """
    if client:
        do = with_opt and rng.random() < 0.4
        udp = rng.choice([1232, 1232, 4096, 512])
        cookie = with_opt and rng.random() < 0.5
        qflags = 0x0100 | (0x0020 if rng.random() < 0.3 else 0)      # RD, sometimes AD
    else:
        do, udp, cookie, qflags = True, 1232, rng.random() < 0.3, 0
    ck = rng.getrandbits(64).to_bytes(8, "big")
    q = Msg()
    q.header(qflags, 1, 0, 0, 1 if with_opt else 0)
    q.name(qname)
    q.b += struct.pack("!HH", qtype, 1)
    if with_opt:
        q.opt(udp, do, [(10, ck)] if cookie else [])

    r = Msg()
    r.name(qname)
    r.b += struct.pack("!HH", qtype, 1)
    an = ns = 0
    codes = [c for c, _ in edes]
    ttl = 30 if 3 in codes else rng.choice([60, 300, 300, 3600, 86400])
    if rcode == 0 and codes and codes[0] in (15, 16, 17):
        sink = b"\0" * 16 if qtype == 28 else b"\0\0\0\0"       # blocked: null address
        r.rr(qname, 28 if qtype == 28 else 1, 10, sink)
        an = 1
    elif rcode == 0 and ans and not (codes and codes[0] in (29, 30)):
        an = answers(r, rng, qname, zone, qtype, ttl, do)
    elif rcode in (0, 3):
        r.rr(zone, 6, 900, _soa(zone))                           # NODATA / NXDOMAIN
        ns = 1
    options = []
    if with_opt:
        if cookie:
            options.append((10, ck + rng.getrandbits(128).to_bytes(16, "big")))
        options += [(15, struct.pack("!H", c) + t.encode()) for c, t in edes]
        if client and udp != 512 and rng.random() < 0.1:
            # RFC 8467 block-length padding to a multiple of 128 octets
            size = len(r.b) + 11 + sum(4 + len(d) for _, d in options) + 4
            options.append((12, b"\0" * ((-size) % 128)))
        r.opt(1232, do, options)
    if client:
        rflags = 0x8180 | rcode | (0x0020 if rcode == 0 and do and not edes else 0)
    else:
        rflags = 0x8000 | rcode | (0x0400 if rcode in (0, 3) else 0)
    r.header(rflags, 1, an, ns, 1 if with_opt else 0)
    return bytes(q.b), bytes(r.b)


# --------------------------------------------------------------------------
# the resolver's world: zones, names, clients, authoritative servers
# --------------------------------------------------------------------------
def build_universe(rng, n_zones=300):
    zones, seen, names = [], set(), {}
    while len(zones) < n_zones:
        z = f"{rng.choice(WORDS)}{rng.randrange(1, 1000)}.{rng.choice(TLDS)}."
        if z not in seen:
            seen.add(z)
            zones.append(z)
    for z in zones:
        lst = [z] + [h + "." + z for h in rng.sample(HOSTS, rng.randrange(8, 22))]
        for _ in range(rng.randrange(0, 6)):
            lst.append(f"{rng.getrandbits(32):08x}.{rng.choice(['cdn', 't', 'img'])}.{z}")
        names[z] = lst
    return zones, names


def auth_servers(rng, zones):
    """Return {zone: [(family, address), (family, address)]} in documentation ranges."""
    nets = [bytes([192, 0, 2]), bytes([198, 51, 100]), bytes([203, 0, 113])]
    out = {}
    for z in zones:
        lst = [(1, rng.choice(nets) + bytes([rng.randrange(1, 255)])) for _ in range(2)]
        if rng.random() < 0.2:
            lst[1] = (2, bytes.fromhex("20010db8000a") + rng.getrandbits(80).to_bytes(10, "big"))
        out[z] = lst
    return out


def pick_qtype(rng, apex):
    if apex and rng.random() < 0.1:
        return 48
    r = rng.random()
    if r < 0.56:
        return 1
    if r < 0.81:
        return 28
    if r < 0.91:
        return 65
    if r < 0.96:
        return 16 if apex or rng.random() < 0.3 else 1
    return 15 if apex else 28


class Pools:
    """Client exchanges (templates) and the upstream attempts each one makes on a cache miss.

    ``client[i]`` = (query, response, qname, ede list, plan start, plan length); ``up[j]`` =
    (query, response or None for a timeout, zone wire, (family, server address), ede codes).
    """

    def __init__(self):
        self.client, self.up = [], []

    def add_up(self, q, r, zone, server, codes=()):
        self.up.append((q, r, wire_name(zone), server, tuple(codes)))

    def add_client(self, q, r, qname, edes, plan_start):
        self.client.append((q, r, qname, tuple(edes), plan_start, len(self.up) - plan_start))


UPSTREAM_EDE_TEXTS = {20: ["", "", "recursion disabled"], 18: [""],
                      24: ["zone expired", "zone not loaded", "Zone has expired"]}


def build_pools(rng, n_plain, n_ede, vendor):
    zones, names = build_universe(rng)
    servers = auth_servers(rng, zones)
    # zones broken in one way each, so EDE names cluster by zone as in real incidents
    dnssec_broken, unreachable, blocked, misc = (rng.sample(zones, k) for k in (40, 40, 40, 60))
    pools = Pools()

    def upstream(qn, z, qt, rc, codes=(), answered=True, ans=True):
        srv = rng.choice(servers[z])
        edes = [(c, rng.choice(UPSTREAM_EDE_TEXTS.get(c, [""]))) for c in codes]
        q, r = build_exchange(rng, qn, z, qt, rc, edes, client=False, ans=ans)
        pools.add_up(q, r if answered else None, z, srv, codes)

    def lame(qn, z, qt):
        # a lame server answers REFUSED, half of the time with EDE 20 (Not Authoritative)
        upstream(qn, z, qt, 5, (20,) if rng.random() < 0.5 else ())

    for _ in range(n_plain):
        z = rng.choice(zones)
        qn = rng.choice(names[z])
        qt = pick_qtype(rng, qn == z)
        r = rng.random()
        rc = 0 if r < 0.82 else 3 if r < 0.97 else 2 if r < 0.995 else 5
        nodata = rc == 0 and rng.random() < 0.06
        q, resp = build_exchange(rng, qn, z, qt, rc, [], client=True,
                                 with_opt=rng.random() < 0.9, ans=not nodata)
        start = len(pools.up)
        if rc != 5:                                          # REFUSED: the resolver's ACL
            r = rng.random()
            if r < 0.04:
                lame(qn, z, qt)
            elif r < 0.07:
                upstream(qn, z, qt, 0, answered=False)
            upstream(qn, z, qt, rc, (24,) if rc == 2 and rng.random() < 0.3 else (),
                     ans=not nodata)
        pools.add_client(q, resp, qn, [], start)

    codes = list(EDE_WEIGHTS)
    weights = [EDE_WEIGHTS[c] for c in codes]
    multi = vendor in ("unbound", "bind")
    for i in range(n_ede):
        if i < len(codes):
            ec = (codes[i],)                                 # every code is in the pool
        elif multi and rng.random() < 0.08:
            ec = rng.choice(EDE_SETS)
        else:
            ec = (rng.choices(codes, weights)[0],)
        c0 = ec[0]
        pool = (dnssec_broken if c0 in DNSSEC_CODES else
                unreachable if c0 in (0, 3, 13, 14, 19, 22, 23, 24) else
                blocked if c0 in (4, 15, 16, 17) else misc)
        z = rng.choice(pool)
        qn = rng.choice(names[z])
        qt = rng.choice([1, 16, 48]) if c0 == 30 else pick_qtype(rng, qn == z)
        rc = client_rcode(rng, c0)
        fam, addr = rng.choice(servers[z])
        ip = ".".join(map(str, addr)) if fam == 1 else "2001:db8:a::53"
        edes = [(c, extra_text(vendor, rng, c, qn, qt, z, ip)) for c in ec]
        q, resp = build_exchange(rng, qn, z, qt, rc, edes, client=True)
        start = len(pools.up)
        if 22 in ec and 23 not in ec:                        # every server timed out
            for _ in range(rng.choice([2, 3, 3, 4])):
                upstream(qn, z, qt, 0, answered=False)
        elif 23 in ec:                                       # servers answered, badly
            for _ in range(rng.choice([1, 2, 2, 3])):
                r = rng.random()
                if r < 0.5:
                    lame(qn, z, qt)
                elif r < 0.6:
                    upstream(qn, z, qt, 5, (18,))
                elif r < 0.8:
                    upstream(qn, z, qt, 2)
                else:
                    upstream(qn, z, qt, 0, answered=False)
        elif c0 == 24:
            upstream(qn, z, qt, 2, (24,) if rng.random() < 0.7 else ())
        elif c0 == 3:
            for _ in range(rng.choice([1, 2])):
                upstream(qn, z, qt, 0, answered=False)
        elif c0 in DNSSEC_CODES:
            upstream(qn, z, qt, 0)
            if rng.random() < 0.5:
                upstream(z, z, 48, 0)                        # the zone's DNSKEY RRset
        pools.add_client(q, resp, qn, edes, start)
    return pools


# --------------------------------------------------------------------------
# protobuf and Frame Streams encoding
# --------------------------------------------------------------------------
def varint(n):
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def ld(tag, data):
    """Return a length-delimited protobuf field."""
    return bytes([tag]) + varint(len(data)) + data


def control_frame(ctype, content_type=None):
    """Return a Frame Streams control frame: escape 0, length, type, optional CONTENT_TYPE."""
    body = struct.pack(">I", ctype)
    if content_type is not None:
        body += struct.pack(">II", 1, len(content_type)) + content_type
    return struct.pack(">II", 0, len(body)) + body


def generate(args):
    rng = random.Random(args.seed)
    identity = args.identity or rng.choice(IDENTITIES)
    version = args.version or rng.choice(VERSIONS)
    vendor = vendor_of(version)
    N = args.messages
    n_plain = min(4096, max(1024, N // 100))
    n_ede = min(2048, max(512, N // 200))
    pools = build_pools(rng, n_plain, n_ede, vendor)
    M = len(pools.client)

    # ---- per-template and per-attempt arrays --------------------------
    plan_start = np.array([c[4] for c in pools.client], dtype=np.int64)
    plan_len = np.array([c[5] for c in pools.client], dtype=np.int64)
    answered = np.array([u[1] is not None for u in pools.up], dtype=bool)
    ans_per_tmpl = np.array([int(answered[s:s + n].sum())
                             for s, n in zip(plan_start, plan_len, strict=True)], dtype=np.int64)
    p_miss = np.where(plan_len > 0, 0.3, 0.0)
    p_miss[n_plain:] = np.where(plan_len[n_plain:] > 0, 0.9, 0.0)
    # expected DATA frames per transaction, to size the batch
    frames = 2 + args.duplicates + p_miss * (plan_len + ans_per_tmpl)
    per_tx = ((1 - args.ede_share) * frames[:n_plain].mean()
              + args.ede_share * frames[n_plain:].mean())

    n_v4, n_v6 = 4000, 800
    clients = [(1, bytes([10, 16 + (i >> 16) % 16, (i >> 8) & 255, (i & 255) or 1]))
               for i in range(n_v4)]
    clients += [(2, bytes.fromhex("20010db8000c") + rng.getrandbits(80).to_bytes(10, "big"))
                for _ in range(n_v6)]
    t_start = int(args.start * 1_000_000)
    T = int(N / per_tx * 1.03) + 64
    while True:
        nrng = np.random.default_rng(args.seed)
        rows = transactions(nrng, T, n_plain, n_ede, n_v4, n_v6, args, t_start,
                            args.duration * 1e6 * per_tx / max(N, 1),
                            plan_start, plan_len, answered, p_miss)
        if len(rows["ts"]) >= N:
            break
        T = int(T * 1.2) + 64
    rows = {k: v[:N] for k, v in rows.items()}

    # ---- encode ---------------------------------------------------------
    if args.gzip or args.out.endswith(".gz"):
        raw = open(args.out, "wb")
        fh = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0)
    else:
        raw, fh = None, open(args.out, "wb")
    fh.write(control_frame(2, CONTENT_TYPE))
    write_frames(fh, rows, pools, clients, identity.encode(), version.encode(),
                 include_server=vendor != "unbound")
    fh.write(control_frame(3))
    fh.close()
    if raw is not None:
        raw.close()
    return make_truth(args, rows, pools, M, identity, version, vendor)


def transactions(nrng, T, n_plain, n_ede, n_v4, n_v6, args, t_start, mean_dt, plan_start,
                 plan_len, answered, p_miss):
    """Draw ``T`` client transactions and return their log rows, sorted by time.

    Times are in microseconds.  Each row has a kind (K_*), its time, the time of the query it
    answers, its transaction, and for upstream rows the attempt's template (``att``) with the
    port and DNS id its query and response share.
    """
    rand = nrng.random
    ede = rand(T) < args.ede_share
    # popular names and busy clients come up far more often (a Zipf-like skew)
    ti = np.where(ede, n_plain + (rand(T) * n_ede).astype(np.int64),
                  (rand(T) ** 1.6 * n_plain).astype(np.int64))
    v6 = rand(T) < 0.15
    client = np.where(v6, n_v4 + (rand(T) * n_v6).astype(np.int64),
                      (rand(T) ** 1.3 * n_v4).astype(np.int64))
    transport = np.searchsorted(np.cumsum(TRANSPORT_WEIGHTS), rand(T) * 0.999999)
    qport = nrng.integers(1024, 65536, T)
    dnsid = np.where(transport == DOH, 0, nrng.integers(0, 65536, T))
    gaps = nrng.exponential(mean_dt, T).astype(np.int64) + 1
    t0 = t_start + np.cumsum(gaps) - gaps[0]                  # the first query at --start
    miss = rand(T) < p_miss[ti]
    dup = rand(T) < args.duplicates

    # upstream attempts of the transactions that missed the cache
    natt = np.where(miss, plan_len[ti], 0)
    tx_att = np.repeat(np.arange(T), natt)
    first = np.cumsum(natt) - natt
    k = np.arange(len(tx_att)) - np.repeat(first, natt)
    aidx = plan_start[ti[tx_att]] + k
    ok = answered[aidx]
    rtt = np.clip(nrng.lognormal(np.log(15_000), 1.0, len(aidx)), 300, 2_000_000)
    timeout = nrng.choice([376_000, 752_000, 1_128_000], len(aidx))
    dur = np.where(ok, rtt, timeout).astype(np.int64)
    gap = nrng.integers(20, 200, len(aidx))
    step = gap + dur
    before = np.cumsum(step) - step
    offset = before - np.repeat(before[first[natt > 0]], natt[natt > 0])
    rq_ts = t0[tx_att] + offset + gap
    rr_ts = rq_ts + dur
    up_total = np.bincount(tx_att, weights=step, minlength=T).astype(np.int64)
    hit = np.clip(nrng.lognormal(np.log(120), 0.8, T), 15, 5000).astype(np.int64)
    cr_ts = t0 + np.where(miss, up_total + nrng.integers(20, 200, T), hit)

    ar = np.arange(T)
    none = np.full(T, -1)
    ts = np.concatenate([t0, cr_ts, cr_ts[dup], rq_ts, rr_ts[ok]])
    qts = np.concatenate([t0, t0, t0[dup], rq_ts, rq_ts[ok]])
    kind = np.concatenate([np.full(T, K_CQ), np.full(T, K_CR), np.full(int(dup.sum()), K_DUP),
                           np.full(len(rq_ts), K_RQ), np.full(int(ok.sum()), K_RR)])
    tx = np.concatenate([ar, ar, ar[dup], tx_att, tx_att[ok]])
    att = np.concatenate([none, none, none[dup], aidx, aidx[ok]])
    inst = np.concatenate([none, none, none[dup], np.arange(len(aidx)), np.flatnonzero(ok)])
    uport = nrng.integers(1024, 65536, len(aidx) + 1)        # [-1]: unused by client rows
    uid = nrng.integers(0, 65536, len(aidx) + 1)
    # a duplicate sorts right after its original: same time, the next tie-break value
    tie = 2 * np.arange(len(ts))
    tie[2 * T:2 * T + len(ar[dup])] = 2 * (T + ar[dup]) + 1
    order = np.lexsort((tie, ts))
    tx, inst = tx[order], inst[order]
    return {"ts": ts[order], "qts": qts[order], "kind": kind[order], "tx": tx,
            "att": att[order], "ti": ti[tx], "client": client[tx],
            "transport": transport[tx], "qport": qport[tx], "dnsid": dnsid[tx],
            "uport": uport[inst], "uid": uid[inst]}


def time_fields(us, tag_sec, tag_nsec):
    """Return, for each time in microseconds, its two protobuf fields (uint64 sec, fixed32
    nsec) as one bytes object, encoded column-wise."""
    sec, frac = np.divmod(us, 1_000_000)
    if len(sec) and not (1 << 28 <= sec.min() and sec.max() < 1 << 35):
        return [bytes([tag_sec]) + varint(s) + bytes([tag_nsec]) + struct.pack("<I", f * 1000)
                for s, f in zip(sec.tolist(), frac.tolist(), strict=True)]
    # seconds since 1978 and before 3058 are 5-byte varints: 11 bytes per time
    out = np.empty((len(sec), 11), dtype=np.uint8)
    out[:, 0] = tag_sec
    for i in range(5):
        out[:, 1 + i] = (sec >> (7 * i)) & 0x7F | (0x80 if i < 4 else 0)
    out[:, 6] = tag_nsec
    out[:, 7:11] = (frac * 1000).astype("<u4").view(np.uint8).reshape(-1, 4)
    return out.view("V11").ravel().tolist()


def write_frames(fh, rows, pools, clients, identity, version, include_server):
    """Encode every row as a DATA frame and write them in order."""
    head = ld(0x0A, identity) + ld(0x12, version)
    tail = b"\x78\x01"                                   # Dnstap.type = MESSAGE
    V = [varint(i) for i in range(65536)]                # ports and lengths < 64 KiB
    QPORT = [b"\x30" + v for v in V]
    IDS = [struct.pack(">H", i) for i in range(65536)]
    frame_head = [None] * 65536                           # by Message length

    def data_frame_head(n):
        m = head + b"\x72" + V[n]
        frame_head[n] = h = struct.pack(">I", len(m) + n + len(tail)) + m
        return h

    # client message prefix by (client, transport, type): type, family, protocol, addresses
    server4, server6 = bytes([10, 0, 0, 53]), bytes.fromhex("20010db8000000000000000000000053")
    prefix = []
    for fam, addr in clients:
        for _, proto, _ in TRANSPORTS:
            for mtype in (CLIENT_QUERY, CLIENT_RESPONSE):
                p = b"\x08" + V[mtype] + b"\x10" + V[fam] + (b"\x18" + V[proto] if proto else b"")
                p += ld(0x22, addr)
                if include_server:
                    p += ld(0x2A, server4 if fam == 1 else server6)
                prefix.append(p)
    rport = [b"\x38" + V[t[2]] if include_server else b"" for t in TRANSPORTS]
    # upstream attempt: family, UDP, the resolver's and the server's address; port 53; zone
    up_pre = []
    for q, r, zone, (fam, addr), _ in pools.up:
        own = bytes([10, 0, 0, 2]) if fam == 1 else bytes.fromhex(
            "20010db8000000000000000000000002")
        up_pre.append((b"\x10" + V[fam] + b"\x18\x01" + ld(0x22, own) + ld(0x2A, addr),
                       b"\x5a" + V[len(zone)] + zone, b"\x52" + V[len(q)], q[2:],
                       (b"\x72" + V[len(r)]) if r else b"", r[2:] if r else b""))
    rq_type, rr_type = b"\x08" + V[RESOLVER_QUERY], b"\x08" + V[RESOLVER_RESPONSE]
    cq = [(b"\x52" + V[len(c[0])], c[0][2:]) for c in pools.client]
    cr = [(b"\x72" + V[len(c[1])], c[1][2:]) for c in pools.client]

    pkey = (rows["client"] * len(TRANSPORTS) + rows["transport"]) * 2 + (rows["kind"] != K_CQ)
    join = b"".join
    fhead = body = b""
    for lo in range(0, len(pkey), 65536):          # in slices: Python ints cost 36 bytes each
        sl = slice(lo, lo + 65536)
        cols = [rows["kind"][sl].tolist(), time_fields(rows["qts"][sl], 0x40, 0x4D),
                time_fields(rows["ts"][sl], 0x60, 0x6D), rows["ti"][sl].tolist(),
                pkey[sl].tolist()] + [rows[k][sl].tolist() for k in (
                    "transport", "qport", "dnsid", "att", "uport", "uid")]
        out = []
        app = out.append
        for k, qt, rt, ti, pk, tr, qp, did, a, up, uid in zip(*cols, strict=True):
            if k == K_CQ:
                lh, msg = cq[ti]
                body = join((prefix[pk], QPORT[qp], rport[tr], qt, lh, IDS[did], msg))
            elif k == K_CR:
                lh, msg = cr[ti]
                body = join((prefix[pk], QPORT[qp], rport[tr], qt, rt, lh, IDS[did], msg))
            elif k == K_DUP:        # the same bytes as the frame before
                app(fhead)
                app(body)
                app(tail)
                continue
            else:
                net, zone, qlh, qmsg, rlh, rmsg = up_pre[a]
                if k == K_RQ:
                    body = join((rq_type, net, QPORT[up], b"\x38\x35", qt, qlh, IDS[uid], qmsg,
                                 zone))
                else:
                    body = join((rr_type, net, QPORT[up], b"\x38\x35", qt, zone, rt, rlh,
                                 IDS[uid], rmsg))
            n = len(body)
            fhead = frame_head[n] or data_frame_head(n)
            app(fhead)
            app(body)
            app(tail)
        fh.write(join(out))


def make_truth(args, rows, pools, M, identity, version, vendor):
    kind = rows["kind"]
    counts = np.bincount(kind, minlength=5)
    by_type = {TYPE_NAMES[CLIENT_QUERY]: counts[K_CQ],
               TYPE_NAMES[CLIENT_RESPONSE]: counts[K_CR] + counts[K_DUP],
               TYPE_NAMES[RESOLVER_QUERY]: counts[K_RQ],
               TYPE_NAMES[RESOLVER_RESPONSE]: counts[K_RR]}
    cr = kind == K_CR
    per_tmpl = np.bincount(rows["ti"][cr], minlength=M).tolist()
    with_ede = ede_options = 0
    codes, code_texts, domains = {}, {}, {}
    for i, c in enumerate(per_tmpl):
        edes = pools.client[i][3]
        if not c or not edes:
            continue
        with_ede += c
        for code, text in edes:
            ede_options += c
            codes[code] = codes.get(code, 0) + c
            key = f"{code}|{text}"
            code_texts[key] = code_texts.get(key, 0) + c
            domains.setdefault(code, set()).add(pools.client[i][2])
    per_up = np.bincount(rows["att"][kind == K_RR], minlength=len(pools.up)).tolist()
    up_codes = {}
    for j, c in enumerate(per_up):
        for code in pools.up[j][4] if c else ():
            up_codes[code] = up_codes.get(code, 0) + c
    transport = np.bincount(rows["transport"][cr], minlength=len(TRANSPORTS)).tolist()
    ts = rows["ts"]
    return {
        "generator": "make_dnstap.py",
        "args": {"messages": args.messages, "seed": args.seed, "ede_share": args.ede_share,
                 "duplicates": args.duplicates, "duration": args.duration,
                 "start": args.start, "gzip": bool(args.gzip or args.out.endswith(".gz"))},
        "file": os.path.basename(args.out),
        "file_bytes": os.path.getsize(args.out),
        "identity": identity,
        "version": version,
        "vendor_wording": vendor,
        "messages": int(len(kind)),
        "by_type": {k: int(v) for k, v in by_type.items() if v},
        "duplicates": int(counts[K_DUP]),
        "client_responses": int(counts[K_CR]),
        "client_responses_with_ede": with_ede,
        "client_ede_options": ede_options,
        "client_codes": {str(k): codes[k] for k in sorted(codes)},
        "client_code_texts": dict(sorted(code_texts.items(),
                                         key=lambda kv: (int(kv[0].split("|")[0]), kv[0]))),
        "client_domains_per_code": {str(k): len(domains[k]) for k in sorted(domains)},
        "upstream_responses": int(counts[K_RR]),
        "upstream_ede_options": sum(up_codes.values()),
        "upstream_codes": {str(k): up_codes[k] for k in sorted(up_codes)},
        "transport": {TRANSPORTS[i][0]: n for i, n in enumerate(transport) if n},
        "first_ts_ns": int(ts[0]) * 1000 if len(ts) else None,
        "last_ts_ns": int(ts[-1]) * 1000 if len(ts) else None,
        "notes": [
            "client_* and transport count CLIENT_RESPONSE frames after folding duplicates "
            "(a duplicate is a byte-identical copy of the DATA frame right before it)",
            "by_type and messages count every DATA frame written, duplicates included",
            "upstream_* count RESOLVER_RESPONSE frames; by_type and transport omit zero counts",
            "times: the earliest and latest query_time/response_time in any frame, in ns",
        ],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Write a deterministic dnstap (Frame Streams) log of a recursive "
        "resolver's traffic with Extended DNS Errors (RFC 8914), plus a JSON truth file "
        "(OUT.truth.json) for benchmarking dnstap readers.",
        epilog="Example: make_dnstap.py /tmp/bench-1m.dnstap --messages 1000000 --seed 1")
    ap.add_argument("out", metavar="OUT.dnstap", help="output file")
    ap.add_argument("--messages", "-n", type=int, default=100000,
                    help="number of dnstap messages (DATA frames) to write [100000]")
    ap.add_argument("--seed", "-s", type=int, default=1,
                    help="random seed; same seed => same bytes [1]")
    ap.add_argument("--ede-share", type=float, default=0.03, metavar="F",
                    help="fraction of client responses carrying EDE [0.03]")
    ap.add_argument("--duplicates", type=float, default=0.01, metavar="F",
                    help="fraction of client responses logged twice [0.01]")
    ap.add_argument("--duration", type=float, default=3600.0, metavar="SEC",
                    help="approximate time span of the log in seconds [3600]")
    ap.add_argument("--start", type=int, default=1735689600, metavar="EPOCH",
                    help="time of the first query [1735689600]")
    ap.add_argument("--identity", help="Dnstap.identity [chosen by --seed]")
    ap.add_argument("--version", help="Dnstap.version; its resolver family (unbound, BIND, Knot, "
                    "PowerDNS) sets the EXTRA-TEXT wording [chosen by --seed]")
    ap.add_argument("--gzip", action="store_true",
                    help="gzip the output (implied when OUT ends in .gz)")
    ap.add_argument("--truth", metavar="PATH", help="truth JSON path [OUT.truth.json]")
    ap.add_argument("--quiet", "-q", action="store_true",
                    help="do not print the truth JSON on stdout")
    args = ap.parse_args(argv)
    if args.messages < 0:
        ap.error("--messages must be >= 0")
    for name in ("ede_share", "duplicates"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            ap.error("--{} must be within [0, 1]".format(name.replace("_", "-")))
    t0 = time.perf_counter()
    truth = generate(args)
    el = time.perf_counter() - t0
    truth_path = args.truth or args.out + ".truth.json"
    with open(truth_path, "w", encoding="utf-8") as f:
        json.dump(truth, f, indent=1, ensure_ascii=False)
        f.write("\n")
    if not args.quiet:
        json.dump(truth, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    rate = truth["messages"] / el if el else 0
    sys.stderr.write(f"wrote {truth['messages']} messages ({truth['file_bytes']} bytes) in "
                     f"{el:.2f}s ({rate:.0f} msg/s); truth: {truth_path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
