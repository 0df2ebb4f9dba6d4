"""Fuzz the whole pipeline from the file's first byte: hostile captures in, a result out.

Captures are evidence from the wild and sometimes from an attacker, so any bytes given to
``scan`` must give a ``ScanResult`` (a file that cannot be read is a ``CaptureError``
recorded in ``result.captures``), the accounting must sum to the packets read, and the
report must build and render in every format. Anything else - an exception, a hang, a
broken invariant - is a bug.

The harness, shared with ``bench/fuzz_long.py`` (the long, parallel run, with atheris when
it is installed):

- ``seeds()``: real captures to start from - ``samples/`` (broken ones too), small captures
  from the benchmark generator ``../shared/bench/make_capture.py`` and ``../shared/
  peer-captures`` when present - decompressed and trimmed to their first records, so that
  mutations land on headers rather than deep in payloads.
- ``mutate(data, ops, seeds)``: applies a list of ``(op, a, b)`` triples (two random 32-bit
  numbers each, so hypothesis, ``random`` and atheris can all drive it): bit flips,
  interesting bytes, truncation, insertions and deletions, *lies* in the length and count
  fields a structural walk of the capture finds (record lengths, block lengths, IP/UDP/TCP
  lengths, DNS counts, RDLENGTH, option lengths, pcapng options), record duplication,
  removal and reordering, splices with other seeds, and compression (gzip, bzip2, xz, zstd,
  lz4) of the result, whose bytes later ops may damage in turn.
- ``check(data)``: the oracle (see its docstring).
- ``signature(exc)``: where a crash happened, as (exception, analyzer file, function).

A crash whose signature is in ``KNOWN_BUGS`` has a reproducer in ``tests/fuzz_corpus/``
whose test is an xfail (strict) until the owner fixes it; the fuzz test tolerates it so
that it can keep looking for new ones. The default budget (``EDE_FUZZ_EXAMPLES``, 800
examples) keeps this file under a minute; raise it for a longer run:
``EDE_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import os
import signal
import struct
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.frame import EDE_COLUMNS, RESPONSE_COLUMNS
from analyzer.pipeline import scan
from analyzer.render import REPORT_FORMATS, render, write_frame
from analyzer.reports import build_report
from analyzer.result import ScanResult

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
GENERATOR = SHARED / "bench" / "make_capture.py"
PEERS = SHARED / "peer-captures"
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"

EXAMPLES = int(os.environ.get("EDE_FUZZ_EXAMPLES", "800"))
SEED_RECORDS = 40          # records kept per seed capture
MAX_INPUT = 256 << 10      # mutated inputs are cut to this many bytes
TIME_LIMIT = float(os.environ.get("EDE_FUZZ_TIME_LIMIT", "20"))  # seconds per input: a hang

# Crash signatures with a reproducer in tests/fuzz_corpus/ (MANIFEST.json names the file and
# the diagnosis). Remove an entry when its bug is fixed.
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}


class Hang(BaseException):
    """One input took longer than TIME_LIMIT (a BaseException, so no handler swallows it)."""


# --- seeds -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """A capture to start mutating from: where it came from, and its (decompressed,
    trimmed) bytes."""

    name: str
    data: bytes


def decompress(data: bytes) -> bytes:
    """Return ``data`` decompressed when it starts with a known compression magic."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:3] == b"BZh":
        return bz2.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    if data[:4] == b"\x04\x22\x4d\x18":
        import lz4.frame

        return lz4.frame.decompress(data)
    return data


def trim(data: bytes, keep: int = SEED_RECORDS, skip: int = 0) -> bytes:
    """Return the capture with only records ``skip`` .. ``skip + keep`` (headers and
    pcapng interface blocks kept); other bytes are returned unchanged."""
    layout = capture_layout(data)
    if not layout.records:
        return data
    chosen = layout.records[skip:skip + keep] or layout.records[:keep]
    head = data[:layout.header_end]
    if layout.fmt == "pcapng":
        # keep every non-packet block before the last chosen record (sections, interfaces)
        last = chosen[-1][1]
        picked = set(chosen)
        blocks = [b for b in layout.blocks if b[1] <= last and (b not in layout.records
                                                               or b in picked)]
        return b"".join(data[s:e] for s, e in blocks)
    return head + b"".join(data[s:e] for s, e in chosen)


@cache
def seeds() -> tuple[Seed, ...]:
    """Return the seed captures (see the module docstring), smallest first."""
    found: list[Seed] = []
    paths = sorted((ROOT / "samples").glob("*.pcap*")) + sorted(
        (ROOT / "samples" / "broken").glob("*.pcap*")) + sorted(
        (ROOT / "samples" / "tunnels").glob("*.pcap*"))
    if PEERS.is_dir():
        paths += sorted(p for p in PEERS.rglob("*")
                        if p.is_file() and (".pcap" in p.name or p.suffix == ".gz"))
    for path in paths:
        raw = decompress(path.read_bytes())
        found.append(Seed(path.name, trim(raw)))
        layout = capture_layout(raw)
        if len(layout.records) > 3 * SEED_RECORDS:  # and a window from the middle
            found.append(Seed(path.name + "@mid", trim(raw, skip=len(layout.records) // 2)))
    found += generated_seeds()
    # dnstap logs written by real resolvers (tests/real/dnstap), their first frames
    for path in sorted((ROOT / "tests" / "real" / "dnstap").glob("*.dnstap")):
        raw = path.read_bytes()
        layout = capture_layout(raw)
        keep = layout.records[:SEED_RECORDS]
        if keep:
            found.append(Seed(path.name, raw[:keep[-1][1]]))
    # a compressed seed of each kind, so that mutations also hit the decompressors
    base = found[0].data
    found += [Seed(f"compressed.{kind}", compress(base, kind)) for kind in COMPRESSIONS]
    return tuple(sorted(found, key=lambda s: (len(s.data), s.name)))


def generated_seeds() -> list[Seed]:
    """Return small captures from the benchmark generator (none when it is absent)."""
    if not GENERATOR.is_file():
        return []
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, seed in (("pcap", 11), ("pcapng", 12)):
            path = Path(tmp) / f"gen.{fmt}"
            subprocess.run([sys.executable, str(GENERATOR), str(path), "--packets", "120",
                            "--seed", str(seed), "--format", fmt, "--ede-share", "0.5", "-q"],
                           check=True, capture_output=True, timeout=120)
            out.append(Seed(f"generated.{fmt}", trim(path.read_bytes())))
    return out


# --- a structural walk of a capture: records and the fields worth lying in --------------------


@dataclass(frozen=True)
class Field:
    """An integer field of the capture: where, how wide (1, 2 or 4 bytes), which byte order."""

    offset: int
    size: int
    endian: str
    kind: str


@dataclass
class Layout:
    """What ``capture_layout`` found: format, end of the file header, packet records (start,
    end), all blocks (pcapng; for pcap the records) and the fields worth lying in."""

    fmt: str = ""
    header_end: int = 0
    records: list[tuple[int, int]] = field(default_factory=list)
    blocks: list[tuple[int, int]] = field(default_factory=list)
    fields: list[Field] = field(default_factory=list)


_PCAP_ENDIAN = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
                b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}


def capture_layout(data: bytes) -> Layout:
    """Return the records and the length/count fields of a pcap or pcapng capture.

    Written independently of ``analyzer``, never raises, and stops at the first record that
    does not fit (the rest is left to bit flips).
    """
    out = Layout()
    try:
        if data[:4] in _PCAP_ENDIAN:
            _walk_pcap(data, out)
        elif data[:4] == b"\x0a\x0d\x0d\x0a":
            _walk_pcapng(data, out)
        elif data[:4] == b"\0\0\0\0":
            _walk_dnstap(data, out)
    except (struct.error, IndexError):
        pass
    return out


def _walk_dnstap(data: bytes, out: Layout) -> None:
    """Frame Streams: control frames (escape 0, length), data frames (length, protobuf); the
    lengths are the fields, and so are the one-byte lengths of the protobuf's own fields."""
    out.fmt = "dnstap"
    off = 0
    while off + 4 <= len(data):
        (length,) = struct.unpack_from(">I", data, off)
        if length == 0:  # a control frame
            (size,) = struct.unpack_from(">I", data, off + 4)
            out.fields.append(Field(off + 4, 4, ">", "control-length"))
            out.blocks.append((off, off + 8 + size))
            off += 8 + size
            if not out.header_end:
                out.header_end = off
            continue
        end = off + 4 + length
        if end > len(data):
            break
        out.records.append((off, end))
        out.blocks.append((off, end))
        out.fields.append(Field(off, 4, ">", "frame-length"))
        _walk_protobuf(data, off + 4, end, out.fields, depth=0)
        off = end


def _walk_protobuf(data: bytes, p: int, end: int, fields: list[Field], depth: int) -> None:
    while p < end:
        key = data[p]
        if key & 0x80:
            return  # a multi-byte key: not in dnstap's schema, leave it to the flips
        wire, p = key & 7, p + 1
        if wire == 0:
            while p < end and data[p] & 0x80:
                p += 1
            p += 1
        elif wire == 2:
            if p >= end or data[p] & 0x80:
                return
            fields.append(Field(p, 1, ">", "protobuf-length"))
            size, p = data[p], p + 1
            if key >> 3 == 14 and depth == 0:  # the Message inside the Dnstap
                _walk_protobuf(data, p, min(p + size, end), fields, depth + 1)
            p += size
        elif wire == 5:
            p += 4
        elif wire == 1:
            p += 8
        else:
            return


def _walk_pcap(data: bytes, out: Layout) -> None:
    e = _PCAP_ENDIAN[data[:4]]
    out.fmt, out.header_end = "pcap", 24
    out.fields += [Field(20, 4, e, "linktype"), Field(16, 4, e, "snaplen")]
    (linktype,) = struct.unpack_from(e + "I", data, 20)
    off = 24
    while off + 16 <= len(data):
        (incl,) = struct.unpack_from(e + "I", data, off + 8)
        end = off + 16 + incl
        if end > len(data):
            break
        out.records.append((off, end))
        out.fields += [Field(off + 8, 4, e, "caplen"), Field(off + 12, 4, e, "origlen"),
                       Field(off + 4, 4, e, "ts-frac")]
        _walk_packet(data, off + 16, end, linktype & 0xFFFF, out.fields)
        off = end
    out.blocks = list(out.records)


def _walk_pcapng(data: bytes, out: Layout) -> None:
    out.fmt = "pcapng"
    e = "<"
    linktypes: list[int] = []
    off = 0
    while off + 12 <= len(data):
        if data[off:off + 4] == b"\x0a\x0d\x0d\x0a":
            e = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            linktypes = []
        btype, blen = struct.unpack_from(e + "II", data, off)
        if blen < 12 or off + blen > len(data):
            break
        end = off + blen
        out.blocks.append((off, end))
        out.fields += [Field(off + 4, 4, e, "block-length"), Field(end - 4, 4, e, "block-trailer")]
        if btype == 1 and blen >= 20:  # IDB: link type, snaplen, options (if_tsresol...)
            linktypes.append(struct.unpack_from(e + "H", data, off + 8)[0])
            out.fields += [Field(off + 8, 2, e, "linktype")]
            pos = off + 16
            while pos + 4 <= end - 4:
                code, olen = struct.unpack_from(e + "HH", data, pos)
                out.fields.append(Field(pos + 2, 2, e, "option-length"))
                if olen and pos + 4 < end - 4:
                    out.fields.append(Field(pos + 4, 1, e, f"option-{code}"))
                if olen >= 8 and pos + 12 <= end - 4:
                    out.fields.append(Field(pos + 4, 4, e, f"option-{code}-u32"))
                if code == 0:
                    break
                pos += 4 + olen + (-olen % 4)
        elif btype == 6 and blen >= 32:  # EPB
            out.records.append((off, end))
            (iface,) = struct.unpack_from(e + "I", data, off + 8)
            out.fields += [Field(off + 8, 4, e, "interface"), Field(off + 12, 4, e, "ts-high"),
                           Field(off + 20, 4, e, "caplen"), Field(off + 24, 4, e, "origlen")]
            (caplen,) = struct.unpack_from(e + "I", data, off + 20)
            if iface < len(linktypes):
                _walk_packet(data, off + 28, min(off + 28 + caplen, end - 4), linktypes[iface],
                             out.fields)
        elif btype in (2, 3):  # obsolete PB, SPB
            out.records.append((off, end))
            out.fields.append(Field(off + (20 if btype == 2 else 8), 4, e, "caplen"))
        if not out.header_end:
            out.header_end = end
        off = end


def _u16(data: bytes, off: int) -> int:
    return (data[off] << 8) | data[off + 1]


def _walk_packet(data: bytes, p: int, end: int, linktype: int, fields: list[Field]) -> None:
    """Add the IP, UDP/TCP and DNS fields of the frame at ``p``..``end``."""
    if linktype == 1:
        et, l3 = _u16(data, p + 12), p + 14
        while et in (0x8100, 0x88A8) and l3 + 4 <= end:
            et, l3 = _u16(data, l3 + 2), l3 + 4
    elif linktype == 113:
        et, l3 = _u16(data, p + 14), p + 16
    elif linktype == 276:
        et, l3 = _u16(data, p), p + 20
    elif linktype in (12, 14, 101, 228, 229):
        et, l3 = {4: 0x0800, 6: 0x86DD}.get(data[p] >> 4, 0), p
    elif linktype in (0, 108):
        et, l3 = (0x0800 if 2 in (data[p], data[p + 3]) else 0x86DD), p + 4
    else:
        return
    if et == 0x0800 and l3 + 20 <= end:
        ihl = (data[l3] & 15) * 4
        fields += [Field(l3, 1, "!", "ip-ihl"), Field(l3 + 2, 2, "!", "ip-total-length"),
                   Field(l3 + 6, 2, "!", "ip-fragment"), Field(l3 + 9, 1, "!", "ip-protocol")]
        proto, l4 = data[l3 + 9], l3 + ihl
    elif et == 0x86DD and l3 + 40 <= end:
        fields += [Field(l3 + 4, 2, "!", "ip6-payload-length"),
                   Field(l3 + 6, 1, "!", "ip6-next-header")]
        proto, l4 = data[l3 + 6], l3 + 40
    else:
        return
    if proto == 17 and l4 + 8 <= end:
        fields += [Field(l4 + 4, 2, "!", "udp-length"), Field(l4, 2, "!", "udp-port")]
        _walk_dns(data, l4 + 8, end, fields)
    elif proto == 6 and l4 + 20 <= end:
        hlen = (data[l4 + 12] >> 4) * 4
        fields += [Field(l4 + 12, 1, "!", "tcp-offset"), Field(l4 + 13, 1, "!", "tcp-flags"),
                   Field(l4 + 4, 4, "!", "tcp-seq")]
        if l4 + hlen + 2 <= end:
            fields.append(Field(l4 + hlen, 2, "!", "tcp-dns-length"))
            _walk_dns(data, l4 + hlen + 2, end, fields)


def _walk_dns(data: bytes, m: int, end: int, fields: list[Field]) -> None:
    """Add the DNS header counts, name label lengths, RDLENGTHs and OPT option lengths."""
    if m + 12 > end:
        return
    fields += [Field(m + k, 2, "!", "dns-count") for k in (4, 6, 8, 10)]
    fields.append(Field(m + 2, 1, "!", "dns-flags"))
    counts = [_u16(data, m + k) for k in (4, 6, 8, 10)]
    off = m + 12
    for section, count in enumerate(counts):
        for _ in range(min(count, 64)):
            while off < end and data[off] and data[off] < 0xC0:  # labels
                fields.append(Field(off, 1, "!", "dns-label-length"))
                off += data[off] + 1
            if off >= end:
                return
            if data[off] >= 0xC0:
                fields.append(Field(off + 1, 1, "!", "dns-pointer"))
                off += 2
            else:
                off += 1
            if section == 0:
                off += 4
                continue
            if off + 10 > end:
                return
            rtype, rdlen = _u16(data, off), _u16(data, off + 8)
            fields.append(Field(off + 8, 2, "!", "dns-rdlength"))
            start, off = off + 10, off + 10 + rdlen
            if rtype == 41:  # OPT: option code and length of every option (RFC 6891 §6.1.2)
                pos = start
                while pos + 4 <= min(off, end):
                    fields += [Field(pos, 2, "!", "edns-option-code"),
                               Field(pos + 2, 2, "!", "edns-option-length")]
                    if _u16(data, pos) == 15 and pos + 6 <= end:
                        fields.append(Field(pos + 4, 2, "!", "ede-info-code"))
                    pos += 4 + _u16(data, pos + 2)


# --- mutations ---------------------------------------------------------------------------------

INTERESTING_BYTES = (0x00, 0x01, 0x02, 0x0F, 0x10, 0x20, 0x29, 0x3F, 0x40, 0x45, 0x60, 0x7F,
                     0x80, 0x81, 0xC0, 0xC1, 0xFE, 0xFF)
COMPRESSIONS = ("gzip", "bzip2", "xz", "zstd", "lz4")
OPS = ("flip", "byte", "lie", "lie", "lie", "truncate", "insert", "delete", "splice",
       "dup-record", "drop-record", "swap-records", "append-records", "compress")
Op = tuple[str, int, int]


def compress(data: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, mtime=0)
    if kind == "bzip2":
        return bz2.compress(data)
    if kind == "xz":
        return lzma.compress(data)
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    import lz4.frame

    return lz4.frame.compress(data)


def lie(old: int, size: int, b: int, total: int) -> int:
    """Return a lying value for an integer field: boundaries, off-by-ones, or the file size."""
    top = (1 << (8 * size)) - 1
    choices = (0, 1, 2, old - 1, old + 1, old * 2, old // 2, top, top >> 1, (top >> 1) + 1,
               old + total, total, 12, 20, 40, 64, 255, 256, 65535, 65536, 1 << 20,
               (1 << 20) + 1, b >> 8)
    return choices[b % len(choices)] & top


def mutate(data: bytes, ops: Sequence[Op], pool: Sequence[Seed]) -> bytes:
    """Return ``data`` after ``ops`` (see the module docstring); ``pool`` is for splices."""
    buf = bytearray(data)
    for name, a, b in ops:
        if not buf and name not in ("insert", "splice", "append-records"):
            continue
        n = len(buf)
        if name == "flip":
            buf[a % n] ^= 1 << (b % 8)
        elif name == "byte":
            buf[a % n] = INTERESTING_BYTES[b % len(INTERESTING_BYTES)] if b & 256 else b & 0xFF
        elif name == "lie":
            fields = capture_layout(bytes(buf)).fields
            if not fields:
                buf[a % n] ^= 1 << (b % 8)
                continue
            f = fields[a % len(fields)]
            if f.offset + f.size > n:
                continue
            fmt = f.endian.replace("!", ">") + {1: "B", 2: "H", 4: "I"}[f.size]
            (old,) = struct.unpack_from(fmt, buf, f.offset)
            struct.pack_into(fmt, buf, f.offset, lie(old, f.size, b, n))
        elif name == "truncate":
            del buf[a % (n + 1):]
        elif name == "insert":
            pos = a % (n + 1)
            donor = pool[b % len(pool)].data if b & 1 else bytes([b >> 8 & 0xFF]) * 64
            start = (b >> 3) % max(1, len(donor))
            buf[pos:pos] = donor[start:start + 1 + (b >> 16) % 256]
        elif name == "delete":
            pos = a % n
            del buf[pos:pos + 1 + b % 64]
        elif name == "splice":
            donor = pool[b % len(pool)].data
            cut = (b >> 8) % (len(donor) + 1)
            buf[a % (n + 1):] = donor[cut:]
        elif name in ("dup-record", "drop-record", "swap-records"):
            layout = capture_layout(bytes(buf))
            recs = layout.records
            if not recs:
                continue
            s, e = recs[a % len(recs)]
            if name == "dup-record":
                buf[e:e] = buf[s:e] * (1 + b % 3)
            elif name == "drop-record":
                del buf[s:e]
            else:
                s2, e2 = recs[b % len(recs)]
                if (s2, e2) != (s, e):
                    (s, e), (s2, e2) = sorted(((s, e), (s2, e2)))
                    buf[s:e2] = buf[s2:e2] + buf[e:s2] + buf[s:e]
        elif name == "append-records":
            # The first donor from ``b`` on that has records (broken samples have none), so
            # the mutation changes its input whichever seeds there are (../shared or not).
            for k in range(len(pool)):
                donor = pool[(b + k) % len(pool)].data
                layout = capture_layout(donor)
                if layout.records:
                    break
            recs = layout.records[a % max(1, len(layout.records)):]
            buf += b"".join(donor[s:e] for s, e in recs[:SEED_RECORDS])
        elif name == "compress":
            buf = bytearray(compress(bytes(buf), COMPRESSIONS[b % len(COMPRESSIONS)]))
        if len(buf) > MAX_INPUT:
            del buf[MAX_INPUT:]
    return bytes(buf)


# --- the oracle -------------------------------------------------------------------------------


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``Hang`` in the code running when ``seconds`` have passed (main thread only)."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):  # type: ignore[no-untyped-def]
        raise Hang(f"no result after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check(data: bytes, *, all_responses: bool = False, frames: bool = True,
          time_limit_s: float = TIME_LIMIT) -> ScanResult:
    """Run ``data`` through scan, the report and every renderer; assert what must hold.

    - ``scan`` returns (never raises), with at most a one-line error for the capture;
    - the accounting sums to the packets read, and to the capture's own packet count;
    - the EDE (or response) frame has its schema, one row per EDE option counted;
    - ``build_report`` succeeds, every report format renders, the JSON parses;
    - the row frame writes as CSV and JSON Lines, and every line parses.
    """
    with time_limit(time_limit_s):
        result = scan([io.BytesIO(data)], all_responses=all_responses)
        assert len(result.captures) == 1
        capture = result.captures[0]
        assert capture.error is None or (isinstance(capture.error, str)
                                         and "\n" not in capture.error)
        assert sum(result.accounting.values()) == result.packets
        assert capture.packets == result.packets, (capture.packets, result.accounting)
        assert all(v > 0 for v in result.accounting.values())
        assert result.responses_with_ede <= result.dns_responses
        assert result.responses_with_ede <= result.ede_options
        if all_responses:
            assert tuple(result.responses.columns) == RESPONSE_COLUMNS
        else:
            assert tuple(result.ede.columns) == EDE_COLUMNS
            assert len(result.ede) == result.ede_options
        report = build_report(result)
        for fmt in REPORT_FORMATS:
            out = io.StringIO()
            render(report, fmt, out, width=80, color=fmt == "text" and len(data) % 2 == 1)
            if fmt == "json":
                json.loads(out.getvalue())
        if frames:
            frame = result.responses if all_responses else result.ede
            write_frame(frame, "csv", io.StringIO())
            out = io.StringIO()
            write_frame(frame, "jsonl", out)
            for line in out.getvalue().splitlines():
                json.loads(line)
    return result


def signature(exc: BaseException) -> tuple[str, str, str]:
    """Return (exception type, analyzer file, function) of the innermost analyzer frame."""
    where = ("", "")
    for fr in traceback.extract_tb(exc.__traceback__):
        path = Path(fr.filename)
        if "analyzer" in path.parts:
            rel = path.parts[path.parts.index("analyzer"):]
            where = ("/".join(rel), fr.name)
    if isinstance(exc, AssertionError) and where == ("", ""):
        where = ("tests/test_fuzz.py", "check")
    return (type(exc).__name__, *where)


def run_case(data: bytes, *, all_responses: bool = False) -> tuple[str, str, str] | None:
    """Return None when ``data`` passes ``check``, else the crash signature."""
    try:
        check(data, all_responses=all_responses)
    except (Exception, Hang) as e:  # noqa: BLE001 - the point: classify whatever escapes
        return signature(e)
    return None


# --- the tests ---------------------------------------------------------------------------------

op_strategy = st.tuples(st.sampled_from(OPS), st.integers(0, 2**32 - 1),
                        st.integers(0, 2**32 - 1))


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(0, 2**16), ops=st.lists(op_strategy, min_size=1, max_size=6),
       all_responses=st.booleans())
def test_mutated_captures_give_a_result_or_a_capture_error(
        seed: int, ops: list[Op], all_responses: bool) -> None:
    pool = seeds()
    data = mutate(pool[seed % len(pool)].data, ops, pool)
    try:
        check(data, all_responses=all_responses)
    except (Exception, Hang) as e:  # noqa: BLE001
        if signature(e) in KNOWN_BUGS:
            return  # reproduced by an xfail in test_corpus_input; keep looking for new ones
        raise


def test_every_seed_passes_unmutated() -> None:
    # The harness is only as good as its seeds: each must decode, and together they must
    # cover pcap and pcapng, compression, and responses carrying EDE options.
    formats = set()
    edes = 0
    for s in seeds():
        result = check(s.data)
        formats.add(result.captures[0].file_format)
        edes += result.ede_options
    assert {"pcap", "pcapng"} <= formats
    assert edes > 50


def test_the_walk_finds_the_fields_to_lie_in() -> None:
    data = (ROOT / "samples" / "transports.pcap").read_bytes()
    kinds = {f.kind for f in capture_layout(data).fields}
    assert {"caplen", "ip-total-length", "udp-length", "tcp-dns-length", "dns-count",
            "dns-rdlength", "edns-option-length", "ede-info-code"} <= kinds
    ng = (ROOT / "samples" / "all-codes.pcapng").read_bytes()
    kinds = {f.kind for f in capture_layout(ng).fields}
    assert {"block-length", "option-9", "caplen", "ede-info-code"} <= kinds
    log = (ROOT / "tests" / "real" / "dnstap" / "unbound.dnstap").read_bytes()
    layout = capture_layout(log)
    assert layout.fmt == "dnstap" and len(layout.records) == 184
    assert {"control-length", "frame-length", "protobuf-length"} <= {f.kind for f in
                                                                      layout.fields}
    assert any(s.name == "unbound.dnstap" for s in seeds())


@pytest.mark.parametrize("name", ["flip", "byte", "lie", "truncate", "insert", "delete",
                                  "splice", "dup-record", "drop-record", "swap-records",
                                  "append-records", "compress"])
def test_each_mutation_changes_the_input_deterministically(name: str) -> None:
    pool = seeds()
    data = pool[-1].data
    first = mutate(data, [(name, 12345, 67890)], pool)
    assert first == mutate(data, [(name, 12345, 67890)], pool)
    assert first != data or name == "lie"  # a lie may pick the value already there


# --- the regression corpus ---------------------------------------------------------------------


def corpus_cases() -> list[object]:
    """Return one pytest param per file in tests/fuzz_corpus/, xfail when MANIFEST.json
    says the bug it reproduces is still open."""
    manifest = json.loads((CORPUS / "MANIFEST.json").read_text())
    params = []
    for path in sorted(CORPUS.iterdir()):
        if path.name in ("MANIFEST.json", "README.md"):
            continue
        entry = manifest.get(path.name, {})
        marks = [pytest.mark.xfail(strict=True, reason=entry["bug"])] if entry.get("bug") else []
        params.append(pytest.param(path, bool(entry.get("all_responses")), marks=marks,
                                   id=path.name))
    return params


@pytest.mark.parametrize(("path", "all_responses"), corpus_cases())
def test_corpus_input(path: Path, all_responses: bool) -> None:
    check(path.read_bytes(), all_responses=all_responses)


def test_every_corpus_file_is_described() -> None:
    manifest = json.loads((CORPUS / "MANIFEST.json").read_text())
    files = {p.name for p in CORPUS.iterdir()} - {"MANIFEST.json", "README.md"}
    assert files == set(manifest), "add new corpus files to MANIFEST.json (and old ones out)"
    for entry in manifest.values():
        assert entry.get("what"), "say what each input is"


def test_known_bugs_have_an_open_corpus_entry() -> None:
    # A signature stays tolerated by the fuzz test only while a strict xfail reproduces it.
    manifest = json.loads((CORPUS / "MANIFEST.json").read_text())
    open_signatures = {tuple(e["signature"]) for e in manifest.values() if e.get("bug")}
    assert set(KNOWN_BUGS) <= open_signatures


# --- atheris (coverage-guided), when installed ------------------------------------------------


def test_atheris_smoke_run() -> None:
    pytest.importorskip("atheris")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz_long.py"), "--engine", "atheris",
         "--runs", "150", "--workers", "1", "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["inputs"] >= 150
    assert not stats["new_signatures"], stats
