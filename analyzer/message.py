"""DNS wire format -> the fields of a response that the reports need (our own decoder).

``dpkt.dns`` raises on RR types it does not know (RRSIG, DNSKEY, HTTPS...) and leaves OPT
options unparsed, so we decode ourselves, and only as far as needed: the header, the first
question, and the OPT record wherever it stands in the additional section. Every other RR
is skipped by its RDLENGTH. All reads are bounds-checked; compression pointers must point
strictly backwards, so a crafted name cannot loop.
"""

from __future__ import annotations

import re
import struct
from typing import NamedTuple

from analyzer import speedups
from analyzer.errors import Malformed

OPT = 41
EDE_OPTION = 15  # RFC 8914 §2
REPORT_CHANNEL_OPTION = 18  # RFC 9567 §5: the agent domain for DNS error reports
_HEADER = struct.Struct("!6H")
_TYPE_CLASS = struct.Struct("!HH")
_RR_FIXED = struct.Struct("!HHIH")
_MAX_NAME = 255  # RFC 1035 §3.1, in wire octets
_PLAIN_NAME = re.compile(rb"[A-Za-z0-9_*.-]+")

FLAG_QR, FLAG_AA, FLAG_TC, FLAG_RD = 0x8000, 0x0400, 0x0200, 0x0100
FLAG_RA, FLAG_AD, FLAG_CD = 0x0080, 0x0020, 0x0010


class EdeOption(NamedTuple):
    """One Extended DNS Error option (RFC 8914 §2)."""

    info_code: int
    extra_text: str       # decoded text; invalid UTF-8 is kept as backslash escapes
    utf8_valid: bool


class DnsResponse(NamedTuple):
    """The parts of a DNS message that ede-pcap reports on."""

    dns_id: int
    flags: int
    qname: str | None      # presentation format without the final dot; "." for the root
    qtype: int | None
    qclass: int | None
    question: bytes        # the question's wire bytes, to pair a response with its query
    rcode: int             # 12-bit extended RCODE when an OPT is present (RFC 6891 §6.1.3)
    has_opt: bool
    edns_udp_size: int | None
    do: bool | None
    edes: list[EdeOption]
    problems: list[str]    # findings that did not stop decoding, as reason slugs
    report_channel: str | None = None  # RFC 9567 agent domain, when the response names one


def may_hold_ede(msg: bytes) -> bool:
    """Return whether ``msg`` could carry an EDE option (the fast path's test, in Python).

    True when ARCOUNT > 0 and the OPT type bytes ``00 29`` occur after the header with the
    option code ``00 0f`` at least 10 bytes after them. A superset of real EDE messages.
    """
    if len(msg) < 12 or not (msg[10] or msg[11]):
        return False
    i = msg.find(b"\x00\x29", 12)
    return i >= 0 and msg.find(b"\x00\x0f", i + 10) >= 0


def parse_response(msg: bytes) -> DnsResponse:
    """Decode a DNS message; raise ``Malformed`` when the parts we need are unreadable.

    The compiled kernel decodes the common, clean response (see ``_speedups.c``); anything
    it does not take, malformed or merely unusual, is decoded here.
    """
    kernels = speedups.kernels
    if kernels is not None:
        clean = kernels.parse_response(msg)
        if clean is not None:
            *head, texts = clean
            return DnsResponse(*head, [EdeOption(code, text, True) for code, text in texts], [])
    return parse_response_py(msg)


def parse_response_py(msg: bytes) -> DnsResponse:
    """The Python decoder alone: the twin the kernel is tested against."""
    try:
        return _parse(msg)
    except (IndexError, struct.error):
        raise Malformed("dns-truncated") from None


def _parse(msg: bytes) -> DnsResponse:
    n = len(msg)
    if n < 12:
        raise Malformed("dns-short-header")
    dns_id, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(msg)
    problems: list[str] = []
    off = 12
    qname = qtype = qclass = None
    question = b""
    if qdcount:
        qname, off = read_name(msg, 12)
        if off + 4 > n:
            raise Malformed("dns-question-truncated")
        qtype, qclass = _TYPE_CLASS.unpack_from(msg, off)
        off += 4
        question = msg[12:off]
        for _ in range(qdcount - 1):
            off = _skip_name(msg, off) + 4
            if off > n:
                raise Malformed("dns-question-truncated")
    for _ in range(ancount + nscount):
        while True:  # the owner name, inlined: this loop is the decoder's hottest
            length = msg[off]
            if length == 0:
                off += 1
                break
            if length >= 0xC0:
                off += 2
                break
            if length > 63:
                raise Malformed("dns-bad-label-type")
            off += length + 1
        if off + 10 > n:
            raise Malformed("dns-rr-truncated")
        off += 10 + ((msg[off + 8] << 8) | msg[off + 9])
        if off > n:
            raise Malformed("dns-rdata-overrun")
    rcode = flags & 0xF
    has_opt = False
    udp_size = None
    do = None
    edes: list[EdeOption] = []
    agent = None
    for _ in range(arcount):
        if off >= n:
            raise Malformed("dns-arcount-overrun")  # ARCOUNT promised more than is here
        name_end = _skip_name(msg, off)
        if name_end + 10 > n:
            raise Malformed("dns-rr-truncated")
        rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(msg, name_end)
        start = name_end + 10
        stop = start + rdlen
        if stop > n:
            raise Malformed("dns-rdata-overrun")
        if rtype == OPT:
            if has_opt:
                problems.append("dns-multiple-opt")  # RFC 6891 §6.1.1: a FORMERR; keep the first
            else:
                has_opt = True
                udp_size = rclass
                rcode |= (ttl >> 24) << 4
                do = bool(ttl & 0x8000)
                agent = _parse_options(msg, start, stop, edes, problems)
        off = stop
    return DnsResponse(dns_id, flags, qname, qtype, qclass, question, rcode, has_opt, udp_size,
                       do, edes, problems, agent)


def _parse_options(msg: bytes, pos: int, stop: int, edes: list[EdeOption],
                   problems: list[str]) -> str | None:
    """Append the EDE options to ``edes``; return the Report-Channel agent domain, if any."""
    agent = None
    while pos < stop:
        if pos + 4 > stop:
            raise Malformed("dns-option-truncated")
        code = (msg[pos] << 8) | msg[pos + 1]
        length = (msg[pos + 2] << 8) | msg[pos + 3]
        pos += 4
        if pos + length > stop:
            raise Malformed("dns-option-overrun")  # an option longer than its OPT RDATA
        if code == EDE_OPTION:
            if length < 2:
                raise Malformed("dns-ede-too-short")  # RFC 8914 §2: INFO-CODE is 2 octets
            else:
                raw = msg[pos + 2:pos + length]
                # RFC 8914 §2: EXTRA-TEXT "SHOULD NOT" be NUL-terminated; tolerate one NUL.
                if raw[-1:] == b"\x00":
                    raw = raw[:-1]
                try:
                    edes.append(EdeOption((msg[pos] << 8) | msg[pos + 1], raw.decode(), True))
                except UnicodeDecodeError:
                    problems.append("ede-text-not-utf8")
                    edes.append(EdeOption((msg[pos] << 8) | msg[pos + 1],
                                          raw.decode("utf-8", "backslashreplace"), False))
        elif code == REPORT_CHANNEL_OPTION:
            try:  # an uncompressed name (RFC 9567 §5); a broken one is noted, not fatal
                name, end = read_name(msg[pos:pos + length], 0)
                agent = name if end == length else None
            except (Malformed, IndexError):
                agent = None
            if agent is None:
                problems.append("report-channel-malformed")
        pos += length
    return agent


def _skip_name(msg: bytes, off: int) -> int:
    """Return the offset just past the (possibly compressed) name at ``off``."""
    while True:
        length = msg[off]
        if length == 0:
            return off + 1
        if length >= 0xC0:
            msg[off + 1]  # noqa: B018 - the pointer's second byte must exist
            return off + 2
        if length > 63:
            raise Malformed("dns-bad-label-type")
        off += length + 1


def read_name(msg: bytes, off: int) -> tuple[str, int]:
    """Return the name at ``off`` in presentation format and the offset just past it."""
    labels: list[bytes] = []
    after: int | None = None
    limit = off  # every pointer must point strictly before the last place we jumped from
    wire = 0
    n = len(msg)
    while True:
        length = msg[off]
        if length == 0:
            if after is None:
                after = off + 1
            break
        if length >= 0xC0:
            target = ((length & 0x3F) << 8) | msg[off + 1]
            if after is None:
                after = off + 2
            if target >= limit:
                raise Malformed("dns-bad-pointer")  # forward or looping (RFC 1035 §4.1.4)
            limit = off = target
            continue
        if length > 63:
            raise Malformed("dns-bad-label-type")
        wire += length + 1
        if wire > _MAX_NAME:
            raise Malformed("dns-name-too-long")
        end = off + 1 + length
        if end > n:
            raise Malformed("dns-name-truncated")
        labels.append(msg[off + 1:end])
        off = end
    if not labels:
        return ".", after
    raw = b".".join(labels)
    # One check for the whole name; a label holding a dot itself must be escaped.
    if _PLAIN_NAME.fullmatch(raw) and raw.count(b".") == len(labels) - 1:
        return raw.decode(), after
    return ".".join(_escape(label) for label in labels), after


def _escape(label: bytes) -> str:
    """Return a label in RFC 4343 presentation: printable ASCII, else ``\\DDD``."""
    out = []
    for b in label:
        if b in (0x2E, 0x5C, 0x22, 0x28, 0x29, 0x3B, 0x40, 0x24):  # . \ " ( ) ; @ $
            out.append("\\" + chr(b))
        elif 0x21 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)
