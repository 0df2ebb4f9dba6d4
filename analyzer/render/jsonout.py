"""The report as JSON, and the row frame as JSON Lines."""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def write_report(report: dict[str, Any], out: IO[str]) -> None:
    """Write the report as indented JSON (schema: docs/report-schema.md).

    Non-ASCII is written as ``\\u`` escapes, so no byte of capture data can act on a
    terminal the JSON is printed to; any JSON parser restores the original text.
    """
    json.dump(report, out, indent=2, ensure_ascii=True, allow_nan=False)
    out.write("\n")


def write_frame(df: pd.DataFrame, out: IO[str]) -> None:
    """Write one JSON object per row: timestamps as ISO-8601 UTC with ``Z``, latency in
    seconds, missing values as null."""
    from analyzer.render import csvout

    if df.empty:
        return
    import io

    plain = csvout.plain_frame(df, neutralise=False)
    buffer = io.StringIO()
    plain.to_json(buffer, orient="records", lines=True, force_ascii=True, double_precision=15)
    # pandas escapes every "/" as "\/" (legal JSON, but "samples\/x.pcap" is not what a
    # reader greps for). Each "/" comes right after its own escape, so dropping that one
    # backslash is exact, also after an escaped backslash ("\\\/" -> "\\/").
    out.write(buffer.getvalue().replace("\\/", "/"))
