"""The scanner builds its EDE rows into frames in pieces and joins them at the end; the
report's work frame reduces them. Both are tuned for memory: here they must not change
a single value."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from captures import (
    SERVFAIL,
    TcpFlow,
    framed,
    query,
    response,
    tcp_capture,
)

from analyzer import matching, pipeline, reports

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _scan(sources: list, compact_rows: int) -> pipeline.ScanResult:
    scanner = pipeline.Scanner()
    scanner.compact_rows = compact_rows
    for _ in scanner.run(sources):
        pass
    return scanner.result()


@pytest.mark.parametrize("compact_rows", [1, 7, 100])
def test_many_small_pieces_join_to_the_same_frame(compact_rows: int) -> None:
    # Captures given in reverse name order: the pieces arrive out of capture order and the
    # join must sort them; several captures, link types, TCP and UDP.
    sources = [SAMPLES / "transports.pcap", SAMPLES / "incident.pcap",
               SAMPLES / "all-codes.pcapng"]
    whole = _scan(sources, 10**9).ede
    pieces = _scan(sources, compact_rows).ede
    assert len(whole) > 300
    assert list(pieces["capture"].unique()) == sorted(str(s) for s in sources)
    pd.testing.assert_frame_equal(pieces, whole)
    assert dict(pieces.dtypes) == dict(whole.dtypes)


def test_the_work_frame_counts_each_response_once() -> None:
    # incident.pcap: 308 responses carry 312 EDE options (some carry two).
    result = pipeline.scan(SAMPLES / "incident.pcap")
    work = reports.work_frame(result.ede)
    assert len(work) == 312
    assert work["response"].nunique() == result.responses_with_ede == 308
    two = result.ede.groupby(["frame_number"]).size()
    assert (two == 2).sum() == 4
    for frame_number in two[two == 2].index:
        rows = work[(result.ede["frame_number"] == frame_number).to_numpy()]
        assert rows["response"].nunique() == 1


def test_responses_sharing_a_segment_stay_apart(tmp_path: Path) -> None:
    # Three responses in one TCP segment: one frame number, three responses, and two of
    # them identical but for the DNS id.
    f = TcpFlow()
    ids = (1, 2, 3)
    names = ("a.example.com", "b.example.com", "a.example.com")
    queries = b"".join(framed(query(n, dns_id=i)) for i, n in zip(ids, names, strict=True))
    answers = b"".join(framed(response(n, dns_id=i, rcode=SERVFAIL, edes=[(6, "x"), (9, "y")]))
                       for i, n in zip(ids, names, strict=True))
    capture = tcp_capture([*f.handshake(), f.client(queries), f.server(answers)])
    path = tmp_path / "tcp.pcap"
    path.write_bytes(capture)
    result = pipeline.scan(path)
    work = reports.work_frame(result.ede)
    assert result.ede["frame_number"].nunique() == 1
    assert len(work) == 6
    assert work["response"].nunique() == 3
    report = reports.build_report(result)
    assert report["summary"]["responses_with_ede"] == 3
    assert {c["code"]: c["responses"] for c in report["codes"]} == {6: 3, 9: 3}


def test_the_work_frame_reads_timestamps_in_place_and_keeps_nat() -> None:
    result = pipeline.scan(SAMPLES / "incident.pcap")
    df = result.ede.copy()
    df.loc[df.index[:3], "ts"] = pd.NaT
    work = reports.work_frame(df)
    assert work["ts"].isna().sum() == 3
    expected = df["ts"].iloc[3:].astype("int64").to_numpy()
    assert np.array_equal(work["ts"].iloc[3:].to_numpy(np.int64), expected)
    # another unit (a frame read back from elsewhere) gives the same numbers
    other = reports.work_frame(df.assign(ts=df["ts"].dt.as_unit("us")))
    pd.testing.assert_series_equal(other["ts"], work["ts"])


def test_a_finished_scan_leaves_no_queries_waiting_for_the_collector() -> None:
    # The decoder calls back into the scanner, a reference cycle: state left on it after
    # the last file would keep the held queries' chunk buffers alive until a collection.
    gc.collect()
    gc.disable()
    try:
        result = pipeline.scan(SAMPLES / "incident.pcap")
        held = [o for o in gc.get_objects() if isinstance(o, matching._Batch)]
    finally:
        gc.enable()
    assert result.dns_queries > 2000
    assert held == []


def test_freed_memory_goes_back_to_the_system() -> None:
    from analyzer import memory

    if memory._malloc_trim() is None:
        pytest.skip("this C library has no malloc_trim")
    # In a fresh interpreter (this one's heap is shaped by every test before): 64 MiB in
    # pieces below the mmap threshold, each followed by a small block that stays, so the
    # freed pieces are holes below the heap's top that glibc keeps resident until trimmed.
    program = """
import pathlib
from analyzer import memory
def resident():
    return int(pathlib.Path("/proc/self/statm").read_text().split()[1]) * 4096
pieces, pins = [], []
for _ in range(640):
    pieces.append(bytearray(100_000))
    pins.append(bytearray(1000))
del pieces
freed = resident()
print(memory.release_free_memory(), (freed - resident()) >> 20)
"""
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1]).stdout.split()
    assert out[0] == "True"
    assert int(out[1]) >= 24, out
