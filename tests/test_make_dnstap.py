"""Check bench/make_dnstap.py against its own truth file, decoding the file independently.

The decoder here is written from the specifications, not from the generator: Frame Streams
(farsightsec.github.io/fstrm), the protobuf wire format, dnstap.proto (github.com/dnstap/
dnstap.pb) and RFC 1035/6891/8914 for the DNS messages inside.  Every truth number is
recounted from the decoded frames and must match exactly.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import shutil
import struct
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
GENERATOR = BENCH / "make_dnstap.py"
MESSAGES = 2000
TYPE_NAMES = {3: "RESOLVER_QUERY", 4: "RESOLVER_RESPONSE", 5: "CLIENT_QUERY",
              6: "CLIENT_RESPONSE"}
PROTOCOLS = {1: "udp", 2: "tcp", 3: "dot", 4: "doh", 7: "doq"}
# RCODE that goes with a response's first EDE code (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED)
RCODE_FOR_CODE = {0: {2}, 3: {0}, 6: {2}, 7: {2}, 9: {2}, 10: {2}, 12: {2}, 15: {0, 3},
                  17: {0, 3}, 18: {5}, 19: {3}, 22: {2}, 23: {2}}
VERSIONS = ["unbound 1.17.1", "BIND 9.18.28-1~deb12u2-Debian", "Knot Resolver 5.7.4",
            "PowerDNS Recursor 5.1.2"]


def generate(path: Path, *extra: str) -> dict[str, Any]:
    subprocess.run([sys.executable, str(GENERATOR), str(path), "--messages", str(MESSAGES),
                    "--quiet", *extra], check=True, capture_output=True)
    return json.loads(Path(str(path) + ".truth.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- Frame Streams and protobuf
def iter_data_frames(data: bytes) -> list[bytes]:
    """Return the DATA frames of a uni-directional Frame Streams file, checking its controls."""
    escape, length, ctype = struct.unpack_from(">III", data, 0)
    assert (escape, ctype) == (0, 2)                                   # START
    field_type, field_len = struct.unpack_from(">II", data, 12)
    assert field_type == 1                                             # CONTENT_TYPE
    assert data[20:20 + field_len] == b"protobuf:dnstap.Dnstap"
    assert length == 12 + field_len
    pos, frames = 8 + length, []
    while True:
        (n,) = struct.unpack_from(">I", data, pos)
        pos += 4
        if n == 0:                                                     # a control frame
            clen, ctype = struct.unpack_from(">II", data, pos)
            assert (clen, ctype) == (4, 3)                             # STOP, no fields
            assert pos + 4 + clen == len(data), "bytes after STOP"
            return frames
        frames.append(data[pos:pos + n])
        pos += n


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def parse_protobuf(buf: bytes) -> dict[int, list[int | bytes]]:
    """Return {field number: [values]}: varints and fixed32 as int, length-delimited as bytes."""
    fields: dict[int, list[int | bytes]] = {}
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            value = buf[pos:pos + n]
            assert len(value) == n
            pos += n
        elif wire == 5:
            (value,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        fields.setdefault(number, []).append(value)
    assert pos == len(buf)
    return fields


def one(fields: dict[int, list[Any]], number: int) -> Any:
    values = fields.get(number)
    if values is None:
        return None
    assert len(values) == 1, f"field {number} repeated"
    return values[0]


# ---------------------------------------------------------------- DNS
def read_name(msg: bytes, pos: int) -> tuple[str, int]:
    """Return the name at ``pos`` and the offset after it (RFC 1035 §4.1.4 pointers)."""
    labels, end, jumps = [], None, 0
    while True:
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            target = ((n & 0x3F) << 8) | msg[pos + 1]
            assert target < pos, "pointer must point backwards"
            end = pos + 2 if end is None else end
            pos, jumps = target, jumps + 1
            continue
        assert n < 64
        if n == 0:
            return ".".join(labels).lower() + ".", (pos + 1 if end is None else end)
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii"))
        pos += 1 + n


@dataclass
class Dns:
    id: int
    flags: int
    qname: str
    qtype: int
    rcode: int
    edes: list[tuple[int, str]] = field(default_factory=list)
    has_opt: bool = False


def parse_dns(msg: bytes) -> Dns:
    """Parse a whole message: every RR is walked and the message must end exactly."""
    ident, flags, qd, an, ns, ar = struct.unpack_from(">6H", msg, 0)
    assert qd == 1
    qname, pos = read_name(msg, 12)
    qtype, qclass = struct.unpack_from(">HH", msg, pos)
    assert qclass == 1
    pos += 4
    out = Dns(ident, flags, qname, qtype, flags & 0xF)
    for i in range(an + ns + ar):
        owner, pos = read_name(msg, pos)
        rtype, rclass, ttl, rdlen = struct.unpack_from(">HHIH", msg, pos)
        pos += 10
        rdata = msg[pos:pos + rdlen]
        assert len(rdata) == rdlen
        pos += rdlen
        if rtype != 41:
            continue
        assert i >= an + ns and owner == "." and not out.has_opt      # RFC 6891 §6.1.1
        out.has_opt = True
        p = 0
        while p < len(rdata):
            code, olen = struct.unpack_from(">HH", rdata, p)
            value = rdata[p + 4:p + 4 + olen]
            assert len(value) == olen
            p += 4 + olen
            if code == 15:                                             # RFC 8914 §2
                (info,) = struct.unpack_from(">H", value)
                out.edes.append((info, value[2:].decode("utf-8")))
    assert pos == len(msg), "trailing bytes"
    return out


# ---------------------------------------------------------------- recount
def recount(data: bytes) -> dict[str, Any]:
    """Decode a generated dnstap file and count what the truth file claims."""
    frames = iter_data_frames(data)
    by_type: Counter[str] = Counter()
    transport: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    texts: Counter[str] = Counter()
    upstream: Counter[str] = Counter()
    domains: dict[str, set[str]] = {}
    times: list[int] = []
    identities, versions = set(), set()
    pending: dict[tuple[bytes, int, int], tuple[str, int]] = {}
    duplicates = client_responses = with_ede = upstream_responses = 0
    last_event = 0
    prev = None
    for frame in frames:
        top = parse_protobuf(frame)
        assert one(top, 15) == 1                                       # Dnstap.type MESSAGE
        identities.add(one(top, 1))
        versions.add(one(top, 2))
        m = parse_protobuf(one(top, 14))
        mtype = one(m, 1)
        by_type[TYPE_NAMES[mtype]] += 1
        if frame == prev:
            assert mtype == 6
            duplicates += 1
            continue
        prev = frame
        family = one(m, 2)
        size = {1: 4, 2: 16}[family]
        for number in (4, 5):
            addr = one(m, number)
            assert addr is None or len(addr) == size
        qtime = one(m, 8) * 10**9 + one(m, 9)
        times.append(qtime)
        event = qtime
        if mtype in (4, 6):
            rtime = one(m, 12) * 10**9 + one(m, 13)
            assert rtime > qtime
            times.append(rtime)
            event = rtime
        assert event >= last_event, "frames out of time order"
        last_event = event
        if mtype in (3, 5):
            assert one(m, 14) is None
            q = parse_dns(one(m, 10))
            assert not q.flags & 0x8000
            assert bool(q.flags & 0x0100) == (mtype == 5)             # RD only from clients
            if mtype == 3:
                assert one(m, 11) is not None                          # query_zone
                key = (one(m, 5), one(m, 6), q.id)
            else:
                key = (one(m, 4), one(m, 6), q.id)
            pending[key] = (q.qname, q.qtype)
            continue
        assert one(m, 10) is None
        r = parse_dns(one(m, 14))
        assert r.flags & 0x8000
        key = (one(m, 5), one(m, 6), r.id) if mtype == 4 else (one(m, 4), one(m, 6), r.id)
        assert pending.pop(key) == (r.qname, r.qtype), "response without its query"
        if mtype == 4:
            upstream_responses += 1
            assert one(m, 11) is not None
            upstream.update(str(c) for c, _ in r.edes)
            continue
        client_responses += 1
        proto = one(m, 3)
        transport["absent" if proto is None else PROTOCOLS[proto]] += 1
        if r.edes:
            assert r.has_opt
            with_ede += 1
            first = r.edes[0][0]
            assert r.rcode in RCODE_FOR_CODE.get(first, {r.rcode}), (first, r.rcode)
        for c, t in r.edes:
            codes[str(c)] += 1
            texts[f"{c}|{t}"] += 1
            domains.setdefault(str(c), set()).add(r.qname)
    assert len(identities) == len(versions) == 1
    return {
        "messages": len(frames),
        "by_type": dict(by_type),
        "duplicates": duplicates,
        "client_responses": client_responses,
        "client_responses_with_ede": with_ede,
        "client_ede_options": sum(codes.values()),
        "client_codes": dict(codes),
        "client_code_texts": dict(texts),
        "client_domains_per_code": {c: len(d) for c, d in domains.items()},
        "upstream_responses": upstream_responses,
        "upstream_ede_options": sum(upstream.values()),
        "upstream_codes": dict(upstream),
        "transport": dict(transport),
        "first_ts_ns": min(times),
        "last_ts_ns": max(times),
        "identity": identities.pop().decode(),
        "version": versions.pop().decode(),
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_truth_equals_the_decoded_file(tmp_path: Path, version: str) -> None:
    out = tmp_path / "t.dnstap"
    truth = generate(out, "--seed", "3", "--ede-share", "0.3", "--duplicates", "0.05",
                     "--version", version)
    got = recount(out.read_bytes())
    assert got == {k: truth[k] for k in got}
    assert truth["messages"] == MESSAGES
    assert truth["duplicates"] > 0 and truth["upstream_ede_options"] > 0
    assert len(truth["client_codes"]) >= 10
    assert set(truth["transport"]) == {"udp", "tcp", "dot", "doh", "doq", "absent"}


def test_default_mix(tmp_path: Path) -> None:
    out = tmp_path / "d.dnstap"
    truth = generate(out)
    got = recount(out.read_bytes())
    assert got == {k: truth[k] for k in got}
    share = truth["client_responses_with_ede"] / truth["client_responses"]
    assert 0.005 < share < 0.08
    assert truth["first_ts_ns"] == 1735689600 * 10**9


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a, b, c = (tmp_path / f"{n}.dnstap" for n in "abc")
    generate(a, "--seed", "7")
    generate(b, "--seed", "7")
    generate(c, "--seed", "8")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_gzip_holds_the_same_stream(tmp_path: Path) -> None:
    plain, packed = tmp_path / "p.dnstap", tmp_path / "p.dnstap.gz"
    generate(plain, "--seed", "5")
    truth = generate(packed, "--seed", "5")
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
    assert truth["args"]["gzip"] is True


def test_bind_dnstap_read_agrees(tmp_path: Path) -> None:
    """BIND's own decoder reads every frame, and finds the same types and EDE options."""
    dnstap_read = shutil.which("dnstap-read")
    if dnstap_read is None:
        pytest.skip("dnstap-read (BIND 9) is not installed")
    out = tmp_path / "b.dnstap"
    truth = generate(out, "--seed", "4", "--ede-share", "0.3", "--duplicates", "0")
    lines = subprocess.run([dnstap_read, str(out)], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    short = {"CQ": "CLIENT_QUERY", "CR": "CLIENT_RESPONSE", "RQ": "RESOLVER_QUERY",
             "RR": "RESOLVER_RESPONSE"}
    assert dict(Counter(short[line.split()[2]] for line in lines)) == truth["by_type"]
    yaml = subprocess.run([dnstap_read, "-y", str(out)], check=True, capture_output=True,
                          text=True).stdout
    edes = re.findall(r"^\s*; EDE: (\d+)", yaml, re.M)     # codes > 24: "; EDE: 25: ..."
    assert Counter(edes) == Counter(truth["client_codes"]) + Counter(truth["upstream_codes"])


def load_run() -> Any:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_check_dnstap_report(tmp_path: Path) -> None:
    """ede-pcap's report of a generated log equals its truth, and bench/run.py's check
    names what differs when it does not."""
    import analyzer

    truth = generate(tmp_path / "r.dnstap", "--seed", "2")
    report = analyzer.scan(tmp_path / "r.dnstap").report()
    check = load_run().check_dnstap_report
    assert check(report, truth) == "exact"
    report["dnstap"]["duplicates_folded"] += 1
    report["summary"]["ede_options"] += 1
    assert check(report, truth) == "MISMATCH: duplicates_folded, ede_options"
    assert check({}, truth).startswith("MISMATCH")
