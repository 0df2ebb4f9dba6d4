"""``ede-pcap watch`` following a growing file and resuming with ``--state``, as real
processes: a writer appends capture bytes (cut anywhere) while watch runs, files are
replaced, truncated, deleted and names reused, watch is killed (-9) or stopped (SIGTERM)
and started again; the scraped counters must equal ``analyzer.scan`` of the same bytes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_watch import (
    ALL_CODES,
    DNSTAP,
    INCIDENT,
    ROOT,
    WAIT_S,
    by_label,
    drop,
    expected,
    free_port,
    processes,  # noqa: F401 - the fixture
    scrape,
    settled,
    start_watch,
    total,
    wait_for,
)

WRITER = Path(__file__).resolve().parent / "grow_writer.py"
MAKE_CAPTURE = ROOT.parent / "shared" / "bench" / "make_capture.py"
UNBOUND = ROOT / "tests" / "real" / "dnstap" / "unbound.dnstap"


def write(src: Path, dst: Path, seconds: float = 2.0, pieces: int = 20,
          append: bool = False, skip: int = 0) -> subprocess.Popen[bytes]:
    """Start a writer process appending ``src`` (but its first ``skip`` bytes) to ``dst``
    over ``seconds``."""
    args = [sys.executable, str(WRITER), str(src), str(dst), "--seconds", str(seconds),
            "--pieces", str(pieces), "--skip", str(skip)]
    return subprocess.Popen([*args, "--append"] if append else args)


def finish(writer: subprocess.Popen[bytes]) -> None:
    assert writer.wait(WAIT_S) == 0


def assert_counts(samples: dict[Any, float], sources: list[Path]) -> None:
    """The counters equal what ``analyzer.scan`` finds in ``sources``, exactly."""
    want = {k: {a: n for a, n in v.items() if n} if isinstance(v, dict) else v
            for k, v in expected(sources).items()}
    assert by_label(samples, "packets_total", "category") == want["accounting"]
    assert total(samples, "dns_responses_total") == want["dns_responses"]
    assert by_label(samples, "ede_options_total", "code") == want["codes"]
    assert by_label(samples, "ede_options_total", "resolver") == want["resolvers"]
    assert by_label(samples, "ede_responses_total", "resolver") == want["ede_responses"]
    assert total(samples, "capture_bytes_read_total") == want["bytes"]


def packets_equal(port: int, sources: list[Path]) -> Any:
    """A check: true (the samples) once the packet count is that of ``sources``, steadily."""
    packets = sum(expected(sources)["accounting"].values())
    return settled(port, lambda s: total(s, "packets_total") == packets)


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (FileNotFoundError, ValueError):
        return None  # not written yet (it is renamed into place whole)


def starts(events: Path) -> list[tuple[int, str]]:
    """The incidents started in the events file, asserting that none started while open."""
    lines = events.read_text().splitlines() if events.exists() else []
    started, open_now = [], set()
    for event in map(json.loads, lines):
        key = (event["code"], event["start"])
        if event["event"] == "start":
            assert key not in open_now, f"incident {key} started twice"
            open_now.add(key)
            started.append(key)
        else:
            assert key in open_now, f"incident {key} ended but never started"
            open_now.discard(key)
    return started


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Generated captures large enough for a kill to land in the middle of a file: a pcap,
    a pcapng and a dnstap log."""
    if not MAKE_CAPTURE.exists():
        pytest.skip("../shared/bench/make_capture.py is not here")
    folder = tmp_path_factory.mktemp("big")
    out = [folder / "a.pcap", folder / "b.pcapng", folder / "c.dnstap"]
    start = 1735689600  # one hour each, one after another, as a rotating writer's files
    for cmd in ([str(MAKE_CAPTURE), str(out[0]), "--packets", "200000", "--seed", "3",
                 "--start", str(start)],
                [str(MAKE_CAPTURE), str(out[1]), "--packets", "100000", "--seed", "4",
                 "--format", "pcapng", "--start", str(start + 3600)],
                [str(ROOT / "bench" / "make_dnstap.py"), str(out[2]), "--messages", "100000",
                 "--seed", "5", "--start", str(start + 7200)]):
        subprocess.run([sys.executable, *cmd, "--quiet"], check=True, timeout=WAIT_S)
    return out


@pytest.mark.parametrize("source", [INCIDENT, ALL_CODES, UNBOUND], ids=lambda p: p.name)
def test_growing_file_counted_as_appended(tmp_path: Path, processes: list[Any],  # noqa: F811
                                          source: Path) -> None:
    live = tmp_path / f"live{source.suffix}"
    live.write_bytes(source.read_bytes()[:30])  # the writer has begun: a header, cut short
    port = free_port()
    proc = start_watch(str(live), "--metrics", f"127.0.0.1:{port}")
    processes.append(proc)
    wait_for(lambda: scrape(port), "the metrics endpoint", proc)
    writer = write(source, live, seconds=3.0, pieces=30, append=True, skip=30)
    final = sum(expected([source])["accounting"].values())
    # counted while the writer is still at work, not only at its end
    wait_for(lambda: 0 < total(scrape(port) or {}, "packets_total") < final,
             "a part of the file to be counted", proc)
    assert writer.poll() is None
    finish(writer)
    samples = wait_for(packets_equal(port, [source]), "the whole file", proc)
    assert_counts(samples, [source])
    assert total(samples, "capture_files_read_total") == 0  # not finished: still followed
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0


def test_file_replaced_truncated_deleted(tmp_path: Path, processes: list[Any]) -> None:  # noqa: F811
    live = tmp_path / "dns.pcap"
    finish(write(INCIDENT, live, seconds=0.5))
    port = free_port()
    proc = start_watch(str(live), "--metrics", f"127.0.0.1:{port}")
    processes.append(proc)
    read: list[Path] = [INCIDENT]
    wait_for(packets_equal(port, read), "the first file", proc)
    # rotated away (new inode at the path): the old file's bytes, then the new file
    os.rename(live, tmp_path / "dns.pcap.1")
    finish(write(ALL_CODES, live, seconds=1.0))
    read.append(ALL_CODES)
    wait_for(packets_equal(port, read), "the file that replaced it", proc)
    # copytruncate: emptied in place, then written again from its start
    os.truncate(live, 0)
    time.sleep(1.0)
    finish(write(UNBOUND, live, seconds=1.0, append=True))
    read.append(UNBOUND)
    wait_for(packets_equal(port, read), "the truncated file's new content", proc)
    # deleted while its writer goes on: what the descriptor holds is read to its end
    os.unlink(live)
    counted = total(scrape(port) or {}, "packets_total")
    writer = write(INCIDENT, live, seconds=3.0, pieces=30)
    wait_for(lambda: total(scrape(port) or {}, "packets_total") > counted,
             "the new file to be read", proc)
    os.unlink(live)
    assert writer.poll() is None  # still writing, to a file that has no name any more
    finish(writer)
    read.append(INCIDENT)
    wait_for(packets_equal(port, read), "the deleted file, to its end", proc)
    # ... and the path is waited on until a file appears there again
    finish(write(DNSTAP, live, seconds=0.5))
    read.append(DNSTAP)
    samples = wait_for(packets_equal(port, read), "the file that reappeared", proc)
    assert_counts(samples, read)
    assert total(samples, "capture_files_read_total") == 4  # every file but the live one
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0


def test_ring_reusing_names_reads_new_content(tmp_path: Path,
                                              processes: list[Any]) -> None:  # noqa: F811
    port = free_port()
    proc = start_watch(str(tmp_path), "--metrics", f"127.0.0.1:{port}", "--settle", "0.3")
    processes.append(proc)
    read: list[Path] = []
    for name, source in (("ring0", INCIDENT), ("ring1", ALL_CODES)):
        drop(tmp_path, source, name)
        read.append(source)
        wait_for(packets_equal(port, read), f"{name} to be read", proc)
    time.sleep(0.05)  # a later mtime, as a ring writer coming round again gives
    with open(tmp_path / "ring0", "r+b") as f:  # tcpdump -W reopens with O_TRUNC
        f.truncate(0)
        f.write(UNBOUND.read_bytes())
    read.append(UNBOUND)
    samples = wait_for(packets_equal(port, read), "ring0's new content", proc)
    assert_counts(samples, read)
    assert total(samples, "capture_files_read_total") == 3
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0


def test_kill_9_mid_directory_then_resume(tmp_path: Path, processes: list[Any],  # noqa: F811
                                          big: list[Path]) -> None:
    spool, state, events = tmp_path / "spool", tmp_path / "watch.state", tmp_path / "ev.jsonl"
    spool.mkdir()
    for i, source in enumerate(big):
        drop(spool, source, f"dns-{i}{source.suffix}")
        os.utime(spool / f"dns-{i}{source.suffix}", (1000 + i, 1000 + i))  # in this order
    args = [str(spool), "--state", str(state), "--state-every", "0.3", "--settle", "0.2",
            "--events", str(events), "--max-resolvers", "1000"]
    port = free_port()
    proc = start_watch(*args, "--metrics", f"127.0.0.1:{port}")
    processes.append(proc)

    def in_a_file() -> bool:  # a checkpoint in the middle of a file, after the first
        s = read_state(state)
        reading = s and s["files"]["reading"]
        return bool(reading and reading["records"] and s["files"]["done"])
    wait_for(in_a_file, "a checkpoint in the middle of a file", proc)
    proc.kill()
    proc.wait(WAIT_S)
    stopped = read_state(state)
    assert stopped is not None and stopped["files"]["reading"]["records"] > 0
    proc = start_watch(*args, "--metrics", f"127.0.0.1:{port}")
    processes.append(proc)
    samples = wait_for(settled(port, lambda s: total(s, "capture_files_read_total") == 3),
                       "every file to be read", proc)
    assert_counts(samples, big)
    assert starts(events), "the generated traffic holds incidents"  # none started twice
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0


def test_kill_9_mid_growing_file_then_resume(tmp_path: Path, processes: list[Any],  # noqa: F811
                                             big: list[Path]) -> None:
    live, state = tmp_path / "dns.pcap", tmp_path / "watch.state"
    writer = write(big[0], live, seconds=6.0, pieces=60)
    wait_for(live.exists, "the writer's file", writer)  # type: ignore[arg-type]
    args = [str(live), "--state", str(state), "--state-every", "0.3", "--max-resolvers", "1000"]
    port = free_port()
    proc = start_watch(*args, "--metrics", f"127.0.0.1:{port}")
    processes.append(proc)

    def checkpointed() -> bool:
        s = read_state(state)
        return bool(s and s["files"]["records"] > 20_000)
    wait_for(checkpointed, "a checkpoint in the middle of the file", proc)
    proc.kill()
    proc.wait(WAIT_S)
    proc = start_watch(*args, "--metrics", f"127.0.0.1:{port}")
    processes.append(proc)
    finish(writer)
    samples = wait_for(packets_equal(port, [big[0]]), "the whole file", proc)
    assert_counts(samples, [big[0]])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0


def test_sigterm_then_restart_counts_nothing_twice(tmp_path: Path,
                                                   processes: list[Any]) -> None:  # noqa: F811
    spool, state, events = tmp_path / "spool", tmp_path / "watch.state", tmp_path / "ev.jsonl"
    spool.mkdir()
    sources = [INCIDENT, ALL_CODES]
    for i, source in enumerate(sources):
        drop(spool, source, f"dns-{i}{source.suffix}")
        os.utime(spool / f"dns-{i}{source.suffix}", (1000 + i, 1000 + i))
    args = [str(spool), "--state", str(state), "--settle", "0.2", "--events", str(events)]
    port = free_port()
    proc = start_watch(*args, "--metrics", f"127.0.0.1:{port}")
    processes.append(proc)
    before = wait_for(settled(port, lambda s: total(s, "capture_files_read_total") == 2),
                      "both files", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0
    first_starts = starts(events)
    assert first_starts  # incident.pcap holds incidents
    proc = start_watch(*args, "--metrics", f"127.0.0.1:{port}")
    processes.append(proc)
    wait_for(lambda: scrape(port), "the metrics endpoint", proc)
    time.sleep(1.5)  # time enough to (wrongly) read the files again
    after = wait_for(settled(port, lambda s: True), "the counters", proc)
    lagless = {k: v for k, v in before.items() if k[0] != "lag_seconds"}
    assert {k: v for k, v in after.items() if k[0] != "lag_seconds"} == lagless
    assert_counts(after, sources)
    # one more file after the restart is counted on top
    drop(spool, DNSTAP, "dns-2.dnstap")
    samples = wait_for(settled(port, lambda s: total(s, "capture_files_read_total") == 3),
                       "the new file", proc)
    assert_counts(samples, [*sources, DNSTAP])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0
    assert starts(events) == first_starts  # the incidents open at the stop went on
    # the checkpoint is this watch's: another one's sources are refused, the file kept
    kept = state.read_bytes()
    done = subprocess.run([sys.executable, "-m", "analyzer", "watch", str(INCIDENT),
                           "--state", str(state)], capture_output=True, cwd=ROOT,
                          timeout=WAIT_S, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and str(spool) in lines[0], lines
    assert state.read_bytes() == kept


@pytest.mark.parametrize("content", [b"\x00garbage\xff", b'{"format": "something else"}',
                                     b'{"format": "ede-pcap watch state", "version": 1}',
                                     b'{"format": "ede-pcap watch state", "version": 99}',
                                     b'{"format": "ede-pcap watch state", "version": 1, '
                                     b'"rows": "watch.state.rows-1.parquet"}'],
                         ids=["binary", "foreign", "damaged", "other-version", "rows-missing"])
def test_unusable_state_file_exits_2(tmp_path: Path, content: bytes) -> None:
    state = tmp_path / "watch.state"
    state.write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "analyzer", "watch", str(tmp_path),
                           "--state", str(state)], capture_output=True, cwd=ROOT,
                          timeout=WAIT_S, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr.decode()
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and str(state) in lines[0], lines
    assert state.read_bytes() == content  # left as it was, not started over


def _counter_samples(metrics: Any) -> dict[Any, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in metrics.registry.collect() for s in family.samples
            if s.name.endswith("_total")}


@pytest.mark.parametrize("which", [0, 1, 2], ids=["pcap", "pcapng", "dnstap"])
def test_stopped_and_resumed_at_any_chunk_counts_as_one_pass(tmp_path: Path, big: list[Path],
                                                             which: int) -> None:
    """Stopped after a few chunks, checkpointed, resumed by a new Watcher (records skipped
    as warm-up): the counters and events equal one uninterrupted pass, exactly."""
    from analyzer import watchevents, watchmetrics, watchstate
    from analyzer.watch import Progress, Stopped, Watcher

    source = big[which]

    def fresh(events: list[Any]) -> Watcher:
        return Watcher(watchmetrics.Metrics(1000), watchevents.Incidents(60, 3600),
                       events.append)

    one_pass: list[Any] = []
    watcher = fresh(one_pass)
    watcher.read(source, progress=Progress())
    want = _counter_samples(watcher.metrics)

    class Position:  # the checkpoint's "files": where the file stands
        progress = Progress()

        def state(self) -> dict[str, int]:
            return {"records": self.progress.records, "bytes": self.progress.bytes}

        def restore(self, state: dict[str, int]) -> None:
            self.progress = Progress(state["records"], state["bytes"])

    resumed: list[Any] = []
    state_path = tmp_path / "watch.state"
    stops = []
    for stop_after in (2, 3, None):
        watcher, position = fresh(resumed), Position()
        checkpoint = watchstate.Checkpoint(state_path, watcher, position, None)
        saved = watchstate.load(state_path)
        if saved is not None:
            checkpoint.restore(saved)
        chunks = [0]

        def after_chunk(watcher: Watcher = watcher, stop_after: int | None = stop_after,
                        chunks: list[int] = chunks) -> None:
            chunks[0] += 1
            if chunks[0] == stop_after:
                watcher.stop.set()
        watcher.after_chunk = after_chunk
        try:
            watcher.read(source, progress=position.progress)
        except Stopped:
            checkpoint.save()
            stops.append(position.progress.records)
            continue
    assert 0 < stops[0] < stops[1]  # the second run got further than the first
    assert _counter_samples(watcher.metrics) == want
    assert [(e["event"], e["code"], e["start"]) for e in resumed] == \
        [(e["event"], e["code"], e["start"]) for e in one_pass]


def test_state_path_that_cannot_be_written_exits_2(tmp_path: Path) -> None:
    state = tmp_path / "no-such-dir" / "watch.state"
    done = subprocess.run([sys.executable, "-m", "analyzer", "watch", str(tmp_path),
                           "--state", str(state)], capture_output=True, cwd=ROOT,
                          timeout=WAIT_S, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr.decode()
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and str(state) in lines[0] and "cannot write" in lines[0], lines
