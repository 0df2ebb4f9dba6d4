"""dnstap data frames -> DNS messages with their endpoints, time and logging server.

A dnstap data frame is a protobuf ``dnstap.Dnstap`` (https://dnstap.info, dnstap.proto):
the server's ``identity`` and ``version``, and a ``Message`` with its type (CLIENT_QUERY,
RESOLVER_RESPONSE...), socket family and protocol, query and response addresses and ports,
query and response times, and the DNS message itself, verbatim.

The protobuf is read by hand: eight field numbers, four wire types and a varint, each read
bounds-checked as the DNS decoder's are, at about 1,200 instructions a frame in the kernel
(``_dnstap.c``, ``dnstap_frames``; callgrind). The protobuf package would add a dependency
and build a Python object per message, and reading its fields back costs more than the whole
budget of a microsecond per message that the target of a million messages a second
allows. ``walk_py`` is the kernel's twin and gives the same columns.

The output is the source stage's form of a DNS message: a buffer holding, per message, a
40-byte address block laid out as the IP header's addresses are (IPv4: source at +12,
destination at +16; IPv6: +8 and +24) followed by the message, and one row of numbers per
frame (``COLUMNS``). The kernels that read addresses out of IP headers read them out of
logs the same way.

Direction follows the packet that the message was: a response goes from the
``response_address`` (the server that answered) to the ``query_address``; a query the
other way.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from analyzer.framestreams import MAX_DATA_FRAME

# dnstap.proto's Message.Type
MESSAGE_TYPES = {
    1: "AUTH_QUERY", 2: "AUTH_RESPONSE", 3: "RESOLVER_QUERY", 4: "RESOLVER_RESPONSE",
    5: "CLIENT_QUERY", 6: "CLIENT_RESPONSE", 7: "FORWARDER_QUERY", 8: "FORWARDER_RESPONSE",
    9: "STUB_QUERY", 10: "STUB_RESPONSE", 11: "TOOL_QUERY", 12: "TOOL_RESPONSE",
    13: "UPDATE_QUERY", 14: "UPDATE_RESPONSE",
}
# Responses this server received while resolving for its clients: the upstream view.
UPSTREAM_TYPES = frozenset({"RESOLVER_RESPONSE", "FORWARDER_RESPONSE"})
UPSTREAM_TYPE_NUMBERS = frozenset(k for k, v in MESSAGE_TYPES.items() if v in UPSTREAM_TYPES)
# dnstap.proto's SocketProtocol, as the frame's transport column names them
TRANSPORTS = {1: "udp", 2: "tcp", 3: "dot", 4: "doh", 5: "dnscrypt-udp", 6: "dnscrypt-tcp",
              7: "doq"}
ABSENT_TRANSPORT = "unknown"  # the message did not say (older servers, some DoH paths)
UDP, NO_PROTOCOL = 1, 0

# One row per data frame, int64 each (the kernel's order).
COLUMNS = ("cat", "type", "protocol", "l3", "ip_version", "sport", "dport", "ts", "query_ts",
           "payload", "payload_len", "server", "hash", "flags")
(C_CAT, C_TYPE, C_PROTOCOL, C_L3, C_VERSION, C_SPORT, C_DPORT, C_TS, C_QUERY_TS, C_PAYLOAD,
 C_PAYLOAD_LEN, C_SERVER, C_HASH, C_FLAGS) = range(len(COLUMNS))
ADDRESS_BLOCK = 40

# C_FLAGS bits: what the message left out, counted as problems (not as skipped frames)
FLAG_NO_ADDRESS, FLAG_NO_PROTOCOL, FLAG_BAD_NSEC, FLAG_OTHER_TIME = 1, 2, 4, 8
FLAG_PROBLEMS = {FLAG_NO_ADDRESS: "dnstap-address-absent",
                 FLAG_NO_PROTOCOL: "dnstap-protocol-absent",
                 FLAG_BAD_NSEC: "dnstap-nanoseconds-out-of-range",
                 FLAG_OTHER_TIME: "dnstap-time-from-other-side"}

# The packet classifier's verdicts, shared (fastpath imports the capture module, which
# imports this one; tests/test_dnstap.py holds the numbers equal): SLOW = decode this
# message in Python, QUERY, RESPONSE (cannot hold an EDE), CANDIDATE (may).
SLOW, QUERY, RESPONSE, CANDIDATE = 0, 1, 2, 3
# Categories of frames that carry no usable DNS message.
CATEGORY_NAMES = {
    20: "malformed-dnstap-varint",
    21: "malformed-dnstap-length",
    22: "malformed-dnstap-wire-type",
    23: "dnstap-not-a-message",
    24: "dnstap-unknown-type",
    25: "dnstap-no-dns-message",
    26: "dnstap-no-time",
    27: "malformed-dns-short-header",
    28: "dnstap-duplicate",
}
(VARINT_BAD, LENGTH_BAD, WIRE_TYPE_BAD, NOT_A_MESSAGE, UNKNOWN_TYPE, NO_DNS, NO_TIME,
 SHORT_DNS, DUPLICATE) = range(20, 29)

# Walk results: why the walk stopped where it did
STOP_MORE, STOP_CONTROL, STOP_TOO_LONG = 0, 1, 2
_MAX_SECONDS = (1 << 62) // 1_000_000_000  # about year 2116, as for capture timestamps
_MASK64 = (1 << 64) - 1


class _Bad(Exception):
    def __init__(self, category: int):
        self.category = category


def _varint(b: bytes, i: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= end:
            raise _Bad(LENGTH_BAD)
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        if not c & 0x80:
            return value & _MASK64, i
        shift += 7
        if shift >= 70:  # a varint is at most 10 bytes
            raise _Bad(VARINT_BAD)


def _fields(b: bytes, i: int, end: int):  # type: ignore[no-untyped-def]
    """Yield (field number, wire type, value) with value an int or a (start, stop) span."""
    while i < end:
        key, i = _varint(b, i, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _Bad(WIRE_TYPE_BAD)
        if wire == 0:
            value, i = _varint(b, i, end)
        elif wire == 2:
            size, i = _varint(b, i, end)
            if size > end - i:
                raise _Bad(LENGTH_BAD)
            value, i = (i, i + size), i + size
        elif wire == 5:
            if i + 4 > end:
                raise _Bad(LENGTH_BAD)
            value, i = int.from_bytes(b[i:i + 4], "little"), i + 4
        elif wire == 1:
            if i + 8 > end:
                raise _Bad(LENGTH_BAD)
            value, i = int.from_bytes(b[i:i + 8], "little"), i + 8
        else:  # groups (3, 4) are not used by dnstap; 6 and 7 do not exist
            raise _Bad(WIRE_TYPE_BAD)
        yield field, wire, value


# Message fields: number -> (name, wire type). A field with another wire type is unknown
# to us, and skipped, as protobuf parsers do.
_MESSAGE_FIELDS = {1: ("type", 0), 2: ("family", 0), 3: ("protocol", 0), 4: ("qaddr", 2),
                   5: ("raddr", 2), 6: ("qport", 0), 7: ("rport", 0), 8: ("qsec", 0),
                   9: ("qnsec", 5), 10: ("qmsg", 2), 12: ("rsec", 0), 13: ("rnsec", 5),
                   14: ("rmsg", 2)}


def _decode(b: bytes, start: int, end: int) -> tuple[dict[str, object], object, object]:
    """The Message fields of one Dnstap frame, and its identity and version spans."""
    message: dict[str, object] = {}
    identity = version = None
    dnstap_type = None
    seen_message = False
    for field, wire, value in _fields(b, start, end):
        if field == 1 and wire == 2:
            identity = value
        elif field == 2 and wire == 2:
            version = value
        elif field == 15 and wire == 0:
            dnstap_type = value
        elif field == 14 and wire == 2:
            seen_message = True  # embedded messages that repeat are merged, as protobuf does
            s, e = value  # type: ignore[misc]
            for f, w, v in _fields(b, s, e):
                known = _MESSAGE_FIELDS.get(f)
                if known is not None and known[1] == w:
                    message[known[0]] = v
    if not seen_message or (dnstap_type is not None and dnstap_type != 1):
        raise _Bad(NOT_A_MESSAGE)
    return message, identity, version


def _time(message: dict[str, object], sec: str, nsec: str) -> tuple[int | None, int]:
    if sec not in message:
        return None, 0
    seconds = int(message[sec])  # type: ignore[call-overload]
    nanos = int(message.get(nsec, 0))  # type: ignore[call-overload]
    flags = 0
    if nanos >= 1_000_000_000:
        nanos, flags = 0, FLAG_BAD_NSEC
    if seconds > _MAX_SECONDS:
        return None, flags
    return seconds * 1_000_000_000 + nanos, flags


def _frame_row(b: bytes, start: int, end: int, servers: list[tuple[bytes | None, bytes | None]],
               server_index: dict[tuple[bytes | None, bytes | None], int],
               out: bytearray) -> list[int]:
    row = [0] * len(COLUMNS)
    row[C_L3] = row[C_PAYLOAD] = row[C_SERVER] = row[C_QUERY_TS] = -1
    try:
        message, identity, version = _decode(b, start, end)
    except _Bad as e:
        row[C_CAT] = e.category
        return row
    kind = int(message.get("type", 0))  # type: ignore[call-overload]
    row[C_TYPE] = min(kind, 1000)  # as read, capped: it is data
    if kind not in MESSAGE_TYPES:
        row[C_CAT] = UNKNOWN_TYPE
        return row
    response = kind % 2 == 0
    key = (None if identity is None else bytes(b[identity[0]:identity[1]]),  # type: ignore[index]
           None if version is None else bytes(b[version[0]:version[1]]))  # type: ignore[index]
    index = server_index.get(key)
    if index is None:
        index = server_index[key] = len(servers)
        servers.append(key)
    row[C_SERVER] = index
    span = message.get("rmsg" if response else "qmsg")
    if span is None:
        row[C_CAT] = NO_DNS
        return row
    flags = 0
    query_ts, f1 = _time(message, "qsec", "qnsec")
    response_ts, f2 = _time(message, "rsec", "rnsec")
    flags |= f1 | f2
    ts = response_ts if response else query_ts
    if ts is None:
        ts = query_ts if response else response_ts
        flags |= FLAG_OTHER_TIME
    if ts is None:
        row[C_CAT] = NO_TIME
        return row
    protocol = int(message.get("protocol", NO_PROTOCOL))  # type: ignore[call-overload]
    if protocol == NO_PROTOCOL:
        flags |= FLAG_NO_PROTOCOL
    family = int(message.get("family", 0))  # type: ignore[call-overload]
    addresses = []
    for name in ("qaddr", "raddr"):
        s = message.get(name)
        addresses.append(b"" if s is None else bytes(b[s[0]:s[1]]))  # type: ignore[index]
    width = 16 if family == 2 else 4 if family == 1 else \
        16 if len(addresses[0]) == 16 or len(addresses[1]) == 16 else 4
    for k, value in enumerate(addresses):
        if len(value) != width:
            addresses[k] = bytes(width)
            flags |= FLAG_NO_ADDRESS
    qport = int(message.get("qport", 0)) & 0xFFFF  # type: ignore[call-overload]
    rport = int(message.get("rport", 0)) & 0xFFFF  # type: ignore[call-overload]
    src, dst = (addresses[1], addresses[0]) if response else (addresses[0], addresses[1])
    sport, dport = (rport, qport) if response else (qport, rport)
    block = bytearray(ADDRESS_BLOCK)
    at_src, at_dst = (12, 16) if width == 4 else (8, 24)
    block[at_src:at_src + width] = src
    block[at_dst:at_dst + width] = dst
    s, e = span  # type: ignore[misc]
    dns = b[s:e]
    row[C_L3] = len(out)
    out += block
    row[C_PAYLOAD] = len(out)
    out += dns
    row[C_PAYLOAD_LEN] = e - s
    row[C_VERSION] = 6 if width == 16 else 4
    row[C_PROTOCOL] = min(protocol, 1000)
    row[C_SPORT], row[C_DPORT] = sport, dport
    row[C_TS] = ts
    row[C_QUERY_TS] = -1 if query_ts is None else query_ts
    row[C_FLAGS] = flags
    row[C_HASH] = hash((kind, protocol, bytes(block), sport, dport, bytes(dns)))
    row[C_CAT] = _category(dns, protocol)
    return row


def _category(dns: bytes, protocol: int) -> int:
    """What the pipeline does with the message, as the packet classifier decides it.

    Every transport is one: a log holds whole messages, TCP's and DoT's included."""
    if len(dns) < 12:
        return SHORT_DNS
    if not dns[2] & 0x80:
        return QUERY
    if (dns[10] or dns[11]) and _may_hold_ede(dns):
        return CANDIDATE
    return RESPONSE


def _may_hold_ede(dns: bytes) -> bool:
    i = dns.find(b"\x00\x29", 12)
    return i >= 0 and dns.find(b"\x00\x0f", i + 10) >= 0


def walk_py(buf: bytes, start: int, servers: list[tuple[bytes | None, bytes | None]],
            max_frame: int = MAX_DATA_FRAME) -> tuple[bytes, bytes, int, int]:
    """Decode the data frames from ``start`` until a control frame, a frame longer than
    ``max_frame``, or the end of ``buf``; the twin of the kernel's ``dnstap_frames``.

    Returns (rows: len(COLUMNS) int64 per frame, out: address blocks and messages, the
    offset where the walk stopped, why: STOP_MORE / STOP_CONTROL / STOP_TOO_LONG).
    ``servers`` lists the distinct (identity, version) pairs; new ones are appended.
    """
    server_index = {key: i for i, key in enumerate(servers)}
    rows: list[list[int]] = []
    out = bytearray()
    pos, n = start, len(buf)
    stop = STOP_MORE
    while pos + 4 <= n:
        (length,) = struct.unpack_from(">I", buf, pos)
        if length == 0:
            stop = STOP_CONTROL
            break
        if length > max_frame:
            stop = STOP_TOO_LONG
            break
        if pos + 4 + length > n:
            break
        rows.append(_frame_row(buf, pos + 4, pos + 4 + length, servers, server_index, out))
        pos += 4 + length
    table = np.array(rows, np.int64).reshape(-1, len(COLUMNS))
    # Python's hash is a different function from the kernel's: only equality matters.
    return table.tobytes(), bytes(out), pos, stop


def walk(buf: bytes, start: int, servers: list[tuple[bytes | None, bytes | None]],
         max_frame: int = MAX_DATA_FRAME) -> tuple[np.ndarray, bytes, int, int]:
    """``walk_py`` or the kernel; the rows as an (n, len(COLUMNS)) int64 array."""
    from analyzer import speedups

    kernels = speedups.kernels
    if kernels is not None:
        raw, out, pos, stop = kernels.dnstap_frames(buf, start, servers, max_frame)
    else:
        raw, out, pos, stop = walk_py(buf, start, servers, max_frame)
    return np.frombuffer(raw, np.int64).reshape(-1, len(COLUMNS)), out, pos, stop


def looks_like_data_frame(head: bytes) -> bool:
    """Whether ``head`` opens with a whole dnstap data frame (a file without its START).

    The length must fit, and the frame must decode as a Dnstap carrying a Message.
    """
    if len(head) < 8:
        return False
    (length,) = struct.unpack_from(">I", head, 0)
    if not 0 < length <= len(head) - 4 or head[4] not in (0x0A, 0x12, 0x1A, 0x72, 0x78):
        return False
    try:
        message, _, _ = _decode(head, 4, 4 + length)
    except _Bad:
        return False
    return "type" in message


def server_names(servers: Sequence[tuple[bytes | None, bytes | None]]
                 ) -> list[tuple[str | None, str | None]]:
    """(identity, version) as text, invalid UTF-8 replaced (the output layer escapes it)."""
    return [tuple(None if v is None else v.decode("utf-8", "replace")  # type: ignore[misc]
                  for v in pair) for pair in servers]
