"""The incident detector of ``watch`` on an injected outage (a burst of one code spliced into
generated traffic), as a real process, against ``report``'s incidents; and its window rows
staying bounded over hours of rotating captures.
"""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from captures import Rec, frame, pcap, response, udp
from watchproc import (
    MAKE_CAPTURE,
    ROOT,
    WAIT_S,
    free_port,
    scrape,
    settled,
    start_watch,
    total,
    wait_for,
)

import analyzer
from analyzer import reports, watchevents, watchmetrics
from analyzer.watch import Watcher

START_S = 1_735_689_600  # make_capture.py's default first timestamp
BUCKET_NS = 60 * 10**9
OUTAGE = (START_S + 31 * 60 + 20, 6 * 60)  # 31m20s in, for 6 minutes
BURST_PER_MINUTE = 40


def generate(out: Path, packets: int, duration_s: int, start_s: int = START_S,
             seed: int = 1) -> Path:
    subprocess.run([sys.executable, str(MAKE_CAPTURE), str(out), "-n", str(packets),
                    "--duration", str(duration_s), "--start", str(start_s), "--seed",
                    str(seed), "-q"], check=True, timeout=WAIT_S, capture_output=True)
    return out


def read_pcap(data: bytes) -> list[Rec]:
    """The records of a little-endian microsecond pcap (what make_capture.py writes)."""
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    out, at = [], 24
    while at + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, at)
        out.append(Rec((sec * 10**6 + usec) * 1000, data[at + 16:at + 16 + incl], orig))
        at += 16 + incl
    return out


def with_outage(base: Path, out: Path) -> Path:
    """``base`` with a burst of Signature Expired (7) answers from one resolver spliced in."""
    start, length = OUTAGE
    burst = [Rec(start * 10**9 + i * (60 * 10**9 // BURST_PER_MINUTE),
                 frame(udp(response(f"w{i % 7}.shop.example", dns_id=i,
                                    edes=[(7, "signature expired")]))))
             for i in range(length * BURST_PER_MINUTE // 60)]
    merged = sorted(read_pcap(base.read_bytes()) + burst, key=lambda r: r.ts_ns)
    out.write_bytes(pcap(merged))
    return out


def check_events(events: list[dict[str, Any]], path: Path) -> None:
    """Start and end events for report's incidents, within one bucket of its bounds."""
    incidents = analyzer.scan(path).report(interval="1min")["incidents"]
    outage = [i for i in incidents if i["code"] == 7]
    assert len(outage) == 1  # the burst, and only it, is an incident of code 7
    lo, hi = (reports.parse_iso_ns(outage[0][k]) for k in ("start", "end"))
    # it holds the burst (and the warm buckets of the code's usual traffic around it)
    burst = (OUTAGE[0] * 10**9, (OUTAGE[0] + OUTAGE[1]) * 10**9)
    assert lo <= burst[0] < burst[1] <= hi <= burst[1] + 5 * BUCKET_NS, (lo, hi)
    for inc in incidents:
        starts = [e for e in events if e["event"] == "start" and e["code"] == inc["code"]]
        ends = [e for e in events if e["event"] == "end" and e["code"] == inc["code"]]
        assert len(starts) == len(ends) == 1, inc["code"]
        start_ns = reports.parse_iso_ns(inc["start"])
        assert abs(reports.parse_iso_ns(starts[0]["start"]) - start_ns) <= BUCKET_NS
        assert starts[0]["end"] is None and starts[0]["count"] <= inc["count"]
        assert (ends[0]["start"], ends[0]["end"]) == (inc["start"], inc["end"])
        assert ends[0]["count"] == inc["count"]
        # report places a DNSSEC failure's zone with the capture's zone-cut evidence,
        # which watch does not gather: only the outage's own zone is compared
        assert ends[0]["zones"][0] == inc["top_zones"][0]
        assert ends[0]["domains"] == inc["top_domains"][:len(ends[0]["domains"])]
        assert ends[0]["resolvers"] == inc["top_resolvers"][:len(ends[0]["resolvers"])]
    assert len(events) == 2 * len(incidents)


def test_injected_outage_on_standard_input(tmp_path: Path) -> None:
    path = with_outage(generate(tmp_path / "base.pcap", 30_000, 3600), tmp_path / "out.pcap")
    with open(path, "rb") as capture:
        done = subprocess.run([sys.executable, "-m", "analyzer", "watch", "-", "--events", "-"],
                              stdin=capture, capture_output=True, cwd=ROOT, timeout=WAIT_S)
    assert done.returncode == 0, done.stderr.decode()
    events = [json.loads(line) for line in done.stdout.decode().splitlines()]
    check_events(events, path)


def test_injected_outage_in_a_directory(tmp_path: Path,
                                        processes: list[Any]) -> None:  # noqa: F811
    spool = tmp_path / "spool"
    spool.mkdir()
    path = with_outage(generate(tmp_path / "base.pcap", 30_000, 3600), tmp_path / "out.pcap")
    events_path = tmp_path / "events.jsonl"
    port = free_port()
    proc = start_watch(str(spool), "--metrics", f"127.0.0.1:{port}", "--settle", "0.2",
                       "--events", str(events_path))
    processes.append(proc)
    wait_for(lambda: scrape(port), "the metrics endpoint", proc)
    path.rename(spool / "dns-1.pcap")
    wait_for(settled(port, lambda s: total(s, "capture_files_read_total") == 1),
             "the file to be read", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    check_events(events, spool / "dns-1.pcap")


def test_window_rows_stay_bounded_over_hours(tmp_path: Path) -> None:
    """Three hours of rotating 15-minute files, a 30-minute window: the rows held never
    exceed the window's EDE rows plus one file's."""
    events: list[dict[str, Any]] = []
    incidents = watchevents.Incidents(60, 1800)
    watcher = Watcher(watchmetrics.Metrics(), incidents, events.append)
    per_file = []
    for k in range(12):
        path = generate(tmp_path / f"dns-{k:02d}.pcap", 4000, 900, START_S + 900 * k, seed=k)
        assert watcher.read(path)
        per_file.append(json.loads(path.with_name(path.name + ".truth.json").read_text()))
        held = incidents.held_rows()
        # the window covers two files, and the oldest piece held may reach into a third
        assert held <= sum(t["ede_options"] for t in per_file[-3:]), (k, held)
        path.unlink()
    assert incidents.held_rows() >= per_file[-1]["ede_options"] > 0
    assert len(incidents.ended) <= len(events)


def test_many_small_pieces_are_joined_and_events_match_report() -> None:
    """A stream's chunks can hold a row or two each: the detector joins its pieces past a
    bound and still finds report's incidents."""
    incident = ROOT / "samples" / "incident.pcap"
    ede = analyzer.scan(incident).ede.sort_values("ts", kind="stable")
    incidents = watchevents.Incidents(60, 3600)
    events: list[dict[str, Any]] = []
    most = 0
    for i in range(len(ede)):
        row = ede.iloc[i:i + 1]
        ts = int(row["ts"].to_numpy(dtype="int64")[0])
        incidents.add(row, ts, ts)
        if incidents.due():
            events += incidents.evaluate()
        most = max(most, len(incidents.pieces))
    events += incidents.evaluate("stream-ended")
    assert len(ede) > 300 and most <= 65  # joined, not one piece per row
    assert incidents.held_rows() == len(ede)  # the capture is shorter than the window
    report = analyzer.scan(incident).report(interval="1min")["incidents"]
    assert {(e["code"], e["start"], e["end"]) for e in events if e["event"] == "end"} == \
        {(i["code"], i["start"], i["end"]) for i in report}


def test_events_do_not_depend_on_how_the_stream_arrives(tmp_path: Path) -> None:
    """The same traffic trickling through a pipe a packet's worth at a time, and read from a
    file in large chunks: the same events, byte for byte (the detector looks at complete
    buckets only, at every boundary)."""
    path = with_outage(generate(tmp_path / "base.pcap", 30_000, 3600), tmp_path / "out.pcap")
    with open(path, "rb") as capture:
        whole = subprocess.run([sys.executable, "-m", "analyzer", "watch", "-", "--events", "-"],
                               stdin=capture, capture_output=True, cwd=ROOT, timeout=WAIT_S)
    assert whole.returncode == 0, whole.stderr.decode()
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", "watch", "-", "--events", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdin is not None
    data = path.read_bytes()
    for at in range(0, len(data), 1500):  # about a packet per write, as tcpdump -U writes
        proc.stdin.write(data[at:at + 1500])
        proc.stdin.flush()
    trickled, errors = proc.communicate(timeout=WAIT_S)  # closes standard input
    assert proc.returncode == 0, errors.decode()
    assert trickled == whole.stdout
    assert trickled.count(b'"event":"start"') >= 1
