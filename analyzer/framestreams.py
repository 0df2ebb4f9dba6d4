"""Frame Streams: the container dnstap is written in (fstrm's "frame streams" protocol).

A file is a run of frames, each a 32-bit big-endian length then that many bytes. A length
of 0 escapes a *control* frame: its own 32-bit length, a 32-bit type (START, STOP, and on
sockets READY, ACCEPT, FINISH) and fields, of which CONTENT_TYPE says what the data frames
hold ("protobuf:dnstap.Dnstap"). Files start with START and end with STOP; concatenated or
rotated files repeat the pair, and a file written without its START still holds data frames.

This module knows only the framing. What a data frame holds is ``dnstap.py``'s job.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analyzer.errors import CaptureError, Malformed

if TYPE_CHECKING:
    from analyzer.capture import CaptureReader

PAD = 64  # zero bytes after the last message, as capture chunks have (capture.PAD)
# Bytes of log read per chunk. Larger than a capture's chunk: the per-chunk work (a few
# dozen numpy calls, two passes) is spread over more messages, while a chunk of 4 MiB
# still holds only ~20k messages' rows.
LOG_CHUNK_BYTES = 4 << 20

DNSTAP_CONTENT_TYPE = b"protobuf:dnstap.Dnstap"
MAX_CONTROL = 512        # fstrm's FSTRM_CONTROL_FRAME_LENGTH_MAX
MAX_DATA_FRAME = 1 << 20  # a DNS message is at most 64 KiB; a dnstap frame a few more
CONTENT_TYPE_FIELD = 1

CONTROL_NAMES = {1: "ACCEPT", 2: "START", 3: "STOP", 4: "READY", 5: "FINISH"}
START, STOP = 2, 3


@dataclass(frozen=True, slots=True)
class Control:
    """One control frame: its type and the content types it names."""

    kind: int
    content_types: tuple[bytes, ...]
    size: int  # bytes it took in the stream, escape and lengths included

    @property
    def name(self) -> str:
        return CONTROL_NAMES.get(self.kind, f"control-{self.kind}")


def read_control(buf: bytes, pos: int) -> Control | None:
    """Decode the control frame at ``pos`` (at its 0 escape); None if ``buf`` ends first.

    Raises ``Malformed`` for a control frame that lies about its length or fields.
    """
    if pos + 8 > len(buf):
        return None
    escape, length = struct.unpack_from(">II", buf, pos)
    if escape != 0:
        raise Malformed("not-a-control-frame")
    if length < 4 or length > MAX_CONTROL:
        raise Malformed("control-frame-length")
    end = pos + 8 + length
    if end > len(buf):
        return None
    (kind,) = struct.unpack_from(">I", buf, pos + 8)
    at = pos + 12
    types = []
    while at < end:
        if at + 8 > end:
            raise Malformed("control-field-length")
        field, size = struct.unpack_from(">II", buf, at)
        if size > end - at - 8:
            raise Malformed("control-field-length")
        if field == CONTENT_TYPE_FIELD:
            types.append(bytes(buf[at + 8:at + 8 + size]))
        at += 8 + size
    return Control(kind, tuple(types), 8 + length)


def starts_frame_stream(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) opens a Frame Streams control frame."""
    return len(head) >= 12 and head[:4] == b"\0\0\0\0" and \
        4 <= struct.unpack_from(">I", head, 4)[0] <= MAX_CONTROL and \
        struct.unpack_from(">I", head, 8)[0] in CONTROL_NAMES


@dataclass(slots=True)
class LogChunk:
    """A run of dnstap data frames, decoded: the source stage's messages from a log.

    ``buf`` holds each message's address block and bytes (``dnstap`` module docstring);
    ``columns`` the ``dnstap.COLUMNS`` (one row each, contiguous: ``columns[dnstap.C_TS]``),
    one value per data frame, frame numbers counting from ``first_frame``; ``servers`` the
    (identity, version) pairs the ``server`` column indexes.
    """

    buf: bytes
    arr: np.ndarray
    columns: np.ndarray
    first_frame: int
    servers: list[tuple[str | None, str | None]]
    warm: int = 0  # leading frames read only to warm up state (``CaptureReader`` skip)

    def __len__(self) -> int:
        return self.columns.shape[1]


def log_chunks(reader: CaptureReader, head: bytes) -> Iterator[LogChunk]:
    """Yield the dnstap data frames of ``reader``'s stream, ``head`` being its first bytes.

    Control frames are checked (a START naming another content type is an error) and
    skipped; START/STOP blocks may repeat. A frame cut off by the end of the file ends the
    stream with the cut noted (``truncated_at``); a frame claiming more than
    ``MAX_DATA_FRAME`` bytes stops it with a ``CaptureError`` after the frames before it.
    """
    from analyzer import dnstap

    info = reader.info
    info.file_format = "dnstap"
    servers: list[tuple[bytes | None, bytes | None]] = []
    names: list[tuple[str | None, str | None]] = []
    frame = 1
    buf, base = head, reader._pos - len(head)
    head_first = reader.eager  # a live stream may have sent no more yet: walk the head first
    while True:
        data = b"" if head_first else reader._read(max(reader.chunk_bytes, LOG_CHUNK_BYTES))
        if data:
            buf = b"".join((buf, data))
        pos = 0
        while True:
            rows, out, pos, why = dnstap.walk(buf, pos, servers)
            if len(rows):
                if len(names) < len(servers):
                    names = dnstap.server_names(servers)
                yield _emit(reader, rows, out, frame, names)
                frame += len(rows)
            if why == dnstap.STOP_CONTROL:
                try:
                    control = read_control(buf, pos)
                except Malformed as e:
                    raise CaptureError(reader.name, f"damaged Frame Streams control frame "
                                       f"({e.reason})", base + pos, "the frames before it "
                                       "were read") from None
                if control is None:
                    break  # its bytes are still to come
                if control.kind == START and control.content_types and \
                        DNSTAP_CONTENT_TYPE not in control.content_types:
                    shown = control.content_types[0][:60].decode("ascii", "replace")
                    raise CaptureError(reader.name, f"is a Frame Streams file of {shown!r}, "
                                       "not dnstap", base + pos)
                pos += control.size
                continue
            if why == dnstap.STOP_TOO_LONG:
                claimed = struct.unpack_from(">I", buf, pos)[0]
                raise CaptureError(reader.name, f"dnstap frame {frame} claims {claimed} bytes",
                                   base + pos, "the file is corrupt from here on; the frames "
                                   "before it were read")
            break
        buf, base = buf[pos:], base + pos
        if not data and not head_first:
            if buf:
                reader._truncated(base)
            return
        head_first = False


def _emit(reader: CaptureReader, rows: np.ndarray, out: bytes, frame: int,
          names: list[tuple[str | None, str | None]]) -> LogChunk:
    from analyzer import dnstap

    buf = out + bytes(PAD)
    columns = np.ascontiguousarray(rows.T)  # one pass; every column is read many times
    warm = reader.take_skipped(len(rows))
    chunk = LogChunk(buf, np.frombuffer(buf, np.uint8), columns, frame, names, warm)
    info = reader.info
    info.packets += len(rows) - warm
    info.bytes_read = reader._pos
    ts = columns[dnstap.C_TS]
    ts = ts[ts > 0]  # frames without a message have no time
    if len(ts):
        first, last = int(ts.min()), int(ts.max())
        info.first_ts_ns = first if info.first_ts_ns is None else min(info.first_ts_ns, first)
        info.last_ts_ns = last if info.last_ts_ns is None else max(info.last_ts_ns, last)
    return chunk
