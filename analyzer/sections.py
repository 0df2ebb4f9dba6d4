"""The report's sections as typed pandas DataFrames, for notebooks and scripts.

``report_frames(report)`` turns the JSON-ready report (docs/report-schema.md) into one
DataFrame per list section: times become ``datetime64[ns, UTC]``, counts nullable
integers, shares floats and text ``string``. Nothing is left as a dict or a list in a
cell: a nested count (``rcodes``, ``extra_texts``, ``codes`` of a resolver) becomes text
such as ``"SERVFAIL 137, NOERROR 2"``, and a list of names is joined with ``", "``. The time
series comes in long form, one row per (bucket, code), with the DNS responses per bucket in
``responses``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from analyzer.result import ScanResult

# Columns (in any section) that hold a time as ISO-8601 text in the report.
TIME_COLUMNS = frozenset({"first_seen", "last_seen", "start", "end", "peak_at", "ts",
                          "fact_expiration", "fact_inception"})
# Columns that are whole numbers even when every row is missing (a capture read whole).
INT_COLUMNS = frozenset({"error_offset", "truncated_at", "packets", "bytes", "code", "count"})
LIST_SECTIONS = ("captures", "codes", "domains", "zones", "resolvers", "incidents", "hints")


def report_frames(report: dict[str, Any] | ScanResult, *, top: int = 10,
                  interval: str | int | None = None) -> dict[str, pd.DataFrame]:
    """Return the report's sections as DataFrames, keyed by section name: ``captures``,
    ``codes``, ``domains``, ``zones``, ``resolvers``, ``incidents``, ``hints`` and
    ``timeseries`` (plus any other list section the report carries).

    :param report: a report dict from ``ScanResult.report()``, or a ``ScanResult`` (then
        ``top`` and ``interval`` are passed to its ``report()``).

    Example: ``analyzer.report_frames(analyzer.scan("x.pcap"))["codes"]``
    """
    if not isinstance(report, dict):
        report = report.report(top=top, interval=interval)
    frames: dict[str, pd.DataFrame] = {}
    for name, value in report.items():
        if name == "timeseries":
            continue
        if isinstance(value, list) and (name in LIST_SECTIONS or
                                        all(isinstance(v, dict) for v in value)):
            frames[name] = section_frame(value)
    frames["timeseries"] = timeseries_frame(report.get("timeseries") or {})
    return frames


def section_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Return one report section (a list of dicts) as a typed DataFrame."""
    import pandas as pd

    columns: dict[str, list[Any]] = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, [])
    for row in rows:
        for key, cells in columns.items():
            cells.append(_flat(row.get(key)))
    return pd.DataFrame({key: _typed(key, cells) for key, cells in columns.items()},
                        index=pd.RangeIndex(len(rows)))


def timeseries_frame(series: dict[str, Any]) -> pd.DataFrame:
    """Return the report's time series in long form: ``ts`` (bucket start), ``code``,
    ``name``, ``count`` (EDEs in the bucket) and ``responses`` (all DNS responses then)."""
    import numpy as np
    import pandas as pd

    step = int(series.get("interval_seconds") or 0)
    buckets = int(series.get("buckets") or 0)
    start = series.get("start")
    if not series or not start or not step:
        return pd.DataFrame({"ts": pd.Series([], dtype="datetime64[ns, UTC]"),
                             "code": pd.Series([], dtype="UInt16"),
                             "name": pd.Series([], dtype="string"),
                             "count": pd.Series([], dtype="Int64"),
                             "responses": pd.Series([], dtype="Int64")})
    times = pd.date_range(pd.Timestamp(start), periods=buckets, freq=f"{step}s").as_unit("ns")
    responses = np.asarray(series.get("responses") or [0] * buckets, dtype=np.int64)
    lines = series.get("series") or []
    return pd.DataFrame({
        "ts": np.tile(times, len(lines)) if lines else times[:0],
        "code": pd.array(np.repeat([int(s["code"]) for s in lines], buckets), dtype="UInt16"),
        "name": pd.array(np.repeat([str(s["name"]) for s in lines], buckets), dtype="string"),
        "count": pd.array(np.concatenate([np.asarray(s["counts"], np.int64) for s in lines])
                          if lines else np.zeros(0, np.int64), dtype="Int64"),
        "responses": pd.array(np.tile(responses, len(lines)), dtype="Int64"),
    })


def _flat(value: Any) -> Any:
    """Return a cell with no dict or list in it."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
                         for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_item(v) for v in value)
    return value


def _item(value: Any) -> str:
    if isinstance(value, dict):
        count = value.get("count")
        label = next((str(v) for k, v in value.items() if k != "count"), "")
        if "code" in value and "name" in value:
            label = f"{value['code']} {value['name']}"
        return f"{label} ({count:,})" if isinstance(count, int) else label
    return str(value)


def _typed(name: str, cells: list[Any]) -> Any:
    import pandas as pd

    present = [c for c in cells if c is not None]
    if name in TIME_COLUMNS or name.endswith("_seen"):
        return pd.to_datetime(pd.Series(cells, dtype="object"), utc=True,
                              format="ISO8601").dt.as_unit("ns")
    if name in INT_COLUMNS and all(isinstance(c, int) for c in present):
        return pd.array(cells, dtype="Int64")
    if present and all(isinstance(c, bool) for c in present):
        return pd.array(cells, dtype="boolean")
    if present and all(isinstance(c, int) and not isinstance(c, bool) for c in present):
        return pd.array(cells, dtype="Int64")
    if present and all(isinstance(c, (int, float)) and not isinstance(c, bool)
                       for c in present):
        return pd.array([None if c is None else float(c) for c in cells], dtype="Float64")
    if not present:
        return pd.array(cells, dtype="string") if cells else pd.array([], dtype="string")
    return pd.array([None if c is None else str(c) for c in cells], dtype="string")
