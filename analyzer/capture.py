"""Capture files -> chunks of packet records (pcap and pcapng, plain or compressed).

dpkt parses the file and block headers (``dpkt.pcap.FileHdr``, ``dpkt.pcapng``'s section and
interface blocks). The record walk itself is ours: dpkt's iterators build one object per
packet, which caps throughput near 600k packets/s, while a walk that only notes where each
record starts runs at several million per second. The per-record fields are then gathered
column-wise with numpy, so a ``Chunk`` is a buffer plus arrays, never one object per packet.

Memory stays flat: a chunk holds at most ``CHUNK_BYTES`` of records (plus one record that
straddles the boundary), and decompression is streamed.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import select
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import dpkt
import numpy as np

from analyzer import dnstap, framestreams, records
from analyzer.errors import CaptureError
from analyzer.records import MAX_BLOCK, MAX_RECORD
from analyzer.result import CaptureInfo

CHUNK_BYTES = 2 << 20  # 4 MiB measured the same speed with ~15 MB more peak memory
XZ_MEMLIMIT = 96 << 20
EAGER_MIN = 4096  # with ``eager``, reads of at least this many bytes return what is there
PAD = 64
_PADDING = bytes(PAD)
_MAX_TS_NS = (1 << 62)  # about year 2116: later timestamps in a capture are lies

LINKTYPE_NAMES = {
    0: "null", 1: "ethernet", 12: "raw", 14: "raw", 101: "raw", 108: "loop",
    113: "linux-sll", 228: "ipv4", 229: "ipv6", 276: "linux-sll2",
}

_COMPRESSION_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),   # microsecond, little-endian
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),      # nanosecond
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_IDB = 1
_PCAPNG_PB = 2      # obsolete Packet Block
_PCAPNG_SPB = 3
_PCAPNG_EPB = 6
# The fixed part of each block type (pcapng §4): a shorter block is corrupt.
_MIN_BLOCK = {_PCAPNG_SHB: 28, _PCAPNG_IDB: 20, _PCAPNG_PB: 32, _PCAPNG_SPB: 16, _PCAPNG_EPB: 32}
# Finer than 1 ns per tick cannot be represented; coarser than a day per tick is nonsense.
_MAX_TICKS_PER_S = 10**18
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14


@dataclass(slots=True)
class Chunk:
    """A run of consecutive packet records held in one buffer, described column-wise."""

    buf: bytes
    data_off: np.ndarray   # int64: offset in ``buf`` of each packet's first byte
    caplen: np.ndarray     # int64: bytes captured
    origlen: np.ndarray    # int64: bytes on the wire
    ts_ns: np.ndarray      # int64: nanoseconds since the epoch, UTC
    linktype: np.ndarray   # int64: LINKTYPE_* of the interface that captured it
    first_frame: int       # Wireshark frame number of the first record (1-based)
    warm: int = 0          # leading records read only to warm up state (see CaptureReader span)
    arr: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))

    def __len__(self) -> int:
        return len(self.data_off)

    def __post_init__(self) -> None:
        # ``buf`` as numpy bytes plus zero padding, so fixed-offset gathers past the end of
        # a short last packet stay in bounds (their results are masked out by length checks).
        if not len(self.arr):
            self.arr = np.frombuffer(self.buf + bytes(PAD), np.uint8)


def open_source(source: str | Path | BinaryIO) -> tuple[BinaryIO, str, str | None, BinaryIO]:
    """Return a stream of capture bytes, its display name, its compression and the raw file.

    Compression is recognised by magic bytes, not by file name, and decompression streams.
    """
    if isinstance(source, (str, Path)):
        name = str(source)
        if name == "-":
            raw: BinaryIO = sys.stdin.buffer
        else:
            try:
                raw = open(name, "rb")  # noqa: SIM115 - closed by the caller via the stream
            except FileNotFoundError:
                raise CaptureError(name, "no such file", hint="check the path") from None
            except IsADirectoryError:
                raise CaptureError(name, "is a directory", hint="pass the files in it") from None
            except OSError as e:
                raise CaptureError(name, f"cannot open ({e.strerror})") from None
    else:
        raw, name = source, getattr(source, "name", "<stream>")
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(_RawAdapter(raw))
    head = buffered.peek(8)[:8]
    for magic, kind in _COMPRESSION_MAGIC:
        if head.startswith(magic):
            return _decompressor(buffered, kind, name), name, kind, raw
    return buffered, name, None, raw


class _RawAdapter(io.RawIOBase):
    """Let ``io.BufferedReader`` (which gives us ``peek``) wrap any readable binary object."""

    def __init__(self, inner: BinaryIO):
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        data = self._inner.read(len(b))
        n = len(data)
        b[:n] = data
        return n


def _decompressor(stream: BinaryIO, kind: str, name: str) -> BinaryIO:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=stream)  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(stream)  # type: ignore[return-value]
    if kind == "xz":
        # LZMAFile offers no memory limit, and liblzma keeps as much output as the
        # dictionary the file declares: a tiny file could claim gigabytes. The same reader
        # LZMAFile uses, with a limit that real captures (xz -9: 64 MiB dictionary) meet.
        import _compression

        reader = _compression.DecompressReader(stream, lzma.LZMADecompressor,
                                               trailing_error=lzma.LZMAError,
                                               memlimit=XZ_MEMLIMIT)
        return io.BufferedReader(reader)  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(stream)  # type: ignore[return-value]
    try:
        import lz4.frame
    except ImportError:
        raise CaptureError(name, "is lz4-compressed", hint="install lz4 or decompress it first",
                           ) from None
    return lz4.frame.LZ4FrameFile(stream)  # type: ignore[return-value]


def _decompression_errors() -> tuple[type[BaseException], ...]:
    """Return what the decompressors raise on damaged input (zlib, lzma, lz4, zstandard)."""
    errors: list[type[BaseException]] = [OSError, EOFError, lzma.LZMAError, ValueError,
                                         zlib.error,
                                         RuntimeError]  # lz4.frame: "LZ4F_decompress failed"
    zstd = sys.modules.get("zstandard")
    if zstd is not None:
        errors.append(zstd.ZstdError)
    return tuple(errors)


def _more_waiting(stream: BinaryIO) -> bool:
    """Return whether reading ``stream`` again would return at once (a fast stream fills
    whole chunks; a quiet one hands over what it has)."""
    try:
        return bool(select.select([stream.fileno()], [], [], 0)[0])
    except (AttributeError, OSError, ValueError):
        return False


def compression_of(reader: CaptureReader) -> str | None:
    """Return the compression of the reader's file (split reading needs plain files)."""
    return reader.info.compression


class CaptureReader:
    """Stream one capture as ``Chunk`` objects; ``info`` fills in as it goes.

    A file cut short inside a record ends the stream normally with ``truncated_at`` set
    (everything before the cut is delivered). Corruption that makes the rest unreadable
    raises ``CaptureError`` after the chunks before it were delivered.
    """

    def __init__(self, source: str | Path | BinaryIO, chunk_bytes: int = CHUNK_BYTES,
                 span: tuple[int, int, int] | None = None, eager: bool = False,
                 skip: int = 0):
        """``span`` = (lead_in, start, stop) reads only part of a plain pcap file.

        ``eager`` hands over a chunk as soon as some records arrived instead of waiting
        for ``chunk_bytes`` of them: for a live stream (``tcpdump -w - |``), where a full
        chunk could take minutes to arrive.

        Records from ``lead_in`` to ``start`` come marked as warm-up (``Chunk.warm``), so
        that a worker can rebuild the state (queries, TCP streams) its part begins in;
        records from ``start`` up to the first at or after ``stop`` are the part proper.
        All three must be record boundaries (see ``split.find_boundary``).

        ``skip``: the first records (of any format) come marked as warm-up too: a restarted
        ``watch`` counted them before it stopped (see ``watchstate``).
        """
        self.stream, self.name, compression, self._raw = open_source(source)
        self.info = CaptureInfo(path=self.name, compression=compression)
        self.chunk_bytes = chunk_bytes
        self.truncated_at: int | None = None
        self.span = span
        self.end_position: int | None = None  # with a span: where the next part must begin
        self._frame = 1
        self._pos = 0  # offset of the next unread byte in the decompressed stream
        self.stream_cut = False  # a compressed file ended before its end-of-stream marker
        self.eager = eager
        self.skip = skip  # leading records still to mark as warm-up
        self.records_end: int | None = None  # plain pcap: offset after the last record given

    def take_skipped(self, count: int) -> int:
        """Return how many of the next ``count`` records are still to be skipped (warm-up)."""
        taken = min(self.skip, count)
        self.skip -= taken
        return taken

    def raw_position(self) -> int:
        """Return how far into the file (compressed bytes, for a compressed one) we are."""
        try:
            return self._raw.tell()
        except (OSError, ValueError, AttributeError):
            return self._pos

    def close(self) -> None:
        if self.stream is not sys.stdin.buffer:
            self.stream.close()

    def _read(self, n: int) -> bytes:
        """Read up to ``n`` bytes, fewer only at the end of the stream."""
        parts = []
        want = n
        # read1 returns what one step of a decompressor yields, so a damaged or cut-off
        # compressed file loses only that step, not a whole chunk of good records.
        read = self.stream.read1 if self.info.compression else self.stream.read  # type: ignore[attr-defined]
        # header reads (a few bytes) stay whole; chunk reads take what the stream has
        eager = self.eager and n >= EAGER_MIN and hasattr(self.stream, "read1")
        if eager:
            read = self.stream.read1  # type: ignore[attr-defined]
        while want > 0:
            try:
                data = read(want)
            except EOFError:
                # gzip, bzip2, xz and lz4 raise this when the file ends before the stream's
                # end marker: a cut-off file, read like a cut-off pcap (the records before
                # the cut count, the cut is noted), not a damaged one.
                self.stream_cut = True
                break
            except _decompression_errors() as e:
                # A decompressor that hits corrupt input: keep what came before.
                if parts:
                    break
                problem = f"decompression failed ({e})"
                raise CaptureError(
                    self.name, problem, self._pos, message=(
                        f"{self.name}: {problem} at byte {self._pos} of the decompressed "
                        "data; the compressed file is damaged; records before this point "
                        "were read")) from None
            if not data:
                break
            parts.append(data)
            want -= len(data)
            if eager and not _more_waiting(self.stream):
                break
        out = b"".join(parts)
        self._pos += len(out)
        return out

    def chunks(self) -> Iterator[Chunk | framestreams.LogChunk]:
        """Yield the capture's records, ``chunk_bytes`` at a time."""
        head = self._read(4)
        if len(head) < 4 and self.stream_cut:
            raise CaptureError(self.name, f"is cut off before its first {self.info.compression} "
                               "block ends, so nothing in it can be read",
                               hint="the file was truncated; copy it again in full")
        if len(head) < 4:
            raise CaptureError(self.name, "is empty or too short to be a capture", 0,
                               "expected a pcap or pcapng file")
        if head in _PCAP_MAGICS:
            self.info.file_format = "pcap"
            yield from self._pcap_chunks(head)
        elif struct.unpack("<I", head)[0] == _PCAPNG_SHB:
            self.info.file_format = "pcapng"
            if self.span is not None:
                raise CaptureError(self.name, "cannot be split", hint="read it whole")
            yield from self._pcapng_chunks(head)
        else:
            # dnstap (Frame Streams), recognised by content: a START control frame, or for a
            # file written without one, a first data frame that decodes as dnstap
            head += self._read(1 << 16)
            if not (framestreams.starts_frame_stream(head) or
                    dnstap.looks_like_data_frame(head)):
                self._not_a_capture()
            if self.span is not None:
                raise CaptureError(self.name, "cannot be split", hint="read it whole")
            yield from framestreams.log_chunks(self, head)
        if self.stream_cut and self.truncated_at is None:
            self._truncated(self._pos)  # cut at a record boundary: still a cut-off file

    def _not_a_capture(self) -> None:
        raise CaptureError(self.name, "is not a pcap, pcapng or dnstap file", 0,
                           "convert a capture with editcap or tshark -F pcap")

    # -- classic pcap -------------------------------------------------------------------------

    def _pcap_chunks(self, magic: bytes) -> Iterator[Chunk]:
        endian, ts_scale = _PCAP_MAGICS[magic]
        rest = self._read(20)
        if len(rest) < 20:
            raise CaptureError(self.name, "pcap file header is cut short", self._pos)
        hdr_cls = dpkt.pcap.LEFileHdr if endian == "<" else dpkt.pcap.FileHdr
        hdr = hdr_cls(magic + rest)
        # The upper bits of the link-type field carry FCS information (pcap spec §4).
        linktype = hdr.linktype & 0x0FFFFFFF
        self.info.linktypes = [LINKTYPE_NAMES.get(linktype, f"linktype-{linktype}")]
        incl_of = struct.Struct(endian + "I").unpack_from
        start = stop = 0
        if self.span is not None:
            lead_in, start, stop = self.span
            if compression_of(self) or lead_in < 24:
                raise CaptureError(self.name, "cannot be split", hint="read it whole")
            self.stream.seek(lead_in)
            self._pos = lead_in
        carry = b""
        while True:
            block_start = self._pos - len(carry)
            data = self._read(self.chunk_bytes)
            buf = b"".join((carry, data, _PADDING))  # one copy, the chunk's padding included
            n = len(buf) - PAD
            limit = stop - block_start if self.span is not None else n + 1
            rows, off = records.pcap_records(memoryview(buf)[:n], 0, limit, endian == ">")
            finished = self.span is not None and off >= limit
            if finished:
                self.end_position = block_start + off
            warm = 0
            if self.span is not None and block_start < start:
                warm = int(np.count_nonzero(rows[:, 0] < start - block_start))
            bad = None
            if len(rows):
                incl = rows[:, 3]
                over = np.flatnonzero(incl > MAX_RECORD)
                if len(over):
                    bad = int(over[0])
                    claimed = int(incl[bad])
                    bad_at = int(rows[bad, 0])
                    rows = rows[:bad]
                if len(rows):
                    if bad is None:
                        self.records_end = block_start + off
                    yield self._emit(buf, rows[:, 0] + 16, rows[:, 3].copy(), rows[:, 4].copy(),
                                     rows[:, 1] * 1_000_000_000 + rows[:, 2] * ts_scale,
                                     np.full(len(rows), linktype, dtype=np.int64), warm)
                if bad is not None:
                    raise CaptureError(
                        self.name, f"record {self._frame} claims {claimed} bytes",
                        block_start + bad_at, "the file is corrupt from here on; "
                        "the records before it were read")
            if finished:
                return
            if off + 16 <= n and incl_of(buf, off + 8)[0] > MAX_RECORD:
                raise CaptureError(self.name, f"record {self._frame} claims "
                                   f"{incl_of(buf, off + 8)[0]} bytes", block_start + off,
                                   "the file is corrupt from here on; the records before it "
                                   "were read")
            if not data:
                if off < n:
                    self._truncated(block_start + off)
                if self.span is not None:
                    self.end_position = block_start + off
                return
            carry = buf[off:n]

    def _emit(self, buf: bytes, data_off: np.ndarray, caplen: np.ndarray, origlen: np.ndarray,
              ts_ns: np.ndarray, linktype: np.ndarray, warm: int = 0) -> Chunk:
        # ``buf`` ends in PAD zero bytes already (see the chunk loops): no copy for ``arr``.
        skipped = self.take_skipped(len(data_off) - warm)
        self._frame += skipped  # skipped records keep their frame numbers
        warm += skipped
        chunk = Chunk(buf, data_off, caplen, origlen, ts_ns, linktype, self._frame - warm, warm,
                      np.frombuffer(buf, np.uint8))
        count = len(data_off) - warm
        self._frame += count
        info = self.info
        info.packets += count
        info.bytes_read = self._pos
        if not count:
            return chunk
        first, last = int(ts_ns[warm]), int(ts_ns[-1])
        if info.first_ts_ns is None:
            info.first_ts_ns = first
        info.last_ts_ns = last if info.last_ts_ns is None else max(info.last_ts_ns, last)
        return chunk

    def _truncated(self, offset: int) -> None:  # noqa: D401
        self.truncated_at = offset
        self.info.truncated_at = offset

    # -- pcapng ---------------------------------------------------------------------------------

    def _pcapng_chunks(self, first4: bytes) -> Iterator[Chunk]:
        # Per-section state: byte order and interfaces (link type, ns per tick, offset).
        endian = "<"
        ifaces: list[tuple[int, float, int, int]] = []
        carry = first4
        eof = False
        stalled = False
        while True:
            block_start = self._pos - len(carry)
            # Read more only when the carried-over bytes are short of a chunk (so that many
            # section or interface boundaries cannot make the buffer grow) or hold no whole
            # block (a block larger than a chunk).
            if not eof and (len(carry) < self.chunk_bytes or stalled):
                data = self._read(self.chunk_bytes)
                eof = not data
            else:
                data = b""
            buf = b"".join((carry, data, _PADDING))  # the chunk's padding included
            n = len(buf) - PAD
            view = memoryview(buf)[:n]
            off = 0
            epb_runs: list[np.ndarray] = []  # rows from records.pcapng_epbs
            n_epb = 0
            other: list[tuple[int, int]] = []  # SPB/PB records: (position in order, offset)
            hdr_of = struct.Struct(endian + "II").unpack_from
            while off + 12 <= n:
                run, off = records.pcapng_epbs(view, off, endian == ">")
                if len(run):
                    epb_runs.append(run)
                    n_epb += len(run)
                if off + 12 > n:
                    break
                # Whatever stopped the run: another block type, or an EPB that is cut short
                # (read more) or has an impossible length (the checks below report it).
                btype, blen = hdr_of(buf, off)
                if btype == _PCAPNG_SHB:
                    # A new section may switch byte order: finish the records before it first.
                    if n_epb or other:
                        break
                    bom = buf[off + 8:off + 12]
                    endian = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}.get(bom, "")
                    if not endian:
                        raise CaptureError(self.name, "pcapng section header has a bad "
                                           "byte-order magic", block_start + off)
                    hdr_of = struct.Struct(endian + "II").unpack_from
                    blen = hdr_of(buf, off)[1]
                    ifaces = []
                if blen < _MIN_BLOCK.get(btype, 12) or blen % 4 or blen > MAX_BLOCK:
                    chunk = self._flush_ng(buf, epb_runs, other, endian, ifaces)
                    if chunk is not None:
                        yield chunk
                    raise CaptureError(self.name, f"pcapng block of type {btype:#x} has "
                                       f"impossible length {blen}", block_start + off,
                                       "the file is corrupt from here on; the records before "
                                       "it were read")
                if off + blen > n:
                    break
                if btype in (_PCAPNG_SPB, _PCAPNG_PB):
                    other.append((n_epb + len(other), off))
                elif btype == _PCAPNG_IDB:
                    if n_epb or other:
                        break  # interfaces change: emit the packets before this block first
                    ifaces.append(self._interface(buf[off:off + blen], endian, block_start + off))
                    for lt, *_ in ifaces:
                        nm = LINKTYPE_NAMES.get(lt, f"linktype-{lt}")
                        if nm not in self.info.linktypes:
                            self.info.linktypes.append(nm)
                off += blen
            chunk = self._flush_ng(buf, epb_runs, other, endian, ifaces)
            if chunk is not None:
                yield chunk
            carry = buf[off:n]
            stalled = off == 0
            if eof and off == 0:
                if carry:
                    self._truncated(block_start)
                return

    def _interface(self, block: bytes, endian: str, where: int) -> tuple[int, float, int, int]:
        cls = dpkt.pcapng.InterfaceDescriptionBlockLE if endian == "<" else \
            dpkt.pcapng.InterfaceDescriptionBlock
        try:
            idb = cls(block)
        except (dpkt.UnpackError, struct.error, UnicodeDecodeError, ValueError):
            raise CaptureError(self.name, "pcapng interface description block is malformed",
                               where) from None
        ticks_per_s = 1_000_000
        offset_s = 0
        for opt in getattr(idb, "opts", []):
            if opt.code == _OPT_IF_TSRESOL and opt.data:
                v = opt.data[0]
                ticks_per_s = 2 ** (v & 0x7F) if v & 0x80 else 10 ** v
                if ticks_per_s > _MAX_TICKS_PER_S:
                    raise CaptureError(self.name, f"pcapng interface has an impossible "
                                       f"timestamp resolution (if_tsresol {v:#x})", where)
            elif opt.code == _OPT_IF_TSOFFSET and len(opt.data) == 8:
                offset_s = struct.unpack(endian + "q", opt.data)[0]
                if abs(offset_s) > 1 << 33:  # ±270 years: anything more is a lie
                    raise CaptureError(self.name, "pcapng interface has an impossible "
                                       f"timestamp offset ({offset_s} s)", where)
        return (idb.linktype, 1e9 / ticks_per_s, ticks_per_s, offset_s)

    def _flush_ng(self, buf: bytes, epb_runs: list[np.ndarray], other: list[tuple[int, int]],
                  endian: str, ifaces: list[tuple[int, float, int, int]]) -> Chunk | None:
        epbs = epb_runs[0] if len(epb_runs) == 1 else np.concatenate(epb_runs) if epb_runs \
            else np.empty((0, 7), np.int64)
        count = len(epbs) + len(other)
        if not count:
            return None
        data_off = np.empty(count, np.int64)
        caplen = np.empty(count, np.int64)
        origlen = np.empty(count, np.int64)
        iface = np.empty(count, np.int64)
        ticks = np.empty(count, np.uint64)
        is_epb = np.ones(count, bool)
        if other:
            is_epb[[pos for pos, _ in other]] = False
        if len(epbs):
            # EPB: interface, ts high, ts low, captured length, original length (pcapng §4.3)
            iface[is_epb] = epbs[:, 2]
            ticks[is_epb] = (epbs[:, 3].astype(np.uint64) << np.uint64(32)) | \
                epbs[:, 4].astype(np.uint64)
            origlen[is_epb] = epbs[:, 6]
            data_off[is_epb] = epbs[:, 0] + 28
            # A captured length that overruns its own block is a lie: keep what the block has.
            caplen[is_epb] = np.minimum(epbs[:, 5], np.maximum(epbs[:, 1] - 32, 0))
        prev = 0
        for pos, off in other:
            btype, blen = struct.unpack_from(endian + "II", buf, off)
            if btype == _PCAPNG_SPB:
                (olen,) = struct.unpack_from(endian + "I", buf, off + 8)
                iface[pos], origlen[pos], data_off[pos] = 0, olen, off + 12
                caplen[pos] = min(olen, blen - 16)
                ticks[pos] = ticks[pos - 1] if pos else prev  # SPB has no timestamp
            else:
                ifid, _drops, hi, lo, clen, olen = struct.unpack_from(endian + "HHIIII", buf,
                                                                      off + 8)
                iface[pos], origlen[pos], data_off[pos] = ifid, olen, off + 28
                caplen[pos] = min(clen, max(blen - 32, 0))
                ticks[pos] = (hi << 32) | lo
        linktype = np.full(count, -1, np.int64)
        ts_ns = np.zeros(count, np.int64)
        for i, (lt, ns_per_tick, ticks_per_s, offset_s) in enumerate(ifaces):
            sel = iface == i
            if not sel.any():
                continue
            linktype[sel] = lt
            t = ticks[sel]
            if ticks_per_s <= 1_000_000_000 and 1_000_000_000 % ticks_per_s == 0:
                ns = t.astype(np.int64) * (1_000_000_000 // ticks_per_s)
            elif ticks_per_s % 1_000_000_000 == 0:
                ns = (t // np.uint64(ticks_per_s // 1_000_000_000)).astype(np.int64)
            else:
                secs = t // np.uint64(ticks_per_s)
                frac = t % np.uint64(ticks_per_s)
                ns = secs.astype(np.int64) * 1_000_000_000 + (
                    frac.astype(np.float64) * ns_per_tick).astype(np.int64)
            ts_ns[sel] = ns + offset_s * 1_000_000_000
        # Lying timestamps must not wrap into negative times (NaT downstream): clamp them.
        np.clip(ts_ns, 0, _MAX_TS_NS, out=ts_ns)
        # Packets naming an interface that was never described keep linktype -1: the layer
        # decoder counts them as unsupported rather than guessing.
        return self._emit(buf, data_off, caplen, origlen, ts_ns, linktype)

