"""The row frame -> a Parquet dataset partitioned by date and capture, for the data stack.

    DIR/date=2025-01-01/capture=samples%2Fincident.pcap/part-0.parquet

The layout is Hive's, so ``dask.dataframe.read_parquet``, DuckDB, Spark and Trino read it
as one table with two more columns, ``date`` and ``capture``, taken from the directory
names. The capture's name is percent-encoded there (``/`` is ``%2F``); every one of those
readers decodes it back. Column types are chosen so that all of them read the files as
they are:

- ``ts``, ``query_ts``: timestamp, microseconds, UTC. Spark cannot read nanosecond Parquet
  timestamps (``Illegal Parquet type: INT64 (TIMESTAMP(NANOS,true))``), so the digits below
  the microsecond that nanosecond pcaps carry are dropped here.
- categoricals: dictionary-encoded strings (pandas gets categories back, SQL engines a
  string).
- unsigned integers (ports, DNS ID, EDE code): the next wider signed integer, since
  unsigned Parquet types are not read everywhere; all integers stay nullable.
- ``latency``: a duration in nanoseconds (Arrow readers restore it; SQL engines see the
  64-bit integer).

Writing is per capture: a capture written again replaces its earlier files, so a dataset
can grow one day of captures at a time and a rerun does not duplicate rows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from analyzer import frame

ROWS_PER_FILE = 1_000_000
PARTITIONS = ("date", "capture")
# ASCII kept as it is in a partition value (RFC 3986 unreserved); other ASCII becomes %XX.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_MAX_NAME = 200  # bytes of a directory name; filesystems stop at 255


def partition_name(capture: str) -> str:
    """Return ``capture`` as a safe directory name that readers decode back to it.

    ASCII outside the URL-unreserved set is percent-encoded; other characters stay as they
    are, since Hive and Spark decode each %XX as one character, not as UTF-8.

    Example: ``partition_name("site a/x.pcap") == "site%20a%2Fx.pcap"``
    """
    pieces = [_encode(c) for c in capture]
    if sum(len(p.encode("utf-8", "surrogateescape")) for p in pieces) <= _MAX_NAME:
        return "".join(pieces)
    # Too long for one path segment: keep the end (the file name) after a digest of the
    # whole, for uniqueness; readers then show this shortened name as the capture.
    import hashlib

    digest = hashlib.sha256(capture.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    tail: list[str] = []
    budget = _MAX_NAME - len(digest) - 1
    for piece in reversed(pieces):
        budget -= len(piece.encode("utf-8", "surrogateescape"))
        if budget < 0:
            break
        tail.append(piece)
    return f"{digest}-{''.join(reversed(tail))}"


def _encode(char: str) -> str:
    if char in _UNRESERVED:
        return char
    if ord(char) < 0x80:
        return f"%{ord(char):02X}"
    if 0xDC80 <= ord(char) <= 0xDCFF:  # a byte of a file name that is not UTF-8
        return f"%{ord(char) - 0xDC00:02X}"
    return char


def arrow_schema(dtypes: dict[str, Any], *, partitions: Iterable[str] = PARTITIONS) -> Any:
    """Return the pyarrow schema of the Parquet files for a frame schema from ``frame``,
    without the columns named in ``partitions`` (the dataset's directory names).

    Every column gets a type from its declared dtype, never Arrow's ``null``: a column
    that is empty in one capture has the type it has in the others, so files combine."""
    import pyarrow as pa

    fields = []
    for name, dtype in dtypes.items():
        if name in partitions:
            continue
        fields.append(pa.field(name, _arrow_type(dtype)))
    return pa.schema(fields)


def _arrow_type(dtype: Any) -> Any:
    import pyarrow as pa

    text = str(dtype)
    types = {
        "category": pa.dictionary(pa.int32(), pa.string()),
        "string": pa.string(),
        "str": pa.string(),
        "boolean": pa.bool_(),
        "Int64": pa.int64(),
        "UInt8": pa.int16(),
        "UInt16": pa.int32(),
        "datetime64[ns, UTC]": pa.timestamp("us", tz="UTC"),
        "timedelta64[ns]": pa.duration("ns"),
    }
    if text not in types:
        raise ValueError(f"no Parquet type for dtype {text}; add it to dataset._arrow_type")
    return types[text]


def to_table(df: pd.DataFrame, *, partitions: Iterable[str] = PARTITIONS) -> Any:
    """Return ``df`` (a frame built by ``frame``) as a pyarrow Table in the dataset schema,
    the columns named in ``partitions`` left out (none for a single file)."""
    import pyarrow as pa

    schema = arrow_schema({name: df[name].dtype for name in df.columns}, partitions=partitions)
    columns = {}
    for name in schema.names:
        column = df[name]
        dtype = str(column.dtype)
        if dtype in _WIDER:
            column = column.astype(_WIDER[dtype])
        elif dtype == "datetime64[ns, UTC]":
            column = column.dt.floor("us").dt.as_unit("us")
        elif dtype == "category" and not column.notna().any():
            # Arrow reads an empty dictionary back as object-typed categories, which Dask
            # will not union with the str categories of a file that has values (TypeError:
            # dtype of categories must be the same); one unused "" keeps them str.
            column = column.cat.set_categories(pd.Index([""], dtype="str"))
        columns[name] = column
    # from_pandas records the pandas dtypes, so Arrow readers (pandas, Dask) get nullable
    # integers, booleans and strings back rather than NumPy ones.
    return pa.Table.from_pandas(pd.DataFrame(columns), schema=schema, preserve_index=False)


# pandas dtype of the columns that Parquet stores in a wider signed type
_WIDER = {"UInt8": "Int16", "UInt16": "Int32"}


def write(df: pd.DataFrame, directory: str | os.PathLike[str], *,
          captures: Iterable[str] = (), rows_per_file: int = ROWS_PER_FILE) -> list[Path]:
    """Write ``df`` as a Parquet dataset under ``directory``; return the files written.

    Each capture in ``df`` or in ``captures`` (the captures that were scanned, so one that
    now has no rows loses its old ones) first loses the files an earlier write left for it.
    Files appear under their final name only when complete.
    """
    import pyarrow.parquet as pq

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    names = set(captures) | set(df["capture"].astype(str).unique())
    for name in sorted(names):
        for old in root.glob(f"date=*/capture={partition_name(name)}"):
            shutil.rmtree(old)
    written: list[Path] = []
    if df.empty:
        return written
    dates = df["ts"].dt.strftime("%Y-%m-%d")
    keys = pd.DataFrame({"date": dates, "capture": df["capture"].astype(str)})
    groups = keys.groupby(["date", "capture"], sort=True).indices
    for (date, capture), positions in groups.items():
        part = df.iloc[positions]
        target = root / f"date={date}" / f"capture={partition_name(capture)}"
        target.mkdir(parents=True, exist_ok=True)
        table = to_table(part)
        for number, start in enumerate(range(0, len(table), rows_per_file)):
            final = target / f"part-{number}.parquet"
            # readers skip names starting with "." while the file is being written
            temporary = target / f".part-{number}.parquet.tmp"
            pq.write_table(table.slice(start, rows_per_file), temporary)
            os.replace(temporary, final)
            written.append(final)
    return written


def read(directory: str | os.PathLike[str], *, all_responses: bool = False) -> pd.DataFrame:
    """Return the rows of a dataset written by ``write`` with the declared frame schema.

    Timestamps come back with microsecond precision; rows are in capture and frame order.
    """
    import pyarrow.dataset as ds

    dtypes = frame.RESPONSE_DTYPES if all_responses else frame.EDE_DTYPES
    partitioning = ds.partitioning(_partition_schema(), flavor="hive")
    dataset = ds.dataset(str(directory), format="parquet", partitioning=partitioning,
                         schema=_with_partitions(arrow_schema(dtypes)))
    df = dataset.to_table().to_pandas()
    if df.empty:
        return frame.build_responses([]) if all_responses else frame.empty_ede()
    df = df.drop(columns="date")
    for name in ("ts", "query_ts"):
        df[name] = df[name].dt.as_unit("ns")
    order = ["capture", "frame_number", "ede_codes" if all_responses else "ede_index"]
    df = df.sort_values(order, kind="stable").reset_index(drop=True)
    df = df[list(dtypes)].astype(dtypes)
    for name, dtype in dtypes.items():
        if dtype == "category" and "" in df[name].cat.categories and not (df[name] == "").any():
            df[name] = df[name].cat.remove_categories([""])  # the placeholder (see to_table)
    return df


def _partition_schema() -> Any:
    import pyarrow as pa

    return pa.schema([pa.field("date", pa.string()), pa.field("capture", pa.string())])


def _with_partitions(schema: Any) -> Any:
    for field in _partition_schema():
        schema = schema.append(field)
    return schema
