"""The report as Markdown (GitHub-flavoured tables), for tickets and incident notes.

Capture data (names, EXTRA-TEXT, addresses, paths) is made inert: ``safe_text`` makes
control and bidi characters visible, and the text is written as an inline code span, inside
which CommonMark interprets nothing (no emphasis, links, autolinks or HTML). Backticks and
``|`` (which would end the span or the table cell) are replaced by visible escapes.
"""

from __future__ import annotations

from typing import IO, Any

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


def md(value: Any) -> str:
    """Return capture text as an inline code span: nothing in it is interpreted (no
    emphasis, links, autolinks or HTML), and ``safe_text`` has made controls visible."""
    text = _code_span(value)
    if not text:
        return ""
    # a span that starts or ends with a space or backtick needs padding (CommonMark §6.1)
    return f"` {text} `" if text[0] in " `" or text[-1] in " `" else f"`{text}`"


def write_report(report: dict[str, Any], out: IO[str]) -> None:
    """Write ``report`` to ``out`` as a Markdown document."""
    dated = not same_day(report)
    lines: list[str] = []
    s = report["summary"]
    lines += ["# Extended DNS Errors report", ""]
    if s["first_seen"]:
        lines += [f"{fmt_time(s['first_seen'])} to {fmt_time(s['last_seen'], date=dated)} UTC "
                  f"({fmt_duration(s['span_seconds'])})", ""]
    lines += ["## Summary", ""]
    paths = ", ".join(md(c['path']) for c in report["captures"][:5])
    more = f" and {len(report['captures']) - 5} more" if len(report["captures"]) > 5 else ""
    lines.append(f"- **Captures:** {s['captures']} ({paths}{more})"
                 + (f", {s['captures_failed']} could not be read" if s["captures_failed"] else "")
                 + "".join(f"; {md(c['path']) + ' ' if len(report['captures']) > 1 else ''}"
                           f"{truncated_note(c)}" for c in report["captures"]
                           if truncated_note(c)))
    lines.append(f"- **Packets:** {fmt_count(s['packets'])}"
                 + (f": {fmt_counts(report['accounting'])}" if report["accounting"] else ""))
    skipped = skipped_line(report)
    if skipped:
        lines.append(f"- **Skipped:** {skipped.removeprefix('skipped ')}")
    if tunnels_line(report):
        lines.append(f"- **Tunnels:** {tunnels_line(report)}")
    if dnstap_line(report):
        lines.append(f"- **dnstap:** {md(dnstap_line(report))}")
    if unopened_line(report):
        lines.append(f"- **Not opened:** {md(unopened_line(report))}")
    lines.append(f"- **DNS responses:** {fmt_count(s['dns_responses'])}, "
                 f"{fmt_count(s['responses_with_ede'])} with EDE"
                 + (f" ({fmt_share(s['ede_share'])})" if s["ede_share"] is not None else "")
                 + f", {plural(s['ede_options'], 'EDE option')}")
    if s["ede_options"]:
        lines.append(f"- **EDE seen:** {fmt_time(s['ede_first_seen'])} to "
                     f"{fmt_time(s['ede_last_seen'])} UTC; {plural(s['codes'], 'code')}, "
                     f"{plural(s['domains'], 'domain')}, {plural(s['zones'], 'zone')}, "
                     f"{plural(s['resolvers'], 'resolver')}")
    if report.get("filters"):
        active = {k: v for k, v in report["filters"].items() if v}
        lines.append("- **Filters:** " + "; ".join(
            f"{k} " + ", ".join(md(x) for x in (v if isinstance(v, list) else [v]))
            for k, v in active.items()))
    if report["problems"]:
        lines.append(f"- **Problems:** {fmt_counts(report['problems'])}")
    lines.append("")

    if report["codes"]:
        lines += ["## Codes", ""]
        lines += _table(
            ["Code", "Name", "EDEs", "Responses", "Share", "Domains", "RCODEs", "First seen",
             "Last seen"],
            [[str(c["code"]), c["name"], fmt_count(c["count"]), fmt_count(c["responses"]),
              fmt_share(c["share"]), fmt_count(c["domains"]), fmt_counts(c["rcodes"]),
              fmt_time(c["first_seen"], date=dated), fmt_time(c["last_seen"], date=dated)]
             for c in report["codes"]],
            right={0, 2, 3, 4, 5})
        lines.append("")
    if report["incidents"]:
        interval = report["timeseries"]["interval"]
        lines += ["## Incidents", "",
                  f"A code well above its own baseline ({interval} buckets; detector in "
                  "docs/report-schema.md).", ""]
        lines += _table(
            ["Code", "Start", "End", "EDEs", "Peak/min", "Baseline/min", "Top domains",
             "Top zones"],
            [[code_label(i), fmt_time(i["start"], date=dated), fmt_time(i["end"], date=dated),
              fmt_count(i["count"]), f"{i['peak_per_minute']:g}",
              f"{i['baseline_per_minute']:g}",
              ", ".join(f"{md(d['qname'])} {d['count']}" for d in i["top_domains"]),
              ", ".join(f"{md(z['zone'])} {z['count']}" for z in i["top_zones"])]
             for i in report["incidents"]],
            right={3, 4, 5})
        lines.append("")
    if report.get("hints"):
        lines += ["## Hints", ""]
        for h in report["hints"]:
            lines.append(f"- **{code_label(h)}** from {md(h['resolver'])} for {md(h['zone'])}: "
                         f"{h['explanation']} {plural(h['count'], 'EDE')}, "
                         f"{fmt_time(h['first_seen'], date=dated)} to "
                         f"{fmt_time(h['last_seen'], date=dated)}; EXTRA-TEXT: "
                         + ", ".join(md(t) for t in h["evidence"][:1]))
        lines.append("")
    if report["codes"]:
        lines += ["## What to do", ""]
        for n, c in enumerate(report["codes"], 1):
            lines.append(f"{n}. **{code_label(c)}**: {plural(c['count'], 'EDE')}, "
                         f"{fmt_time(c['first_seen'], date=dated)} to "
                         f"{fmt_time(c['last_seen'], date=dated)}")
            zones = zones_for(report, c["code"])
            if zones:
                lines.append("   - Zones: " + ", ".join(
                    md(z['zone']) + zone_note(z) for z in zones))
            domains = domains_for(report, c["code"])
            if domains:
                lines.append("   - Names: " + ", ".join(
                    md(d['qname']) for d in domains))
            servers = resolvers_for(report, c["code"])
            if servers:
                lines.append("   - Resolvers: " + ", ".join(md(r) for r in servers[:3]))
            if c["extra_texts"]:
                lines.append(f"   - EXTRA-TEXT: {md(c['extra_texts'][0]['text'])}")
            lines += [f"   - Traffic: {md(a)}" for a in c.get("traffic_advice", [])]
            lines.append(f"   - Next step: {c['next_step']}")
        lines.append("")
    if report["zones"]:
        lines += ["## Affected zones", "",
                  f"*{EVIDENCE_LEGEND}.*", ""]
        lines += _table(
            ["Code", "Zone", "From", "EDEs", "Domains", "Key tags", "First seen", "Last seen"],
            [[str(z["code"]), md(z["zone"]), zone_evidence(z),
              fmt_count(z["count"]), fmt_count(z["domains"]),
              ", ".join(map(str, z["key_tags"])),
              fmt_time(z["first_seen"], date=dated), fmt_time(z["last_seen"], date=dated)]
             for z in report["zones"]],
            right={0, 3, 4})
        lines.append("")
    if report["domains"]:
        lines += ["## Affected domains", ""]
        lines += _table(
            ["Code", "Query name", "Zone", "EDEs", "Responses", "First seen", "Last seen"],
            [[str(d["code"]), md(d["qname"]), md(d["zone"]), fmt_count(d["count"]),
              fmt_count(d["responses"]), fmt_time(d["first_seen"], date=dated),
              fmt_time(d["last_seen"], date=dated)] for d in report["domains"]],
            right={0, 3, 4})
        lines.append("")
    if report["resolvers"]:
        lines += ["## Resolvers", ""]
        lines += _table(
            ["Resolver", "EDEs", "Clients", "Codes", "Software", "Evidence"],
            [[md(r["resolver"]), fmt_count(r["count"]), fmt_count(r["clients"]),
              ", ".join(f"{c['code']} ({c['count']})" for c in r["codes"]),
              md(software_label(r)), "; ".join(md(e) for e in r["evidence"][:2])
              + (f"; {md(instance_note(r))}" if instance_note(r) else "")]
             for r in report["resolvers"]],
            right={1, 2})
        lines.append("")
    if report.get("error_reports"):
        lines += _error_reports(report["error_reports"], dated)
    if report.get("upstream") is not None:
        lines += _upstream(report["upstream"])
    lines += _timeline(report["timeseries"], {i["code"] for i in report["incidents"]}, dated)
    failed = [c for c in report["captures"] if c["error"]]
    if failed:
        lines += ["## Captures that could not be read", ""]
        lines += [f"- {md(c['path'])}: {md(c['error'])}" for c in failed]
        lines.append("")
    out.write("\n".join(lines).rstrip("\n") + "\n")


def _timeline(ts: dict[str, Any], incident_codes: set[int], dated: bool) -> list[str]:
    """Every code's EDEs per bucket, one character a bucket: the incidents' buckets, whole
    (a document has no terminal width to squeeze them into)."""
    if not ts["series"] or ts["buckets"] < 2:
        return []
    names = [f"{s['code']:>5} {s['name']}" for s in ts["series"]]
    width = max(len(n) for n in names) + 2
    rows = [f"{'!' if s['code'] in incident_codes else ' '}{safe_text(n):<{width}}"
            f"{sparkline(s['counts'])}  max {fmt_count(max(s['counts']))}, "
            f"total {fmt_count(s['total'])}" for n, s in zip(names, ts["series"], strict=True)]
    return ["## Timeline", "",
            f"EDE options per {ts['interval']} bucket (the incidents' buckets), "
            f"{fmt_time(ts['start'], date=dated)} to {fmt_time(ts['end'], date=dated)} UTC: "
            "one character a bucket, `·` for none, `▁` to `█` scaled to each code's peak"
            + ("; `!` marks a code with an incident." if incident_codes else "."),
            "", "```text", *rows, "```", ""]


def _upstream(section: dict[str, Any]) -> list[str]:
    from analyzer.render import UPSTREAM_NOTE, forwarder_line

    lines = ["## Upstream", ""]
    if section["codes"]:
        lines += [f"*{UPSTREAM_NOTE}.*", ""]
        lines += _table(
            ["Code", "Zone", "EDEs", "Asked", "Queries", "Timeouts", "RCODEs", "Upstream EDEs",
             "Servers"],
            [[code_label(e), md(e["zone"]), fmt_count(e["edes"]),
              fmt_count(e["edes_with_upstream"]), fmt_count(e["upstream_queries"]),
              fmt_count(e["timeouts"]), fmt_counts(e["rcodes"]),
              fmt_counts(e["upstream_edes"]), ", ".join(md(s) for s in e["servers"])]
             for e in section["codes"]],
            right={2, 3, 4, 5})
    else:
        lines.append("No EDE to follow upstream.")
    lines += ["", "### Forwarders", ""]
    if section["forwarders"]:
        for f in section["forwarders"]:
            forwarder, server, what = forwarder_line(f)
            lines.append(f"- {md(forwarder)} from {md(server)}: {what}, e.g. "
                         + ", ".join(md(q) for q in f["examples"]))
    else:
        lines.append("No forwarder in the captures received an EDE from upstream.")
    lines.append("")
    return lines


def _error_reports(section: dict[str, Any], dated: bool) -> list[str]:
    from analyzer.render import REPORT_NOTE, REPORT_STATUS

    lines = ["## DNS error reports (RFC 9567)", ""]
    if section["reports"]:
        lines += [f"{fmt_count(section['report_queries'])} report queries.", ""]
        lines += _table(
            ["Reporter", "Reported name", "Type", "Code", "Agent", "Count", "First seen",
             "Last seen"],
            [[md(r["reporter"]), md(r["qname"]), md(r["qtype"]), str(r["code"]),
              md(r["agent"]), fmt_count(r["count"]), fmt_time(r["first_seen"], date=dated),
              fmt_time(r["last_seen"], date=dated)] for r in section["reports"]],
            right={3, 5})
    else:
        lines.append("No report queries were sent.")
    lines.append("")
    if section["channels"]:
        lines += ["Report channels offered: " + ", ".join(
            f"{md(c['agent'])} ({plural(c['count'], 'EDE')})" for c in section["channels"]),
            ""]
    if section["reconciliation"]:
        lines += ["### Reports against the EDEs on the wire", "", f"*{REPORT_NOTE}.*", ""]
        lines += _table(
            ["Name", "Code", "Reports", "EDEs", "With channel", "Status"],
            [[md(r["qname"]), code_label(r), fmt_count(r["reports"]), fmt_count(r["edes"]),
              fmt_count(r["edes_with_channel"]), REPORT_STATUS[r["status"]]]
             for r in section["reconciliation"]],
            right={2, 3, 4})
        lines.append("")
    return lines


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |",
            *("| " + " | ".join(row) + " |" for row in rows)]


def _code_span(value: Any) -> str:
    # Inside a code span nothing is interpreted except the backticks that close it, and
    # a table cell still ends at "|"; neither occurs in names we print this way once
    # replaced by visible escapes.
    return safe_text(value).replace("`", "\\x60").replace("|", "\\x7c")


def write_diff(diff: dict[str, Any], out: IO[str]) -> None:
    """Write a diff (``analyzer.diffs.diff``) to ``out`` as a Markdown document."""
    from analyzer.render import (
        diff_change,
        diff_rule,
        diff_side,
        diff_span,
        diff_verdict,
        minor_changes,
    )

    before, after = diff["before"], diff["after"]
    lines = ["# Extended DNS Errors diff", "",
             f"{md(before['label'])} → {md(after['label'])}", ""]
    for title, side in (("Before", before), ("After", after)):
        span = diff_span(side)
        lines.append(f"- **{title}:** {span + '; ' if span else ''}{diff_side(side)}")
    if diff.get("filters"):
        active = {k: v for k, v in diff["filters"].items() if v}
        lines.append("- **Filters:** " + "; ".join(
            f"{k} " + ", ".join(md(x) for x in (v if isinstance(v, list) else [v]))
            for k, v in active.items()))
    lines += [f"- **Verdict:** {diff_verdict(diff)}", f"- *{diff_rule(diff)}*", ""]
    if diff["codes"]:
        lines += ["## Codes", "", "Rate: EDE options per 100 DNS responses of that side.", ""]
        lines += _table(
            ["Code", "Name", "Before", "Rate", "After", "Rate", "Change"],
            [[str(c["code"]), c["name"], fmt_count(c["before"]), fmt_share(c["before_rate"]),
              fmt_count(c["after"]), fmt_share(c["after_rate"]), diff_change(c)]
             for c in diff["codes"]],
            right={0, 2, 3, 4, 5})
        lines.append("")
    for key, title in (("zones", "Zones that changed"), ("resolvers", "Resolvers that changed")):
        notable = [e for e in diff[key] if e["notable"]]
        if not notable:
            continue
        lines += [f"## {title}", ""]
        if key == "zones":
            lines += _table(["Code", "Zone", "Before", "After", "Change"],
                            [[str(e["code"]), md(e["zone"]), fmt_count(e["before"]),
                              fmt_count(e["after"]), diff_change(e)] for e in notable],
                            right={0, 2, 3})
        else:
            lines += _table(["Resolver", "Before", "After", "Change"],
                            [[md(e["resolver"]), fmt_count(e["before"]), fmt_count(e["after"]),
                              diff_change(e)] for e in notable], right={1, 2})
        lines.append("")
    minor = minor_changes(diff)
    if minor:
        lines += [f"## Smaller changes (under {diff['options']['min_change']} EDEs apart)", ""]
        lines += [f"- {md(what)} {how}" for what, how in minor]
        lines.append("")
    out.write("\n".join(lines).rstrip("\n") + "\n")
