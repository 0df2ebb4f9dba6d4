"""Facts from EDE EXTRA-TEXT: the zone, key tag, upstream server and reason a resolver names.

RFC 8914 §2 leaves EXTRA-TEXT free-form, so every resolver words it differently. Each wording
family below is one anchored pattern plus a handler, with a comment naming where the wording is
documented (the project's EDE reference notes, "EXTRA-TEXT wording by implementation"). Text
that matches no family gives an empty ``TextFacts``: nothing is guessed.

The text comes off the wire from anyone, so parsing is bounded: at most ``MAX_TEXT`` characters
are read, every pattern must match the whole text and never nests ambiguous repeats (so no
catastrophic backtracking), and the function returns rather than raises for any string.

Conventions: zones are lower-case without the trailing dot, and the root is ``"."``. An upstream
written ``[v6]:port`` is split at the bracket; an unbracketed IPv6 address followed by ``:port``
(``2001:db8::1:53``) is split at the last colon, because the 1.1.1.1 template always carries a
port; the part before it must still parse as an address.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from analyzer import dnsnames

MAX_TEXT = 1024
_MAX_EVIDENCE = 5
# Vendors that name resolver software (structured DNS error JSON is a format, not a resolver).
_SOFTWARE = ("cloudflare", "unbound", "bind", "knot-resolver", "powerdns", "technitium")


@dataclass(frozen=True, slots=True)
class TextFacts:
    """What an EXTRA-TEXT says, each field ``None`` when the text does not say it."""

    zone: str | None = None
    key_tag: int | None = None
    rrtype: str | None = None
    expiration: int | None = None
    inception: int | None = None
    upstream_ip: str | None = None
    upstream_port: int | None = None
    upstream_rcode: str | None = None
    upstream_timeout: bool | None = None
    reason: str | None = None
    vendor: str | None = None
    source_tag: str | None = None
    # A name the text is about that is not a zone: a query name, an RRset owner, a DS owner
    # (the DS record lives in the parent). Never shown as a zone "named in the text".
    qname: str | None = None
    # Excluded from hashing: a dict is not hashable, and facts must stay usable as keys.
    sde: dict[str, Any] | None = field(default=None, hash=False)


_NOTHING = TextFacts()
Facts = dict[str, Any]
Handler = Callable[[re.Match[str], int | None], Facts | None]

# --- field validators: a value that does not look right is dropped, not guessed -------------

_LABEL = re.compile(r"[a-z0-9_-]{1,63}|\*", re.ASCII)
_RRTYPE = re.compile(r"[A-Z][A-Z0-9-]{0,15}|TYPE[0-9]{1,5}", re.ASCII)
_KNOWN_RRTYPES = frozenset(dnsnames.RRTYPES.values())


def _zone(raw: str | None) -> str | None:
    """Return ``raw`` as a lower-case DNS name without the final dot, or None if it is not one."""
    if not raw:
        return None
    name = raw.lower()
    if name == ".":
        return name
    name = name.removesuffix(".")
    # RFC 1035 §2.3.4: at most 255 octets on the wire, 253 characters in presentation form.
    if not name or len(name) > 253:
        return None
    return name if all(_LABEL.fullmatch(label) for label in name.split(".")) else None


def _rrtype(raw: str | None) -> str | None:
    value = (raw or "").upper()
    return value if _RRTYPE.fullmatch(value) else None


def _ip(raw: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(raw or ""))
    except ValueError:
        return None


def _port(raw: str | None) -> int | None:
    value = int(raw) if raw else 0
    return value if 0 < value < 65536 else None


# --- 1.1.1.1 / Cloudflare (cloudflare-docs extended-dns-error-codes.mdx; seed page) ---------

_CF_DETAIL = {"unsupported key size": "unsupported-key-size"}
_CF_KEY_REASON = {7: "signature-expired", 8: "signature-not-yet-valid", 10: "no-signatures",
                  11: "no-zone-key-bit"}


def _cf_dnskey(m: re.Match[str], code: int | None) -> Facts:
    # codes 7, 8, 10, 11 share "for DNSKEY <zone>, id = <tag>"; the time field tells 7 from 8
    field_name, when = m["field"], m["time"]
    reason = {"expiration": "signature-expired", "inception": "signature-not-yet-valid"}.get(
        field_name or "", _CF_KEY_REASON.get(code or -1))
    facts: Facts = {"zone": _zone(m["zone"]), "key_tag": int(m["tag"]), "reason": reason}
    if field_name:
        facts[field_name] = int(when)
    return facts


def _cf_verify(m: re.Match[str], code: int | None) -> Facts:
    detail = m["detail"].strip().lower()
    reason = _CF_DETAIL.get(detail) or ("unsupported-algorithm" if code == 1 else None)
    # the DNSKEY owner is a zone apex; the name that failed to verify is only a query name
    return {"zone": _zone(m["zone"]), "qname": _zone(m["qname"]), "rrtype": _rrtype(m["rrtype"]),
            "key_tag": int(m["tag"]) if m["tag"] else None, "reason": reason}


def _cf_upstream(m: re.Match[str], code: int | None) -> Facts:
    timeout = m["timeout"] is not None
    rcode = (m["rcode"] or "").upper() or None
    return {"upstream_ip": _ip(m["v6"] or m["host"]), "upstream_port": _port(m["port"]),
            "upstream_rcode": rcode, "upstream_timeout": timeout,
            "qname": _zone(m["qname"]), "rrtype": _rrtype(m["rrtype"]),
            "reason": "upstream-timeout" if timeout else "upstream-rcode"}


def _fixed(reason: str, **extra: Any) -> Handler:
    """Return a handler for a template whose only variables are a zone (or a query name,
    group ``qname``, for templates that name the name asked rather than a zone) and an RR
    type."""
    def handler(m: re.Match[str], code: int | None) -> Facts:
        groups = m.groupdict()
        return {"zone": _zone(groups.get("zone")), "qname": _zone(groups.get("qname")),
                "rrtype": _rrtype(groups.get("rrtype")), "reason": reason, **extra}
    return handler


# --- Unbound (util/module.c errinf_*, validator/*.c reason strings, iterator.c) --------------

_UB_REASONS: tuple[tuple[str, str], ...] = (
    ("signature expired", "signature-expired"),
    ("signature before inception date", "signature-not-yet-valid"),
    ("signature inception after expiration", "signature-expired-before-valid"),
    ("ds hash mismatches key", "no-sep-matching-ds"),
    ("no dnskey record", "no-dnskey"),
    ("dnskey revoked", "dnskey-revoked"),
    ("signatures from unknown keys", "unknown-signing-key"),
    ("no signatures", "no-signatures"),
    ("signature crypto failed", "signature-crypto-failed"),
    ("no dnssec records", "no-dnssec-records"),
    ("unsupported algorithm", "unsupported-algorithm"),
    ("nsec3 iterations", "nsec3-iterations"),
    ("did not prove no ds", "nsec-missing"),
    ("too many rrsig validations", "too-many-validations"),
)
_UB_MISC: dict[str, str] = {
    "exceeded the maximum nameserver nxdomains": "nameserver-nxdomains",
    "upstream server timeout": "upstream-timeout",
    "could not fetch nameservers": "no-reachable-authority",
    "could not fetch nameserver": "no-reachable-authority",
    "exceeded ratelimit for zone": "rate-limited",
    "no addresses for nameservers": "no-reachable-authority",
    "sanitize: records of inappropriate length have been removed.": "sanitized",
}
_UB_KEY = re.compile(r"\bfor key (\S{1,255})", re.ASCII)
_UB_RRSET = re.compile(r"\bfor <([^\s<>]{1,255}) ([A-Za-z0-9-]{1,16}) [A-Za-z0-9]{1,10}>", re.ASCII)
# errinf_origin: "from <ip>" (addr_to_str prints the address only) or "from cache"
_UB_FROM = re.compile(r"\bfrom ([0-9A-Fa-f:.]{2,45})(?=\s|$)", re.ASCII)
_UB_ZONE_AFTER = re.compile(r" (\S{1,255})", re.ASCII)


def _unbound_validation(m: re.Match[str], code: int | None) -> Facts:
    rest = m["rest"]
    lowered = rest.lower()
    # The key's zone names the broken link in the chain; the qname is only where it showed up.
    # Without "for key ZONE" the text names an RRset owner ("for <name DS IN>": a DS owner,
    # whose record lives in the parent) or only the query name: neither is a zone, except
    # the owner of a DNSKEY RRset, which is a zone apex.
    key, rrset = _UB_KEY.search(rest), _UB_RRSET.search(rest)
    origin = _UB_FROM.search(rest)
    groups = m.groupdict()
    apex = rrset[1] if rrset and rrset[2].upper() == "DNSKEY" else None
    zone = _zone(key[1] if key else apex)
    owner = _zone(rrset[1] if rrset else groups.get("qname"))
    return {"zone": zone, "qname": None if zone is not None and owner == zone else owner,
            "rrtype": _rrtype(groups.get("qtype")),
            "upstream_ip": _ip(origin[1]) if origin else None,
            "reason": next((slug for phrase, slug in _UB_REASONS if phrase in lowered), None)}


def _unbound_misc(m: re.Match[str], code: int | None) -> Facts:
    reason = _UB_MISC[m["frag"]]
    after = _UB_ZONE_AFTER.match(m["rest"]) if m["frag"].endswith("for zone") else None
    origin = _UB_FROM.search(m["rest"])
    return {"reason": reason, "zone": _zone(after[1]) if after else None,
            "upstream_ip": _ip(origin[1]) if origin else None,
            "upstream_timeout": True if reason == "upstream-timeout" else None}


# --- BIND 9 (lib/dns/validator.c validator_addede: "[<extra> ]<name>/<TYPE>", 64 bytes) -------

_BIND_EXTRA: dict[str, str] = {
    "DNSKEY found but not matching DS": "no-sep-matching-ds",
    "no DNSKEY found": "no-dnskey",
}
# dns_secalg_format / dns_dsdigest_format mnemonics, sent for codes 1 and 2
_BIND_ALGORITHMS = frozenset({
    "RSAMD5", "DH", "DSA", "RSASHA1", "NSEC3DSA", "NSEC3RSASHA1", "RSASHA256", "RSASHA512",
    "ECCGOST", "ECDSAP256SHA256", "ECDSAP384SHA384", "ED25519", "ED448", "INDIRECT",
    "PRIVATEDNS", "PRIVATEOID",
})
_BIND_DIGESTS = frozenset({"SHA-1", "SHA-256", "GOST", "SHA-384"})
# The code says what the bare "<name>/<TYPE>" form (7, 8) or an unlisted mnemonic is about.
_BIND_BY_CODE = {1: "unsupported-algorithm", 2: "unsupported-digest", 7: "signature-expired",
                 8: "signature-not-yet-valid", 9: "no-dnskey"}


def _bind_validator(m: re.Match[str], code: int | None) -> Facts | None:
    rrtype = m["rrtype"]
    # The name/TYPE tail is BIND's mark, but only with a real type mnemonic (not "and/or").
    if rrtype not in _KNOWN_RRTYPES and not rrtype.startswith("TYPE"):
        return None
    extra = m["extra"] or ""
    if extra in _BIND_ALGORITHMS:
        reason: str | None = "unsupported-algorithm"
    elif extra in _BIND_DIGESTS:
        reason = "unsupported-digest"
    else:
        reason = _BIND_EXTRA.get(extra) or _BIND_BY_CODE.get(code or -1)
    # "<name>/<TYPE>" names the RRset being validated: a zone apex only for DNSKEY; for DS
    # it is a DS owner (the record lives in the parent), otherwise a query name
    name = _zone(m["zone"])
    apex = rrtype == "DNSKEY"
    return {"zone": name if apex else None, "qname": None if apex else name,
            "rrtype": _rrtype(rrtype), "reason": reason}


def _bind_truncated(m: re.Match[str], code: int | None) -> Facts:
    # The 64-byte cut took the "/TYPE" tail, and maybe part of the name: keep the reason only.
    return {"reason": _BIND_EXTRA[m["extra"]]}


# --- Knot Resolver (kr_request_set_extended_error: 4-character tag, optional ": message") ----

def _tags(reason: str, *tags: str) -> dict[str, str]:
    return dict.fromkeys(tags, reason)


_KNOT_TAGS: dict[str, str] = {
    **_tags("no-reachable-authority", "QLPL", "RRPF", "OLX2", "P3CD"),
    **_tags("signature-expired", "YFJ2", "6GJV"),
    **_tags("signature-not-yet-valid", "UBBS", "4DJQ"),
    **_tags("signature-expired-before-valid", "XXAP", "4UBF"),
    **_tags("bogus", "I74V", "EXRU", "Z4I6", "NXJA", "MISQ", "MJX6", "XLE4"),
    **_tags("no-signatures", "JZAJ", "7N4Z"),
    **_tags("no-zone-key-bit", "YQEH", "CYNG"),
    **_tags("nsec-missing", "3WKM", "AHXI"),
    **_tags("unsupported-algorithm", "H6OO", "PBAO"),
    **_tags("unsupported-digest", "DDDV"),
    **_tags("nsec3-iterations", "AUO2"),
    **_tags("not-supported", "57CK"),
    **_tags("recursion-disabled", "ABC4"),
    **_tags("forged", "5DO5", "DUQR"),
    **_tags("blocked", "CR36"),
    **_tags("prohibited", "U5KL", "EIM4"),
    **_tags("stale-answer", "WFAC"),
    **_tags("stale-nxdomain", "QSF6"),
    **_tags("no-sep-matching-ds", "NMJZ"),
    **_tags("dnskey-revoked", "DGVI"),
    **_tags("iteration-limit", "OGHD"),
    **_tags("forwarded", "V5T7"),
    **_tags("dns64", "BHD4"),
}
_KNOT_DELEGATION = re.compile(r"delegation (\S{1,255})", re.ASCII)


def _knot(m: re.Match[str], code: int | None) -> Facts | None:
    tag = m["tag"]
    # Tags are random base32, so an unknown one still counts when it mixes letters and digits;
    # an all-letter word such as "NOTE: ..." or "DENY" is not taken for a tag.
    if tag not in _KNOT_TAGS and (tag.isalpha() or tag.isdigit()):
        return None
    delegation = _KNOT_DELEGATION.fullmatch(m["msg"] or "")
    return {"source_tag": tag, "reason": _KNOT_TAGS.get(tag),
            "zone": _zone(delegation[1]) if delegation else None}


# --- Technitium DNS Server (DnsServer #1403, #2029: "key=value; key=value") ------------------

def _technitium_pairs(m: re.Match[str], code: int | None) -> Facts | None:
    pairs = dict(p.strip().partition("=")[::2] for p in m[0].split(";"))
    # Both documented keys must be there: "a=b" alone is too common to name a vendor.
    if "source" not in pairs or "domain" not in pairs:
        return None
    return {"zone": _zone(pairs["domain"]), "reason": "blocked" if "block" in pairs["source"]
            else None}


# --- Structured DNS Error JSON (draft-ietf-dnsop-structured-dns-error: keys c, j, s, o, l) ---

_SDE_TYPES: dict[str, type] = {"c": list, "j": str, "s": int, "o": str, "l": str}
_SDE_REASON = {15: "blocked", 16: "censored", 17: "filtered", 35: "blocked-upstream"}


def _sde(m: re.Match[str], code: int | None) -> Facts | None:
    try:
        data = json.loads(m[0])
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    sde = {k: v for k, v in data.items()
           if k in _SDE_TYPES and isinstance(v, _SDE_TYPES[k]) and not isinstance(v, bool)}
    if "c" in sde and not all(isinstance(uri, str) for uri in sde["c"]):
        del sde["c"]
    if not sde:
        return None
    return {"sde": sde, "reason": _SDE_REASON.get(code or -1)}


# --- the table -----------------------------------------------------------------------------

_NAME = r"[^\s,<>]{1,255}"
_TYPE = r"[A-Za-z][A-Za-z0-9-]{0,15}"
_HOST = r"(?:\[(?P<v6>[0-9A-Fa-f:.]{2,45})\]|(?P<host>[0-9A-Fa-f:.]{2,45}))"


Rule = tuple[re.Pattern[str], str | None, Handler]


def _rule(vendor: str | None, pattern: str, handler: Handler) -> Rule:
    return re.compile(pattern, re.ASCII | re.DOTALL), vendor, handler


# Tried in order; each pattern must match the whole (stripped) text.
_RULES: tuple[Rule, ...] = (
    # 1.1.1.1, codes 7/8/10/11: "for DNSKEY example.com., id = 1[: RRSIG <owner>, expiration = N]"
    _rule("cloudflare", rf"for DNSKEY (?P<zone>{_NAME}), id = (?P<tag>\d{{1,5}})"
          rf"(?:: RRSIG {_NAME}, (?P<field>expiration|inception) = (?P<time>\d{{1,20}}))?",
          _cf_dnskey),
    # 1.1.1.1, code 1: "failed to verify example.com. A: unsupported key size, DNSKEY <z>, id = 1"
    _rule("cloudflare", rf"failed to verify (?P<qname>{_NAME}) (?P<rrtype>{_TYPE}): "
          rf"(?P<detail>[^,]{{0,200}})(?:, DNSKEY (?P<zone>{_NAME}), id = (?P<tag>\d{{1,5}}))?",
          _cf_verify),
    # 1.1.1.1, code 12: "failed to verify an insecure referral proof for example.com"
    _rule("cloudflare", rf"failed to verify an insecure referral proof for (?P<zone>{_NAME})",
          _fixed("nsec-missing")),
    # 1.1.1.1, code 2: "no supported DS digest type for example.com."
    _rule("cloudflare", rf"no supported DS digest type for (?P<zone>{_NAME})",
          _fixed("unsupported-digest")),
    # 1.1.1.1, code 6: "proof of non-existence of example.com. A"
    _rule("cloudflare", rf"proof of non-existence of (?P<qname>{_NAME}) (?P<rrtype>{_TYPE})",
          _fixed("bad-denial-proof")),
    # 1.1.1.1, code 6: "found duplicate CNAME records for example.com. (1 duplicate RRs)"
    _rule("cloudflare", rf"found duplicate (?P<rrtype>{_TYPE}) records for (?P<qname>{_NAME}) "
          r"\(\d{1,6} duplicate RRs\)", _fixed("duplicate-records")),
    # 1.1.1.1, code 9: "no SEP matching the DS found for dnssec-failed.org."
    _rule("cloudflare", rf"no SEP matching the DS found for (?P<zone>{_NAME})",
          _fixed("no-sep-matching-ds")),
    # 1.1.1.1, code 22: "at delegation example.com."
    _rule("cloudflare", rf"at delegation (?P<zone>{_NAME})", _fixed("no-reachable-authority")),
    # 1.1.1.1, code 23: "1.1.1.1:53 rcode=SERVFAIL for example.com. A", "<ip>:53 timed out for <q>"
    _rule("cloudflare", rf"{_HOST}:(?P<port>\d{{1,5}}) (?:rcode=(?P<rcode>[A-Za-z0-9]{{1,12}})|"
          rf"(?P<timeout>timed out)) for (?P<qname>\S{{1,255}})(?: (?P<rrtype>{_TYPE}))?",
          _cf_upstream),
    # Unbound validator: "validation failure <www.example.com. A IN>: <reason fragments>"
    _rule("unbound", rf"validation failure <(?P<qname>{_NAME}) (?P<qtype>{_TYPE}) "
          r"[A-Za-z0-9]{1,10}>:(?P<rest>.*)", _unbound_validation),
    # Unbound errinf fragments without the "validation failure <...>:" head: "for key expired.test."
    _rule("unbound", r"(?P<rest>.*\bfor key \S.*)", _unbound_validation),
    # Knot Resolver: "NMJZ: no matching SEP", "OLX2: delegation example.org", bare "YFJ2"
    _rule("knot-resolver", r"(?P<tag>[A-Z0-9]{4})(?:: (?P<msg>.{1,1000}))?", _knot),
    # BIND validator: "DNSKEY found but not matching DS example.net/DNSKEY", "example.net/A"
    _rule("bind", r"(?:(?P<extra>[^/]{1,64}) )?(?P<zone>[^\s/]{1,255})/(?P<rrtype>[A-Z0-9]{1,10})",
          _bind_validator),
    # BIND validator text cut at 64 bytes before the "/TYPE" tail
    _rule("bind", r"(?P<extra>DNSKEY found but not matching DS|no DNSKEY found) \S{1,64}",
          _bind_truncated),
    # PowerDNS Recursor, code 22: "delegation timeout4.com" (PR example)
    _rule("powerdns", rf"delegation (?P<zone>{_NAME})", _fixed("no-reachable-authority")),
    # Technitium, code 22: "No response from name servers for <qname>. A IN" (DnsServer #491)
    _rule("technitium", rf"No response from name servers for (?P<qname>{_NAME}) "
          rf"(?P<rrtype>{_TYPE}) [A-Z0-9]{{1,10}}",
          _fixed("no-reachable-authority", upstream_timeout=True)),
    # Technitium, code 15: "source=blocked-zone; domain=evil.com"
    _rule("technitium", r"[a-zA-Z][\w-]{0,30}=[^;=]{0,255}(?:; ?[a-zA-Z][\w-]{0,30}=[^;=]{0,255})"
          r"{0,15}", _technitium_pairs),
    # Structured DNS Error: minified I-JSON object in EXTRA-TEXT
    _rule("structured-dns-error", r"\{.*\}", _sde),
    # Unbound iterator SERVFAIL: space-joined fragments from iterator.c (errinf_to_str_misc)
    _rule("unbound", r".{0,1000}?(?P<frag>" + "|".join(re.escape(f) for f in _UB_MISC)
          + r")(?P<rest>.*)", _unbound_misc),
)

# Whole texts that carry no variables: text -> (vendor, reason, extra facts).
_EXACT: dict[str, tuple[str | None, str, Facts]] = {
    # Unbound fixed strings (mesh.c, worker.c, localzone.c)
    "Too many queries queued up and waiting from the IP": ("unbound", "queue-full", {}),
    "DNS Cookie needed for UDP replies": ("unbound", "cookie-required", {}),
    "DNAME expansion became too large": ("unbound", "dname-too-large", {}),
    # BIND 9 (lib/ns/query.c, lib/dns/resolver.c)
    "recursion disabled": ("bind", "recursion-disabled", {}),
    "zone not loaded": ("bind", "zone-not-loaded", {}),
    "zone expired": ("bind", "zone-expired", {}),
    "resolver failure": ("bind", "resolver-failure", {}),
    "query within stale refresh time window": ("bind", "stale-refresh-window", {}),
    "stale data prioritized over lookup": ("bind", "stale-prioritized", {}),
    "max. restarts reached": ("bind", "max-restarts", {}),
    "Negative Trust Anchor applied (RFC 7646)": ("bind", "negative-trust-anchor", {}),
    # PowerDNS Recursor (pdns/recursordist/syncres.cc), codes 29 and 22
    "Result synthesized by root-nx-trust": ("powerdns", "root-nx-trust", {}),
    "Result from negative cache": ("powerdns", "negative-cache", {}),
    "Result from negative cache for entire name": ("powerdns", "negative-cache", {}),
    "Result synthesized by nothing-below-nxdomain (RFC8020)": ("powerdns", "nxdomain-cut", {}),
    "Result synthesized from aggressive NSEC cache (RFC8198)": ("powerdns", "aggressive-nsec", {}),
    "Timeout waiting for answer(s)": ("powerdns", "upstream-timeout", {"upstream_timeout": True}),
    # 1.1.1.1, code 22 (doggo #74); code 30 text is the registry name, so it names no vendor
    "time limit exceeded": ("cloudflare", "time-limit-exceeded", {}),
    "Invalid Query Type": (None, "invalid-query-type", {}),
}


def parse_extra_text(text: str | None, code: int | None = None) -> TextFacts:
    """Return the facts an EXTRA-TEXT states; an empty ``TextFacts`` for unknown wording.

    :param code: the INFO-CODE the text came with; it picks the reason where one template
        serves several codes (1.1.1.1 uses the same text for 10 and 11).
    """
    if not text:
        return _NOTHING
    # RFC 8914 §2: EXTRA-TEXT MAY be NUL-terminated; dig-style padding is not on the wire.
    text = text[:MAX_TEXT].strip(" \t\r\n\x00")
    exact = _EXACT.get(text)
    if exact is not None:
        vendor, reason, extra = exact
        return TextFacts(vendor=vendor, reason=reason, **extra)
    for pattern, vendor, handler in _RULES:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        facts = handler(match, code)
        if facts is not None:
            return TextFacts(vendor=vendor, **facts)
    return _NOTHING


def fingerprint(texts: Iterable[str]) -> tuple[str | None, list[str]]:
    """Return the resolver software the texts point to most often, and the texts that say so.

    Ties go to the software seen first. Evidence is at most five distinct texts, in the order
    they were first seen; non-strings (missing values from a frame) are ignored.
    """
    votes: Counter[str] = Counter()
    evidence: dict[str, list[str]] = {}
    # Texts repeat heavily in a capture, so each distinct one is parsed once.
    for text, count in Counter(texts).items():
        if not isinstance(text, str):
            continue
        vendor = parse_extra_text(text).vendor
        if vendor is None or vendor not in _SOFTWARE:
            continue
        votes[vendor] += count
        found = evidence.setdefault(vendor, [])
        if len(found) < _MAX_EVIDENCE:
            found.append(text)
    if not votes:
        return None, []
    best = votes.most_common(1)[0][0]
    return best, evidence[best]


# --- RRSIG times -----------------------------------------------------------------------------

def rrsig_time(value: int | str | None) -> int | None:
    """Return an RRSIG expiration or inception as seconds since the epoch, or None.

    RFC 4034 §3.2: the presentation form is either ``YYYYMMDDHHmmSS`` in UTC or an unsigned
    decimal count of seconds; a 14-digit value that is a valid date is the former (as
    dnspython reads it), anything else the latter, kept within the 32-bit field.
    """
    if value is None:
        return None
    text = str(value)
    if not text.isdigit():
        return None
    if len(text) == 14:
        from datetime import UTC, datetime

        year, month, day, hour, minute, second = (int(text[i:i + w]) for i, w in (
            (0, 4), (4, 2), (6, 2), (8, 2), (10, 2), (12, 2)))
        try:
            moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            pass
        else:
            return int(moment.timestamp())
    seconds = int(text)
    return seconds if seconds < 2**32 else None


# --- facts as frame columns ------------------------------------------------------------------

# Column -> dtype of the columns ``add_fact_columns`` appends, in order. The dtypes are the
# frame's own (nullable), so a Parquet dataset and every renderer take them as they are.
FACT_DTYPES: dict[str, str] = {
    "fact_zone": "string",
    "fact_key_tag": "UInt16",
    "fact_rrtype": "category",
    "fact_expiration": "datetime64[ns, UTC]",
    "fact_inception": "datetime64[ns, UTC]",
    "fact_upstream_ip": "string",
    "fact_upstream_port": "UInt16",
    "fact_upstream_rcode": "category",
    "fact_upstream_timeout": "boolean",
    "fact_reason": "category",
    "fact_vendor": "category",
}
FACT_COLUMNS: tuple[str, ...] = tuple(FACT_DTYPES)


def add_fact_columns(df: Any) -> Any:
    """Return the EDE frame with the facts its EXTRA-TEXTs state as ``fact_*`` columns.

    Each distinct (``extra_text``, ``ede_code``) pair is parsed once with
    ``parse_extra_text``; a fact the text does not state is missing (``<NA>``, ``NaT``).
    RRSIG times become UTC timestamps (``rrsig_time``). The frame passed in is not changed.

    Example: ``analyzer.add_fact_columns(analyzer.read_ede("samples/incident.pcap"))``
    """
    import numpy as np
    import pandas as pd

    n = len(df)
    text_index, texts = pd.factorize(df["extra_text"], use_na_sentinel=True)
    code = df["ede_code"].astype("Int64").fillna(-1).to_numpy(dtype=np.int64)
    # one int per (text, code) pair: text index + 1 (0 = missing) times 2**17, code + 1
    pairs, index = np.unique((np.asarray(text_index, dtype=np.int64) + 1) * 131_072
                             + code + 1, return_inverse=True)
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    values: dict[str, list[Any]] = {name: [] for name in FACT_COLUMNS}
    for pair in pairs.tolist():
        t, c = divmod(pair, 131_072)
        facts = parse_extra_text(str(texts[t - 1]) if t else None, c - 1 if c else None)
        for name in FACT_COLUMNS:
            value = getattr(facts, name.removeprefix("fact_"))
            if name in ("fact_expiration", "fact_inception"):
                seconds = rrsig_time(value)
                value = None if seconds is None else seconds * 1_000_000_000
            values[name].append(value)
    columns: dict[str, Any] = {}
    for name, dtype in FACT_DTYPES.items():
        per_pair = values[name]
        if dtype.startswith("datetime"):
            ns = np.array([-1 if v is None else v for v in per_pair], dtype=np.int64)[index]
            missing = np.array([v is None for v in per_pair], dtype=bool)[index]
            stamps = pd.Series(ns.view("datetime64[ns]"), index=df.index)
            stamps[missing] = pd.NaT
            columns[name] = stamps.dt.tz_localize("UTC")
        else:
            kind = pd.StringDtype("python") if dtype == "string" else dtype
            array = pd.array(per_pair, dtype="object" if kind == "category" else kind)
            taken = array.take(index) if n else array[:0]
            columns[name] = pd.Series(taken, index=df.index, dtype=kind)
    return df.assign(**columns)
