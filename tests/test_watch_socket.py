"""``ede-pcap watch unix:PATH`` as a real process, fed by an independent Frame Streams
writer (fstrm_replay, Debian's fstrm-bin, which performs the bidirectional handshake as
resolvers do): /metrics compared with ``analyzer.scan`` on the same files, a writer of
another content type refused, SIGTERM -> exit 0 and the socket file removed.

Every wait is bounded (``WAIT_S``).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from watchproc import (
    ROOT,
    WAIT_S,
    by_label,
    expected,
    free_port,
    scrape,
    settled,
    start_watch,
    total,
    wait_for,
)

from analyzer import fstrmsocket

LOGS = [ROOT / "tests" / "real" / "dnstap" / "unbound.dnstap",
        ROOT / "tests" / "real" / "dnstap" / "bind.dnstap"]
DNSTAP = "protobuf:dnstap.Dnstap"


def replay(tool: str, path: Path, sock: Path, content_type: str = DNSTAP
           ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([tool, "-t", content_type, "-r", str(path), "-u", str(sock)],
                          capture_output=True, timeout=WAIT_S)


def start_socket_watch(sock: Path, port: int, started: list[Any]) -> Any:
    proc = start_watch(f"unix:{sock}", "--metrics", f"127.0.0.1:{port}")
    started.append(proc)
    wait_for(lambda: sock.exists() and scrape(port), "the socket and the metrics", proc)
    return proc


def test_socket_counters_equal_scan(tmp_path: Path, processes: list[Any],  # noqa: F811
                                    fstrm_replay: str) -> None:
    sock, port = tmp_path / "dnstap.sock", free_port()
    proc = start_socket_watch(sock, port, processes)
    for i, log in enumerate(LOGS, 1):  # two connections, one after the other
        done = replay(fstrm_replay, log, sock)
        assert done.returncode == 0, done.stderr.decode()
        wait_for(settled(port, lambda s, i=i: total(s, "dnstap_connections_total",
                                                    outcome="finished") == i),
                 f"connection {i} to finish", proc)
    samples = wait_for(settled(port, lambda s: True), "the counters to settle", proc)
    want = expected(LOGS)
    assert by_label(samples, "ede_options_total", "code") == want["codes"]
    assert by_label(samples, "ede_options_total", "resolver") == want["resolvers"]
    assert by_label(samples, "ede_responses_total", "resolver") == want["ede_responses"]
    assert total(samples, "dns_responses_total") == want["dns_responses"]
    assert by_label(samples, "packets_total", "category") == want["accounting"]
    assert by_label(samples, "dnstap_connections_total", "outcome") == {"finished": 2}
    assert total(samples, "capture_files_read_total") == 0  # connections are not files
    assert want["codes"] and want["dns_responses"] > 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0
    assert not sock.exists()


def test_a_storm_of_writers(tmp_path: Path, processes: list[Any],  # noqa: F811
                            fstrm_replay: str) -> None:
    """48 fstrm_replay writers connecting at once (more than the listen backlog of 16):
    every one is read whole, and the counters are 48 times one log's."""
    sock, port = tmp_path / "dnstap.sock", free_port()
    proc = start_socket_watch(sock, port, processes)
    n = 48
    writers = [subprocess.Popen([fstrm_replay, "-t", DNSTAP, "-r", str(LOGS[1]), "-u", str(sock)],
                                stderr=subprocess.PIPE) for _ in range(n)]
    for w in writers:
        _, err = w.communicate(timeout=WAIT_S)
        assert w.returncode == 0, err.decode()
    samples = wait_for(settled(port, lambda s: total(s, "dnstap_connections_total",
                                                     outcome="finished") == n),
                       f"{n} writers", proc)
    one = expected(LOGS[1:])
    assert by_label(samples, "ede_options_total", "code") == \
        {code: n * count for code, count in one["codes"].items()}
    assert total(samples, "dns_responses_total") == n * one["dns_responses"]
    assert by_label(samples, "dnstap_connections_total", "outcome") == {"finished": n}
    assert total(samples, "dnstap_writers_connected") == 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0


def test_other_content_type_is_refused(tmp_path: Path, processes: list[Any],  # noqa: F811
                                       fstrm_replay: str) -> None:
    sock, port = tmp_path / "dnstap.sock", free_port()
    proc = start_socket_watch(sock, port, processes)
    done = replay(fstrm_replay, LOGS[0], sock, content_type="protobuf:other.Thing")
    assert done.returncode != 0  # the writer was told no
    samples = wait_for(settled(port, lambda s: total(s, "dnstap_connections_total",
                                                     outcome="refused") == 1),
                       "the refusal to be counted", proc)
    assert total(samples, "packets_total") == 0
    # still listening: the next writer is read
    done = replay(fstrm_replay, LOGS[0], sock)
    assert done.returncode == 0, done.stderr.decode()
    wait_for(settled(port, lambda s: total(s, "dnstap_connections_total",
                                           outcome="finished") == 1), "the next writer", proc)
    # a zero-length CONTENT_TYPE field (fstrm_replay -t ""): refused, as libfstrm's own
    # reader (fstrm_capture) refuses it
    done = replay(fstrm_replay, LOGS[0], sock, content_type="")
    assert done.returncode != 0
    wait_for(settled(port, lambda s: total(s, "dnstap_connections_total",
                                           outcome="refused") == 2), "the second refusal", proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(WAIT_S) == 0
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert "refused: the writer offers content types 'protobuf:other.Thing'" in err
    assert "refused: the writer offers content types '', not" in err
    assert not sock.exists()


def test_handshake_frames(tmp_path: Path, processes: list[Any]) -> None:  # noqa: F811
    """Our side of the protocol, byte for byte: ACCEPT naming dnstap, FINISH after STOP."""
    sock, port = tmp_path / "dnstap.sock", free_port()
    proc = start_socket_watch(sock, port, processes)
    dnstap = DNSTAP.encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as writer:
        writer.settimeout(WAIT_S)
        writer.connect(str(sock))
        writer.sendall(fstrmsocket.control_frame(fstrmsocket.READY, dnstap))
        accept = fstrmsocket.control_frame(fstrmsocket.ACCEPT, dnstap)
        assert writer.recv(len(accept), socket.MSG_WAITALL) == accept
        data = LOGS[1].read_bytes()
        writer.sendall(data)  # the file: START, its data frames, STOP
        finish = fstrmsocket.control_frame(fstrmsocket.FINISH)
        assert writer.recv(len(finish), socket.MSG_WAITALL) == finish
        assert writer.recv(1) == b""  # then closed
    samples = wait_for(settled(port, lambda s: total(s, "dnstap_connections_total") == 1),
                       "the connection", proc)
    want = expected(LOGS[1:])
    assert by_label(samples, "packets_total", "category") == want["accounting"]
    assert total(samples, "capture_bytes_read_total") == want["bytes"] == len(data)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0


def test_unidirectional_writer(tmp_path: Path, processes: list[Any]) -> None:  # noqa: F811
    """A writer that begins with START (no READY: Unbound's ``dnstap-bidirectional: no``)
    is read, counted as finished at its STOP, and sent nothing: not ACCEPT, not FINISH."""
    sock, port = tmp_path / "dnstap.sock", free_port()
    proc = start_socket_watch(sock, port, processes)
    data = LOGS[1].read_bytes()  # a file is what a unidirectional writer sends
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as writer:
        writer.settimeout(WAIT_S)
        writer.connect(str(sock))
        writer.sendall(data)
        assert writer.recv(64) == b""  # closed by watch after STOP, without a word
    samples = wait_for(settled(port, lambda s: total(s, "dnstap_connections_total",
                                                     outcome="finished") == 1),
                       "the connection", proc)
    want = expected(LOGS[1:])
    assert by_label(samples, "packets_total", "category") == want["accounting"]
    assert by_label(samples, "ede_options_total", "code") == want["codes"]
    assert total(samples, "capture_bytes_read_total") == len(data)
    # STOP as the first frame is still a protocol error
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as writer:
        writer.settimeout(WAIT_S)
        writer.connect(str(sock))
        writer.sendall(fstrmsocket.control_frame(fstrmsocket.STOP))
        assert writer.recv(64) == b""
    wait_for(settled(port, lambda s: total(s, "dnstap_connections_total",
                                           outcome="refused") == 1), "the refusal", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0
    assert proc.stderr is not None
    assert "refused: the writer began with STOP, not READY or START" in proc.stderr.read().decode()


def test_second_watch_on_the_same_path(tmp_path: Path, processes: list[Any],  # noqa: F811
                                       fstrm_replay: str) -> None:
    """A second watch started on a live socket exits 2; its check (a connection closed
    before its first byte) is neither a refused writer nor a warning in the first watch."""
    sock, port = tmp_path / "dnstap.sock", free_port()
    proc = start_socket_watch(sock, port, processes)
    done = subprocess.run([sys.executable, "-m", "analyzer", "watch", f"unix:{sock}"],
                          capture_output=True, cwd=ROOT, timeout=WAIT_S)
    assert done.returncode == 2 and "is in use" in done.stderr.decode()
    assert replay(fstrm_replay, LOGS[1], sock).returncode == 0  # still listening
    samples = wait_for(settled(port, lambda s: total(s, "dnstap_connections_total",
                                                     outcome="finished") == 1),
                       "the writer after the check", proc)
    assert by_label(samples, "dnstap_connections_total", "outcome") == {"finished": 1}
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0
    assert proc.stderr is not None
    assert proc.stderr.read().decode() == ""


def test_refuses_a_path_in_use(tmp_path: Path, processes: list[Any]) -> None:  # noqa: F811
    plain = tmp_path / "file"
    plain.write_text("not a socket")
    live = tmp_path / "live.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(live))
    server.listen(1)
    stale = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale))
    dead.close()  # the file stays, nobody listens: a stale socket
    try:
        for path, why in ((plain, "is not a socket"), (live, "is in use")):
            done = subprocess.run([sys.executable, "-m", "analyzer", "watch", f"unix:{path}"],
                                  capture_output=True, cwd=ROOT, timeout=WAIT_S)
            assert done.returncode == 2
            err = done.stderr.decode()
            assert why in err and len(err.splitlines()) == 1, err
        assert plain.read_text() == "not a socket" and live.exists()
    finally:
        server.close()
    proc = start_socket_watch(stale, free_port(), processes)  # a stale one is replaced
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0
    assert not stale.exists()
