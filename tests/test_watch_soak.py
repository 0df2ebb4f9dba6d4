"""``watch`` over hours of rotating captures, time-compressed (bench/watch_soak.py, a real
process): its memory stays flat; and the counters' labels stay bounded whatever codes and
senders the traffic holds."""

from __future__ import annotations

import importlib.util
import io
import threading
import time
from pathlib import Path

from captures import frame, pcap, records, response, udp
from watchproc import ROOT

import analyzer
from analyzer import codes, watchmetrics
from analyzer.follow import Follower

_spec = importlib.util.spec_from_file_location("watch_soak", ROOT / "bench" / "watch_soak.py")
assert _spec is not None and _spec.loader is not None
watch_soak = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(watch_soak)

WAIT = 10.0
GROWTH_MIB = 4.0  # allocator noise; the rows of a window not pruned add more than this


def test_memory_stays_flat_over_hours(tmp_path: Path) -> None:
    # 4 simulated hours in 5-minute files, a 30-minute window; a third of the responses
    # carry an EDE so that rows kept past the window would show
    result = watch_soak.soak(tmp_path, hours=4, file_minutes=5, packets=6000,
                             window="30min", ede_share=0.3)
    assert result["exit_code"] == 0
    assert result["files"] == 48 and result["simulated_hours"] == 4.0
    assert result["second_half_peak_mib"] <= result["first_half_peak_mib"] + GROWTH_MIB, \
        result["samples"]


def test_code_labels_are_bounded() -> None:
    # one response per code: every catalogue code, then 100 private-use ones
    listed = sorted(codes.CATALOGUE)
    private = list(range(60000, 60100))
    data = pcap(records(frame(udp(response(f"c{c}.example", dns_id=i, edes=[(c, "")])))
                        for i, c in enumerate(listed + private)))
    metrics = watchmetrics.Metrics()
    metrics.add_ede(analyzer.scan(io.BytesIO(data)).ede)
    seen = {s.labels["code"]: s.value
            for family in metrics.registry.collect() if family.name == "ede_options"
            for s in family.samples if s.name == "ede_options_total"}
    own = {str(c) for c in listed + private[:watchmetrics.MAX_UNLISTED_CODES]}
    assert set(seen) == own | {"other"}
    assert seen["other"] == len(private) - watchmetrics.MAX_UNLISTED_CODES
    assert sum(seen.values()) == len(listed) + len(private)


def test_files_rotated_away_while_listed_are_skipped(tmp_path: Path) -> None:
    """A rotation ring deletes files at any moment, also between the directory listing and
    the look at a file's size (the 12-hour soak stopped there once with 'No such file')."""
    stop = time.monotonic() + 2.0
    made = [0]

    def churn() -> None:  # a writer creating and rotating files away as fast as it can
        while time.monotonic() < stop:
            path = tmp_path / f"dns-{made[0]}.pcap"
            path.write_bytes(b"x")
            path.unlink()
            made[0] += 1

    writer = threading.Thread(target=churn)
    writer.start()
    follower = Follower([tmp_path], settle_s=0)
    calls = 0
    try:
        while time.monotonic() < stop:
            follower.ready()
            calls += 1
    finally:
        writer.join(WAIT)
    assert calls > 1000 and made[0] > 1000  # the race had every chance (it hit in ~0.1%)
    (tmp_path / "dns-kept.pcap").write_bytes(b"x")
    assert follower.ready() == [tmp_path / "dns-kept.pcap"]
