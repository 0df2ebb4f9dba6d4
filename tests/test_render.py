"""Tests for analyzer.render: every format renders every report, capture data stays inert."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from test_reports import SEC, T0, ede_row, make_scan, outage_rows

from analyzer import frame, render, reports
from analyzer.render import csvout, markdown, sparkline, svg

# Capture data an attacker controls: query names and EXTRA-TEXT that try to act on a
# terminal (ANSI, bidi override), on rich (markup, emoji codes), on a spreadsheet
# (formulas), on Markdown (pipes, backticks, links) and on a browser (<script>).
HOSTILE_TEXTS = [
    "<script>alert(1)</script>",
    "\x1b[31mred\x1b[0m \x9b31m",
    "[bold red]markup[/] :fire:",
    "=HYPERLINK(\"http://x\",\"y\")",
    "+1-2", "-cmd", "@SUM(A1)", "\tTAB", "\rCR",
    "abc\u202etxt.exe \u2066iso\u2069",
    "pipe | back`tick [link](http://x) *emph*",
    "line\nbreak\x00nul",
]
HOSTILE_NAMES = ["<script>alert(1)</script>.example.com", "\\027[31mred.example.com",
                 "=cmd.example.com", "[b]:fire:[/b].example.com", "abc\u202eexe.example.org"]
ESC_OR_BIDI = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def hostile_report() -> dict:
    rows = outage_rows(n_background=120, burst=60)
    n = len(rows)
    for i, t in enumerate(HOSTILE_TEXTS):
        n += 1
        rows.append(ede_row(n, ts=T0 + i * SEC, code=17, text=t,
                            qname=HOSTILE_NAMES[i % len(HOSTILE_NAMES)]))
    return reports.build_report(make_scan(rows), top=12)


@pytest.fixture(scope="module")
def report() -> dict:
    return hostile_report()


def rendered(report: dict, fmt: str, **kw: object) -> str:
    out = io.StringIO()
    render.render(report, fmt, out, **kw)  # type: ignore[arg-type]
    return out.getvalue()


# --- safe_text -----------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "shown"), [
    ("plain.example.com", "plain.example.com"),
    ("\x1b[31mred", "\\x1b[31mred"),
    ("a\x00b\x7fc\x9bd", "a\\x00b\\x7fc\\x9bd"),
    ("tab\tnl\ncr\r", "tab\\x09nl\\x0acr\\x0d"),
    ("abc\u202etxt", "abc\\u202etxt"),
    ("\u2066iso\u2069 \u200f \ufeff", "\\u2066iso\\u2069 \\u200f \\ufeff"),
    ("ünïcödé 例え", "ünïcödé 例え"),
    (None, ""),
    (42, "42"),
])
def test_safe_text(raw: object, shown: str) -> None:
    assert render.safe_text(raw) == shown


def test_safe_text_escapes_rich_markup() -> None:
    import rich.console

    console = rich.console.Console(file=io.StringIO(), width=80, emoji=False)
    console.print(render.safe_text("[bold]x[/bold] [link=http://x]y[/link]", markup=True))
    assert console.file.getvalue().strip() == "[bold]x[/bold] [link=http://x]y[/link]"


# --- every format renders --------------------------------------------------------------------

@pytest.mark.parametrize("fmt", render.REPORT_FORMATS)
def test_every_format_renders_a_full_and_an_empty_report(report: dict, fmt: str) -> None:
    assert rendered(report, fmt)
    empty = reports.build_report(make_scan([], responses=0, accounting={"not-dns-port": 2}))
    assert rendered(empty, fmt)


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown report format"):
        rendered({}, "yaml")


# --- text ----------------------------------------------------------------------------------

def test_text_fits_80_columns_and_is_inert(report: dict) -> None:
    out = rendered(report, "text")
    for line in out.splitlines():
        assert len(line) <= 80, line
        assert line == line.rstrip()
    assert not ESC_OR_BIDI.search(out)
    assert "[b]:fire:[/b].example.com" in out  # markup printed, not applied; no emoji
    assert "\\u202eexe.example.org" in out


def test_text_sections(report: dict) -> None:
    out = rendered(report, "text")
    for heading in ("Codes", "Incidents (", "What to do", "Affected zones",
                    "Affected domains", "Resolvers", "Timeline"):
        assert heading in out
    assert "shop.example.com" in out
    assert "Signature Expired" in out


def test_text_with_colour_still_escapes_capture_data(report: dict) -> None:
    out = rendered(report, "text", color=True, width=100)
    assert "\x1b[" in out  # our own styling
    assert "\x1b[31mred" not in out
    assert "\u202e" not in out


def test_text_no_ede() -> None:
    empty = reports.build_report(make_scan([], responses=5))
    assert "No Extended DNS Errors" in rendered(empty, "text")


def test_sparkline() -> None:
    assert sparkline([0, 1, 4, 8]) == "·▁▄█"
    assert sparkline([0, 0]) == "··"
    assert sparkline([]) == ""


def text_timeline(report: dict, width: int = 80) -> list[str]:
    """Return the text report's timeline section, heading first."""
    out = rendered(report, "text", width=width)
    return out[out.index("Timeline:"):].splitlines()


def spark_of(line: str) -> str:
    return line[:line.rindex(" max ")].rsplit(" ", 1)[-1]


def test_text_timeline_keeps_the_incidents_buckets_in_a_window() -> None:
    # 600 s at the chosen 5 s buckets: 120 buckets, a 60 s incident of code 7 at +300 s
    built = reports.build_report(make_scan(outage_rows()))
    ts = built["timeseries"]
    assert (ts["interval"], ts["buckets"]) == ("5s", 120)
    assert [(i["code"], i["start"], i["end"]) for i in built["incidents"]] == [
        (7, "2024-05-01T12:05:00Z", "2024-05-01T12:06:00Z")]
    lines = text_timeline(built)
    assert all(len(line) <= 80 for line in lines)
    # the incidents' own 5s buckets, 40 of them centred on the 12 incident buckets (60..71)
    assert lines[0] == "Timeline: EDEs per 5s from 12:03:50 to 12:07:10 UTC"
    assert "The incidents' 5s buckets: 40 of 120, around the incidents" in " ".join(lines)
    assert "--width 160 shows every bucket" in " ".join(lines)
    rows = {int(line[1:6]): line for line in lines if " max " in line}
    counts7 = next(s["counts"] for s in ts["series"] if s["code"] == 7)
    assert spark_of(rows[7]) == sparkline(counts7[46:86]) == "·" * 14 + "█" * 12 + "·" * 14
    assert rows[7].startswith("!") and rows[7].endswith(" max 10")
    assert rows[3].endswith(" max 5")  # one EDE a second, 5 a bucket: not regrouped
    carets = next(line for line in lines if line.strip() and set(line.strip()) == {"^"})
    assert carets.index("^") == rows[7].index("█") and carets.count("^") == 12


def test_text_timeline_shows_every_bucket_when_the_width_allows() -> None:
    built = reports.build_report(make_scan(outage_rows()))
    lines = text_timeline(built, width=160)
    assert lines[0] == "Timeline: EDEs per 5s from 12:00:00 to 12:10:00 UTC"
    assert lines[1] == "The incidents' 5s buckets, every one."
    for s in built["timeseries"]["series"]:
        row = next(line for line in lines if line[1:6] == f"{s['code']:>5}")
        assert spark_of(row) == sparkline(s["counts"])


def test_text_timeline_without_incidents_says_how_it_regroups() -> None:
    rows = [ede_row(n, ts=T0 + n * SEC, code=3) for n in range(600)]
    built = reports.build_report(make_scan(rows))
    assert built["incidents"] == [] and built["timeseries"]["buckets"] == 120
    lines = text_timeline(built)
    assert lines[0] == "Timeline: EDEs per 15s from 12:00:00 to 12:10:00 UTC"
    said = " ".join(lines)
    assert "One column is 3 report buckets of 5s, to fit 80 columns" in said
    row = next(line for line in lines if " max " in line)
    assert spark_of(row) == "█" * 40 and row.endswith(" max 15")


# --- json ----------------------------------------------------------------------------------

def test_markdown_timeline_uses_the_incidents_buckets(report: dict) -> None:
    out = io.StringIO()
    markdown.write_report(report, out)
    body = out.getvalue().split("## Timeline", 1)[1].split("```text\n", 1)[1].split("```")[0]
    rows = body.splitlines()
    ts = report["timeseries"]
    assert len(rows) == len(ts["series"])
    for row, series in zip(rows, ts["series"], strict=True):
        spark = row.split("  max ")[0][-ts["buckets"]:]
        assert spark == sparkline(series["counts"])
        assert row.endswith(f"total {series['total']:,}")
    assert f"per {ts['interval']} bucket (the incidents' buckets)" in out.getvalue()


def test_json_round_trips_and_is_ascii(report: dict) -> None:
    out = rendered(report, "json")
    assert out.isascii()
    assert json.loads(out) == report


# --- csv -----------------------------------------------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def test_report_csv_is_one_table_with_a_section_column(report: dict) -> None:
    rows = list(csv.DictReader(io.StringIO(rendered(report, "csv"))))
    assert list(rows[0]) == list(csvout.CSV_COLUMNS)
    sections = {r["section"] for r in rows}
    assert sections >= {"summary", "captures", "accounting", "codes", "extra_texts",
                        "domains", "zones", "resolvers", "timeseries", "incidents"}
    codes = [r for r in rows if r["section"] == "codes"]
    assert [int(r["code"]) for r in codes] == [c["code"] for c in report["codes"]]
    assert sum(int(r["count"]) for r in rows if r["section"] == "accounting") == \
        report["summary"]["packets"]
    series = [r for r in rows if r["section"] == "timeseries" and r["code"] == "7"]
    assert len(series) == report["timeseries"]["buckets"]


def test_report_csv_neutralises_formulas(report: dict) -> None:
    rows = list(csv.reader(io.StringIO(rendered(report, "csv"), newline="")))
    cells = [cell for row in rows for cell in row]
    for cell in cells:
        assert not cell.startswith(FORMULA_START), repr(cell)
    assert "'=cmd.example.com" in cells
    assert "'=HYPERLINK(\"http://x\",\"y\")" in cells


def test_report_csv_carries_advice_clients_software_and_pairs() -> None:
    from test_reports import _bare, _refusals

    from tests.captures import QR, RA, RD, pcap, records, scan_bytes

    names = [f"h{i}.shop.example.com" for i in range(12)]
    dual = [f for pair in zip(_bare("198.51.100.9", names, udp_size=512),
                              _bare("2001:db8::53", names, udp_size=512), strict=True)
            for f in pair]
    clients = ["192.0.2.77"] * 40 + ["192.0.2.5", "192.0.2.6"]
    built = reports.build_report(scan_bytes(
        _refusals(18, QR | RD | RA, clients), _refusals(20, QR | RA, ["192.0.2.1"] * 4),
        pcap(records(dual))))
    rows = list(csv.DictReader(io.StringIO(rendered(built, "csv"), newline="")))
    by = {}
    for r in rows:
        by.setdefault(r["section"], []).append(r)
    advice = {int(r["code"]): r["detail"] for r in by["traffic_advice"]}
    assert advice[20].startswith("All were answers to queries sent with RD=0")
    assert advice[18].startswith("40 of the 42 at 198.51.100.53 went to one client")
    assert [(r["code"], r["resolver"], r["value"], r["key"], r["count"])
            for r in by["top_clients"]] == [
        ("18", "198.51.100.53", "42", "192.0.2.77", "40"),
        ("18", "198.51.100.53", "42", "192.0.2.5", "1"),
        ("18", "198.51.100.53", "42", "192.0.2.6", "1")]
    software = {r["resolver"]: (r["software_basis"], r["software_confidence"],
                                r["software_candidates"]) for r in by["resolvers"]}
    assert software["198.51.100.9"] == ("behaviour", "medium", "powerdns")
    assert software["198.51.100.53"] == ("unknown", "", "")
    assert [(r["resolver"], r["key"], r["count"], r["value"]) for r in by["same_instance"]] \
        == [("198.51.100.9", "2001:db8::53", "12", "12"),
            ("2001:db8::53", "198.51.100.9", "12", "12")]
    assert {r["value"] for r in by["zones"]} <= {"text", "signer", "soa", "referral",
                                                  "boundary", "qname"}
    # the JSON keys the CSV carries, each where docs/report-schema.md says
    assert len(by["traffic_advice"]) == sum(len(c["traffic_advice"]) for c in built["codes"])


@pytest.mark.parametrize(("value", "safe"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@x", "'@x"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("x=1", "x=1"), ("", ""), (-1, -1), (3.5, 3.5), (None, None),
])
def test_neutralise(value: object, safe: object) -> None:
    assert csvout.neutralise(value) == safe
    if isinstance(value, str):
        assert bool(csvout.FORMULA_PATTERN.match(value)) == (value != safe)


def hostile_frame():
    rows = [ede_row(i + 1, ts=T0 + i * SEC, code=17, text=t,
                    qname=HOSTILE_NAMES[i % len(HOSTILE_NAMES)])
            for i, t in enumerate(HOSTILE_TEXTS)]
    rows.append(ede_row(99, ts=T0 + 1500, code=6, text=None, qname="plain.example"))
    return frame.build_ede(rows)


def test_extract_csv_neutralises_formulas_and_keeps_types() -> None:
    df = hostile_frame()
    out = io.StringIO()
    render.write_frame(df, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert list(rows[0]) == list(df.columns)
    assert len(rows) == len(df)
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(FORMULA_START), repr(cell)
    by_frame = {r["frame_number"]: r for r in rows}
    assert by_frame["4"]["extra_text"] == "'=HYPERLINK(\"http://x\",\"y\")"
    assert by_frame["3"]["qname"] == "'=cmd.example.com"
    assert by_frame["9"]["extra_text"] == "'\rCR"  # a bare CR is quoted, not a row end
    assert by_frame["1"]["ts"] == "2024-05-01T12:00:00.000000000Z"  # ns resolution kept
    assert by_frame["1"]["latency"] == "0.002"
    assert by_frame["99"]["extra_text"] == ""


def test_extract_jsonl_round_trips_text() -> None:
    df = hostile_frame()
    out = io.StringIO()
    render.write_frame(df, "jsonl", out)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(df)
    records = [json.loads(line) for line in lines]
    assert out.getvalue().isascii()
    texts = {r["frame_number"]: r["extra_text"] for r in records}
    assert texts[1] == HOSTILE_TEXTS[0]
    assert texts[4] == HOSTILE_TEXTS[3]  # JSON is data: not neutralised
    assert texts[99] is None
    assert records[0]["ts"].endswith("Z") and isinstance(records[0]["latency"], float)


def test_extract_parquet_round_trips(tmp_path) -> None:
    import pandas as pd

    df = hostile_frame()
    path = tmp_path / "x.parquet"
    with open(path, "wb") as out:
        render.write_frame(df, "parquet", out)
    back = pd.read_parquet(path)
    assert back["extra_text"].tolist()[:3] == df["extra_text"].tolist()[:3]
    assert str(back["ts"].dtype).startswith("datetime64")


def test_empty_frame_writes_header_only() -> None:
    out = io.StringIO()
    render.write_frame(frame.empty_ede(), "csv", out)
    assert out.getvalue() == ",".join(frame.EDE_COLUMNS) + "\r\n"
    out = io.StringIO()
    render.write_frame(frame.empty_ede(), "jsonl", out)
    assert out.getvalue() == ""


# --- markdown ------------------------------------------------------------------------------

def test_markdown_tables_keep_their_columns(report: dict) -> None:
    out = rendered(report, "markdown")
    table: list[str] = []
    for line in out.splitlines() + [""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            widths = {row.count("|") for row in table}
            assert len(widths) == 1, table
            table = []


def test_markdown_capture_text_only_in_code_spans(report: dict) -> None:
    out = rendered(report, "markdown")
    outside = re.sub(r"` [^`]* `|`[^`]*`", "", out)
    assert "<script>" not in outside
    assert "HYPERLINK" not in outside
    assert "<script>alert(1)</script>" in out
    assert not ESC_OR_BIDI.search(out)


@pytest.mark.parametrize(("value", "span"), [
    ("a.example", "`a.example`"),
    ("a`b", "`a\\x60b`"),
    (" lead", "`  lead `"),
    ("", ""),
    ("x|y", "`x\\x7cy`"),
])
def test_markdown_code_span(value: str, span: str) -> None:
    assert markdown.md(value) == span


# --- html ----------------------------------------------------------------------------------

def test_html_is_self_contained_and_escaped(report: dict) -> None:
    out = rendered(report, "html")
    assert out.startswith("<!DOCTYPE html>")
    from analyzer.render import interactive

    assert ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            f"style-src 'unsafe-inline'; script-src {interactive.script_hash()}\">") in out
    assert out.lower().count("<script") == 1  # the renderer's own, allowed by its hash
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert not re.search(r"\s(src|xlink:href|action|srcset|poster)\s*=", out, re.I)
    assert set(re.findall(r'\shref="([^"]*)"', out)) <= {
        f"#{m}" for m in re.findall(r'<h2 id="([^"]+)"', out)}  # links go to its sections
    assert "url(" not in out and "@import" not in out
    assert not ESC_OR_BIDI.search(out)
    assert out.count("<svg") == 3  # the bar chart, and the time chart with its plot
    assert 'class="incident"' in out


def test_svg_escapes_labels() -> None:
    chart = svg.bar_chart([("<b>&\"x\"</b>", 3)], title="t<")
    assert "<b>" not in chart
    assert "&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;" in chart
    series = svg.series_chart([0, 2, 5], title="<t>", fill="#000", start="<s>", end="e",
                              bucket_label="per 1s", highlights=[(1, 2)])
    assert series.count("<rect") == 3 and "&lt;s&gt;" in series


# --- real captures -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", render.REPORT_FORMATS)
def test_renders_a_scanned_sample(fmt: str) -> None:
    from pathlib import Path

    sample = Path(__file__).resolve().parent.parent / "samples" / "incident.pcap"
    if not sample.exists():
        pytest.skip("samples/incident.pcap not generated (python3 samples/make_samples.py)")
    from analyzer import pipeline

    report = reports.build_report(pipeline.scan([str(sample)]))
    out = rendered(report, fmt)
    assert "shop.example.com" in out
