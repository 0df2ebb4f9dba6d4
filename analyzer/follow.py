"""Directories of rotating captures: each file read once, completely, in order; the newest
one as it is written."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyzer.tail import TailFile
from analyzer.watch import Progress, Watcher, progress_of

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
    ok: bool = True  # False: not a capture (warned once; skipped while it only grows)


@dataclass(slots=True)
class Follower:
    """The files of directories of rotating captures, each read once, completely, in order
    (modification time, then name): ``for path in ready(): read(watcher, path)``.

    A file with a newer one after it is read whole. The newest is read as it is written
    (``tail.TailFile``): its reading ends once a newer file exists and it has not grown for
    ``tail.GONE_QUIET_S`` (a rotating writer has moved on), or, with ``settle_s``, once it
    has not grown for that long.

    A file is done once ``finish`` is called for it; ``done`` keeps its identity, so that a
    name reused for new content is read again, and what was counted of it, so that a file
    that grows again after it was done is read on from there. ``reading`` is the file being
    read and how far (``start``), so that a restarted watch resumes it (``state``,
    ``restore``).
    """

    directories: list[Path]
    settle_s: float | None = None
    done: dict[str, Done] = field(default_factory=dict)  # path -> the file read there
    reading: tuple[str, int, Progress] | None = None  # path, inode, progress

    def ready(self) -> list[Path]:
        """The files to read, in order (the last one may still be being written)."""
        return [Path(p) for p in self._pending()]

    def newer(self, path: Path) -> bool:
        """Whether a file to read comes after ``path`` (its writer has moved on)."""
        pending = self._pending()
        return str(path) in pending and pending[-1] != str(path)

    def _pending(self) -> list[str]:
        listed: list[tuple[int, str, Identity]] = []
        for directory in self.directories:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or not entry.is_file():
                        continue  # hidden files are ones still being copied in
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue  # rotated away (tcpdump -W) since the listing
                    listed.append((st.st_mtime_ns, entry.path, identity_of(st)))
        listed.sort()
        present = {path for _, path, _ in listed}
        # rotated away: forget it (memory stays bounded)
        self.done = {p: v for p, v in self.done.items() if p in present}
        return [path for _, path, ident in listed
                if path not in self.done or self.done[path].identity != ident
                and not self._still_not_a_capture(path, ident)]

    def _still_not_a_capture(self, path: str, ident: Identity) -> bool:
        """Whether ``path``, found not to be a capture, has only grown since (the same
        inode and first bytes): it is not read, nor warned about, again."""
        done = self.done[path]
        if done.ok or done.identity[0] != ident[0] or ident[1] < done.identity[1] or \
                head_digest(path, done.identity[1]) != done.head:
            return False
        self.done[path] = Done(ident, head_digest(path, ident[1]), 0, 0, ok=False)
        return True

    def read(self, watcher: Watcher, path: Path) -> None:
        """Read ``path`` from where ``start`` says, then ``finish`` it: the newest file
        through ``TailFile`` (counted as it is written), any other whole."""
        progress = self.start(path)
        if self.newer(path):
            ok = watcher.read(path, progress=progress)
            self.finish(path, ok)
            return
        try:
            tail = TailFile(path, watcher.stop, waiting=watcher.after_chunk,
                            newer=lambda: self.newer(path), settle_s=self.settle_s)
        except FileNotFoundError:
            self.reading = None  # rotated away since the listing: nothing to read
            return
        try:
            ok = watcher.read(tail.stream(), eager=True, progress=progress)
        finally:
            tail.close()
        if tail.ended == "truncated":  # a ring writer came round: its new content is next
            self.reading = None
            self.done.pop(str(path), None)
        else:
            self.finish(path, ok)

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

    def finish(self, path: Path, ok: bool = True) -> None:
        """``path`` was read to its end (``ok``: it is a capture): done, as long as it
        keeps this content."""
        key = str(path)
        inode = self.reading[1] if self.reading is not None else None
        progress = self.reading[2] if self.reading is not None else Progress()
        self.reading = None
        try:
            st = os.stat(key)
        except FileNotFoundError:
            st = None
        if st is None or (inode is not None and st.st_ino != inode):
            self.done.pop(key, None)  # deleted or replaced while it was read: nothing to keep
            return
        self.done[key] = Done(identity_of(st), head_digest(key, st.st_size),
                              progress.records, progress.bytes, ok)

    def state(self) -> dict[str, Any]:
        reading = None
        if self.reading is not None:
            key, inode, p = self.reading
            reading = {"path": key, "inode": inode, "records": p.records, "bytes": p.bytes,
                       "offset": p.offset, "lead_in": p.lead_in}
        return {"directories": [str(d) for d in self.directories],
                "done": [[p, *d.identity, d.head, d.records, d.bytes, d.ok]
                         for p, d in self.done.items()], "reading": reading}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue where ``state`` (from ``state()``) left off; a followed file's state (of
        another watch command) is not about these directories."""
        if "directories" not in state:
            return
        # a checkpoint written before ``ok`` was kept has seven fields
        self.done = {str(p): Done((int(i), int(s), int(m)), str(h), int(r), int(b),
                                  bool(rest[0]) if rest else True)
                     for p, i, s, m, h, r, b, *rest in state["done"]}
        reading = state["reading"]
        self.reading = None if reading is None else (
            str(reading["path"]), int(reading["inode"]), progress_of(reading))
