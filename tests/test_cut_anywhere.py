"""Nothing lost: a capture cut at any byte gives every whole record before the cut, says
where the file ended, and accounts for every packet read.

The truth comes from an independent walk of the uncut file (``test_fuzz.capture_layout``):
its record and block boundaries. For a cut at byte ``k``:

- the packets reported, less the one ``capture-truncated`` partial record, are exactly the
  records that end at or before ``k``;
- a cut inside a record or block sets ``truncated_at`` to where that record starts (and
  counts one ``capture-truncated`` packet); a cut on a boundary sets nothing;
- every EDE row the uncut file gives for those records is in the cut file's result;
- the accounting sums to the packets, and the report builds.

Cut points: every record boundary and its neighbours, and hypothesis-chosen offsets.
Compressed files are cut in their compressed bytes; the records whose bytes a decompressor
can still recover from the prefix must all be read.

Last, a loss the 10M-packet soak (bench/soak.py) found: a TCP connection that reuses the
ports of an earlier one, whose SYN was not captured.
"""

from __future__ import annotations

import gzip
import io
import zlib
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz import capture_layout

from analyzer.pipeline import scan
from analyzer.reports import build_report
from analyzer.result import ScanResult

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = {
    "transports.pcap": ROOT / "samples" / "transports.pcap",   # TCP, fragments, VLANs
    "all-codes.pcapng": ROOT / "samples" / "all-codes.pcapng",  # two interfaces, pcapng
    "bad-utf8.pcap": ROOT / "samples" / "broken" / "bad-utf8.pcap",
}


@cache
def uncut(name: str) -> tuple[bytes, list[tuple[int, int]], list[tuple[int, int]], ScanResult]:
    """Return a sample's bytes, its packet records, all its blocks, and its full scan."""
    data = SAMPLES[name].read_bytes()
    layout = capture_layout(data)
    assert layout.records, name
    return data, layout.records, layout.blocks, scan([io.BytesIO(data)])


def rows(result: ScanResult, up_to: int | None = None) -> set[tuple[int, int, str]]:
    e = result.ede
    return {(f, c, t) for f, c, t in zip(e.frame_number.tolist(), e.ede_code.tolist(),
                                         e.extra_text.tolist(), strict=True)
            if up_to is None or f <= up_to}


def check_cut(name: str, k: int, *, report: bool = False) -> ScanResult:
    """Scan ``name`` cut after ``k`` bytes and check it against the uncut file's layout."""
    data, records, blocks, full = uncut(name)
    result = scan([io.BytesIO(data[:k])])
    info = result.captures[0]
    assert sum(result.accounting.values()) == result.packets == info.packets
    header = 24 if data[:4] != b"\x0a\x0d\x0d\x0a" else 0  # pcapng: blocks from byte 0
    if k < max(header, 4):
        assert info.error and result.packets == 0  # not even a file header
        return result
    assert info.error is None, info.error
    whole = sum(1 for _, end in records if end <= k)
    partial = result.accounting.get("capture-truncated", 0)
    assert result.packets - partial == whole
    inside = [start for start, end in blocks if start < k < end]
    if inside:  # the file ends inside a record (or block): it says where that one began
        assert (partial, info.truncated_at) == (1, inside[0]), k
    else:  # on a boundary: a whole file, as far as anyone can tell
        assert (partial, info.truncated_at) == (0, None), k
    assert rows(full, up_to=whole) <= rows(result)
    if report:
        build_report(result)
    return result


def boundary_cuts(name: str) -> list[int]:
    data, _, blocks, _ = uncut(name)
    points = {0, 1, 3, 4, 23, 24, 25, len(data) - 1, len(data)}
    for start, end in blocks[:12] + blocks[-4:]:
        points |= {start + 1, start + 15, start + 16, end - 1, end}
    return sorted(p for p in points if 0 <= p <= len(data))


@pytest.mark.parametrize("name", SAMPLES)
def test_cuts_at_and_around_every_boundary(name: str) -> None:
    for k in boundary_cuts(name):
        check_cut(name, k)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(sorted(SAMPLES)), fraction=st.floats(0, 1))
def test_a_cut_anywhere_keeps_every_whole_record(which: str, fraction: float) -> None:
    size = len(uncut(which)[0])
    check_cut(which, round(fraction * size), report=True)


def test_a_cut_file_is_told_apart_from_a_whole_one() -> None:
    data, records, _, full = uncut("transports.pcap")
    assert full.captures[0].truncated_at is None and "capture-truncated" not in full.accounting
    start, end = records[5]
    result = check_cut("transports.pcap", start + 20)
    assert result.captures[0].truncated_at == start
    assert result.accounting["capture-truncated"] == 1


def test_the_report_says_where_a_cut_file_ended() -> None:
    data, records, _, _ = uncut("transports.pcap")
    start, _ = records[5]
    report = build_report(scan([io.BytesIO(data[:start + 20])]))
    entry = report["captures"][0]
    assert start in (entry.get("truncated_at"), entry.get("error_offset"))
    from analyzer.render import render

    out = io.StringIO()
    render(report, "text", out)
    assert f"{start:,}" in out.getvalue() or str(start) in out.getvalue()


# --- compressed captures, cut in their compressed bytes -----------------------------------------

def recoverable(prefix: bytes) -> bytes:
    """Return the bytes zlib can decompress from a cut gzip stream."""
    return zlib.decompressobj(wbits=31).decompress(prefix)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fraction=st.floats(0, 1))
def test_a_cut_gzip_keeps_every_record_it_can_decompress(fraction: float) -> None:
    data, records, _, full = uncut("transports.pcap")
    packed = gzip.compress(data, mtime=0)
    k = round(fraction * len(packed))
    result = scan([io.BytesIO(packed[:k])])
    assert sum(result.accounting.values()) == result.packets
    available = len(recoverable(packed[:k])) if k > 10 else 0
    whole = sum(1 for _, end in records if end <= available)
    read = result.packets - result.accounting.get("capture-truncated", 0)
    if available >= 24:
        assert read == whole, (k, available, read, whole)
        assert rows(full, up_to=whole) <= rows(result)
    if k < len(packed):
        info = result.captures[0]
        assert info.error or info.truncated_at is not None or read == len(records)
    build_report(result)


# --- a reused TCP port (found by bench/soak.py on a 10M-packet generated capture) -------------

def test_a_connection_reusing_ports_without_a_captured_syn_loses_nothing() -> None:
    from captures import QR, T0, Rec, framed, message, opt_rr, pcap, question
    from captures import ede_option as ede
    from captures import frame as link_frame
    from scapy.layers.inet import IP, TCP
    from scapy.packet import Raw

    def segment(to_server: bool, seq: int, payload: bytes) -> bytes:
        client, server = ("192.0.2.10", 40000), ("198.51.100.53", 53)
        (src, sport), (dst, dport) = (client, server) if to_server else (server, client)
        return link_frame(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, seq=seq,
                                                     flags="PA") / Raw(payload))

    def exchange(dns_id: int, client_seq: int, server_seq: int) -> list[bytes]:
        q = framed(message(dns_id, 0x0100, qd=[question("example.com")]))
        r = framed(message(dns_id, QR | 0x0182, qd=[question("example.com")],
                           ar=[opt_rr(ede(22, "at delegation example.com."))]))
        return [segment(True, client_seq, q), segment(False, server_seq, r)]

    # Two connections on the same ports, 5 s apart, neither SYN captured: the second's
    # sequence numbers are 1.1e9 behind (client) and 1.3e9 ahead (server) of the first's,
    # as in frames 5,794,481-5,794,484 of the soak capture (seed 7).
    frames = exchange(1, 2_912_106_000, 752_731_000) + exchange(2, 1_812_244_131,
                                                                 2_033_353_676)
    data = pcap([Rec(T0 + i * 5 * 10**9 // 2, f) for i, f in enumerate(frames)])
    result = scan([io.BytesIO(data)])
    assert (result.dns_queries, result.dns_responses) == (2, 2)
    assert result.ede.frame_number.tolist() == [2, 4]
    assert result.ede.latency.notna().all()
