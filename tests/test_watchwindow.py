"""The report window of ``watch`` (``watchwindow.Window``) read by a real ``Watcher``: the
report of a window holding all the traffic is ``report``'s, a shorter one holds the recent
part only, read whole or a few kilobytes at a time from a pipe."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from captures import T0, Rec, frame, pcap, response, udp

import analyzer
from analyzer import filters, pipeline, reports
from analyzer.watch import Watcher
from analyzer.watchevents import Incidents
from analyzer.watchmetrics import Metrics
from analyzer.watchwindow import Window

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
REAL = ROOT / "tests" / "real"
INCIDENT = SAMPLES / "incident.pcap"
FOREVER = 10**8  # seconds: a window that holds every sample

SETS = {
    "incident": [INCIDENT],
    "samples": [SAMPLES / n for n in ("before.pcap", "after.pcap", "all-codes.pcapng",
                                      "transports.pcap", "transports-sll.pcap")],
    "dnstap-and-pcap": sorted((REAL / "dnstap").glob("*.dnstap"))
    + sorted((REAL / "dnstap").glob("*.pcap")),
    "tunnels": sorted((SAMPLES / "tunnels").glob("*.pcap")) + [REAL / "vxlan.pcap",
                                                                  REAL / "nflog.pcap"],
    "broken": sorted((SAMPLES / "broken").glob("*.pcap")),
}


def watcher(span_s: int = FOREVER) -> Watcher:
    return Watcher(Metrics(), Incidents(60, 3600), lambda event: None,
                   window=Window(60, span_s))


def as_json(report: dict[str, Any]) -> Any:
    return json.loads(json.dumps(report, default=str))


@pytest.mark.parametrize("name", SETS)
def test_a_window_of_all_the_traffic_is_reports_report(name: str) -> None:
    w = watcher()
    for path in SETS[name]:
        w.read(path)
    assert w.window is not None
    mine = as_json(reports.build_report(w.window.result()))
    theirs = as_json(reports.build_report(pipeline.scan(SETS[name])))
    assert mine == theirs


def trickle(path: Path, piece: int = 4096) -> int:
    """Return the read end of a pipe that a thread fills with ``path`` a piece at a time."""
    read_end, write_end = os.pipe()
    data = path.read_bytes()

    def write() -> None:
        with os.fdopen(write_end, "wb") as out:
            for at in range(0, len(data), piece):
                out.write(data[at:at + piece])
                out.flush()
                time.sleep(0.001)

    threading.Thread(target=write, daemon=True).start()
    return read_end


def read_trickled(w: Watcher, path: Path, piece: int = 4096) -> None:
    with os.fdopen(trickle(path, piece), "rb") as stream:
        assert w.read(stream, eager=True, file=False)


def test_a_stream_taken_a_chunk_at_a_time_adds_up_to_the_report() -> None:
    w = watcher()
    read_trickled(w, INCIDENT)
    assert w.window is not None and len(w.window.pieces) == 30  # one a minute
    mine = as_json(reports.build_report(w.window.result()))
    theirs = as_json(reports.build_report(analyzer.scan(INCIDENT)))
    for entry in (mine, theirs):
        entry["captures"][0]["path"] = None  # a pipe has no name
    assert mine == theirs


def test_a_shorter_window_holds_only_the_recent_traffic() -> None:
    w = watcher(span_s=600)
    read_trickled(w, INCIDENT)
    assert w.window is not None
    assert len(w.window.pieces) == 10  # 09:20 .. 09:29, the older ones dropped
    start = w.window.start_ns()
    assert reports.iso(start) == "2024-03-12T09:20:00Z"
    result = w.window.result()
    mine = as_json(reports.build_report(result))
    since = filters.build(since="2024-03-12T09:20:00Z")
    full = analyzer.scan(INCIDENT)
    theirs = as_json(reports.build_report(full, filters=since))
    # what the EDE rows say is report --since's, exactly
    for key in ("domains", "zones", "resolvers", "hints"):
        assert mine[key] == theirs[key], key
    assert [{k: v for k, v in c.items() if k != "share"} for c in mine["codes"]] == \
        [{k: v for k, v in c.items() if k != "share"} for c in theirs["codes"]]
    assert len(result.ede) == int((full.ede["ts"] >= "2024-03-12T09:20:00Z").sum()) == 29
    # responses by their own second; report --since also counts the second that ends
    # at --since (reports._responses_in_window), the window does not
    in_window = sum(n for s, n in full.response_seconds.items() if s * 10**9 >= start)
    assert mine["summary"]["dns_responses"] == in_window == 691
    assert mine["summary"]["responses_with_ede"] == 28
    assert mine["captures"][0]["first_seen"] == "2024-03-12T09:20:00Z"
    assert mine["captures"][0]["last_seen"] == theirs["captures"][0]["last_seen"]


def test_the_buckets_stay_within_the_span() -> None:
    w = watcher(span_s=180)
    read_trickled(w, INCIDENT)
    assert w.window is not None
    assert sorted(w.window.pieces) == [28_503_927, 28_503_928, 28_503_929]
    result = w.window.result()
    assert len(result.ede) == int((analyzer.scan(INCIDENT).ede["ts"]
                                   >= "2024-03-12T09:27:00Z").sum())


def test_responses_over_many_hours_add_up_after_the_buckets_coarsen(tmp_path: Path) -> None:
    # 20,000 responses a second apart (5.6 h): past 10,000 seconds the scanner's per-second
    # response buckets become minutes (counts.MessageCounts.coarsen); what the window took
    # before and after still adds up to report's
    capture = tmp_path / "hours.pcap"
    ede = frame(udp(response("x.example.com", edes=((22, ""),))))
    plain = frame(udp(response("y.example.com", edes=None)))
    capture.write_bytes(pcap([Rec(T0 + i * 10**9, ede if i % 100 == 0 else plain)
                              for i in range(20_000)]))
    w = watcher()
    read_trickled(w, capture, piece=65536)
    assert w.window is not None
    mine = as_json(reports.build_report(w.window.result()))
    theirs = as_json(reports.build_report(pipeline.scan([capture])))
    for entry in (mine, theirs):
        entry["captures"][0]["path"] = None
    assert mine["summary"]["dns_responses"] == 20_000
    assert mine["summary"]["ede_options"] == 200
    assert mine == theirs
