"""``ede-pcap watch DIR`` reading the directory's newest file while it is being written, as
real processes: a writer appends capture bytes (cut anywhere) to the newest file, the
counters move before any newer file appears, a rotation hands over to the next file, and
a watch killed (-9) in the middle of the newest file resumes from its ``--state``; the
scraped counters must equal ``analyzer.scan`` of the same files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_watch_follow import (
    UNBOUND,
    assert_counts,
    finish,
    packets_equal,
    read_state,
    write,
)
from watchproc import (
    ALL_CODES,
    INCIDENT,
    MAKE_CAPTURE,
    WAIT_S,
    expected,
    free_port,
    scrape,
    settled,
    start_watch,
    total,
    wait_for,
)

COUNTED_WITHIN_S = 5.0  # a record written to the newest file shows in /metrics by then


def later(path: Path, after: Path) -> None:
    """Give ``path`` a modification time after ``after``'s, as the next file of a rotating
    writer has."""
    t = after.stat().st_mtime + 1
    os.utime(path, (t, t))


@pytest.mark.parametrize("source", [INCIDENT, ALL_CODES, UNBOUND], ids=lambda p: p.name)
def test_newest_file_counted_as_written_then_rotation(tmp_path: Path, processes: list[Any],  # noqa: F811
                                                      source: Path) -> None:
    port = free_port()
    proc = start_watch(str(tmp_path), "--metrics", f"127.0.0.1:{port}")
    processes.append(proc)
    wait_for(lambda: scrape(port), "the metrics endpoint", proc)
    first = tmp_path / f"dns-1{source.suffix}"
    writer = write(source, first, seconds=4.0, pieces=40)
    began = time.monotonic()
    final = sum(expected([source])["accounting"].values())
    # counted while the writer is still at work, with no newer file in the directory
    wait_for(lambda: 0 < total(scrape(port) or {}, "packets_total") < final,
             "a part of the newest file to be counted", proc)
    assert time.monotonic() - began < COUNTED_WITHIN_S
    assert writer.poll() is None
    assert os.listdir(tmp_path) == [first.name]
    finish(writer)
    samples = wait_for(packets_equal(port, [source]), "the whole newest file", proc)
    assert_counts(samples, [source])
    assert total(samples, "capture_files_read_total") == 0  # still followed: no newer file
    # the writer rotates: the next file appears, and the first one is done
    second = tmp_path / "dns-2.pcap"
    second.write_bytes(INCIDENT.read_bytes()[:100])  # begun: a header and a cut record
    later(second, first)
    samples = wait_for(settled(port, lambda s: total(s, "capture_files_read_total") == 1),
                       "the first file to be done", proc)
    assert_counts(samples, [source])
    with open(second, "ab") as f:
        f.write(INCIDENT.read_bytes()[100:])
    samples = wait_for(packets_equal(port, [source, INCIDENT]), "the second file", proc)
    assert_counts(samples, [source, INCIDENT])
    assert total(samples, "capture_files_read_total") == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated pcap large enough for a kill to land while it is being written."""
    if not MAKE_CAPTURE.exists():
        pytest.skip("../shared/bench/make_capture.py is not here")
    out = tmp_path_factory.mktemp("gen") / "gen.pcap"
    subprocess.run([sys.executable, str(MAKE_CAPTURE), str(out), "--packets", "100000",
                    "--seed", "7", "--start", "1735689600", "--quiet"], check=True,
                   timeout=WAIT_S)
    return out


def test_kill_9_while_newest_file_is_written_then_resume(tmp_path: Path,
                                                         processes: list[Any],  # noqa: F811
                                                         generated: Path) -> None:
    spool, state = tmp_path / "spool", tmp_path / "watch.state"
    spool.mkdir()
    live = spool / "dns-1.pcap"
    writer = write(generated, live, seconds=8.0, pieces=80)
    wait_for(live.exists, "the writer's file", writer)  # type: ignore[arg-type]
    args = [str(spool), "--state", str(state), "--state-every", "0.3",
            "--max-resolvers", "1000"]
    port = free_port()
    proc = start_watch(*args, "--metrics", f"127.0.0.1:{port}")
    processes.append(proc)

    def in_the_live_file() -> bool:
        s = read_state(state)
        reading = s and s["files"]["reading"]
        return bool(reading and reading["path"] == str(live) and reading["records"] > 10_000)
    wait_for(in_the_live_file, "a checkpoint in the middle of the file being written", proc)
    assert writer.poll() is None  # killed while the file is still being written
    proc.kill()
    proc.wait(WAIT_S)
    stopped = read_state(state)
    assert stopped is not None and stopped["files"]["done"] == []
    assert stopped["files"]["reading"]["offset"] is not None  # resumes at a record boundary
    proc = start_watch(*args, "--metrics", f"127.0.0.1:{port}")
    processes.append(proc)
    finish(writer)
    samples = wait_for(packets_equal(port, [generated]), "the whole file", proc)
    assert_counts(samples, [generated])
    # a rotation after the restart: the resumed file is done, the next one counted on top
    nxt = spool / "dns-2.pcap"
    hidden = spool / ".dns-2.pcap"
    hidden.write_bytes(INCIDENT.read_bytes())
    later(hidden, live)
    os.replace(hidden, nxt)
    samples = wait_for(settled(port, lambda s: total(s, "capture_files_read_total") == 1
                               and total(s, "packets_total")
                               == sum(expected([generated, INCIDENT])["accounting"].values())),
                       "the next file", proc)
    assert_counts(samples, [generated, INCIDENT])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0


def test_newest_file_not_a_capture_is_warned_about_once(tmp_path: Path,
                                                        processes: list[Any]) -> None:  # noqa: F811
    """A file that is not a capture, written in pieces (fewer bytes than a capture's header
    at first), is the newest: one warning, and it is skipped as it grows; the capture that
    comes after it is counted."""
    port = free_port()
    proc = start_watch(str(tmp_path), "--metrics", f"127.0.0.1:{port}")
    processes.append(proc)
    wait_for(lambda: scrape(port), "the metrics endpoint", proc)
    notes = tmp_path / "notes.txt"
    with open(notes, "wb") as f:
        for _ in range(15):  # 20 bytes at a time: under 64 for the first three pieces
            f.write(b"not a capture file\n\n")
            f.flush()
            time.sleep(0.1)
    (tmp_path / ".hidden.pcap").write_bytes(b"left alone: hidden")
    capture = tmp_path / "dns-1.pcap"
    capture.write_bytes(INCIDENT.read_bytes())
    later(capture, notes)
    samples = wait_for(packets_equal(port, [INCIDENT]), "the capture after it", proc)
    assert_counts(samples, [INCIDENT])
    with open(notes, "ab") as f:  # it grows again: still not read, nor warned about
        f.write(b"more lines\n" * 10)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0
    lines = err.decode().splitlines()
    assert len(lines) == 1 and "notes.txt" in lines[0] and "warning" in lines[0], lines
