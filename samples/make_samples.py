#!/usr/bin/env python3
"""Build the sample captures in samples/ and the counts an analyzer must find in them.

Usage: python3 samples/make_samples.py [OUTDIR]      (default: the folder of this script)

Every run writes byte-identical files: timestamps, DNS ids and ports come from seeded
``random.Random`` streams, never from the clock. Addresses are documentation prefixes
(RFC 5737, RFC 3849, RFC 7042 §2.1.2 for MACs) and names sit under example.com/.net/.org
and .test. ``expected.json`` is written from the generator's own bookkeeping: each DNS
message is counted when it is built, not by decoding the files.

The files are written here with ``struct`` rather than scapy's writers: scapy's
``PcapWriter`` cannot write LINKTYPE_NULL (0), writes the whole packet when given a smaller
``caplen``, and its ``PcapNgWriter`` has one link type and time resolution per file.
"""

from __future__ import annotations

import json
import random
import struct
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scapy.layers.dns import (
    DNS,
    DNSQR,
    DNSRR,
    DNSRRDNSKEY,
    DNSRRMX,
    DNSRROPT,
    DNSRRSOA,
    EDNS0ExtendedDNSError,
    dns_compress,
)
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import CookedLinux, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw

HERE = Path(__file__).resolve().parent

# LINKTYPE_* values as stored in capture files (tcpdump.org/linktypes.html).
LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL = 0, 1, 101, 113
LINKTYPE_USER0 = 147

# qtypes used below (RFC 1035, RFC 3596, RFC 4034, RFC 9460)
A, MX, TXT, AAAA, DNSKEY, HTTPS, NXNAME = 1, 15, 16, 28, 48, 65, 128
NOERROR, SERVFAIL, NXDOMAIN, REFUSED = 0, 2, 3, 5
RCODE_NAMES = {NOERROR: "NOERROR", SERVFAIL: "SERVFAIL", NXDOMAIN: "NXDOMAIN", REFUSED: "REFUSED"}


# ---------------------------------------------------------------------------------------------
# Hosts
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Host:
    """A machine on the capture link: MAC, IPv4 and (optionally) IPv6 address."""

    mac: str
    ip4: str
    ip6: str | None = None


def doc_mac(n: int) -> str:
    """Return the n-th MAC of the documentation block 00-00-5E-00-53-00/24 (RFC 7042)."""
    return f"00:00:5e:00:53:{n:02x}"


RESOLVER = Host(doc_mac(0x35), "192.0.2.53", "2001:db8::53")
CLIENTS = tuple(
    Host(doc_mac(n), f"192.0.2.{n}", f"2001:db8::{n}" if n % 3 == 0 else None)
    for n in range(10, 26)
)
OUTSIDER = Host(doc_mac(0xFE), "203.0.113.77")   # not in the resolver's ACL: gets REFUSED
UPSTREAM = "198.51.100.7"                        # the authoritative server named in texts


# ---------------------------------------------------------------------------------------------
# Frames and bookkeeping
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """One captured record: timestamp in ns, link-layer bytes, pcapng interface."""

    ts_ns: int
    data: bytes
    iface: int = 0


@dataclass
class Sample:
    """The frames of one capture and the counts an analyzer must find in them."""

    frames: list[Frame] = field(default_factory=list)
    queries: int = 0
    responses: int = 0
    responses_with_ede: int = 0
    ede: Counter[int] = field(default_factory=Counter)
    rcodes: Counter[str] = field(default_factory=Counter)
    transports: Counter[str] = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, ts_ns: int, data: bytes | Packet, iface: int = 0) -> None:
        self.frames.append(Frame(ts_ns, bytes(data), iface))

    def count(self, msg: DNS, transport: str = "udp") -> None:
        """Count a DNS message that an analyzer must decode (call once per message)."""
        if not msg.qr:
            self.queries += 1
            return
        self.responses += 1
        self.rcodes[RCODE_NAMES[msg.rcode]] += 1
        self.transports[transport] += 1
        codes = ede_codes(msg)
        self.ede.update(codes)
        self.responses_with_ede += bool(codes)

    def malformed(self, why: str) -> None:
        """Note that the frame added last holds a response that must be rejected."""
        self.extra.setdefault("malformed_responses", {})[str(len(self.frames))] = why

    def sorted_frames(self) -> list[Frame]:
        # stable: frames with equal timestamps keep the order they were added in
        return sorted(self.frames, key=lambda f: f.ts_ns)

    def expected(self, packets: int | None = None) -> dict[str, Any]:
        """Return this sample's entry of expected.json; ``packets`` keeps only the first ones."""
        kept = self.sorted_frames()[:packets]
        out: dict[str, Any] = {
            "packets": len(kept),
            "first_ts_ns": kept[0].ts_ns if kept else None,
            "last_ts_ns": kept[-1].ts_ns if kept else None,
            "dns_queries": self.queries,
            "dns_responses": self.responses,
            "responses_with_ede": self.responses_with_ede,
            "ede_options": sum(self.ede.values()),
            "ede_by_code": {str(c): n for c, n in sorted(self.ede.items())},
            "rcodes": dict(sorted(self.rcodes.items())),
            "transports": dict(sorted(self.transports.items())),
        }
        out.update(self.extra)
        return out


def ede_codes(msg: DNS) -> list[int]:
    """Return the INFO-CODEs of the EDE options in a message we built."""
    return [
        opt.info_code
        for rr in (msg.ar or [])
        if isinstance(rr, DNSRROPT)
        for opt in (rr.rdata or [])
        if isinstance(opt, EDNS0ExtendedDNSError)
    ]


def seconds(epoch_s: float) -> int:
    """Return an epoch time in ns, rounded to the microsecond (for µs-resolution files)."""
    return round(epoch_s * 1_000_000) * 1000


# ---------------------------------------------------------------------------------------------
# DNS messages
# ---------------------------------------------------------------------------------------------

def ede(code: int, text: str | bytes = "") -> EDNS0ExtendedDNSError:
    """Return an EDE option (RFC 8914 §2); ``code`` stays an integer for codes scapy lacks."""
    raw_text = text.encode() if isinstance(text, str) else text
    return EDNS0ExtendedDNSError(info_code=code, extra_text=raw_text)


def opt_rr(options: Sequence[Packet] = (), *, size: int = 1232, do: bool = False) -> DNSRROPT:
    """Return an OPT pseudo-RR (RFC 6891 §6.1.2) carrying ``options``."""
    return DNSRROPT(rclass=size, z=0x8000 if do else 0, rdata=list(options))


def make_query(qid: int, qname: str | bytes, qtype: int, *, edns: bool = True,
               do: bool = False, size: int = 1232) -> DNS:
    """Return a recursive query, with an OPT RR when ``edns``."""
    return DNS(id=qid, rd=1, qd=[DNSQR(qname=qname, qtype=qtype)],
               ar=[opt_rr(size=size, do=do)] if edns else [])


def make_response(query: DNS, rcode: int = NOERROR, *, an: Sequence[Packet] = (),
                  ns: Sequence[Packet] = (), edes: Sequence[Packet] = (),
                  size: int = 1232) -> DNS:
    """Return the response to ``query``: same id and question, OPT echoed when it had one.

    EDE options need an OPT RR, and a resolver only sends one to a client that sent one
    (RFC 6891 §7), so asking for EDE on a query without EDNS is a bug in this script.
    """
    q_opt = [rr for rr in (query.ar or []) if isinstance(rr, DNSRROPT)]
    if edes and not q_opt:
        raise ValueError("EDE needs a query with EDNS")
    ar = [opt_rr(edes, size=size, do=bool(q_opt[0].z & 0x8000))] if q_opt else []
    return DNS(id=query.id, qr=1, rd=query.rd, ra=1, rcode=rcode, qd=query.qd,
               an=list(an), ns=list(ns), ar=ar)


def wire(msg: DNS) -> bytes:
    """Return the message as sent by a resolver: with name compression (RFC 1035 §4.1.4)."""
    return bytes(dns_compress(msg))


def soa(zone: str) -> DNSRRSOA:
    return DNSRRSOA(rrname=zone, ttl=3600, mname=f"ns1.{zone}", rname=f"hostmaster.{zone}",
                    serial=2024031201, refresh=7200, retry=3600, expire=1209600, minimum=300)


def addr4(name: str) -> str:
    return f"203.0.113.{zlib.crc32(name.encode()) % 250 + 1}"


def addr6(name: str) -> str:
    return f"2001:db8:1::{zlib.crc32(name.encode()) % 0xFFFF + 1:x}"


def positive_answer(qname: str, qtype: int, zone: str, ttl: int) -> tuple[list, list]:
    """Return (answer, authority) sections of a NOERROR response for the names we invent."""
    if qtype == A:
        return [DNSRR(rrname=qname, type=A, ttl=ttl, rdata=addr4(qname))], []
    if qtype == AAAA:
        return [DNSRR(rrname=qname, type=AAAA, ttl=ttl, rdata=addr6(qname))], []
    if qtype == MX:
        return [DNSRRMX(rrname=qname, ttl=ttl, preference=10, exchange=f"mail.{zone}")], []
    if qtype == TXT:
        return [DNSRR(rrname=qname, type=TXT, ttl=ttl, rdata=["v=spf1 -all"])], []
    return [], [soa(zone)]      # HTTPS and the rest: NODATA (RFC 2308 §2.2)


# ---------------------------------------------------------------------------------------------
# Links and transports
# ---------------------------------------------------------------------------------------------

Link = Callable[[Packet, Host, Host], bytes]


def ethernet(ip: Packet, src: Host, dst: Host) -> bytes:
    return bytes(Ether(src=src.mac, dst=dst.mac) / ip)


def vlan(*tags: int) -> Link:
    """Return an Ethernet link with 802.1Q tags; two tags make QinQ (outer 802.1ad 0x88a8)."""
    def link(ip: Packet, src: Host, dst: Host) -> bytes:
        frame = Ether(src=src.mac, dst=dst.mac)
        if len(tags) == 2:
            frame /= Dot1AD(vlan=tags[0])
        return bytes(frame / Dot1Q(vlan=tags[-1]) / ip)
    return link


def cooked(ip: Packet, src: Host, dst: Host) -> bytes:
    """Linux cooked v1 (LINKTYPE_LINUX_SLL) as seen on the resolver: in = 0, out = 4."""
    pkttype = 4 if src == RESOLVER else 0
    mac = bytes.fromhex(src.mac.replace(":", "")) + b"\0\0"
    return bytes(CookedLinux(pkttype=pkttype, lladdrtype=1, lladdrlen=6, src=mac) / ip)


def bsd_null(ip: Packet, src: Host, dst: Host) -> bytes:
    """BSD loopback (LINKTYPE_NULL): a host-order AF_ value; AF_INET6 is 30 on macOS."""
    family = 2 if isinstance(ip, IP) else 30
    return struct.pack("<I", family) + bytes(ip)


def raw_ip(ip: Packet, src: Host, dst: Host) -> bytes:
    return bytes(ip)


def ip_layer(src: Host, dst: Host, v6: bool) -> Packet:
    if v6:
        return IPv6(src=src.ip6, dst=dst.ip6, hlim=64)
    return IP(src=src.ip4, dst=dst.ip4, ttl=64)


def udp_frames(client: Host, query: DNS, response: DNS, *, sport: int, dport: int = 53,
               v6: bool = False, server: Host = RESOLVER,
               link: Link = ethernet) -> tuple[bytes, bytes]:
    """Return the query frame and the response frame of one UDP exchange."""
    q = ip_layer(client, server, v6) / UDP(sport=sport, dport=dport) / Raw(wire(query))
    r = ip_layer(server, client, v6) / UDP(sport=dport, dport=sport) / Raw(wire(response))
    return link(q, client, server), link(r, server, client)


def udp_exchange(sample: Sample, t_ns: int, client: Host, query: DNS, response: DNS,
                 rtt_ns: int, *, iface: int = 0, **kw: Any) -> None:
    """Add a UDP query and, ``rtt_ns`` later, its response; count both messages."""
    q, r = udp_frames(client, query, response, **kw)
    sample.add(t_ns, q, iface)
    sample.add(t_ns + rtt_ns, r, iface)
    sample.count(query)
    sample.count(response)


# ---------------------------------------------------------------------------------------------
# Resolver traffic (incident, before, after)
# ---------------------------------------------------------------------------------------------

# zone -> (weight in ordinary traffic, host labels)
ZONES: dict[str, tuple[int, tuple[str, ...]]] = {
    "example.com": (10, ("www", "mail", "static", "login", "api")),
    "shop.example.com": (3, ("www", "api", "cdn", "img", "checkout")),
    "blog.example.com": (3, ("www", "feeds", "media")),
    "intranet.example.com": (4, ("hr", "jira", "files", "wiki")),
    "example.net": (8, ("www", "mail", "vpn", "ns1")),
    "cdn.example.net": (9, ("edge1", "edge2", "assets", "video")),
    "media.example.net": (4, ("img", "stream")),
    "example.org": (6, ("www", "wiki", "git", "docs")),
    "news.example.org": (5, ("www", "rss", "live")),
    "status.example.org": (2, ("www", "api")),
    "mail.example.org": (3, ("smtp", "imap", "autoconfig")),
    "corp.test": (3, ("dc1", "print", "proxy")),
    "lab.test": (2, ("build", "ci", "registry")),
    # queried by their own streams below, never by ordinary traffic
    "lame.example.net": (0, ("www", "ftp")),
    "ads.example.org": (0, ("track", "pixel", "banner")),
    "broken.example.org": (0, ("www", "api")),
}
SHOP = "shop.example.com"
SHOP_KEY_TAG = 24160
MISSPELLED = ("wwww", "old", "staging", "test", "ww")
QTYPE_MIX = ((A, 55), (AAAA, 30), (HTTPS, 8), (MX, 3), (TXT, 4))


@dataclass(frozen=True)
class Ask:
    """One client question and the dice rolled for it before its outcome is decided.

    Rolling the same number of values for every question keeps the random streams of
    before.pcap and after.pcap aligned although their outcomes differ.
    """

    t_ns: int
    client: Host
    v6: bool
    sport: int
    qid: int
    qname: str
    qtype: int
    zone: str
    edns: bool
    do: bool
    speed: float     # 0..1: where the latency falls in its outcome's range
    luck: float      # 0..1: compared with stale-answer and similar probabilities

    @property
    def misspelled(self) -> bool:
        return self.qname.split(".")[0] in MISSPELLED


def roll(rng: random.Random, t_ns: int, zone: str, *, host: str | None = None,
         qtype: int | None = None, client: Host | None = None) -> Ask:
    """Return a question to ``zone`` at ``t_ns`` with every random choice drawn from ``rng``."""
    c = CLIENTS[rng.randrange(len(CLIENTS))]
    v6_roll, sport, qid = rng.random(), rng.randrange(32768, 61000), rng.randrange(65536)
    t_roll, h_roll, nx_roll = rng.random(), rng.random(), rng.random()
    edns_roll, do_roll, speed, luck = rng.random(), rng.random(), rng.random(), rng.random()
    client = client or c
    if qtype is None:
        qtype = pick(QTYPE_MIX, t_roll)
    hosts = ZONES[zone][1]
    if host is None:
        host = hosts[int(h_roll * len(hosts))]
        if nx_roll < 0.07:
            host = MISSPELLED[int(nx_roll / 0.07 * len(MISSPELLED))]
    qname = zone if qtype in (MX, TXT) else f"{host}.{zone}"
    return Ask(t_ns, client, client.ip6 is not None and v6_roll < 0.4, sport, qid, qname,
               qtype, zone, edns_roll < 0.92, do_roll < 0.4, speed, luck)


def pick(weighted: Sequence[tuple[Any, float]], u: float) -> Any:
    """Return the item whose share of the total weight contains ``u`` (0 <= u < 1)."""
    total = sum(w for _, w in weighted)
    acc = 0.0
    for item, w in weighted:
        acc += w / total
        if u < acc:
            return item
    return weighted[-1][0]


def arrivals(rng: random.Random, per_second: float, start_s: float, end_s: float) -> list[int]:
    """Return Poisson arrival times in ns, on whole microseconds, in [start_s, end_s)."""
    times, t = [], start_s
    while per_second > 0:
        t += rng.expovariate(per_second)
        if t >= end_s:
            break
        times.append(round(t * 1e6) * 1000)
    return times


def between(lo_ms: float, hi_ms: float, u: float) -> int:
    """Return a latency in ns between lo_ms and hi_ms, on whole microseconds."""
    return round((lo_ms + (hi_ms - lo_ms) * u) * 1000) * 1000


def expired_text(expiration: int, zone: str = SHOP) -> str:
    # 1.1.1.1 wording for EDE 7 (cloudflare-docs extended-dns-error-codes.mdx)
    return (f"for DNSKEY {zone}., id = {SHOP_KEY_TAG}: "
            f"RRSIG {zone}., expiration = {expiration}")


def bogus_text(qname: str, qtype: int, zone: str = SHOP) -> str:
    # Unbound wording for EDE 6 (util/module.c errinf_to_str_bogus)
    tname = {A: "A", AAAA: "AAAA", HTTPS: "HTTPS", MX: "MX", TXT: "TXT"}[qtype]
    return (f"validation failure <{qname}. {tname} IN>: signature expired from {UPSTREAM} "
            f"for key {zone}. while building chain of trust")


def reply(ask: Ask, outcome: str, *, expiration: int = 0) -> tuple[DNS, DNS, int]:
    """Return (query, response, latency in ns) for ``ask`` resolved as ``outcome``."""
    failing = outcome not in ("answer", "nxdomain")
    q = make_query(ask.qid, ask.qname, ask.qtype, edns=ask.edns or failing, do=ask.do)
    zone, s = ask.zone, ask.speed
    cached = s < 0.7   # most answers come from the cache
    if outcome == "answer" and ask.misspelled:
        outcome = "nxdomain"
    if outcome == "answer":
        an, ns = positive_answer(ask.qname, ask.qtype, zone, 300)
        rtt = between(0.1, 2, s / 0.7) if cached else between(8, 60, (s - 0.7) / 0.3)
        return q, make_response(q, an=an, ns=ns), rtt
    if outcome == "nxdomain":
        rtt = between(0.1, 2, s / 0.7) if cached else between(10, 70, (s - 0.7) / 0.3)
        return q, make_response(q, NXDOMAIN, ns=[soa(zone)]), rtt
    if outcome == "stale":
        # RFC 8767 §4: served after the client-response timer, with TTL 30
        an, ns = positive_answer(ask.qname, ask.qtype, zone, 30)
        return q, make_response(q, an=an, ns=ns, edes=[ede(3)]), between(1800, 1806, s)
    if outcome == "expired":
        return q, make_response(q, SERVFAIL, edes=[ede(7, expired_text(expiration))]), \
            between(60, 320, s)
    if outcome == "bogus":
        return q, make_response(q, SERVFAIL, edes=[ede(6, bogus_text(ask.qname, ask.qtype))]), \
            between(60, 320, s)
    if outcome == "expired+lame":
        edes = [ede(7, expired_text(expiration)), ede(22, f"at delegation {SHOP}.")]
        return q, make_response(q, SERVFAIL, edes=edes), between(1500, 2900, s)
    if outcome == "lame":
        return q, make_response(q, SERVFAIL, edes=[ede(22, f"at delegation {zone}.")]), \
            between(1500, 2900, s)
    if outcome == "blocked":
        return q, make_response(q, NXDOMAIN, ns=[soa(zone)], edes=[ede(15)]), between(0.05, 0.4, s)
    if outcome == "dnskey-missing":
        text = f"no SEP matching the DS found for {zone}."
        return q, make_response(q, SERVFAIL, edes=[ede(9, text)]), between(40, 200, s)
    if outcome == "prohibited":
        return q, make_response(q, REFUSED, edes=[ede(18)]), between(0.03, 0.2, s)
    raise ValueError(outcome)


@dataclass(frozen=True)
class Scenario:
    """A stretch of one resolver's traffic; rates are per second, times in s from start."""

    seed: str
    start: int                        # epoch seconds
    duration: int
    rate: float = 1.05                # ordinary questions
    outage: tuple[float, float] | None = None   # shop.example.com RRSIGs expired
    retry_rate: float = 0.45          # extra shop.example.com questions during the outage
    stale: tuple[float, float] = (0.012, 0.05)  # share of answers served stale: outside, during
    lame_rate: float = 0.006
    blocked: tuple[str, ...] = ()     # names the resolver blocks (EDE 15)
    blocked_rate: float = 0.0
    dnskey_missing_rate: float = 0.0
    refused_at: tuple[float, ...] = ()  # the outsider's questions (REFUSED, EDE 18)
    double_every: int = 60            # every n-th outage failure carries 7 + 22


def resolver_traffic(sc: Scenario) -> Sample:
    """Return the sample for a scenario: every question answered, queries before responses."""
    sample = Sample()
    t0 = sc.start

    def stream(name: str) -> random.Random:
        return random.Random(f"{sc.seed}/{name}")

    def in_outage(t_ns: int) -> bool:
        return sc.outage is not None and \
            sc.outage[0] <= t_ns / 1e9 - t0 < sc.outage[1]

    expiration = t0 + int(sc.outage[0]) - 2 if sc.outage else 0
    failures = 0
    asks: list[tuple[Ask, str]] = []

    rng = stream("ordinary")
    zones = [(z, w) for z, (w, _) in ZONES.items() if w]
    for t in arrivals(rng, sc.rate, t0, t0 + sc.duration):
        zone = pick(zones, rng.random())
        ask = roll(rng, t, zone)
        stale_share = sc.stale[1] if in_outage(t) else sc.stale[0]
        if zone == SHOP and in_outage(t):
            outcome = "shop-failure"
        elif ask.luck < stale_share and ask.qtype in (A, AAAA) and not ask.misspelled:
            outcome = "stale"
        else:
            outcome = "answer"
        asks.append((ask, outcome))
    if sc.outage:
        rng = stream("retries")
        for t in arrivals(rng, sc.retry_rate, t0 + sc.outage[0], t0 + sc.outage[1]):
            asks.append((roll(rng, t, SHOP, qtype=pick([(A, 6), (AAAA, 4)], rng.random())),
                         "shop-failure"))
    rng = stream("lame")
    for t in arrivals(rng, sc.lame_rate, t0, t0 + sc.duration):
        asks.append((roll(rng, t, "lame.example.net", qtype=A), "lame"))
    rng = stream("blocked")
    for t in arrivals(rng, sc.blocked_rate, t0, t0 + sc.duration):
        name = sc.blocked[rng.randrange(len(sc.blocked))]
        host, zone = name.split(".", 1)
        asks.append((roll(rng, t, zone, host=host, qtype=A), "blocked"))
    rng = stream("dnskey-missing")
    for t in arrivals(rng, sc.dnskey_missing_rate, t0, t0 + sc.duration):
        asks.append((roll(rng, t, "broken.example.org", qtype=A), "dnskey-missing"))
    rng = stream("refused")
    for at in sc.refused_at:
        asks.append((roll(rng, seconds(t0 + at), "example.com", qtype=A, client=OUTSIDER),
                     "prohibited"))

    asks.sort(key=lambda a: a[0].t_ns)
    for ask, outcome in asks:
        if outcome == "shop-failure":
            failures += 1
            if failures % sc.double_every == 0:
                outcome = "expired+lame"
            else:
                outcome = "expired" if ask.luck < 0.55 else "bogus"
        q, r, rtt = reply(ask, outcome, expiration=expiration)
        udp_exchange(sample, ask.t_ns, ask.client, q, r, rtt, sport=ask.sport, v6=ask.v6)
    if sc.outage:
        sample.extra["incident"] = {
            "zone": SHOP,
            "start_epoch": t0 + sc.outage[0],
            "end_epoch": t0 + sc.outage[1],
            "rrsig_expiration": expiration,
            "codes": [6, 7],
        }
    return sample


def incident() -> Sample:
    """Half an hour of 192.0.2.53 serving 16 clients; shop.example.com breaks at minute 12.

    At 09:12:00 the RRSIGs of shop.example.com expire: for 8m30s every question under it
    fails with SERVFAIL and EDE 7 (1.1.1.1 wording) or EDE 6 (Unbound wording), and clients
    retry, so the zone's query rate jumps tenfold. Every 60th failure also carries EDE 22.
    Stale answers (EDE 3) run at a low rate and quadruple during the outage. Steady
    background: EDE 22 for lame.example.net, 15 for ads.example.org, 9 for
    broken.example.org, and 18 for an outside host that is not allowed to query.
    """
    return resolver_traffic(Scenario(
        seed="incident", start=1710234000, duration=1800, outage=(720.0, 1230.0),
        blocked=("track.ads.example.org", "pixel.ads.example.org", "banner.ads.example.org"),
        blocked_rate=0.006, dnskey_missing_rate=0.003, refused_at=(133.25, 811.5, 1544.75),
    ))


def before() -> Sample:
    """Ten minutes while shop.example.com is failing (EDE 7/6), with stale answers and 22."""
    return resolver_traffic(Scenario(
        seed="diff", start=1710403200, duration=600, rate=0.6, outage=(0.0, 600.0),
        retry_rate=0.15, stale=(0.03, 0.03), lame_rate=0.01,
    ))


def after() -> Sample:
    """The same ten minutes a day later, after the re-signing: 7/6 gone, 3 and 22 remain,
    and a new blocklist entry answers telemetry.example.net with EDE 15."""
    return resolver_traffic(Scenario(
        seed="diff", start=1710489600, duration=600, rate=0.6, stale=(0.03, 0.03),
        lame_rate=0.01, blocked=("telemetry.example.net",), blocked_rate=0.012,
    ))


# ---------------------------------------------------------------------------------------------
# all-codes.pcapng
# ---------------------------------------------------------------------------------------------

# (code, EXTRA-TEXT, rcode, name) with wording after the implementations in
# shared/reference/ede-registry-and-texts.md; "" where implementations send no text.
ALL_CODES: tuple[tuple[int, str | bytes, int, str], ...] = (
    (0, "DNS Cookie needed for UDP replies", REFUSED, "cookie.example.com"),
    (1, "failed to verify alg.example.com. A: unsupported key size, "
        "DNSKEY alg.example.com., id = 4417", NOERROR, "alg.example.com"),
    (2, "no supported DS digest type for digest.example.com.", NOERROR, "digest.example.com"),
    (3, "", NOERROR, "stale.example.com"),
    (4, "5DO5", NOERROR, "forged.example.com"),
    (5, "V5T7: forwarded EDE code", SERVFAIL, "indeterminate.example.com"),
    (6, f"validation failure <www.bogus.example.com. A IN>: signature crypto failed from "
        f"{UPSTREAM} for key bogus.example.com. while building chain of trust", SERVFAIL,
        "www.bogus.example.com"),
    (7, "for DNSKEY expired.example.com., id = 24160: RRSIG expired.example.com., "
        "expiration = 1710233998", SERVFAIL, "expired.example.com"),
    (8, "for DNSKEY notyet.example.com., id = 51370: RRSIG notyet.example.com., "
        "inception = 1710406800", SERVFAIL, "notyet.example.com"),
    (9, "no SEP matching the DS found for broken.example.org.", SERVFAIL, "broken.example.org"),
    (10, "for DNSKEY nosig.example.net., id = 33410", SERVFAIL, "nosig.example.net"),
    (11, "for DNSKEY nozone.example.net., id = 5021", SERVFAIL, "nozone.example.net"),
    (12, "failed to verify an insecure referral proof for nsec.example.org", SERVFAIL,
     "www.nsec.example.org"),
    (13, "", SERVFAIL, "cached.example.net"),
    (14, "", SERVFAIL, "notready.example.net"),
    (15, "🚧 Blocked 🚧", NXDOMAIN, "blocked.example.org"),
    (16, "", NXDOMAIN, "censored.example.org"),
    (17, '{"c":["mailto:abuse@example.net"],"j":"malware","s":6,"o":"Example Filter"}',
     NOERROR, "filtered.example.org"),
    (18, "", REFUSED, "prohibited.example.org"),
    (19, "stale data prioritized over lookup", NXDOMAIN, "stale-nx.example.com"),
    (20, "recursion disabled", REFUSED, "www.example.test"),
    (21, "57CK", NOERROR, "notsupported.example.net"),
    (22, "at delegation lame.example.net.", SERVFAIL, "www.lame.example.net"),
    (23, f"{UPSTREAM}:53 rcode=SERVFAIL for neterr.example.com. A", SERVFAIL,
     "neterr.example.com"),
    (24, "zone expired", SERVFAIL, "invalid.example.org"),
    (25, "XXAP", SERVFAIL, "backwards.example.com"),
    (26, "", SERVFAIL, "early.example.com"),
    (27, "AUO2", NOERROR, "iterations.example.net"),
    (28, "", REFUSED, "policy.example.net"),
    (29, "Result synthesized from aggressive NSEC cache (RFC8198)", NXDOMAIN,
     "nothere.example.org"),
    (30, "Invalid Query Type", NOERROR, "qtype.example.org"),
    (31, "", REFUSED, "ratelimited.example.com"),
    (32, "", REFUSED, "quota.example.com"),
    (33, "Negative Trust Anchor applied (RFC 7646)", NOERROR, "nta.example.net"),
    (300, "", SERVFAIL, "unassigned.example.test"),           # unassigned
    (49152, "vendor diagnostic 0x2a", SERVFAIL, "private.example.test"),  # private use
    (65535, "", SERVFAIL, "private-max.example.test"),
)
IFACE_ETHER, IFACE_RAW = 0, 1


def all_codes() -> Sample:
    """Every INFO-CODE 0..33, one unassigned (300) and two private-use codes, on two interfaces.

    Interface 0 is Ethernet with the default microsecond timestamps, interface 1 is a raw-IP
    tunnel with nanosecond timestamps (if_tsresol 9); transactions alternate between them.
    Extras: one response with three EDE options (BIND sends up to three), one EXTRA-TEXT
    ending in a NUL (RFC 8914 §2 allows it; the count is of the option, the text is without
    the NUL), and 15 with non-ASCII text.
    """
    sample = Sample()
    rng = random.Random("all-codes")
    t0 = 1710320400
    cases: list[tuple[list[Packet], int, str]] = [
        ([ede(code, text)], rcode, name) for code, text, rcode, name in ALL_CODES
    ]
    cases.append(([ede(9, "no DNSKEY found broken.example.org/DNSKEY"), ede(22), ede(23)],
                  SERVFAIL, "www.broken.example.org"))
    cases.append(([ede(23, f"{UPSTREAM}:53 timed out for nul.example.net. A\0")],
                  SERVFAIL, "nul.example.net"))
    for i, (edes, rcode, name) in enumerate(cases):
        iface = i % 2
        client = CLIENTS[i % len(CLIENTS)]
        v6 = iface == IFACE_RAW and client.ip6 is not None
        # RFC 9824: a query for the NXNAME meta-type (128) gets EDE 30
        qtype = NXNAME if edes[0].info_code == 30 else A if i % 5 else AAAA
        q = make_query(0x4000 + i, name, qtype)
        an: list[Packet] = []
        ns: list[Packet] = []
        if rcode == NOERROR:
            an, ns = positive_answer(name, qtype, name.split(".", 1)[1], 30)
        elif rcode == NXDOMAIN:
            ns = [soa(name.split(".", 1)[1])]
        r = make_response(q, rcode, an=an, ns=ns, edes=edes)
        # 40 ms apart with up to 90 ms latency, so the two interfaces' packets interleave;
        # microseconds on Ethernet, sub-microsecond digits on the nanosecond interface
        t = seconds(t0 + 0.04 * i + rng.random() * 0.02)
        rtt = rng.randrange(200_000, 90_000_000)
        if iface == IFACE_RAW:
            t += rng.randrange(1, 1000)
        else:
            rtt -= rtt % 1000
        udp_exchange(sample, t, client, q, r, rtt, sport=rng.randrange(32768, 61000), v6=v6,
                     link=raw_ip if iface == IFACE_RAW else ethernet, iface=iface)
    return sample


# ---------------------------------------------------------------------------------------------
# transports.pcap and its link-type siblings
# ---------------------------------------------------------------------------------------------

def tcp_segment(src: Host, dst: Host, sport: int, dport: int, seq: int, ack: int,
                flags: str, payload: bytes = b"") -> bytes:
    ip = IP(src=src.ip4, dst=dst.ip4, ttl=64, flags="DF")
    return ethernet(ip / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags,
                             window=64240) / Raw(payload), src, dst)


class TcpConversation:
    """A DNS-over-TCP connection (RFC 7766) whose segments are laid out by hand."""

    def __init__(self, sample: Sample, client: Host, sport: int, t_ns: int,
                 client_seq: int, server_seq: int):
        self.sample, self.client, self.sport, self.t = sample, client, sport, t_ns
        self.seq = {True: client_seq, False: server_seq}   # keyed by "from client"

    def send(self, from_client: bool, flags: str, payload: bytes = b"", *, gap_ms: float = 0.4,
             seq: int | None = None) -> None:
        """Capture one segment; ``seq`` overrides the next sequence number (no advance)."""
        self.t += round(gap_ms * 1000) * 1000
        src, dst = (self.client, RESOLVER) if from_client else (RESOLVER, self.client)
        sport, dport = (self.sport, 53) if from_client else (53, self.sport)
        own = self.seq[from_client] if seq is None else seq
        ack = self.seq[not from_client] if "A" in flags else 0
        self.sample.add(self.t, tcp_segment(src, dst, sport, dport, own, ack, flags, payload))
        if seq is None:
            self.seq[from_client] += len(payload) + ("S" in flags) + ("F" in flags)

    def handshake(self) -> None:
        self.send(True, "S")
        self.send(False, "SA")
        self.send(True, "A")

    def close(self) -> None:
        self.send(True, "FA")
        self.send(False, "FA")
        self.send(True, "A")


def framed(*msgs: DNS) -> bytes:
    """Return messages with their 2-byte length prefixes (RFC 1035 §4.2.2)."""
    return b"".join(struct.pack("!H", len(w)) + w for w in map(wire, msgs))


def tcp_pair(sample: Sample, qid: int, qname: str, edes: list[Packet],
             rcode: int = SERVFAIL) -> tuple[DNS, DNS]:
    q = make_query(qid, qname, A)
    r = make_response(q, rcode, edes=edes)
    sample.count(q)
    sample.count(r, "tcp")
    return q, r


def big_dnskey_response(q: DNS, zone: str, rng: random.Random, keys: int) -> DNS:
    """Return a NOERROR DNSKEY answer with ``keys`` RSA-4096-sized keys and EDE 1."""
    an = [DNSRRDNSKEY(rrname=zone, ttl=3600, flags=257 if i == 0 else 256, protocol=3,
                      algorithm=253, publickey=rng.randbytes(516)) for i in range(keys)]
    text = f"failed to verify {zone}. DNSKEY: unsupported key size, DNSKEY {zone}., id = 60485"
    return make_response(q, NOERROR, an=an, edes=[ede(1, text)], size=4096)


def transports() -> Sample:
    """The ways a DNS response reaches a capture; every response carries an EDE option.

    DNS over TCP with a handshake: three pipelined queries and three responses in one segment
    each; a response split over two segments and one over three (the first holding a single
    byte of the length prefix); a retransmitted segment; two segments captured out of order.
    A TCP connection captured mid-way (no SYN, starts on a message boundary). IPv6 UDP, one
    response with a Destination Options header. An IPv4 response in three fragments and an
    IPv6 response in two (Fragment header). 802.1Q and QinQ frames. DNS on UDP port 5300.
    """
    sample = Sample()
    rng = random.Random("transports")
    t0 = seconds(1710324000)
    c20, c21, c24 = CLIENTS[10], CLIENTS[11], CLIENTS[14]   # .20, .21 and .24 (has IPv6)

    # 1. A complete DNS-over-TCP connection.
    tcp = TcpConversation(sample, c20, 40001, t0, 1_000_000, 5_000_000)
    tcp.handshake()
    pairs = [tcp_pair(sample, 0x7001, "a.tcp.example.com", [ede(3)], NOERROR),
             tcp_pair(sample, 0x7002, "b.tcp.example.com",
                      [ede(9, "no SEP matching the DS found for b.tcp.example.com.")]),
             tcp_pair(sample, 0x7003, "c.tcp.example.com",
                      [ede(22, "at delegation c.tcp.example.com.")])]
    tcp.send(True, "PA", framed(*(q for q, _ in pairs)))
    tcp.send(False, "PA", framed(*(r for _, r in pairs)), gap_ms=12)
    tcp.send(True, "A")
    q4, r4 = tcp_pair(sample, 0x7004, "www.split2.example.com",
                      [ede(6, bogus_text("www.split2.example.com", A, "split2.example.com"))])
    tcp.send(True, "PA", framed(q4), gap_ms=50)
    data = framed(r4)
    tcp.send(False, "PA", data[:40], gap_ms=30)
    tcp.send(False, "PA", data[40:], gap_ms=0.05)
    tcp.send(True, "A")
    q5, r5 = tcp_pair(sample, 0x7005, "www.split3.example.com",
                      [ede(7, expired_text(1710323990, "split3.example.com"))])
    tcp.send(True, "PA", framed(q5), gap_ms=50)
    data = framed(r5)
    tcp.send(False, "PA", data[:1], gap_ms=30)       # half of the length prefix
    tcp.send(False, "PA", data[1:50], gap_ms=0.05)
    tcp.send(False, "PA", data[50:], gap_ms=0.05)
    tcp.send(True, "A")
    q6, r6 = tcp_pair(sample, 0x7006, "retrans.example.com",
                      [ede(23, f"{UPSTREAM}:53 timed out for retrans.example.com. A")])
    tcp.send(True, "PA", framed(q6), gap_ms=50)
    data = framed(r6)
    first = tcp.seq[False]
    tcp.send(False, "PA", data, gap_ms=40)
    tcp.send(False, "PA", data, gap_ms=210, seq=first)   # retransmission after an RTO
    tcp.send(True, "A")
    q7, r7 = tcp_pair(sample, 0x7007, "ooo1.example.com", [ede(0, "max. restarts reached")])
    q8, r8 = tcp_pair(sample, 0x7008, "ooo2.example.com", [ede(15)], NXDOMAIN)
    tcp.send(True, "PA", framed(q7, q8), gap_ms=50)
    data = framed(r7, r8)
    cut, first = len(data) // 2, tcp.seq[False]
    tcp.send(False, "PA", data[cut:], gap_ms=25, seq=first + cut)   # second half first
    tcp.send(False, "PA", data[:cut], gap_ms=0.02, seq=first)
    tcp.seq[False] += len(data)
    tcp.send(True, "A")
    tcp.close()

    # 2. A connection already open when the capture started.
    mid = TcpConversation(sample, c21, 38422, t0 + 2_000_000_000, 2_891_234_567, 901_223_344)
    for i, (name, edes) in enumerate((("cached.example.net", [ede(13)]),
                                      ("expired.example.org", [ede(24, "zone expired")]))):
        q, r = tcp_pair(sample, 0x7100 + i, name, edes)
        mid.send(True, "PA", framed(q), gap_ms=80)
        mid.send(False, "PA", framed(r), gap_ms=3)
        mid.send(True, "A")

    # 3. IPv6 over UDP; the second response carries a Destination Options header.
    t = t0 + 3_000_000_000
    q = make_query(0x7201, "v6.example.net", AAAA)
    r = make_response(q, NOERROR, an=positive_answer("v6.example.net", AAAA, "example.net",
                                                     30)[0], edes=[ede(3)])
    udp_exchange(sample, t, c24, q, r, 1_250_000, sport=50001, v6=True)
    q = make_query(0x7202, "dstopt.example.net", AAAA)
    r = make_response(q, SERVFAIL, edes=[ede(22, "at delegation dstopt.example.net.")])
    sample.add(t + 50_000_000, ethernet(
        IPv6(src=c24.ip6, dst=RESOLVER.ip6) / UDP(sport=50002, dport=53) / Raw(wire(q)),
        c24, RESOLVER))
    sample.add(t + 52_000_000, ethernet(
        IPv6(src=RESOLVER.ip6, dst=c24.ip6) / IPv6ExtHdrDestOpt() / UDP(sport=53, dport=50002)
        / Raw(wire(r)), RESOLVER, c24))
    sample.count(q)
    sample.count(r)

    # 4. Fragmented UDP responses.
    t = t0 + 4_000_000_000
    zone = "keys.example.org"
    q = make_query(0x7301, zone, DNSKEY, do=True, size=4096)
    r = big_dnskey_response(q, zone, rng, keys=6)
    sample.add(t, ethernet(IP(src=c20.ip4, dst=RESOLVER.ip4, ttl=64) / UDP(sport=50003, dport=53)
                           / Raw(wire(q)), c20, RESOLVER))
    whole = IP(src=RESOLVER.ip4, dst=c20.ip4, ttl=64, id=0x5A5A) / UDP(sport=53, dport=50003) \
        / Raw(wire(r))
    frags = fragment(whole, fragsize=1480)
    for i, frag in enumerate(frags):
        sample.add(t + 30_000_000 + i * 4000, ethernet(frag, RESOLVER, c20))
    sample.count(q)
    sample.count(r)
    sample.extra["ipv4_fragments"] = len(frags)

    zone = "keys6.example.org"
    q = make_query(0x7302, zone, DNSKEY, do=True, size=4096)
    r = big_dnskey_response(q, zone, rng, keys=3)
    sample.add(t + 100_000_000, ethernet(
        IPv6(src=c24.ip6, dst=RESOLVER.ip6) / UDP(sport=50004, dport=53) / Raw(wire(q)),
        c24, RESOLVER))
    whole6 = IPv6(src=RESOLVER.ip6, dst=c24.ip6) / IPv6ExtHdrFragment(id=0x6B6B) \
        / UDP(sport=53, dport=50004) / Raw(wire(r))
    frags6 = fragment6(whole6, 1280)
    for i, frag in enumerate(frags6):
        sample.add(t + 130_000_000 + i * 4000, ethernet(frag, RESOLVER, c24))
    sample.count(q)
    sample.count(r)
    sample.extra["ipv6_fragments"] = len(frags6)

    # 5. VLAN-tagged frames and DNS on a non-standard port.
    t = t0 + 5_000_000_000
    for i, (link, name, edes) in enumerate((
            (vlan(100), "vlan.example.com", [ede(22, "at delegation vlan.example.com.")]),
            (vlan(200, 100), "qinq.example.com",
             [ede(23, f"{UPSTREAM}:53 rcode=REFUSED for qinq.example.com. A")]))):
        q = make_query(0x7401 + i, name, A)
        r = make_response(q, SERVFAIL, edes=edes)
        udp_exchange(sample, t + i * 100_000_000, c21, q, r, 2_000_000, sport=50010 + i,
                     link=link)
    q = make_query(0x7501, "alt-port.example.com", A)
    r = make_response(q, NXDOMAIN, ns=[soa("example.com")],
                      edes=[ede(29, "Result from negative cache")])
    udp_exchange(sample, t + 300_000_000, c21, q, r, 400_000, sport=50020, dport=5300)
    sample.extra["dns_ports"] = [53, 5300]
    return sample


def short_link_sample(link: Link, seed: str, t0: int) -> Sample:
    """Return a handful of UDP exchanges (IPv4 and IPv6) over ``link``, each with an EDE."""
    sample = Sample()
    rng = random.Random(seed)
    client = CLIENTS[2]   # 192.0.2.12 / 2001:db8::12
    for i, (v6, code, text) in enumerate((
            (False, 22, "at delegation lame.example.net."),
            (True, 7, expired_text(t0 - 30)),
            (False, 9, "no SEP matching the DS found for broken.example.org."))):
        name = ("www.lame.example.net", "www.shop.example.com", "www.broken.example.org")[i]
        q = make_query(0x7600 + i, name, AAAA if v6 else A)
        r = make_response(q, SERVFAIL, edes=[ede(code, text)])
        udp_exchange(sample, seconds(t0 + i * 0.5), client, q, r,
                     rng.randrange(1000, 90_000) * 1000, sport=rng.randrange(32768, 61000),
                     v6=v6, link=link)
    return sample


def transports_sll() -> Sample:
    """Linux cooked v1 (``tcpdump -i any``): queries in (pkttype 0), responses out (4)."""
    return short_link_sample(cooked, "sll", 1710324600)


def transports_null() -> Sample:
    """BSD loopback (LINKTYPE_NULL) with AF_INET 2 and macOS's AF_INET6 30, little-endian."""
    return short_link_sample(bsd_null, "null", 1710324700)


def transports_raw() -> Sample:
    """Raw IP (LINKTYPE_RAW 101): no link header, the version nibble says IPv4 or IPv6."""
    return short_link_sample(raw_ip, "raw", 1710324800)


# ---------------------------------------------------------------------------------------------
# tunnels/: the same exchanges delivered inside tunnels and mirrors, and on other link types
# ---------------------------------------------------------------------------------------------

TAP = Host(doc_mac(0x70), "198.51.100.70", "2001:db8:7::70")        # the mirror's sender
COLLECTOR = Host(doc_mac(0x71), "198.51.100.71", "2001:db8:7::71")  # where the capture ran


def outer(payload: Packet | bytes, *, v6: bool = False, proto: int | None = None) -> bytes:
    """An Ethernet frame from the mirror's sender to the collector around ``payload``."""
    ip = (IPv6(src=TAP.ip6, dst=COLLECTOR.ip6, hlim=64, **({"nh": proto} if proto else {}))
          if v6 else IP(src=TAP.ip4, dst=COLLECTOR.ip4, ttl=64,
                        **({"proto": proto} if proto else {})))
    return bytes(Ether(src=TAP.mac, dst=COLLECTOR.mac) / ip / payload)


def inner_ethernet(ip: Packet, src: Host, dst: Host, vlan_id: int | None = None) -> bytes:
    frame = Ether(src=src.mac, dst=dst.mac)
    if vlan_id is not None:
        frame /= Dot1Q(vlan=vlan_id)
    return bytes(frame / ip)


def over_udp(port: int, header: bytes) -> Callable[[bytes], bytes]:
    """Wrap a frame in UDP to ``port`` after ``header`` (VXLAN, Geneve)."""
    def wrap(frame: bytes) -> bytes:
        sport = 49152 + zlib.crc32(frame[:64]) % 16384  # a flow hash, as VTEPs pick it
        return outer(UDP(sport=sport, dport=port) / Raw(header + frame))
    return wrap


def vxlan_link(vni: int, *, port: int = 4789, vlan_id: int | None = None) -> Link:
    """VXLAN (RFC 7348): flags 0x08 (valid VNI), the VNI, then the inner Ethernet frame."""
    header = struct.pack("!B3xI", 0x08, vni << 8)
    def link(ip: Packet, src: Host, dst: Host) -> bytes:
        return over_udp(port, header)(inner_ethernet(ip, src, dst, vlan_id))
    return link


def vxlan_gpe_link(vni: int, *, ethernet: bool) -> Link:
    """VXLAN-GPE (UDP 4790): flags I and P, next protocol 1/2 (IP) or 3 (Ethernet)."""
    def link(ip: Packet, src: Host, dst: Host) -> bytes:
        proto = 3 if ethernet else (2 if isinstance(ip, IPv6) else 1)
        header = struct.pack("!BBBBI", 0x0C, 0, 0, proto, vni << 8)
        return over_udp(4790, header)(inner_ethernet(ip, src, dst) if ethernet else bytes(ip))
    return link


def gtp_u_link(teid: int, *, sequence: bool = False, pdu_session: bool = False) -> Link:
    """GTP-U G-PDUs (UDP 2152), as a mobile core's user plane carries subscribers' DNS: plain,
    with a sequence number, or with the 5G PDU session container extension (type 0x85)."""
    def link(ip: Packet, src: Host, dst: Host) -> bytes:
        body = bytes(ip)
        extra = b""
        if pdu_session:
            extra = struct.pack("!HBB", 0, 0, 0x85) + bytes([1, 0x10, 0x09, 0])  # QFI 9
        elif sequence:
            extra = struct.pack("!HBB", 7, 0, 0)
        flags = 0x30 | (0x04 if pdu_session else 0) | (0x02 if sequence else 0)
        header = struct.pack("!BBHI", flags, 0xFF, len(extra) + len(body), teid) + extra
        return outer(UDP(sport=2152, dport=2152) / Raw(header + body))
    return link


def l2tp_link(tunnel: int, session: int, *, sequenced: bool = False) -> Link:
    """L2TPv2 data messages (UDP 1701) from a LAC to an LNS: a subscriber's PPP session
    (address and control bytes, then the protocol), with the length field and, optionally,
    Ns/Nr sequence numbers."""
    def link(ip: Packet, src: Host, dst: Host) -> bytes:
        ppp = b"\xff\x03" + struct.pack("!H", 0x0057 if isinstance(ip, IPv6) else 0x0021) \
            + bytes(ip)
        flags = 0x4002 | (0x0800 if sequenced else 0)
        seq = struct.pack("!HH", 3, 4) if sequenced else b""
        head = struct.pack("!HHHH", flags, 8 + len(seq) + len(ppp), tunnel, session) + seq
        return outer(UDP(sport=1701, dport=1701) / Raw(head + ppp))
    return link


def geneve_link(vni: int, *, ethernet: bool) -> Link:
    """Geneve (RFC 8926) with one 8-byte option (class 0x0103, as AWS GWLB sends)."""
    option = struct.pack("!HBB4s", 0x0103, 0x01, 1, b"\x00\x00\x00\x2a")
    def link(ip: Packet, src: Host, dst: Host) -> bytes:
        proto = 0x6558 if ethernet else (0x86DD if isinstance(ip, IPv6) else 0x0800)
        header = struct.pack("!BBHI", len(option) // 4, 0, proto, vni << 8) + option
        body = inner_ethernet(ip, src, dst) if ethernet else bytes(ip)
        return over_udp(6081, header)(body)
    return link


def gre_header(proto: int, *, key: int | None = None, seq: int | None = None,
               checksum: bool = False) -> bytes:
    """GRE (RFC 2784, RFC 2890): C, K and S bits with their fields (checksum left zero)."""
    flags = (0x80 if checksum else 0) | (0x20 if key is not None else 0) | (
        0x10 if seq is not None else 0)
    return (struct.pack("!BBH", flags, 0, proto) + (b"\0" * 4 if checksum else b"")
            + (struct.pack("!I", key) if key is not None else b"")
            + (struct.pack("!I", seq) if seq is not None else b""))


def gre_link(*, teb: bool = False, v6_outer: bool = False, **fields: Any) -> Link:
    """GRE carrying IP, or Ethernet (0x6558, transparent Ethernet bridging)."""
    def link(ip: Packet, src: Host, dst: Host) -> bytes:
        if teb:
            body, proto = inner_ethernet(ip, src, dst), 0x6558
        else:
            body, proto = bytes(ip), 0x86DD if isinstance(ip, IPv6) else 0x0800
        return outer(Raw(gre_header(proto, **fields) + body), v6=v6_outer, proto=47)
    return link


def pptp_link(call: int) -> Link:
    """PPTP's enhanced GRE (RFC 2637): version 1, key = payload length and call ID, a
    sequence number, then PPP with address and control bytes."""
    def link(ip: Packet, src: Host, dst: Host) -> bytes:
        ppp = b"\xff\x03" + struct.pack("!H", 0x0057 if isinstance(ip, IPv6) else 0x0021) \
            + bytes(ip)
        head = struct.pack("!BBHHHI", 0x30, 0x01, 0x880B, len(ppp), call, 1)
        return outer(Raw(head + ppp), proto=47)
    return link


def erspan_link(kind: int, session: int, *, platform: bool = False) -> Link:
    """ERSPAN type I (GRE 0x88be, no sequence, no header), II (8 bytes) or III (12, + 8)."""
    def link(ip: Packet, src: Host, dst: Host) -> bytes:
        frame = inner_ethernet(ip, src, dst)
        if kind == 1:
            head = gre_header(0x88BE)
        elif kind == 2:  # version 1, VLAN 0, COS 0, En 3, T 0, session; index 0
            head = gre_header(0x88BE, seq=7) + struct.pack("!HHI", 0x1000, 0x1800 | session, 0)
        else:  # version 2, session, timestamp, SGT, flags (O: a platform sub-header follows)
            head = gre_header(0x22EB, seq=7) + struct.pack(
                "!HHIHH", 0x2000, session, 0x01020304, 0, 0x0001 if platform else 0)
            if platform:
                head += struct.pack("!II", 0x0C000000 | 0x123, 0x5A5A5A5A)  # platform ID 3
        return outer(Raw(head + frame), proto=47)
    return link


def mpls_stack(*labels: int) -> bytes:
    """Label stack entries (RFC 3032): TC 0, S on the last, TTL 64."""
    return b"".join(struct.pack("!I", label << 12 | (0x100 if i == len(labels) - 1 else 0) | 64)
                    for i, label in enumerate(labels))


def mpls_link(*labels: int, over_gre: bool = False, pseudowire: str = "") -> Link:
    """MPLS carrying IP, or an Ethernet pseudowire (RFC 4448) with a control word ("cw",
    RFC 4385: zero flags, sequence 1) or without ("nocw")."""
    def link(ip: Packet, src: Host, dst: Host) -> bytes:
        payload = bytes(ip)
        if pseudowire:
            payload = (struct.pack("!I", 1) if pseudowire == "cw" else b"") + \
                inner_ethernet(ip, src, dst)
        body = mpls_stack(*labels) + payload
        if over_gre:
            return outer(Raw(gre_header(0x8847) + body), proto=47)
        return bytes(Ether(src=src.mac, dst=dst.mac, type=0x8847) / Raw(body))
    return link


def pppoe_link(session: int) -> Link:
    """A PPPoE session (RFC 2516): ver/type 0x11, code 0, session, length, PPP protocol."""
    def link(ip: Packet, src: Host, dst: Host) -> bytes:
        ppp = struct.pack("!H", 0x0057 if isinstance(ip, IPv6) else 0x0021) + bytes(ip)
        return bytes(Ether(src=src.mac, dst=dst.mac, type=0x8864)
                     / Raw(struct.pack("!BBHH", 0x11, 0, session, len(ppp)) + ppp))
    return link


def ip_in_ip_link(*, v6_outer: bool) -> Link:
    """IP in IP: protocol 4 (IPv4 inside) or 41 (IPv6 inside), in an IPv4 or IPv6 packet."""
    def link(ip: Packet, src: Host, dst: Host) -> bytes:
        return outer(Raw(bytes(ip)), v6=v6_outer, proto=41 if isinstance(ip, IPv6) else 4)
    return link


def fragmented_gre_sample() -> Sample:
    """GRE whose outer IPv4 packets are fragmented: reassembled before the tunnel opens."""
    sample = Sample()
    client = CLIENTS[3]
    t0 = 1710325100
    for i in range(2):
        q = make_query(0x7700 + i, f"big{i}.lame.example.net", DNSKEY)
        r = make_response(q, SERVFAIL, edes=[ede(22, f"at delegation lame.example.net. ({i})"),
                                            ede(23, "x" * 700)])
        qip = IP(src=client.ip4, dst=RESOLVER.ip4, ttl=64) / UDP(sport=40100 + i, dport=53) \
            / Raw(wire(q))
        rip = IP(src=RESOLVER.ip4, dst=client.ip4, ttl=64) / UDP(sport=53, dport=40100 + i) \
            / Raw(wire(r))
        sample.add(seconds(t0 + i), outer(Raw(gre_header(0x0800) + bytes(qip)), proto=47))
        whole = IP(src=TAP.ip4, dst=COLLECTOR.ip4, ttl=64, proto=47, id=0x4400 + i) / Raw(
            gre_header(0x0800) + bytes(rip))
        for k, piece in enumerate(fragment(whole, fragsize=400)):
            sample.add(seconds(t0 + i) + 2_000_000 + k * 1000,
                       bytes(Ether(src=TAP.mac, dst=COLLECTOR.mac) / piece))
        sample.count(q)
        sample.count(r)
    return sample


def tunnels_sample(links: Sequence[Link], seed: str, t0: int) -> Sample:
    """``short_link_sample`` once per link, one after the other."""
    sample = Sample()
    for k, link in enumerate(links):
        part = short_link_sample(link, f"{seed}{k}", t0 + 10 * k)
        sample.frames += part.frames
        sample.queries += part.queries
        sample.responses += part.responses
        sample.responses_with_ede += part.responses_with_ede
        sample.ede.update(part.ede)
        sample.rcodes.update(part.rcodes)
        sample.transports.update(part.transports)
    return sample


def nflog(ip: Packet, src: Host, dst: Host) -> bytes:
    """NFLOG (LINKTYPE 239): family, version, group; little-endian TLVs (an x86 host):
    NFULA_PACKET_HDR (1), NFULA_PREFIX (10), NFULA_PAYLOAD (9)."""
    def tlv(kind: int, value: bytes) -> bytes:
        return struct.pack("<HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)
    family = 10 if isinstance(ip, IPv6) else 2
    proto = 0x86DD if family == 10 else 0x0800
    return (struct.pack("!BBH", family, 0, 5) + tlv(1, struct.pack("!HBB", proto, 3, 0))
            + tlv(10, b"dns\0") + tlv(9, bytes(ip)))


def ppp_link(ip: Packet, src: Host, dst: Host) -> bytes:
    """PPP (LINKTYPE 9) without address and control bytes: the protocol, then IP."""
    return struct.pack("!H", 0x0057 if isinstance(ip, IPv6) else 0x0021) + bytes(ip)


def ppp_hdlc_link(ip: Packet, src: Host, dst: Host) -> bytes:
    """PPP in HDLC-like framing (LINKTYPE 50): FF 03, the protocol, then IP."""
    return b"\xff\x03" + ppp_link(ip, src, dst)


def cisco_hdlc_link(ip: Packet, src: Host, dst: Host) -> bytes:
    """Cisco HDLC (LINKTYPE 104): unicast address 0x0f, control 0, EtherType."""
    return struct.pack("!BBH", 0x0F, 0, 0x86DD if isinstance(ip, IPv6) else 0x0800) + bytes(ip)


def ipnet_link(ip: Packet, src: Host, dst: Host) -> bytes:
    """Solaris IPNET (LINKTYPE 226): version 1, family (2 or 26), type, length, interface."""
    family = 26 if isinstance(ip, IPv6) else 2
    return struct.pack("!BBHIIIII", 1, family, 0, len(bytes(ip)), 2, 0, 0, 0) + bytes(ip)


def cooked_vlan(ip: Packet, src: Host, dst: Host) -> bytes:
    """Linux cooked v1 with the 802.1Q tag libpcap puts back: protocol 0x8100, tag, type."""
    pkttype = 4 if src == RESOLVER else 0
    mac = bytes.fromhex(src.mac.replace(":", "")) + b"\0\0"
    head = struct.pack("!HHH8sH", pkttype, 1, 6, mac, 0x8100)
    return head + struct.pack("!HH", 20, 0x86DD if isinstance(ip, IPv6) else 0x0800) + bytes(ip)


def wifi(ip: Packet, src: Host, dst: Host) -> bytes:
    """802.11 QoS data (LINKTYPE 105), to the access point, with an LLC/SNAP header."""
    ap = doc_mac(0x72)
    fc = struct.pack("<BB", 0x88, 0x01)  # type data, subtype QoS data; to-DS
    addr = [bytes.fromhex(m.replace(":", "")) for m in (ap, src.mac, dst.mac)]
    snap = b"\xaa\xaa\x03\x00\x00\x00" + struct.pack(
        "!H", 0x86DD if isinstance(ip, IPv6) else 0x0800)
    return fc + b"\x2c\x00" + b"".join(addr) + b"\x10\x00" + b"\x00\x00" + snap + bytes(ip)


def radiotap(ip: Packet, src: Host, dst: Host) -> bytes:
    """Radiotap (LINKTYPE 127): an 8-byte header with no fields, then an 802.11 frame."""
    return struct.pack("<BBHI", 0, 0, 8, 0) + wifi(ip, src, dst)


# One capture per family: each link carries the three exchanges of short_link_sample.
TUNNEL_SAMPLES: dict[str, Sequence[Link]] = {
    "vxlan": (vxlan_link(100), vxlan_link(100, vlan_id=10), vxlan_link(7, port=8472)),
    "geneve": (geneve_link(4660, ethernet=True), geneve_link(4661, ethernet=False)),
    "vxlan-gpe": (vxlan_gpe_link(300, ethernet=False), vxlan_gpe_link(301, ethernet=True)),
    "gtp-u": (gtp_u_link(0x1001), gtp_u_link(0x1002, sequence=True),
              gtp_u_link(0x1003, pdu_session=True)),
    "l2tp": (l2tp_link(7, 1001), l2tp_link(7, 1002, sequenced=True)),
    "gre": (gre_link(), gre_link(key=42, seq=1, checksum=True), gre_link(teb=True, key=7),
            gre_link(v6_outer=True), pptp_link(0x2A)),
    "erspan": (erspan_link(1, 0), erspan_link(2, 5), erspan_link(3, 6),
               erspan_link(3, 7, platform=True)),
    "mpls": (mpls_link(16), mpls_link(16, 1001), mpls_link(2002, over_gre=True),
             mpls_link(3003, pseudowire="cw"), mpls_link(3004, pseudowire="nocw")),
    "pppoe": (pppoe_link(0x1234),),
    "ip-in-ip": (ip_in_ip_link(v6_outer=False), ip_in_ip_link(v6_outer=True)),
}
LINK_SAMPLES: dict[str, tuple[int, Link]] = {
    "ppp": (9, ppp_link), "ppp-hdlc": (50, ppp_hdlc_link), "cisco-hdlc": (104, cisco_hdlc_link),
    "ieee80211": (105, wifi), "sll-vlan": (LINKTYPE_LINUX_SLL, cooked_vlan),
    "radiotap": (127, radiotap), "ipnet": (226, ipnet_link), "nflog": (239, nflog),
}


def unopened_sample() -> Sample:
    """Packets that cannot be opened, and one exchange that can: the report names them."""
    sample = short_link_sample(gre_link(key=9), "unopened", 1710325200)
    t = seconds(1710325210)
    for i in range(3):  # GRE carrying a protocol nobody registered
        sample.add(t + i * 1000, outer(Raw(gre_header(0x1234) + bytes(64)), proto=47))
    for i in range(2):  # IPsec ESP
        sample.add(t + 10_000 + i * 1000, outer(Raw(struct.pack("!II", 0x1001, i + 1)
                                                    + bytes(48)), proto=50))
    sample.add(t + 20_000, bytes(Ether(src=TAP.mac, dst="01:80:c2:00:00:0e", type=0x88CC)
                                 / Raw(bytes(46))))  # LLDP
    return sample


# ---------------------------------------------------------------------------------------------
# broken/
# ---------------------------------------------------------------------------------------------

def small_session(seed: str, t0: int, n: int) -> Sample:
    """Return ``n`` ordinary UDP exchanges, every other response with an EDE option."""
    sample = Sample()
    rng = random.Random(seed)
    for i in range(n):
        ask = roll(rng, seconds(t0 + i * 1.5 + rng.random()), "example.com")
        outcome = ("answer", "stale", "answer", "lame")[i % 4]
        q, r, rtt = reply(ask, outcome)
        udp_exchange(sample, ask.t_ns, ask.client, q, r, rtt, sport=ask.sport, v6=ask.v6)
    return sample


TRUNCATED_KEEP = 30   # bytes of the last record's data left in broken/truncated.pcap


def truncated() -> Sample:
    """A capture cut in the middle of its last record (a writer killed mid-write).

    Four whole exchanges and a fifth query, then the record header and the first
    ``TRUNCATED_KEEP`` bytes of the fifth response, which is therefore not counted.
    """
    sample = small_session("truncated", 1710325200, 4)
    ask = roll(random.Random("truncated/last"), seconds(1710325220), "example.com", qtype=A)
    q, r, _ = reply(ask, "stale")
    qf, rf = udp_frames(ask.client, q, r, sport=ask.sport, v6=ask.v6)
    sample.add(ask.t_ns, qf)
    sample.add(ask.t_ns + 1_000_000_000, rf)    # lost: the file ends inside this record
    sample.count(q)
    sample.extra["capture_truncated"] = True
    return sample


SNAPLEN = 96


def snaplen() -> Sample:
    """tcpdump -s 96: queries fit, responses lose the end of their OPT RR (caplen < origlen).

    The last exchange is a REFUSED response without EDNS that is short enough to survive.
    """
    sample = Sample()
    rng = random.Random("snaplen")
    for i in range(4):
        client = CLIENTS[(0, 1, 3, 4)[i]]      # IPv4-only clients: an IPv6 query is too long
        ask = roll(rng, seconds(1710325300 + i * 2.5), "example.com", host="www", qtype=A,
                   client=client)
        q, r, rtt = reply(ask, ("answer", "stale", "lame", "stale")[i])
        qf, rf = udp_frames(ask.client, q, r, sport=ask.sport, v6=ask.v6)
        assert len(qf) <= SNAPLEN < len(rf)
        sample.add(ask.t_ns, qf)
        sample.add(ask.t_ns + rtt, rf)       # cut short: not a decodable response
        sample.count(q)
        sample.malformed(f"cut-by-snaplen: {len(rf)} bytes on the wire, {SNAPLEN} captured")
    q = make_query(0x7700, "www.example.com", A, edns=False)
    r = make_response(q, REFUSED)
    udp_exchange(sample, seconds(1710325320), OUTSIDER, q, r, 150_000, sport=41000)
    sample.extra["snaplen"] = SNAPLEN
    return sample


def bad_utf8() -> Sample:
    """EXTRA-TEXT that is not UTF-8: stray bytes, an overlong '/', a UTF-16 surrogate.

    One valid text follows as a control. Every option counts; three texts are not UTF-8.
    """
    sample = Sample()
    texts = (b"\xff\xfe bad \xc3", b"overlong \xc0\xaf slash", b"surrogate \xed\xa0\x80 half",
             "café ok".encode())
    for i, text in enumerate(texts):
        q = make_query(0x7800 + i, f"utf8-{i}.example.com", A)
        r = make_response(q, SERVFAIL, edes=[ede(23, text)])
        udp_exchange(sample, seconds(1710325400 + i), CLIENTS[i], q, r, 3_000_000,
                     sport=42000 + i)
    sample.extra["problems"] = {"ede-text-not-utf8": 3}
    return sample


def patched_exchange(sample: Sample, t_ns: int, client: Host, query: DNS, response: bytes,
                     *, sport: int, why: str) -> None:
    """Add a good query and a response whose DNS bytes were hand-edited (``why`` says how)."""
    q = IP(src=client.ip4, dst=RESOLVER.ip4, ttl=64) / UDP(sport=sport, dport=53) \
        / Raw(bytes(query))
    r = IP(src=RESOLVER.ip4, dst=client.ip4, ttl=64) / UDP(sport=53, dport=sport) / Raw(response)
    sample.add(t_ns, ethernet(q, client, RESOLVER))
    sample.add(t_ns + 20_000_000, ethernet(r, RESOLVER, client))
    sample.count(query)
    sample.malformed(why)


def compression_loop() -> Sample:
    """Responses whose question name cannot be decoded (RFC 1035 §4.1.4 pointers).

    A pointer to itself; a pointer to a second pointer that points back; a pointer forward
    to a valid name (RFC 1035 says "prior occurrence", dnspython rejects it); a pointer past
    the end. Each response also has an OPT RR with EDE 6 that a parser must not reach.
    """
    sample = Sample()
    # after the id: QR RD RA, SERVFAIL; one question, one answer, one additional (the OPT)
    flags_counts = struct.pack("!5H", 0x8182, 1, 1, 0, 1)
    opt = bytes(opt_rr([ede(6, "must not be reported")]))
    a_rr_tail = struct.pack("!HHIH", A, 1, 300, 4) + bytes([203, 0, 113, 9])
    qtail = struct.pack("!HH", A, 1)
    name = b"\x03www\x07example\x03com\x00"
    # the question starts at offset 12, the answer RR right after the 4-byte qtype/qclass
    bodies = (
        ("pointer-to-itself", b"\xc0\x0c" + qtail + b"\xc0\x0c" + a_rr_tail),
        # question -> answer owner (offset 18) -> question (offset 12) -> ...
        ("pointer-loop", b"\xc0\x12" + qtail + b"\xc0\x0c" + a_rr_tail),
        # www + pointer forward to the answer owner "example.com" at offset 22
        ("pointer-forward", b"\x03www\xc0\x16" + qtail + b"\x07example\x03com\x00" + a_rr_tail),
        ("pointer-past-end", b"\xc3\xff" + qtail + name + a_rr_tail),
    )
    for i, (why, body) in enumerate(bodies):
        qid = 0x7900 + i
        query = make_query(qid, "www.example.com", A)
        response = struct.pack("!H", qid) + flags_counts + body + opt
        patched_exchange(sample, seconds(1710325500 + i), CLIENTS[i], query, response,
                         sport=43000 + i, why=why)
    return sample


def lying_lengths() -> Sample:
    """Length fields that claim more than is there; a parser must reject, not over-read.

    OPT RDLEN past the end of the message; EDE OPTION-LENGTH past the end of the OPT RDATA;
    ARCOUNT 5 with one additional RR; UDP length larger than the IP payload; IPv4 total
    length larger than the frame. The last exchange is a control: an Ethernet trailer after a
    correct IP datagram, which a parser must ignore (the response there is good).
    """
    sample = Sample()
    t0 = 1710325600

    def good(i: int, name: str) -> tuple[DNS, bytes, int]:
        """Return a query, its response's wire bytes and where the response's OPT RR starts."""
        q = make_query(0x7A00 + i, name, A)
        r = make_response(q, SERVFAIL, edes=[ede(22, f"at delegation {name}.")])
        data = wire(r)
        return q, data, len(data) - len(bytes(r.ar[0]))     # the OPT RR is the last RR

    # 1. OPT RDLEN (after owner ".", TYPE, CLASS and TTL: offset 9) runs past the message
    q, r, opt_at = good(0, "rdlen.example.com")
    r = r[:opt_at + 9] + struct.pack("!H", 400) + r[opt_at + 11:]
    patched_exchange(sample, seconds(t0), CLIENTS[0], q, r, sport=44000, why="opt-rdlen-past-end")

    # 2. EDE OPTION-LENGTH (after OPTION-CODE, offset 13) is bigger than the OPT RDATA
    q, r, opt_at = good(1, "optlen.example.com")
    r = r[:opt_at + 13] + struct.pack("!H", 200) + r[opt_at + 15:]
    patched_exchange(sample, seconds(t0 + 1), CLIENTS[1], q, r, sport=44001,
                     why="ede-length-past-opt")

    # 3. ARCOUNT 5, one additional RR present
    q, r, _ = good(2, "arcount.example.com")
    r = r[:10] + struct.pack("!H", 5) + r[12:]
    patched_exchange(sample, seconds(t0 + 2), CLIENTS[2], q, r, sport=44002, why="arcount-5-of-1")

    # 4. UDP length larger than the IP payload; 5. IPv4 total length larger than the frame
    for i, (why, lie) in enumerate((("udp-length-past-ip", "udp"),
                                    ("ip-total-length-past-frame", "ip")), start=3):
        q, r, _ = good(i, f"{lie}len.example.com")
        client = CLIENTS[i]
        qpkt = IP(src=client.ip4, dst=RESOLVER.ip4, ttl=64) / UDP(sport=44000 + i, dport=53) \
            / Raw(bytes(q))
        rpkt = IP(src=RESOLVER.ip4, dst=client.ip4, ttl=64) / UDP(sport=53, dport=44000 + i) \
            / Raw(r)
        frame = bytearray(ethernet(rpkt, RESOLVER, client))
        if lie == "udp":
            # length plus a zero checksum (RFC 768: none computed), so only the length lies
            frame[14 + 20 + 4:14 + 20 + 8] = struct.pack("!HH", 8 + len(r) + 64, 0)
        else:
            frame[14 + 2:14 + 4] = struct.pack("!H", 20 + 8 + len(r) + 64)
            frame[14 + 10:14 + 12] = b"\0\0"
            frame[14 + 10:14 + 12] = struct.pack("!H", ip_checksum(bytes(frame[14:34])))
        sample.add(seconds(t0 + i), ethernet(qpkt, client, RESOLVER))
        sample.add(seconds(t0 + i) + 20_000_000, bytes(frame))
        sample.count(q)
        sample.malformed(why)

    # 6. control: 6 bytes of Ethernet trailer after a correct datagram
    q = make_query(0x7A05, "trailer.example.com", A)
    r = make_response(q, SERVFAIL, edes=[ede(22, "at delegation trailer.example.com.")])
    qpkt = IP(src=CLIENTS[5].ip4, dst=RESOLVER.ip4, ttl=64) / UDP(sport=44005, dport=53) \
        / Raw(bytes(q))
    rpkt = IP(src=RESOLVER.ip4, dst=CLIENTS[5].ip4, ttl=64) / UDP(sport=53, dport=44005) \
        / Raw(wire(r))
    sample.add(seconds(t0 + 5), ethernet(qpkt, CLIENTS[5], RESOLVER))
    sample.add(seconds(t0 + 5) + 20_000_000, ethernet(rpkt, RESOLVER, CLIENTS[5]) + b"\0" * 6)
    sample.count(q)
    sample.count(r)
    return sample


def ip_checksum(header: bytes) -> int:
    """Return the RFC 791 header checksum (ones' complement of the ones' complement sum)."""
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def html_injection() -> Sample:
    """Names and texts that a report must escape, not interpret (all messages are valid).

    A qname label and a text with <script>; a text starting with = (spreadsheet formula);
    ANSI colour escapes in a label and a text; rich-console markup; a right-to-left override
    (U+202E) in a label and a text; CSV delimiters, quotes and a line break.
    """
    sample = Sample()
    rlo = "\u202e"
    cases: tuple[tuple[bytes, str], ...] = (
        (b"<script>alert(1)</script>.example.com", "<script>alert(1)</script>"),
        (b"formula.example.com", '=HYPERLINK("http://x")'),
        (b"\x1b[31mred.example.com", "\x1b[31mred alert\x1b[0m"),
        (b"markup.example.com", "[bold red]x[/]"),
        (f"{rlo}moc.elpmaxe.rlo".encode() + b".example.org", f"blocked {rlo}exe.txt"),
        (b"csv.example.net", 'a,b;"c"\r\nsecond line\tTAB'),
    )
    for i, (qname, text) in enumerate(cases):
        q = make_query(0x7B00 + i, qname, A)
        r = make_response(q, NXDOMAIN, edes=[ede(15 if i % 2 else 17, text)])
        udp_exchange(sample, seconds(1710325700 + i), CLIENTS[i], q, r, 500_000,
                     sport=45000 + i)
    return sample


def garbage() -> bytes:
    """4 KiB of seeded random bytes: not a capture (the first bytes are no pcap magic)."""
    data = random.Random("garbage").randbytes(4096)
    assert data[:4] not in PCAP_MAGICS, "pick another seed"
    return data


def bogus_linktype() -> Sample:
    """Good Ethernet DNS frames in a file whose header says LINKTYPE_USER0 (147)."""
    sample = small_session("bogus-linktype", 1710325800, 3)
    sample.extra["undecodable_linktype"] = LINKTYPE_USER0
    return sample


# ---------------------------------------------------------------------------------------------
# File writers
# ---------------------------------------------------------------------------------------------

PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
               b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")


def pcap_bytes(frames: Iterable[Frame], linktype: int, *, snaplen: int = 65535) -> bytes:
    """Return a classic little-endian microsecond pcap (libpcap format, version 2.4)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)]
    for f in frames:
        sec, ns = divmod(f.ts_ns, 1_000_000_000)
        assert ns % 1000 == 0, "microsecond file, sub-microsecond timestamp"
        data = f.data[:snaplen]
        out.append(struct.pack("<IIII", sec, ns // 1000, len(data), len(f.data)))
        out.append(data)
    return b"".join(out)


@dataclass(frozen=True)
class Interface:
    """A pcapng Interface Description Block: link type, name and timestamp resolution."""

    linktype: int
    name: str
    tsresol: int = 6      # if_tsresol as a power of ten; 6 (µs) is the default, not written


def pcapng_bytes(frames: Iterable[Frame], interfaces: Sequence[Interface]) -> bytes:
    """Return a little-endian pcapng: SHB, one IDB per interface, one EPB per frame."""
    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)

    def options(opts: Sequence[tuple[int, bytes]]) -> bytes:
        if not opts:
            return b""
        body = b"".join(struct.pack("<HH", code, len(v)) + pad(v) for code, v in opts)
        return body + struct.pack("<HH", 0, 0)     # opt_endofopt

    def block(btype: int, body: bytes) -> bytes:
        total = 12 + len(body)
        return struct.pack("<II", btype, total) + body + struct.pack("<I", total)

    # SHB: byte-order magic, version 1.0, section length unknown (-1), shb_userappl
    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                 + options([(4, b"ede-pcap samples/make_samples.py")]))]
    for itf in interfaces:
        opts = [(2, itf.name.encode())]                                  # if_name
        if itf.tsresol != 6:
            opts.append((9, bytes([itf.tsresol])))                         # if_tsresol
        out.append(block(1, struct.pack("<HHI", itf.linktype, 0, 65535) + options(opts)))
    for f in frames:
        units = f.ts_ns // 10 ** (9 - interfaces[f.iface].tsresol)
        assert units * 10 ** (9 - interfaces[f.iface].tsresol) == f.ts_ns, "lost precision"
        body = struct.pack("<IIIII", f.iface, units >> 32, units & 0xFFFFFFFF, len(f.data),
                           len(f.data)) + pad(f.data)
        out.append(block(6, body))
    return b"".join(out)


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------

EXPECTED_ABOUT = {
    "what": "Counts an analyzer must find in each sample, from make_samples.py's own "
            "bookkeeping (each message counted when it is built, not by decoding the files).",
    "packets": "records a capture reader returns (for a cut file: the whole records)",
    "first_ts_ns": "timestamp of the earliest record, ns since the epoch (last_ts_ns: latest)",
    "dns_queries": "DNS messages with QR=0 (several may share a TCP segment)",
    "dns_responses": "DNS messages with QR=1 that decode: header, question and additional "
                     "section, every length inside the bytes present; a message over TCP or "
                     "in IP fragments counts once, after reassembly",
    "responses_with_ede": "responses carrying at least one EDE option (EDNS0 option 15)",
    "ede_options": "EDE options in all responses; ede_by_code splits them by INFO-CODE",
    "malformed_responses": "frame number (1-based) -> the defect of a response that must be "
                           "rejected, not decoded",
    "capture_error": "the file is not a pcap or pcapng; the run fails with this reason",
}


def build_all() -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Return every sample as relative path -> (file bytes, expected.json entry)."""
    files: dict[str, tuple[bytes, dict[str, Any]]] = {}

    def pcap(path: str, sample: Sample, linktype: int = LINKTYPE_ETHERNET, **kw: Any) -> None:
        # malformed_responses holds frame numbers in the order the frames were added
        assert "malformed_responses" not in sample.extra or \
            sample.frames == sample.sorted_frames(), path
        entry = {"linktypes": [linktype], **sample.expected()}
        files[path] = (pcap_bytes(sample.sorted_frames(), linktype, **kw), entry)

    pcap("incident.pcap", incident())
    codes = all_codes()
    files["all-codes.pcapng"] = (
        pcapng_bytes(codes.sorted_frames(), [Interface(LINKTYPE_ETHERNET, "eth0"),
                                             Interface(LINKTYPE_RAW, "tun0", tsresol=9)]),
        {"linktypes": [LINKTYPE_ETHERNET, LINKTYPE_RAW], **codes.expected()},
    )
    pcap("transports.pcap", transports())
    pcap("transports-sll.pcap", transports_sll(), LINKTYPE_LINUX_SLL)
    pcap("transports-null.pcap", transports_null(), LINKTYPE_NULL)
    pcap("transports-raw.pcap", transports_raw(), LINKTYPE_RAW)
    for name, links in TUNNEL_SAMPLES.items():
        pcap(f"tunnels/{name}.pcap", tunnels_sample(links, name, 1710325000))
    pcap("tunnels/gre-fragments.pcap", fragmented_gre_sample())
    pcap("tunnels/unopened.pcap", unopened_sample())
    for name, (linktype, link) in LINK_SAMPLES.items():
        pcap(f"tunnels/link-{name}.pcap", short_link_sample(link, name, 1710325300), linktype)
    pcap("before.pcap", before())
    pcap("after.pcap", after())

    sample = truncated()
    data = pcap_bytes(sample.sorted_frames(), LINKTYPE_ETHERNET)
    cut = len(data) - len(sample.sorted_frames()[-1].data) + TRUNCATED_KEEP
    files["broken/truncated.pcap"] = (data[:cut], {
        "linktypes": [LINKTYPE_ETHERNET], **sample.expected(packets=len(sample.frames) - 1)})
    pcap("broken/snaplen.pcap", snaplen(), snaplen=SNAPLEN)
    pcap("broken/bad-utf8.pcap", bad_utf8())
    pcap("broken/compression-loop.pcap", compression_loop())
    pcap("broken/lying-lengths.pcap", lying_lengths())
    files["broken/garbage.pcap"] = (garbage(), {"linktypes": [], **Sample().expected(),
                                                "capture_error": "not-a-capture"})
    sample = bogus_linktype()
    files["broken/bogus-linktype.pcap"] = (
        pcap_bytes(sample.sorted_frames(), LINKTYPE_USER0),
        {"linktypes": [LINKTYPE_USER0], **Sample(sample.frames, extra=sample.extra).expected()})
    files["broken/empty.pcap"] = (pcap_bytes([], LINKTYPE_ETHERNET),
                                  {"linktypes": [LINKTYPE_ETHERNET], **Sample().expected()})
    pcap("broken/html-injection.pcap", html_injection())
    return files


def main(argv: list[str]) -> int:
    outdir = Path(argv[1]) if len(argv) > 1 else HERE
    files = build_all()
    expected: dict[str, Any] = {"_about": EXPECTED_ABOUT}
    for rel, (data, entry) in files.items():
        path = outdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[rel] = entry
    (outdir / "expected.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False)
                                          + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
