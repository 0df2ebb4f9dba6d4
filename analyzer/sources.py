"""Capture arguments -> capture paths: files as given, directories, glob patterns, stdin.

The command line and the Python API accept the same things, through ``expand``.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

# Files taken from a directory: captures and dnstap logs, optionally compressed. (A file
# named on the command line is read whatever its name: the format is told by content.)
CAPTURE_NAME = re.compile(r"\.(pcap|pcapng|cap|dmp|dnstap|fstrm)(\.(gz|bz2|xz|zst|lz4))?$",
                          re.IGNORECASE)


def expand(captures: list[str]) -> tuple[list[str], list[str]]:
    """Return (capture paths, errors) for capture arguments: files as given, ``-``,
    directories searched recursively for capture files, glob patterns expanded.

    A file that does not exist is returned as given (the reader names it); a directory
    without captures and a pattern that matches nothing are errors, one line each.
    """
    paths: list[str] = []
    errors: list[str] = []
    for arg in captures:
        if arg == "-" or os.path.isfile(arg) or "://" in arg:
            paths.append(arg)
        elif os.path.isdir(arg):
            found = sorted(str(p) for p in Path(arg).rglob("*")
                           if p.is_file() and CAPTURE_NAME.search(p.name)
                           and not any(part.startswith(".") for part in p.relative_to(arg).parts))
            if found:
                paths.extend(found)
            else:
                errors.append(f"{arg}: no capture files (*.pcap, *.pcapng, *.cap, *.dnstap, "
                              "optionally compressed) in this directory; pass the files "
                              "themselves")
        elif glob.has_magic(arg):
            found = sorted(p for p in glob.glob(arg, recursive=True) if os.path.isfile(p))
            if found:
                paths.extend(found)
            else:
                errors.append(f"{arg}: no files match this pattern; check the pattern and "
                              "quote it so the shell leaves it alone")
        else:
            paths.append(arg)  # the reader reports a missing or unreadable file by name
    # the same file named twice (a directory and a glob) is read once
    return list(dict.fromkeys(paths)), errors
