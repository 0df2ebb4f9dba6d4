"""Frame Streams over a unix socket: the bidirectional handshake dnstap writers expect.

A resolver (Unbound, BIND, Knot Resolver) connects to our socket as the *writer*:

    writer -> READY  (the content types it can send)
    reader -> ACCEPT (the one we take: protobuf:dnstap.Dnstap)
    writer -> START  (that content type), then data frames ... then STOP
    reader -> FINISH, and both close

A *unidirectional* writer (Unbound with ``dnstap-bidirectional: no``) skips READY/ACCEPT and
FINISH: it begins with START and closes after STOP; it is read the same way and told nothing.

    listener = Listener(path)                 # refuses a path in use; removes a stale socket
    conn = listener.accept()
    stream = open_stream(conn, name)          # the handshake; raises Refused
    Scanner(eager=True).run([stream])         # START, the data frames, STOP: what a file holds

The container itself (frame lengths, control fields) is ``framestreams.py``'s; this module
only talks the protocol and hands the bytes on.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import socket
import stat
import struct

from analyzer import framestreams
from analyzer.errors import EdePcapError, Malformed

ACCEPT, START, STOP, READY, FINISH = 1, 2, 3, 4, 5
HANDSHAKE_TIMEOUT_S = 10.0  # a writer that connects and says nothing is dropped
RECV_BYTES = 1 << 16


class Refused(EdePcapError):
    """A writer's connection was closed during the handshake."""


class Probe(Refused):
    """The connection was closed before its first byte: a check that something listens
    (another ``watch`` starting on the same path does this), not a writer."""


class SocketInUse(EdePcapError):
    """The socket path cannot be listened on."""


def control_frame(kind: int, content_type: bytes | None = None) -> bytes:
    """Encode a control frame (escape, length, type, optional CONTENT_TYPE field)."""
    fields = b""
    if content_type is not None:
        fields = struct.pack(">II", framestreams.CONTENT_TYPE_FIELD, len(content_type)) \
            + content_type
    return struct.pack(">III", 0, 4 + len(fields), kind) + fields


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    parts, want = [], n
    while want:
        data = conn.recv(want)
        if not data:
            raise Refused("the writer closed the connection during the handshake")
        parts.append(data)
        want -= len(data)
    return b"".join(parts)


def _read_control(conn: socket.socket) -> tuple[framestreams.Control, bytes]:
    head = _recv_exactly(conn, 8)
    escape, length = struct.unpack(">II", head)
    if escape != 0:
        raise Refused("the writer sent data before the handshake (a unidirectional writer? "
                      "this socket speaks the bidirectional protocol)")
    if not 4 <= length <= framestreams.MAX_CONTROL:
        raise Refused(f"the writer sent a control frame of {length} bytes")
    raw = head + _recv_exactly(conn, length)
    try:
        control = framestreams.read_control(raw, 0)
    except Malformed as e:
        raise Refused(f"the writer sent a damaged control frame ({e.reason})") from None
    assert control is not None  # the whole frame is in raw
    return control, raw


def _shown(types: tuple[bytes, ...]) -> str:
    return ", ".join(repr(t[:60].decode("ascii", "replace")) for t in types) or "none"


def handshake(conn: socket.socket) -> tuple[bytes, bool]:
    """Perform the reader's side up to START; return the START frame's bytes and whether
    the writer is bidirectional (then it expects FINISH after its STOP).

    Raises ``Refused`` (the connection should then be closed) when the writer does not offer
    dnstap, or breaks the protocol, or is silent for ``HANDSHAKE_TIMEOUT_S``; ``Probe`` when
    it closes before sending anything.
    """
    conn.settimeout(HANDSHAKE_TIMEOUT_S)
    try:
        if not conn.recv(1, socket.MSG_PEEK):
            raise Probe("closed before its first byte")
        first, raw = _read_control(conn)
        bidirectional = first.kind != START
        if bidirectional:
            if first.kind != READY:
                raise Refused(f"the writer began with {first.name}, not READY or START")
            if framestreams.DNSTAP_CONTENT_TYPE not in first.content_types:
                raise Refused(f"the writer offers content types "
                              f"{_shown(first.content_types)}, not 'protobuf:dnstap.Dnstap'")
            conn.sendall(control_frame(ACCEPT, framestreams.DNSTAP_CONTENT_TYPE))
            start, raw = _read_control(conn)
            if start.kind != START:
                raise Refused(f"the writer sent {start.name} after ACCEPT, not START")
        else:
            start = first
        if start.content_types and framestreams.DNSTAP_CONTENT_TYPE not in start.content_types:
            raise Refused(f"the writer started {_shown(start.content_types)}, not dnstap")
    except TimeoutError:
        raise Refused(f"the writer was silent for {HANDSHAKE_TIMEOUT_S:g} s during the "
                      "handshake") from None
    conn.settimeout(None)  # a resolver may stay quiet for hours between messages
    return raw, bidirectional


class DataStream(io.RawIOBase):
    """The bytes of one connection after START, as a file would hold them, ending at STOP.

    Frames are followed only to find STOP (answered with FINISH if the writer is
    bidirectional); everything else is passed on unread. A data frame longer than
    ``framestreams.MAX_DATA_FRAME`` or a damaged control frame ends the stream right after
    its first bytes, so that the reader reports it.
    Memory: one ``recv`` and at most one control frame's bytes.
    """

    def __init__(self, conn: socket.socket, start: bytes, name: str,
                 bidirectional: bool = True):
        self._conn = conn
        self._name = name
        self._bidirectional = bidirectional  # a unidirectional writer is told nothing
        self._out = bytearray(start)
        self._held = b""   # the start of a frame header or control frame not yet whole
        self._skip = 0     # bytes of the current data frame still to pass on
        self._ended = False
        self.finished = False  # STOP arrived and FINISH was sent

    @property
    def name(self) -> str:
        return self._name

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:  # lets an eager reader ask whether more is waiting
        return self._conn.fileno()

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        while not self._out and not self._ended:
            self._fill()
        n = min(len(b), len(self._out))
        b[:n] = self._out[:n]
        del self._out[:n]
        return n

    def _fill(self) -> None:
        try:
            data = self._conn.recv(RECV_BYTES)
        except OSError:  # reset by the writer, or shut down by us on exit
            data = b""
        if not data:
            self._out += self._held  # a cut-off frame: the reader notes the cut
            self._held, self._ended = b"", True
            return
        buf = self._held + data if self._held else data
        pos, end = 0, len(buf)
        while pos < end:
            if self._skip:
                take = min(self._skip, end - pos)
                self._skip -= take
                pos += take
                continue
            if end - pos < 4:
                break
            (length,) = struct.unpack_from(">I", buf, pos)
            if length:
                pos += 4
                self._skip = length
                if length > framestreams.MAX_DATA_FRAME:
                    self._ended = True
                    break
                continue
            try:
                control = framestreams.read_control(buf, pos)
            except Malformed:
                self._ended = True
                pos = end
                break
            if control is None:
                break
            pos += control.size
            if control.kind == STOP:
                # Unbound closes right after its STOP without reading FINISH: EPIPE
                with contextlib.suppress(OSError):
                    if self._bidirectional:
                        self._conn.sendall(control_frame(FINISH))
                self.finished = self._ended = True
                break
        self._out += buf[:pos]
        self._held = b"" if self._ended else bytes(buf[pos:])


def open_stream(conn: socket.socket, name: str) -> io.BufferedReader:
    """Handshake with the writer on ``conn`` and return its dnstap stream (see
    ``DataStream``); raises ``Refused``."""
    start, bidirectional = handshake(conn)
    return io.BufferedReader(DataStream(conn, start, name, bidirectional), RECV_BYTES)


class Listener:
    """A listening unix socket at ``path``, removed again by ``close``."""

    def __init__(self, path: str, backlog: int = 16):
        self.path = path
        _clear(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.bind(path)
            self.sock.listen(backlog)
        except OSError as e:
            self.sock.close()
            raise SocketInUse(f"{path}: cannot listen ({e.strerror})") from None
        self._inode = os.stat(path).st_ino

    def accept(self) -> socket.socket:
        return self.sock.accept()[0]

    def close(self) -> None:
        """Stop listening and remove the socket file (if it is still ours)."""
        self.sock.close()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)


def _clear(path: str) -> None:
    """Remove a stale socket at ``path``; raise ``SocketInUse`` if something else is there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketInUse(f"{path} exists and is not a socket; remove it or choose another path")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError as e:
            if e.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise SocketInUse(f"{path}: cannot check the socket there ({e.strerror})") \
                    from None
        else:
            raise SocketInUse(f"{path} is in use: another process listens on it")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
