"""One capture file that grows (``tcpdump -U -w dns.pcap``), followed like ``tail -F``.

    tail = TailFile(path, stop)          # a stream of the file's bytes that waits at its end
    watcher.read(tail.stream(), eager=True, progress=progress)   # ends when the file is done

``TailFile`` hands the bytes to ``CaptureReader`` in eager mode, as standard input is: a
record cut at the current end is simply not complete yet, so the reader waits for the rest
instead of calling it a truncation. The stream ends (``ended``) when the file is finished:
the path names another file (``replaced``: rotated away) or no file (``deleted``), and the old
one, read to its end through the open descriptor, has not grown for ``GONE_QUIET_S``; or it shrank
below what was read (``truncated``: copytruncate; read it again from its start). A directory's
newest file (``follow.Follower``) also ends once ``newer()`` says a newer file exists and it has
been quiet as long (``superseded``), or, with ``settle_s``, once it has been quiet that long
(``settled``).
``FileFollower`` runs that in a loop, one file after another, and remembers where it is.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyzer.capture import CHUNK_BYTES
from analyzer.errors import Stopped
from analyzer.watch import Progress, Watcher, progress_of

POLL_S = 0.2  # how often the end of the file is looked at; records wait at most this long
FIRST_BYTES = 64  # what CaptureReader looks at to tell the format
GONE_QUIET_S = 1.0  # a rotated-away or deleted file may still be written to for a while


class TailFile(io.RawIOBase):
    """The bytes of a growing file, as a stream that ends only once the file is finished."""

    def __init__(self, path: Path, stop: threading.Event, poll_s: float = POLL_S,
                 waiting: Callable[[], None] | None = None,
                 newer: Callable[[], bool] | None = None, settle_s: float | None = None):
        self.path = path
        self.newer = newer  # whether the writer has moved on to a newer file
        self.settle_s = settle_s
        self.waiting = waiting  # called while it waits at the end (a checkpoint when due)
        self.name = str(path)  # what CaptureReader and warnings call it
        self.stop = stop
        self.poll_s = poll_s
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        st = os.fstat(self._file.fileno())
        self.identity = (st.st_dev, st.st_ino)
        self.pos = 0
        self.ended: str | None = None  # replaced, deleted or truncated, once finished

    def stream(self) -> io.BufferedReader:
        """The stream to read (no ``fileno``: a poll of a regular file says nothing). Its
        buffer is a reader's chunk: what the file holds already is handed over in one
        chunk, as a file read whole is (not a chunk per 64 KiB)."""
        return io.BufferedReader(self, CHUNK_BYTES)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True  # a resumed plain pcap starts at its lead-in (CaptureReader span)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.pos = self._file.seek(offset, whence)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b: Any) -> int:
        quiet: tuple[float, int] | None = None  # since when the file, gone, has kept its size
        while True:
            # the format is told from the first bytes (a dnstap START frame is 42): a file
            # just created is not read before it holds that many, or is finished
            if self.pos or self.size() >= FIRST_BYTES or \
                    self._finished()[0] not in (None, "settled"):
                n = self._file.readinto(b)
                if n:
                    self.pos += n
                    return n
            size = self.size()
            if size > self.pos and (self.pos or size >= FIRST_BYTES):
                continue  # written between the read and the stat
            if size < self.pos:
                self.ended = "truncated"
                return 0
            gone, quiet_s = self._finished()
            if gone is not None:
                # its writer may still be at work (logrotate before its HUP, a writer that
                # keeps an unlinked file): finished once it has been quiet for a while
                now = time.monotonic()
                if quiet is None or quiet[1] != size:
                    quiet = (now, size)
                elif now - quiet[0] >= quiet_s:
                    self.ended = gone
                    return 0
            if self.waiting is not None:
                self.waiting()
            if self.stop.wait(self.poll_s):
                raise Stopped("stop")

    def size(self) -> int:
        return os.fstat(self._file.fileno()).st_size

    def _finished(self) -> tuple[str | None, float]:
        """Why the file is finished once it has been quiet for how long (None: it is not)."""
        gone = self._gone()
        if gone is None and self.newer is not None and self.newer():
            gone = "superseded"
        if gone is not None:
            return gone, GONE_QUIET_S
        if self.settle_s is None or not self.pos:
            return None, 0.0  # a file not begun (its format not told yet) waits for more
        return "settled", self.settle_s

    def _gone(self) -> str | None:
        """Whether the path names another file (``replaced``) or none (``deleted``)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "deleted"
        return "replaced" if (st.st_dev, st.st_ino) != self.identity else None

    def close(self) -> None:
        self._file.close()
        super().close()


def identity_of(path: Path) -> tuple[int, int, int] | None:
    """(device, inode, size) of the file at ``path``; None if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size)


@dataclass(slots=True)
class FileFollower:
    """Follow the capture file at ``path``: each file found there read once, completely.

    ``identity`` (device, inode) is the file ``progress`` belongs to; ``failed`` the
    (device, inode, size) of a file that could not be read (it is waited on to change).
    """

    path: Path
    progress: Progress = field(default_factory=Progress)
    identity: tuple[int, int] | None = None
    failed: tuple[int, int, int] | None = None

    def run(self, watcher: Watcher, finished: Callable[[], None] | None = None) -> None:
        """Read until ``watcher.stop`` (then raise ``Stopped``); ``finished()`` after each
        file (a checkpoint)."""
        while True:
            tail = self._open(watcher.stop, watcher.after_chunk)
            if tail.identity != self.identity:
                self.identity, self.progress = tail.identity, Progress()
            elif tail.size() < self.progress.bytes:
                self.progress = Progress()  # truncated while nobody was looking
            ok = watcher.read(tail.stream(), eager=True, progress=self.progress)
            self.progress = Progress()  # whatever comes next at this path is new
            if not ok:
                self.failed = (*tail.identity, tail.pos)
            if tail.ended != "truncated":
                self.identity = None
            if finished is not None:
                finished()

    def _open(self, stop: threading.Event, waiting: Callable[[], None] | None) -> TailFile:
        """Open the file at ``path`` once there is one (and it is not the one that failed)."""
        while True:
            found = identity_of(self.path)
            if found is not None and (self.failed is None or found[:2] != self.failed[:2]
                                      or found[2] < self.failed[2]):
                try:
                    tail = TailFile(self.path, stop, waiting=waiting)
                except FileNotFoundError:
                    continue  # gone between the stat and the open
                self.failed = None
                return tail
            if waiting is not None:
                waiting()
            if stop.wait(POLL_S):
                raise Stopped("stop")

    def state(self) -> dict[str, Any]:
        p = self.progress
        return {"path": str(self.path), "identity": self.identity, "records": p.records,
                "bytes": p.bytes, "offset": p.offset, "lead_in": p.lead_in,
                "failed": self.failed}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue where ``state`` (from ``state()``) left off, if it is about this path."""
        if state.get("path") != str(self.path):
            return
        ident, failed = state["identity"], state["failed"]
        self.identity = None if ident is None else (int(ident[0]), int(ident[1]))
        self.progress = progress_of(state)
        self.failed = None if failed is None else (int(failed[0]), int(failed[1]),
                                                   int(failed[2]))
