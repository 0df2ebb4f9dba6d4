"""dnstap files: detection, decoding (kernel and twin), accounting, duplicates, reports."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import dnstap_writer as dw
import numpy as np
import pytest
from captures import query, response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import analyzer
from analyzer import dnstap, fastpath, reports, speedups
from analyzer.errors import CaptureError
from analyzer.framestreams import MAX_DATA_FRAME

needs_kernels = pytest.mark.skipif(speedups.kernels is None, reason="C kernels not built")

Q = query("a.broken.example", dns_id=7)
R = response("a.broken.example", dns_id=7, rcode=2,
             edes=((9, "no DNSKEY for broken.example"), (6, "validation failure")))
PLAIN = response("ok.example", dns_id=8, edes=None)


def traffic() -> list[bytes]:
    """A resolver's log: a client exchange with EDEs, a plain one over IPv6 and DoT, an
    upstream exchange whose answer carries an EDE too, and one duplicated response."""
    up_r = response("a.broken.example", dns_id=99, rcode=2, edes=((22, "no reachable"),))
    return [
        dw.dnstap(dw.message("CLIENT_QUERY", Q)),
        dw.dnstap(dw.message("RESOLVER_QUERY", query("a.broken.example", dns_id=99),
                             client="192.0.2.53", server="198.51.100.7", client_port=5353,
                             query_ns=dw.T0 + 100_000)),
        dw.dnstap(dw.message("RESOLVER_RESPONSE", up_r, client="192.0.2.53",
                             server="198.51.100.7", client_port=5353,
                             query_ns=dw.T0 + 100_000, response_ns=dw.T0 + 900_000)),
        dw.dnstap(dw.message("CLIENT_RESPONSE", R)),
        dw.dnstap(dw.message("CLIENT_RESPONSE", R)),  # logged twice, as Unbound may
        dw.dnstap(dw.message("CLIENT_QUERY", query("ok.example", dns_id=8),
                             client="2001:db8::10", server="2001:db8::53", protocol="dot",
                             client_port=41000, server_port=853)),
        dw.dnstap(dw.message("CLIENT_RESPONSE", PLAIN, client="2001:db8::10",
                             server="2001:db8::53", protocol="dot", client_port=41000,
                             server_port=853)),
    ]


@pytest.fixture(params=["compiled", "python"])
def paths(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(speedups, "kernels", None)
    elif speedups.kernels is None:
        pytest.skip("C kernels not built")
    return request.param


def write(tmp_path: Path, data: bytes, name: str = "log.dnstap") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_categories_match_the_classifier() -> None:
    assert (dnstap.SLOW, dnstap.QUERY, dnstap.RESPONSE, dnstap.CANDIDATE) == (
        fastpath.SLOW, fastpath.QUERY, fastpath.RESPONSE, fastpath.CANDIDATE)
    assert not set(dnstap.CATEGORY_NAMES) & set(fastpath.CATEGORY_NAMES)


def test_a_log_gives_the_client_facing_edes(tmp_path: Path, paths: str) -> None:
    result = analyzer.scan(write(tmp_path, dw.frames(traffic())))
    ede = result.ede
    assert result.captures[0].file_format == "dnstap"
    # frame 5 is the duplicate of frame 4; frame 3 is the upstream answer
    assert ede["frame_number"].tolist() == [3, 4, 4]
    client = ede[ede["dnstap_type"] == "CLIENT_RESPONSE"]
    assert client["ede_code"].tolist() == [9, 6]
    assert client["extra_text"].tolist() == ["no DNSKEY for broken.example",
                                             "validation failure"]
    assert set(client["src_ip"]) == {"192.0.2.53"} and set(client["dst_ip"]) == {"192.0.2.10"}
    assert client["src_port"].tolist() == [53, 53] and client["dst_port"].tolist() == [40000] * 2
    assert set(client["dnstap_identity"]) == {"resolver1"}
    assert set(client["dnstap_version"]) == {"unbound 1.17.1"}
    assert client["latency"].dt.total_seconds().tolist() == [0.002, 0.002]
    upstream = ede[ede["dnstap_type"] == "RESOLVER_RESPONSE"]
    assert upstream["src_ip"].tolist() == ["198.51.100.7"]
    assert upstream["latency"].dt.total_seconds().tolist() == [0.0008]
    assert result.accounting == {"dns-query": 3, "dns-response": 3, "dnstap-duplicate": 1}
    # the headline counts what the clients got; the upstream answer is counted apart
    assert (result.dns_responses, result.responses_with_ede, result.ede_options) == (2, 1, 2)
    log = result.dnstap
    assert log is not None
    assert log["by_type"] == {"CLIENT_QUERY": 2, "CLIENT_RESPONSE": 3, "RESOLVER_QUERY": 1,
                              "RESOLVER_RESPONSE": 1}
    assert log["duplicates_folded"] == 1
    assert log["transport"] == {"dot": 1, "udp": 1}
    assert log["upstream_responses"] == 1 and log["upstream_ede_options"] == 1


def test_report_names_the_software_and_keeps_upstream_apart(tmp_path: Path) -> None:
    report = analyzer.scan(write(tmp_path, dw.frames(traffic()))).report()
    assert [c["code"] for c in report["codes"]] == [6, 9]
    assert report["upstream_codes"] == {"22": 1}
    (resolver,) = report["resolvers"]
    assert resolver["resolver"] == "192.0.2.53"
    assert resolver["software"] == "unbound 1.17.1"
    assert resolver["software_basis"] == "dnstap"
    assert report["dnstap"]["servers"] == [
        {"identity": "resolver1", "version": "unbound 1.17.1", "messages": 6}]


def test_detected_by_content_not_name_compressed_and_on_stdin(tmp_path: Path) -> None:
    data = dw.frames(traffic())
    plain = analyzer.scan(write(tmp_path, data, "capture.pcap")).ede
    packed = analyzer.scan(write(tmp_path, gzip.compress(data), "x.bin")).ede
    streamed = analyzer.scan(io.BytesIO(data)).ede
    assert len(plain) == 3
    for other in (packed, streamed):
        assert other["ede_code"].tolist() == plain["ede_code"].tolist()


def test_file_without_start_and_with_repeated_blocks(tmp_path: Path) -> None:
    frames = traffic()
    bare = dw.frames(frames, start=False, stop=False)
    assert len(analyzer.scan(write(tmp_path, bare)).ede) == 3
    rotated = dw.frames(frames[:4]) + dw.frames(frames[4:])
    result = analyzer.scan(write(tmp_path, rotated, "rotated.dnstap"))
    assert result.ede["frame_number"].tolist() == [3, 4, 4]
    assert result.dnstap["duplicates_folded"] == 1  # type: ignore[index]


def test_wrong_content_type_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, dw.frames(traffic(), content_type=b"protobuf:other.Thing"))
    with pytest.raises(CaptureError) as info:
        analyzer.scan(path)
    assert "is a Frame Streams file of 'protobuf:other.Thing', not dnstap" in str(info.value)
    assert info.value.offset == 0


@pytest.mark.parametrize("cut", [1, 3, 9, 40])
def test_a_cut_file_keeps_what_came_before(tmp_path: Path, cut: int) -> None:
    data = dw.frames(traffic(), stop=False)
    result = analyzer.scan(write(tmp_path, data[:-cut]))
    assert result.accounting["capture-truncated"] == 1
    assert result.ede["frame_number"].tolist() == [3, 4, 4]
    assert result.captures[0].truncated_at is not None


def test_a_lying_frame_length_stops_with_the_offset(tmp_path: Path) -> None:
    good = dw.frames(traffic()[:4], stop=False)
    data = good + struct.pack(">I", 0x7FFFFFFF) + b"x" * 100
    result = analyzer.scan(write(tmp_path, data), errors="collect")
    (info,) = result.captures
    assert info.error is not None and "dnstap frame 5 claims 2147483647 bytes" in info.error
    assert info.error_offset == len(good)
    assert result.ede["frame_number"].tolist() == [3, 4, 4]


@pytest.mark.parametrize(("payload", "category"), [
    (b"\x72\x05\x08\x06", "malformed-dnstap-length"),
    (b"\x72\x0b\x08" + b"\xff" * 10 + b"\x01", "malformed-dnstap-varint"),
    (b"\x0b\x01", "malformed-dnstap-wire-type"),
    (b"\x0a\x01a\x78\x01", "dnstap-not-a-message"),
    (dw.dnstap(dw.message("CLIENT_RESPONSE", R))[:-2] + b"\x78\x02", "dnstap-not-a-message"),
    (dw.dnstap(dw.field(1, 99)), "dnstap-unknown-type"),
    (dw.dnstap(dw.message("CLIENT_RESPONSE", None)), "dnstap-no-dns-message"),
    (dw.dnstap(dw.message("CLIENT_RESPONSE", R, query_ns=None, response_ns=None)),
     "dnstap-no-time"),
    (dw.dnstap(dw.message("CLIENT_RESPONSE", b"\x00\x07")), "malformed-dns-short-header"),
])
def test_bad_frames_are_counted_by_reason(tmp_path: Path, payload: bytes, category: str,
                                          paths: str) -> None:
    result = analyzer.scan(write(tmp_path, dw.frames([payload, dw.dnstap(
        dw.message("CLIENT_RESPONSE", R))])))
    assert result.accounting == {category: 1, "dns-response": 1}
    assert result.packets == 2


def test_unknown_fields_and_missing_parts_are_tolerated(tmp_path: Path) -> None:
    msg = dw.message("CLIENT_RESPONSE", R, protocol=None) + dw.field(99, b"future") + \
        dw.field(15, 3) + dw.field(11, b"\x07example\x00")
    frame = dw.dnstap(msg, identity=None, version=None) + dw.field(3, b"extra") + \
        dw.field(2047, 5)
    result = analyzer.scan(write(tmp_path, dw.frames([frame])))
    assert result.ede["transport"].tolist() == ["unknown", "unknown"]
    assert result.ede["dnstap_version"].isna().all()
    assert result.problems == {"dnstap-protocol-absent": 1}


def test_a_message_without_addresses_is_kept_and_counted(tmp_path: Path) -> None:
    msg = dw.field(1, 6) + dw.field(3, 1) + dw.field(12, dw.T0 // 10**9) + dw.field(14, R)
    result = analyzer.scan(write(tmp_path, dw.frames([dw.dnstap(msg)])))
    assert result.ede["src_ip"].tolist() == ["0.0.0.0", "0.0.0.0"]
    assert result.problems == {"dnstap-address-absent": 1}


def test_pure_python_strict_and_slow_paths_agree(tmp_path: Path) -> None:
    path = write(tmp_path, dw.frames(traffic()))
    fast = analyzer.scan(path)
    slow = analyzer.read_responses(path)
    assert len(slow) == 3  # every response once, the upstream one included
    from analyzer.pipeline import Scanner
    scanner = Scanner(force_slow=True)
    for _ in scanner.run([path]):
        pass
    forced = scanner.result()
    assert forced.ede.equals(fast.ede)
    assert forced.accounting == fast.accounting


def test_jobs_give_the_same_result(tmp_path: Path) -> None:
    paths_ = [write(tmp_path, dw.frames(traffic()), f"{k}.dnstap") for k in range(3)]
    one = analyzer.scan(paths_)
    two = analyzer.scan(paths_, jobs=2)
    assert two.ede.equals(one.ede)
    assert two.dnstap == one.dnstap
    assert one.dnstap["messages"] == 21  # type: ignore[index]


# -- the kernel and its twin --------------------------------------------------------------------

def both_walks(data: bytes, start: int = 0) -> None:
    servers_py: list[tuple[bytes | None, bytes | None]] = []
    servers_c: list[tuple[bytes | None, bytes | None]] = []
    raw_py, out_py, pos_py, why_py = dnstap.walk_py(data, start, servers_py)
    raw_c, out_c, pos_c, why_c = speedups.kernels.dnstap_frames(  # type: ignore[union-attr]
        data, start, servers_c, MAX_DATA_FRAME)
    rows_py = np.frombuffer(raw_py, np.int64).reshape(-1, len(dnstap.COLUMNS))
    rows_c = np.frombuffer(raw_c, np.int64).reshape(-1, len(dnstap.COLUMNS))
    keep = [k for k in range(len(dnstap.COLUMNS)) if k != dnstap.C_HASH]
    assert (pos_py, why_py) == (pos_c, why_c)
    assert rows_py[:, keep].tolist() == rows_c[:, keep].tolist()
    assert out_py == out_c
    assert servers_py == servers_c
    # equal hashes exactly where the twin's are equal
    hp, hc = rows_py[:, dnstap.C_HASH], rows_c[:, dnstap.C_HASH]
    assert (hp[:, None] == hp[None, :]).tolist() == (hc[:, None] == hc[None, :]).tolist()


@needs_kernels
def test_kernel_and_twin_agree_on_the_traffic() -> None:
    data = dw.frames(traffic(), start=False, stop=False)
    both_walks(data)
    for cut in range(len(data)):
        both_walks(data[:cut])


@needs_kernels
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_kernel_and_twin_agree_on_mutations(data: st.DataObject) -> None:
    frames = traffic()
    pick = data.draw(st.lists(st.sampled_from(frames), min_size=1, max_size=5))
    blob = bytearray(dw.frames(pick, start=False, stop=False))
    for _ in range(data.draw(st.integers(0, 6))):
        at = data.draw(st.integers(4, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    both_walks(bytes(blob))


@needs_kernels
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_kernel_and_twin_agree_on_noise(noise: bytes) -> None:
    both_walks(struct.pack(">I", len(noise)) + noise)
    both_walks(noise)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_hostile_files_never_raise_anything_but_capture_error(tmp_path: Path,
                                                              noise: bytes) -> None:
    data = dw.control(2) + noise
    try:
        result = analyzer.scan(io.BytesIO(data), errors="raise")
    except CaptureError:
        return
    assert result.packets == sum(result.accounting.values())


def test_a_directory_of_logs_is_searched_for_them(tmp_path: Path) -> None:
    from analyzer import sources

    (tmp_path / "logs").mkdir()
    write(tmp_path / "logs", dw.frames(traffic()), "resolver1.dnstap")
    write(tmp_path / "logs", gzip.compress(dw.frames(traffic())), "resolver2.fstrm.gz")
    write(tmp_path / "logs", b"notes", "README")
    paths, errors = sources.expand([str(tmp_path / "logs")])
    assert [Path(p).name for p in paths] == ["resolver1.dnstap", "resolver2.fstrm.gz"]
    assert errors == []
    assert len(analyzer.scan(paths).ede) == 6


@pytest.mark.parametrize(("control", "reason"), [
    (struct.pack(">III", 0, 600, 2) + bytes(596), "control-frame-length"),
    (struct.pack(">IIIII", 0, 12, 2, 1, 999) + b"abcd", "control-field-length"),
    (struct.pack(">II", 0, 2) + b"\0\2", "control-frame-length"),
])
def test_a_damaged_control_frame_is_a_clear_error_after_the_frames_before(
        tmp_path: Path, control: bytes, reason: str) -> None:
    good = dw.frames(traffic()[:4], stop=False)
    result = analyzer.scan(write(tmp_path, good + control + dw.frames(traffic())),
                           errors="collect")
    (info,) = result.captures
    assert info.error is not None
    assert f"damaged Frame Streams control frame ({reason})" in info.error
    assert info.error_offset == len(good)
    assert result.ede["frame_number"].tolist() == [3, 4, 4]


def test_socket_control_frames_are_skipped(tmp_path: Path) -> None:
    """READY/ACCEPT/FINISH, as a socket writer's handshake recorded whole, carry on."""
    data = (dw.control(4) + dw.control(1) + dw.frames(traffic()) + dw.control(5, None))
    assert analyzer.scan(write(tmp_path, data)).ede["frame_number"].tolist() == [3, 4, 4]


def test_upstream_section_and_forwarder_verdict_from_a_log(tmp_path: Path) -> None:
    from analyzer import legs

    path = write(tmp_path, dw.frames(traffic()))
    scan = analyzer.scan(path)
    rows, _ = reports.client_facing(scan.ede)
    linked = legs.upstream_for_edes([path], rows)
    assert linked["upstream_queries"].tolist() == [1, 1]
    assert linked["upstream_ede"].tolist() == ["22", "22"]
    assert linked["upstream_servers"].tolist() == ["198.51.100.7"] * 2
    verdicts = legs.forwarded([path], scan.ede)
    assert verdicts[["upstream_ede", "client_ede", "verdict"]].values.tolist() == [
        ["22", "9,6", "rewrote"]]


def test_a_log_without_responses_says_why_not_port(tmp_path: Path) -> None:
    from analyzer.render import no_responses_note

    only_queries = write(tmp_path, dw.frames([dw.dnstap(dw.message("CLIENT_QUERY", Q))] * 3))
    note = no_responses_note(analyzer.scan(only_queries).report())
    assert note.startswith("No DNS responses found: the dnstap log holds only CLIENT_QUERY 3.")
    assert "dnstap-log-client-response-messages: yes" in note and "--port" not in note
    broken = write(tmp_path, dw.frames([b"\x72\x05\x08\x06"] * 4), "broken.dnstap")
    note = no_responses_note(analyzer.scan(broken).report())
    assert note.startswith("No DNS responses found: 4 of 4 dnstap frames could not be read "
                           "(malformed-dnstap-length 4)")
