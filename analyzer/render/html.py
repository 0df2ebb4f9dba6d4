"""The report as one self-contained HTML file with inline SVG charts.

Opening it makes no network request: no external script, stylesheet, font or image, and a
Content-Security-Policy meta tag (``default-src 'none'``) that would block one anyway. The
one script is ours (``interactive.SCRIPT``: sortable, filterable tables and a zoomable time
chart), allowed by its hash alone. Everything taken from a capture goes through ``svg.esc``
(``safe_text`` then ``html.escape``), so a query name or EXTRA-TEXT holding ``<script>``
is shown as text, and could not run even if it were not.
"""

from __future__ import annotations

from typing import IO, Any

from analyzer.render import (
    code_label,
    dnstap_line,
    domains_for,
    fmt_count,
    fmt_counts,
    fmt_duration,
    fmt_share,
    fmt_time,
    instance_note,
    interactive,
    no_responses_note,
    plural,
    resolvers_for,
    same_day,
    skipped_line,
    software_label,
    svg,
    truncated_note,
    tunnels_line,
    unopened_line,
    zone_evidence,
    zone_note,
    zones_for,
)
from analyzer.render.svg import esc

CSP = (f"default-src 'none'; style-src 'unsafe-inline'; "
       f"script-src {interactive.script_hash()}")

STYLE = """
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #fff; --muted: #6e6e73;
  --line: #d2d2d7; --shade: rgba(225, 87, 89, .15); }
@media (prefers-color-scheme: dark) { :root { --fg: #f5f5f7; --bg: #1d1d1f; --muted: #a1a1a6;
  --line: #424245; } }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); margin: 2rem auto; max-width: 72rem; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2rem; font-size: 1.2rem; }
.muted, caption { color: var(--muted); } caption { text-align: left; caption-side: bottom;
  padding-top: .3rem; font-size: .9em; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: .25rem .6rem; text-align: left;
  vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: .92em; white-space: nowrap; }
code.text { white-space: normal; overflow-wrap: break-word; }
.scroll { overflow-x: auto; max-width: 100%; }
nav.toc ol { columns: 2; margin: .3rem 0; } h2 a.anchor { color: var(--muted);
  text-decoration: none; font-weight: normal; margin-left: .3rem; visibility: hidden; }
h2:hover a.anchor, h2 a.anchor:focus { visibility: visible; }
.js th { cursor: pointer; } th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
input.filter { margin: .4rem 0 0; padding: .2rem .4rem; font: inherit; }
.zoom button { font: inherit; margin-right: .3rem; }
ul.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .2rem 1rem; }
ul.legend li { white-space: nowrap; } ul.legend .swatch { display: inline-block;
  width: .8em; height: .8em; border-radius: 2px; margin-right: .3em; vertical-align: -1px; }
svg.timechart polyline { stroke-width: 1.6; } svg.timechart rect.hit { fill: transparent; }
svg.timechart rect.hit:hover { fill: rgba(128, 128, 128, .18); }
svg.timechart rect.selection { fill: rgba(78, 121, 167, .25); }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.summary dt { font-weight: 600; } dl.summary dd { margin: 0; }
ol.actions li { margin-bottom: .8rem; } ol.actions p { margin: .15rem 0; }
svg.chart { display: block; max-width: 100%; height: auto; }
svg.chart text { font: 11px system-ui, sans-serif; fill: var(--fg); }
svg.chart text.value { fill: var(--muted); }
svg.chart .axis { stroke: var(--line); } svg.chart .incident { fill: var(--shade); }
.series h3 { font-size: 1rem; margin: 1rem 0 .2rem; }
.error { color: #d70015; }
"""


def write_report(report: dict[str, Any], out: IO[str]) -> None:
    """Write ``report`` to ``out`` as a standalone HTML document."""
    dated = not same_day(report)
    body: list[str] = []
    s = report["summary"]
    body.append("<h1>Extended DNS Errors report</h1>")
    if s["first_seen"]:
        body.append(f'<p class="muted">{esc(fmt_time(s["first_seen"]))} to '
                    f'{esc(fmt_time(s["last_seen"], date=dated))} UTC '
                    f'({esc(fmt_duration(s["span_seconds"]))})</p>')
    body.append(_summary(report))
    if report["codes"]:
        body.append("<h2>Codes</h2>")
        body.append(svg.bar_chart([(code_label(c), c["count"]) for c in report["codes"]],
                                  title="EDE options per code"))
        body.append(_table(
            ["Code", "Name", "EDEs", "Responses", "Share", "Domains", "RCODEs", "First seen",
             "Last seen"],
            [[c["code"], c["name"], fmt_count(c["count"]), fmt_count(c["responses"]),
              fmt_share(c["share"]), fmt_count(c["domains"]), fmt_counts(c["rcodes"]),
              fmt_time(c["first_seen"], date=dated), fmt_time(c["last_seen"], date=dated)]
             for c in report["codes"]],
            numeric={0, 2, 3, 4, 5},
            caption="EDEs: EDE options; Responses: responses carrying the code; Share: of all "
                    "DNS responses."))
    if report["incidents"]:
        body.append(_incidents(report, dated))
    if report.get("hints"):
        body.append(_hints(report, dated))
    if report["codes"]:
        body.append(_actions(report, dated))
    body.append(_timeseries(report, dated))
    if report["zones"]:
        body.append("<h2>Affected zones</h2>")
        body.append(_table(
            ["Code", "Zone", "From", "EDEs", "Domains", "Key tags", "Examples", "First seen",
             "Last seen"],
            [[z["code"], _mono(z["zone"]), zone_evidence(z),
              fmt_count(z["count"]), fmt_count(z["domains"]),
              ", ".join(map(str, z["key_tags"])),
              _mono_list(z["examples"]), fmt_time(z["first_seen"], date=dated),
              fmt_time(z["last_seen"], date=dated)] for z in report["zones"]],
            numeric={0, 3, 4},
            caption="From: text when the EXTRA-TEXT names the zone (the broken zone is often a "
                    "parent of the query name); qname for the query name's zone."))
    if report["domains"]:
        body.append("<h2>Affected domains</h2>")
        body.append(_table(
            ["Code", "Query name", "Zone", "EDEs", "Responses", "First seen", "Last seen"],
            [[d["code"], _mono(d["qname"]), _mono(d["zone"]), fmt_count(d["count"]),
              fmt_count(d["responses"]), fmt_time(d["first_seen"], date=dated),
              fmt_time(d["last_seen"], date=dated)] for d in report["domains"]],
            numeric={0, 3, 4}))
    if report["resolvers"]:
        body.append("<h2>Resolvers</h2>")
        body.append(_table(
            ["Resolver", "EDEs", "Clients", "Codes", "Software", "Evidence"],
            [[_mono(r["resolver"]), fmt_count(r["count"]), fmt_count(r["clients"]),
              ", ".join(f"{c['code']} {c['name']} ({fmt_count(c['count'])})"
                        for c in r["codes"]),
              software_label(r), _Raw(", ".join(_text(e) for e in r["evidence"][:3] + (
                  [instance_note(r)] if instance_note(r) else [])))]
             for r in report["resolvers"]],
            numeric={1, 2}))
    if report.get("error_reports"):
        body.append(_error_reports(report["error_reports"], dated))
    if report.get("upstream") is not None:
        body.append(_upstream(report["upstream"]))
    body.append(_captures(report))
    out.write(_page("Extended DNS Errors report", body))


def _page(title: str, body: list[str]) -> str:
    """Return the standalone document around ``body`` (markup already escaped): each
    section heading gets an anchor, a table of contents goes before the first, and the
    script comes last."""
    import re

    content = "\n".join(part for part in body if part)
    toc: list[str] = []

    def anchor(match: re.Match[str]) -> str:
        heading = match.group(1)
        slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"<[^>]+>", "", heading).lower()).strip("-")
        slug = slug or "section"
        while f'id="{slug}"' in content or any(f'href="#{slug}"' in t for t in toc):
            slug += "-2"
        toc.append(f'<li><a href="#{slug}">{heading}</a></li>')
        return (f'<h2 id="{slug}">{heading}<a class="anchor" href="#{slug}" '
                f'aria-label="Link to this section">#</a></h2>')

    content = re.sub(r"<h2>(.*?)</h2>", anchor, content)
    if len(toc) > 2:
        nav = ('<nav class="toc" aria-label="Contents"><strong>Contents</strong><ol>'
               + "".join(toc) + "</ol></nav>\n")
        first = content.find("<h2 ")
        content = content[:first] + nav + content[first:]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="referrer" content="no-referrer">\n'
            f"<title>{esc(title)}</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n"
            + content
            + f"\n<script>{interactive.SCRIPT}</script>\n</body>\n</html>\n")


class _Raw(str):
    """Markup we built ourselves (already escaped), as opposed to text to escape."""


def _code_spans(text: str) -> str:
    """Return catalogue text escaped, with its `backtick` spans as <code> (the catalogue
    writes commands that way)."""
    parts = esc(text).split("`")
    if len(parts) % 2 == 0:  # unbalanced: show the backticks as they are
        return esc(text)
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _mono(value: Any) -> _Raw:
    return _Raw(f"<code>{esc(value)}</code>")


def _text(value: Any) -> _Raw:
    """Return free text from a capture (EXTRA-TEXT) in code type that may wrap at spaces."""
    return _Raw(f'<code class="text">{esc(value)}</code>')


def _mono_list(values: list[Any]) -> _Raw:
    return _Raw(", ".join(f"<code>{esc(v)}</code>" for v in values))


def _cell(value: Any) -> str:
    return value if isinstance(value, _Raw) else esc(value)


def _table(header: list[str], rows: list[list[Any]], *, numeric: set[int],
           caption: str | None = None) -> str:
    def cls(i: int) -> str:
        return ' class="n"' if i in numeric else ""

    head = "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(header))
    lines = ["<table>", f"<caption>{esc(caption)}</caption>" if caption else "",
             f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for row in rows:
        lines.append("<tr>" + "".join(f"<td{cls(i)}>{_cell(v)}</td>"
                                      for i, v in enumerate(row)) + "</tr>")
    lines += ["</tbody>", "</table>"]
    # names never break inside (code is nowrap): a wide table scrolls instead
    return '<div class="scroll">' + "\n".join(line for line in lines if line) + "</div>"


def _summary(report: dict[str, Any]) -> str:
    s = report["summary"]
    items: list[tuple[str, str]] = []
    captures = report["captures"]
    files = ", ".join(f"<code>{esc(c['path'])}</code>" for c in captures[:5])
    if len(captures) > 5:
        files += f" and {len(captures) - 5} more"
    if s["captures_failed"]:
        files += f' <span class="error">({s["captures_failed"]} could not be read)</span>'
    for c in captures:
        if truncated_note(c):
            named = f"<code>{esc(c['path'])}</code> " if len(captures) > 1 else ""
            files += f"; {named}{esc(truncated_note(c))}"
    items.append(("Captures", files))
    packets = fmt_count(s["packets"])
    if report["accounting"]:
        packets += ": " + esc(fmt_counts(report["accounting"]))
    items.append(("Packets", packets))
    skipped = skipped_line(report)
    if skipped:
        items.append(("Skipped", esc(skipped.removeprefix("skipped "))))
    if tunnels_line(report):
        items.append(("Tunnels", esc(tunnels_line(report))))
    if dnstap_line(report):
        items.append(("dnstap", esc(dnstap_line(report))))
    if unopened_line(report):
        items.append(("Not opened", esc(unopened_line(report))))
    responses = f"{fmt_count(s['dns_responses'])} DNS responses, " \
                f"{fmt_count(s['responses_with_ede'])} with EDE"
    if s["ede_share"] is not None:
        responses += f" ({fmt_share(s['ede_share'])})"
    responses += f", {plural(s['ede_options'], 'EDE option')}"
    items.append(("Responses", esc(responses)))
    if s["ede_options"]:
        items.append(("EDE seen", esc(
            f"{fmt_time(s['ede_first_seen'])} to {fmt_time(s['ede_last_seen'])} UTC; "
            f"{plural(s['codes'], 'code')}, {plural(s['domains'], 'domain')}, "
            f"{plural(s['zones'], 'zone')}, {plural(s['resolvers'], 'resolver')}")))
    if report.get("filters"):
        active = {k: v for k, v in report["filters"].items() if v}
        items.append(("Filters", "; ".join(
            f"{esc(k)} " + ", ".join(f"<code>{esc(x)}</code>"
                                     for x in (v if isinstance(v, list) else [v]))
            for k, v in active.items())))
    if report["problems"]:
        items.append(("Problems", esc(fmt_counts(report["problems"]))))
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items)
    note = ""
    if not s["ede_options"]:
        note = ("<p>No Extended DNS Errors matched the filters.</p>"
                if s["dns_responses"] and report.get("filters") else
                "<p>No Extended DNS Errors: none of the DNS responses carried EDNS0 option 15 "
                "(RFC 8914).</p>" if s["dns_responses"] else
                f"<p>{esc(no_responses_note(report))}</p>")
    return f'<h2>Summary</h2>\n<dl class="summary">{rows}</dl>{note}'


def _incidents(report: dict[str, Any], dated: bool) -> str:
    interval = report["timeseries"]["interval"]
    return "<h2>Incidents</h2>\n" + _table(
        ["Code", "Start", "End", "EDEs", "Peak/min", "Baseline/min", "Top domains",
         "Top zones", "Resolvers"],
        [[code_label(i), fmt_time(i["start"], date=dated), fmt_time(i["end"], date=dated),
          fmt_count(i["count"]), f"{i['peak_per_minute']:g}", f"{i['baseline_per_minute']:g}",
          _Raw(", ".join(f"<code>{esc(d['qname'])}</code> {d['count']}"
                         for d in i["top_domains"])),
          _Raw(", ".join(f"<code>{esc(z['zone'])}</code> {z['count']}"
                         for z in i["top_zones"])),
          _Raw(", ".join(f"<code>{esc(r['resolver'])}</code>" for r in i["top_resolvers"]))]
         for i in report["incidents"]],
        numeric={3, 4, 5},
        caption=f"A code well above its own baseline; {interval} buckets. Detector: "
                "docs/report-schema.md.")


def _hints(report: dict[str, Any], dated: bool) -> str:
    items = []
    for h in report["hints"]:
        items.append(
            f"<li><p><strong>{esc(code_label(h))}</strong> from {_mono(h['resolver'])} for "
            f"{_mono(h['zone'])}: {esc(h['explanation'])}</p><p class=\"muted\">"
            f"{plural(h['count'], 'EDE')}, {esc(fmt_time(h['first_seen'], date=dated))} to "
            f"{esc(fmt_time(h['last_seen'], date=dated))}; EXTRA-TEXT: "
            f"{', '.join(_text(e) for e in h['evidence'][:1])}</p></li>")
    return '<h2>Hints</h2>\n<ol class="actions">' + "".join(items) + "</ol>"


def _actions(report: dict[str, Any], dated: bool) -> str:
    items = []
    for c in report["codes"]:
        lines = [f"<strong>{esc(code_label(c))}</strong>: {plural(c['count'], 'EDE')}, "
                 f"{esc(fmt_time(c['first_seen'], date=dated))} to "
                 f"{esc(fmt_time(c['last_seen'], date=dated))}"]
        zones = zones_for(report, c["code"])
        if zones:
            lines.append("Zones: " + ", ".join(
                f"<code>{esc(z['zone'])}</code>{esc(zone_note(z))}" for z in zones))
        domains = domains_for(report, c["code"])
        if domains:
            lines.append("Names: " + _mono_list([d["qname"] for d in domains]))
        servers = resolvers_for(report, c["code"])
        if servers:
            lines.append("Resolvers: " + _mono_list(servers[:3]))
        if c["extra_texts"]:
            lines.append("EXTRA-TEXT: " + _text(c["extra_texts"][0]["text"]))
        lines += [f"Traffic: {esc(a)}" for a in c.get("traffic_advice", [])]
        lines.append(f"<em>{_code_spans(c['next_step'])}</em>")
        items.append("<li>" + "".join(f"<p>{line}</p>" for line in lines) + "</li>")
    return '<h2>What to do</h2>\n<ol class="actions">' + "".join(items) + "</ol>"


def _timeseries(report: dict[str, Any], dated: bool) -> str:
    """Return one chart for every code on a shared time axis, with a legend."""
    ts = report["timeseries"]
    if not ts["series"]:
        return ""
    from analyzer import reports

    start_ns = reports.parse_iso_ns(ts["start"])
    step = ts["interval_seconds"] * 1_000_000_000
    series = [{"code": s["code"], "name": s["name"], "counts": s["counts"],
               "color": svg.color(n)} for n, s in enumerate(ts["series"])]
    windows = []
    for i in report["incidents"]:
        first = (reports.parse_iso_ns(i["start"]) - start_ns) // step
        last = (reports.parse_iso_ns(i["end"]) - start_ns) // step - 1
        windows.append((int(first), int(last),
                        f"incident: {code_label(i)}, {fmt_time(i['start'], date=dated)} to "
                        f"{fmt_time(i['end'], date=dated)}"))
    chart = svg.time_chart(series, start_s=start_ns // 1_000_000_000,
                           step_s=ts["interval_seconds"], highlights=windows,
                           title=f"EDE options per {ts['interval']}, every code")
    legend = "".join(
        f'<li><label><input type="checkbox" checked hidden data-code="{int(s["code"])}">'
        f'<span class="swatch" style="background:{c["color"]}"></span>'
        f"{esc(code_label(s))} <span class=\"muted\">({fmt_count(s['total'])})</span>"
        "</label></li>" for s, c in zip(ts["series"], series, strict=True))
    return "\n".join([
        f"<h2>Time series</h2>\n<p class=\"muted\">EDE options per {esc(ts['interval'])}, "
        f"{esc(fmt_time(ts['start']))} to {esc(fmt_time(ts['end']))} UTC, one line per code "
        "(hover a point for its time and counts). Shaded: incidents.</p>",
        '<div class="series">', chart, f'<ul class="legend">{legend}</ul>', "</div>"])


def _upstream(section: dict[str, Any]) -> str:
    from analyzer.render import UPSTREAM_NOTE, forwarder_line

    parts = ["<h2>Upstream</h2>"]
    if section["codes"]:
        parts.append(_table(
            ["Code", "Zone", "EDEs", "Asked", "Queries", "Timeouts", "RCODEs", "Upstream EDEs",
             "Servers"],
            [[code_label(e), _mono(e["zone"]), fmt_count(e["edes"]),
              fmt_count(e["edes_with_upstream"]), fmt_count(e["upstream_queries"]),
              fmt_count(e["timeouts"]), fmt_counts(e["rcodes"]), fmt_counts(e["upstream_edes"]),
              _mono_list(e["servers"])] for e in section["codes"]],
            numeric={2, 3, 4, 5}, caption=UPSTREAM_NOTE + "."))
    else:
        parts.append("<p>No EDE to follow upstream.</p>")
    parts.append("<h3>Forwarders</h3>")
    if section["forwarders"]:
        items = []
        for f in section["forwarders"]:
            forwarder, server, what = forwarder_line(f)
            items.append(f"<li>{_mono(forwarder)} from {_mono(server)}: {esc(what)}, e.g. "
                         f"{_mono_list(f['examples'])}</li>")
        parts.append("<ul>" + "".join(items) + "</ul>")
    else:
        parts.append("<p>No forwarder in the captures received an EDE from upstream.</p>")
    return "\n".join(parts)


def _error_reports(section: dict[str, Any], dated: bool) -> str:
    from analyzer.render import REPORT_NOTE, REPORT_STATUS

    parts = ["<h2>DNS error reports (RFC 9567)</h2>"]
    if section["reports"]:
        parts.append(_table(
            ["Reporter", "Reported name", "Type", "Code", "Agent", "Count", "First seen",
             "Last seen"],
            [[_mono(r["reporter"]), _mono(r["qname"]), r["qtype"], r["code"],
              _mono(r["agent"]), fmt_count(r["count"]), fmt_time(r["first_seen"], date=dated),
              fmt_time(r["last_seen"], date=dated)] for r in section["reports"]],
            numeric={3, 5},
            caption=f"{fmt_count(section['report_queries'])} report queries."))
    else:
        parts.append("<p>No report queries were sent.</p>")
    if section["channels"]:
        parts.append("<p>Report channels offered: " + ", ".join(
            f"<code>{esc(c['agent'])}</code> ({plural(c['count'], 'EDE')})"
            for c in section["channels"]) + "</p>")
    if section["reconciliation"]:
        parts.append("<h3>Reports against the EDEs on the wire</h3>")
        parts.append(_table(
            ["Name", "Code", "Reports", "EDEs", "With channel", "Status"],
            [[_mono(r["qname"]), code_label(r), fmt_count(r["reports"]), fmt_count(r["edes"]),
              fmt_count(r["edes_with_channel"]), REPORT_STATUS[r["status"]]]
             for r in section["reconciliation"]],
            numeric={2, 3, 4}, caption=REPORT_NOTE + "."))
    return "\n".join(parts)


def _captures(report: dict[str, Any]) -> str:
    captures = report["captures"]
    if len(captures) < 2 and not any(c["error"] for c in captures):
        return ""
    return "<h2>Captures</h2>\n" + _table(
        ["File", "Format", "Packets", "Status"],
        [[_mono(c["path"]), c["format"] or "", fmt_count(c["packets"]),
          _Raw(f'<span class="error">{esc(c["error"])}</span>') if c["error"] else
          truncated_note(c) or "ok"]
         for c in captures],
        numeric={2})


def write_diff(diff: dict[str, Any], out: IO[str]) -> None:
    """Write a diff (``analyzer.diffs.diff``) to ``out`` as a standalone HTML document."""
    from analyzer.render import (
        diff_change,
        diff_rule,
        diff_side,
        diff_span,
        diff_verdict,
        minor_changes,
    )

    before, after = diff["before"], diff["after"]
    body = ["<h1>Extended DNS Errors diff</h1>",
            f'<p class="muted">{_mono(before["label"])} → {_mono(after["label"])}</p>']
    items = []
    for title, side in (("Before", before), ("After", after)):
        span = diff_span(side)
        items.append((title, esc((span + "; " if span else "") + diff_side(side))))
    if diff.get("filters"):
        active = {k: v for k, v in diff["filters"].items() if v}
        items.append(("Filters", "; ".join(
            f"{esc(k)} " + ", ".join(f"<code>{esc(x)}</code>"
                                     for x in (v if isinstance(v, list) else [v]))
            for k, v in active.items())))
    items.append(("Verdict", esc(diff_verdict(diff))))
    body.append('<h2>Summary</h2>\n<dl class="summary">'
                + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"
                + f'<p class="muted">{esc(diff_rule(diff))}.</p>')
    if diff["codes"]:
        body.append("<h2>Codes</h2>")
        body.append(_table(
            ["Code", "Name", "Before", "Rate", "After", "Rate", "Change"],
            [[c["code"], c["name"], fmt_count(c["before"]), fmt_share(c["before_rate"]),
              fmt_count(c["after"]), fmt_share(c["after_rate"]), diff_change(c)]
             for c in diff["codes"]],
            numeric={0, 2, 3, 4, 5},
            caption="Rate: EDE options per 100 DNS responses of that side."))
    for key, title in (("zones", "Zones that changed"), ("resolvers", "Resolvers that changed")):
        notable = [e for e in diff[key] if e["notable"]]
        if not notable:
            continue
        body.append(f"<h2>{esc(title)}</h2>")
        if key == "zones":
            body.append(_table(["Code", "Zone", "Before", "After", "Change"],
                               [[e["code"], _mono(e["zone"]), fmt_count(e["before"]),
                                 fmt_count(e["after"]), diff_change(e)] for e in notable],
                               numeric={0, 2, 3}))
        else:
            body.append(_table(["Resolver", "Before", "After", "Change"],
                               [[_mono(e["resolver"]), fmt_count(e["before"]),
                                 fmt_count(e["after"]), diff_change(e)] for e in notable],
                               numeric={1, 2}))
    minor = minor_changes(diff)
    if minor:
        body.append(f"<h2>Smaller changes (under {diff['options']['min_change']} EDEs "
                    "apart)</h2>\n<ul>"
                    + "".join(f"<li>{_mono(what)} {esc(how)}</li>" for what, how in minor)
                    + "</ul>")
    out.write(_page("Extended DNS Errors diff", body))
