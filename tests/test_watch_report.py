"""``ede-pcap watch --report`` as a real process: the file it writes for a window holding all
the traffic is what ``ede-pcap report`` writes for the same files (JSON and HTML, byte for
byte), SIGUSR1 writes at once, the interval rewrites it, a reader never sees half a file,
and the options that cannot work are refused.

Every wait is bounded (``test_watch.wait_for``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner
from watchproc import ALL_CODES, DNSTAP, INCIDENT, ROOT, WAIT_S, start_watch, wait_for

from analyzer import fstrmsocket, pipeline
from analyzer.cli import app

EVERYTHING = "36500d"  # a window longer than the samples' dates are old


def rotated(directory: Path, *files: Path) -> list[Path]:
    """Copy ``files`` into ``directory`` with increasing mtimes (watch reads in mtime
    order) and return the copies in that order. Each appears whole (copied under a hidden
    name, then renamed): the newest file is read as it is written, and a file that appears
    whole is read in one chunk."""
    copies = []
    for i, f in enumerate(files):
        copy, hidden = directory / f.name, directory / f".{f.name}"
        shutil.copyfile(f, hidden)
        os.utime(hidden, (1_700_000_000 + i, 1_700_000_000 + i))
        os.replace(hidden, copy)
        copies.append(copy)
    return copies


def report_cli(*args: str) -> bytes:
    done = subprocess.run([sys.executable, "-m", "analyzer", "report", "--quiet", *args],
                          capture_output=True, cwd=ROOT, timeout=WAIT_S, check=True)
    return done.stdout


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0, proc.stderr.read().decode() if proc.stderr else ""


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def asked(proc: subprocess.Popen[bytes], path: Path, packets: int) -> dict | None:
    """Ask for the report (SIGUSR1) and return it once it counts ``packets``."""
    if not path.exists():  # the first report, written at start: the handler is in place
        return None
    proc.send_signal(signal.SIGUSR1)
    time.sleep(0.2)
    report = read_json(path)
    return report if report and report["summary"]["packets"] == packets else None


def test_a_window_of_everything_writes_what_report_writes(
        tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    files = rotated(spool, INCIDENT, ALL_CODES, DNSTAP)
    packets = pipeline.scan(files).packets
    out_json, out_html = tmp_path / "ede.json", tmp_path / "ede.html"
    for out in (out_json, out_html):
        processes.append(start_watch(str(spool), "--settle", "0.2", "--report", str(out),
                                     "--report-window", EVERYTHING, "--report-every", "1h"))
    wait_for(lambda: asked(processes[0], out_json, packets), "every file in the report",
             processes[0])
    for proc in processes:
        stop(proc)
    paths = [str(f) for f in files]
    assert json.loads(out_json.read_text()) == json.loads(report_cli(*paths, "-f", "json"))
    # the HTML too, as rendered by report (it holds no clock time: byte for byte)
    assert out_html.read_bytes() == report_cli(*paths, "-f", "html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ede.html", "ede.json", "spool"]


def test_a_stream_writes_the_report_when_it_ends(tmp_path: Path) -> None:
    out = tmp_path / "ede.md"
    with open(INCIDENT, "rb") as stream:
        done = subprocess.run([sys.executable, "-m", "analyzer", "watch", "-", "--report",
                               str(out), "--report-window", EVERYTHING], stdin=stream,
                              capture_output=True, cwd=ROOT, timeout=WAIT_S)
    assert done.returncode == 0, done.stderr.decode()
    with open(INCIDENT, "rb") as stream:
        theirs = subprocess.run([sys.executable, "-m", "analyzer", "report", "-", "-q", "-f",
                                 "markdown"], stdin=stream, capture_output=True, cwd=ROOT,
                                timeout=WAIT_S, check=True).stdout
    assert out.read_bytes() == theirs


def test_a_shorter_window_reports_the_recent_part(
        tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    out = tmp_path / "ede.json"
    rotated(spool, INCIDENT)
    proc = start_watch(str(spool), "--settle", "0.2", "--report", str(out),
                       "--report-window", "10min", "--report-every", "1h")
    processes.append(proc)
    # the file is read in one chunk: every packet is counted in the newest bucket
    mine = wait_for(lambda: asked(proc, out, 4468), "the report", proc)
    stop(proc)
    theirs = json.loads(report_cli(str(INCIDENT), "-f", "json", "--since",
                                   "2024-03-12T09:20:00Z"))
    for key in ("domains", "zones", "resolvers"):
        assert mine[key] == theirs[key], key
    assert [(c["code"], c["count"]) for c in mine["codes"]] == \
        [(c["code"], c["count"]) for c in theirs["codes"]] == \
        [(7, 11), (3, 6), (15, 4), (6, 3), (9, 2), (22, 2), (18, 1)]
    assert mine["summary"]["ede_options"] == 29
    assert mine["captures"][0]["first_seen"] == "2024-03-12T09:20:00Z"


def test_sigusr1_writes_now_and_the_interval_rewrites(
        tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    rotated(spool, ALL_CODES)
    on_demand, timed = tmp_path / "asked.json", tmp_path / "timed.json"
    asked_proc = start_watch(str(spool), "--settle", "0.2", "--report", str(on_demand),
                             "--report-window", EVERYTHING, "--report-every", "1h",
                             preexec_fn=lambda: os.umask(0o027))
    timed_proc = start_watch(str(spool), "--settle", "0.2", "--report", str(timed),
                             "--report-window", EVERYTHING, "--report-every", "1s")
    processes += [asked_proc, timed_proc]
    inodes = set()

    def rewritten() -> bool:
        if timed.exists():
            inodes.add(timed.stat().st_ino)
        return len(inodes) >= 3
    wait_for(rewritten, "three reports a second apart", timed_proc)
    wait_for(on_demand.exists, "the report written at start", asked_proc)
    first = on_demand.stat().st_ino
    time.sleep(1.5)
    assert on_demand.stat().st_ino == first  # an hour has not passed
    asked_proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: on_demand.stat().st_ino != first, "the report asked for", asked_proc)
    assert on_demand.stat().st_mode & 0o777 == 0o640  # as open() makes it, umask 027
    for proc in processes:
        stop(proc)


def test_a_reader_never_sees_half_a_report(
        tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    rotated(spool, INCIDENT)
    out = tmp_path / "ede.json"
    proc = start_watch(str(spool), "--settle", "0.2", "--report", str(out),
                       "--report-window", EVERYTHING, "--report-every", "1s")
    processes.append(proc)
    wait_for(lambda: asked(proc, out, 4468), "the report", proc)
    stop_asking = threading.Event()

    def ask() -> None:  # a write every tick (0.1 s)
        while not stop_asking.wait(0.05):
            proc.send_signal(signal.SIGUSR1)

    asker = threading.Thread(target=ask)
    asker.start()
    reads = 0
    versions = set()
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            with open(out, "rb") as f:
                st = os.fstat(f.fileno())
                versions.add((st.st_ino, st.st_mtime_ns))
                data = f.read()
            assert json.loads(data)["summary"]["packets"] == 4468
            reads += 1
    finally:
        stop_asking.set()
        asker.join()
    assert reads > 100 and len(versions) >= 3  # it was rewritten while being read
    stop(proc)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(("args", "message"), [
    (["--view"], "--view needs a terminal"),
    (["--view", "--events", "-"], "give --events a file"),
    (["--format", "json"], "--format is the format of --report"),
    (["--report", "ede.parquet"], "which this command does not write"),
    (["--report", "ede.html", "--format", "json"], "means html but --format is json"),
    (["--report", "/nonexistent/dir/ede.json"], "its directory does not exist"),
    (["--report", "x.json", "--report-window", "30s"], "shorter than one --interval"),
    (["--report", "x.json", "--report-every", "0s"], "at least 1s"),
])
def test_what_cannot_work_is_refused(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["watch", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.replace("│", " ").split()), result.output


def test_connections_read_at_once_add_up_to_report(
        tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    """Four dnstap writers sending at the same time, a piece at a time: their scanners take
    turns at the window (Watcher.lock), and the report is report's of the four logs."""
    logs = sorted((ROOT / "tests" / "real" / "dnstap").glob("*.dnstap"))
    assert len(logs) == 4
    sock, out = tmp_path / "dnstap.sock", tmp_path / "ede.json"
    proc = start_watch(f"unix:{sock}", "--report", str(out), "--report-window", EVERYTHING,
                       "--report-every", "1h")
    processes.append(proc)
    wait_for(lambda: sock.exists() and out.exists(), "the socket and the first report", proc)
    dnstap = b"protobuf:dnstap.Dnstap"
    writers = []
    for _ in logs:  # connected in the order report lists the files: connection 1, 2, ...
        writer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        writer.settimeout(WAIT_S)
        writer.connect(str(sock))
        writer.sendall(fstrmsocket.control_frame(fstrmsocket.READY, dnstap))
        accept = fstrmsocket.control_frame(fstrmsocket.ACCEPT, dnstap)
        assert writer.recv(len(accept), socket.MSG_WAITALL) == accept
        writers.append(writer)
    finish = fstrmsocket.control_frame(fstrmsocket.FINISH)
    finished: list[bool] = []

    def send(writer: socket.socket, data: bytes) -> None:
        for at in range(0, len(data), 256):
            writer.sendall(data[at:at + 256])
            time.sleep(0.002)
        finished.append(writer.recv(len(finish), socket.MSG_WAITALL) == finish)

    threads = [threading.Thread(target=send, args=(w, log.read_bytes()))
               for w, log in zip(writers, logs, strict=True)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT_S)
    finally:
        for w in writers:
            w.close()
    assert finished == [True] * 4
    packets = pipeline.scan(logs).packets
    wait_for(lambda: asked(proc, out, packets), "every connection in the report", proc)
    stop(proc)
    mine = json.loads(out.read_text())
    theirs = json.loads(report_cli(*map(str, logs), "-f", "json"))
    # listed in the order their reading began, which the threads decide
    mine["captures"].sort(key=lambda c: c["path"])
    assert [c["path"] for c in mine["captures"]] == \
        [f"unix:{sock} connection {i}" for i in range(1, 5)]
    for report in (mine, theirs):
        for capture in report["captures"]:
            capture["path"] = None
    assert mine == theirs


def test_reports_built_while_a_stream_is_read(tmp_path: Path) -> None:
    """Reports asked for ten times a second while a pipe delivers the capture 2 KiB at a
    time: each written report is whole, and the last one is report's of the stream."""
    out = tmp_path / "ede.json"
    proc = start_watch("-", "--report", str(out), "--report-window", EVERYTHING,
                       "--report-every", "1h", stdin=subprocess.PIPE)
    try:
        wait_for(out.exists, "the first report", proc)
        data = INCIDENT.read_bytes()
        seen_packets = set()
        assert proc.stdin is not None
        for at in range(0, len(data), 2048):
            proc.stdin.write(data[at:at + 2048])
            proc.stdin.flush()
            if at % (2048 * 5) == 0:
                proc.send_signal(signal.SIGUSR1)
                seen_packets.add(json.loads(out.read_text())["summary"]["packets"])
            time.sleep(0.01)
        proc.stdin.close()
        assert proc.wait(WAIT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert len(seen_packets) >= 3  # reports were written while the stream was being read
    with open(INCIDENT, "rb") as stream:
        theirs = subprocess.run([sys.executable, "-m", "analyzer", "report", "-", "-q", "-f",
                                 "json"], stdin=stream, capture_output=True, cwd=ROOT,
                                timeout=WAIT_S, check=True).stdout
    assert json.loads(out.read_text()) == json.loads(theirs)


def test_a_report_that_cannot_be_written_is_a_warning(
        tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    spool, www = tmp_path / "spool", tmp_path / "www"
    spool.mkdir()
    www.mkdir()
    out = www / "ede.json"
    proc = start_watch(str(spool), "--settle", "0.2", "--report", str(out),
                       "--report-window", EVERYTHING, "--report-every", "1s")
    processes.append(proc)
    wait_for(out.exists, "the first report", proc)
    shutil.rmtree(www)  # the web root went away under it
    rotated(spool, ALL_CODES)
    time.sleep(2.5)  # two writes due
    assert proc.poll() is None  # still watching
    stop(proc)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert f"ede-pcap: warning: cannot write the report {out}: No such file or directory" in err
    assert not www.exists()
