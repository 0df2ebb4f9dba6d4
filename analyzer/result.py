"""What a scan of one or more captures returns: frames, accounting and per-capture facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where frames are built, not to describe them
    import pandas as pd


@dataclass(slots=True)
class CaptureInfo:
    """What was read from one capture file, including why reading stopped early."""

    path: str
    file_format: str = ""            # "pcap" or "pcapng" ("" when the file could not be opened)
    compression: str | None = None   # "gzip", "bzip2", "xz", "zstd" or None
    linktypes: list[str] = field(default_factory=list)
    packets: int = 0
    bytes_read: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    error: str | None = None         # one-line CaptureError message when reading failed
    error_offset: int | None = None  # byte offset (in the decompressed stream) where it failed
    truncated_at: int | None = None  # the file ends inside a record starting at this offset


@dataclass(slots=True)
class ScanResult:
    """Everything the reports need, from one pass over the captures."""

    ede: pd.DataFrame                      # one row per EDE option (frame.EDE_COLUMNS)
    responses: pd.DataFrame | None         # one row per response, only when asked for
    accounting: dict[str, int]             # packet category -> packets; sums to ``packets``
    problems: dict[str, int]               # message-level findings, e.g. ede-text-not-utf8
    captures: list[CaptureInfo]
    packets: int = 0
    dns_queries: int = 0                   # DNS query messages (several may share a packet)
    dns_responses: int = 0                 # DNS response messages
    responses_with_ede: int = 0
    ede_options: int = 0
    response_seconds: dict[int, int] = field(default_factory=dict)  # epoch second -> responses
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    error_reports: pd.DataFrame | None = None  # RFC 9567 report queries (frame.REPORT_FIELDS)
    tunnels: dict[str, int] = field(default_factory=dict)   # packets opened per tunnel kind
    unopened: dict[str, int] = field(default_factory=dict)  # "GRE protocol 0x1234" -> packets
    # zone-cut evidence (zonecuts.ZoneEvidence.state(), merged): validating responses per
    # watched suffix and zone cuts by name, for the reports' zone attribution
    zone_evidence: dict[str, Any] | None = None

    @property
    def failed(self) -> list[CaptureInfo]:
        """Return the captures that could not be read to the end."""
        return [c for c in self.captures if c.error]
