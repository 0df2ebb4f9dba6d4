"""The report dict -> text (rich), JSON, CSV, Markdown or HTML; and the row frame -> files.

One entry point per kind of output: ``render(report, fmt, out)`` for a report built by
``analyzer.reports.build_report``, and ``write_frame(df, fmt, out)`` for ``extract``.
Everything taken from a capture passes through ``safe_text`` before it reaches a terminal
or a document, so control characters, ANSI escapes and bidi overrides show up as visible
escapes instead of acting on the reader's screen.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

REPORT_FORMATS: tuple[str, ...] = ("text", "json", "csv", "markdown", "html")
FRAME_FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")

# C0 and C1 controls, DEL, and the invisible or direction-changing code points that can
# make text display differently from what it is: Arabic letter mark, zero-width space..RLM,
# line/paragraph separators, bidi embeddings/overrides (U+202A-202E), isolates
# (U+2066-2069) and the BOM.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: Any, *, markup: bool = False) -> str:
    """Return ``value`` as text that cannot act on a terminal or document.

    Control characters (C0, DEL, C1, so also ANSI escape sequences) and bidi/invisible
    format characters become visible escapes like ``\\x1b`` or ``\\u202e``. With
    ``markup=True`` the result is also escaped for rich markup, so ``[bold]`` stays text.
    """
    text = "" if value is None else str(value)
    text = _UNSAFE.sub(_visible, text)
    if markup:
        import rich.markup

        text = rich.markup.escape(text)
    return text


def render(report: dict[str, Any], fmt: str, out: IO[str], *, width: int | None = None,
           color: bool = False) -> None:
    """Write ``report`` to ``out`` in ``fmt`` (one of ``REPORT_FORMATS``).

    :param width: terminal columns for ``text`` (80 when None and ``out`` is not a terminal).
    :param color: use colour and bold in ``text``.
    """
    writer = _report_writers().get(fmt)
    if writer is None:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {REPORT_FORMATS}")
    if fmt == "text":
        writer(report, out, width=width, color=color)
    else:
        writer(report, out)


def render_diff(diff: dict[str, Any], fmt: str, out: IO[str], *, width: int | None = None,
                color: bool = False) -> None:
    """Write a diff built by ``analyzer.diffs.diff`` to ``out`` in ``fmt`` (one of
    ``REPORT_FORMATS``)."""
    if fmt == "text":
        from analyzer.render import text

        text.write_diff(diff, out, width=width, color=color)
    elif fmt == "json":
        from analyzer.render import jsonout

        jsonout.write_report(diff, out)
    elif fmt == "csv":
        from analyzer.render import csvout

        csvout.write_diff(diff, out)
    elif fmt == "markdown":
        from analyzer.render import markdown

        markdown.write_diff(diff, out)
    elif fmt == "html":
        from analyzer.render import html

        html.write_diff(diff, out)
    else:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {REPORT_FORMATS}")


def write_frame(df: pd.DataFrame, fmt: str, out: IO[Any]) -> None:
    """Write the row frame to ``out`` as ``csv`` or ``jsonl`` (text stream) or ``parquet``
    (binary stream)."""
    if fmt == "csv":
        from analyzer.render import csvout

        csvout.write_frame(df, out)
    elif fmt == "jsonl":
        from analyzer.render import jsonout

        jsonout.write_frame(df, out)
    elif fmt == "parquet":
        # The dataset's fixed Arrow schema (dataset.arrow_schema), capture column kept: files
        # from different captures then read as one table in pandas, pyarrow, DuckDB and Dask.
        import pyarrow.parquet as pq

        from analyzer import dataset

        pq.write_table(dataset.to_table(df, partitions=()), out)
    else:
        raise ValueError(f"unknown frame format {fmt!r}; choose one of {FRAME_FORMATS}")


def _report_writers() -> dict[str, Callable[..., None]]:
    # imported on demand so that `--format json` never loads rich or the HTML code
    def text(report: dict[str, Any], out: IO[str], **kw: Any) -> None:
        from analyzer.render import text as module

        module.write_report(report, out, **kw)

    def json(report: dict[str, Any], out: IO[str]) -> None:
        from analyzer.render import jsonout

        jsonout.write_report(report, out)

    def csv(report: dict[str, Any], out: IO[str]) -> None:
        from analyzer.render import csvout

        csvout.write_report(report, out)

    def markdown(report: dict[str, Any], out: IO[str]) -> None:
        from analyzer.render import markdown as module

        module.write_report(report, out)

    def html(report: dict[str, Any], out: IO[str]) -> None:
        from analyzer.render import html as module

        module.write_report(report, out)

    return {"text": text, "json": json, "csv": csv, "markdown": markdown, "html": html}


# --- formatting shared by the text, Markdown and HTML renderers ----------------------------

def fmt_count(value: Any) -> str:
    """Return an int with thousands separators, or an empty string for None."""
    return "" if value is None else f"{int(value):,}"


def fmt_share(value: float | None) -> str:
    """Return a 0..1 share as a percentage with one decimal (``<0.1%`` for tiny shares)."""
    if value is None:
        return ""
    if 0 < value < 0.001:
        return "<0.1%"
    return f"{value * 100:.1f}%"


def fmt_time(value: str | None, *, date: bool = True) -> str:
    """Return an ISO timestamp as ``YYYY-MM-DD HH:MM:SS`` (or ``HH:MM:SS`` without date)."""
    if not value:
        return ""
    day, _, rest = value.partition("T")
    clock = rest.rstrip("Z").split(".")[0]
    return f"{day} {clock}" if date else clock


def same_day(report: dict[str, Any]) -> bool:
    """Return True when the report's timestamps all fall on one UTC day."""
    summary = report.get("summary", {})
    first, last = summary.get("first_seen"), summary.get("last_seen")
    return bool(first and last and first[:10] == last[:10])


def fmt_duration(seconds: float | None) -> str:
    """Return a duration as ``45s``, ``12min``, ``3.5h`` or ``2.0 days``."""
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.1f}s" if seconds < 10 else f"{round(seconds)}s"
    if seconds < 7200:
        return f"{round(seconds / 60)}min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f} days"


def fmt_counts(pairs: dict[str, int] | list[dict[str, Any]], key: str = "code") -> str:
    """Return ``a 3, b 1`` for a mapping or a list of {key, count} entries."""
    if isinstance(pairs, dict):
        return ", ".join(f"{k} {fmt_count(v)}" for k, v in pairs.items())
    return ", ".join(f"{p[key]} {fmt_count(p['count'])}" for p in pairs)


def plural(count: int, noun: str) -> str:
    """Return ``1 packet`` or ``3 packets`` (count with thousands separators)."""
    return f"{fmt_count(count)} {noun}{'' if count == 1 else 's'}"


def skipped_line(report: dict[str, Any]) -> str:
    """Return ``skipped N packets: reason n, ...`` (empty when nothing was skipped)."""
    from analyzer import reports

    skip = reports.skipped(report.get("accounting", {}))
    if not skip:
        return ""
    return f"skipped {plural(sum(skip.values()), 'packet')}: {fmt_counts(skip)}"


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(counts: list[int]) -> str:
    """Return one character per count: ``·`` for zero, ``▁``..``█`` scaled to the maximum."""
    peak = max(counts, default=0)
    if peak <= 0:
        return "·" * len(counts)
    return "".join("·" if n <= 0 else SPARK[min(len(SPARK) - 1, math.ceil(n / peak * 8) - 1)]
                   for n in counts)


def tunnels_line(report: dict[str, Any]) -> str:
    """Return ``opened vxlan 1,000, gre 2`` for the tunnels opened (empty when none)."""
    opened = report.get("tunnels") or {}
    return f"opened {fmt_counts(opened)}" if opened else ""


def dnstap_line(report: dict[str, Any]) -> str:
    """Return what dnstap logs said beyond packets: who logged, duplicates, upstream EDEs
    (empty when no dnstap file was read)."""
    log = report.get("dnstap")
    if not log:
        return ""
    servers = ", ".join(
        " ".join(p for p in (s["version"] or "no version",
                             f"({s['identity']})" if s["identity"] else "") if p)
        for s in log["servers"][:3]) or "no server named"
    parts = [f"{log['messages']:,} messages from {servers}"]
    if log["duplicates_folded"]:
        parts.append(f"{log['duplicates_folded']:,} exact duplicates folded")
    if log["upstream_responses"]:
        codes = report.get("upstream_codes") or {}
        listed = ", ".join(f"code {c} {n:,}" for c, n in codes.items())
        parts.append(f"upstream: {log['upstream_responses']:,} responses received, "
                     f"{log['upstream_ede_options']:,} EDE options"
                     + (f" ({listed})" if listed else ""))
    absent = log["transport"].get("unknown", 0)
    if absent:
        parts.append(f"{absent:,} responses without a logged transport")
    return "; ".join(parts)


def unopened_line(report: dict[str, Any], limit: int = 3) -> str:
    """Return what the packets that could not be opened are, in words, most first:
    ``12,000 packets are GRE protocol 0x1234 and 3 are IP protocol 50`` (empty when none,
    and when they are only a little ARP or the like beside the DNS traffic)."""
    items = list((report.get("unopened") or {}).items())
    counts = report.get("accounting", {})
    opaque = counts.get("unsupported-tunnel", 0) + counts.get("unsupported-linktype", 0)
    if not items or not opaque and sum(n for _, n in items) * 10 < sum(counts.values()):
        return ""
    parts = []
    for i, (what, n) in enumerate(items[:limit]):
        count = plural(n, "packet") if i == 0 else fmt_count(n)
        parts.append(f"{count} {'is' if n == 1 else 'are'} {what}")
    if len(items) > limit:
        rest = sum(n for _, n in items[limit:])
        parts.append(f"{fmt_count(rest)} {'is' if rest == 1 else 'are'} something else")
    return (", ".join(parts[:-1]) + " and " + parts[-1]) if len(parts) > 1 else parts[0]


def no_responses_note(report: dict[str, Any]) -> str:
    """Say why a capture gave no DNS responses: what its packets are, when that is known."""
    from analyzer import reports

    skipped = reports.skipped(report.get("accounting", {}))
    skipped_packets = sum(skipped.values())
    log = report.get("dnstap")
    if log and log["messages"]:
        return _no_logged_responses(log, skipped, skipped_packets)
    unopened = sum((report.get("unopened") or {}).values())
    if unopened and unopened * 2 >= skipped_packets:
        return (f"No DNS responses found. {unopened_line(report)}, which ede-pcap cannot "
                "open (see docs/tunnels.md).")
    return "No DNS responses found. Check the capture filter and --port (DNS on another port?)."


def _no_logged_responses(log: dict[str, Any], skipped: dict[str, int], count: int) -> str:
    """Why a dnstap log gave no DNS responses: it logs only queries, or its frames could
    not be read (a log has no ports to get wrong)."""
    by_type = log.get("by_type") or {}
    if by_type and not any(t.endswith("_RESPONSE") for t in by_type):
        return ("No DNS responses found: the dnstap log holds only "
                f"{fmt_counts(by_type)}. Turn on the server's response logging (Unbound: "
                "dnstap-log-client-response-messages: yes; BIND: dnstap { client response; };).")
    if count:
        return (f"No DNS responses found: {fmt_count(count)} of {fmt_count(log['messages'])} "
                f"dnstap frames could not be read ({fmt_counts(skipped)}); see docs/dnstap.md "
                "for what each reason means.")
    return "No DNS responses found in the dnstap log."


def truncated_note(capture: dict[str, Any]) -> str:
    """Return ``ends mid-record at byte N: ...`` for a capture cut off inside a record, or
    an empty string."""
    at = capture.get("truncated_at")
    if at is None:
        return ""
    if capture.get("compression"):
        # the offset counts decompressed bytes: say so, or it points nowhere in the file
        return (f"cut off: the {capture['compression']} data ends early, at byte "
                f"{fmt_count(at)} of the decompressed capture; the records before it are "
                "reported")
    return f"ends mid-record at byte {fmt_count(at)}: the records before it are reported"


REPORT_STATUS = {"reported": "reported", "report-without-ede": "report without EDE",
                 "ede-not-reported": "EDE not reported"}
REPORT_NOTE = ("reported: reports and EDEs agree; report without EDE: a resolver reported an "
               "error no captured response carried; EDE not reported: a response offered a "
               "report channel, but no report went out")


UPSTREAM_NOTE = ("Asked: EDEs whose resolver queried upstream for the name or a parent in "
                 "the 10 s before; Timeouts: those queries never answered")


def forwarder_line(f: dict[str, Any]) -> tuple[str, str, str]:
    """Return (forwarder, upstream server, what happened) for a ``forwarders`` entry, e.g.
    ``dropped 2 EDEs (6 upstream, none to the client)``; the first two are capture text."""
    up = ", ".join(map(str, f["upstream_ede"])) or "none"
    down = ", ".join(map(str, f["client_ede"])) or "none"
    return (f["resolver"], f["upstream_server"],
            f"{f['verdict']} {plural(f['count'], 'EDE')} ({up} upstream, {down} to the "
            "client)")


def code_label(entry: dict[str, Any]) -> str:
    """Return ``7 Signature Expired`` for a codes, incidents or series entry."""
    return f"{entry['code']} {entry['name']}"


def zones_for(report: dict[str, Any], code: int, limit: int = 3) -> list[dict[str, Any]]:
    """Return the first ``limit`` affected zones of ``code``."""
    return [z for z in report.get("zones", []) if z["code"] == code][:limit]


# What each zone-attribution evidence label means, in a few words (docs/report-schema.md).
EVIDENCE_NOTES = {
    "text": "named in EXTRA-TEXT",
    "signer": "RRSIG signer",
    "soa": "SOA owner",
    "referral": "referral, DS or DNSKEY owner",
    "boundary": "failure boundary: validating names lie outside it",
    "qname": "",
}
EVIDENCE_LEGEND = ("From: text = the EXTRA-TEXT names the zone; signer, soa, referral = RRSIG "
                   "signers, SOA owners, referrals/DS/DNSKEY in the capture place the zone "
                   "cut; boundary = the failing names lie under it and the names validating "
                   "since the first failure do not; qname = the query name's registrable "
                   "zone (no evidence)")


def software_label(resolver: dict[str, Any]) -> str:
    """Return a resolver's software as the report knows it: the name, the candidates its
    behaviour leaves with how sure that is, or ``unknown``."""
    if resolver.get("software"):
        return str(resolver["software"])
    candidates = resolver.get("software_candidates") or []
    if candidates:
        return " or ".join(candidates) + f"? ({resolver.get('software_confidence')})"
    return "unknown"


def instance_note(resolver: dict[str, Any]) -> str:
    """Return "same instance as X?" for an address likely paired with another, else ""."""
    pairs = resolver.get("same_instance") or []
    logged = [p["resolver"] for p in pairs if p.get("basis") == "dnstap"]
    inferred = [p["resolver"] for p in pairs if p.get("basis") != "dnstap"]
    notes = []
    if logged:
        notes.append("the same server as " + ", ".join(logged) + " (its dnstap identity)")
    if inferred:
        notes.append("likely the same instance as " + ", ".join(inferred))
    return "; ".join(notes)


def zone_evidence(zone: dict[str, Any]) -> str:
    """Return a zone entry's evidence label (reports before issue 14 had only ``source``)."""
    return str(zone.get("evidence") or ("text" if zone.get("source") == "extra-text"
                                        else "qname"))


def zone_note(zone: dict[str, Any]) -> str:
    """Return `` (why)`` after a zone's name, or "" when it is only the query name's zone."""
    note = EVIDENCE_NOTES.get(zone_evidence(zone), "")
    return f" ({note})" if note else ""


def domains_for(report: dict[str, Any], code: int, limit: int = 3) -> list[dict[str, Any]]:
    """Return the first ``limit`` affected query names of ``code``."""
    return [d for d in report.get("domains", []) if d["code"] == code][:limit]


def resolvers_for(report: dict[str, Any], code: int) -> list[str]:
    """Return the resolvers (of those listed) that sent ``code``, most EDEs first."""
    hits = [(c["count"], r["resolver"]) for r in report.get("resolvers", [])
            for c in r["codes"] if c["code"] == code]
    return [r for _, r in sorted(hits, key=lambda h: (-h[0], h[1]))]


# --- diffs -----------------------------------------------------------------------------------

_VERDICT = (("disappeared", "gone"), ("appeared", "new"), ("increased", "up"),
            ("decreased", "down"), ("unchanged", "unchanged"))


def diff_verdict(diff: dict[str, Any]) -> str:
    """Return the codes' changes in one line: ``gone: 7 Signature Expired; new: 15 Blocked;
    unchanged: 3 Stale Answer`` (codes below the EDE threshold count as unchanged)."""
    parts = []
    for change, word in _VERDICT:
        names = [code_label(c) for c in diff["codes"]
                 if (c["change"] if c["notable"] else "unchanged") == change]
        if names:
            parts.append(f"{word}: {', '.join(names)}")
    return "; ".join(parts) if parts else "no EDE on either side"


def diff_side(side: dict[str, Any]) -> str:
    """Return one side's totals: ``432 DNS responses, 111 with EDE (25.7%), 112 EDE
    options``."""
    line = f"{plural(side['dns_responses'], 'DNS response')}, " \
           f"{fmt_count(side['responses_with_ede'])} with EDE"
    if side["ede_share"] is not None:
        line += f" ({fmt_share(side['ede_share'])})"
    return line + f", {plural(side['ede_options'], 'EDE option')}"


def diff_span(side: dict[str, Any]) -> str:
    """Return a side's time span as ``2024-03-14 08:00:01 to 08:09:58 UTC``."""
    first, last = side["first_seen"], side["last_seen"]
    if not first or not last:
        return ""
    return f"{fmt_time(first)} to {fmt_time(last, date=first[:10] != last[:10])} UTC"


def diff_rule(diff: dict[str, Any]) -> str:
    """Return what counts as a change, in words."""
    o = diff["options"]
    return (f"Changed: a rate per DNS response at least {o['factor']:g}x higher or lower, "
            f"with counts at least {plural(o['min_change'], 'EDE')} apart")


def diff_change(entry: dict[str, Any]) -> str:
    """Return ``disappeared``, ``appeared``, ``up 3.2x``, ``down 4.6x`` or ``unchanged``."""
    change = str(entry["change"])
    if change == "increased" and entry["ratio"]:
        return f"up {entry['ratio']:.1f}x"
    if change == "decreased" and entry["ratio"]:
        return f"down {1 / entry['ratio']:.1f}x"
    return change


def minor_changes(diff: dict[str, Any]) -> list[tuple[str, str]]:
    """Return the zone and resolver entries that changed but stayed under the EDE threshold,
    as (what, how): ``("22 shop.example.com", "disappeared (1 to 0)")``; ``what`` holds
    capture text, for the renderer to escape."""
    out = []
    for key in ("zones", "resolvers"):
        for e in diff[key]:
            if e["change"] != "unchanged" and not e["notable"]:
                what = f"{e['code']} {e['zone']}" if key == "zones" else e["resolver"]
                out.append((what, f"{diff_change(e)} ({e['before']} to {e['after']})"))
    return out
