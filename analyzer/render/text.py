"""The report for a terminal: rich tables that fit 80 columns, most actionable first.

Every value from a capture goes through ``safe_text(..., markup=True)``: control
characters, escapes and bidi overrides become visible, and rich markup stays literal.
The console runs with emoji codes and highlighting off, so ``:fire:`` in an EXTRA-TEXT
prints as typed.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from typing import IO, Any

import rich.box
import rich.console
import rich.padding
import rich.table
import rich.text

from analyzer.render import (
    EVIDENCE_LEGEND,
    code_label,
    dnstap_line,
    domains_for,
    fmt_count,
    fmt_counts,
    fmt_duration,
    fmt_share,
    fmt_time,
    instance_note,
    no_responses_note,
    plural,
    resolvers_for,
    safe_text,
    same_day,
    skipped_line,
    software_label,
    sparkline,
    truncated_note,
    tunnels_line,
    unopened_line,
    zone_evidence,
    zone_note,
    zones_for,
)

_LABEL = 26  # width of the code label in the timeline
_NS = 1_000_000_000


def write_report(report: dict[str, Any], out: IO[str], *, width: int | None = None,
                 color: bool = False) -> None:
    """Write ``report`` to ``out`` as terminal text (80 columns unless ``width``)."""
    with _console(out, width, color) as console:
        ctx = _Context(report)
        for section in (_summary, _codes, _incidents, _hints, _actions, _zones, _domains,
                        _resolvers, _error_reports, _upstream, _timeline, _captures):
            section(console, report, ctx)


def write_codes(records: list[dict[str, Any]], out: IO[str], *, detail: bool = False,
                width: int | None = None, color: bool = False) -> None:
    """Write catalogue records (``codes.to_records()``) as a table, or with ``detail`` one
    block per code with its meaning and next step."""
    with _console(out, width, color) as console:
        if detail:
            for r in records:
                console.print(f"[bold]{r['code']} {_s(r['name'])}[/] ({_s(r['category'])}, "
                              f"{_s(r['status'])}; {_s(r['document'])})")
                console.print(_indent(f"Meaning: {_s(r['meaning'])}"))
                console.print(_indent(f"Next step: {_s(r['next_step'])}"))
            return
        table = _table("Extended DNS Error codes")
        table.add_column("Code", justify="right", no_wrap=True)
        table.add_column("Name", overflow="fold")
        table.add_column("Category", no_wrap=True)
        for r in records:
            table.add_row(str(r["code"]), _s(r["name"]), _s(r["category"]))
        console.print(table)
        from analyzer import codes

        console.print(f"{max(codes.CATALOGUE) + 1}-{codes.PRIVATE_USE_START - 1} are "
                      f"unassigned, {codes.PRIVATE_USE_START}-{codes.MAX_CODE} private use. "
                      "`ede-pcap codes CODE` shows the meaning and next step.")


@contextlib.contextmanager
def _console(out: IO[str], width: int | None, color: bool) -> Iterator[rich.console.Console]:
    buffer = io.StringIO()
    console = rich.console.Console(
        file=buffer, width=width or 80, color_system="auto" if color else None,
        force_terminal=color, no_color=not color, highlight=False, emoji=False,
        markup=True, soft_wrap=False, legacy_windows=False,
    )
    yield console
    text = buffer.getvalue()
    if not color:  # rich pads table rows to the full width; drop the trailing blanks
        text = "\n".join(line.rstrip() for line in text.split("\n"))
    out.write(text)


class _Context:
    """Formatting choices derived once from the whole report."""

    def __init__(self, report: dict[str, Any]):
        self.dated = not same_day(report)

    def time(self, value: str | None) -> str:
        return fmt_time(value, date=self.dated)


def _s(value: Any) -> str:
    return safe_text(value, markup=True)


def _table(title: str, caption: str | None = None) -> rich.table.Table:
    return rich.table.Table(
        title=title, title_justify="left", title_style="bold", caption=caption,
        caption_justify="left", caption_style="dim", box=rich.box.SIMPLE_HEAD,
        show_edge=False, pad_edge=False, padding=(0, 1), expand=False,
    )


def _indent(markup: str) -> rich.padding.Padding:
    return rich.padding.Padding(rich.text.Text.from_markup(markup, overflow="fold", emoji=False),
                                (0, 0, 0, 3))


def _heading(console: rich.console.Console, title: str) -> None:
    console.print()
    console.print(f"[bold]{title}[/]")


# --- sections ------------------------------------------------------------------------------

def _summary(console: rich.console.Console, report: dict[str, Any], ctx: _Context) -> None:
    s = report["summary"]
    span = ""
    if s["first_seen"]:
        span = (f"{fmt_time(s['first_seen'])} to {fmt_time(s['last_seen'], date=ctx.dated)} "
                f"UTC ({fmt_duration(s['span_seconds'])})")
    console.print(f"[bold]Extended DNS Errors[/]  {span}")
    grid = rich.table.Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    captures = report["captures"]
    if len(captures) == 1:
        c = captures[0]
        what = _s(c["path"])
        if c["format"]:
            what += f" ({c['format']}{', ' + c['compression'] if c['compression'] else ''})"
        if truncated_note(c):
            what += f"; {truncated_note(c)}"
    else:
        what = f"{len(captures)} files"
    if s["captures_failed"]:
        what += f", [red]{s['captures_failed']} could not be read[/] (see below)"
    grid.add_row("Captures", what)
    grid.add_row("Packets", _s(_accounting(report)))
    if tunnels_line(report):
        grid.add_row("Tunnels", _s(tunnels_line(report)))
    if dnstap_line(report):
        grid.add_row("dnstap", _s(dnstap_line(report)))
    if unopened_line(report):
        grid.add_row("Not opened", _s(unopened_line(report)))
    responses = plural(s["dns_responses"], "DNS response")
    if s["dns_responses"]:
        responses += (f", {fmt_count(s['responses_with_ede'])} with EDE "
                      f"({fmt_share(s['ede_share'])})")
    else:
        responses += f", {fmt_count(s['responses_with_ede'])} with EDE"
    responses += f", {plural(s['ede_options'], 'EDE option')}"
    grid.add_row("Responses", responses)
    if s["ede_options"]:
        grid.add_row("EDE seen", (
            f"{fmt_time(s['ede_first_seen'], date=ctx.dated)} to "
            f"{fmt_time(s['ede_last_seen'], date=ctx.dated)}; {plural(s['codes'], 'code')}, "
            f"{plural(s['domains'], 'domain')}, {plural(s['zones'], 'zone')}, "
            f"{plural(s['resolvers'], 'resolver')}"))
    if report.get("filters"):
        grid.add_row("Filters", _s(_filters(report["filters"])))
    if report["problems"]:
        grid.add_row("Problems", _s(fmt_counts(report["problems"])))
    console.print(grid)
    if not s["ede_options"]:
        console.print()
        if s["dns_responses"] and report.get("filters"):
            console.print("No Extended DNS Errors matched the filters.")
        elif s["dns_responses"]:
            console.print("No Extended DNS Errors: none of the DNS responses carried EDNS0 "
                          "option 15 (RFC 8914).")
        else:
            console.print(_s(no_responses_note(report)))


def _accounting(report: dict[str, Any]) -> str:
    s = report["summary"]
    parts = fmt_counts(report["accounting"])
    line = f"{fmt_count(s['packets'])}" + (f": {parts}" if parts else "")
    skipped = skipped_line(report)
    return line + (f" ({skipped})" if skipped else "")


def _filters(filters: dict[str, Any]) -> str:
    parts = []
    for key in ("codes", "domains", "resolvers"):
        if filters.get(key):
            parts.append(f"{key} " + ", ".join(map(str, filters[key])))
    for key in ("since", "until"):
        if filters.get(key):
            parts.append(f"{key} {filters[key]}")
    return "; ".join(parts)


def _codes(console: rich.console.Console, report: dict[str, Any], ctx: _Context) -> None:
    if not report["codes"]:
        return
    console.print()
    table = _table("Codes", "EDEs: options; Resp.: responses carrying the code; "
                            "Share: of all DNS responses")
    table.add_column("Code", justify="right", no_wrap=True)
    table.add_column("Name", overflow="fold", min_width=12)
    table.add_column("EDEs", justify="right", no_wrap=True)
    table.add_column("Resp.", justify="right", no_wrap=True)
    table.add_column("Share", justify="right", no_wrap=True)
    table.add_column("Domains", justify="right", no_wrap=True)
    table.add_column("RCODE", overflow="fold")
    for c in report["codes"]:
        rcodes = ", ".join(c["rcodes"]) if len(c["rcodes"]) > 1 else next(iter(c["rcodes"]), "")
        table.add_row(str(c["code"]), _s(c["name"]), fmt_count(c["count"]),
                      fmt_count(c["responses"]), fmt_share(c["share"]),
                      fmt_count(c["domains"]), _s(rcodes))
    console.print(table)


def _incidents(console: rich.console.Console, report: dict[str, Any], ctx: _Context) -> None:
    found = report["incidents"]
    if not found:
        return
    console.print()
    interval = report["timeseries"]["interval"]
    table = _table(f"Incidents ({len(found)}): a code well above its baseline",
                   f"{interval} buckets. Peak, Base: EDEs per minute at the peak and at the "
                   "code's baseline. Detector: docs/report-schema.md")
    table.add_column("Code", justify="right", no_wrap=True)
    table.add_column("Start", no_wrap=True)
    table.add_column("End", no_wrap=True)
    table.add_column("EDEs", justify="right", no_wrap=True)
    table.add_column("Peak", justify="right", no_wrap=True)
    table.add_column("Base", justify="right", no_wrap=True)
    table.add_column("Top zone / name", overflow="fold", min_width=20)
    for i in found[:20]:
        where = [z["zone"] for z in i["top_zones"][:1]] + [d["qname"] for d in
                                                           i["top_domains"][:1]]
        table.add_row(str(i["code"]), ctx.time(i["start"]), ctx.time(i["end"]),
                      fmt_count(i["count"]), f"{i['peak_per_minute']:g}",
                      f"{i['baseline_per_minute']:g}",
                      "\n".join(_s(w) for w in dict.fromkeys(where)))
    console.print(table)
    if len(found) > 20:
        console.print(f"[dim]... and {len(found) - 20} more incidents (--format json)[/]")


def _hints(console: rich.console.Console, report: dict[str, Any], ctx: _Context) -> None:
    found = report.get("hints") or []
    if not found:
        return
    _heading(console, "Hints: what the EDEs say between the lines")
    grid = rich.table.Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for n, h in enumerate(found, 1):
        # plain Text, not markup: nothing in a capture's text is interpreted
        lines = [safe_text(h["message"])]
        lines += [f"EXTRA-TEXT: \"{safe_text(t)}\" ({plural(h['count'], 'EDE')}, "
                  f"{ctx.time(h['first_seen'])} to {ctx.time(h['last_seen'])})"
                  for t in h["evidence"][:1]]
        grid.add_row(f"{n}.", rich.text.Text("\n".join(lines), overflow="fold"))
    console.print(grid)


def _actions(console: rich.console.Console, report: dict[str, Any], ctx: _Context) -> None:
    if not report["codes"]:
        return
    _heading(console, "What to do")
    top = report.get("options", {}).get("top", 10)
    for n, c in enumerate(report["codes"][:top], 1):
        console.print(f"{n}. [bold]{_s(code_label(c))}[/]: {plural(c['count'], 'EDE')}, "
                      f"{ctx.time(c['first_seen'])} to {ctx.time(c['last_seen'])}")
        facts = []
        zones = zones_for(report, c["code"])
        if zones:
            named = [z["zone"] + zone_note(z) for z in zones]
            facts.append("Zones: " + ", ".join(named))
        domains = domains_for(report, c["code"])
        if domains and not (len(domains) == 1 and zones and domains[0]["qname"] ==
                            zones[0]["zone"]):
            facts.append("Names: " + ", ".join(d["qname"] for d in domains))
        servers = resolvers_for(report, c["code"])
        if servers:
            facts.append("Resolvers: " + ", ".join(servers[:3]))
        if c["extra_texts"]:
            facts.append(f"EXTRA-TEXT: \"{c['extra_texts'][0]['text']}\"")
        facts += c.get("traffic_advice", [])
        for fact in facts:
            console.print(_indent(_s(fact)))
        console.print(_indent(f"[italic]{_s(c['next_step'])}[/]"))
    rest = report["codes"][top:]
    if rest:
        console.print(f"... and {plural(len(rest), 'more code')}: "
                      + ", ".join(str(c["code"]) for c in rest)
                      + ". `ede-pcap codes CODE` gives the next step; --top shows more.")


def _zones(console: rich.console.Console, report: dict[str, Any], ctx: _Context) -> None:
    if not report["zones"]:
        return
    console.print()
    table = _table("Affected zones",
                   EVIDENCE_LEGEND)
    table.add_column("Code", justify="right", no_wrap=True)
    table.add_column("Zone", overflow="fold", min_width=16)
    table.add_column("From", no_wrap=True)
    table.add_column("EDEs", justify="right", no_wrap=True)
    table.add_column("Names", justify="right", no_wrap=True)
    table.add_column("First seen", no_wrap=True)
    table.add_column("Last seen", no_wrap=True)
    for z in report["zones"]:
        zone = z["zone"] + (f" (key {', '.join(map(str, z['key_tags']))})"
                            if z["key_tags"] else "")
        table.add_row(str(z["code"]), _s(zone), zone_evidence(z),
                      fmt_count(z["count"]), fmt_count(z["domains"]),
                      ctx.time(z["first_seen"]), ctx.time(z["last_seen"]))
    console.print(table)


def _domains(console: rich.console.Console, report: dict[str, Any], ctx: _Context) -> None:
    if not report["domains"]:
        return
    console.print()
    table = _table("Affected domains")
    table.add_column("Code", justify="right", no_wrap=True)
    table.add_column("Query name", overflow="fold", min_width=20)
    table.add_column("EDEs", justify="right", no_wrap=True)
    table.add_column("Resp.", justify="right", no_wrap=True)
    table.add_column("First seen", no_wrap=True)
    table.add_column("Last seen", no_wrap=True)
    for d in report["domains"]:
        table.add_row(str(d["code"]), _s(d["qname"]), fmt_count(d["count"]),
                      fmt_count(d["responses"]), ctx.time(d["first_seen"]),
                      ctx.time(d["last_seen"]))
    console.print(table)


def _resolvers(console: rich.console.Console, report: dict[str, Any], ctx: _Context) -> None:
    if not report["resolvers"]:
        return
    console.print()
    table = _table("Resolvers (servers that sent EDEs)")
    table.add_column("Resolver", overflow="fold", min_width=15)
    table.add_column("EDEs", justify="right", no_wrap=True)
    table.add_column("Clients", justify="right", no_wrap=True)
    table.add_column("Codes (EDEs)", overflow="fold")
    table.add_column("Software", overflow="fold")
    for r in report["resolvers"]:
        codes = ", ".join(f"{c['code']} ({fmt_count(c['count'])})" for c in r["codes"][:6])
        if len(r["codes"]) > 6:
            codes += f", +{len(r['codes']) - 6} more"
        table.add_row(_s(r["resolver"]), fmt_count(r["count"]), fmt_count(r["clients"]),
                      _s(codes), _s(software_label(r)))
    console.print(table)
    evidence = [(r["resolver"], r["software"], r["evidence"][0]) for r in report["resolvers"]
                if r["software"] and r["evidence"]]
    for resolver, software, text in evidence[:3]:
        console.print(_indent(f"[dim]{_s(resolver)} looks like {_s(software)}: "
                              f"\"{_s(text)}\"[/]"))
    for r in report["resolvers"]:
        if not r["software"] and r.get("software_basis") == "behaviour" and r["evidence"]:
            console.print(_indent(f"[dim]{_s(r['resolver'])}: {_s(r['evidence'][0])}[/]"))
        if instance_note(r):
            console.print(_indent(f"[dim]{_s(r['resolver'])}: {_s(instance_note(r))}[/]"))


def _error_reports(console: rich.console.Console, report: dict[str, Any], ctx: _Context
                   ) -> None:
    section = report.get("error_reports")
    if not section:
        return
    from analyzer.render import REPORT_NOTE, REPORT_STATUS

    console.print()
    if section["reports"]:
        n = section["report_queries"]
        table = _table(f"DNS error reports (RFC 9567): {fmt_count(n)} report "
                       f"{'query' if n == 1 else 'queries'}")
        table.add_column("Reporter", overflow="fold", min_width=11)
        table.add_column("Reported name", overflow="fold", min_width=14)
        table.add_column("Type", no_wrap=True)
        table.add_column("Code", justify="right", no_wrap=True)
        table.add_column("Agent", overflow="fold", min_width=10)
        table.add_column("Count", justify="right", no_wrap=True)
        for r in section["reports"]:
            table.add_row(_s(r["reporter"]), _s(r["qname"]), _s(r["qtype"]), str(r["code"]),
                          _s(r["agent"]), fmt_count(r["count"]))
        console.print(table)
    else:
        console.print("[bold]DNS error reports (RFC 9567)[/]: none sent")
    if section["channels"]:
        console.print(rich.text.Text("Report channels offered: " + ", ".join(
            f"{safe_text(c['agent'])} ({plural(c['count'], 'EDE')})"
            for c in section["channels"]), overflow="fold"))
    if section["reconciliation"]:
        console.print()
        table = _table("Reports against the EDEs on the wire", REPORT_NOTE)
        table.add_column("Name", overflow="fold", min_width=16)
        table.add_column("Code", justify="right", no_wrap=True)
        table.add_column("Reports", justify="right", no_wrap=True)
        table.add_column("EDEs", justify="right", no_wrap=True)
        table.add_column("Channel", justify="right", no_wrap=True)
        table.add_column("Status", no_wrap=True)
        for r in section["reconciliation"]:
            table.add_row(_s(r["qname"]), str(r["code"]), fmt_count(r["reports"]),
                          fmt_count(r["edes"]), fmt_count(r["edes_with_channel"]),
                          REPORT_STATUS[r["status"]])
        console.print(table)


def _upstream(console: rich.console.Console, report: dict[str, Any], ctx: _Context) -> None:
    section = report.get("upstream")
    if section is None:
        return
    from analyzer.render import UPSTREAM_NOTE, forwarder_line

    console.print()
    if section["codes"]:
        table = _table("Upstream: what the resolvers' own queries got", UPSTREAM_NOTE)
        table.add_column("Code", justify="right", no_wrap=True)
        table.add_column("Zone", overflow="fold", min_width=14)
        table.add_column("EDEs", justify="right", no_wrap=True)
        table.add_column("Asked", justify="right", no_wrap=True)
        table.add_column("Queries", justify="right", no_wrap=True)
        table.add_column("Timeouts", justify="right", no_wrap=True)
        table.add_column("Upstream said", overflow="fold")
        for e in section["codes"]:
            got = [fmt_counts(e["rcodes"])] if e["rcodes"] else []
            got += [f"EDE {fmt_counts(e['upstream_edes'])}"] if e["upstream_edes"] else []
            got += [f"from {', '.join(e['servers'][:2])}"] if e["servers"] else []
            table.add_row(str(e["code"]), _s(e["zone"]), fmt_count(e["edes"]),
                          fmt_count(e["edes_with_upstream"]), fmt_count(e["upstream_queries"]),
                          fmt_count(e["timeouts"]), _s("; ".join(got)))
        console.print(table)
    else:
        console.print("[bold]Upstream[/]: no EDE to follow upstream")
    if section["forwarders"]:
        console.print()
        console.print("[bold]Forwarders: what they did with EDEs from upstream[/]")
        for f in section["forwarders"]:
            forwarder, server, what = forwarder_line(f)
            # plain Text: a name from the capture is never read as markup or emoji code
            console.print(rich.padding.Padding(rich.text.Text(
                f"{safe_text(forwarder)} from {safe_text(server)}: {what}, e.g. "
                + ", ".join(safe_text(q) for q in f["examples"]), overflow="fold"),
                (0, 0, 0, 3)))
    else:
        console.print("[dim]No forwarder in the captures received an EDE from upstream.[/]")


def _timeline(console: rich.console.Console, report: dict[str, Any], ctx: _Context) -> None:
    """Every code's EDEs per report bucket: the incidents' own buckets, never regrouped when
    there are incidents. Too many buckets for the terminal shows a window around them."""
    ts = report["timeseries"]
    if not ts["series"] or ts["buckets"] < 2:
        return
    from analyzer import reports

    # a wide terminal gives the names room first (up to a third of it), then the bars
    names = [len(f"{x['code']:>5} {x['name']}") + 2 for x in ts["series"][:12]]
    label_width = max(_LABEL, min(max(names, default=0), console.width // 3))
    columns = max(10, console.width - label_width - 14)
    buckets, step = ts["buckets"], ts["interval_seconds"]
    start_ns = reports.parse_iso_ns(ts["start"])
    spans = _incident_buckets(report, start_ns, step, buckets)
    # the --width that shows every bucket: the label can only grow to its longest name
    whole = buckets + 14 + max(_LABEL, max(names, default=0))
    more = (f"--width {whole} shows every bucket, as do --format markdown and html"
            if whole <= 1000 else "--format markdown or html shows every bucket")
    lo, hi, factor = 0, buckets, 1
    if buckets > columns and spans:
        lo, hi = _window(spans, buckets, columns)
    elif buckets > columns:
        factor = math.ceil(buckets / columns)
    first_ns = start_ns + lo * step * _NS
    last_ns = start_ns + hi * step * _NS
    label = reports.interval_label(factor * step)
    _heading(console, f"Timeline: EDEs per {label} from "
                      f"{fmt_time(reports.iso(first_ns), date=ctx.dated)} to "
                      f"{fmt_time(reports.iso(last_ns), date=ctx.dated)} UTC")
    if factor > 1:
        console.print(f"[dim]One column is {factor} report buckets of {ts['interval']}, to fit "
                      f"{console.width} columns (no incident to align with); {more}.[/]")
    elif (lo, hi) != (0, buckets):
        outside = sum(1 for first, last in spans if first < lo or last >= hi)
        console.print(
            f"[dim]The incidents' {ts['interval']} buckets: {hi - lo} of {buckets:,}, around "
            f"the incidents"
            + (f" ({plural(outside, 'incident')} reaching outside)" if outside else "")
            + f"; the capture runs {fmt_time(ts['start'], date=ctx.dated)} to "
            f"{fmt_time(ts['end'], date=ctx.dated)}. {more}.[/]")
    elif spans:
        console.print(f"[dim]The incidents' {ts['interval']} buckets, every one.[/]")
    incident_codes = {i["code"] for i in report["incidents"]}
    for s in ts["series"][:12]:
        counts = _regroup(s["counts"][lo:hi], factor)
        peak = max(counts)
        mark = "!" if s["code"] in incident_codes else " "
        name = f"{s['code']:>5} {s['name']}"
        if len(name) > label_width - 2:
            name = name[:label_width - 3] + "…"
        console.print(f"{mark}{_s(name):<{label_width - 1}}{sparkline(counts)} max {peak}",
                      no_wrap=True, overflow="crop")
    if spans and factor == 1:
        under = "".join("^" if any(a <= b <= z for a, z in spans) else " "
                        for b in range(lo, hi)).rstrip()
        if under:
            console.print(f"[dim]{'':<{label_width}}{under}[/]", no_wrap=True, overflow="crop")
    hidden = len(ts["series"]) - 12
    if hidden > 0:
        console.print(f"[dim]+{hidden:,} more code{'' if hidden == 1 else 's'}: --code N "
                      "shows one, --format json or csv shows all[/]")
    if incident_codes:
        console.print("[dim]! = an incident was detected for the code"
                      + ("; ^ = its buckets" if factor == 1 else "") + "[/]")


def _incident_buckets(report: dict[str, Any], start_ns: int, step: int, buckets: int
                      ) -> list[tuple[int, int]]:
    """Return (first, last) report-bucket indexes of each incident, inclusive."""
    from analyzer import reports

    spans = []
    for i in report["incidents"]:
        first = (reports.parse_iso_ns(i["start"]) - start_ns) // (step * _NS)
        last = (reports.parse_iso_ns(i["end"]) - start_ns) // (step * _NS) - 1
        spans.append((max(0, int(first)), min(buckets - 1, int(last))))
    return spans


def _window(spans: list[tuple[int, int]], buckets: int, columns: int) -> tuple[int, int]:
    """Return the ``columns`` buckets [lo, hi) to show: centred on the incidents when they
    fit, else from just before the first one."""
    first = min(a for a, _ in spans)
    last = max(z for _, z in spans)
    if last - first + 1 <= columns:
        lo = first - (columns - (last - first + 1)) // 2
    else:
        lo = first - columns // 10
    lo = max(0, min(lo, buckets - columns))
    return lo, lo + columns


def _captures(console: rich.console.Console, report: dict[str, Any], ctx: _Context) -> None:
    captures = report["captures"]
    failed = [c for c in captures if c["error"]]
    if len(captures) < 2 and not failed:
        return  # one capture: the summary's Captures line said it all
    console.print()
    table = _table("Captures")
    table.add_column("File", overflow="fold", min_width=20)
    table.add_column("Format", no_wrap=True)
    table.add_column("Packets", justify="right", no_wrap=True)
    table.add_column("Status", overflow="fold")
    for c in captures:
        status = (f"[red]{_s(c['error'])}[/]" if c["error"] else
                  _s(truncated_note(c)) if truncated_note(c) else "ok")
        table.add_row(_s(c["path"]), _s(c["format"] or "-"), fmt_count(c["packets"]), status)
    console.print(table)


def _regroup(counts: list[int], factor: int) -> list[int]:
    if factor <= 1:
        return list(counts)
    return [sum(counts[i:i + factor]) for i in range(0, len(counts), factor)]


# --- diff ------------------------------------------------------------------------------------

def write_diff(diff: dict[str, Any], out: IO[str], *, width: int | None = None,
               color: bool = False) -> None:
    """Write a diff (``analyzer.diffs.diff``) to ``out`` as terminal text."""
    from analyzer.render import diff_change, diff_rule, diff_side, diff_span, diff_verdict

    with _console(out, width, color) as console:
        before, after = diff["before"], diff["after"]
        console.print(rich.text.Text.assemble(("EDE diff", "bold"), "  ",
                                              safe_text(before["label"]), " -> ",
                                              safe_text(after["label"]), overflow="fold"))
        grid = rich.table.Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for title, side in (("Before", before), ("After", after)):
            span = diff_span(side)
            grid.add_row(title, rich.text.Text(
                (f"{span}; " if span else "") + diff_side(side), overflow="fold"))
        if diff.get("filters"):
            grid.add_row("Filters", rich.text.Text(safe_text(_filters(diff["filters"]))))
        grid.add_row("Verdict", diff_verdict(diff))
        console.print(grid)
        console.print(f"[dim]{_s(diff_rule(diff))}[/]")
        if diff["codes"]:
            console.print()
            table = _table("Codes", "Rate: EDE options per 100 DNS responses of that side")
            for name, justify in (("Code", "right"), ("Name", "left"), ("Before", "right"),
                                  ("Rate", "right"), ("After", "right"), ("Rate", "right"),
                                  ("Change", "left")):
                table.add_column(name, justify=justify,  # type: ignore[arg-type]
                                 no_wrap=name != "Name", overflow="fold")
            for c in diff["codes"]:
                table.add_row(str(c["code"]), _s(c["name"]), fmt_count(c["before"]),
                              fmt_share(c["before_rate"]), fmt_count(c["after"]),
                              fmt_share(c["after_rate"]),
                              diff_change(c) if c["notable"] or c["change"] == "unchanged"
                              else f"{diff_change(c)} (few)")
            console.print(table)
        for key, title, label in (("zones", "Zones", "Zone"),
                                  ("resolvers", "Resolvers", "Resolver")):
            notable = [e for e in diff[key] if e["notable"]]
            if not notable:
                continue
            console.print()
            table = _table(f"{title} that changed")
            if key == "zones":
                table.add_column("Code", justify="right", no_wrap=True)
            table.add_column(label, overflow="fold", min_width=16)
            table.add_column("Before", justify="right", no_wrap=True)
            table.add_column("After", justify="right", no_wrap=True)
            table.add_column("Change", no_wrap=True)
            for e in notable:
                cells = [str(e["code"])] if key == "zones" else []
                cells += [_s(e["zone"] if key == "zones" else e["resolver"]),
                          fmt_count(e["before"]), fmt_count(e["after"]), diff_change(e)]
                table.add_row(*cells)
            console.print(table)
        from analyzer.render import minor_changes

        minor = minor_changes(diff)
        if minor:
            console.print()
            console.print(rich.text.Text(
                f"Smaller changes (under {diff['options']['min_change']} EDEs apart): "
                + "; ".join(f"{safe_text(what)} {how}" for what, how in minor),
                overflow="fold"))
