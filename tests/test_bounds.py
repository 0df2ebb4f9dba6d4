"""Every resource a hostile capture could make the analyzer spend has a bound, and the bound
holds: reassembly state (TCP streams, bytes per stream, pending IP fragments), record and
chunk sizes, DNS message size, CPU on crafted names, options and fragments, memory while
decompressing, and memory with 100k never-closed TCP streams and 100k orphan fragments.

The values asserted here are the ones docs/hardening.md states; ``test_docs_state_the_
bounds_in_the_code`` keeps the two in step. Memory is measured as peak RSS in a subprocess
(baseline: after imports and a warm-up scan), because decompressors allocate outside Python.
"""

from __future__ import annotations

import bz2
import gc
import gzip
import io
import json
import lzma
import re
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import lz4.frame
import pytest
import zstandard
from captures import QR, T0, Rec, message, opt_rr, pcap, question, udp
from captures import ede_option as ede
from captures import frame as link_frame
from test_fuzz import time_limit

from analyzer import capture, reassembly
from analyzer.capture import CaptureReader
from analyzer.errors import CaptureError
from analyzer.message import parse_response
from analyzer.pipeline import scan
from analyzer.reassembly import IpReassembler, TcpReassembler

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20
# Peak RSS a scan may add beyond the interpreter, its imports and a warm-up scan, whatever
# the capture (EDE rows aside: they are the output, see test_ede_rows_cost_a_bounded_...).
WORKING_MEMORY = 96 * MIB


# --- fast raw packets (scapy would take minutes for 200k packets) -----------------------------

ETH = bytes.fromhex("00005e005302 00005e005301 0800".replace(" ", ""))


def ip4(src: bytes, dst: bytes, proto: int, payload: bytes, *, ident: int = 0,
        frag: int = 0) -> bytes:
    """Return Ethernet + IPv4 (no options, checksum not computed: the analyzer ignores it)."""
    return ETH + struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64,
                             proto, 0, src, dst) + payload


def tcp(sport: int, dport: int, seq: int, data: bytes, flags: int = 0x18) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + data


def addr(prefix: int, i: int) -> bytes:
    return bytes((prefix, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF))


# A DNS response that announces 1024 bytes but is cut after 112: it waits in its stream.
PARTIAL = struct.pack("!H6H", 1024, 0x1234, 0x8180, 1, 0, 0, 0) + bytes(100)


def open_stream(i: int) -> bytes:
    """A segment from server 10.x.x.x:53 that opens stream ``i`` mid-way and never ends."""
    return ip4(addr(10, i), bytes((192, 0, 2, 10)), 6, tcp(53, 40000, 1000, PARTIAL))


def orphan_fragment(i: int) -> bytes:
    """The first fragment (MF set, offset 0) of a UDP datagram whose rest never comes."""
    udp_head = struct.pack("!HHHH", 53, 40000, 1008, 0)
    return ip4(addr(172, i), bytes((192, 0, 2, 10)), 17, udp_head + bytes(100),
               ident=i & 0xFFFF, frag=0x2000)


def _pcap_head() -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)


def pcap_raw(frames: Iterator[bytes], start_ns: int = T0, step_ns: int = 1000) -> bytes:
    """Return a microsecond pcap of ``frames`` (Ethernet), ``step_ns`` apart."""
    out = [_pcap_head()]
    for i, f in enumerate(frames):
        sec, ns = divmod(start_ns + i * step_ns, 10**9)
        out.append(struct.pack("<IIII", sec, ns // 1000, len(f), len(f)) + f)
    return b"".join(out)


def run_measured(paths: list[Path], timeout: float = 600) -> list[dict]:
    """Scan each capture in ``paths`` in a fresh process; return per capture its result
    counters, the reassembly state left at its end and the peak RSS the scan added.

    One interpreter imports everything and warms up, then forks one child per capture (all
    at once): a child starts with the parent's memory, so its peak RSS minus its RSS at the
    fork is what the scan added.
    """
    script = ROOT / "tests" / "test_bounds.py"
    out = subprocess.run([sys.executable, str(script), *map(str, paths)], cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.strip().splitlines()[-len(paths):]]


def _measure_main(paths: list[str]) -> None:
    """Subprocess side of ``run_measured`` (``python tests/test_bounds.py CAPTURE...``)."""
    import os
    import resource
    import tempfile

    from analyzer import layers

    seen = {"tcp_streams": 0, "fragment_datagrams": 0, "stream_bytes": 0}
    finish = layers.PacketDecoder.finish

    def spy(self: layers.PacketDecoder) -> None:  # state at the end, before it is flushed
        seen["tcp_streams"] = max(seen["tcp_streams"], len(self.tcp))
        seen["fragment_datagrams"] = max(seen["fragment_datagrams"], len(self.fragments))
        seen["stream_bytes"] = max([seen["stream_bytes"], *self.tcp.stream_sizes()])
        finish(self)

    layers.PacketDecoder.finish = spy  # type: ignore[method-assign]
    scan([str(ROOT / "samples" / "transports.pcap")])  # warm-up: lazy imports, first chunk
    results = []
    children = {}
    for path in paths:
        fd, tmp = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        pid = os.fork()
        if pid == 0:  # the child: scan, write the figures, leave without cleanup
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.perf_counter()
            result = scan([path])
            seconds = time.perf_counter() - started
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            Path(tmp).write_text(json.dumps({
                "added_rss": (peak - base) * 1024, "seconds": seconds,
                "packets": result.packets, "accounting": result.accounting,
                "problems": result.problems, "error": result.captures[0].error, **seen}))
            os._exit(0)
        children[pid] = tmp
    files = list(children.values())
    for pid in children:
        os.waitpid(pid, 0)
    for tmp in files:
        results.append(json.loads(Path(tmp).read_text()))
        os.unlink(tmp)
    for r in results:
        print(json.dumps(r))


# --- reassembly state --------------------------------------------------------------------------

def test_reassembly_bounds_have_the_documented_values() -> None:
    assert reassembly.MAX_TCP_STREAMS == 16384
    assert reassembly.MAX_STREAM_BUFFER == 131074
    assert reassembly.MAX_OUT_OF_ORDER == 64
    assert reassembly.MAX_TCP_BYTES == 64 << 20
    assert reassembly.MAX_FRAGMENT_DATAGRAMS == 4096
    assert reassembly.MAX_FRAGMENTS_PER_DATAGRAM == 256
    assert reassembly.MAX_FRAGMENT_BYTES == 64 << 20
    assert reassembly.MAX_DATAGRAM == 65575
    assert reassembly.FRAGMENT_TIMEOUT_NS == 30 * 10**9
    assert capture.MAX_RECORD == 1 << 20
    assert capture.CHUNK_BYTES == 2 << 20
    assert capture.XZ_MEMLIMIT == 96 << 20


def test_open_tcp_streams_are_capped_and_evictions_counted() -> None:
    evicted: Counter[str] = Counter()
    r = TcpReassembler(evicted)
    extra = 1000
    for i in range(reassembly.MAX_TCP_STREAMS + extra):
        r.feed((i,), 1000, 0x18, PARTIAL, lambda m: "dns-response", qr=1)
    assert len(r) == reassembly.MAX_TCP_STREAMS
    assert +evicted == {"tcp-streams-evicted": extra}


def test_bytes_buffered_per_stream_stay_under_max_stream_buffer() -> None:
    # A response announcing 65535 bytes, fed in 1400-byte segments that never complete it,
    # then a stream of garbage framing: the in-order buffer never exceeds the bound.
    evicted: Counter[str] = Counter()
    r = TcpReassembler(evicted)
    data = struct.pack("!H6H", 0xFFFF, 1, 0x8180, 1, 0, 0, 0) + bytes(300_000)
    seq, largest = 0, 0
    for start in range(0, len(data), 1400):
        piece = data[start:start + 1400]
        r.feed(("k",), seq, 0x18, piece, lambda m: "dns-response", qr=1)
        seq += len(piece)
        largest = max(largest, len(r._streams[("k",)].buf))
    assert largest <= reassembly.MAX_STREAM_BUFFER


def test_segments_held_behind_a_gap_are_bounded_too() -> None:
    # 63 segments of 65,000 bytes, each ahead of a 1-byte gap that never fills: the stream
    # gives up on the gap once the held bytes pass MAX_STREAM_BUFFER (or MAX_OUT_OF_ORDER
    # segments are held), so a stream holds at most 2 x MAX_STREAM_BUFFER.
    evicted: Counter[str] = Counter()
    r = TcpReassembler(evicted)
    head = struct.pack("!H6H", 2000, 1, 0x8180, 1, 0, 0, 0)
    r.feed(("k",), 0, 0x18, head, lambda m: "dns-response", qr=1)  # opens the stream
    big = bytes(65000)
    largest = 0
    for k in range(reassembly.MAX_OUT_OF_ORDER - 1):
        r.feed(("k",), len(head) + 1 + k * len(big), 0x18, big, lambda m: "dns-response", qr=1)
        stream = r._streams.get(("k",))
        if stream is not None:
            held = sum(len(d) for d, _ in stream.ooo.values())
            assert held <= reassembly.MAX_STREAM_BUFFER
            largest = max(largest, held + len(stream.buf))
    assert largest <= 2 * reassembly.MAX_STREAM_BUFFER
    assert evicted["tcp-gaps-skipped"] > 0  # giving up is counted


def test_all_streams_share_a_byte_budget() -> None:
    # 1,200 streams each holding the first 60,000 bytes of a 65,535-byte message: 72 MB,
    # past MAX_TCP_BYTES, so the oldest streams are evicted and counted.
    evicted: Counter[str] = Counter()
    r = TcpReassembler(evicted)
    data = struct.pack("!H6H", 0xFFFF, 1, 0x8180, 1, 0, 0, 0) + bytes(60_000)
    for i in range(1200):
        r.feed((i,), 0, 0x18, data, lambda m: "dns-response", qr=1)
        assert r._bytes <= reassembly.MAX_TCP_BYTES
    kept = reassembly.MAX_TCP_BYTES // len(data)
    assert len(r) == kept
    assert +evicted == {"tcp-streams-evicted": 1200 - kept}
    assert sum(len(s.buf) for s in r._streams.values()) == r._bytes


def test_pending_fragment_datagrams_are_capped_and_evictions_counted() -> None:
    evicted: Counter[str] = Counter()
    r = IpReassembler(evicted)
    extra = 500
    for i in range(reassembly.MAX_FRAGMENT_DATAGRAMS + extra):
        assert r.feed((i,), 0, True, bytes(100), ts=T0) is None
    assert len(r) == reassembly.MAX_FRAGMENT_DATAGRAMS
    assert +evicted == {"ip-fragments-evicted": extra}


def test_stale_fragments_expire_before_anything_is_evicted() -> None:
    evicted: Counter[str] = Counter()
    r = IpReassembler(evicted)
    for i in range(reassembly.MAX_FRAGMENT_DATAGRAMS):
        r.feed((i,), 0, True, bytes(8), ts=T0)
    later = T0 + reassembly.FRAGMENT_TIMEOUT_NS + 1
    r.feed(("new",), 0, True, bytes(8), ts=later)
    assert len(r) == 1
    assert +evicted == {"ip-fragments-expired": reassembly.MAX_FRAGMENT_DATAGRAMS}


def test_a_datagram_in_too_many_pieces_is_dropped_and_counted() -> None:
    evicted: Counter[str] = Counter()
    r = IpReassembler(evicted)
    for i in range(reassembly.MAX_FRAGMENTS_PER_DATAGRAM):
        assert r.feed(("k",), 8 * i, True, bytes(8), ts=T0) is None
    assert len(r) == 1
    assert r.feed(("k",), 8 * 300, True, bytes(8), ts=T0) is None
    assert len(r) == 0
    assert +evicted == {"ip-fragments-too-many": 1}


def test_pending_fragments_share_a_byte_budget() -> None:
    # Bounded per datagram and in number only, pending fragments could hold 4,096 x 131,150
    # bytes = 512 MiB (8376475 added MAX_FRAGMENT_BYTES, shared by all datagrams).
    evicted: Counter[str] = Counter()
    r = IpReassembler(evicted)
    # two overlapping 65,000-byte pieces per datagram (offsets 0 and 8): within both the
    # MAX_DATAGRAM extent and the 2 x MAX_DATAGRAM bytes a datagram may hold
    piece = bytes(65_000)  # one object for all: the test itself stays small
    for i in range(reassembly.MAX_FRAGMENT_DATAGRAMS):
        r.feed((i,), 0, True, piece, ts=T0)
        r.feed((i,), 8, True, piece, ts=T0)
        assert sum(entry[1] for entry in r._pending.values()) <= reassembly.MAX_FRAGMENT_BYTES
    kept = len(r)
    assert kept == reassembly.MAX_FRAGMENT_BYTES // (2 * len(piece))
    assert +evicted == {"ip-fragments-evicted": reassembly.MAX_FRAGMENT_DATAGRAMS - kept}


def test_a_datagram_past_max_datagram_is_dropped_and_counted() -> None:
    evicted: Counter[str] = Counter()
    r = IpReassembler(evicted)
    r.feed(("k",), 0, True, bytes(1480), ts=T0)
    assert r.feed(("k",), reassembly.MAX_DATAGRAM - 8, False, bytes(16), ts=T0) is None
    assert len(r) == 0
    assert +evicted == {"ip-fragments-oversized": 1}


def test_the_largest_udp_dns_message_is_reassembled_from_fragments() -> None:
    # The maximum DNS message over UDP: a 65,535-byte IP datagram in 1480-byte fragments.
    # Its payload past the question is one OPT holding one EDE with a long EXTRA-TEXT.
    text = b"x" * (65535 - 20 - 8 - 12 - 17 - 11 - 6)
    msg = message(7, QR, qd=[question("example.com")], ar=[opt_rr(ede(22, text))])
    datagram = struct.pack("!HHHH", 53, 40000, 8 + len(msg), 0) + msg
    assert 20 + len(datagram) == 65535
    frames = [ip4(bytes((198, 51, 100, 53)), bytes((192, 0, 2, 10)), 17, datagram[o:o + 1480],
                  ident=9, frag=(0x2000 if o + 1480 < len(datagram) else 0) | (o // 8))
              for o in range(0, len(datagram), 1480)]
    result = scan([io.BytesIO(pcap_raw(iter(frames)))])
    assert result.ede_options == 1
    assert result.ede.extra_text[0] == text.decode()
    assert result.accounting == {"ip-fragment": len(frames) - 1, "dns-response": 1}


# --- records and chunks ------------------------------------------------------------------------

LIE = struct.pack("<IIII", 1, 0, 0xFFFFFFFF, 0xFFFFFFFF)  # a record claiming 4 GiB


def test_a_record_claiming_more_than_max_record_stops_the_file_without_allocating() -> None:
    good = pcap_raw(iter([open_stream(1)] * 50))
    reader = CaptureReader(io.BytesIO(good + LIE + bytes(20_000)), chunk_bytes=4096)
    read = 0
    with pytest.raises(CaptureError, match="claims 4294967295 bytes") as e:
        for chunk in reader.chunks():
            read += len(chunk)
    assert e.value.offset == len(good)
    assert read == 50


def test_a_lying_record_at_the_end_stops_the_file_too() -> None:
    good = pcap_raw(iter([open_stream(1)]))
    result = scan([io.BytesIO(good + LIE + bytes(64))])
    info = result.captures[0]
    assert info.error and "claims 4294967295 bytes" in info.error
    assert info.error_offset == len(good)
    assert result.accounting == {"tcp-segment": 1}


def test_a_record_of_exactly_max_record_bytes_is_read() -> None:
    big = bytes(capture.MAX_RECORD)
    data = _pcap_head() + struct.pack("<IIII", 1, 0, len(big), len(big)) + big
    result = scan([io.BytesIO(data)])
    assert result.captures[0].error is None
    assert result.accounting == {"non-ip": 1}


def test_a_pcapng_block_longer_than_max_record_stops_the_file() -> None:
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    block = struct.pack("<II", 6, capture.MAX_RECORD + 128) + bytes(64)
    result = scan([io.BytesIO(shb + block)])
    assert "impossible length" in (result.captures[0].error or "")


def test_chunks_hold_at_most_chunk_bytes_plus_one_record() -> None:
    frames = [open_stream(i) for i in range(3000)] + [bytes(60_000)] * 40
    data = pcap_raw(iter(frames))
    reader = CaptureReader(io.BytesIO(data), chunk_bytes=256 << 10)
    sizes = [len(c.buf) for c in reader.chunks()]
    assert sum(len(c) for c in CaptureReader(io.BytesIO(data), 256 << 10).chunks()) == 3040
    assert max(sizes) <= (256 << 10) + 16 + 60_000


# --- CPU: no quadratic work on crafted names, option lists, fragments or repeated queries ----

def _parse_seconds(msg: bytes, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        parse_response(msg)
        best = min(best, time.perf_counter() - t)
    return best


def _ratio(build, small: int) -> float:  # type: ignore[no-untyped-def]
    """Return how much longer 4x the input takes (linear: ~4, quadratic: ~16), the least of
    three tries with the garbage collector off: other load only makes a ratio noisier."""
    big, little = build(4 * small), build(small)
    gc.disable()
    try:
        return min(_parse_seconds(big) / max(_parse_seconds(little), 1e-7) for _ in range(3))
    finally:
        gc.enable()


def test_option_lists_parse_in_linear_time() -> None:
    # 2,500 then 10,000 EDE options in one OPT (the most a 65,535-byte message holds).
    def build(k: int) -> bytes:
        return message(1, QR, qd=[question("example.com")],
                       ar=[opt_rr(*(ede(i % 30) for i in range(k)))])

    assert len(build(10_000)) < 65535
    assert _ratio(build, 2500) < 10  # linear: ~4; quadratic: ~16
    assert len(parse_response(build(10_000)).edes) == 10_000


@pytest.mark.parametrize("owner", [b"\xc0\x0c", b"\x3f" + b"a" * 63 + b"\x00"],
                         ids=["pointer", "63-byte-label"])
def test_record_lists_and_names_parse_in_linear_time(owner: bytes) -> None:
    # ANCOUNT records (the cheapest RR: owner, fixed part, no RDATA) filling the message.
    # Only the question's name is decoded; other owners are skipped label by label, and a
    # pointer must point before the name it is in, so no name can be walked twice.
    def build(k: int) -> bytes:
        rr = owner + struct.pack("!HHIH", 1, 1, 0, 0)
        return message(1, QR, qd=[question("example.com")], an=[rr] * k,
                       ar=[opt_rr(ede(9, "x"))])

    small = 65000 // len(build(1)) // 4
    assert len(build(4 * small)) < 65535
    assert _ratio(build, small) < 10


def test_many_tiny_fragments_of_one_datagram_take_linear_time() -> None:
    # The last fragment first (so the total length is known), then 8,000 8-byte pieces.
    src, dst = bytes((198, 51, 100, 53)), bytes((192, 0, 2, 10))
    # The pieces cover 0..64000 but leave 64000..64008 open, so none completes it.
    frames = [ip4(src, dst, 17, bytes(8), ident=5, frag=8001)]
    frames += [ip4(src, dst, 17, bytes(8), ident=5, frag=0x2000 | i) for i in range(8000)]
    data = pcap_raw(iter(frames))
    with time_limit(2):  # ~0.2 s when linear
        result = scan([io.BytesIO(data)])
    assert result.accounting == {"ip-fragment": 8001}
    assert result.problems["ip-fragments-too-many"] >= 1


def test_repeated_identical_exchanges_are_matched_in_linear_time() -> None:
    # 4,000 identical queries, then 4,000 identical EDE responses: each response compared
    # every stored query with its key, ~21 s (d9b10c2: at most 64 candidates, by time).
    q = link_frame(udp(message(0x1234, 0x0100, qd=[question("example.com")]),
                       to_server=True))
    r = link_frame(udp(message(0x1234, QR, qd=[question("example.com")],
                               ar=[opt_rr(ede(9, "x"))])))
    n = 4000
    data = pcap([Rec(T0 + i * 1000, q) for i in range(n)]
                + [Rec(T0 + (n + i) * 1000, r) for i in range(n)])
    with time_limit(2):  # ~0.3 s when linear
        result = scan([io.BytesIO(data)])
    assert result.ede_options == n


def test_ede_rows_cost_a_bounded_amount_of_memory_each() -> None:
    # EDE rows are the output, so they are kept: 20 responses with 2,000 options each
    # (6 bytes of capture per option) become 40,000 rows. Each may cost at most 2 KiB.
    import tracemalloc

    msg = message(1, QR, qd=[question("example.com")],
                  ar=[opt_rr(*(ede(i % 30) for i in range(2000)))])
    data = pcap([Rec(T0 + i * 10**6, link_frame(udp(msg))) for i in range(20)])
    tracemalloc.start()
    try:
        result = scan([io.BytesIO(data)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(result.ede) == 40_000
    assert peak / len(result.ede) < 2048


def test_responses_spread_over_many_seconds_keep_bounded_state() -> None:
    # ScanResult.response_seconds kept an entry per second holding a response, ~130 B each:
    # 50k responses a second apart kept 7 MB, a month of capture ~340 MB (8376475 coarsens
    # the buckets past 10,000).
    import tracemalloc

    frame = link_frame(udp(message(1, QR, qd=[question("example.com")])))
    n = 50_000
    data = pcap([Rec(T0 + i * 10**9, frame) for i in range(n)])
    tracemalloc.start()
    try:
        result = scan([io.BytesIO(data)])
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert result.dns_responses == n
    assert kept < 2 * MIB, kept


# --- memory: 100k never-closed TCP streams and 100k orphan fragments ---------------------------

N_HOSTILE = 100_000
BOMB_RECORDS = 128  # records of MAX_RECORD zero bytes: 128 MiB once decompressed


def hostile_frames() -> Iterator[tuple[int, bytes]]:
    """Yield (ns, frame): 100k streams that never close and 100k fragments whose datagrams
    never complete, interleaved 1 us apart (so no fragment expires: all go by eviction)."""
    for i in range(N_HOSTILE):
        yield T0 + 2000 * i, open_stream(i)
        yield T0 + 2000 * i + 1000, orphan_fragment(i)


def _pcap_timed(frames: Iterator[tuple[int, bytes]]) -> bytes:
    out = [_pcap_head()]
    for ns, f in frames:
        sec, frac = divmod(ns, 10**9)
        out.append(struct.pack("<IIII", sec, frac // 1000, len(f), len(f)) + f)
    return b"".join(out)


def _bomb_record() -> bytes:
    return struct.pack("<IIII", 1, 0, capture.MAX_RECORD, capture.MAX_RECORD) + bytes(
        capture.MAX_RECORD)


def _xz(dict_byte: int) -> bytes:
    """Return the bomb as one .xz stream whose LZMA2 header declares dictionary size code
    ``dict_byte`` (2**(b/2 + 12) bytes for even b; 38 = 2 GiB); it was compressed with a
    1 MiB dictionary, so only the declaration lies."""
    comp = lzma.LZMACompressor(filters=[{"id": lzma.FILTER_LZMA2, "preset": 1,
                                         "dict_size": 1 << 20}])
    record = _bomb_record()
    out = comp.compress(_pcap_head()) + b"".join(
        comp.compress(record) for _ in range(BOMB_RECORDS)) + comp.flush()
    size = (out[12] + 1) * 4  # the block header follows the 12-byte stream header
    header = bytearray(out[12:12 + size])
    at = header.index(b"\x21\x01", 2)  # LZMA2 filter id, 1 byte of properties
    header[at + 2] = dict_byte
    header[-4:] = struct.pack("<I", zlib.crc32(bytes(header[:-4])))
    return out[:12] + bytes(header) + out[12 + size:]


def _members(compress) -> bytes:  # type: ignore[no-untyped-def]
    # one compressed member/frame per record, concatenated: every reader takes them all
    return compress(_pcap_head()) + compress(_bomb_record()) * BOMB_RECORDS


BOMBS = {
    "gzip": lambda: _members(lambda b: gzip.compress(b, mtime=0)),
    "bzip2": lambda: _members(bz2.compress),
    "xz": lambda: _xz(8),
    "zstd": lambda: _members(zstandard.ZstdCompressor(level=1).compress),
    "lz4": lambda: _members(lz4.frame.compress),
    "xz-2GiB-dictionary": lambda: _xz(38),
}


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Peak memory and counters for the hostile capture and every compression bomb."""
    folder = tmp_path_factory.mktemp("bounds")
    paths = {"hostile": folder / "hostile.pcap"}
    paths["hostile"].write_bytes(_pcap_timed(hostile_frames()))
    for name, build in BOMBS.items():
        paths[name] = folder / f"bomb.{name}"
        paths[name].write_bytes(build())
    results = dict(zip(paths, run_measured(list(paths.values())), strict=True))
    for name, p in paths.items():
        results[name]["file_size"] = p.stat().st_size
    return results


def test_100k_open_streams_and_100k_orphan_fragments_stay_in_bounded_memory(
        measured: dict[str, dict]) -> None:
    m = measured["hostile"]
    assert m["error"] is None
    assert m["packets"] == 2 * N_HOSTILE
    assert m["accounting"] == {"ip-fragment": N_HOSTILE, "tcp-segment": N_HOSTILE}
    # every stream and datagram past the caps was evicted, and counted
    assert m["problems"] == {
        "tcp-streams-evicted": N_HOSTILE - reassembly.MAX_TCP_STREAMS,
        "ip-fragments-evicted": N_HOSTILE - reassembly.MAX_FRAGMENT_DATAGRAMS}
    assert m["tcp_streams"] == reassembly.MAX_TCP_STREAMS
    assert m["fragment_datagrams"] == reassembly.MAX_FRAGMENT_DATAGRAMS
    assert m["stream_bytes"] == len(PARTIAL)
    # a 34 MB capture; what the scan adds to the process stays under the stated bound
    assert m["file_size"] > 32 * MIB
    assert m["added_rss"] < WORKING_MEMORY, m


def test_orphan_fragments_past_the_cap_cost_constant_time_each() -> None:
    # Once the table was full, every new datagram walked all pending ones looking for
    # expired entries: 100k orphan fragments 1 us apart took ~55 s (d9b10c2: oldest first).
    frames = (orphan_fragment(i) for i in range(reassembly.MAX_FRAGMENT_DATAGRAMS + 20_000))
    data = pcap_raw(frames)
    with time_limit(3):  # ~0.5 s
        result = scan([io.BytesIO(data)])
    assert result.problems["ip-fragments-evicted"] == 20_000


# --- streaming decompression: a small file that expands hugely ---------------------------------

@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd", "lz4"])
def test_a_compression_bomb_is_read_in_constant_memory(kind: str,
                                                       measured: dict[str, dict]) -> None:
    m = measured[kind]
    assert m["file_size"] < 1 * MIB  # a small file ...
    assert m["packets"] == BOMB_RECORDS  # ... read to the end: 128 MiB of records ...
    assert m["error"] is None
    assert m["added_rss"] < 64 * MIB, m  # ... in constant memory


def test_an_xz_file_declaring_a_huge_dictionary_is_refused(measured: dict[str, dict]) -> None:
    # liblzma keeps as much output as the declared dictionary: 2 GiB declared made a 20 KB
    # file grow memory by its whole output (+157 MB for 128 MiB) until XZ_MEMLIMIT (d9b10c2).
    m = measured["xz-2GiB-dictionary"]
    assert "Memory usage limit" in (m["error"] or "")
    assert m["added_rss"] < 64 * MIB, m


# --- the bounds as docs/hardening.md states them -----------------------------------------------

def test_docs_state_the_bounds_in_the_code() -> None:
    from analyzer import matching, textfacts

    text = (ROOT / "docs" / "hardening.md").read_text()
    stated = {m.group(1): int(m.group(2).replace(",", "")) for m in
              re.finditer(r"^\| `(\w+)` \| ([\d,]+) \|", text, re.MULTILINE)}
    actual = {
        "MAX_TCP_STREAMS": reassembly.MAX_TCP_STREAMS,
        "MAX_STREAM_BUFFER": reassembly.MAX_STREAM_BUFFER,
        "MAX_OUT_OF_ORDER": reassembly.MAX_OUT_OF_ORDER,
        "MAX_TCP_BYTES": reassembly.MAX_TCP_BYTES,
        "TCP_IDLE_NS": reassembly.TCP_IDLE_NS,
        "TCP_GAP_NS": reassembly.TCP_GAP_NS,
        "MAX_FRAGMENT_DATAGRAMS": reassembly.MAX_FRAGMENT_DATAGRAMS,
        "MAX_FRAGMENTS_PER_DATAGRAM": reassembly.MAX_FRAGMENTS_PER_DATAGRAM,
        "MAX_FRAGMENT_BYTES": reassembly.MAX_FRAGMENT_BYTES,
        "MAX_DATAGRAM": reassembly.MAX_DATAGRAM,
        "FRAGMENT_TIMEOUT_NS": reassembly.FRAGMENT_TIMEOUT_NS,
        "MAX_RECORD": capture.MAX_RECORD,
        "CHUNK_BYTES": capture.CHUNK_BYTES,
        "XZ_MEMLIMIT": capture.XZ_MEMLIMIT,
        "MAX_RETAINED_BYTES": matching.MAX_RETAINED_BYTES,
        "_MAX_CANDIDATES": matching._MAX_CANDIDATES,
        "DEFAULT_WINDOW_NS": matching.DEFAULT_WINDOW_NS,
        "MAX_TEXT": textfacts.MAX_TEXT,
        "WORKING_MEMORY": WORKING_MEMORY,
    }
    assert stated == actual


if __name__ == "__main__":
    _measure_main(sys.argv[1:])
