"""Pair responses with the queries that asked for them, within a bounded time window.

A query matches a response when the endpoints are reversed, the transport and DNS id are
the same, and the question bytes are identical (resolvers echo the question, 0x20 case
included). Queries are stored column-wise per chunk: a 64-bit key per query (a hash of
endpoints, transport and id, computed the same way in numpy and in Python), its time, and
its DNS message copied out of the chunk (about a seventh of the chunk's bytes), so that
millions of queries cost a few arrays, not a dict entry each, and no chunk outlives its turn.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from analyzer import speedups

DEFAULT_WINDOW_NS = 10 * 1_000_000_000
MAX_RETAINED_BYTES = 48 << 20  # query messages kept for question comparison
_MASK = (1 << 64) - 1
_MAX_CANDIDATES = 64  # same-key queries compared per response before giving up
_M1, _M2, _M3 = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9


def fold_ip(addr: bytes) -> int:
    """Return a 64-bit number standing for an IPv4 or IPv6 address."""
    if len(addr) == 4:
        return int.from_bytes(addr, "big")
    return (int.from_bytes(addr[:8], "big") * _M3 + int.from_bytes(addr[8:16], "big")) & _MASK


def own_stream(ep: Any) -> bool:
    """Whether a message's key marks it as TCP (``layers.Endpoint``).

    Captured TCP and UDP are separate flows, reassembled apart. A logged message (dnstap)
    names its exchange by endpoints and ID whatever its transport, and is matched column-wise
    like UDP (the kernels key every message without the TCP mark).
    """
    return ep.transport == "tcp" and ep.log is None


def query_key(client: bytes, server: bytes, cport: int, sport: int, dns_id: int,
              tcp: bool) -> int:
    """Return the key shared by a query and its response (client = the query's source)."""
    return mix_key(fold_ip(client), fold_ip(server), cport, sport, dns_id, tcp)


def mix_key(client: int, server: int, cport: int, sport: int, dns_id: int, tcp: bool) -> int:
    """``query_key`` for addresses already folded with ``fold_ip``."""
    mix = (cport << 32) | (sport << 16) | dns_id | (int(tcp) << 48)
    return (client * _M1 + server * _M2 + mix) & _MASK


def _gather_u64(a: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros(len(pos), np.uint64)
    for k in range(width):
        out = (out << np.uint64(8)) | a[pos + k].astype(np.uint64)
    return out


def fold_ip_np(a: np.ndarray, pos: np.ndarray, version: np.ndarray) -> np.ndarray:
    """Vectorised ``fold_ip`` for addresses stored at ``pos`` in the byte array ``a``."""
    v4 = _gather_u64(a, pos, 4)
    if not (version == 6).any():
        return v4
    hi = _gather_u64(a, pos, 8)
    lo = _gather_u64(a, pos + 8, 8)
    with np.errstate(over="ignore"):
        v6 = hi * np.uint64(_M3) + lo
    return np.where(version == 6, v6, v4)


def query_key_np(client: np.ndarray, server: np.ndarray, cport: np.ndarray,
                 sport: np.ndarray, dns_id: np.ndarray, tcp: bool = False) -> np.ndarray:
    """Vectorised ``query_key`` (arguments already folded / as integer arrays)."""
    mix = (cport.astype(np.uint64) << np.uint64(32)) | (sport.astype(np.uint64) << np.uint64(16)) \
        | dns_id.astype(np.uint64) | np.uint64(int(tcp) << 48)
    with np.errstate(over="ignore"):
        return client * np.uint64(_M1) + server * np.uint64(_M2) + mix


def query_keys(a: np.ndarray, l3: np.ndarray, version: np.ndarray, sport: np.ndarray,
               dport: np.ndarray, payload: np.ndarray, responses: bool = False) -> np.ndarray:
    """Return ``query_key`` for UDP messages located column-wise in the chunk bytes ``a``.

    Queries by default; with ``responses`` the client is the destination. The compiled
    kernel computes them in one pass when it was built; ``query_keys_numpy`` is its twin.
    """
    kernels = speedups.kernels
    if kernels is None:
        return query_keys_numpy(a, l3, version, sport, dport, payload, responses)
    out = np.empty(len(l3), np.uint64)
    kernels.query_keys(a, *(np.ascontiguousarray(c, np.int64)
                            for c in (l3, version, sport, dport, payload)), out, responses)
    return out


def query_keys_numpy(a: np.ndarray, l3: np.ndarray, version: np.ndarray, sport: np.ndarray,
                     dport: np.ndarray, payload: np.ndarray,
                     responses: bool = False) -> np.ndarray:
    src_at = np.where(version == 4, l3 + 12, l3 + 8)
    dst_at = np.where(version == 4, l3 + 16, l3 + 24)
    dns_id = (a[payload].astype(np.int64) << 8) | a[payload + 1]
    src, dst = fold_ip_np(a, src_at, version), fold_ip_np(a, dst_at, version)
    if responses:
        return query_key_np(dst, src, dport, sport, dns_id)
    return query_key_np(src, dst, sport, dport, dns_id)


def gather(a: bytes | np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> bytes:
    """Return the byte ranges ``a[s:s + n]`` one after another; a range outside ``a`` is a
    ValueError. The compiled kernel when it was built; ``gather_numpy`` is its twin."""
    starts = np.ascontiguousarray(starts, np.int64)
    lengths = np.ascontiguousarray(lengths, np.int64)
    kernels = speedups.kernels
    if kernels is None:
        return gather_numpy(np.frombuffer(a, np.uint8), starts, lengths)
    return kernels.gather(a, starts, lengths)  # type: ignore[no-any-return]


def gather_numpy(a: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> bytes:
    if ((starts < 0) | (lengths < 0) | (starts > len(a)) | (lengths > len(a) - starts)).any():
        raise ValueError("a range is outside the buffer")
    offsets = np.cumsum(lengths) - lengths
    return a[np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))].tobytes()


@dataclass(slots=True)
class _Batch:
    keys: np.ndarray   # uint64, sorted
    ts: np.ndarray     # int64, in key order
    start: np.ndarray  # int64 offset of each query's DNS message in ``buf``
    buf: bytes         # the messages, copied out of their chunk
    min_ts: int
    max_ts: int


class QueryTable:
    """Recent queries, dropped once older than the window or past the memory budget."""

    def __init__(self, window_ns: int = DEFAULT_WINDOW_NS,
                 max_bytes: int = MAX_RETAINED_BYTES):
        self.window_ns = window_ns
        self.max_bytes = max_bytes
        self._batches: deque[_Batch] = deque()
        self._held = 0
        self._fresh: list[_Batch] = []  # batches added since the last seal
        self._py_keys: list[int] = []
        self._py_ts: list[int] = []
        self._py_msgs: list[bytes] = []

    def add_many(self, buf: bytes, keys: np.ndarray, ts: np.ndarray, start: np.ndarray,
                 length: np.ndarray) -> None:
        """Add queries found column-wise in one chunk buffer: query ``i``'s DNS message is
        ``buf[start[i]:start[i] + length[i]]``. The messages are copied out, so the table
        never keeps a chunk alive."""
        if len(keys):
            order = np.lexsort((ts, keys))  # by key, then time: see ``match``
            length = np.asarray(length, np.int64)[order]
            held = gather(buf, np.asarray(start, np.int64)[order], length)
            self._push(_Batch(keys[order], ts[order], np.cumsum(length) - length, held,
                              int(ts.min()), int(ts.max())))

    def add(self, key: int, ts: int, msg: bytes) -> None:
        """Add one query found by the per-packet decoder (held until ``seal``)."""
        self._py_keys.append(key)
        self._py_ts.append(ts)
        self._py_msgs.append(msg)

    def seal(self) -> None:
        """Make the queries added one by one visible to ``match`` and drop stale batches."""
        if self._py_keys:
            lengths = np.array([len(m) for m in self._py_msgs], np.int64)
            self.add_many(b"".join(self._py_msgs), np.array(self._py_keys, np.uint64),
                          np.array(self._py_ts, np.int64), np.cumsum(lengths) - lengths,
                          lengths)
            self._py_keys, self._py_ts, self._py_msgs = [], [], []
        if self._fresh:
            # The earliest response of this chunk may still need queries from the window
            # before it, so keep every batch that reaches into that window.
            oldest = min(b.min_ts for b in self._fresh)
            self._fresh = []
            while len(self._batches) > 1 and (
                    self._batches[0].max_ts < oldest - self.window_ns
                    or self._held > self.max_bytes):
                self._held -= len(self._batches.popleft().buf)

    def _push(self, batch: _Batch) -> None:
        self._batches.append(batch)
        self._fresh.append(batch)
        self._held += len(batch.buf)

    def match(self, keys: np.ndarray, ts: np.ndarray, questions: list[bytes]) -> list[int | None]:
        """Return, per response, the time of the latest matching query, or None."""
        best: list[int | None] = [None] * len(keys)
        if not len(keys):
            return best
        for batch in self._batches:
            lo = np.searchsorted(batch.keys, keys, side="left")
            hi = np.searchsorted(batch.keys, keys, side="right")
            hits = np.flatnonzero(hi > lo)
            if not len(hits):
                continue
            # Most keys have one query in a batch: read those columns as lists at once.
            first_ts = batch.ts[lo[hits]].tolist()
            first_start = batch.start[lo[hits]].tolist()
            for i, start, stop, t_first, s_first in zip(hits.tolist(), lo[hits].tolist(),
                                                        hi[hits].tolist(), first_ts,
                                                        first_start, strict=True):
                t_resp, question = int(ts[i]), questions[i]
                if stop - start == 1:
                    if t_resp - self.window_ns <= t_first <= t_resp and (
                            best[i] is None or t_first > best[i]) and (  # type: ignore[operator]
                            batch.buf[s_first + 12:s_first + 12 + len(question)] == question):
                        best[i] = t_first
                    continue
                # Queries with this key are in time order: start from the latest one not
                # after the response and walk back through the window, a bounded number of
                # steps, so identical repeated exchanges cannot make this quadratic.
                j = start + int(np.searchsorted(batch.ts[start:stop], t_resp, side="right")) - 1
                for _ in range(_MAX_CANDIDATES):
                    if j < start:
                        break
                    t_q = int(batch.ts[j])
                    if t_q < t_resp - self.window_ns or (best[i] is not None
                                                          and t_q <= best[i]):  # type: ignore[operator]
                        break
                    s = int(batch.start[j]) + 12
                    if batch.buf[s:s + len(question)] == question:
                        best[i] = t_q
                        break
                    j -= 1
        return best
