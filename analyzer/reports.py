"""ScanResult -> the report: plain, JSON-ready dicts and lists answering the operator's questions.

Each section is one small function named for the question it answers (``code_counts``,
``affected_domains``, ``affected_zones``, ``resolvers``, ``timeline``, ``incidents``), and
``build_report`` composes them. Nothing here prints. The functions work on a *work frame*
(``work_frame``): the EDE rows reduced to the few columns the reports need, with the
query name lower-cased, the zone attributed, and a response key, all computed once per
distinct value rather than once per row.

Timestamps in the report are ISO-8601 UTC strings ending in ``Z``; counts are ints; shares
are floats in 0..1 (rounded to 6 places). The schema is documented in docs/report-schema.md.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analyzer import dnstap, zonecuts
from analyzer.errors import EdePcapError

if TYPE_CHECKING:
    from analyzer.filters import Filters
    from analyzer.result import ScanResult

SCHEMA_VERSION = 1

# Packet accounting categories whose packets went into DNS messages (whole, or as pieces
# of a reassembled datagram or TCP stream, or TCP control segments of such streams); every
# other category is packets that were skipped, and the category is the reason.
USED_CATEGORIES = frozenset({
    "dns-query", "dns-response", "ip-fragment", "tcp-segment", "tcp-no-payload",
    "tcp-retransmission", "tcp-out-of-order",
})

# Interval candidates for the time series, in seconds (1s .. 1 week).
INTERVALS: tuple[int, ...] = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800,
)
TARGET_BUCKETS = 120   # choose the smallest interval giving at most this many buckets
MAX_BUCKETS = 20_000   # refuse an --interval that would make more buckets than this

# Incident detector: see docs/report-schema.md, "Incidents".
INCIDENT_RATIO = 3.0       # a bucket must exceed RATIO x baseline ...
INCIDENT_MAD = 5.0         # ... and baseline + MAD_K x (1.4826 x MAD) ...
INCIDENT_MIN_COUNT = 5     # ... and hold at least this many EDE options
INCIDENT_MAX_GAP = 1       # runs separated by at most this many quiet buckets merge
WARM_RATIO = 1.5           # an incident lasts while buckets exceed WARM_RATIO x baseline ...
WARM_MAD = 2.0             # ... and baseline + WARM_MAD x (1.4826 x MAD)

# Clock-skew hints: see docs/report-schema.md, "Hints".
SKEW_FIELDS = {7: "expiration", 8: "inception", 25: None}  # codes -> the time they judge
SKEW_MIN_S = 60             # less than this between two hosts' clocks is NTP noise
SKEW_MAX_S = 7 * 86400      # "a few hours or days"; a larger gap is another problem
TIMEZONE_TOLERANCE_S = 120  # an offset this close to a whole number of hours ...
TIMEZONE_MAX_HOURS = 14     # ... of at most this many is a time-zone error (UTC-12..+14)
ONSET_MARGIN_S = 60         # the capture must start this long before EDEs that begin late
CLOCK_LINE = "a clock problem at the resolver, not a zone problem"

_NS = 1_000_000_000
_MIN_NS, _MAX_NS = -(2**63) + 1, 2**63 - 1
FINGERPRINT_TEXTS = 100  # distinct EXTRA-TEXTs per resolver given to textfacts.fingerprint


class ReportError(EdePcapError):
    """The report cannot be built with the options given."""


# --- entry point ---------------------------------------------------------------------------

def build_report(scan: ScanResult, *, top: int = 10, interval: str | int | None = None,
                 filters: Filters | None = None,
                 legs: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> dict[str, Any]:
    """Return the whole report for ``scan`` as a JSON-ready dict.

    :param top: how many domains and zones per code, resolvers, and incident domains to keep.
    :param interval: time-series bucket width (``"10s"``, ``"5min"``, seconds as int);
        chosen from the time span when None.
    :param filters: keep only the EDE rows that pass these (``analyzer.filters``).
    :param legs: ``(legs.upstream_for_edes(...), legs.forwarded(...))`` computed for the
        filtered EDE rows, one linked row per EDE row; adds the ``upstream`` section.
    """
    from analyzer import filters as filtering

    df, upstream_rows = client_facing(filtering.apply(scan.ede, filters))
    logged = logged_software(df) if scan.dnstap is not None else {}
    work = work_frame(df, zones=scan.zone_evidence)
    active = bool(filters is not None and filters.active)
    window = _window_ns(scan, work, filters)
    seconds = interval_seconds(interval) if interval is not None else choose_interval(
        window[1] - window[0] if window else 0)
    summary = summarize(scan, work, filters)
    series = timeline(work, seconds, window=window, response_seconds=scan.response_seconds)
    reported = error_reports(scan.error_reports, df, work, filters=filters, top=top)
    return {
        "schema_version": SCHEMA_VERSION,
        "options": {"top": top, "interval": interval_label(seconds),
                    "interval_chosen": interval is None},
        "filters": filters.to_dict() if active and filters is not None else None,
        "captures": captures(scan),
        "summary": summary,
        "accounting": accounting(scan),
        "tunnels": _largest_first(scan.tunnels),
        "unopened": _largest_first(scan.unopened),
        "problems": dict(sorted(scan.problems.items(), key=lambda kv: (-kv[1], kv[0]))),
        "codes": code_counts(work, dns_responses=summary["dns_responses"], top=top),
        "domains": affected_domains(work, top=top),
        "zones": affected_zones(work, top=top),
        "resolvers": resolvers(work, top=top, logged=logged),
        "timeseries": series,
        "incidents": incidents(series, work, top=min(top, 5)),
        "hints": hints(work, capture_start_ns=scan.first_ts_ns),
        # only when the captures hold RFC 9567 reports or report channels: most do not
        **({"error_reports": reported} if reported is not None else {}),
        **({"upstream": upstream(legs[0], legs[1], work, top=top)} if legs is not None
           else {}),
        # only for dnstap logs: what they say beyond packets, and the upstream EDEs
        **({"dnstap": scan.dnstap, "upstream_codes": upstream_codes(upstream_rows)}
           if scan.dnstap is not None else {}),
    }


def client_facing(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Split EDE rows into what clients got and the responses a server received upstream
    (dnstap ``RESOLVER_RESPONSE``, ``FORWARDER_RESPONSE``; None when there are none)."""
    if "dnstap_type" not in df or not df["dnstap_type"].notna().any():
        return df, None
    received = df["dnstap_type"].isin(dnstap.UPSTREAM_TYPES).to_numpy()
    if not received.any():
        return df, None
    return df[~received], df[received]


def logged_software(df: pd.DataFrame) -> dict[str, tuple[str, str | None]]:
    """Return, per server address, the dnstap version it logged most (and its identity)."""
    if df.empty or "dnstap_version" not in df:
        return {}
    rows = df.loc[df["dnstap_version"].notna(), ["src_ip", "dnstap_version", "dnstap_identity"]]
    if rows.empty:
        return {}
    counts = rows.astype(object).fillna("").value_counts()
    out: dict[str, tuple[str, str | None]] = {}
    for (ip, version, identity), _ in counts.items():  # most frequent first
        out.setdefault(str(ip), (str(version), str(identity) or None))
    return out


def upstream_codes(rows: pd.DataFrame | None) -> dict[str, int]:
    """EDE options per code in responses the server received upstream (dnstap)."""
    if rows is None or rows.empty:
        return {}
    counts = rows["ede_code"].astype("int64").value_counts()
    return {str(int(c)): int(n) for c, n in sorted(counts.items())}


# --- the work frame ------------------------------------------------------------------------

def work_frame(df: pd.DataFrame, zones: dict[str, Any] | None = None) -> pd.DataFrame:
    """Return the EDE rows reduced to what the reports use, with derived columns.

    Columns: ``code`` (int64), ``ts`` (Int64 ns since the epoch; NA when the capture's
    timestamp could not be represented), ``qname`` (lower-case,
    categorical), ``zone``, ``zone_source`` (``extra-text`` or ``qname``) and
    ``zone_evidence`` (``zonecuts.EVIDENCE``: what the zone was attributed from), ``key_tag``
    (Int64), ``rd``, ``edns_udp_size`` (int32, -1 without OPT), ``ede_count`` (int32: EDE
    options in the row's response), ``src_ip``, ``dst_ip``,
    ``rcode``, ``extra_text`` and ``response`` (one uint64 per DNS response, shared by the
    EDE options it carried).

    Every derived value is computed once per distinct input (name, text, address) and
    spread to the rows through integer codes, and few row-length arrays are alive at once:
    this frame is built at the end of a scan, when the EDE rows are already held.

    :param zones: the scan's zone-cut evidence (``ScanResult.zone_evidence``), which places
        DNSSEC failures that EXTRA-TEXT does not name a zone for (``zonecuts.attribute``).
    """
    n = len(df)
    if n == 0:
        return pd.DataFrame({
            "code": np.array([], dtype=np.int64), "ts": pd.array([], dtype="Int64"),
            "qname": pd.Categorical([]), "zone": pd.Categorical([]),
            "zone_source": pd.Categorical([]), "zone_evidence": pd.Categorical([]),
            "key_tag": pd.array([], dtype="Int64"), "rd": np.array([], dtype=bool),
            "edns_udp_size": np.array([], dtype=np.int32),
            "ede_count": np.array([], dtype=np.int32),
            "src_ip": pd.Categorical([]), "dst_ip": pd.Categorical([]),
            "rcode": pd.Categorical([]), "extra_text": pd.Categorical([]),
            "response": np.array([], dtype=np.uint64),
        })
    qname_codes, qname_uniques = _factorize(df["qname"])
    src_ip = _as_category(df["src_ip"])
    response = _response_ids(df, src_ip, qname_codes)  # early: its transients are the largest
    code = df["ede_code"].to_numpy(dtype=np.int64, na_value=-1)
    text_codes, text_uniques = _factorize(df["extra_text"])
    zone, evidence, key_tag = _zones(qname_codes, qname_uniques, text_codes, text_uniques,
                                     code, zones)
    return pd.DataFrame({
        "code": code,
        "ts": _ns(df["ts"]),
        "qname": _categorical(qname_codes, np.array([_lower_name(q) for q in qname_uniques],
                                                    dtype=object)),
        "zone": zone,
        "zone_source": pd.Categorical.from_codes(np.where(evidence == 0, 0, 1).astype(np.int8),
                                                 categories=["extra-text", "qname"]),
        "zone_evidence": pd.Categorical.from_codes(evidence, categories=list(EVIDENCE)),
        "key_tag": key_tag,
        # RD is copied from the query (RFC 1035 §4.1.1): whether the client asked to recurse
        "rd": df["rd"].to_numpy(dtype=bool, na_value=False) if "rd" in df else np.zeros(n, bool),
        # the OPT record's UDP payload size the resolver advertised (RFC 6891 §6.1.2), -1 none
        "edns_udp_size": df["edns_udp_size"].to_numpy(dtype=np.int32, na_value=-1)
        if "edns_udp_size" in df else np.full(n, -1, np.int32),
        "ede_count": df["ede_count"].to_numpy(dtype=np.int32, na_value=1)
        if "ede_count" in df else np.ones(n, np.int32),
        "src_ip": src_ip,
        "dst_ip": _as_category(df["dst_ip"]),
        "rcode": _as_category(df["rcode"]),
        "extra_text": _as_category(df["extra_text"]),
        "response": response,
    }, copy=False)  # the columns are new: a copy would hold them twice


def _response_ids(df: pd.DataFrame, src_ip: pd.Categorical, qname_codes: np.ndarray
                  ) -> np.ndarray:
    """One 64-bit hash per DNS response, shared by its EDE options: of the capture, frame,
    sender, port, DNS id and query name, each field hashed as the integer it is coded as
    (no text is hashed), one field at a time so that few row-length arrays are alive."""
    def codes(column: pd.Series) -> np.ndarray:
        if isinstance(column.dtype, pd.CategoricalDtype):
            return np.asarray(column.array.codes, np.int64)
        return _factorize(column)[0].astype(np.int64)

    fields = (
        lambda: (codes(df["capture"]) << 40) + df["frame_number"].to_numpy(np.int64, na_value=-1),
        lambda: np.asarray(src_ip.codes, np.int64),
        lambda: (df["src_port"].to_numpy(np.int64, na_value=0) << 16)
        | df["dns_id"].to_numpy(np.int64, na_value=0),
        lambda: qname_codes.astype(np.int64),
    )
    hashed = np.zeros(len(df), np.uint64)
    with np.errstate(over="ignore"):
        for field in fields:
            hashed *= np.uint64(_HASH_MIX)
            hashed ^= pd.util.hash_array(field())
    return hashed


_HASH_MIX = 0x9E3779B97F4A7C15  # odd: multiplying by it loses no bits of the running hash


def _as_category(column: pd.Series) -> pd.Categorical:
    """A text column as a categorical: each distinct value hashed once, rows as small codes
    (a categorical column is taken as it is)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.array
    codes, uniques = _factorize(column)
    return _categorical(codes, np.asarray(uniques, dtype=object))


def _zones(qname_codes: np.ndarray, qname_uniques: np.ndarray, text_codes: np.ndarray,
           text_uniques: np.ndarray, code: np.ndarray, evidence: dict[str, Any] | None = None
           ) -> tuple[pd.Categorical, np.ndarray, pd.arrays.IntegerArray]:
    """Return each row's zone (categorical, categories sorted), what it was attributed from
    (int8 index into ``zonecuts.EVIDENCE``), and the DNSKEY key tag the text named (``Int64``,
    NA: none).

    The zone is the one EXTRA-TEXT names for the row's code when it names one (``text``).
    Otherwise a DNSSEC failure's zone is inferred from the capture's evidence
    (``zonecuts.attribute``: ``signer``, ``soa``, ``referral``, ``boundary``), and any other
    code's zone is the query name's registrable zone (``qname``; "" without a query name).
    Each distinct (text, code) pair is parsed once and each distinct name placed once; rows
    get theirs by code.
    """
    from analyzer import textfacts

    names: dict[str, int] = {}  # zone text -> its index in ``names``
    # The (text, code) pairs: code is 16 bits (or -1), so the pair fits an int64.
    pair = text_codes.astype(np.int64)
    pair <<= 17
    pair += code
    pair += 1
    pair_codes, pairs = pd.factorize(pair, size_hint=_FACTORIZE_HINT)
    del pair
    pair_zone = np.full(len(pairs), -1, dtype=np.int64)
    pair_tag = np.full(len(pairs), -1, dtype=np.int64)
    for i, pair in enumerate(np.asarray(pairs).tolist()):
        t_index, c = pair >> 17, (pair & 0x1FFFF) - 1
        if t_index < 0:  # no EXTRA-TEXT
            continue
        facts = textfacts.parse_extra_text(str(text_uniques[t_index]), c)
        zone = getattr(facts, "zone", None)
        if zone:
            pair_zone[i] = names.setdefault(_lower_name(str(zone)), len(names))
        tag = getattr(facts, "key_tag", None)
        if tag is not None:
            pair_tag[i] = int(tag)
    fallback = np.array([names.setdefault(registrable_zone(str(q)), len(names))
                         for q in qname_uniques] + [names.setdefault("", len(names))
                                                    if (qname_codes < 0).any() else -1],
                        dtype=np.int64)
    row_zone = pair_zone[pair_codes]
    from_text = row_zone >= 0
    np.copyto(row_zone, fallback[qname_codes], where=~from_text)  # code -1: the "" entry
    row_evidence = np.where(from_text, 0, _QNAME).astype(np.int8)
    # DNSSEC failures the texts left without a zone: placed from the capture's evidence
    failing = ~from_text & np.isin(code, zonecuts.dnssec_codes()) & (qname_codes >= 0)
    if failing.any():
        distinct = np.unique(qname_codes[failing])
        placed = zonecuts.attribute([_lower_name(qname_uniques[i]) for i in distinct.tolist()],
                                    evidence)
        inferred_zone = np.full(len(qname_uniques), -1, np.int64)
        inferred_label = np.full(len(qname_uniques), _QNAME, np.int8)
        for i in distinct.tolist():
            zone, label = placed[_lower_name(qname_uniques[i])]
            inferred_zone[i] = names.setdefault(zone, len(names))
            inferred_label[i] = EVIDENCE.index(label)
        row_zone[failing] = inferred_zone[qname_codes[failing]]
        row_evidence[failing] = inferred_label[qname_codes[failing]]
    categories = np.array(list(names), dtype=object)
    order = np.argsort(categories, kind="stable")
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order))
    # a name's own zone goes unused when texts named another for all its rows
    zone = pd.Categorical.from_codes(rank[row_zone], categories=categories[order],
                                     validate=False).remove_unused_categories()
    del row_zone
    tags = pair_tag[pair_codes]
    missing = tags < 0
    tags[missing] = 0
    return zone, row_evidence, pd.arrays.IntegerArray(tags, missing)


registrable_zone = zonecuts.registrable_zone
EVIDENCE = zonecuts.EVIDENCE
_QNAME = EVIDENCE.index("qname")


# --- sections ------------------------------------------------------------------------------

def captures(scan: ScanResult) -> list[dict[str, Any]]:
    """Return one entry per capture read: format, packets, bytes, span, any error, and
    where a file cut off inside a record ends (``truncated_at``)."""
    return [{
        "path": c.path,
        "format": c.file_format or None,
        "compression": c.compression,
        "linktypes": list(c.linktypes),
        "packets": int(c.packets),
        "bytes": int(c.bytes_read),
        "first_seen": iso(c.first_ts_ns),
        "last_seen": iso(c.last_ts_ns),
        "error": c.error,
        "error_offset": c.error_offset,
        "truncated_at": c.truncated_at,
    } for c in scan.captures]


def accounting(scan: ScanResult) -> dict[str, int]:
    """Return packet category -> packets, largest first; the counts sum to ``packets``."""
    return {k: int(v) for k, v in sorted(scan.accounting.items(), key=lambda kv: (-kv[1], kv[0]))
            if v}


def _largest_first(counts: dict[str, int]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if v}


def skipped(counts: dict[str, int]) -> dict[str, int]:
    """Return the accounting categories that are skipped packets (reason -> packets)."""
    return {k: v for k, v in counts.items() if k not in USED_CATEGORIES and v}


def accounting_line(counts: dict[str, int], packets: int) -> str:
    """Return the packet accounting in one line: ``N packets: dns-response 10, ...``."""
    total = f"{packets:,} packet{'' if packets == 1 else 's'}"
    if not counts:
        return total
    parts = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    return f"{total}: {parts}"


def summarize(scan: ScanResult, work: pd.DataFrame, filters: Filters | None) -> dict[str, Any]:
    """Return the headline numbers: captures, packets, responses, EDE share, time span."""
    active = bool(filters is not None and filters.active)
    dns_responses = int(scan.dns_responses)
    if filters is not None and (filters.since or filters.until) and scan.response_seconds:
        dns_responses = _responses_in_window(scan.response_seconds, filters)
    if active:
        with_ede = int(work["response"].nunique())
        options = len(work)
    else:
        with_ede = int(scan.responses_with_ede)
        options = int(scan.ede_options)
    skip = skipped(accounting(scan))
    first, last = scan.first_ts_ns, scan.last_ts_ns
    ede_first, ede_last = _ts_range(work)
    return {
        "captures": len(scan.captures),
        "captures_failed": len(scan.failed),
        "packets": int(scan.packets),
        "skipped_packets": sum(skip.values()),
        "accounting_line": accounting_line(accounting(scan), int(scan.packets)),
        "dns_queries": int(scan.dns_queries),
        "dns_responses": dns_responses,
        "responses_with_ede": with_ede,
        "ede_share": _share(with_ede, dns_responses),
        "ede_options": options,
        "codes": int(work["code"].nunique()),
        "domains": int(work["qname"].nunique()),
        "zones": int(work["zone"].nunique()),
        "resolvers": int(work["src_ip"].nunique()),
        "first_seen": iso(first),
        "last_seen": iso(last),
        "span_seconds": _seconds(first, last),
        "ede_first_seen": iso(ede_first),
        "ede_last_seen": iso(ede_last),
        "filtered": active,
    }


def code_counts(work: pd.DataFrame, *, dns_responses: int = 0, top: int = 3
                ) -> list[dict[str, Any]]:
    """Return one entry per INFO-CODE, most frequent first, with the catalogue's next step.

    ``count`` is EDE options, ``responses`` the responses carrying the code, ``share`` their
    fraction of all DNS responses, ``domains`` the distinct query names, ``rcodes`` the
    RCODEs seen with the code, and ``extra_texts`` its most frequent EXTRA-TEXTs (``top``).
    """
    if work.empty:
        return []
    from analyzer import codes as catalogue

    g = work.groupby("code", sort=False)
    table = pd.DataFrame({
        "count": g.size(),
        "responses": g["response"].nunique(),
        "domains": g["qname"].nunique(),
        "zones": g["zone"].nunique(),
        "resolvers": g["src_ip"].nunique(),
        "first": g["ts"].min(),
        "last": g["ts"].max(),
    })
    table = table.reset_index().sort_values(["count", "code"], ascending=[False, True])
    rcodes = _nested_counts(work, "code", "rcode")
    texts = _nested_counts(work, "code", "extra_text", limit=top)
    clients = refused_clients(work)
    out = []
    for row in table.itertuples(index=False):
        info = catalogue.describe(int(row.code))
        out.append({
            "code": int(row.code),
            "name": info.name,
            "category": info.category,
            "count": int(row.count),
            "responses": int(row.responses),
            "share": _share(int(row.responses), dns_responses),
            "domains": int(row.domains),
            "zones": int(row.zones),
            "resolvers": int(row.resolvers),
            "rcodes": dict(rcodes.get(row.code, [])),
            "first_seen": iso(row.first),
            "last_seen": iso(row.last),
            "extra_texts": [{"text": t, "count": c} for t, c in texts.get(row.code, []) if t],
            "top_clients": clients if int(row.code) == PROHIBITED else [],
            "traffic_advice": traffic_advice(work, int(row.code), int(row.count), clients),
            "meaning": info.meaning,
            "next_step": info.next_step,
            "status": info.status,
        })
    return out


NOT_AUTHORITATIVE, PROHIBITED = 20, 18
TOP_CLIENT_RESOLVERS, TOP_CLIENTS = 3, 3  # code 18: resolvers, and clients per resolver
ONE_CLIENT_SHARE = 0.5  # one client this much of a resolver's code-18 EDEs is called out


def refused_clients(work: pd.DataFrame) -> list[dict[str, Any]]:
    """Return, for code 18 (Prohibited), the clients refused most per resolver: up to
    TOP_CLIENT_RESOLVERS resolvers by EDEs, each with ``count`` and its TOP_CLIENTS clients
    (``client``, ``count``). Prohibited is usually an ACL refusing a client, so the client
    is the lead."""
    rows = work.loc[work["code"].to_numpy() == PROHIBITED, ["src_ip", "dst_ip"]]
    if rows.empty:
        return []
    per_client = _nested_counts(rows, "src_ip", "dst_ip")
    ranked = sorted(per_client.items(), key=lambda kv: (-sum(n for _, n in kv[1]), kv[0]))
    return [{"resolver": str(resolver), "count": sum(n for _, n in pairs),
             "clients": [{"client": str(c), "count": n} for c, n in pairs[:TOP_CLIENTS]]}
            for resolver, pairs in ranked[:TOP_CLIENT_RESOLVERS]]


def traffic_advice(work: pd.DataFrame, code: int, count: int,
                   clients: list[dict[str, Any]]) -> list[str]:
    """Return what the traffic says about a code beyond its catalogue entry, as sentences.

    Code 20 (Not Authoritative) for queries sent with RD=0: the client did not ask for
    recursion, so the server answered as an authority for a zone it does not serve; a
    recursion ACL or a lame delegation is not the story. Code 18 (Prohibited): the clients
    refused, and whether one client carries most of it.
    """
    out: list[str] = []
    if code == NOT_AUTHORITATIVE:
        rows = work["code"].to_numpy() == code
        no_rd = int((rows & ~work["rd"].to_numpy()).sum())
        if no_rd:
            share = "All" if no_rd == count else f"{no_rd} of {count}"
            out.append(f"{share} were answers to queries sent with RD=0: the client did not "
                       "ask for recursion, so the server answered as if it were an "
                       "authority. Look at the client (a stub, forwarder or probe pointed at "
                       "this server without recursion), not at a recursion ACL or a lame "
                       "delegation.")
    if code == PROHIBITED:
        for entry in clients:
            top = entry["clients"][0]
            if top["count"] >= ONE_CLIENT_SHARE * entry["count"]:
                share = ("All" if top["count"] == entry["count"]
                         else f"{top['count']} of the") + f" {entry['count']}"
                out.append(f"{share} at {entry['resolver']} went to one client, "
                           f"{top['client']}: check whether the "
                           "resolver's ACL should allow it, or why it queries a resolver "
                           "that refuses it.")
            else:
                named = ", ".join(f"{c['client']} ({c['count']})" for c in entry["clients"])
                out.append(f"{entry['resolver']} refused {entry['count']}: most to {named}.")
    return out


def affected_domains(work: pd.DataFrame, *, top: int = 10) -> list[dict[str, Any]]:
    """Return the top ``top`` query names per code (by EDE options) with their zone."""
    if work.empty:
        return []
    g = work.groupby(["code", "qname"], sort=False, observed=True)
    table = pd.DataFrame({
        "count": g.size(),
        "responses": g["response"].nunique(),
        "zone": g["zone"].first(),
        "first": g["ts"].min(),
        "last": g["ts"].max(),
    }).reset_index()
    table = _top_per_code(table, "qname", top)
    return [{
        "code": int(r.code), "qname": str(r.qname), "zone": str(r.zone),
        "count": int(r.count), "responses": int(r.responses),
        "first_seen": iso(r.first), "last_seen": iso(r.last),
    } for r in table.itertuples(index=False)]


def affected_zones(work: pd.DataFrame, *, top: int = 10) -> list[dict[str, Any]]:
    """Return the top ``top`` zones per code: the zone named by EXTRA-TEXT when it names
    one (the broken zone is often a parent of the query name), else the query name's
    registrable zone. ``source`` says which; ``key_tags`` lists DNSKEY ids the text named.
    """
    if work.empty:
        return []
    flagged = work.assign(from_text=(work["zone_source"] == "extra-text").astype(np.int64),
                          evidence=np.asarray(work["zone_evidence"].array.codes, np.int64))
    g = flagged.groupby(["code", "zone"], sort=False, observed=True)
    table = pd.DataFrame({
        "count": g.size(),
        "responses": g["response"].nunique(),
        "domains": g["qname"].nunique(),
        "from_text": g["from_text"].sum(),
        "evidence": g["evidence"].min(),  # the strongest evidence any of its rows had
        "first": g["ts"].min(),
        "last": g["ts"].max(),
    }).reset_index()
    table = _top_per_code(table, "zone", top)
    chosen = work.loc[work["zone"].isin(table["zone"].unique()),
                      ["code", "zone", "qname", "key_tag"]]
    tags = _key_tags(chosen)
    examples = _nested_counts(chosen, ["code", "zone"], "qname", limit=3)
    out = []
    for r in table.itertuples(index=False):
        key = (int(r.code), str(r.zone))
        out.append({
            "code": int(r.code), "zone": str(r.zone),
            "source": "extra-text" if r.from_text else "qname",
            "evidence": EVIDENCE[int(r.evidence)],
            "count": int(r.count), "responses": int(r.responses), "domains": int(r.domains),
            "key_tags": tags.get(key, []),
            "examples": [q for q, _ in examples.get(key, [])],
            "first_seen": iso(r.first), "last_seen": iso(r.last),
        })
    return out


def resolvers(work: pd.DataFrame, *, top: int = 10,
              logged: dict[str, tuple[str, str | None]] | None = None) -> list[dict[str, Any]]:
    """Return the top ``top`` servers that sent EDEs, with their codes and the software
    their EXTRA-TEXTs point to (``textfacts.fingerprint``) and the evidence for it.

    ``logged`` maps an address to the (version, identity) its dnstap log names
    (``logged_software``): the server's own word, which outranks any inference.
    """
    if work.empty:
        return []
    from analyzer import codes as catalogue
    from analyzer import textfacts

    g = work.groupby("src_ip", sort=False, observed=True)
    table = pd.DataFrame({
        "count": g.size(),
        "responses": g["response"].nunique(),
        "clients": g["dst_ip"].nunique(),
        "domains": g["qname"].nunique(),
        "first": g["ts"].min(),
        "last": g["ts"].max(),
    }).reset_index()
    table = table.sort_values(["count", "src_ip"], ascending=[False, True],
                              key=_sort_key).head(top)
    chosen = work.loc[work["src_ip"].isin(table["src_ip"]),
                      ["src_ip", "code", "extra_text", "response", "edns_udp_size",
                       "ede_count"]]
    by_code = _nested_counts(chosen, "src_ip", "code")
    behaviour = _behaviour(chosen)
    # the most frequent texts carry the wording; parsing thousands of rare ones adds nothing
    texts = _nested_counts(chosen, "src_ip", "extra_text", limit=FINGERPRINT_TEXTS)
    out = []
    for r in table.itertuples(index=False):
        said = texts.get(r.src_ip, [])
        software, evidence = textfacts.fingerprint([t for t, _ in said])
        codes = by_code.get(r.src_ip, [])
        basis, confidence, candidates, why = _software_basis(
            software, evidence, said, codes, behaviour.get(r.src_ip, Behaviour()))
        if logged and str(r.src_ip) in logged:
            version, identity = logged[str(r.src_ip)]
            software, basis, confidence, candidates = version, "dnstap", "high", [version]
            evidence = [f"dnstap version {version!r}" + (f", identity {identity!r}"
                                                          if identity else "")]
        out.append({
            "resolver": str(r.src_ip),
            "count": int(r.count), "responses": int(r.responses),
            "clients": int(r.clients), "domains": int(r.domains),
            "codes": [{"code": int(c), "name": catalogue.describe(int(c)).name, "count": n}
                      for c, n in codes],
            "software": software,
            "evidence": _evidence(evidence) or why,
            "software_basis": basis,
            "software_confidence": confidence,
            "software_candidates": candidates,
            "same_instance": [],
            "first_seen": iso(r.first), "last_seen": iso(r.last),
        })
    _same_instances(work, out)
    if logged:
        _same_server(out, logged)
    return out


SAME_INSTANCE_WINDOW_S = 10  # EDEs for one name and code this close count as the same event
SAME_INSTANCE_MIN = 5        # shared events needed at least ...
SAME_INSTANCE_SHARE = 0.5    # ... and this share of the smaller resolver's events


@dataclasses.dataclass(slots=True)
class Behaviour:
    """What a resolver's EDE options show besides their text: the EDNS UDP payload sizes
    their responses advertised (size -> EDE options), how many options came in a response
    with more than one, and how many responses carried one code twice."""

    sizes: dict[int, int] = dataclasses.field(default_factory=dict)
    multi: int = 0
    repeated: int = 0


def _behaviour(rows: pd.DataFrame) -> dict[Any, Behaviour]:
    """Return each resolver's ``Behaviour`` from its EDE rows (one row per option).

    Counted per option, not per response, so that no row-length grouping by response is
    needed; only the rare responses with several options are grouped."""
    out: dict[Any, Behaviour] = {}
    if rows.empty:
        return out
    for (src, size), n in rows.groupby(["src_ip", "edns_udp_size"], sort=True,
                                       observed=True).size().items():
        if n and size >= 0:
            out.setdefault(_plain(src), Behaviour()).sizes[int(size)] = int(n)
    several = rows.loc[rows["ede_count"].to_numpy() > 1, ["src_ip", "response", "code"]]
    for src, n in several.groupby("src_ip", observed=True).size().items():
        if n:
            out.setdefault(_plain(src), Behaviour()).multi = int(n)
    twice = several.loc[several.duplicated(["response", "code"])].drop_duplicates("response")
    for src, n in twice.groupby("src_ip", observed=True).size().items():
        if n:
            out.setdefault(_plain(src), Behaviour()).repeated = int(n)
    return out


# The four resolvers told apart by behaviour, and what each does (the project's EDE reference
# notes, sections 1 and 4, and the sources they cite):
KNOWN_SOFTWARE = ("unbound", "bind", "knot-resolver", "powerdns")
# PowerDNS Recursor writes 512 into the OPT record of every answer (pdns_recursor.cc,
# ``pw.addOpt(512, ...)``); Unbound (edns-buffer-size), BIND (edns-udp-size) and Knot Resolver
# (net.bufsize) advertise their configured buffer: 1232 by default since the DNS Flag Day 2020
# releases, 4096 before. So 512 points to PowerDNS, any other size rules it out, and 1232 or
# 4096 does not tell the other three apart.
PDNS_UDP_SIZE = 512
# The INFO-CODEs in each one's own code table: a code outside it cannot come from it.
# PowerDNS is not listed: its RPZ and Lua hooks can set any INFO-CODE.
CODE_TABLES: dict[str, frozenset[int]] = {
    "unbound": frozenset(range(31)),
    "bind": frozenset(range(25)) | {33},
    "knot-resolver": frozenset(range(31)) | {33},
}
_LABELS = {"unbound": "Unbound", "bind": "BIND", "knot-resolver": "Knot Resolver",
           "powerdns": "PowerDNS Recursor"}


def _software_basis(software: str | None, evidence: list[str],
                    said: list[tuple[Any, int]], codes: list[tuple[Any, int]],
                    behaviour: Behaviour | None = None
                    ) -> tuple[str, str | None, list[str], list[str]]:
    """Return how a resolver's software is known (``text``, ``behaviour`` or ``unknown``),
    how sure that is, the candidates, and the evidence when the texts named none.

    Without wording to go on, two behaviours point to software: DNSSEC EDEs with no
    EXTRA-TEXT at all (PowerDNS Recursor sends them bare, and so does Unbound below
    val-log-level 2, while BIND and Knot Resolver word theirs) and an EDNS UDP size of 512
    (PowerDNS Recursor's fixed value). Others only rule software out: any other size rules
    out PowerDNS, several EDE options in one response Knot Resolver and PowerDNS (they send
    one), one code twice BIND (it sends each code once), a code outside a software's own
    table that software. Candidates are named only when a pointing behaviour is seen; the
    confidence is ``medium`` when both pointing behaviours agree on one, else ``low``.
    """
    if software is not None:
        confidence = "high" if len(evidence) >= 2 or sum(
            n for t, n in said if t in evidence) >= 10 else "medium"
        return "text", confidence, [software], []
    behaviour = behaviour or Behaviour()
    worded = sum(n for t, n in said if isinstance(t, str) and t)
    bare_dnssec = sum(n for c, n in codes if int(c) in zonecuts.DNSSEC_CODES)
    ruled_out: set[str] = set()
    facts: list[str] = []
    pointers = 0
    if not worded and bare_dnssec:
        pointers += 1
        ruled_out |= {"bind", "knot-resolver"}
        facts.append(f"{_count(bare_dnssec, 'DNSSEC EDE')} and no EXTRA-TEXT at all: PowerDNS "
                     "Recursor sends them without text, and so does Unbound below "
                     "val-log-level 2; BIND and Knot Resolver would word them")
    sizes = behaviour.sizes
    answered = sum(sizes.values())
    said_sizes = (str(next(iter(sizes))) if len(sizes) == 1 else ", ".join(
        f"{k} ({_count(v, 'EDE')})" for k, v in sorted(sizes.items())))
    whose = (f"the responses of all its {_count(answered, 'EDE')} advertise" if answered > 1
             else "the response of its one EDE advertises")
    if sizes and set(sizes) == {PDNS_UDP_SIZE}:
        pointers += 1
        ruled_out |= {"unbound", "bind", "knot-resolver"}
        facts.append(f"{whose} an EDNS UDP size of 512, the value PowerDNS "
                     "Recursor always writes; Unbound, BIND and Knot Resolver advertise their "
                     "buffer size, 1232 by default")
    elif sizes and PDNS_UDP_SIZE not in sizes:
        ruled_out.add("powerdns")
        facts.append(f"{whose} an EDNS UDP size of {said_sizes}, never the 512 "
                     "PowerDNS Recursor always writes; the size does not tell Unbound, BIND "
                     "and Knot Resolver apart (1232 by default)")
    elif sizes:
        facts.append(f"{whose} several EDNS UDP sizes ({said_sizes}): perhaps "
                     "several servers behind one address; the size is not used")
    if behaviour.multi:
        ruled_out |= {"knot-resolver", "powerdns"}
        facts.append(f"{_count(behaviour.multi, 'EDE')} came in responses with more than "
                     "one EDE option: Knot Resolver and PowerDNS Recursor send one")
    if behaviour.repeated:
        ruled_out.add("bind")
        facts.append(f"{_count(behaviour.repeated, 'response')} "
                     f"carr{'ies' if behaviour.repeated == 1 else 'y'} one code twice: BIND "
                     "sends each code once")
    for name, table in CODE_TABLES.items():
        outside = sorted(int(c) for c, _ in codes if int(c) not in table)
        if outside and name not in ruled_out:
            ruled_out.add(name)
            facts.append(f"code {', '.join(map(str, outside[:3]))} is not in "
                         f"{_LABELS[name]}'s code table")
    candidates = sorted(s for s in KNOWN_SOFTWARE if s not in ruled_out)
    if pointers and candidates:
        confidence = "medium" if pointers >= 2 and len(candidates) == 1 else "low"
        return "behaviour", confidence, candidates, ["; ".join(facts)]
    if pointers:
        reason = ("its behaviour fits none of Unbound, BIND, Knot Resolver and PowerDNS "
                  "Recursor")
    elif worded:
        reason = "its EXTRA-TEXTs match no known wording"
    else:
        reason = ("its EDEs carry no EXTRA-TEXT, and none are DNSSEC codes, which every "
                  "resolver may send bare")
    return "unknown", None, [], ["; ".join([f"unknown: {reason}", *facts])]


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _same_instances(work: pd.DataFrame, entries: list[dict[str, Any]]) -> None:
    """Mark an IPv4 and an IPv6 resolver address as likely one instance when they agree on
    software (or both are unknown) and sent the same codes for the same names within
    SAME_INSTANCE_WINDOW_S of each other, often enough (``same_instance``)."""
    import ipaddress

    if len(entries) < 2:
        return
    addresses = [e["resolver"] for e in entries]
    rows = work.loc[work["src_ip"].isin(addresses) & work["ts"].notna().to_numpy(),
                    ["src_ip", "qname", "code", "ts"]]
    # Each (name, code, 10 s bucket) event as one 24-byte value, sets of them as sorted
    # arrays: a set of Python tuples per resolver cost 26 MiB at 140k EDE rows.
    src = pd.Categorical(rows["src_ip"])
    events = np.ascontiguousarray(np.stack([
        np.asarray(pd.Categorical(rows["qname"]).codes, np.int64),
        rows["code"].to_numpy(np.int64),
        rows["ts"].to_numpy(np.int64) // (SAME_INSTANCE_WINDOW_S * _NS)], axis=1)).view("V24")
    codes = np.asarray(src.codes)
    keyed = {str(a): np.unique(events[codes == k]) for k, a in enumerate(src.categories)}
    version = {a: ipaddress.ip_address(a).version for a in addresses
               if _is_address(a)}
    for i, a in enumerate(entries):
        for b in entries[i + 1:]:
            ra, rb = a["resolver"], b["resolver"]
            if {version.get(ra), version.get(rb)} != {4, 6}:
                continue
            if a["software_candidates"] != b["software_candidates"]:
                continue
            none = np.zeros(0, "V24")
            ka, kb = keyed.get(ra, none), keyed.get(rb, none)
            shared = len(np.intersect1d(ka, kb, assume_unique=True))
            smaller = min(len(ka), len(kb))
            if shared >= SAME_INSTANCE_MIN and shared >= SAME_INSTANCE_SHARE * smaller:
                for mine, other in ((a, rb), (b, ra)):
                    mine["same_instance"].append({"resolver": other, "shared": shared,
                                                  "of": smaller, "basis": "behaviour"})


def _same_server(entries: list[dict[str, Any]],
                 logged: dict[str, tuple[str, str | None]]) -> None:
    """Pair the addresses one dnstap log names as one server (the same identity and
    version): its own word, not an inference (``basis: dnstap``; no event counts)."""
    for i, a in enumerate(entries):
        for b in entries[i + 1:]:
            la, lb = logged.get(a["resolver"]), logged.get(b["resolver"])
            if la is None or la != lb or not la[1]:
                continue
            for mine, other in ((a, b["resolver"]), (b, a["resolver"])):
                if all(p["resolver"] != other for p in mine["same_instance"]):
                    mine["same_instance"].append({"resolver": other, "shared": None,
                                                  "of": None, "basis": "dnstap"})


def _is_address(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def timeline(work: pd.DataFrame, interval: int, *, window: tuple[int, int] | None = None,
             response_seconds: dict[int, int] | None = None) -> dict[str, Any]:
    """Return EDE options per code per ``interval`` seconds over ``window`` (ns, inclusive).

    Buckets are aligned to multiples of the interval since the epoch. ``responses`` counts
    every DNS response per bucket (from the scan, before any filter but the time window).
    """
    step = interval * _NS
    if window is None:
        window = _ts_range(work) if _ts_range(work)[0] is not None else None
    base = {"interval": interval_label(interval), "interval_seconds": interval,
            "detector": detector_params()}
    if window is None:
        return {**base, "start": None, "end": None, "buckets": 0, "responses": [],
                "series": []}
    first_bucket = window[0] // step
    buckets = int(window[1] // step - first_bucket + 1)
    if buckets > MAX_BUCKETS:
        raise ReportError(
            f"--interval {interval_label(interval)} makes {buckets} buckets over "
            f"{_duration(window[1] - window[0])}; use a wider interval, e.g. --interval "
            f"{interval_label(choose_interval(window[1] - window[0]))}")
    start_ns = int(first_bucket * step)
    code_index, codes = pd.factorize(work["code"], sort=True)
    stamped = work["ts"].notna().to_numpy()
    bucket = work["ts"].to_numpy(dtype=np.int64, na_value=0) // step - first_bucket
    inside = stamped & (bucket >= 0) & (bucket < buckets)
    flat = code_index[inside].astype(np.int64) * buckets + bucket[inside]
    counts = np.bincount(flat, minlength=len(codes) * buckets).reshape(len(codes), buckets)
    totals = counts.sum(axis=1)
    order = np.lexsort((np.asarray(codes), -totals))
    from analyzer import codes as catalogue

    series = [{
        "code": int(codes[i]), "name": catalogue.describe(int(codes[i])).name,
        "total": int(totals[i]), "counts": counts[i].tolist(),
    } for i in order]
    return {**base, "start": iso(start_ns), "end": iso(start_ns + buckets * step),
            "buckets": buckets,
            "responses": _response_buckets(response_seconds or {}, start_ns, step, buckets),
            "series": series}


def incidents(series: dict[str, Any], work: pd.DataFrame, *, top: int = 3
              ) -> list[dict[str, Any]]:
    """Return the windows where a code rose well above its own baseline, by start time.

    Per code: baseline b = median bucket count, sigma = 1.4826 x the median absolute
    deviation from b. A bucket is *hot* when its count is > RATIO x b, > b + MAD_K x sigma
    and >= MIN_COUNT; *warm* when > WARM_RATIO x b and > b + WARM_MAD x sigma. An incident
    is a run of warm buckets (bridging up to MAX_GAP cooler ones) holding a hot bucket.
    """
    if not series.get("series"):
        return []
    step = int(series["interval_seconds"]) * _NS
    start_ns = parse_iso_ns(series["start"])
    out = []
    stamped = work["ts"].notna().to_numpy()
    ts = work["ts"].to_numpy(dtype=np.int64, na_value=0)
    code_col = work["code"].to_numpy()
    for s in series["series"]:
        counts = np.asarray(s["counts"], dtype=np.int64)
        for first, last, baseline, threshold in hot_runs(counts):
            lo = start_ns + first * step
            hi = start_ns + (last + 1) * step
            rows = work.loc[stamped & (code_col == s["code"]) & (ts >= max(lo, _MIN_NS))
                            & (ts < min(hi, _MAX_NS))]
            window = counts[first:last + 1]
            peak = int(window.max())
            per_minute = 60 * _NS / step
            out.append({
                "code": s["code"], "name": s["name"],
                "start": iso(lo), "end": iso(hi),
                "duration_seconds": (hi - lo) // _NS,
                "buckets": int(last - first + 1),
                "count": int(window.sum()),
                "peak": peak,
                "peak_at": iso(start_ns + (first + int(window.argmax())) * step),
                "peak_per_minute": round(peak * per_minute, 3),
                "baseline": round(baseline, 3),
                "baseline_per_minute": round(baseline * per_minute, 3),
                "threshold": threshold,
                "top_domains": _top_values(rows["qname"], "qname", top),
                "top_zones": _top_values(rows["zone"], "zone", top),
                "top_resolvers": _top_values(rows["src_ip"], "resolver", top),
            })
    out.sort(key=lambda i: (i["start"], -i["count"], i["code"]))
    return out


def upstream(linked: pd.DataFrame, forwarded: pd.DataFrame, work: pd.DataFrame, *,
             top: int = 10) -> dict[str, Any]:
    """Return what the resolvers' upstream legs and the forwarders show (``report --upstream``).

    ``codes``: per (code, zone), most EDEs first (``top``): how many EDEs had upstream
    queries to look at, those queries, the ones never answered (timeouts), the RCODEs and
    the EDE codes upstream answered with, and the servers asked. ``forwarders``: per
    (forwarder, upstream server, verdict) the EDEs it received and what its clients got:
    ``passed``, ``dropped`` or ``rewrote`` (``legs.forwarded``).

    :param linked: ``legs.upstream_for_edes`` for the rows of ``work``, in the same order.
    """
    from analyzer import codes as catalogue

    if len(linked) != len(work):
        raise ValueError("linked must hold one row per EDE row of work, in order")
    codes_out: list[dict[str, Any]] = []
    if len(work):
        table = pd.DataFrame({
            "code": work["code"].to_numpy(), "zone": work["zone"].astype(str).to_numpy(),
            "queries": linked["upstream_queries"].to_numpy(dtype=np.int64),
            "timeouts": linked["upstream_timeouts"].to_numpy(dtype=np.int64),
            "rcodes": linked["upstream_rcodes"].astype(str).to_numpy(),
            "edes": linked["upstream_ede"].astype(str).to_numpy(),
            "servers": linked["upstream_servers"].astype(str).to_numpy(),
        })
        for (code, zone), g in table.groupby(["code", "zone"], sort=False):
            rcodes: dict[str, int] = {}
            for text in g["rcodes"]:
                for part in text.split():
                    name, _, n = part.rpartition(":")
                    rcodes[name] = rcodes.get(name, 0) + int(n)
            edes: dict[str, int] = {}
            for text in g["edes"]:
                for c in filter(None, text.split(",")):
                    edes[c] = edes.get(c, 0) + 1
            servers: dict[str, int] = {}
            for text in g["servers"]:
                for s in text.split():
                    servers[s] = servers.get(s, 0) + 1
            codes_out.append({
                "code": int(code), "name": catalogue.describe(int(code)).name,
                "zone": str(zone), "edes": len(g),
                "edes_with_upstream": int((g["queries"] > 0).sum()),
                "upstream_queries": int(g["queries"].sum()),
                "timeouts": int(g["timeouts"].sum()),
                "rcodes": dict(sorted(rcodes.items(), key=lambda kv: (-kv[1], kv[0]))),
                "upstream_edes": dict(sorted(edes.items(),
                                             key=lambda kv: (-kv[1], int(kv[0])))),
                "servers": [s for s, _ in sorted(servers.items(),
                                                 key=lambda kv: (-kv[1], kv[0]))][:5],
            })
        codes_out.sort(key=lambda e: (-e["edes"], e["code"], e["zone"]))
    forwarders: list[dict[str, Any]] = []
    if len(forwarded):
        for (resolver, server, verdict), g in forwarded.groupby(
                ["resolver", "upstream_server", "verdict"], sort=True):
            forwarders.append({
                "resolver": str(resolver), "upstream_server": str(server),
                "verdict": str(verdict), "count": len(g),
                "upstream_ede": sorted({int(c) for t in g["upstream_ede"]
                                        for c in str(t).split(",") if c}),
                "client_ede": sorted({int(c) for t in g["client_ede"]
                                      for c in str(t).split(",") if c}),
                "examples": list(dict.fromkeys(g["qname"].astype(str)))[:3],
            })
        order = {"dropped": 0, "rewrote": 1, "passed": 2}
        forwarders.sort(key=lambda f: (order.get(f["verdict"], 3), -f["count"], f["resolver"]))
    return {"codes": codes_out[:top * 3], "forwarders": forwarders[:top * 3]}


def error_reports(reports_df: pd.DataFrame | None, df: pd.DataFrame, work: pd.DataFrame, *,
                  filters: Filters | None = None, top: int = 10) -> dict[str, Any] | None:
    """Return the RFC 9567 error reports seen and how they square with the EDEs, or None
    when the captures hold neither a report query nor a response with a Report-Channel.

    ``reports`` lists the report queries per (reporter, agent, name, type, code), most
    first (``top``). ``reconciliation`` has one entry per reported (name, code) and per
    (name, code) whose EDE responses carried a report channel: the reports, the EDE options
    on the wire, and ``status``: ``reported`` (both), ``report-without-ede`` or
    ``ede-not-reported`` (a channel was offered, no report went out).
    """
    has_channel = "report_channel" in df.columns and bool(df["report_channel"].notna().any())
    if (reports_df is None or reports_df.empty) and not has_channel:
        return None
    from analyzer import codes as catalogue
    from analyzer import filters as filtering

    found = pd.DataFrame()
    if reports_df is not None and not reports_df.empty:
        found = filtering.apply(reports_df.rename(columns={"reported_qname": "qname"}),
                                filters)
    listed: list[dict[str, Any]] = []
    by_key: dict[tuple[str, int], int] = {}
    if not found.empty:
        found = found.assign(qname=[_lower_name(q) for q in found["qname"].astype(object)],
                             ts_ns=_ns(found["ts"]))
        g = found.groupby(["src_ip", "agent_domain", "qname", "reported_qtype", "ede_code"],
                          observed=True, sort=False)
        table = pd.DataFrame({"count": g.size(), "first": g["ts_ns"].min(),
                              "last": g["ts_ns"].max()}).reset_index()
        table = table.sort_values(["count", "qname", "ede_code", "src_ip"],
                                  ascending=[False, True, True, True], key=_sort_key)
        listed = [{
            "reporter": str(r.src_ip), "agent": str(r.agent_domain), "qname": str(r.qname),
            "qtype": str(r.reported_qtype), "code": int(r.ede_code),
            "name": catalogue.describe(int(r.ede_code)).name, "count": int(r.count),
            "first_seen": iso(r.first), "last_seen": iso(r.last),
        } for r in table.head(top).itertuples(index=False)]
        for (q, c), n in found.groupby(["qname", "ede_code"], observed=True).size().items():
            by_key[(str(q), int(c))] = int(n)
    edes: dict[tuple[str, int], int] = {}
    channelled: dict[tuple[str, int], int] = {}
    if not work.empty:
        for (q, c), n in work.groupby(["qname", "code"], observed=True).size().items():
            edes[(str(q), int(c))] = int(n)
        if has_channel:
            flagged = work.loc[df["report_channel"].notna().to_numpy()]
            for (q, c), n in flagged.groupby(["qname", "code"], observed=True).size().items():
                if n:
                    channelled[(str(q), int(c))] = int(n)
    rows: list[dict[str, Any]] = []
    for q, c in sorted(by_key.keys() | channelled.keys(), key=lambda k: (k[0], k[1])):
        sent, seen = by_key.get((q, c), 0), edes.get((q, c), 0)
        status = ("reported" if sent and seen else "report-without-ede" if sent
                  else "ede-not-reported")
        rows.append({"qname": q, "code": c, "name": catalogue.describe(c).name,
                     "reports": sent, "edes": seen, "edes_with_channel": channelled.get((q, c), 0),
                     "status": status})
    order = {"ede-not-reported": 0, "report-without-ede": 1, "reported": 2}
    rows.sort(key=lambda r: (order[r["status"]], -max(r["reports"], r["edes"]), r["qname"],
                             r["code"]))
    channels = (df.loc[df["report_channel"].notna(), "report_channel"].astype(str)
                .str.lower().str.rstrip(".").value_counts() if has_channel else pd.Series())
    return {
        "reports": listed,
        "report_queries": int(len(found)),
        "channels": [{"agent": str(a), "count": int(n)} for a, n in
                     sorted(channels.items(), key=lambda kv: (-kv[1], kv[0]))[:top]],
        "reconciliation": rows[:max(top, 1) * 5],
        "summary": {s: sum(r["status"] == s for r in rows) for s in order},
    }


def hints(work: pd.DataFrame, *, capture_start_ns: int | None = None,
          top: int = 10) -> list[dict[str, Any]]:
    """Return what the EDEs suggest beyond their codes: for now, resolvers whose clock is off.

    A *clock-skew* hint is given per (resolver, zone, code) when codes 7, 8 or 25 come with
    an RRSIG time in EXTRA-TEXT (``textfacts``: epoch seconds or ``YYYYMMDDHHmmSS``) that
    contradicts the packet's own time: 7 with the expiration still ahead of the packet
    (the resolver's clock runs ahead), 8 with the inception already behind it (its clock
    runs behind), each by SKEW_MIN_S to SKEW_MAX_S; or 7 whose EDEs began a whole number of
    hours after the expiration while the capture was already running (a time-zone error).
    ``offset_seconds`` is the resolver's clock minus the capture's, as the EDEs imply.
    """
    if work.empty:
        return []
    code = work["code"].to_numpy()
    chosen = np.isin(code, list(SKEW_FIELDS)) & work["ts"].notna().to_numpy()
    if not chosen.any():
        return []
    rows = work.loc[chosen, ["code", "ts", "src_ip", "zone", "extra_text"]]
    from analyzer import textfacts

    # one parse per distinct (text, code) pair, then mapped back to the rows with numpy
    text_index, texts = _factorize(rows["extra_text"])
    pair = (text_index.astype(np.int64) + 1) * 65_537 + rows["code"].to_numpy(np.int64)
    pairs, inverse = np.unique(pair, return_inverse=True)
    field_of = np.full(len(pairs), "", dtype=object)
    sig_of = np.zeros(len(pairs), dtype=np.int64)
    for i, p in enumerate(pairs.tolist()):
        t, c = divmod(p, 65_537)
        if not t:
            continue
        facts = textfacts.parse_extra_text(str(texts[t - 1]), c)
        wanted = SKEW_FIELDS[c]
        for name in ("expiration", "inception"):
            seconds = textfacts.rrsig_time(getattr(facts, name))
            if seconds is not None and wanted in (None, name):
                field_of[i], sig_of[i] = name, seconds
                break
    inverse = np.asarray(inverse).reshape(-1)
    keep = field_of[inverse] != ""
    if not keep.any():
        return []
    rows = rows.loc[keep]
    rows = rows.assign(
        field=field_of[inverse][keep],
        sig_ns=sig_of[inverse][keep] * _NS,
        ts_ns=rows["ts"].to_numpy(dtype=np.int64))
    # d: how far the resolver's clock must be from the capture's for this one EDE
    rows = rows.assign(d=(rows["sig_ns"] - rows["ts_ns"]) / _NS)
    from analyzer import codes as catalogue

    out = []
    for (resolver, zone, c, name), g in rows.groupby(["src_ip", "zone", "code", "field"],
                                                     observed=True, sort=True):
        expiry = name == "expiration"
        # expiration: clock >= sig - ts for every EDE; inception: clock < sig - ts
        at = g["d"].idxmax() if expiry else g["d"].idxmin()
        bound, sig_ns = float(g.at[at, "d"]), int(g.at[at, "sig_ns"])
        first, last = int(g["ts_ns"].min()), int(g["ts_ns"].max())
        offset: float | None = None
        onset = False
        if expiry and SKEW_MIN_S <= bound <= SKEW_MAX_S:
            offset = bound
        elif not expiry and SKEW_MIN_S <= -bound <= SKEW_MAX_S:
            offset = bound
        elif expiry and bound < 0 and _whole_hours(-bound) and (
                capture_start_ns is not None
                and capture_start_ns <= first - ONSET_MARGIN_S * _NS):
            offset, onset = bound, True
        if offset is None:
            continue
        seconds = int(round(offset))
        timezone = _whole_hours(abs(offset))
        label = f"{int(c)} {catalogue.describe(int(c)).name}"
        gap = _span(abs(offset))
        clock = (f"its clock runs about {gap} {'ahead' if offset > 0 else 'behind'}"
                 + (", a whole number of hours: a time-zone error" if timezone else ""))
        if onset:
            why = (f"the EDEs began {gap} after the RRSIG expiration ({iso(sig_ns)}), while "
                   "the capture was already running")
        elif expiry:
            why = f"the RRSIG expiration it quotes ({iso(sig_ns)}) is still {gap} after its " \
                  "first such EDE"
        else:
            why = f"the RRSIG inception it quotes ({iso(sig_ns)}) was already {gap} before " \
                  "its last such EDE"
        # no capture text in the explanation, so Markdown and HTML can print it as it is
        explanation = f"{why}: {CLOCK_LINE} ({clock})."
        texts = g["extra_text"].astype(object).value_counts()
        out.append({
            "kind": "clock-skew",
            "code": int(c), "name": catalogue.describe(int(c)).name,
            "resolver": str(resolver), "zone": str(zone),
            "field": name, "signature_time": iso(sig_ns),
            "offset_seconds": seconds, "timezone": timezone,
            "count": len(g), "first_seen": iso(first), "last_seen": iso(last),
            "evidence": [str(t) for t in texts.index[:3]],
            "explanation": explanation,
            "message": f"{resolver} sent {label} for {zone}, but {explanation}",
        })
    out.sort(key=lambda h: (-h["count"], h["resolver"], h["zone"], h["code"]))
    return out[:top]


def _whole_hours(seconds: float) -> bool:
    hours = round(seconds / 3600)
    return 1 <= hours <= TIMEZONE_MAX_HOURS and abs(seconds - hours * 3600) <= \
        TIMEZONE_TOLERANCE_S


def _span(seconds: float) -> str:
    """Return a gap in words: ``45 s``, ``12 min``, ``3 h``, ``2.5 days``."""
    if _whole_hours(seconds):
        return f"{round(seconds / 3600)} h"
    if seconds < 120:
        return f"{round(seconds)} s"
    if seconds < 2 * 3600:
        return f"{round(seconds / 60)} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def hot_runs(counts: np.ndarray) -> list[tuple[int, int, float, int]]:
    """Return (first, last, baseline, threshold) for each incident in one code's buckets.

    Hysteresis: an incident needs a *hot* bucket (count >= threshold) and spans the run of
    *warm* buckets around it (count >= the lower ``warm`` level), where runs separated by
    at most MAX_GAP cooler buckets are one run. With a zero baseline any EDE is warm, so an
    outage whose rate wobbles stays one incident instead of many fragments.
    """
    if len(counts) == 0:
        return []
    baseline = float(np.median(counts))
    sigma = 1.4826 * float(np.median(np.abs(counts - baseline)))
    # the smallest hot count: strictly above both bounds and at least MIN_COUNT
    threshold = max(math.floor(max(INCIDENT_RATIO * baseline,
                                   baseline + INCIDENT_MAD * sigma)) + 1, INCIDENT_MIN_COUNT)
    hot = counts >= threshold
    if not hot.any():
        return []
    warm_level = math.floor(max(WARM_RATIO * baseline, baseline + WARM_MAD * sigma)) + 1
    warm = counts >= warm_level
    for gap in range(1, INCIDENT_MAX_GAP + 1):
        # fill quiet stretches of ``gap`` buckets between two warm ones
        if len(warm) > gap + 1:
            bridged = warm[:-gap - 1] & warm[gap + 1:]
            for k in range(1, gap + 1):
                warm[k:len(warm) - gap - 1 + k] |= bridged
    edges = np.diff(np.concatenate(([0], warm.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(int(a), int(b), baseline, threshold) for a, b in zip(starts, ends, strict=True)
            if hot[a:b + 1].any()]


def detector_params() -> dict[str, Any]:
    """Return the incident detector's parameters, for the report."""
    return {"baseline": "median", "ratio": INCIDENT_RATIO, "mad_k": INCIDENT_MAD,
            "min_count": INCIDENT_MIN_COUNT, "warm_ratio": WARM_RATIO, "warm_mad_k": WARM_MAD,
            "max_gap": INCIDENT_MAX_GAP}


# --- intervals -----------------------------------------------------------------------------

_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
          "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
          "d": 86400, "day": 86400, "days": 86400, "w": 604800, "week": 604800}


def interval_seconds(value: str | int) -> int:
    """Return the seconds in an interval such as ``10s``, ``5min``, ``1h``, ``1d`` or ``30``."""
    if isinstance(value, int):
        seconds = value
    else:
        match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", value)
        if not match or match.group(2).lower() not in {"", *_UNITS}:
            raise ReportError(f"--interval {value}: not an interval; use e.g. 10s, 5min, 1h")
        seconds = int(match.group(1)) * _UNITS.get(match.group(2).lower(), 1)
    if seconds <= 0:
        raise ReportError(f"--interval {value}: must be at least 1s")
    return seconds


def choose_interval(span_ns: int) -> int:
    """Return the smallest candidate interval giving at most TARGET_BUCKETS buckets."""
    for seconds in INTERVALS:
        if span_ns <= TARGET_BUCKETS * seconds * _NS:
            return seconds
    weeks = math.ceil(span_ns / (TARGET_BUCKETS * INTERVALS[-1] * _NS))
    return weeks * INTERVALS[-1]


def interval_label(seconds: int) -> str:
    """Return the short label of an interval: ``1s``, ``5min``, ``2h``, ``1d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --- helpers -------------------------------------------------------------------------------

def iso(ns: Any) -> str | None:
    """Return ISO-8601 UTC with ``Z`` for nanoseconds since the epoch (None for missing).

    Works for any instant in years 1..9999, before 1970 included, without the platform's
    ``gmtime`` limits."""
    if ns is None or ns is pd.NA or ns is pd.NaT or (isinstance(ns, float) and math.isnan(ns)):
        return None
    micros = int(ns) // 1000
    try:
        moment = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        return None
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.year < 1000:  # strftime does not zero-pad years below 1000 everywhere
        text = f"{moment.year:04d}" + text[text.index("-"):]
    return f"{text}.{moment.microsecond:06d}Z" if moment.microsecond else f"{text}Z"


def parse_iso_ns(text: str) -> int:
    """Return nanoseconds since the epoch for a timestamp written by ``iso``."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ts_range(work: pd.DataFrame) -> tuple[int | None, int | None]:
    """Return the first and last EDE timestamp (ns), ignoring rows without one."""
    ts = work["ts"].dropna()
    if ts.empty:
        return None, None
    return int(ts.min()), int(ts.max())


def _ns(ts: pd.Series) -> pd.arrays.IntegerArray:
    """Return the timestamps as Int64 nanoseconds since the epoch, NA where NaT."""
    if ts.dtype == _TS_UTC:  # the frame's own dtype: read its integers in place
        values = ts.array.asi8
    else:
        values = ts.dt.tz_convert("UTC").dt.as_unit("ns").dt.tz_localize(None).to_numpy(
        ).view(np.int64)
    return pd.arrays.IntegerArray(values, values == _NAT)


# Python-backed text for sorting and counting: pandas' default string dtype is Arrow's when
# pyarrow is installed, and Arrow's memory pool keeps what it allocated resident.
_TEXT = pd.StringDtype("python")
_NAT = np.iinfo(np.int64).min  # how numpy stores NaT
_TS_UTC = pd.DatetimeTZDtype("ns", "UTC")


def _factorize(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes and values of a column (-1 for missing): a categorical's own, else the distinct
    values in order of appearance.

    Text columns repeat few values many times: a small size hint keeps pandas from sizing
    its hash table for every row (4 MB instead of 1 MB for 72k rows), and it grows as needed.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):  # coded already: nothing to hash
        return np.asarray(column.array.codes), np.asarray(column.array.categories, dtype=object)
    values = column.to_numpy(dtype=object) if column.dtype == object or isinstance(
        column.dtype, pd.StringDtype) else column
    codes, uniques = pd.factorize(values, use_na_sentinel=True, size_hint=_FACTORIZE_HINT)
    return np.asarray(codes), np.asarray(uniques, dtype=object)


_FACTORIZE_HINT = 1024


def _categorical(codes: np.ndarray, values: np.ndarray) -> pd.Categorical:
    """Return the categorical with ``values[codes]`` (-1 is missing); lower-casing may have
    made some values equal, so the categories are factorised again (cheap: one per value)."""
    if len(values) == 0:
        return pd.Categorical([None] * len(codes))
    value_codes, categories = pd.factorize(values)
    # one gather through a small lookup, its last entry standing for code -1
    lookup = np.append(value_codes, -1).astype(np.int32)
    return pd.Categorical.from_codes(lookup[codes], categories=categories, validate=False)


def _lower_name(name: Any) -> str:
    text = str(name).lower().rstrip(".")
    return text or "."


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _seconds(first: int | None, last: int | None) -> float | None:
    if first is None or last is None:
        return None
    return round((last - first) / _NS, 6)


def _duration(ns: int) -> str:
    seconds = ns // _NS
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds} seconds"


def _window_ns(scan: ScanResult, work: pd.DataFrame, filters: Filters | None
               ) -> tuple[int, int] | None:
    """Return the (first, last) ns the time series covers: the captures' span, widened to
    the EDE rows and narrowed to --since/--until."""
    first_ede, last_ede = _ts_range(work)
    lows = [v for v in (scan.first_ts_ns, first_ede) if v is not None]
    highs = [v for v in (scan.last_ts_ns, last_ede) if v is not None]
    if not lows or not highs:
        return None
    first, last = min(lows), max(highs)
    from analyzer.filters import to_ns

    if filters is not None and filters.since is not None:
        first = max(first, to_ns(filters.since))
    if filters is not None and filters.until is not None:
        last = min(last, to_ns(filters.until) - 1)
    if last < first:
        return None
    return first, last


def _responses_in_window(response_seconds: dict[int, int], filters: Filters) -> int:
    from analyzer.filters import to_ns

    lo = to_ns(filters.since) / _NS if filters.since else -math.inf
    hi = to_ns(filters.until) / _NS if filters.until else math.inf
    return sum(n for s, n in response_seconds.items() if lo < s + 1 and s < hi)


def _response_buckets(response_seconds: dict[int, int], start_ns: int, step: int,
                      buckets: int) -> list[int]:
    if not response_seconds:
        return [0] * buckets
    # in whole seconds: buckets are whole seconds wide and start on a whole second, and
    # seconds stay far from the int64 limits that nanoseconds can reach
    seconds = np.fromiter(response_seconds.keys(), dtype=np.int64, count=len(response_seconds))
    counts = np.fromiter(response_seconds.values(), dtype=np.int64,
                         count=len(response_seconds))
    bucket = (seconds - start_ns // _NS) // (step // _NS)
    inside = (bucket >= 0) & (bucket < buckets)
    return np.bincount(bucket[inside], weights=counts[inside],
                       minlength=buckets).astype(np.int64).tolist()


def _nested_counts(work: pd.DataFrame, outer: str | list[str], inner: str, *,
                   limit: int | None = None) -> dict[Any, list[tuple[Any, int]]]:
    """Return outer key -> [(inner value, rows)], most rows first then by value, keeping
    the first ``limit`` inner values per key when given."""
    keys = [outer] if isinstance(outer, str) else list(outer)
    counts = work.groupby([*keys, inner], sort=False, observed=True).size()
    counts = counts[counts > 0].reset_index(name="n")
    counts = counts.sort_values([*keys, "n", inner], ascending=[True] * len(keys) + [False, True],
                                key=_sort_key)
    if limit is not None:
        counts = counts.groupby(keys, sort=False, observed=True).head(limit)
    out: dict[Any, list[tuple[Any, int]]] = {}
    for row in counts.itertuples(index=False):
        key = _plain(row[0]) if len(keys) == 1 else tuple(_plain(v) for v in row[:len(keys)])
        out.setdefault(key, []).append((_plain(row[len(keys)]), int(row.n)))
    return out


def _key_tags(work: pd.DataFrame) -> dict[tuple[int, str], list[int]]:
    tagged = work.loc[work["key_tag"].notna(), ["code", "zone", "key_tag"]]
    if tagged.empty:
        return {}
    tagged = tagged.drop_duplicates().sort_values(["code", "zone", "key_tag"])
    out: dict[tuple[int, str], list[int]] = {}
    for r in tagged.itertuples(index=False):
        out.setdefault((int(r.code), str(r.zone)), []).append(int(r.key_tag))
    return out


def _top_per_code(table: pd.DataFrame, column: str, top: int) -> pd.DataFrame:
    """Return the ``top`` rows per code by count, codes ordered by their total count."""
    totals = table.groupby("code")["count"].transform("sum")
    table = table.assign(_total=totals)
    table = table.sort_values(["_total", "code", "count", column],
                              ascending=[False, True, False, True], key=_sort_key)
    return table.groupby("code", sort=False).head(top).drop(columns="_total")


def _sort_key(column: pd.Series) -> pd.Series:
    # categoricals sort by category order; we want value order for stable ties
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.astype(_TEXT)
    return column


def _top_values(column: pd.Series, label: str, top: int) -> list[dict[str, Any]]:
    counts = column.astype(_TEXT).value_counts(dropna=True)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [{label: str(v), "count": int(n)} for v, n in ranked]


def _plain(value: Any) -> Any:
    if isinstance(value, (int, np.integer)):
        return int(value)
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _evidence(evidence: Any) -> list[str]:
    if evidence is None:
        return []
    if isinstance(evidence, str):
        return [evidence] if evidence else []
    if isinstance(evidence, Iterable):
        return [str(e) for e in evidence]
    return [str(evidence)]


def top_items(items: Sequence[dict[str, Any]], code: int, top: int) -> list[dict[str, Any]]:
    """Return the first ``top`` entries of a per-code section (domains, zones) for ``code``."""
    return [i for i in items if i["code"] == code][:top]
