"""IP fragment reassembly and DNS-over-TCP stream reassembly, with bounded state.

dpkt does neither. Both keep state per flow, so both have hard caps (flows, bytes per flow,
age); what a cap throws away is counted in ``evicted`` by reason, never silently lost.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable

MAX_FRAGMENT_DATAGRAMS = 4096
MAX_FRAGMENTS_PER_DATAGRAM = 256  # real fragmentation of 64 KiB at the smallest MTU needs ~50
MAX_FRAGMENT_BYTES = 64 << 20  # all pending datagrams together
MAX_DATAGRAM = 65535 + 40      # the largest IPv4/IPv6 payload, plus slack for jumbo headers
FRAGMENT_TIMEOUT_NS = 30 * 1_000_000_000  # as Linux' ipfrag_time
MAX_TCP_STREAMS = 16384
MAX_STREAM_BUFFER = 65537 * 2  # two DNS messages of maximum size (RFC 1035 §4.2.2 framing)
MAX_OUT_OF_ORDER = 64          # segments held per stream while waiting for a gap to fill
MAX_TCP_BYTES = 64 << 20       # all streams together: past it, the oldest streams go
TCP_IDLE_NS = 60 * 1_000_000_000  # a stream silent this long is forgotten (counted)
TCP_FAR = 1 << 20              # a sequence jump this large is another connection
TCP_GAP_NS = 1_000_000_000     # reordering resolves in milliseconds; a gap this old won't


class IpReassembler:
    """Collect fragments until a datagram is whole (RFC 791 §3.2, RFC 8200 §4.5)."""

    def __init__(self, evicted: Counter[str]):
        # key -> [first_ts, bytes_held, total_length or -1, {offset: data}]
        # Oldest first (OrderedDict: finding the first key stays O(1) after deletions).
        self._pending: OrderedDict[tuple[object, ...], list] = OrderedDict()  # type: ignore[type-arg]
        self._evicted = evicted
        self._bytes = 0  # bytes held by all pending datagrams

    def __len__(self) -> int:
        return len(self._pending)

    def feed(self, key: tuple[object, ...], offset: int, more: bool, data: bytes,
             ts: int) -> bytes | None:
        """Add one fragment; return the reassembled payload when it completes a datagram."""
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= MAX_FRAGMENT_DATAGRAMS:
                self._make_room(ts)
            entry = self._pending[key] = [ts, 0, -1, {}]
        elif ts - entry[0] > FRAGMENT_TIMEOUT_NS:
            self._evicted["ip-fragments-expired"] += 1
            self._bytes -= entry[1]
            entry[:] = [ts, 0, -1, {}]
            self._pending.move_to_end(key)
        pieces: dict[int, bytes] = entry[3]
        if offset + len(data) > MAX_DATAGRAM or entry[1] + len(data) > 2 * MAX_DATAGRAM:
            self._forget(key)
            self._evicted["ip-fragments-oversized"] += 1
            return None
        if offset not in pieces:
            if len(pieces) >= MAX_FRAGMENTS_PER_DATAGRAM:
                self._forget(key)
                self._evicted["ip-fragments-too-many"] += 1
                return None
            pieces[offset] = data
            entry[1] += len(data)
            self._bytes += len(data)
            while self._bytes > MAX_FRAGMENT_BYTES and len(self._pending) > 1:
                self._forget(next(iter(self._pending)))
                self._evicted["ip-fragments-evicted"] += 1
        if not more:
            entry[2] = offset + len(data)
        total = entry[2]
        # Cheap test first: without overlaps, whole means the bytes held add up to the total.
        if total < 0 or entry[1] < total:
            return None
        # Whole when the pieces, taken in order, cover 0..total without a gap.
        covered = 0
        for start in sorted(pieces):
            if start > covered:
                return None
            covered = max(covered, start + len(pieces[start]))
        if covered < total:
            return None
        out = bytearray(total)
        for start in sorted(pieces):
            piece = pieces[start][: max(0, total - start)]
            out[start:start + len(piece)] = piece
        self._forget(key)
        return bytes(out)

    def _forget(self, key: tuple[object, ...]) -> None:
        entry = self._pending.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]

    def _make_room(self, now: int) -> None:
        """Drop expired datagrams from the oldest end, else the oldest one: O(1) amortised."""
        pending = self._pending
        while pending:
            oldest = next(iter(pending))
            if now - pending[oldest][0] <= FRAGMENT_TIMEOUT_NS:
                break
            self._forget(oldest)
            self._evicted["ip-fragments-expired"] += 1
        if len(pending) >= MAX_FRAGMENT_DATAGRAMS:
            self._forget(next(iter(pending)))
            self._evicted["ip-fragments-evicted"] += 1


class _Stream:
    __slots__ = ("next_seq", "buf", "ooo", "synced", "qr", "held", "last_ts", "gap_since")

    def __init__(self, next_seq: int, synced: bool, qr: int | None = None):
        self.next_seq = next_seq
        self.last_ts = 0    # time of the stream's latest segment (for idle expiry)
        self.gap_since = 0  # time the oldest held segment arrived
        self.held = 0  # bytes buffered (partial message and held segments), for the budget
        self.qr = qr  # the QR bit messages in this direction must have, when known
        self.buf = bytearray()
        self.ooo: dict[int, tuple[bytes, Callable[[bytes], str]]] = {}
        self.synced = synced


# What a TCP segment amounted to, when it completed no DNS message.
TCP_NO_PAYLOAD = "tcp-no-payload"
TCP_RETRANSMISSION = "tcp-retransmission"
TCP_SEGMENT = "tcp-segment"          # data kept, waiting for the rest of a message
TCP_OUT_OF_ORDER = "tcp-out-of-order"  # data ahead of a gap, held until the gap fills
TCP_UNSYNCED = "tcp-unsynced"        # data after an unrecoverable gap, dropped


class TcpReassembler:
    """Turn TCP segments into DNS messages using the 2-byte length framing (RFC 1035 §4.2.2).

    Handles several messages per segment, messages across segments, retransmissions and
    overlaps, out-of-order segments, and streams whose start (SYN) was not captured.
    """

    def __init__(self, evicted: Counter[str]):
        # Oldest first, so eviction is O(1) (a plain dict's first key gets slow to find
        # after many deletions at its front).
        self._streams: OrderedDict[tuple[object, ...], _Stream] = OrderedDict()
        self._evicted = evicted
        self._bytes = 0  # sum of every stream's ``held``
        self._expired_at = 0  # capture time of the last idle check

    def _drop(self, key: tuple[object, ...]) -> _Stream | None:
        stream = self._streams.pop(key, None)
        if stream is not None:
            self._bytes -= stream.held
        return stream

    def _account(self, stream: _Stream) -> None:
        """Update the byte budget after ``stream`` changed; evict the oldest when over it."""
        held = len(stream.buf) + (sum(len(d) for d, _ in stream.ooo.values())
                                  if stream.ooo else 0)
        self._bytes += held - stream.held
        stream.held = held
        while self._bytes > MAX_TCP_BYTES and self._streams:
            _, oldest = self._streams.popitem(last=False)
            self._bytes -= oldest.held
            self._evicted["tcp-streams-evicted"] += 1

    def __len__(self) -> int:
        return len(self._streams)

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def stream_sizes(self) -> list[int]:
        """Bytes each stream holds (partial message and held segments), oldest first."""
        return [len(s.buf) + sum(len(d) for d, _ in s.ooo.values())
                for s in self._streams.values()]

    def _touch(self, key: tuple[object, ...], stream: _Stream, ts: int) -> None:
        """Note activity on ``stream`` and forget streams idle for TCP_IDLE_NS.

        Streams stay ordered by last activity, so idle ones are found at the front; the
        front is looked at once per second of capture time, not on every segment.
        """
        stream.last_ts = ts
        self._streams.move_to_end(key)
        if ts - self._expired_at < 1_000_000_000:
            return
        self._expired_at = ts
        while self._streams:
            oldest_key, oldest = next(iter(self._streams.items()))
            if ts - oldest.last_ts <= TCP_IDLE_NS:
                break
            self._drop(oldest_key)
            # a stream that held nothing (a connection closed or reset the other way, or
            # left open) lost nothing; one holding a partial message or segments lost them
            lost = bool(oldest.buf or oldest.ooo)
            if oldest.ooo:
                self.flush_gap(oldest)
            self._evicted["tcp-streams-expired" if lost else "tcp-streams-idle"] += 1

    def control(self, key: tuple[object, ...], seq: int, flags: int, ts: int = 0) -> str:
        """Handle a segment without data: SYN opens a stream, FIN/RST close it."""
        if flags & 0x02:
            self._touch(key, self._new(key, (seq + 1) & 0xFFFFFFFF, synced=True), ts)
        elif flags & 0x05:
            stream = self._drop(key)
            if stream is not None and stream.ooo:
                self.flush_gap(stream)
        return TCP_NO_PAYLOAD

    def feed(self, key: tuple[object, ...], seq: int, flags: int, data: bytes,
             on_message: Callable[[bytes], str], qr: int | None = None, ts: int = 0) -> str:
        """Add one segment; call ``on_message`` per completed message; return the category.

        The category is that of the last message the segment completed, or a ``TCP_*`` slug.
        ``qr`` is the QR bit that messages in this direction carry (1 from the server's
        port), used to recognise where a message starts after a gap.
        """
        syn, fin, rst = flags & 0x02, flags & 0x01, flags & 0x04
        stream = self._streams.get(key)
        if syn:
            stream = self._new(key, (seq + 1) & 0xFFFFFFFF, synced=True)
            stream.qr = qr
            self._touch(key, stream, ts)
            if not data:
                return TCP_NO_PAYLOAD
            seq = (seq + 1) & 0xFFFFFFFF
        if not data:
            if (fin or rst) and stream is not None:
                self._drop(key)
                if stream.ooo:
                    self.flush_gap(stream)
            return TCP_NO_PAYLOAD
        if stream is None:
            # Captured mid-stream: assume the segment starts on a message boundary, and check
            # the framing looks like DNS before trusting it.
            stream = self._new(key, seq, synced=_looks_framed(data, qr))
            stream.qr = qr
            self._touch(key, stream, ts)
            if not stream.synced:
                stream.next_seq = (seq + len(data)) & 0xFFFFFFFF
                return TCP_UNSYNCED
        else:
            self._touch(key, stream, ts)
        if stream.ooo and ts - stream.gap_since > TCP_GAP_NS:
            self.flush_gap(stream)  # the missing data is not coming: resume after the gap
        category = self._add(stream, seq, data, on_message, ts)
        if fin or rst:
            if stream.ooo:
                self.flush_gap(stream)
            self._drop(key)
        elif key in self._streams:
            self._account(stream)
        return category

    def _new(self, key: tuple[object, ...], next_seq: int, synced: bool) -> _Stream:
        self._drop(key)
        if len(self._streams) >= MAX_TCP_STREAMS:
            _, oldest = self._streams.popitem(last=False)
            self._bytes -= oldest.held
            self._evicted["tcp-streams-evicted"] += 1
        stream = self._streams[key] = _Stream(next_seq, synced)
        return stream

    def _add(self, stream: _Stream, seq: int, data: bytes,
             on_message: Callable[[bytes], str], ts: int = 0) -> str:
        ahead = (seq - stream.next_seq) & 0xFFFFFFFF
        if min(ahead, 0x100000000 - ahead) > TCP_FAR and _looks_framed(data, stream.qr):
            # Far from anything this stream could send next, and a message starts here: a
            # new connection on the same ports whose SYN was not captured. Start over.
            if stream.ooo:
                self.flush_gap(stream)
            stream.buf.clear()
            stream.next_seq, stream.synced = seq, True
            self._evicted["tcp-streams-restarted"] += 1
            return self._append(stream, data, on_message)
        if ahead >= 0x80000000:  # starts before what we have: retransmission or overlap
            behind = 0x100000000 - ahead
            if behind >= len(data):
                return TCP_RETRANSMISSION
            data = data[behind:]
            ahead = 0
        if ahead:
            # Data after a gap: hold it. Reordered segments fill the gap within milliseconds;
            # if it is still open a second later (or at FIN, or at the end of the capture,
            # or when too much is held), the missing segment was not captured and we resume
            # at the held data, as Wireshark does.
            if not stream.ooo:
                stream.gap_since = ts
            stream.ooo.setdefault(seq, (data, on_message))
            if len(stream.ooo) < MAX_OUT_OF_ORDER and sum(
                    len(d) for d, _ in stream.ooo.values()) <= MAX_STREAM_BUFFER:
                return TCP_OUT_OF_ORDER
            return self.flush_gap(stream)
        return self._append(stream, data, on_message)

    def _append(self, stream: _Stream, data: bytes, on_message: Callable[[bytes], str]) -> str:
        """Add in-order data, then any held segments that now follow; deliver messages."""
        if not stream.synced:
            if not _looks_framed(data, stream.qr):
                stream.next_seq = (stream.next_seq + len(data)) & 0xFFFFFFFF
                return TCP_UNSYNCED
            stream.synced = True
        stream.buf += data
        stream.next_seq = (stream.next_seq + len(data)) & 0xFFFFFFFF
        category = self._deliver(stream, on_message)
        while stream.ooo:
            held = stream.ooo.pop(stream.next_seq, None)
            if held is None:
                # Held segments that start before next_seq overlap what we have: trim them.
                early = [s for s in stream.ooo
                         if (s - stream.next_seq) & 0xFFFFFFFF >= 0x80000000]
                if not early:
                    break
                for s in early:
                    part, cb = stream.ooo.pop(s)
                    cut = (stream.next_seq - s) & 0xFFFFFFFF
                    if cut < len(part):
                        stream.ooo.setdefault(stream.next_seq, (part[cut:], cb))
                continue
            part, _ = held
            stream.buf += part
            stream.next_seq = (stream.next_seq + len(part)) & 0xFFFFFFFF
            # Messages completed now were completed by the segment that filled the gap.
            category = self._deliver(stream, on_message)
        return category

    def _deliver(self, stream: _Stream, on_message: Callable[[bytes], str]) -> str:
        category = TCP_SEGMENT
        buf = stream.buf
        pos = 0
        while len(buf) - pos >= 2:
            size = (buf[pos] << 8) | buf[pos + 1]
            if len(buf) - pos - 2 < size:
                break
            category = on_message(bytes(buf[pos + 2:pos + 2 + size]))
            pos += 2 + size
        if pos:
            del buf[:pos]
        if len(buf) > MAX_STREAM_BUFFER:  # cannot happen with honest framing
            self._evicted["tcp-buffer-overflow"] += 1
            buf.clear()
            stream.synced = False
        return category

    def flush_gap(self, stream: _Stream) -> str:
        """Give up on the missing data: drop the partial message, resume at held segments."""
        category = TCP_OUT_OF_ORDER
        while stream.ooo:
            self._evicted["tcp-gaps-skipped"] += 1
            first = min(stream.ooo, key=lambda s: (s - stream.next_seq) & 0xFFFFFFFF)
            stream.buf.clear()
            stream.synced = False
            stream.next_seq = first
            data, cb = stream.ooo.pop(first)
            result = self._append(stream, data, cb)
            if result not in (TCP_UNSYNCED, TCP_SEGMENT):
                category = result
        return category

    def flush(self) -> None:
        """At the end of a capture, deliver what held segments still hold."""
        for stream in self._streams.values():
            if stream.ooo:
                self.flush_gap(stream)
        self._streams.clear()
        self._bytes = 0


def _looks_framed(data: bytes, qr: int | None = None) -> bool:
    """Return whether ``data`` plausibly starts with a length-prefixed DNS message.

    A length of at least a header and a question, one question, a standard opcode and,
    when the direction is known, the QR bit it must have (RFC 1035 §4.1.1, §4.2.2).
    """
    if len(data) < 2:
        return False
    size = (data[0] << 8) | data[1]
    if size < 17:
        return False
    if len(data) >= 8:
        qdcount = (data[6] << 8) | data[7]
        opcode = (data[4] >> 3) & 0xF
        if qdcount != 1 or opcode not in (0, 4, 5):
            return False
        if qr is not None and data[4] >> 7 != qr:
            return False
    return True


def tcp_reassembler(evicted: Counter[str]) -> TcpReassembler:
    """The stream reassembler: the compiled twin when it was built, else ``TcpReassembler``.

    Both keep the same state and give the same answers (tests/test_speedups.py); the limits
    above are handed to the compiled one here, so they are stated once.
    """
    from analyzer import speedups

    if speedups.kernels is None:
        return TcpReassembler(evicted)
    return speedups.kernels.TcpStreams(  # type: ignore[no-any-return]
        evicted, MAX_TCP_STREAMS, MAX_TCP_BYTES, MAX_STREAM_BUFFER, MAX_OUT_OF_ORDER,
        TCP_IDLE_NS, TCP_GAP_NS, TCP_FAR)
