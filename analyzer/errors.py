"""Errors that stop a run, and the tally of packets that were skipped."""

from __future__ import annotations

from collections import Counter


class EdePcapError(Exception):
    """ede-pcap could not do what was asked."""


class CaptureError(EdePcapError):
    """A capture file cannot be read (missing, not a capture, or corrupt).

    The message is one line naming the file, the byte offset where reading stopped when it
    is known, and what to try next.
    """

    def __init__(self, path: str, problem: str, offset: int | None = None, hint: str = "",
                 *, message: str | None = None):
        """``message``, when given, is the whole one-line message (as recorded in
        ``CaptureInfo.error``); otherwise it is built from the other parts."""
        self.path = path
        self.problem = problem
        self.offset = offset
        self.hint = hint
        where = f" at byte {offset}" if offset is not None else ""
        tail = f"; {hint}" if hint else ""
        shown = "standard input" if path == "-" else path  # "-: is not a pcap" reads badly
        super().__init__(message or f"{shown}: {problem}{where}{tail}")


class Stopped(Exception):  # noqa: N818 - a signal, not an error (not an EdePcapError)
    """SIGTERM or SIGINT arrived: ``watch`` stops where its counts are whole."""


class Malformed(EdePcapError):
    """A packet or DNS message is malformed; ``reason`` is a stable kebab-case slug.

    ``where`` names the capture and frame when the pipeline knows them (``--strict``).
    """

    def __init__(self, reason: str, where: str | None = None):
        self.reason = reason
        self.where = where
        super().__init__(f"{where}: {reason}" if where else reason)


class Tally(Counter[str]):
    """Counts by reason slug; packet accounting and message problems both use it."""

    def merge(self, other: Counter[str]) -> Tally:
        self.update(other)
        return self

    def as_dict(self) -> dict[str, int]:
        """Return the counts sorted by descending count, then name, without zeros."""
        return {k: v for k, v in sorted(self.items(), key=lambda kv: (-kv[1], kv[0])) if v}
