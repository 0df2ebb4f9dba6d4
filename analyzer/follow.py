"""Directories of rotating captures: each file handed out once, in order, when complete."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class Follower:
    """The files of directories of rotating captures, each handed out once, in order, when
    complete: its size has not changed for ``settle_s`` seconds, or a newer file exists."""

    directories: list[Path]
    settle_s: float = 10.0
    done: set[str] = field(default_factory=set)
    sizes: dict[str, tuple[int, float]] = field(default_factory=dict)  # path -> (size, since)

    def ready(self, now: float | None = None) -> list[Path]:
        now = time.monotonic() if now is None else now
        listed: list[tuple[float, str, int]] = []
        for directory in self.directories:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or not entry.is_file():
                        continue  # hidden files are ones still being copied in
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue  # rotated away (tcpdump -W) since the listing
                    listed.append((st.st_mtime, entry.path, st.st_size))
        listed.sort()
        present = {path for _, path, _ in listed}
        self.done &= present  # rotated away: forget it (memory stays bounded)
        self.sizes = {p: v for p, v in self.sizes.items() if p in present}
        out = []
        pending = [(path, size) for _, path, size in listed if path not in self.done]
        for i, (path, size) in enumerate(pending):
            before = self.sizes.get(path)
            if before is None or before[0] != size:
                self.sizes[path] = (size, now)
            newer = i + 1 < len(pending)
            if not newer and now - self.sizes[path][1] < self.settle_s:
                break  # still growing, or not quiet for long enough yet
            out.append(Path(path))
            self.done.add(path)
            self.sizes.pop(path, None)
        return out
