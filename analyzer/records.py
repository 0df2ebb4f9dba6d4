"""Find the packet records in a buffer of capture bytes.

A record's length field says where the next one starts, so the walk is a sequential loop:
the compiled kernel runs it when it was built (see ``speedups``), and the Python twin here
gives the same answer otherwise. Both return one int64 row per record, so the caller
gathers columns with numpy either way.
"""

from __future__ import annotations

import struct

import numpy as np

from analyzer import speedups

# No real capture holds a frame this large (tcpdump's maximum snaplen is 256 KiB; TSO
# captures reach 64 KiB): a record claiming more means the file is corrupt, and accepting it
# would make us buffer whatever size the length field claims.
MAX_RECORD = 1 << 20  # capture.py and split.py use it from here
PCAPNG_EPB = 6
MAX_BLOCK = MAX_RECORD + 64  # a record plus the largest block framing around it
# Columns of the rows returned below.
PCAP_COLUMNS = ("offset", "ts_sec", "ts_frac", "caplen", "origlen")
EPB_COLUMNS = ("offset", "block_len", "interface", "ts_high", "ts_low", "caplen", "origlen")


def pcap_records(buf: bytes, off: int, limit: int, big_endian: bool) -> tuple[np.ndarray, int]:
    """Return the whole classic pcap records in ``buf`` from ``off``, and where the walk stopped.

    A record is taken when its 16-byte header and captured bytes lie in ``buf`` and it starts
    before ``limit``. Rows follow ``PCAP_COLUMNS``.
    """
    if speedups.kernels is not None:
        raw, stop = speedups.kernels.pcap_records(buf, off, limit, big_endian)
        return np.frombuffer(raw, np.int64).reshape(-1, 5), stop
    return pcap_records_py(buf, off, limit, big_endian)


def pcap_records_py(buf: bytes, off: int, limit: int,
                    big_endian: bool) -> tuple[np.ndarray, int]:
    incl_of = struct.Struct(">I" if big_endian else "<I").unpack_from
    n = len(buf)
    offs: list[int] = []
    append = offs.append
    while off + 16 <= n and off < limit:
        end = off + 16 + incl_of(buf, off + 8)[0]
        if end > n:
            break
        append(off)
        off = end
    rows = np.empty((len(offs), 5), np.int64)
    if offs:
        idx = np.asarray(offs, dtype=np.int64)
        u4 = np.dtype(">u4" if big_endian else "<u4")
        rows[:, 0] = idx
        rows[:, 1:] = np.frombuffer(buf, np.uint8)[idx[:, None] + np.arange(16)].view(u4)
    return rows, off


def pcapng_epbs(buf: bytes, off: int, big_endian: bool) -> tuple[np.ndarray, int]:
    """Return the run of whole Enhanced Packet Blocks starting at ``off``, and where it ends.

    The run stops at the first block that is not a whole, plausible EPB: another block type,
    an impossible length, or one that the buffer cuts. Rows follow ``EPB_COLUMNS``.
    """
    if speedups.kernels is not None:
        raw, stop = speedups.kernels.pcapng_epbs(buf, off, big_endian, MAX_BLOCK)
        return np.frombuffer(raw, np.int64).reshape(-1, 7), stop
    return pcapng_epbs_py(buf, off, big_endian)


def pcapng_epbs_py(buf: bytes, off: int, big_endian: bool) -> tuple[np.ndarray, int]:
    hdr_of = struct.Struct(">II" if big_endian else "<II").unpack_from
    n = len(buf)
    offs: list[int] = []
    while off + 12 <= n:
        btype, blen = hdr_of(buf, off)
        if (btype != PCAPNG_EPB or blen < 32 or blen % 4 or blen > MAX_BLOCK
                or off + blen > n):
            break
        offs.append(off)
        off += blen
    rows = np.empty((len(offs), 7), np.int64)
    if offs:
        idx = np.asarray(offs, dtype=np.int64)
        u4 = np.dtype(">u4" if big_endian else "<u4")
        rows[:, 0] = idx
        rows[:, 1:] = np.frombuffer(buf, np.uint8)[idx[:, None] + np.arange(4, 28)].view(u4)
    return rows, off
