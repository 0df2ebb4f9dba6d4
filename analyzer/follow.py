"""Directories of rotating captures: each file handed out once, in order, when complete."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyzer.watch import Progress, progress_of

# What tells one content of a path from the next: a ``-C``/``-W`` ring reuses names (and
# may truncate the same inode), so the path alone does not.
Identity = tuple[int, int, int]  # inode, size, mtime (ns)
HEAD_BYTES = 4096  # how much of a file's start tells an append from new content


def identity_of(st: os.stat_result) -> Identity:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def head_digest(path: str, size: int) -> str:
    """A digest of the first ``min(size, HEAD_BYTES)`` bytes of ``path`` ('' if unreadable)."""
    try:
        with open(path, "rb") as f:
            return hashlib.blake2b(f.read(min(size, HEAD_BYTES)), digest_size=16).hexdigest()
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class Done:
    """A file read to its end: its identity then, its first bytes, and what was counted."""

    identity: Identity
    head: str      # head_digest when it was done
    records: int   # records counted (Progress.records)
    bytes: int     # bytes counted (Progress.bytes)


@dataclass(slots=True)
class Follower:
    """The files of directories of rotating captures, each handed out once, in order, when
    complete: its size has not changed for ``settle_s`` seconds, or a newer file exists.

    A file is done once ``finish`` is called for it; ``done`` keeps its identity, so that a
    name reused for new content is read again, and what was counted of it, so that a file
    that grows again after it was taken (a quiet spell longer than ``settle_s``) is read on
    from there. ``reading`` is the file being read and how far (``start``), so that a
    restarted watch resumes it (``state``, ``restore``).
    """

    directories: list[Path]
    settle_s: float = 10.0
    done: dict[str, Done] = field(default_factory=dict)  # path -> the file read there
    sizes: dict[str, tuple[int, float]] = field(default_factory=dict)  # path -> (size, since)
    reading: tuple[str, int, Progress] | None = None  # path, inode, progress

    def ready(self, now: float | None = None) -> list[Path]:
        now = time.monotonic() if now is None else now
        listed: list[tuple[float, str, int, Identity]] = []
        for directory in self.directories:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or not entry.is_file():
                        continue  # hidden files are ones still being copied in
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue  # rotated away (tcpdump -W) since the listing
                    listed.append((st.st_mtime, entry.path, st.st_size, identity_of(st)))
        listed.sort()
        present = {path for _, path, _, _ in listed}
        # rotated away: forget it (memory stays bounded)
        self.done = {p: v for p, v in self.done.items() if p in present}
        self.sizes = {p: v for p, v in self.sizes.items() if p in present}
        out = []
        pending = [(path, size) for _, path, size, ident in listed
                   if path not in self.done or self.done[path].identity != ident]
        for i, (path, size) in enumerate(pending):
            before = self.sizes.get(path)
            if before is None or before[0] != size:
                self.sizes[path] = (size, now)
            newer = i + 1 < len(pending)
            if not newer and now - self.sizes[path][1] < self.settle_s:
                break  # still growing, or not quiet for long enough yet
            out.append(Path(path))
            self.sizes.pop(path, None)
        return out

    def start(self, path: Path) -> Progress:
        """Return the progress to read ``path`` with: where a stopped run left it, or where
        its reading ended if it has only grown since; else from its start."""
        key = str(path)
        try:
            st = os.stat(key)
        except FileNotFoundError:
            st = None
        resumed, done = self.reading, self.done.get(key)
        progress = Progress()
        if st is not None and resumed is not None and resumed[0] == key \
                and resumed[1] == st.st_ino and st.st_size >= resumed[2].bytes:
            progress = resumed[2]
        elif st is not None and done is not None and done.identity[0] == st.st_ino \
                and st.st_size > done.identity[1] \
                and head_digest(key, done.identity[1]) == done.head:
            progress = Progress(done.records, done.bytes)  # appended to: read on
        self.reading = (key, st.st_ino if st is not None else -1, progress)
        return progress

    def finish(self, path: Path) -> None:
        """``path`` was read to its end: done, as long as it keeps this content."""
        key = str(path)
        progress = self.reading[2] if self.reading is not None else Progress()
        self.reading = None
        try:
            st = os.stat(key)
        except FileNotFoundError:
            self.done.pop(key, None)  # deleted while it was read: nothing to remember
            return
        self.done[key] = Done(identity_of(st), head_digest(key, st.st_size),
                              progress.records, progress.bytes)

    def state(self) -> dict[str, Any]:
        reading = None
        if self.reading is not None:
            key, inode, p = self.reading
            reading = {"path": key, "inode": inode, "records": p.records, "bytes": p.bytes,
                       "offset": p.offset, "lead_in": p.lead_in}
        return {"directories": [str(d) for d in self.directories],
                "done": [[p, *d.identity, d.head, d.records, d.bytes]
                         for p, d in self.done.items()], "reading": reading}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue where ``state`` (from ``state()``) left off; a followed file's state (of
        another watch command) is not about these directories."""
        if "directories" not in state:
            return
        self.done = {str(p): Done((int(i), int(s), int(m)), str(h), int(r), int(b))
                     for p, i, s, m, h, r, b in state["done"]}
        reading = state["reading"]
        self.reading = None if reading is None else (
            str(reading["path"]), int(reading["inode"]), progress_of(reading))
