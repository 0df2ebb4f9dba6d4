"""``ede-pcap watch`` as a real process: a directory and a pipe fed while it runs, /metrics
scraped over HTTP and compared with ``analyzer.scan`` on the same files, SIGTERM -> exit 0.

Every wait is bounded, so a hang fails in seconds rather than stalling the suite.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from watchproc import (
    ALL_CODES,
    DNSTAP,
    INCIDENT,
    ROOT,
    WAIT_S,
    by_label,
    drop,
    expected,
    free_port,
    scrape,
    settled,
    start_watch,
    total,
    wait_for,
)

import analyzer


def test_directory_counters_equal_scan(tmp_path: Path, processes: list[Any]) -> None:
    port = free_port()
    proc = start_watch(str(tmp_path), "--metrics", f"127.0.0.1:{port}", "--settle", "0.2")
    processes.append(proc)
    wait_for(lambda: scrape(port), "the metrics endpoint", proc)
    files = [INCIDENT, ALL_CODES, DNSTAP]
    for i, source in enumerate(files, 1):  # one after another, each seen before the next
        drop(tmp_path, source, f"{i:02d}-{source.name}")
        wait_for(settled(port, lambda s, i=i: total(s, "capture_files_read_total") == i),
                 f"file {i} to be read", proc)
    samples = wait_for(settled(port, lambda s: True), "the counters to settle", proc)
    want = expected(files)
    assert by_label(samples, "ede_options_total", "code") == want["codes"]
    assert by_label(samples, "ede_options_total", "resolver") == want["resolvers"]
    assert by_label(samples, "ede_responses_total", "resolver") == want["ede_responses"]
    assert total(samples, "dns_responses_total") == want["dns_responses"]
    assert by_label(samples, "packets_total", "category") == want["accounting"]
    assert total(samples, "capture_bytes_read_total") == want["bytes"]
    assert len(want["codes"]) > 20  # all-codes.pcapng: the comparison covers many codes
    # the lag is the time since the newest packet of all files
    assert total(samples, "lag_seconds") == pytest.approx(time.time() - want["newest_s"],
                                                          abs=WAIT_S)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0


def test_growing_file_is_read_once_complete(tmp_path: Path, processes: list[Any]) -> None:
    port = free_port()
    proc = start_watch(str(tmp_path), "--metrics", f"127.0.0.1:{port}", "--settle", "1.5")
    processes.append(proc)
    wait_for(lambda: scrape(port), "the metrics endpoint", proc)
    data = INCIDENT.read_bytes()
    with open(tmp_path / "dns-1.pcap", "wb") as out:  # a writer still at work
        out.write(data[:len(data) // 2])
        out.flush()
        time.sleep(0.5)
        out.write(data[len(data) // 2:])
    samples = wait_for(settled(port, lambda s: total(s, "capture_files_read_total") == 1),
                       "the file to be read", proc)
    want = expected([INCIDENT])
    assert by_label(samples, "packets_total", "category") == want["accounting"]
    assert by_label(samples, "ede_options_total", "code") == want["codes"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(WAIT_S) == 0


def test_pipe_incident_events_match_report() -> None:
    with open(INCIDENT, "rb") as capture:
        done = subprocess.run(
            f"cat {INCIDENT} | {sys.executable} -m analyzer watch - --events -", shell=True,
            stdin=capture, capture_output=True, cwd=ROOT, timeout=WAIT_S)
    assert done.returncode == 0, done.stderr.decode()
    events = [json.loads(line) for line in done.stdout.decode().splitlines()]
    report = analyzer.scan(INCIDENT).report(interval="1min")
    wanted = {(i["code"], i["start"], i["end"]) for i in report["incidents"]}
    assert wanted  # incident.pcap holds an outage
    ends = [e for e in events if e["event"] == "end"]
    assert {(e["code"], e["start"], e["end"]) for e in ends} == wanted
    starts = [e for e in events if e["event"] == "start"]
    assert sorted(e["code"] for e in starts) == sorted(e["code"] for e in ends)
    for event in ends:
        incident = next(i for i in report["incidents"] if i["code"] == event["code"])
        assert event["count"] == incident["count"]
        assert event["zones"] == incident["top_zones"][:len(event["zones"])]
        assert event["resolvers"] == incident["top_resolvers"][:len(event["resolvers"])]
        assert event["next_step"]


def test_stream_counts_before_its_end_and_sigterm_exits_0(processes: list[Any]) -> None:
    port = free_port()
    proc = start_watch("-", "--metrics", f"127.0.0.1:{port}", "--max-resolvers", "1",
                       stdin=subprocess.PIPE)
    processes.append(proc)
    assert proc.stdin is not None
    proc.stdin.write(INCIDENT.read_bytes())  # the whole capture, but the pipe stays open
    proc.stdin.flush()
    want = expected([INCIDENT])
    samples = wait_for(settled(port, lambda s: total(s, "dns_responses_total")
                               == want["dns_responses"]), "the stream's counts", proc)
    # two resolvers answer in incident.pcap; with --max-resolvers 1 the second is 'other'
    resolvers = by_label(samples, "ede_options_total", "resolver")
    assert len(resolvers) == 2 and "other" in resolvers
    assert sum(resolvers.values()) == sum(want["codes"].values())
    proc.send_signal(signal.SIGTERM)  # while it waits in a read
    assert proc.wait(WAIT_S) == 0
    proc.stdin.close()


def test_refuses_what_this_slice_does_not_read(tmp_path: Path) -> None:
    for args in ([str(tmp_path / "missing.pcap")], ["-", str(tmp_path)],
                 ["samples/incident.pcap", str(tmp_path)],
                 ["samples/incident.pcap", "samples/before.pcap"]):
        done = subprocess.run([sys.executable, "-m", "analyzer", "watch", *args],
                              capture_output=True, cwd=ROOT, timeout=WAIT_S,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 2, done.stderr.decode()
