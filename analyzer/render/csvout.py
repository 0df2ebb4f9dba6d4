"""The report as one CSV table with a ``section`` column, and the row frame as CSV.

A report has sections of different shapes; CSV has one header. So the report is written as
*one* table whose columns are the union of what the sections need (``CSV_COLUMNS``), one
row per item, the first column naming the section. Filter on ``section`` in a spreadsheet
or with ``pandas.read_csv(...).query("section == 'codes'")``. Which columns each section
fills is documented in docs/report-schema.md.

Text cells a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``,
TAB or CR) are prefixed with ``'`` in both the report and the row frame (OWASP CSV
injection). Numbers are written as numbers and never prefixed. Rows end in CRLF (RFC 4180).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from analyzer.render import zone_evidence

if TYPE_CHECKING:
    import pandas as pd

CSV_COLUMNS: tuple[str, ...] = (
    "section", "key", "value", "code", "name", "qname", "zone", "resolver", "count",
    "responses", "share", "domains", "first_seen", "last_seen", "start", "end",
    "peak_per_minute", "baseline_per_minute", "detail",
    "software_basis", "software_confidence", "software_candidates",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# RFC 4180 line ends. With "\n" alone, Python's csv writer leaves a field holding a bare CR
# unquoted, and readers then split the row there.
LINE_END = "\r\n"
_FORMULA_RE = r"^[=+\-@\t\r]"


def neutralise(value: Any) -> Any:
    """Return text that a spreadsheet would run as a formula with a leading ``'``; other
    values unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_report(report: dict[str, Any], out: IO[str]) -> None:
    """Write the report as one CSV table (see the module docstring)."""
    writer = csv.writer(out, lineterminator=LINE_END)
    writer.writerow(CSV_COLUMNS)
    for row in report_rows(report):
        writer.writerow([neutralise(_cell(row.get(c))) for c in CSV_COLUMNS])


def report_rows(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield one dict per CSV row, keyed by ``CSV_COLUMNS`` names."""
    for key, value in report["summary"].items():
        yield {"section": "summary", "key": key, "value": value}
    for key, value in (report.get("filters") or {}).items():
        yield {"section": "filters", "key": key,
               "value": "; ".join(map(str, value)) if isinstance(value, list) else value}
    for c in report["captures"]:
        yield {"section": "captures", "key": c["path"], "value": c["error"] or c["format"],
               "count": c["packets"], "first_seen": c["first_seen"],
               "last_seen": c["last_seen"], "detail": _join(c["linktypes"])}
    for section in ("accounting", "tunnels", "unopened"):
        for key, value in report.get(section, {}).items():
            yield {"section": section, "key": key, "count": value}
    for key, value in report["problems"].items():
        yield {"section": "problems", "key": key, "count": value}
    for c in report["codes"]:
        yield {"section": "codes", "code": c["code"], "name": c["name"], "count": c["count"],
               "responses": c["responses"], "share": c["share"], "domains": c["domains"],
               "value": _pairs(c["rcodes"]), "first_seen": c["first_seen"],
               "last_seen": c["last_seen"], "detail": c["next_step"]}
    for c in report["codes"]:
        for t in c["extra_texts"]:
            yield {"section": "extra_texts", "code": c["code"], "name": c["name"],
                   "value": t["text"], "count": t["count"]}
    for c in report["codes"]:
        for sentence in c.get("traffic_advice", []):
            yield {"section": "traffic_advice", "code": c["code"], "name": c["name"],
                   "detail": sentence}
        for r in c.get("top_clients", []):
            for client in r["clients"]:
                yield {"section": "top_clients", "code": c["code"], "name": c["name"],
                       "resolver": r["resolver"], "value": r["count"],
                       "key": client["client"], "count": client["count"]}
    for d in report["domains"]:
        yield {"section": "domains", "code": d["code"], "qname": d["qname"], "zone": d["zone"],
               "count": d["count"], "responses": d["responses"],
               "first_seen": d["first_seen"], "last_seen": d["last_seen"]}
    for z in report["zones"]:
        yield {"section": "zones", "code": z["code"], "zone": z["zone"],
               "value": zone_evidence(z),
               "count": z["count"], "responses": z["responses"], "domains": z["domains"],
               "first_seen": z["first_seen"], "last_seen": z["last_seen"],
               "key": _join(z["key_tags"]), "detail": _join(z["examples"])}
    for r in report["resolvers"]:
        codes = "; ".join(f"{c['code']} {c['name']} {c['count']}" for c in r["codes"])
        yield {"section": "resolvers", "resolver": r["resolver"], "count": r["count"],
               "responses": r["responses"], "domains": r["domains"],
               "value": r["software"], "key": codes, "first_seen": r["first_seen"],
               "last_seen": r["last_seen"], "detail": _join(r["evidence"]),
               "software_basis": r.get("software_basis"),
               "software_confidence": r.get("software_confidence"),
               "software_candidates": _join(r.get("software_candidates", []))}
    for r in report["resolvers"]:
        for pair in r.get("same_instance", []):
            yield {"section": "same_instance", "resolver": r["resolver"],
                   "key": pair["resolver"], "count": pair["shared"], "value": pair["of"]}
    section = report.get("error_reports") or {}
    for r in section.get("reports", []):
        yield {"section": "error_reports", "resolver": r["reporter"], "qname": r["qname"],
               "key": r["qtype"], "code": r["code"], "name": r["name"], "value": r["agent"],
               "count": r["count"], "first_seen": r["first_seen"], "last_seen": r["last_seen"]}
    for c in section.get("channels", []):
        yield {"section": "report_channels", "value": c["agent"], "count": c["count"]}
    for r in section.get("reconciliation", []):
        yield {"section": "error_reconciliation", "qname": r["qname"], "code": r["code"],
               "name": r["name"], "count": r["reports"], "responses": r["edes"],
               "domains": r["edes_with_channel"], "value": r["status"]}
    legs = report.get("upstream") or {}
    for e in legs.get("codes", []):
        yield {"section": "upstream", "code": e["code"], "name": e["name"], "zone": e["zone"],
               "count": e["edes"], "responses": e["edes_with_upstream"],
               "domains": e["upstream_queries"], "key": e["timeouts"],
               "value": _pairs(e["rcodes"]), "resolver": _join(e["servers"]),
               "detail": _pairs(e["upstream_edes"])}
    for f in legs.get("forwarders", []):
        yield {"section": "forwarders", "resolver": f["resolver"], "key": f["upstream_server"],
               "value": f["verdict"], "count": f["count"],
               "code": _join(f["upstream_ede"]), "name": _join(f["client_ede"]),
               "detail": _join(f["examples"])}
    for h in report.get("hints") or []:
        yield {"section": "hints", "key": h["kind"], "code": h["code"], "name": h["name"],
               "resolver": h["resolver"], "zone": h["zone"], "value": h["offset_seconds"],
               "count": h["count"], "first_seen": h["first_seen"], "last_seen": h["last_seen"],
               "detail": h["message"]}
    yield from _timeseries_rows(report["timeseries"])
    for i in report["incidents"]:
        yield {"section": "incidents", "code": i["code"], "name": i["name"],
               "start": i["start"], "end": i["end"], "count": i["count"],
               "peak_per_minute": i["peak_per_minute"],
               "baseline_per_minute": i["baseline_per_minute"],
               "qname": i["top_domains"][0]["qname"] if i["top_domains"] else None,
               "zone": i["top_zones"][0]["zone"] if i["top_zones"] else None,
               "detail": _join(f"{d['qname']} {d['count']}" for d in i["top_domains"])}


def _timeseries_rows(series: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if not series.get("buckets"):
        return
    from analyzer import reports

    step = int(series["interval_seconds"]) * 1_000_000_000
    start = reports.parse_iso_ns(series["start"])
    bounds = [(reports.iso(start + i * step), reports.iso(start + (i + 1) * step))
              for i in range(series["buckets"])]
    for i, n in enumerate(series["responses"]):
        yield {"section": "timeseries", "key": "responses", "start": bounds[i][0],
               "end": bounds[i][1], "responses": n}
    for s in series["series"]:
        for i, n in enumerate(s["counts"]):
            yield {"section": "timeseries", "code": s["code"], "name": s["name"],
                   "start": bounds[i][0], "end": bounds[i][1], "count": n}


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _join(values: Any) -> str:
    return "; ".join(str(v) for v in values)


def _pairs(mapping: dict[str, int]) -> str:
    return "; ".join(f"{k} {v}" for k, v in mapping.items())


# --- the row frame -------------------------------------------------------------------------

def write_frame(df: pd.DataFrame, out: IO[str]) -> None:
    """Write the row frame as CSV: ISO-8601 UTC timestamps, latency in seconds written
    exactly (``1.800825``, never ``1.8008250000000001``), booleans as ``true``/``false``
    like the report's CSV, formula cells neutralised."""
    import pandas as pd

    plain = plain_frame(df, neutralise=True)
    for name in plain.columns:
        column = plain[name]
        if pd.api.types.is_timedelta64_dtype(df[name].dtype):
            plain[name] = seconds_text(df[name])
        elif isinstance(column.dtype, pd.BooleanDtype) or pd.api.types.is_bool_dtype(column):
            plain[name] = column.map({True: "true", False: "false"}).astype("string")
    plain.to_csv(out, index=False, lineterminator=LINE_END)


def seconds_text(column: pd.Series) -> pd.Series:
    """Return a timedelta column as exact decimal seconds (``2.650454``), missing as <NA>.

    Computed from the integer nanoseconds, so no binary-float digits appear."""
    import numpy as np
    import pandas as pd

    if not len(column):
        return pd.Series([], index=column.index, dtype="string")
    ns = column.dt.as_unit("ns").to_numpy(dtype="timedelta64[ns]")
    present = ~np.isnat(ns)
    value = ns.view(np.int64)
    magnitude = np.abs(np.where(present, value, 0))
    whole = (magnitude // 1_000_000_000).astype(str)
    frac = np.char.rstrip(np.char.zfill((magnitude % 1_000_000_000).astype(str), 9), "0")
    text = np.where(frac == "", whole, np.char.add(np.char.add(whole, "."), frac))
    text = np.where(value < 0, np.char.add("-", text), text).astype(object)
    text[~present] = None
    return pd.Series(text, index=column.index, dtype="string")


def plain_frame(df: pd.DataFrame, *, neutralise: bool) -> pd.DataFrame:
    """Return ``df`` with timestamps as ISO-8601 strings, timedeltas as float seconds and
    text as ``string``; with ``neutralise`` formula-like text gets a leading ``'``."""
    import pandas as pd

    columns: dict[str, Any] = {}
    for name in df.columns:
        column = df[name]
        dtype = column.dtype
        if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
            columns[name] = _iso_column(column)
        elif pd.api.types.is_timedelta64_dtype(dtype):
            columns[name] = column.dt.total_seconds()
        elif isinstance(dtype, (pd.CategoricalDtype, pd.StringDtype)) or dtype is object or (
                pd.api.types.is_object_dtype(dtype)):
            text = column.astype("string")
            columns[name] = _neutralise_column(text) if neutralise else text
        else:
            columns[name] = column
    return pd.DataFrame(columns, index=df.index)


def _iso_column(column: pd.Series) -> pd.Series:
    import numpy as np
    import pandas as pd

    if getattr(column.dt, "tz", None) is not None:
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    values = column.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]")
    ns = values.view(np.int64)
    present = ~np.isnat(values)
    unit = "us" if (ns[present] % 1000 == 0).all() else "ns"
    text = np.char.add(np.datetime_as_string(values, unit=unit), "Z").astype(object)
    text[~present] = None
    return pd.Series(text, index=column.index, dtype="string")


def _neutralise_column(text: pd.Series) -> pd.Series:
    risky = text.str.contains(_FORMULA_RE, regex=True, na=False)
    if not risky.any():
        return text
    return text.where(~risky, "'" + text)


# used by tests to check the pattern and the scalar helper agree
FORMULA_PATTERN = re.compile(_FORMULA_RE)


# --- diff ------------------------------------------------------------------------------------

DIFF_CSV_COLUMNS: tuple[str, ...] = (
    "section", "key", "value", "code", "name", "zone", "resolver", "before", "after",
    "before_rate", "after_rate", "ratio", "change", "notable",
)


def write_diff(diff: dict[str, Any], out: IO[str]) -> None:
    """Write a diff (``analyzer.diffs.diff``) as one CSV table with a ``section`` column:
    ``options``, ``before``, ``after`` (key/value rows), then one row per code, zone and
    resolver entry."""
    writer = csv.writer(out, lineterminator=LINE_END)
    writer.writerow(DIFF_CSV_COLUMNS)
    for row in diff_rows(diff):
        writer.writerow([neutralise(_cell(row.get(c))) for c in DIFF_CSV_COLUMNS])


def diff_rows(diff: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield one dict per CSV row of a diff, keyed by ``DIFF_CSV_COLUMNS`` names."""
    for key, value in diff["options"].items():
        yield {"section": "options", "key": key, "value": value}
    for key, value in (diff.get("filters") or {}).items():
        yield {"section": "filters", "key": key,
               "value": "; ".join(map(str, value)) if isinstance(value, list) else value}
    for name in ("before", "after"):
        for key, value in diff[name].items():
            yield {"section": name, "key": key,
                   "value": _join(value) if isinstance(value, list) else value}
    for section in ("codes", "zones", "resolvers"):
        for entry in diff[section]:
            yield {"section": section, **entry}
