"""What a scan of one or more captures returns: frames, accounting and per-capture facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where frames are built, not to describe them
    import pandas as pd

    from analyzer.filters import Filters


@dataclass(slots=True)
class CaptureInfo:
    """What was read from one capture file, including why reading stopped early."""

    path: str
    file_format: str = ""            # "pcap", "pcapng" or "dnstap" ("" when it could not be opened)
    compression: str | None = None   # "gzip", "bzip2", "xz", "zstd" or None
    linktypes: list[str] = field(default_factory=list)
    packets: int = 0
    bytes_read: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    error: str | None = None         # one-line CaptureError message when reading failed
    error_offset: int | None = None  # byte offset (in the decompressed stream) where it failed
    truncated_at: int | None = None  # the file ends inside a record starting at this offset


@dataclass(slots=True, repr=False)
class ScanResult:
    """Everything the reports need, from one pass over the captures.

    ``ede`` is the EDE frame (docs/frame-schema.md), ``responses`` the response frame when
    asked for, ``failed`` the captures that could not be read to the end, and ``report()``
    the aggregated report (docs/report-schema.md).
    """

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
    filters: Filters | None = None         # what analyzer.scan() kept; the report applies it
    # dnstap files: messages per type, duplicates folded, transports, servers, upstream
    # counts (logstage.LogStats.as_dict()); None when only packet captures were read
    dnstap: dict[str, Any] | None = None

    def __repr__(self) -> str:
        n = len(self.captures)
        codes = self.ede["ede_code"].nunique() if len(self.ede) else 0
        failed = f", {len(self.failed)} failed" if self.failed else ""
        rows = len(self.ede)
        kept = " (filtered)" if self.filters is not None and self.filters.active else ""
        return (f"<ScanResult: {n:,} capture{'' if n == 1 else 's'}{failed}, "
                f"{self.packets:,} packets, {self.dns_responses:,} DNS responses, "
                f"{rows:,} EDE row{'' if rows == 1 else 's'}{kept} with {codes:,} "
                f"code{'' if codes == 1 else 's'}>")

    def report(self, *, top: int = 10, interval: str | int | None = None) -> dict[str, Any]:
        """Return the aggregated report as a JSON-ready dict (docs/report-schema.md);
        ``analyzer.report_frames()`` turns its sections into DataFrames.

        :param interval: time-series bucket width such as ``"1min"`` or seconds; chosen from
            the time span when not given.
        """
        from analyzer import reports

        return reports.build_report(self, top=top, interval=interval, filters=self.filters)

    @property
    def failed(self) -> list[CaptureInfo]:
        """Return the captures that could not be read to the end."""
        return [c for c in self.captures if c.error]
