"""The full report of the recent traffic, for ``ede-pcap watch --report`` and ``--view``.

    live = LiveReports(watcher, path=Path("ede.html"), fmt="html", every_s=60)
    live.start()      # a thread: the file at once and every minute, the view every second
    live.request()    # SIGUSR1: write the file now
    live.stop()       # then write() once more, after the watcher has closed

The report is ``reports.build_report`` of ``watchwindow.Window.result()``: what ``report``
says of the same traffic, rendered by the same writers. Files are replaced atomically (a
temporary file in the same directory, then a rename), so a browser or a scraper never reads
half of one.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analyzer import pipeline, reports, watchview
from analyzer.watch import Watcher

_NS = 1_000_000_000
VIEW_EVERY_S = 1.0  # the view's refresh, stretched when building the report takes longer
VIEW_SHARE = 3      # ... to this many times its cost: a third of a core at most
TICK_S = 0.1        # how soon a request (SIGUSR1) or the stop is noticed


class LiveReports:
    """Write the window's report to ``path`` every ``every_s`` seconds (wall clock) and on
    request, and refresh ``show`` (the view) with it, from a thread of its own."""

    def __init__(self, watcher: Watcher, *, path: Path | None = None, fmt: str = "text",
                 every_s: float = 60.0, window_s: int = 900,
                 show: Callable[[Any], None] | None = None,
                 warn: Callable[[str], None] | None = None):
        if watcher.window is None:
            raise ValueError("the watcher keeps no window")
        self.watcher = watcher
        self.path = path
        self.fmt = fmt
        self.every_s = every_s
        self.window_s = window_s
        self.show = show
        self.warn = warn
        self._built: tuple[int, dict[str, Any]] | None = None  # (window version, report)
        self._asked = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch-reports", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
        """Write the report at the next tick (safe from a signal handler)."""
        self._asked.set()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def build(self) -> tuple[dict[str, Any], watchview.Status]:
        """Return the window's report and the reader's status, as of now."""
        w = self.watcher
        window = w.window
        assert window is not None
        with w.lock:  # readers add to the window concurrently; combining needs no lock
            version = window.version
            parts = None if self._built and self._built[0] == version else window.parts()
            status = watchview.Status(
                window_s=self.window_s, packets_read=_packets(w),
                lag_s=(time.time() - w.metrics.newest_ns / _NS
                       if w.metrics.newest_ns is not None else None),
                open_incidents=[dict(inc) for inc in w.incidents.open.values()])
        if parts is not None:  # the window changed: build anew
            result = window.trim(pipeline.combine(parts))
            self._built = (version, reports.build_report(result))
        assert self._built is not None
        return self._built[1], status

    def write(self, built: dict[str, Any] | None = None) -> None:
        """Write the report (of now, unless ``built`` is given) to the path, atomically."""
        if self.path is None:
            return
        if built is None:
            built = self.build()[0]
        from analyzer import render

        text = io.StringIO()
        render.render(built, self.fmt, text, width=80, color=False)
        try:
            write_atomic(self.path, text.getvalue())
        except OSError as e:  # a full disk or a removed directory: say so, keep watching
            if self.warn is not None:
                self.warn(f"cannot write the report {self.path}: {e.strerror or e}")

    def _run(self) -> None:
        next_report = time.monotonic()  # at once: the file exists (empty) from the start
        next_view = 0.0
        while not self._stopping.wait(TICK_S):
            now = time.monotonic()
            report_due = self.path is not None and (self._asked.is_set() or now >= next_report)
            view_due = self.show is not None and now >= next_view
            if not report_due and not view_due:
                continue
            began = time.monotonic()
            built, status = self.build()
            cost = time.monotonic() - began
            if report_due:
                self._asked.clear()
                self.write(built)
                next_report = now + self.every_s
            if view_due and self.show is not None:
                self.show(watchview.render(built, status))
                next_view = now + max(VIEW_EVERY_S, VIEW_SHARE * cost)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` at once: readers see the old file or the new one.

    The temporary file is created as ``open()`` creates files (0666 less the umask), so a
    web server can read the report; its name starts with a dot, which ``follow`` skips.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _packets(watcher: Watcher) -> int:
    total = 0.0
    for metric in watcher.metrics.packets.collect():
        total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return int(total) if math.isfinite(total) else 0

