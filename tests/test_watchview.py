"""The live view's screen (``watchview.render``) as text, on real traffic read by ``Watcher``
into a ``watchwindow.Window``: exact counts, rates, sparklines, and names from the traffic
shown as typed, never as markup or terminal control."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import rich.console
from captures import frame, pcap, records, response, udp

import analyzer
from analyzer import codes, reports, watchview
from analyzer.render import sparkline
from analyzer.watch import Watcher
from analyzer.watchevents import Incidents
from analyzer.watchmetrics import Metrics
from analyzer.watchwindow import Window

ROOT = Path(__file__).resolve().parent.parent
INCIDENT = ROOT / "samples" / "incident.pcap"
WAIT_S = 60  # the longest any step may take on a loaded CI machine


def window_report(*paths: Path, span_s: int = 10**8) -> tuple[dict, Watcher]:
    window = Window(60, span_s)
    watcher = Watcher(Metrics(), Incidents(60, 3600), lambda event: None, window=window)
    for path in paths:
        assert watcher.read(path)
    return reports.build_report(window.result()), watcher


def screen(report: dict, status: watchview.Status, width: int = 160) -> str:
    console = rich.console.Console(record=True, width=width, color_system=None,
                                   file=io.StringIO())
    console.print(watchview.render(report, status))
    return console.export_text()


def test_the_screen_shows_the_windows_codes_zones_resolvers_exactly() -> None:
    report, watcher = window_report(INCIDENT)
    expected = analyzer.scan(INCIDENT).ede["ede_code"].astype(int).value_counts()
    text = screen(report, watchview.Status(window_s=900, packets_read=4468, lag_s=12.0))
    span = 1797.549246  # the capture's first to last packet, seconds
    for code, n in expected.items():
        name = next(c["name"] for c in report["codes"] if c["code"] == code)
        line = re.search(rf"^ *{code} +{re.escape(name)} +{n:,} +{n * 60 / span:.1f} +(\S*)",
                         text, re.MULTILINE)
        assert line, (code, text)
        counts = next(s["counts"] for s in report["timeseries"]["series"] if s["code"] == code)
        # 120 buckets of 15s: three to a character, the 30 minutes in 40 characters
        assert len(counts) == 120
        assert line.group(1) == sparkline([sum(counts[i:i + 3]) for i in range(0, 120, 3)])
    assert "packets read 4,468 (window 4,468)  responses 2,234  with EDE 308  EDE options 312" \
        "  lag 12s" in text
    assert re.search(r"^ *shop\.example\.com +7 +137 +cdn\.shop\.example\.com", text, re.M)
    assert re.search(r"^ *192\.0\.2\.53 +283 +280 +7:125, 6:98, 3:31, 15:11", text, re.M)
    assert "open incidents: none" in text
    assert "Codes (timeline: one character per 45s)" in text


def test_open_incidents_are_listed() -> None:
    report, _ = window_report(INCIDENT)
    opened = report["incidents"][:2]
    text = screen(report, watchview.Status(window_s=900, open_incidents=opened))
    for inc in opened:
        start = inc["start"].replace("T", " ").rstrip("Z").split(".")[0]
        assert re.search(rf"^ *{inc['code']} +{re.escape(inc['name'])} +{start} "
                         rf"+{inc['count']:,} +{re.escape(inc['top_zones'][0]['zone'])}",
                         text, re.M), text


def test_names_from_the_traffic_stay_text(tmp_path: Path) -> None:
    # query names that are rich markup and a terminal escape: a view that parsed them would
    # print "x" in bold red, drop "[link=...]" or move the cursor
    names = ["[bold]x[/bold].example.com", "[link=http://evil]y[/link].example.com",
             "esc\x1b[2J.example.net"]
    capture = tmp_path / "markup.pcap"
    capture.write_bytes(pcap(records(
        [frame(udp(response(n, edes=((17, "[blink]t[/blink]"),)))) for n in names])))
    report, _ = window_report(capture)
    text = screen(report, watchview.Status(window_s=900))
    assert "\x1b" not in text
    assert "[bold]x[/bold].example.com" in text
    assert "[link=http://evil]y[/link].example.com" in text
    assert "esc\\027[2j.example.net" in text  # the decoder's escape, shown as such
    # three in 2 ms: the rate is per minute over at least a minute, not 90,000/min
    assert re.search(r"^ *17 +Filtered +3 +3\.0 ", text, re.M)


def test_an_empty_window_says_so() -> None:
    window = Window(60, 900)
    text = screen(reports.build_report(window.result()), watchview.Status(window_s=900))
    assert "no EDE in the window" in text
    assert "packets read 0 (window 0)" in text and "lag -" in text


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]|\x1b[=>78]")


def test_the_view_on_a_terminal_shows_the_codes_and_stops_on_sigterm(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    shutil.copyfile(INCIDENT, spool / INCIDENT.name)
    expected = analyzer.scan(INCIDENT).ede["ede_code"].astype(int).value_counts()
    names = {c: codes.describe(c).name for c in expected.index}
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 150, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzer", "watch", str(spool), "--settle", "0.2", "--view",
         "--report-window", "36500d"], stdin=subprocess.DEVNULL, stdout=terminal,
        stderr=terminal, cwd=ROOT, env={**os.environ, "TERM": "xterm-256color"})
    os.close(terminal)
    seen = bytearray()

    def drain(timeout: float) -> None:
        ready, _, _ = select.select([controller], [], [], timeout)
        if ready:
            with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
                seen.extend(os.read(controller, 65536))

    def shows_every_code() -> bool:
        screen_text = ANSI.sub("", seen.decode("utf-8", "replace"))
        return all(re.search(rf"{code} +{re.escape(names[code])} +{n:,} ", screen_text)
                   for code, n in expected.items())

    try:
        deadline = time.monotonic() + WAIT_S
        while not shows_every_code():
            assert time.monotonic() < deadline, ANSI.sub("", seen.decode("utf-8", "replace"))
            assert proc.poll() is None, seen.decode("utf-8", "replace")
            drain(0.2)
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + WAIT_S
        while proc.poll() is None:
            assert time.monotonic() < deadline, "watch --view did not stop on SIGTERM"
            drain(0.1)
        drain(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(controller)
    assert proc.returncode == 0
    assert b"\x1b[?1049l" in seen  # the terminal's own screen is back
