"""``ede-pcap watch`` following a growing file and resuming with ``--state``, as real
processes: a writer appends capture bytes (cut anywhere) while watch runs, files are
replaced, truncated, deleted and names reused, watch is killed (-9) or stopped (SIGTERM)
and started again; the scraped counters must equal ``analyzer.scan`` of the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
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
    MAKE_CAPTURE,
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

WRITER = Path(__file__).resolve().parent / "grow_writer.py"
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
    wait_for(packets_equal(port, read), "ring0's new content", proc)
    # the newest file is done (counted as read) once quiet for --settle
    samples = wait_for(settled(port, lambda s: total(s, "capture_files_read_total") == 3),
                       "ring0's new content to be done", proc)
    assert_counts(samples, read)
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


@pytest.mark.parametrize(("which", "seek"), [(0, True), (0, False), (1, False), (2, False)],
                         ids=["pcap", "pcap-from-start", "pcapng", "dnstap"])
def test_stopped_and_resumed_at_any_chunk_counts_as_one_pass(tmp_path: Path, big: list[Path],
                                                             which: int, seek: bool) -> None:
    """Stopped after a few chunks, checkpointed, resumed by a new Watcher (a plain pcap
    from the lead-in before the next record, the others from their start, the records
    before it only warming up state): counters and events equal one uninterrupted pass."""
    from dataclasses import asdict

    from analyzer import watchevents, watchmetrics, watchstate
    from analyzer.errors import Stopped
    from analyzer.watch import Progress, Watcher, progress_of

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

        def state(self) -> dict[str, Any]:
            return asdict(self.progress) if seek else \
                {**asdict(self.progress), "offset": None}

        def restore(self, state: dict[str, Any]) -> None:
            self.progress = progress_of(state)

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
            assert (position.progress.offset is not None) == (which == 0)
            if seek:  # warm-up from a record boundary well inside the file
                assert 24 < position.progress.lead_in < position.progress.offset
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


def dns_messages(capture: Path) -> list[tuple[bool, bytes]]:
    """The DNS messages of a capture's UDP port-53 packets: (is a response, message)."""
    import dpkt

    out = []
    with open(capture, "rb") as f:
        for _, buf in dpkt.pcap.Reader(f):
            udp = dpkt.ethernet.Ethernet(buf).data.data
            if isinstance(udp, dpkt.udp.UDP) and 53 in (udp.sport, udp.dport):
                out.append((udp.sport == 53, bytes(udp.data)))
    return out


@pytest.mark.skipif(shutil.which("tcpdump") is None or os.geteuid() != 0,
                    reason="needs tcpdump and the right to capture on lo")
def test_tcpdump_writing_the_file(tmp_path: Path, processes: list[Any]) -> None:  # noqa: F811
    """The real writer: tcpdump -U -w FILE on lo while DNS messages go through a port;
    watch FILE counts them as tcpdump writes them, exactly what scan() finds at the end."""
    import socket

    port_dns, live = 5399, tmp_path / "dns.pcap"
    tcpdump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-n", "-w", str(live),
                                "udp", "port", str(port_dns)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: live.exists() and live.stat().st_size >= 24, "tcpdump's file",
                 tcpdump)  # type: ignore[arg-type]
        port = free_port()
        proc = start_watch(str(live), "--port", str(port_dns), "--metrics", f"127.0.0.1:{port}")
        processes.append(proc)
        wait_for(lambda: scrape(port), "the metrics endpoint", proc)
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", port_dns))
        client.bind(("127.0.0.1", 0))
        messages = dns_messages(INCIDENT)
        for i, (response, message) in enumerate(messages):
            if response:
                server.sendto(message, client.getsockname())
            else:
                client.sendto(message, ("127.0.0.1", port_dns))
            if i % 200 == 0:
                time.sleep(0.05)  # over a second or two, as traffic comes
        server.close()
        client.close()
        responses = sum(r for r, _ in messages)
        wait_for(settled(port, lambda s: total(s, "dns_responses_total") == responses),
                 "every response tcpdump wrote", proc)
    finally:
        tcpdump.send_signal(signal.SIGTERM)
        tcpdump.wait(WAIT_S)
    result = analyzer.scan(live, ports=(port_dns,))
    assert result.dns_responses == responses  # tcpdump dropped nothing
    samples = wait_for(settled(port, lambda s: total(s, "packets_total")
                               == sum(result.accounting.values())), "the counters", proc)
    assert by_label(samples, "packets_total", "category") == \
        {k: v for k, v in result.accounting.items() if v}
    assert by_label(samples, "ede_options_total", "code") == \
        {str(k): int(v) for k, v in result.ede["ede_code"].value_counts().items() if v}
    assert total(samples, "capture_bytes_read_total") == live.stat().st_size
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0


def pcap_boundary(data: bytes, near: int) -> int:
    """The offset of the first pcap record at or after ``near`` (little-endian pcap)."""
    at = 24
    while at < near:
        at += 16 + int.from_bytes(data[at + 8:at + 12], "little")
    return at


def test_directory_file_that_grows_after_a_quiet_spell(tmp_path: Path,
                                                       processes: list[Any]) -> None:  # noqa: F811
    """A file taken as complete (quiet for --settle) that grows again is read on from where
    its reading ended: nothing counted twice, nothing lost."""
    port = free_port()
    proc = start_watch(str(tmp_path), "--metrics", f"127.0.0.1:{port}", "--settle", "0.3")
    processes.append(proc)
    data = INCIDENT.read_bytes()
    cut = pcap_boundary(data, len(data) // 2)
    live = tmp_path / "dns-1.pcap"
    live.write_bytes(data[:cut])
    wait_for(settled(port, lambda s: total(s, "capture_files_read_total") == 1),
             "the first half, taken as complete", proc)
    with open(live, "ab") as f:  # the writer goes on after a quiet spell
        f.write(data[cut:])
    samples = wait_for(settled(port, lambda s: total(s, "capture_files_read_total") == 2),
                       "the rest", proc)
    assert_counts(samples, [INCIDENT])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0


@pytest.mark.skipif(shutil.which("tcpdump") is None or os.geteuid() != 0,
                    reason="needs tcpdump and the right to capture on lo")
def test_tcpdump_ring_with_kill_9_and_resume(tmp_path: Path,
                                             processes: list[Any]) -> None:  # noqa: F811
    """tcpdump -C 1 -W 3: a ring of three 1 MB files whose names come round again (the
    same inode, truncated). watch reads each content once; killed (-9) in the middle and
    restarted with its --state, it still counts every response sent exactly once."""
    import socket

    port_dns, ring, state = 5398, tmp_path / "ring", tmp_path / "watch.state"
    ring.mkdir()
    tcpdump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-n", "-Z", "root", "-C", "1",
                                "-W", "3", "-w", str(ring / "dns.pcap"),
                                "udp", "port", str(port_dns)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", port_dns))
    client.bind(("127.0.0.1", 0))
    messages = dns_messages(INCIDENT)
    responses = sum(r for r, _ in messages)

    def send_once() -> None:
        for i, (response, message) in enumerate(messages):
            if response:
                server.sendto(message, client.getsockname())
            else:
                client.sendto(message, ("127.0.0.1", port_dns))
            if i % 500 == 0:
                time.sleep(0.02)

    args = [str(ring), "--port", str(port_dns), "--state", str(state), "--settle", "0.5",
            "--state-every", "0.3"]
    port = free_port()
    try:
        wait_for(lambda: (ring / "dns.pcap0").exists(), "tcpdump's first file",
                 tcpdump)  # type: ignore[arg-type]
        proc = start_watch(*args, "--metrics", f"127.0.0.1:{port}")
        processes.append(proc)
        wait_for(lambda: scrape(port), "the metrics endpoint", proc)
        sent = 0
        for _ in range(3):  # about 1.7 MB: dns.pcap0 and dns.pcap1 full, dns.pcap2 begun
            send_once()
            sent += responses
        wait_for(lambda: total(scrape(port) or {}, "capture_files_read_total") >= 2,
                 "the full files", proc)
        proc.kill()
        proc.wait(WAIT_S)
        proc = start_watch(*args, "--metrics", f"127.0.0.1:{port}")
        processes.append(proc)
        wait_for(lambda: scrape(port), "the metrics endpoint", proc)
        for _ in range(3):  # round the ring: dns.pcap0 is written again
            send_once()
            sent += responses
        # the newest file counts as read once it has been quiet for --settle, a moment
        # after its last response is counted
        samples = wait_for(settled(port, lambda s: total(s, "dns_responses_total") == sent
                                   and total(s, "capture_files_read_total") >= 4),
                           "every response sent, and the newest file done", proc)
    finally:
        server.close()
        client.close()
        tcpdump.send_signal(signal.SIGTERM)
        tcpdump.wait(WAIT_S)
    assert total(samples, "packets_total") == 2 * sent  # a query for each response
    # about 3.4 MB: dns.pcap0, 1 and 2 full, then dns.pcap0 again (its new content read too;
    # a file taken during a pause in the traffic and read on later counts twice here)
    assert (ring / "dns.pcap0").stat().st_size < 1_000_000
    assert total(samples, "capture_files_read_total") >= 4
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0


def test_directory_file_deleted_while_read(tmp_path: Path, processes: list[Any],  # noqa: F811
                                           big: list[Path]) -> None:
    """A file deleted (rotated away by a -W ring, cleaned up) while it is being read is read
    to its end through the open descriptor."""
    spool = tmp_path / "spool"
    spool.mkdir()
    port = free_port()
    proc = start_watch(str(spool), "--metrics", f"127.0.0.1:{port}", "--settle", "0.2",
                       "--max-resolvers", "1000")
    processes.append(proc)
    wait_for(lambda: scrape(port), "the metrics endpoint", proc)
    drop(spool, big[0], "dns-0.pcap")
    read_then = wait_for(lambda: total(scrape(port) or {}, "capture_bytes_read_total"),
                         "the file to be read", proc)
    os.unlink(spool / "dns-0.pcap")
    assert read_then < big[0].stat().st_size  # deleted in the middle of its reading
    samples = wait_for(settled(port, lambda s: total(s, "capture_files_read_total") == 1),
                       "the file, to its end", proc)
    assert_counts(samples, [big[0]])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0
