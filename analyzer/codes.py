"""The Extended DNS Error code catalogue: names, categories, meanings and next steps.

Facts come from the IANA "Extended DNS Error Codes" registry (RFC 8914 §5.2) as assembled in
the project's reference notes; the meanings and next steps are this project's own words.
Reports key on the integer, never on the name, because tools spell the names differently.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Any

CATEGORIES: tuple[str, ...] = ("dnssec", "cache", "policy", "transport", "other")
STATUSES: tuple[str, ...] = ("assigned", "unassigned", "private-use")

# RFC 8914 §5.2: 0-49151 First Come First Served, 49152-65535 Private Use.
PRIVATE_USE_START = 49152
MAX_CODE = 65535


class EdeCode(IntEnum):
    """Assigned INFO-CODEs, named after the IANA registry entries in UPPER_SNAKE."""

    OTHER_ERROR = 0
    UNSUPPORTED_DNSKEY_ALGORITHM = 1
    UNSUPPORTED_DS_DIGEST_TYPE = 2
    STALE_ANSWER = 3
    FORGED_ANSWER = 4
    DNSSEC_INDETERMINATE = 5
    DNSSEC_BOGUS = 6
    SIGNATURE_EXPIRED = 7
    SIGNATURE_NOT_YET_VALID = 8
    DNSKEY_MISSING = 9
    RRSIGS_MISSING = 10
    NO_ZONE_KEY_BIT_SET = 11
    NSEC_MISSING = 12
    CACHED_ERROR = 13
    NOT_READY = 14
    BLOCKED = 15
    CENSORED = 16
    FILTERED = 17
    PROHIBITED = 18
    STALE_NXDOMAIN_ANSWER = 19
    NOT_AUTHORITATIVE = 20
    NOT_SUPPORTED = 21
    NO_REACHABLE_AUTHORITY = 22
    NETWORK_ERROR = 23
    INVALID_DATA = 24
    SIGNATURE_EXPIRED_BEFORE_VALID = 25
    TOO_EARLY = 26
    UNSUPPORTED_NSEC3_ITERATIONS_VALUE = 27
    UNABLE_TO_CONFORM_TO_POLICY = 28
    SYNTHESIZED = 29
    INVALID_QUERY_TYPE = 30
    RATE_LIMITED = 31
    OVER_QUOTA = 32
    NEGATIVE_TRUST_ANCHOR = 33


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """What one INFO-CODE means and what to do about it."""

    code: int
    name: str
    document: str
    category: str
    meaning: str
    next_step: str
    status: str


_RFC = "RFC 8914"
_STALE_NEXT = (
    "The answer may be out of date. Find out why the authorities failed: query each NS of the "
    "zone from the resolver's network (`dig @<ns> <name> +norec`, over UDP and TCP) and look "
    "for timeouts, lame delegation, an expired secondary or a firewall dropping port 53."
)

# (code, IANA name, defining document, category, meaning, next step)
_ENTRIES: tuple[tuple[int, str, str, str, str, str], ...] = (
    (0, "Other Error", _RFC, "other",
     "A problem that no more specific code describes; the EXTRA-TEXT, when present, is the "
     "only detail.",
     "Read the EXTRA-TEXT and the resolver's logs around the query time; vendors use code 0 for "
     "overload (Unbound's full request queue), missing DNS Cookies and BIND's restart limit."),
    (1, "Unsupported DNSKEY Algorithm", _RFC, "dnssec",
     "The zone's DNSKEY set uses only algorithms (or key sizes) the validator does not "
     "implement, so it cannot check the signatures.",
     "List the algorithms with `dig +dnssec DNSKEY <zone>` and the DS set at the parent; roll "
     "to a widely supported algorithm such as 13 (ECDSAP256SHA256) or 8 (RSASHA256) with a "
     "proper algorithm rollover."),
    (2, "Unsupported DS Digest Type", _RFC, "dnssec",
     "Every DS record for the zone uses a digest type the validator does not implement, so the "
     "chain of trust cannot be followed into the zone.",
     "Check `dig DS <zone>` at the parent and publish a DS with digest type 2 (SHA-256) through "
     "the registrar; do not rely on SHA-1 or GOST digests alone."),
    (3, "Stale Answer", _RFC, "cache",
     "The resolver could not refresh the data from the authoritative servers and answered "
     "from expired cache instead (serve-stale, RFC 8767).",
     _STALE_NEXT),
    (4, "Forged Answer", _RFC, "policy",
     "The resolver knowingly returned an answer that differs from the authoritative data, for "
     "example a policy redirect or a rewritten address.",
     "Find the resolver rule that rewrote the answer (RPZ, local-data, renumbering) and check "
     "why it matched; if no such rule exists, suspect DNS interception on the path."),
    (5, "DNSSEC Indeterminate", _RFC, "dnssec",
     "Validation finished without a secure, insecure or bogus result (RFC 4035 §4.3), often "
     "because a trust anchor or part of the chain could not be obtained.",
     "Check the resolver's trust anchors (current root KSK, RFC 5011 updates) and whether DS "
     "and DNSKEY queries along the chain get answers; `delv +vtrace <name>` shows where it stops."),
    (6, "DNSSEC Bogus", _RFC, "dnssec",
     "Validation failed: a signature or a proof of non-existence did not verify, and no more "
     "specific DNSSEC code applied.",
     "Run `delv +vtrace <name>` or DNSViz on the zone to find the broken link; typical causes "
     "are records edited without re-signing, a botched key rollover, or one authoritative "
     "server serving an unsigned or older copy."),
    (7, "Signature Expired", _RFC, "dnssec",
     "The RRSIGs covering the answer are past their expiration time, so the validator "
     "rejected them.",
     "Check the RRSIG expiration with `dig +dnssec <name> <type> @<ns>` on every authoritative "
     "server, re-sign the zone, and fix the signer's automation (cron job, inline signing, "
     "key access); then confirm the secondaries transferred the new serial."),
    (8, "Signature Not Yet Valid", _RFC, "dnssec",
     "The RRSIG inception time lies in the future from the validator's point of view.",
     "Compare the RRSIG inception in `dig +dnssec` with UTC now; check NTP on the signer and on "
     "the resolver, and let the signer back-date inception by an hour or so."),
    (9, "DNSKEY Missing", _RFC, "dnssec",
     "No DNSKEY in the zone matches a DS record at the parent (or no DNSKEY could be "
     "fetched), so the chain of trust breaks at this zone cut.",
     "Compare key tags in `dig DS <zone>` and `dig DNSKEY <zone>`; fix the DS at the registrar "
     "or republish the KSK. Common after a KSK rollover, a DNS provider change, or turning "
     "DNSSEC off at the provider while the DS stays at the parent."),
    (10, "RRSIGs Missing", _RFC, "dnssec",
     "The zone should be signed but the answer came without the RRSIGs needed to validate it.",
     "Query each authoritative server with `dig +dnssec @<ns> <name> <type>` and look for "
     "unsigned answers: a server with an unsigned copy, an incomplete signing run, or a "
     "middlebox stripping DNSSEC records."),
    (11, "No Zone Key Bit Set", _RFC, "dnssec",
     "The DNSKEY involved lacks the Zone Key flag (RFC 4034 §2.1.1), so it may not be used to "
     "validate zone data.",
     "Check the flags in `dig DNSKEY <zone>` (expect 256 for a ZSK, 257 for a KSK); generate "
     "a key with the right flags, re-sign, and update the DS if the KSK changed."),
    (12, "NSEC Missing", _RFC, "dnssec",
     "A negative answer or an insecure delegation came without a valid NSEC or NSEC3 proof "
     "of non-existence.",
     "Query a non-existent name with `dig +dnssec @<ns>` on every authoritative server and "
     "check that NSEC/NSEC3 records and their RRSIGs are returned; make sure all servers use "
     "the same NSEC3PARAM."),
    (13, "Cached Error", _RFC, "cache",
     "The resolver answered with an error it cached from an earlier failed lookup, without "
     "asking the authorities again.",
     "Look for the first failure for this name (an earlier EDE in the capture or the resolver "
     "log) and fix that; the cached error then expires, or flush it (`rndc flushname`, "
     "`unbound-control flush_bogus`)."),
    (14, "Not Ready", _RFC, "other",
     "The server cannot answer yet, for example while starting up, priming the root or "
     "loading zones.",
     "Check the server's start-up: root priming reachability, zone loading time, and whether "
     "the load balancer sends queries before the health check passes."),
    (15, "Blocked", _RFC, "policy",
     "The resolver's operator blocked the name with its own blocklist.",
     "Find the blocklist or RPZ entry that matched (the EXTRA-TEXT may name it or carry a "
     "contact); remove a false positive or ask the resolver operator to."),
    (16, "Censored", _RFC, "policy",
     "The name was blocked because of an external requirement, such as a legal order, rather "
     "than the operator's own choice.",
     "Check the EXTRA-TEXT for the authority or contact behind the block; the resolver operator "
     "cannot usually lift it, so domain owners have to address the order itself."),
    (17, "Filtered", _RFC, "policy",
     "The name was blocked by a filter the client asked for, such as a malware or family "
     "filtering service.",
     "Check which filtering profile the client uses (for example 1.1.1.3 or a parental-control "
     "profile) and the category that matched; change profile or request recategorisation."),
    (18, "Prohibited", _RFC, "policy",
     "The client is not allowed to use this server, typically because of an access list.",
     "Compare the client address in the capture with the server's ACLs (`allow-recursion`, "
     "`allow-query`, Unbound `access-control`)."),
    (19, "Stale NXDomain Answer", _RFC, "cache",
     "The resolver served a cached NXDOMAIN past its TTL because the authorities could not "
     "be reached.",
     _STALE_NEXT),
    (20, "Not Authoritative", _RFC, "other",
     "The server is not authoritative for the name and will not recurse for this client.",
     "Point the client at a recursive resolver, or allow recursion for it; if this server is "
     "listed as an NS for the zone, the delegation is lame: load the zone or fix the NS set."),
    (21, "Not Supported", _RFC, "other",
     "The server does not support the requested operation, query type or option.",
     "Check what the query asked for (qtype, opcode, EDNS options) and whether this server is "
     "meant to support it."),
    (22, "No Reachable Authority", _RFC, "transport",
     "The resolver got no usable answer from any authoritative server of the zone: timeouts, "
     "refusals or errors.",
     "Test every NS from the resolver's vantage point (`dig @<ns> <zone> SOA +norec`, UDP and "
     "TCP); look for lame delegation, stale glue, firewalls dropping port 53 or fragments, and "
     "rate limiting at the authorities."),
    (23, "Network Error", _RFC, "transport",
     "Talking to an upstream server failed at the network level, or it answered with an "
     "error; the EXTRA-TEXT often names the server.",
     "Check routing, firewall and path MTU to the upstream address in the EXTRA-TEXT, and "
     "query it directly to see whether it answers, times out, or returns SERVFAIL/REFUSED."),
    (24, "Invalid Data", _RFC, "other",
     "The server's data for the zone cannot be used, for example an expired or unloaded zone "
     "on a secondary.",
     "On the authoritative server check that the zone loaded and is fresh (`rndc zonestatus`, "
     "SOA serial against the primary, transfers succeeding before the SOA expire time)."),
    (25, "Signature Expired before Valid", "NLnetLabs/unbound PR #604 (registration request)",
     "dnssec",
     "An RRSIG's expiration time is earlier than its inception time, so it can never be valid.",
     "Inspect the RRSIG validity window with `dig +dnssec`; fix the signer's inception, "
     "expiration and jitter settings (or its clock) and re-sign the zone."),
    (26, "Too Early", "RFC 9250", "transport",
     "The query arrived in DNS-over-QUIC 0-RTT early data and the server declined to process "
     "it there (RFC 9250 §4.5).",
     "Have the client retry after the handshake; clients should send only replay-safe queries "
     "in 0-RTT. Frequent occurrences point to the client's DoQ implementation."),
    (27, "Unsupported NSEC3 Iterations Value", "RFC 9276", "dnssec",
     "The zone's NSEC3 iteration count is above what the validator accepts, so its denials "
     "are treated as insecure or bogus (RFC 9276 §3.2).",
     "Check `dig NSEC3PARAM <zone>`; set iterations to 0 with an empty salt, as RFC 9276 "
     "recommends, and re-sign."),
    (28, "Unable to conform to policy", "draft-homburg-dnsop-codcp", "policy",
     "The resolver could not meet the policy the client requested (the draft that defined it "
     "expired; Unbound names it a bad proxy policy).",
     "Check the policy or proxy settings the client sends and the resolver's support for "
     "them; compare with the resolver vendor's documentation."),
    (29, "Synthesized", "PowerDNS registration (PowerDNS/pdns PR #12334)", "cache",
     "The answer was built locally rather than fetched in full, for example from aggressive "
     "NSEC caching (RFC 8198), NXDOMAIN cut (RFC 8020), the negative cache or DNS64.",
     "Usually informational. If the answer looks wrong, check whether the zone changed "
     "recently and flush the name from the resolver's cache."),
    (30, "Invalid Query Type", "RFC 9824", "other",
     "The query asked for a type that cannot be queried, such as the NXNAME meta-type of "
     "compact denial of existence (RFC 9824).",
     "Check the client's query type; NXNAME (128) and other meta-types are not valid in "
     "queries."),
    (31, "Rate Limited", "draft-muks-dns-ede-rate-limited", "policy",
     "The server limited its answers because the client sent more queries than allowed.",
     "Find the client sending the volume (source address in the capture), look for loops or "
     "misbehaving software, and lower its rate or raise the limit."),
    (32, "Over Quota", "draft-muks-dns-ede-rate-limited", "policy",
     "The client has used up a query quota, for example on a metered resolver plan.",
     "Check the account's quota with the resolver operator; reduce the query volume or change "
     "the plan."),
    (33, "Negative Trust Anchor", "draft-farrokhi-dnsop-ede-nta", "dnssec",
     "Validation was skipped because the resolver operator set a negative trust anchor "
     "(RFC 7646) for a zone with known-broken DNSSEC.",
     "Domain owner: fix the zone's signing or DS (check with `delv` or DNSViz) so the operator "
     "can remove the NTA. Resolver operator: review the NTA and let it expire."),
)

CATALOGUE: dict[int, CodeInfo] = {
    code: CodeInfo(code, name, doc, cat, meaning, step, "assigned")
    for code, name, doc, cat, meaning, step in _ENTRIES
}

# Code points that drafts propose but whose assignment is not verified (reference §1).
_PROPOSED: dict[int, str] = {
    34: "draft-ietf-deleg proposes this code as \"New Delegation Only\"",
    35: "draft-ietf-dnsop-structured-dns-error proposes this code as \"Blocked by Upstream DNS "
        "Server\"; its EXTRA-TEXT may then be structured JSON",
}


def describe(code: int) -> CodeInfo:
    """Return what an INFO-CODE means; any value in 0..65535 has an entry.

    :param code: the 16-bit INFO-CODE; anything outside 0..65535 raises ``ValueError``.
    """
    code = operator.index(code)
    info = CATALOGUE.get(code)
    if info is not None:
        return info
    if not 0 <= code <= MAX_CODE:
        raise ValueError(f"EDE INFO-CODE must be in 0..{MAX_CODE}, got {code}")
    return _unlisted(code)


@lru_cache(maxsize=1024)
def _unlisted(code: int) -> CodeInfo:
    if code >= PRIVATE_USE_START:
        return CodeInfo(
            code, f"Private Use ({code})", "RFC 8914 §5.2", "other",
            f"Code {code} is in the Private Use range, so the resolver software or operator "
            "that sent it defines its meaning, not IANA.",
            "Look up the resolver vendor's documentation for its private codes; the EXTRA-TEXT "
            "and the server address are the best clues to which software sent it.",
            "private-use",
        )
    proposal = f" ({_PROPOSED[code]}, not verified as assigned)" if code in _PROPOSED else ""
    return CodeInfo(
        code, f"Unassigned ({code})", "RFC 8914 §5.2", "other",
        f"Code {code} is not assigned in the registry as known to this tool{proposal}; a newer "
        "registration, a draft implementation or a resolver bug may have produced it.",
        "Check the current IANA Extended DNS Error Codes registry and the resolver's release "
        "notes; keep the number as is when reporting the problem.",
        "unassigned",
    )


def _section(info: CodeInfo) -> str:
    # RFC 8914 §4.1 defines code 0, §4.2 code 1, ... §4.25 code 24.
    return f"RFC 8914 §4.{info.code + 1}" if info.document == _RFC else info.document


def to_markdown() -> str:
    """Return the catalogue as a Markdown document (docs/ede-codes.md is generated from it)."""
    lines = [
        "# Extended DNS Error codes",
        "",
        "<!-- Generated from analyzer/codes.py by to_markdown(); do not edit by hand. -->",
        "",
        "An Extended DNS Error (RFC 8914) is EDNS0 option 15 in a DNS response: a 16-bit "
        "INFO-CODE and an optional UTF-8 EXTRA-TEXT. ede-pcap keys every report on the "
        "INFO-CODE, because resolvers spell the names differently.",
        "",
        "| Code | Name | Category | Document |",
        "|---:|---|---|---|",
    ]
    lines += [f"| {i.code} | {i.name} | {i.category} | {i.document} |"
              for i in CATALOGUE.values()]
    lines += [
        "",
        "## Ranges",
        "",
        f"- **{max(CATALOGUE) + 1}–{PRIVATE_USE_START - 1}: unassigned** (First Come First "
        "Served, RFC 8914 §5.2). Reported as `Unassigned (N)`. Drafts propose 34 (New "
        "Delegation Only, draft-ietf-deleg) and 35 (Blocked by Upstream DNS Server, "
        "draft-ietf-dnsop-structured-dns-error); neither is verified as assigned, so both are "
        "treated as unassigned.",
        f"- **{PRIVATE_USE_START}–{MAX_CODE}: private use** (RFC 8914 §5.2). Reported as "
        "`Private Use (N)`; the meaning is up to the software that sent it.",
        "",
        "Categories: `dnssec` (validation), `cache` (answers from cache or synthesized), "
        "`policy` (the resolver chose not to answer normally), `transport` (upstream could not "
        "be reached) and `other`.",
    ]
    for info in CATALOGUE.values():
        lines += [
            "",
            f"## {info.code} — {info.name}",
            "",
            f"Category: {info.category}. Defined in {_section(info)}.",
            "",
            f"**Meaning.** {info.meaning}",
            "",
            f"**Next step.** {info.next_step}",
        ]
    return "\n".join(lines) + "\n"


def to_records() -> list[dict[str, Any]]:
    """Return the catalogue entries (codes 0..33) as JSON-ready dicts, in code order."""
    return [asdict(info) for info in CATALOGUE.values()]
