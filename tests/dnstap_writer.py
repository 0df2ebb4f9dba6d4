"""Write dnstap files for tests: protobuf dnstap.Dnstap messages in Frame Streams.

An encoder of our own, written from dnstap.proto and the Frame Streams description, kept
apart from the reader (analyzer/dnstap.py). The files the real servers write are in
tests/real/dnstap/; this is for crafted cases and hostile input.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable

CONTENT_TYPE = b"protobuf:dnstap.Dnstap"
TYPES = {"AUTH_QUERY": 1, "AUTH_RESPONSE": 2, "RESOLVER_QUERY": 3, "RESOLVER_RESPONSE": 4,
         "CLIENT_QUERY": 5, "CLIENT_RESPONSE": 6, "FORWARDER_QUERY": 7,
         "FORWARDER_RESPONSE": 8, "STUB_QUERY": 9, "STUB_RESPONSE": 10, "TOOL_QUERY": 11,
         "TOOL_RESPONSE": 12, "UPDATE_QUERY": 13, "UPDATE_RESPONSE": 14}
PROTOCOLS = {"udp": 1, "tcp": 2, "dot": 3, "doh": 4, "dnscrypt-udp": 5, "dnscrypt-tcp": 6,
             "doq": 7}
T0 = 1_733_000_000_000_000_000  # 2024-11-30, in ns


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, value: int | bytes, wire: int | None = None) -> bytes:
    if isinstance(value, bytes):
        return varint(number << 3 | 2) + varint(len(value)) + value
    if wire == 5:
        return varint(number << 3 | 5) + struct.pack("<I", value)
    return varint(number << 3) + varint(value)


def message(kind: str, dns: bytes | None, *, client: str = "192.0.2.10",
            server: str = "192.0.2.53", client_port: int = 40000, server_port: int = 53,
            protocol: str | None = "udp", query_ns: int | None = T0,
            response_ns: int | None = T0 + 2_000_000, family: int | None = None) -> bytes:
    """A Message; for *_QUERY types ``dns`` is the query_message, else response_message."""
    number = TYPES[kind]
    addr_q = ipaddress.ip_address(client).packed
    addr_r = ipaddress.ip_address(server).packed
    out = field(1, number)
    out += field(2, family if family is not None else (2 if len(addr_q) == 16 else 1))
    if protocol is not None:
        out += field(3, PROTOCOLS[protocol])
    out += field(4, addr_q) + field(5, addr_r) + field(6, client_port) + field(7, server_port)
    if query_ns is not None:
        out += field(8, query_ns // 10**9) + field(9, query_ns % 10**9, 5)
    if dns is not None and number % 2:
        out += field(10, dns)
    if response_ns is not None and number % 2 == 0:
        out += field(12, response_ns // 10**9) + field(13, response_ns % 10**9, 5)
    if dns is not None and number % 2 == 0:
        out += field(14, dns)
    return out


def dnstap(msg: bytes, *, identity: bytes | None = b"resolver1",
           version: bytes | None = b"unbound 1.17.1") -> bytes:
    out = b""
    if identity is not None:
        out += field(1, identity)
    if version is not None:
        out += field(2, version)
    return out + field(14, msg) + field(15, 1)


def control(kind: int, content_type: bytes | None = CONTENT_TYPE) -> bytes:
    body = struct.pack(">I", kind)
    if content_type is not None:
        body += struct.pack(">II", 1, len(content_type)) + content_type
    return struct.pack(">II", 0, len(body)) + body


def frames(payloads: Iterable[bytes], *, start: bool = True, stop: bool = True,
           content_type: bytes = CONTENT_TYPE) -> bytes:
    out = control(2, content_type) if start else b""
    for p in payloads:
        out += struct.pack(">I", len(p)) + p
    return out + (control(3, None) if stop else b"")
