"""Write the independent oracle of each dnstap fixture and of its pcap, as JSON lines.

For every <software>.dnstap beside this file (or those named on the command line):
- <software>.oracle.jsonl: one object per Frame Streams DATA frame, decoded with Google's
  protobuf runtime against dnstap.proto (the dnstap project's published schema, compiled
  at run time with grpcio-tools' protoc) and dnspython for the DNS message;
- <software>.pcap.oracle.jsonl: one object per DNS response the resolver sent to a client
  in <software>.pcap, decoded by tshark.

Nothing here imports ede-pcap. Needs: pip install protobuf grpcio-tools dnspython, and
Debian's tshark. Example: .venv/bin/python tests/real/dnstap/oracle.py unbound bind
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent

# Where make_dnstap_fixtures.sh has the resolver (or dnsdist) answer its clients in clear
# text. DoT on port 853 is encrypted in the pcap, so tshark cannot decode it.
CLIENT_FACING = {("127.0.0.53", 53), ("::1", 53)}

EDE = 15  # RFC 8914 §2: the EDNS0 option code of Extended DNS Errors


def load_schema() -> Any:
    """Compile dnstap.proto with grpcio-tools' protoc and return the dnstap_pb2 module."""
    out = Path(tempfile.mkdtemp(prefix="dnstap-pb2-"))
    rc = protoc.main(["protoc", f"-I{HERE}", f"--python_out={out}", str(HERE / "dnstap.proto")])
    if rc != 0:
        raise SystemExit(f"protoc failed on {HERE / 'dnstap.proto'} ({rc})")
    sys.path.insert(0, str(out))
    return importlib.import_module("dnstap_pb2")


def iter_data_frames(data: bytes) -> Iterator[bytes]:
    """Yield the payload of every DATA frame of a Frame Streams file, skipping control frames."""
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        pos += 4
        if length == 0:  # escape: a control frame follows, with its own length
            (clen,) = struct.unpack_from(">I", data, pos)
            pos += 4 + clen
            continue
        if pos + length > len(data):
            raise SystemExit(f"DATA frame at byte {pos - 4} runs past the end of the file")
        yield data[pos : pos + length]
        pos += length


def to_text(raw: bytes) -> str:
    """Return the EXTRA-TEXT of an EDE option as a string, invalid UTF-8 replaced."""
    # RFC 8914 §2: EXTRA-TEXT MAY be NUL-terminated; strip one NUL as dnspython does
    if raw.endswith(b"\x00"):
        raw = raw[:-1]
    return raw.decode("utf-8", errors="replace")


def dns_summary(wire: bytes) -> dict[str, Any]:
    """Return id, qr, qname, qtype, rcode and EDEs of a DNS message, decoded by dnspython."""
    try:
        msg = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError, UnicodeDecodeError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    edes = []
    for opt in msg.options:
        if opt.otype == EDE:
            raw = opt.to_wire()  # the option's data, as it was on the wire
            assert raw is not None
            edes.append([int.from_bytes(raw[:2], "big"), to_text(raw[2:])])
    q = msg.question[0] if msg.question else None
    return {
        "id": msg.id,
        "qr": 1 if msg.flags & dns.flags.QR else 0,
        "qname": q.name.to_text(omit_final_dot=True).lower() if q is not None else None,
        "qtype": int(q.rdtype) if q is not None else None,
        "rcode": int(msg.rcode()),
        "edes": edes,
    }


def address(raw: bytes) -> str:
    """Return a dnstap address field as text (hex when it is neither 4 nor 16 bytes)."""
    if len(raw) in (4, 16):
        return str(ipaddress.ip_address(raw))
    return raw.hex()


def text_field(tap: Any, field: str) -> str | None:
    """Return a bytes field of the Dnstap message as text (invalid UTF-8 replaced), or None."""
    return getattr(tap, field).decode("utf-8", "replace") if tap.HasField(field) else None


def dnstap_rows(path: Path, pb2: Any) -> Iterator[dict[str, Any]]:
    """Yield one oracle object per DATA frame of a dnstap file, in file order."""
    for n, frame in enumerate(iter_data_frames(path.read_bytes()), start=1):
        tap = pb2.Dnstap()
        tap.ParseFromString(frame)
        m = tap.message
        mtype = pb2.Message.Type.Name(m.type)

        def opt(field: str, m: Any = m) -> Any:
            return getattr(m, field) if m.HasField(field) else None

        def ns(sec: str, nsec: str, m: Any = m) -> int | None:
            if not m.HasField(sec):
                return None
            return getattr(m, sec) * 1_000_000_000 + getattr(m, nsec)

        wire = opt("response_message" if mtype.endswith("_RESPONSE") else "query_message")
        family, proto = opt("socket_family"), opt("socket_protocol")
        qaddr, raddr = opt("query_address"), opt("response_address")
        yield {
            "frame": n,
            "type": mtype,
            "identity": text_field(tap, "identity"),
            "version": text_field(tap, "version"),
            "socket_family": None if family is None else pb2.SocketFamily.Name(family),
            "socket_protocol": None if proto is None else pb2.SocketProtocol.Name(proto),
            "query_address": None if qaddr is None else address(qaddr),
            "response_address": None if raddr is None else address(raddr),
            "query_port": opt("query_port"),
            "response_port": opt("response_port"),
            "query_time_ns": ns("query_time_sec", "query_time_nsec"),
            "response_time_ns": ns("response_time_sec", "response_time_nsec"),
            "dns": None if wire is None else dns_summary(wire),
        }


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Yield every dict in a tshark JSON tree, depth first, in document order."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def first(layer: Any, key: str) -> Any:
    """Return the first value of key anywhere in a tshark JSON tree, or None."""
    for d in walk(layer):
        if key in d:
            value = d[key]
            return value[0] if isinstance(value, list) else value
    return None


def tshark_dns(layer: dict[str, Any]) -> dict[str, Any]:
    """Return the same summary as dns_summary() from one tshark JSON "dns" layer."""
    qname = first(layer, "dns.qry.name")
    if qname == "<Root>":
        qname = "."
    qtype = first(layer, "dns.qry.type")
    ext = first(layer, "dns.resp.ext_rcode")
    edes = []
    for d in walk(layer):
        if "dns.opt.ext_error.info_code" in d:
            edes.append(
                [int(d["dns.opt.ext_error.info_code"]), d.get("dns.opt.ext_error.extra_text", "")]
            )
    return {
        "id": int(first(layer, "dns.id"), 16),
        "qr": int(first(layer, "dns.flags.response")),
        "qname": None if qname is None else qname.lower(),
        "qtype": None if qtype is None else int(qtype),
        "rcode": int(first(layer, "dns.flags.rcode")) | (int(ext or "0", 16) << 4),
        "edes": edes,
    }


def pcap_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Yield one object per DNS response from a client-facing address/port in a pcap."""
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-n",
            "-Y",
            "dns.flags.response == 1",
            "-T",
            "json",
            "--no-duplicate-keys",
            "-J",
            "frame ip ipv6 udp tcp dns",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for packet in json.loads(out or "[]"):
        layers = packet["_source"]["layers"]
        ip = layers.get("ip") or layers.get("ipv6")
        src = ip.get("ip.src") or ip.get("ipv6.src")
        dst = ip.get("ip.dst") or ip.get("ipv6.dst")
        transport = "udp" if "udp" in layers else "tcp"
        ports = layers[transport]
        sport, dport = int(ports[f"{transport}.srcport"]), int(ports[f"{transport}.dstport"])
        if (src, sport) not in CLIENT_FACING:
            continue
        messages = layers["dns"]
        # a TCP segment may end several DNS messages: tshark then gives a list of layers
        for layer in messages if isinstance(messages, list) else [messages]:
            yield {
                "frame": int(layers["frame"]["frame.number"]),
                "src": src,
                "sport": sport,
                "dst": dst,
                "dport": dport,
                "transport": transport,
                "dns": tshark_dns(layer),
            }


def write_jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> int:
    """Write rows as JSON lines and return how many."""
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def main(argv: list[str]) -> None:
    # EDE as a GenericOption: the raw bytes, so invalid UTF-8 is replaced, not raised
    dns.edns.register_type(dns.edns.GenericOption, EDE)  # type: ignore[arg-type]
    pb2 = load_schema()
    names = argv or sorted(p.stem for p in HERE.glob("*.dnstap"))
    for name in names:
        tap, pcap = HERE / f"{name}.dnstap", HERE / f"{name}.pcap"
        n = write_jsonl(HERE / f"{name}.oracle.jsonl", dnstap_rows(tap, pb2))
        line = f"{name}: {n} dnstap frames"
        if pcap.exists():
            p = write_jsonl(HERE / f"{name}.pcap.oracle.jsonl", pcap_rows(pcap))
            line += f", {p} client-facing responses in the pcap"
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
