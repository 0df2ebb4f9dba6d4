"""Rows -> pandas DataFrames with one declared schema.

The decoder emits plain tuples (cheap to build in the hot loop); this module is the only
place that knows how they become typed columns. Names derived from numbers (code name,
RR type, RCODE) are added here, once per frame, not once per packet.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from analyzer import codes, dnsnames

# Fields every DNS response row carries, in the order the decoder writes them.
MESSAGE_FIELDS: tuple[str, ...] = (
    "capture", "frame_number", "ts", "src_ip", "src_port", "dst_ip", "dst_port",
    "transport", "encap", "dnstap_type", "dnstap_identity", "dnstap_version", "ip_version",
    "dns_id", "qname", "qtype", "qclass", "rcode",
    "aa", "tc", "rd", "ra", "ad", "cd", "edns_udp_size", "do", "ede_count", "query_ts",
)
# An EDE row is a message row followed by these.
EDE_FIELDS: tuple[str, ...] = MESSAGE_FIELDS + (
    "ede_index", "ede_code", "extra_text", "extra_text_utf8_valid", "report_channel",
)
# A response row is a message row followed by the info-codes it carried.
RESPONSE_FIELDS: tuple[str, ...] = MESSAGE_FIELDS + ("ede_codes", "report_channel")

_CATEGORY = "category"
# Python-backed strings: the pyarrow-backed default costs ~0.15 s of imports per process.
_STRING = pd.StringDtype("python")
_BOOL = "boolean"
_TS = "datetime64[ns, UTC]"

# dtype of every public column, in public order.
_COMMON_DTYPES: dict[str, Any] = {
    "capture": _CATEGORY,
    "frame_number": "Int64",
    "ts": _TS,
    "src_ip": _CATEGORY,
    "src_port": "UInt16",
    "dst_ip": _CATEGORY,
    "dst_port": "UInt16",
    "transport": _CATEGORY,
    "encap": _CATEGORY,
    "dnstap_type": _CATEGORY,      # CLIENT_RESPONSE...; null for a packet
    "dnstap_identity": _CATEGORY,  # the logging server's identity; null for a packet
    "dnstap_version": _CATEGORY,   # and its version string
    "ip_version": "UInt8",
    "dns_id": "UInt16",
    "qname": _CATEGORY,
    "qtype": _CATEGORY,
    "qclass": _CATEGORY,
    "rcode": _CATEGORY,
    "aa": _BOOL, "tc": _BOOL, "rd": _BOOL, "ra": _BOOL, "ad": _BOOL, "cd": _BOOL,
    "edns_udp_size": "UInt16",
    "do": _BOOL,
    "ede_count": "UInt16",
}
EDE_DTYPES: dict[str, Any] = {
    **_COMMON_DTYPES,
    "ede_index": "UInt16",
    "ede_code": "UInt16",
    "ede_name": _CATEGORY,
    "ede_category": _CATEGORY,
    "extra_text": _CATEGORY,
    "extra_text_utf8_valid": _BOOL,
    "report_channel": _CATEGORY,
    "query_ts": _TS,
    "latency": "timedelta64[ns]",
}
RESPONSE_DTYPES: dict[str, Any] = {
    **_COMMON_DTYPES,
    "ede_codes": _STRING,
    "report_channel": _CATEGORY,
    "query_ts": _TS,
    "latency": "timedelta64[ns]",
}
EDE_COLUMNS: tuple[str, ...] = tuple(EDE_DTYPES)
RESPONSE_COLUMNS: tuple[str, ...] = tuple(RESPONSE_DTYPES)


def _timestamps(values: Sequence[int | None] | np.ndarray) -> Any:
    """Nanoseconds -> UTC timestamps; None (or a negative number) is NaT."""
    if isinstance(values, np.ndarray):
        ns = values
    else:
        ns = (np.array(values, dtype=np.int64) if None not in values
              else np.array([-1 if v is None else v for v in values], dtype=np.int64))
    stamps = ns.view("datetime64[ns]").copy()
    stamps[ns < 0] = np.datetime64("NaT")
    return pd.DatetimeIndex(stamps).tz_localize("UTC").array


def _named(values: Sequence[int | None] | np.ndarray, namer: Any) -> pd.Categorical:
    """Numbers -> a categorical of their names, naming each distinct number once.

    ``values`` is a sequence with None for missing, or an int64 array with -1 for missing.
    """
    if isinstance(values, np.ndarray):
        numbers_all = values
    elif not values:
        return pd.Categorical([])
    elif None in values:
        numbers_all = np.array([-1 if v is None else v for v in values], dtype=np.int64)
    else:
        numbers_all = np.array(values, dtype=np.int64)
    numbers, inverse = np.unique(numbers_all, return_inverse=True)
    labels = [None if v < 0 else namer(v) for v in numbers.tolist()]
    # Categories sorted by name, as pd.Categorical(list) orders them; numbers may share one.
    categories = sorted({name for name in labels if name is not None})
    code_of = {name: i for i, name in enumerate(categories)}
    codes_by_number = np.array([-1 if name is None else code_of[name] for name in labels],
                               dtype=np.int64)
    return pd.Categorical.from_codes(codes_by_number[inverse], categories=categories)


def _in_order(rows: Sequence[tuple[Any, ...]]) -> Sequence[tuple[Any, ...]]:
    """Return response rows sorted by capture, frame number and codes string (stable).

    Rows arrive almost always in order already (DNS over TCP can lag): checked with numpy,
    and then nothing moves.
    """
    order = _sort_order([_ranks([r[0] for r in rows]), np.array([r[1] for r in rows], np.int64),
                         _ranks([r[len(MESSAGE_FIELDS)] for r in rows])])
    return rows if order is None else operator.itemgetter(*order.tolist())(rows)


def _ranks(values: Sequence[Any]) -> np.ndarray:
    """Each value's rank among the distinct values, sorted (a sort key for text)."""
    rank = {v: i for i, v in enumerate(sorted(set(values)))}
    return np.array([rank[v] for v in values], np.int64)


def _sort_order(keys: Sequence[np.ndarray]) -> np.ndarray | None:
    """The stable order that sorts rows by ``keys`` (most significant first), or None when
    they are in that order already: rows almost always arrive sorted, and then nothing is
    moved."""
    order = np.lexsort(keys[::-1])
    return None if len(order) < 2 or (np.diff(order) == 1).all() else order


_NUMPY_FOR = {"Int64": np.int64, "UInt16": np.int64, "UInt8": np.int64, _BOOL: bool}


def _column(values: Sequence[Any], dtype: Any) -> Any:
    """Return one typed column; without nulls, through numpy (pandas parses item by item)."""
    if dtype == _CATEGORY:
        # an object array: from a list, pandas 3 first builds a whole Arrow string array
        return pd.Categorical(np.array(values, dtype=object))
    fast = _NUMPY_FOR.get(dtype) if isinstance(dtype, str) else None
    if fast is not None and values and None not in values:
        return pd.array(np.array(values, dtype=fast), dtype=dtype)
    if dtype is _STRING:
        return pd.array(np.array(values, dtype=object), dtype=dtype)
    return pd.array(list(values), dtype=dtype)


def build_ede(rows: Iterable[tuple[Any, ...]]) -> pd.DataFrame:
    """Return the EDE frame (one row per EDE option) for decoder rows in ``EDE_FIELDS`` order."""
    return build_ede_columns(ede_columns(list(rows)))


# -- the column form of EDE rows ----------------------------------------------------------------
# The pipeline's bulk path hands over whole columns: numpy int64/bool arrays for numbers
# (-1 where a value is missing: no valid field is negative) and lists for text. Rows from the
# per-packet path are turned into the same form, so one builder serves both.

TEXT_FIELDS = frozenset({"capture", "src_ip", "dst_ip", "transport", "encap", "dnstap_type",
                         "dnstap_identity", "dnstap_version", "qname", "extra_text",
                         "report_channel"})
_BOOL_FIELDS = frozenset({"aa", "tc", "rd", "ra", "ad", "cd", "do", "extra_text_utf8_valid"})


def ede_columns(rows: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """Decoder rows in ``EDE_FIELDS`` order -> the column form."""
    transposed = list(zip(*rows, strict=True)) if rows else [()] * len(EDE_FIELDS)
    out: dict[str, Any] = {}
    for name, values in zip(EDE_FIELDS, transposed, strict=True):
        if name in TEXT_FIELDS:
            out[name] = list(values)
        elif None in values:
            out[name] = np.array([-1 if v is None else int(v) for v in values], np.int64)
        else:
            out[name] = np.array(values, np.int64)
    return out


def merge_columns(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Join column-form pieces field by field (no ordering: ``build_ede_columns`` sorts)."""
    if len(parts) == 1:
        return parts[0]
    merged: dict[str, Any] = {}
    for name in EDE_FIELDS:
        pieces = [p[name] for p in parts]
        if name in TEXT_FIELDS:
            merged[name] = [v for piece in pieces for v in piece]
        else:
            merged[name] = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    return merged


def plain_frame(columns: dict[str, Any]) -> pd.DataFrame:
    """The column form as a DataFrame, as it is: numbers (times in ns, codes, RCODEs) as
    int64, texts as objects, in no particular order. Building the typed frame costs ~20 ms
    whatever the rows, too much after every chunk of a stream; this costs one."""
    return pd.DataFrame({name: columns[name] for name in EDE_FIELDS}, copy=False)


def column_rows(columns: dict[str, Any]) -> int:
    return len(columns["frame_number"])


def build_ede_columns(columns: dict[str, Any]) -> pd.DataFrame:
    """Return the EDE frame for columns in the column form, sorted into capture order."""
    order = _sort_order([_ranks(columns["capture"]),
                         np.asarray(columns["frame_number"], np.int64),
                         np.asarray(columns["ede_index"], np.int64)])
    if order is not None:
        pick = order.tolist()
        columns = {name: ([values[i] for i in pick] if name in TEXT_FIELDS
                          else np.asarray(values)[order])
                   for name, values in columns.items()}
    data: dict[str, Any] = {}
    for name, dtype in EDE_DTYPES.items():
        if name in ("qtype", "qclass", "rcode"):
            data[name] = _named(np.asarray(columns[name], np.int64), _NAMERS[name])
        elif name in ("ede_name", "ede_category"):
            data[name] = _named(np.asarray(columns["ede_code"], np.int64), _NAMERS[name])
        elif name in ("ts", "query_ts"):
            data[name] = _timestamps(np.asarray(columns[name], np.int64))
        elif name == "latency":
            data[name] = data["ts"] - data["query_ts"]
        elif name in TEXT_FIELDS:
            data[name] = _column(columns[name], dtype)
        else:
            data[name] = _typed_numbers(np.asarray(columns[name], np.int64), dtype,
                                        name in _BOOL_FIELDS)
    return pd.DataFrame(data, copy=False).astype(EDE_DTYPES)


_NAMERS: dict[str, Any] = {
    "qtype": dnsnames.rrtype_name, "qclass": dnsnames.class_name, "rcode": dnsnames.rcode_name,
    "ede_name": lambda c: codes.describe(c).name,
    "ede_category": lambda c: codes.describe(c).category,
}


def _typed_numbers(values: np.ndarray, dtype: str, boolean: bool) -> Any:
    missing = values < 0
    clean = np.where(missing, 0, values)
    typed = pd.array(clean.astype(bool) if boolean else clean, dtype=dtype)
    if missing.any():
        typed[missing] = pd.NA
    return typed


def build_responses(rows: Iterable[tuple[Any, ...]]) -> pd.DataFrame:
    """Return the response frame (one row per DNS response) for rows in ``RESPONSE_FIELDS``."""
    rows = _in_order(list(rows))
    columns: dict[str, Any] = (dict(zip(RESPONSE_FIELDS, zip(*rows, strict=True), strict=True))
                               if rows else dict.fromkeys(RESPONSE_FIELDS, ()))
    data: dict[str, Any] = {}
    for name, dtype in RESPONSE_DTYPES.items():
        if name in ("qtype", "qclass", "rcode"):
            data[name] = _named(columns[name], _NAMERS[name])
        elif name in ("ts", "query_ts"):
            data[name] = _timestamps(columns[name])
        elif name == "latency":
            data[name] = data["ts"] - data["query_ts"]
        else:
            data[name] = _column(columns[name], dtype)
    # Every column is built in its declared dtype; astype only settles the categoricals'
    # dtype objects and costs nothing where they already match.
    return pd.DataFrame(data, copy=False).astype(RESPONSE_DTYPES)


def concat(frames: list[pd.DataFrame], dtypes: dict[str, Any]) -> pd.DataFrame:
    """Join frames built in pieces into one, in capture order, with the declared dtypes.

    ``frames`` is spent (the list is emptied): each column is moved out of the pieces as
    soon as it is joined, so only one column exists twice at any moment (a whole-frame
    concat, retype and sort would hold the rows three times over at the end of a scan).
    """
    nonempty = [f for f in frames if len(f)] or frames[:1]
    frames.clear()
    if len(nonempty) == 1:
        return nonempty[0]
    # The pieces as plain columns: taking a column out of a DataFrame costs more than
    # building it (the block manager is rebuilt each time).
    pieces = [{name: f[name].array for name in dtypes} for f in nonempty]
    del nonempty
    keys = ["capture", "frame_number"] + (["ede_index"] if "ede_index" in dtypes else [])
    order = _capture_order([[p[k] for p in pieces] for k in keys])
    data: dict[str, Any] = {}
    for name, dtype in dtypes.items():
        arrays = [p.pop(name) for p in pieces]
        if dtype == _CATEGORY:
            # pd.concat turns categoricals with different categories into objects
            if len({str(a.categories.dtype) for a in arrays}) > 1:
                # an all-NA column has object categories, a filled one str (a pcap's and
                # a dnstap log's dnstap_type): union_categoricals wants one dtype
                arrays = [pd.Categorical.from_codes(a.codes, a.categories.astype(object))
                          for a in arrays]
            joined = union_categoricals(arrays, sort_categories=True)
        else:
            joined = pd.concat([pd.Series(a, copy=False) for a in arrays],
                               ignore_index=True).astype(dtype).array
        del arrays
        data[name] = joined if order is None else joined.take(order)
        del joined
    return pd.DataFrame(data, copy=False)


def _capture_order(keys: list[list[Any]]) -> np.ndarray | None:
    """``_sort_order`` for the pieces' key columns, the first (capture names) categorical."""
    captures = [pd.Categorical(c) for c in keys[0]]
    names = sorted({str(c) for piece in captures for c in piece.categories})
    rank = {name: i for i, name in enumerate(names)}
    return _sort_order([
        np.concatenate([np.array([rank[str(c)] for c in piece.categories], np.int64)[piece.codes]
                        for piece in captures]),
        *(np.concatenate([a.to_numpy(dtype=np.int64, na_value=-1) for a in arrays])
          for arrays in keys[1:])])


def empty_ede() -> pd.DataFrame:
    """Return an EDE frame with no rows and the full schema."""
    return build_ede([])


# RFC 9567 error-report queries seen on the wire (``errorreport``), one row each.
REPORT_FIELDS: tuple[str, ...] = (
    "capture", "frame_number", "ts", "src_ip", "src_port", "dst_ip", "dst_port", "transport",
    "reported_qname", "reported_qtype", "ede_code", "agent_domain",
)
REPORT_DTYPES: dict[str, Any] = {
    "capture": _CATEGORY, "frame_number": "Int64", "ts": _TS, "src_ip": _STRING,
    "src_port": "UInt16", "dst_ip": _STRING, "dst_port": "UInt16", "transport": _CATEGORY,
    "reported_qname": _STRING, "reported_qtype": _CATEGORY, "ede_code": "UInt16",
    "ede_name": _CATEGORY, "agent_domain": _STRING,
}


def build_error_reports(rows: Iterable[tuple[Any, ...]]) -> pd.DataFrame:
    """Return the error-report frame for rows in ``REPORT_FIELDS`` order."""
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    if rows:
        columns: dict[str, Any] = dict(zip(REPORT_FIELDS, zip(*rows, strict=True), strict=True))
    else:
        columns = dict.fromkeys(REPORT_FIELDS, ())
    columns["qtype"] = columns.pop("reported_qtype")
    data: dict[str, Any] = {}
    for name, dtype in REPORT_DTYPES.items():
        if name == "reported_qtype":
            data[name] = _named(columns["qtype"], dnsnames.rrtype_name)
        elif name == "ede_name":
            data[name] = _named(columns["ede_code"], lambda c: codes.describe(c).name)
        elif name == "ts":
            data[name] = _timestamps(columns["ts"])
        else:
            data[name] = pd.array(list(columns[name]), dtype=dtype)
    frame = pd.DataFrame({k: pd.Series(v).reset_index(drop=True) for k, v in data.items()})
    return frame.astype(REPORT_DTYPES)
