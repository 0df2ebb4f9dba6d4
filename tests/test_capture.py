"""Tests for analyzer.capture: file formats, byte orders, time resolutions, compression, damage."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
from pathlib import Path

import lz4.frame
import pandas as pd
import pytest
import zstandard
from captures import (
    MS,
    T0,
    Iface,
    Rec,
    exchange,
    pcap,
    pcapng_capture,
    pcapng_section,
    records,
    scan_checked,
)

from analyzer.capture import CaptureReader
from analyzer.errors import CaptureError
from analyzer.pipeline import scan

# Four frames: query, EDE response, query, EDE response (Ethernet, IPv4 then IPv6).
FRAMES = exchange() + exchange(v6=True, qname="six.example.com", dns_id=0x66)
# Times with nanoseconds, so that a microsecond file visibly drops them.
TIMES = [T0, T0 + 123_456_789, T0 + 2_000_000_001, T0 + 86_400 * 10**9 + 999_999_999]


def read_records(source, chunk_bytes: int = 1 << 20) -> tuple[list[tuple], CaptureReader]:
    """Return (frame, ts_ns, caplen, origlen, linktype, data) per record, and the reader."""
    reader = CaptureReader(source, chunk_bytes=chunk_bytes)
    out = []
    for chunk in reader.chunks():
        for i in range(len(chunk)):
            d, cap = int(chunk.data_off[i]), int(chunk.caplen[i])
            out.append((chunk.first_frame + i, int(chunk.ts_ns[i]), cap,
                        int(chunk.origlen[i]), int(chunk.linktype[i]), chunk.buf[d:d + cap]))
    reader.close()
    return out, reader


def record_offsets(data: bytes) -> list[int]:
    """Return where each record of a classic pcap starts, and the end of the file."""
    offs = [24]
    while offs[-1] < len(data):
        offs.append(offs[-1] + 16 + struct.unpack_from("<I", data, offs[-1] + 8)[0])
    return offs


PLAIN = pcap([Rec(t, f) for t, f in zip(TIMES, FRAMES, strict=True)])


# -- classic pcap ---------------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("nanos", [False, True], ids=["usec", "nsec"])
def test_pcap_magics_give_times_to_the_nanosecond(nanos: bool, big_endian: bool) -> None:
    data = pcap([Rec(t, f) for t, f in zip(TIMES, FRAMES, strict=True)], nanos=nanos,
                big_endian=big_endian)
    got, reader = read_records(io.BytesIO(data))
    want_ts = TIMES if nanos else [t // 1000 * 1000 for t in TIMES]
    assert [r[0] for r in got] == [1, 2, 3, 4]
    assert [r[1] for r in got] == want_ts
    assert [r[5] for r in got] == FRAMES
    assert [(r[2], r[3], r[4]) for r in got] == [(len(f), len(f), 1) for f in FRAMES]
    info = reader.info
    assert (info.file_format, info.compression, info.linktypes) == ("pcap", None, ["ethernet"])
    assert (info.packets, info.bytes_read) == (4, len(data))
    assert (info.first_ts_ns, info.last_ts_ns) == (want_ts[0], want_ts[-1])
    assert reader.truncated_at is None


def test_nanosecond_pcap_timestamps_reach_the_ede_frame() -> None:
    result = scan_checked(pcap([Rec(t, f) for t, f in zip(TIMES, FRAMES, strict=True)],
                               nanos=True, big_endian=True))
    assert result.ede.ts.tolist() == [
        _utc(TIMES[1]), _utc(TIMES[3])]
    # The second query is a day older than its response: outside the matching window.
    assert result.ede.query_ts.tolist()[0] == _utc(TIMES[0])
    assert result.ede.query_ts.isna().tolist() == [False, True]
    assert (result.first_ts_ns, result.last_ts_ns) == (TIMES[0], TIMES[3])


def _utc(ns: int) -> pd.Timestamp:
    return pd.Timestamp(ns, unit="ns", tz="UTC")


def test_pcap_keeps_captured_and_original_lengths_apart() -> None:
    cut = Rec(T0, FRAMES[1][:60], origlen=len(FRAMES[1]))
    got, _ = read_records(io.BytesIO(pcap([cut], snaplen=60)))
    assert [(r[2], r[3], r[5]) for r in got] == [(60, len(FRAMES[1]), FRAMES[1][:60])]


def test_pcap_linktype_ignores_the_fcs_bits() -> None:
    # pcap spec §4: the upper bits of LinkType say whether frames carry an FCS.
    data = pcap(records(FRAMES[:2]), linktype=0x1000_0001)
    got, reader = read_records(io.BytesIO(data))
    assert reader.info.linktypes == ["ethernet"]
    assert [r[4] for r in got] == [1, 1]


@pytest.mark.parametrize("chunk_bytes", [17, 64, 150, 4096])
def test_chunk_boundaries_do_not_change_the_records(chunk_bytes: int) -> None:
    whole, _ = read_records(io.BytesIO(PLAIN))
    pieces, reader = read_records(io.BytesIO(PLAIN), chunk_bytes=chunk_bytes)
    assert pieces == whole
    assert reader.info.packets == 4


# -- pcapng ----------------------------------------------------------------------------------


def test_pcapng_interfaces_and_sections_keep_their_link_types_and_resolutions() -> None:
    # pcapng_capture(): section 1 little-endian: Ethernet at 10^-6 and raw IP at 10^-9;
    # section 2 big-endian: Linux SLL at 2^-10 and NULL at the default resolution (10^-6).
    got, reader = read_records(io.BytesIO(pcapng_capture()))
    assert [(r[0], r[4], r[1] - T0) for r in got] == [
        (1, 1, 1_000),
        (2, 101, 1_000_000_123),
        (3, 1, 2_000),
        (4, 101, 1_500_000_007),
        (5, 113, 2_000_000_000),
        (6, 113, 2_250_000_000),   # 768/1024 s past the second
        (7, 0, 3_000_000_000),
    ]
    info = reader.info
    assert info.file_format == "pcapng"
    assert info.linktypes == ["ethernet", "raw", "linux-sll", "null"]
    assert (info.first_ts_ns, info.last_ts_ns) == (T0 + 1_000, T0 + 3_000_000_000)


def test_pcapng_scan_reports_every_interface() -> None:
    result = scan_checked(pcapng_capture())
    e = result.ede
    assert e.frame_number.tolist() == [3, 4, 6]
    assert e.ede_code.tolist() == [9, 0, 17]
    assert e.ip_version.tolist() == [4, 6, 4]
    assert e.qname.tolist() == ["example.com", "ns.example.com", "bin.example.com"]
    assert [t.value - T0 for t in e.ts] == [2_000, 1_500_000_007, 2_250_000_000]
    assert e.latency.tolist() == [_delta(1_000), _delta(500_000_000 - 116),
                                  _delta(250_000_000)]
    assert result.accounting == {"dns-query": 4, "dns-response": 3}


def _delta(ns: int) -> pd.Timedelta:
    return pd.Timedelta(ns, unit="ns")


@pytest.mark.parametrize("tsresol, ts_offset_ns", [
    (6, 654_321_000),          # 10^-6
    (9, 654_321_987),          # 10^-9
    (3, 654_000_000),          # 10^-3
    (0x80 | 10, 500_000_000),  # 2^-10: 512 ticks
    (0x80 | 20, 250_000_000),  # 2^-20
    (0x80 | 30, 125_000_000),  # 2^-30
])
def test_pcapng_if_tsresol(tsresol: int, ts_offset_ns: int) -> None:
    data = pcapng_section([Iface(101, tsresol)], [Rec(T0 + ts_offset_ns, b"\x45" + bytes(19))])
    got, _ = read_records(io.BytesIO(data))
    assert got[0][1] == T0 + ts_offset_ns


@pytest.mark.parametrize("tsresol", [19, 29, 0x80 | 64], ids=["1e-19", "1e-29", "2^-64"])
def test_pcapng_impossible_if_tsresol_is_an_error(tsresol: int) -> None:
    # Finer than a nanosecond per tick cannot be represented (and once made scan() raise
    # OverflowError): the interface block is corrupt.
    data = bytearray(pcapng_section([Iface(1, 6)], [Rec(T0, FRAMES[1])]))
    at = data.index(bytes([9, 0, 1, 0, 6]))  # the if_tsresol option: code 9, length 1, 10^-6
    data[at + 4] = tsresol
    result = scan([io.BytesIO(bytes(data))])
    assert result.captures[0].error == (
        "<stream>: pcapng interface has an impossible timestamp resolution "
        f"(if_tsresol {tsresol:#x}) at byte 28")  # the IDB follows the 28-byte SHB
    assert result.accounting == {}


def test_pcapng_if_tsoffset_adds_seconds() -> None:
    data = pcapng_section([Iface(1, 9, tsoffset=1_000_000)],
                          [Rec(T0 + 42, FRAMES[0])])
    got, _ = read_records(io.BytesIO(data))
    assert got[0][1] == T0 + 42


def _pcapng_four(big_endian: bool = False) -> bytes:
    recs = [Rec(t, f, iface=i % 2) for i, (t, f) in enumerate(zip(TIMES, FRAMES, strict=True))]
    return pcapng_section([Iface(1, 9), Iface(1, 6)], recs, big_endian=big_endian)


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("chunk_bytes", [300, 1 << 20])
def test_pcapng_chunk_boundaries_and_byte_order(big_endian: bool, chunk_bytes: int) -> None:
    got, _ = read_records(io.BytesIO(_pcapng_four(big_endian)), chunk_bytes=chunk_bytes)
    assert [r[1] for r in got] == [TIMES[0], TIMES[1] // 1000 * 1000, TIMES[2],
                                   TIMES[3] // 1000 * 1000]
    assert [r[5] for r in got] == FRAMES


def test_pcapng_block_longer_than_a_chunk() -> None:
    reader = CaptureReader(io.BytesIO(_pcapng_four()), chunk_bytes=64)
    flush, calls = reader._flush_ng, []

    def guarded(*args):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) > 1000:
            raise RuntimeError("no progress: the reader loops on the same bytes")
        return flush(*args)

    reader._flush_ng = guarded  # type: ignore[method-assign]
    assert sum(len(c) for c in reader.chunks()) == 4


def test_pcapng_packet_on_an_undescribed_interface_is_unsupported() -> None:
    q, r = exchange()
    data = pcapng_section([Iface(1)], [Rec(T0, q), Rec(T0 + MS, r, iface=3)])
    result = scan_checked(data)
    assert result.accounting == {"dns-query": 1, "unsupported-linktype": 1}


def test_pcapng_caplen_beyond_its_block_is_clipped() -> None:
    block = bytearray(pcapng_section([Iface(1)], [Rec(T0, FRAMES[0])]))
    epb = block.rfind(struct.pack("<I", 6))
    struct.pack_into("<I", block, epb + 20, len(FRAMES[0]) + 500)  # captured length lies
    got, _ = read_records(io.BytesIO(bytes(block)))
    assert got[0][2] == len(FRAMES[0]) + (-len(FRAMES[0]) % 4)
    assert got[0][5].startswith(FRAMES[0])


# -- compression and stdin ----------------------------------------------------------------------

COMPRESSORS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "lz4": lz4.frame.compress,
}


@pytest.mark.parametrize("kind", list(COMPRESSORS))
def test_compressed_captures_are_recognised_by_magic(kind: str, tmp_path: Path) -> None:
    plain, _ = read_records(io.BytesIO(PLAIN))
    path = tmp_path / "capture.bin"   # no telling suffix: the magic decides
    path.write_bytes(COMPRESSORS[kind](PLAIN))
    got, reader = read_records(path)
    assert got == plain
    assert (reader.info.compression, reader.info.file_format) == (kind, "pcap")
    result = scan([path])
    assert result.captures[0].compression == kind
    assert result.accounting == {"dns-query": 2, "dns-response": 2}
    assert result.ede.ede_code.tolist() == [9, 9]


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_compressed_pcapng(kind: str) -> None:
    data = COMPRESSORS[kind](pcapng_capture())
    result = scan([io.BytesIO(data)])
    assert result.ede.frame_number.tolist() == [3, 4, 6]
    assert (result.captures[0].compression, result.captures[0].file_format) == (kind, "pcapng")


class _Stdin:
    """Stands in for sys.stdin: only ``buffer`` is read."""

    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_stdin_is_read_for_a_dash(compress: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", _Stdin(gzip.compress(PLAIN) if compress else PLAIN))
    result = scan("-")
    assert [c.path for c in result.captures] == ["-"]
    assert result.captures[0].compression == ("gzip" if compress else None)
    assert result.accounting == {"dns-query": 2, "dns-response": 2}
    assert result.ede.capture.tolist() == ["-", "-"]
    assert result.ede.frame_number.tolist() == [2, 4]


# -- damaged and wrong inputs --------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 7, 16, 40], ids=["at-record", "in-header", "after-header",
                                                      "in-data"])
def test_truncated_pcap_keeps_the_records_before_the_cut(keep: int) -> None:
    offs = record_offsets(PLAIN)
    data = PLAIN[:offs[3] + keep]  # three whole records, then `keep` bytes of the fourth
    got, reader = read_records(io.BytesIO(data))
    assert [r[0] for r in got] == [1, 2, 3]
    assert reader.truncated_at == (None if keep == 0 else offs[3])
    result = scan_checked(data)
    if keep == 0:
        assert result.accounting == {"dns-query": 2, "dns-response": 1}
        assert result.captures[0].truncated_at is None
        return
    assert result.accounting == {"dns-query": 2, "dns-response": 1, "capture-truncated": 1}
    assert result.packets == 4
    info = result.captures[0]
    assert (info.error, info.truncated_at, info.packets) == (None, offs[3], 4)
    assert result.ede.frame_number.tolist() == [2]


def test_truncated_pcapng_keeps_the_blocks_before_the_cut() -> None:
    data = pcapng_capture()
    last_block = len(data) - struct.unpack_from(">I", data, len(data) - 4)[0]
    result = scan_checked(data[:-7])
    assert result.accounting == {"dns-query": 3, "dns-response": 3, "capture-truncated": 1}
    assert result.captures[0].truncated_at == last_block
    assert result.ede.frame_number.tolist() == [3, 4, 6]


def test_pcap_header_cut_short_is_an_error() -> None:
    result = scan([io.BytesIO(PLAIN[:10])])
    assert result.captures[0].error == "<stream>: pcap file header is cut short at byte 10"
    assert result.packets == 0


def test_unreadable_files_are_recorded_and_the_others_still_read(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    text = tmp_path / "notes.pcap"
    text.write_bytes(b"this is not a capture, just some text\n")
    good = tmp_path / "good.pcap"
    good.write_bytes(PLAIN)
    missing = tmp_path / "missing.pcap"
    result = scan([empty, text, good, missing, tmp_path])
    assert [c.error for c in result.captures] == [
        f"{empty}: is empty or too short to be a capture at byte 0; "
        "expected a pcap or pcapng file",
        f"{text}: is not a pcap, pcapng or dnstap file at byte 0; "
        "convert a capture with editcap or tshark -F pcap",
        None,
        f"{missing}: no such file; check the path",
        f"{tmp_path}: is a directory; pass the files in it",
    ]
    assert [c.error_offset for c in result.captures] == [0, 0, None, None, None]
    assert result.failed == [result.captures[i] for i in (0, 1, 3, 4)]
    assert result.accounting == {"dns-query": 2, "dns-response": 2}
    assert result.ede.capture.tolist() == [str(good), str(good)]


def test_absurd_record_length_mid_file_is_an_error_naming_the_offset() -> None:
    # A corrupt length field in a later chunk: the records before it are delivered first.
    offs = record_offsets(PLAIN)
    bad = bytearray(PLAIN + PLAIN[24:])
    struct.pack_into("<I", bad, offs[2] + 8, 5_000_000)
    reader = CaptureReader(io.BytesIO(bytes(bad)), chunk_bytes=64)
    seen = []
    with pytest.raises(CaptureError) as caught:
        for chunk in reader.chunks():
            seen.extend(range(chunk.first_frame, chunk.first_frame + len(chunk)))
    assert seen == [1, 2]
    assert caught.value.offset == offs[2]
    assert str(caught.value) == (
        f"<stream>: record 3 claims 5000000 bytes at byte {offs[2]}; the file is corrupt "
        "from here on; the records before it were read")


def test_absurd_record_length_in_a_small_file_is_an_error() -> None:
    offs = record_offsets(PLAIN)
    bad = bytearray(PLAIN + PLAIN[24:])
    struct.pack_into("<I", bad, offs[2] + 8, 5_000_000)
    result = scan([io.BytesIO(bytes(bad))])
    info = result.captures[0]
    assert info.error == (f"<stream>: record 3 claims 5000000 bytes at byte {offs[2]}; the "
                          "file is corrupt from here on; the records before it were read")
    assert info.error_offset == offs[2]
    assert result.accounting == {"dns-query": 1, "dns-response": 1}


def test_pcapng_block_with_an_impossible_length_is_an_error_after_earlier_blocks() -> None:
    q, r = exchange()
    data = bytearray(pcapng_section([Iface(1)], [Rec(T0, q), Rec(T0 + MS, r), Rec(T0, q)]))
    last = len(data) - struct.unpack_from("<I", data, len(data) - 4)[0]
    struct.pack_into("<I", data, last + 4, 13)  # not a multiple of 4
    result = scan([io.BytesIO(bytes(data))])
    info = result.captures[0]
    assert info.error == (f"<stream>: pcapng block of type 0x6 has impossible length 13 at "
                          f"byte {last}; the file is corrupt from here on; the records before "
                          "it were read")
    assert info.error_offset == last
    assert result.accounting == {"dns-query": 1, "dns-response": 1}
    assert result.ede.frame_number.tolist() == [2]


def test_pcapng_bad_byte_order_magic_is_an_error() -> None:
    data = bytearray(pcapng_section([Iface(1)], [Rec(T0, FRAMES[0])]))
    data[8:12] = b"ABCD"
    result = scan([io.BytesIO(bytes(data))])
    assert result.captures[0].error == (
        "<stream>: pcapng section header has a bad byte-order magic at byte 0")
    assert result.packets == 0


def test_a_bad_file_between_good_ones_does_not_lose_their_rows() -> None:
    one = pcap(records(exchange(qname="one.example.com")))
    two = pcap(records(exchange(qname="two.example.com")))
    result = scan([io.BytesIO(one), io.BytesIO(b"\x00" * 40), io.BytesIO(two)])
    assert [c.error is None for c in result.captures] == [True, False, True]
    assert result.ede.qname.tolist() == ["one.example.com", "two.example.com"]
    assert result.accounting == {"dns-query": 2, "dns-response": 2}


@pytest.mark.parametrize("cut, kept", [
    # only the gzip trailer is missing: every record is there, the cut is still noted
    (4, {"dns-query": 2, "dns-response": 2, "capture-truncated": 1}),
    (30, {"dns-query": 2, "dns-response": 1, "capture-truncated": 1}),  # a record is cut too
], ids=["in-trailer", "in-data"])
def test_cut_off_gzip_keeps_the_records_before_the_cut(cut: int, kept: dict[str, int]) -> None:
    """A compressed file cut short reads like a cut-off pcap: no error, the cut noted."""
    result = scan([io.BytesIO(gzip.compress(PLAIN)[:-cut])])
    assert result.accounting == kept
    info = result.captures[0]
    assert info.error is None
    assert info.truncated_at is not None and info.truncated_at <= len(PLAIN)
    if cut == 4:
        assert info.truncated_at == len(PLAIN)


def test_damaged_gzip_is_an_error_naming_the_decompressed_offset() -> None:
    data = bytearray(gzip.compress(PLAIN))
    data[10] = 0x07  # the first deflate block: final, of the reserved type 3 (RFC 1951 §3.2.3)
    result = scan([io.BytesIO(bytes(data))])
    info = result.captures[0]
    assert info.error is not None
    assert info.error == ("<stream>: decompression failed (Error -3 while decompressing "
                          "data: invalid block type) at byte 0 of the decompressed data; the "
                          "compressed file is damaged; records before this point were read")
