"""The dnstap fixtures in tests/real/dnstap/ and their oracles agree with each other.

No ede-pcap reader is involved: these tests parse the Frame Streams framing themselves and
read the JSON lines that oracle.py wrote with protobuf, dnspython and tshark.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

DIR = Path(__file__).parent / "real" / "dnstap"
FIXTURES = sorted(p.stem for p in DIR.glob("*.dnstap"))

# Frame Streams control frames (fstrm's control.h): types and the one field type
CONTROL_START, CONTROL_STOP, FIELD_CONTENT_TYPE = 2, 3, 1


def read_frames(data: bytes) -> list[tuple[str, bytes]]:
    """Return the file's frames as ("data", payload) or ("control", payload), in order."""
    frames, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        pos += 4
        kind = "data"
        if length == 0:  # the escape: a control frame and its own length follow
            (length,) = struct.unpack_from(">I", data, pos)
            pos += 4
            kind = "control"
        assert pos + length <= len(data), f"frame at byte {pos} runs past the end"
        frames.append((kind, data[pos : pos + length]))
        pos += length
    return frames


def control(payload: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    """Return a control frame's type and its (field type, value) list."""
    (ctype,) = struct.unpack_from(">I", payload, 0)
    fields, pos = [], 4
    while pos < len(payload):
        ftype, flen = struct.unpack_from(">II", payload, pos)
        fields.append((ftype, payload[pos + 8 : pos + 8 + flen]))
        pos += 8 + flen
    return ctype, fields


def oracle(name: str) -> list[dict[str, Any]]:
    with (DIR / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_there_are_fixtures() -> None:
    assert FIXTURES, f"no *.dnstap in {DIR}"


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_has_its_oracles(name: str) -> None:
    for suffix in (".oracle.jsonl", ".pcap", ".pcap.oracle.jsonl"):
        assert (DIR / f"{name}{suffix}").is_file(), f"{name}{suffix} is missing"


@pytest.mark.parametrize("name", FIXTURES)
def test_stream_starts_with_dnstap_start_and_ends_with_stop(name: str) -> None:
    frames = read_frames((DIR / f"{name}.dnstap").read_bytes())
    kind, payload = frames[0]
    assert kind == "control"
    ctype, fields = control(payload)
    assert ctype == CONTROL_START
    assert (FIELD_CONTENT_TYPE, b"protobuf:dnstap.Dnstap") in fields
    assert frames[-1][0] == "control" and control(frames[-1][1])[0] == CONTROL_STOP


@pytest.mark.parametrize("name", FIXTURES)
def test_oracle_has_one_row_per_data_frame(name: str) -> None:
    frames = read_frames((DIR / f"{name}.dnstap").read_bytes())
    data_frames = sum(1 for kind, _ in frames if kind == "data")
    rows = oracle(f"{name}.oracle.jsonl")
    assert len(rows) == data_frames
    assert [r["frame"] for r in rows] == list(range(1, data_frames + 1))


def response_key(addr: str, port: int, dns: dict[str, Any]) -> tuple[Any, ...]:
    return (addr, port, dns["id"], dns["qname"], dns["qtype"], dns["rcode"], str(dns["edes"]))


@pytest.mark.parametrize("name", FIXTURES)
def test_pcap_responses_match_client_responses(name: str) -> None:
    # DoT is encrypted in the pcap, and Unbound logs some responses twice: compare the
    # distinct plain-DNS responses on both sides
    tapped = {
        response_key(r["query_address"], r["query_port"], r["dns"])
        for r in oracle(f"{name}.oracle.jsonl")
        if r["type"] == "CLIENT_RESPONSE"
        and r["socket_protocol"] in ("UDP", "TCP")
        and r["response_port"] == 53
    }
    captured = {
        response_key(p["dst"], p["dport"], p["dns"]) for p in oracle(f"{name}.pcap.oracle.jsonl")
    }
    assert captured
    assert captured == tapped


def test_some_client_response_carries_an_ede_with_text() -> None:
    texts = [
        text
        for name in FIXTURES
        for r in oracle(f"{name}.oracle.jsonl")
        if r["type"] == "CLIENT_RESPONSE" and r["dns"] and "edes" in r["dns"]
        for _, text in r["dns"]["edes"]
        if text
    ]
    assert texts
