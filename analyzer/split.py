"""Cut one large pcap file into parts that separate processes (or Dask workers) can read.

Records chain by their lengths, so a part cannot simply start at a byte offset: we look
near it for a position where several consecutive records have plausible headers, and
start there. That guess is checked after the fact: the part before must end exactly where
the next one starts (``CaptureReader.end_position``); if not, the caller reads the file
whole. Each part also gets a lead-in, a stretch before its start that is read only to
rebuild state (recent queries for latency, open TCP streams, pending fragments), so the
merged result equals a single pass.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from analyzer.capture import MAX_RECORD

MIN_PART_BYTES = 32 << 20      # smaller files are not worth a second process
CHAIN = 16                     # consecutive plausible records that make a boundary
LEAD_IN_SECONDS = 12           # covers the query-matching window (10 s) with margin
MIN_LEAD_IN, MAX_LEAD_IN = 1 << 20, 64 << 20
_SEARCH = 4 << 20              # how far past the cut to look for a boundary

_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 1_000_000), b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
           b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000), b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000)}


@dataclass(frozen=True, slots=True)
class Part:
    """Bytes ``start``..``stop`` of a pcap file, with state rebuilt from ``lead_in``."""

    index: int
    lead_in: int
    start: int
    stop: int


def plan(path: str | Path, parts: int) -> list[Part] | None:
    """Return how to cut a plain (uncompressed) pcap file into ``parts``, or None."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(24 + 16)
            if len(head) < 40 or head[:4] not in _MAGICS:
                return None
            endian, frac_limit = _MAGICS[head[:4]]
            first_sec = struct.unpack_from(endian + "I", head, 24)[0]
            parts = min(parts, size // MIN_PART_BYTES)
            if parts < 2:
                return None
            starts = [24]
            for k in range(1, parts):
                cut = find_boundary(f, size * k // parts, endian, frac_limit, first_sec)
                if cut is None or cut <= starts[-1]:
                    return None
                starts.append(cut)
            result = []
            for k, start in enumerate(starts):
                stop = starts[k + 1] if k + 1 < len(starts) else size
                lead_in = start
                if k:
                    lead_in = _lead_in(f, start, starts[k - 1], endian, frac_limit, first_sec)
                result.append(Part(k, lead_in, start, stop))
            return result
    except OSError:
        return None


def _lead_in(f, start: int, previous: int, endian: str, frac_limit: int,  # type: ignore[no-untyped-def]
             first_sec: int) -> int:
    """Return a record boundary about LEAD_IN_SECONDS of traffic before ``start``."""
    f.seek(start)
    (sec,) = struct.unpack(endian + "I", f.read(4))
    elapsed = max(sec - first_sec, 1)
    want = (start - 24) * LEAD_IN_SECONDS // elapsed
    want = max(MIN_LEAD_IN, min(MAX_LEAD_IN, want))
    if start - want <= previous:
        return previous
    cut = find_boundary(f, start - want, endian, frac_limit, first_sec)
    return cut if cut is not None and previous <= cut <= start else previous


def find_boundary(f, near: int, endian: str, frac_limit: int,  # type: ignore[no-untyped-def]
                  first_sec: int) -> int | None:
    """Return the first offset at or after ``near`` where CHAIN records look valid."""
    f.seek(near)
    window = f.read(_SEARCH + CHAIN * (MAX_RECORD + 16))
    header = struct.Struct(endian + "IIII").unpack_from
    limit = len(window) - 16
    for pos in range(0, min(_SEARCH, max(limit, 0))):
        at, ok = pos, 0
        while ok < CHAIN and at <= limit:
            sec, frac, incl, orig = header(window, at)
            if not (frac < frac_limit and incl <= orig and 0 < incl <= MAX_RECORD
                    and first_sec - 86400 <= sec <= first_sec + 400 * 86400):
                break
            at += 16 + incl
            ok += 1
        if ok == CHAIN:
            return near + pos
    return None
