"""Two captures (or two time windows of one) -> what changed between them.

``diff(before, after)`` answers "did the fix work?": which INFO-CODEs, (code, zone) pairs and
resolvers appeared, disappeared, or changed by a large factor. Captures differ in size, so
counts are compared as *rates*: EDE options per DNS response of the same side. Nothing here
scans or prints; each side is a ``ScanResult`` (counted exactly) or a report dict from
``reports.build_report`` (whose zones and resolvers are only its ``--top`` lists).

The result is a JSON-ready dict; docs/report-schema.md, "Diff", describes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analyzer import reports

if TYPE_CHECKING:
    from analyzer.filters import Filters
    from analyzer.result import ScanResult

DEFAULT_FACTOR = 2.0     # a rate this many times higher (or lower) is a change ...
DEFAULT_MIN_CHANGE = 5   # ... when the counts are also at least this many EDEs apart
# The order entries are listed in: what went away first, since "did the fix work?" is the
# question most diffs answer.
CHANGES: tuple[str, ...] = ("disappeared", "appeared", "increased", "decreased", "unchanged")


@dataclass(slots=True)
class Side:
    """What one side of a diff holds: totals and EDE options per code, zone and resolver."""

    label: str
    captures: list[str] = field(default_factory=list)
    dns_responses: int = 0
    responses_with_ede: int = 0
    ede_options: int = 0
    first_seen: str | None = None
    last_seen: str | None = None
    codes: dict[int, int] = field(default_factory=dict)
    zones: dict[tuple[int, str], int] = field(default_factory=dict)
    resolvers: dict[str, int] = field(default_factory=dict)
    complete: bool = True  # False when zones and resolvers are a report's top lists only

    def to_dict(self) -> dict[str, Any]:
        """Return the side's totals as JSON-ready values (no per-key counts)."""
        return {
            "label": self.label, "captures": list(self.captures),
            "dns_responses": self.dns_responses,
            "responses_with_ede": self.responses_with_ede, "ede_options": self.ede_options,
            "ede_share": _round(self.responses_with_ede / self.dns_responses)
            if self.dns_responses else None,
            "first_seen": self.first_seen, "last_seen": self.last_seen,
            "complete": self.complete,
        }


def side(source: ScanResult | dict[str, Any], *, label: str | None = None,
         filters: Filters | None = None) -> Side:
    """Return one side of a diff from a scan (counted exactly, after ``filters``) or from a
    report dict (``filters`` are then the report's own)."""
    if isinstance(source, dict):
        return _from_report(source, label)
    from analyzer import filters as filtering

    work = reports.work_frame(filtering.apply(source.ede, filters))
    summary = reports.summarize(source, work, filters)
    paths = [c.path for c in source.captures]
    out = Side(
        label=label or ", ".join(paths), captures=paths,
        dns_responses=summary["dns_responses"],
        responses_with_ede=summary["responses_with_ede"],
        ede_options=summary["ede_options"],
        first_seen=_window_edge(summary["first_seen"], filters, "since"),
        last_seen=_window_edge(summary["last_seen"], filters, "until"),
    )
    if work.empty:
        return out
    out.codes = {int(k): int(v) for k, v in work.groupby("code").size().items()}
    zones = work.groupby(["code", "zone"], observed=True).size()
    out.zones = {(int(c), str(z)): int(n) for (c, z), n in zones.items() if n}
    resolvers = work.groupby("src_ip", observed=True).size()
    out.resolvers = {str(r): int(n) for r, n in resolvers.items() if n}
    return out


def _from_report(report: dict[str, Any], label: str | None) -> Side:
    s = report["summary"]
    paths = [c["path"] for c in report["captures"]]
    return Side(
        label=label or ", ".join(paths), captures=paths,
        dns_responses=s["dns_responses"], responses_with_ede=s["responses_with_ede"],
        ede_options=s["ede_options"], first_seen=s["first_seen"], last_seen=s["last_seen"],
        codes={c["code"]: c["count"] for c in report["codes"]},
        zones={(z["code"], z["zone"]): z["count"] for z in report["zones"]},
        resolvers={r["resolver"]: r["count"] for r in report["resolvers"]},
        complete=False,
    )


def diff(before: ScanResult | dict[str, Any] | Side, after: ScanResult | dict[str, Any] | Side,
         *, factor: float = DEFAULT_FACTOR, min_change: int = DEFAULT_MIN_CHANGE,
         split_at: str | None = None, filters: Filters | None = None) -> dict[str, Any]:
    """Return what changed from ``before`` to ``after`` as a JSON-ready dict.

    An entry (code, (code, zone) or resolver) has ``appeared`` when only ``after`` has it,
    ``disappeared`` when only ``before`` has it, ``increased``/``decreased`` when its rate
    (EDE options per DNS response; raw counts when a side has no responses) changed by
    ``factor`` or more *and* its counts are ``min_change`` or more apart, and is
    ``unchanged`` otherwise. ``notable`` marks the entries whose counts are ``min_change``
    or more apart, so a zone that appears with one EDE is listed but not headlined.

    :param split_at: the instant the sides were split at, when they are two time windows
        of the same captures (recorded in ``options``).
    :param filters: the filters both sides were counted with, for the record.
    """
    if factor <= 1:
        raise ValueError("factor must be greater than 1")
    a = before if isinstance(before, Side) else side(before, label=None)
    b = after if isinstance(after, Side) else side(after, label=None)
    from analyzer import codes as catalogue

    def name(code: int) -> str:
        return catalogue.describe(code).name

    compare = _Comparer(a, b, factor, min_change)
    code_rows = [{"code": c, "name": name(c), **compare(a.codes.get(c, 0), b.codes.get(c, 0))}
                 for c in a.codes.keys() | b.codes.keys()]
    zone_rows = [{"code": c, "name": name(c), "zone": z,
                  **compare(a.zones.get((c, z), 0), b.zones.get((c, z), 0))}
                 for c, z in a.zones.keys() | b.zones.keys()]
    resolver_rows = [{"resolver": r, **compare(a.resolvers.get(r, 0), b.resolvers.get(r, 0))}
                     for r in a.resolvers.keys() | b.resolvers.keys()]
    return {
        "schema_version": reports.SCHEMA_VERSION,
        "kind": "diff",
        "options": {"factor": factor, "min_change": min_change, "split_at": split_at},
        "filters": filters.to_dict() if filters is not None and filters.active else None,
        "before": a.to_dict(),
        "after": b.to_dict(),
        "summary": {key: _summary(rows) for key, rows in (
            ("codes", code_rows), ("zones", zone_rows), ("resolvers", resolver_rows))},
        "codes": _ordered(code_rows, lambda r: (r["code"],)),
        "zones": _ordered(zone_rows, lambda r: (r["zone"], r["code"])),
        "resolvers": _ordered(resolver_rows, lambda r: (r["resolver"],)),
    }


class _Comparer:
    """Compare one key's counts on the two sides (see ``diff``)."""

    def __init__(self, a: Side, b: Side, factor: float, min_change: int):
        self.a, self.b, self.factor, self.min_change = a, b, factor, min_change

    def __call__(self, before: int, after: int) -> dict[str, Any]:
        rates = self.a.dns_responses and self.b.dns_responses
        before_rate = before / self.a.dns_responses if self.a.dns_responses else None
        after_rate = after / self.b.dns_responses if self.b.dns_responses else None
        lo, hi = (before_rate, after_rate) if rates else (before, after)
        ratio = hi / lo if lo else None  # type: ignore[operator]
        apart = abs(after - before) >= self.min_change
        if not before:
            change = "appeared"
        elif not after:
            change = "disappeared"
        elif apart and ratio is not None and ratio >= self.factor:
            change = "increased"
        elif apart and ratio is not None and ratio <= 1 / self.factor:
            change = "decreased"
        else:
            change = "unchanged"
        return {
            "before": before, "after": after,
            "before_rate": _round(before_rate), "after_rate": _round(after_rate),
            "ratio": _round(ratio), "change": change,
            "notable": change != "unchanged" and apart,
        }


def _ordered(rows: list[dict[str, Any]], key: Any) -> list[dict[str, Any]]:
    rank = {c: i for i, c in enumerate(CHANGES)}
    return sorted(rows, key=lambda r: (rank[r["change"]], not r["notable"],
                                       -max(r["before"], r["after"]), *key(r)))


def _summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(CHANGES, 0)
    for r in rows:
        counts[r["change"]] += 1
    return counts


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _window_edge(seen: str | None, filters: Filters | None, edge: str) -> str | None:
    """Return the capture's first/last timestamp, or the split instant when a window
    narrows it."""
    moment = getattr(filters, edge, None) if filters is not None else None
    if moment is None or seen is None:
        return seen
    from analyzer.filters import to_ns

    bound = reports.iso(to_ns(moment))
    if bound is None:
        return seen
    return max(seen, bound) if edge == "since" else min(seen, bound)
