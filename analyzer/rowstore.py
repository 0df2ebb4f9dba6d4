"""The rows a scan has found, held compactly until the frame is built."""

from __future__ import annotations

from typing import Any

from analyzer import frame

COMPACT_ROWS = 10_000  # rows held (tuples or columns) before they are built into a frame


class RowStore:
    """EDE rows (or, with ``all_responses``, response rows) and RFC 9567 report rows.

    Rows arrive as tuples from the per-message path (``rows``, in ``frame.EDE_FIELDS``
    order) and as column-form pieces from the kernel path (``parts``); every
    ``compact_rows`` of them are built into a frame (``frames``), since a row tuple costs
    several times its columns.
    """

    def __init__(self, all_responses: bool = False):
        self.all_responses = all_responses
        self.rows: list[tuple[Any, ...]] = []
        self.parts: list[dict[str, Any]] = []  # EDE rows in column form
        self.frames: list[Any] = []  # rows already built into frames
        self.report_rows: list[tuple[Any, ...]] = []  # frame.REPORT_FIELDS
        self.compact_rows = COMPACT_ROWS

    def pending(self) -> int:
        return len(self.rows) + sum(frame.column_rows(p) for p in self.parts)

    def compact(self) -> None:
        """Build the rows held so far into a frame."""
        rows, self.rows = self.rows, []
        if self.all_responses:
            self.frames.append(frame.build_responses(rows))
            return
        parts, self.parts = self.parts, []
        if rows:
            parts.append(frame.ede_columns(rows))
        if parts:
            self.frames.append(frame.build_ede_columns(frame.merge_columns(parts)))

    def maybe_compact(self) -> None:
        if self.pending() >= self.compact_rows:
            self.compact()

    def flush(self) -> None:
        """Build every row still held into a frame (``frames`` then holds everything)."""
        if self.rows or self.parts:
            self.compact()

    def take_columns(self) -> dict[str, Any] | None:
        """Hand over the EDE rows still held, in the column form (None: there are none)."""
        assert not self.all_responses
        rows, self.rows = self.rows, []
        parts, self.parts = self.parts, []
        if rows:
            parts.append(frame.ede_columns(rows))
        return frame.merge_columns(parts) if parts else None

    def take_frames(self) -> list[Any]:
        """Hand over the frames built so far (the rows still held stay)."""
        frames, self.frames = self.frames, []
        return frames

    def marks(self) -> tuple[int, int, int]:
        return len(self.rows), len(self.parts), len(self.report_rows)

    def truncate(self, marks: tuple[int, int, int]) -> None:
        """Drop what was added since ``marks()`` (a split part's warm-up records)."""
        del self.rows[marks[0]:]
        del self.parts[marks[1]:]
        del self.report_rows[marks[2]:]
