"""Nothing a packet carries can act on the analyst's terminal, browser or spreadsheet.

End to end: hostile query names and EXTRA-TEXTs are put on the wire, the capture goes
through ``scan``, ``build_report`` and every renderer (and the CLI), and the output is
checked rule by rule:

- text: no ANSI/OSC escape, other control character or bidirectional override reaches the
  terminal (they show as ``\\x1b``, ``\\u202e``...), and rich markup (``[bold]``,
  ``[link=...]``) and emoji codes print as typed, with or without colour;
- HTML: every tag and attribute is the renderer's own (no ``<script>`` but its one, no ``on*=``, no
  URL), and capture text comes back intact as text;
- CSV: no cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, TAB, CR);
- JSON: valid and ASCII for any bytes; invalid UTF-8 is escaped, never dropped;
- Markdown: capture text only inside code spans, tables keep their columns.

The property tests feed arbitrary bytes as EXTRA-TEXT and arbitrary label bytes as names.
"""

from __future__ import annotations

import csv
import html.parser
import io
import json
import re
import struct
from pathlib import Path

import pytest
from captures import QR, T0, Rec, opt_rr, pcap, udp
from captures import ede_option as ede
from captures import frame as link_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.pipeline import scan
from analyzer.render import REPORT_FORMATS, render, write_frame
from analyzer.reports import build_report

# EXTRA-TEXTs an attacker would send: each aims at one consumer of the report.
HOSTILE_TEXTS: list[bytes] = [
    b"\x1b[31mred\x1b[0m \x1b[2J\x1b[H cleared",                   # SGR, erase screen, home
    b"\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",     # OSC 8 hyperlink
    b"\x1b]0;owned\x07 title",                                     # OSC window title + BEL
    "\u009b31m C1 CSI \u0085NEL".encode(),                         # C1 controls, as UTF-8
    b"back\x08\x08space\rcarriage\nnewline\x00nul\x7fdel",
    "abc\u202etxt.exe \u2066iso\u2069 \u200fRLM \u061cALM \u2028LS".encode(),
    b"[bold red]markup[/] [link=https://evil.example]x[/link] :fire: \\[escaped]",
    b"<script>alert(1)</script><img src=x onerror=alert(2)>\"'><svg onload=alert(3)>",
    b"</code></td></table><!-- &amp; ]]>",
    b"=HYPERLINK(\"https://evil.example\",\"y\")",
    b"+1+1", b"-2+3", b"@SUM(A1:A2)", b"\tTAB", b"\rCR",
    b"pipe | back`tick [link](https://evil.example) *emph* _u_",
    b"\xff\xfe not utf-8 \xc0\xaf \xed\xa0\x80",
]
# Query names: label bytes outside printable ASCII are shown as \DDD by the decoder, so
# only printable characters get through as themselves; these are the dangerous ones.
HOSTILE_LABELS: list[bytes] = [
    b"<script>alert(1)</script>", b"[bold]b[/bold]", b"=cmd|'/C calc'!A0", b"+x", b"@x",
    b"-x", b"pipe|tick`", b"\x1b[31mred", "\u202eabc".encode(), b"[link=https://e]x[/link]",
]

# What must never reach a terminal: C0 controls but newline, DEL, C1, bidi and invisible
# format characters (the set analyzer.render.safe_text neutralises).
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
                    "\u2066-\u2069\ufeff]")
SGR = re.compile("\x1b\\[[0-9;]*m")  # rich's own colours, with --color


def name(*labels: bytes) -> bytes:
    """Return labels + example.com in wire format."""
    return b"".join(bytes([len(x)]) + x for x in (*labels, b"example", b"com")) + b"\x00"


def response(qname: bytes, edes: list[tuple[int, bytes]], dns_id: int = 1) -> bytes:
    """Return a SERVFAIL response to ``qname`` A carrying one EDE option per (code, text)."""
    question = qname + struct.pack("!HH", 1, 1)
    opt = opt_rr(*(ede(code, t) for code, t in edes))
    return struct.pack("!6H", dns_id, QR | 0x0100 | 0x0080 | 2, 1, 0, 0, 1) + question + opt


def capture(pairs: list[tuple[bytes, list[tuple[int, bytes]]]]) -> bytes:
    frames = [link_frame(udp(response(q, t, dns_id=i))) for i, (q, t) in enumerate(pairs)]
    return pcap([Rec(T0 + i * 10**9, f) for i, f in enumerate(frames)])


# Text i goes with INFO-CODE i, so that the report shows each (it lists the most frequent
# EXTRA-TEXT of every code), once alone and once in a response carrying all of them.
HOSTILE_EDES = list(enumerate(HOSTILE_TEXTS))
HOSTILE_CAPTURE = capture([(name(label), [edes]) for label, edes in
                           zip(HOSTILE_LABELS * 2, HOSTILE_EDES, strict=False)]
                          + [(name(b"www"), HOSTILE_EDES)])


@pytest.fixture(scope="module")
def hostile() -> dict:
    result = scan([io.BytesIO(HOSTILE_CAPTURE)])
    assert result.ede_options == 2 * len(HOSTILE_TEXTS)
    return build_report(result, top=50)


def rendered(report: dict, fmt: str, **kw: object) -> str:
    out = io.StringIO()
    render(report, fmt, out, **kw)  # type: ignore[arg-type]
    return out.getvalue()


def shown(text: bytes) -> str:
    """Return how the decoder keeps EXTRA-TEXT: UTF-8, invalid bytes as \\xNN escapes."""
    return text.decode("utf-8", "backslashreplace")


# --- text ----------------------------------------------------------------------------------

@pytest.mark.parametrize("color", [False, True], ids=["plain", "color"])
def test_text_lets_no_control_or_bidi_character_through(hostile: dict, color: bool) -> None:
    out = rendered(hostile, "text", width=400, color=color)
    bare = SGR.sub("", out) if color else out
    assert not UNSAFE.search(bare), repr(UNSAFE.search(bare))
    # ... they are shown, visibly
    for visible in ("\\x1b[31mred", "\\x1b]8;;https://evil.example/", "\\x07", "\\x9b31m",
                    "\\x08", "\\x0dcarriage", "\\x0anewline", "\\x00nul", "\\u202e",
                    "\\u2066", "\\u200f", "\\u061c", "\\u2028", "\\x85"):
        assert visible in bare, visible


@pytest.mark.parametrize("color", [False, True], ids=["plain", "color"])
def test_text_prints_rich_markup_as_typed(hostile: dict, color: bool) -> None:
    out = SGR.sub("", rendered(hostile, "text", width=400, color=color))
    for literal in ("[bold red]markup[/]", "[link=https://evil.example]x[/link]",
                    "\\[escaped]", "[bold]b[/bold].example.com",
                    "[link=https://e]x[/link].example.com"):
        assert literal in out, literal
    assert "\x1b]8;" not in out  # no hyperlink from [link=...]


def test_text_prints_emoji_codes_as_typed(hostile: dict) -> None:
    out = rendered(hostile, "text", width=400)
    assert "\U0001f525" not in out
    assert "markup[/] [link=https://evil.example]x[/link] :fire: " in out


def test_text_qnames_keep_their_escapes_visible(hostile: dict) -> None:
    out = rendered(hostile, "text", width=400)
    assert "\\027[31mred.example.com" in out  # ESC in a label: \DDD from the decoder
    assert "\\226\\128\\174abc.example.com" in out  # U+202E's UTF-8 bytes in a label


# --- HTML ----------------------------------------------------------------------------------

ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "dl",
                "dt", "dd", "table", "caption", "thead", "tbody", "tr", "th", "td", "code",
                "span", "strong", "em", "ol", "li", "div", "svg", "text", "rect", "line",
                "g", "path",
                # the interactive page: contents, legend, time chart, its one script
                "nav", "a", "ul", "label", "input", "polyline", "script"}
ALLOWED_ATTRS = {"lang", "charset", "http-equiv", "content", "name", "class", "viewbox",
                 "width", "height", "role", "aria-label", "x", "y", "x1", "y1", "x2", "y2",
                 "text-anchor", "fill", "d",
                 "id", "href", "type", "checked", "hidden", "style", "stroke", "points",
                 "vector-effect", "preserveaspectratio", "data-code", "data-start",
                 "data-step", "data-buckets", "data-peak", "data-left", "data-plot-width"}


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.update(a for a, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_has_only_its_own_tags_and_attributes(hostile: dict) -> None:
    out = rendered(hostile, "html")
    parser = _Tags()
    parser.feed(out)
    assert parser.tags <= ALLOWED_TAGS, parser.tags - ALLOWED_TAGS
    assert parser.attrs <= ALLOWED_ATTRS, parser.attrs - ALLOWED_ATTRS
    from analyzer.render import interactive

    assert not [a for a in parser.attrs if a.startswith("on")]
    assert re.findall(r"<script>(.*?)</script>", out, re.S) == [interactive.SCRIPT]
    assert out.lower().count("<script") == 1  # the renderer's own, no other
    assert "<img" not in out and "<svg onload" not in out
    assert "Content-Security-Policy" in out and "default-src 'none'" in out


def test_html_shows_capture_text_as_text(hostile: dict) -> None:
    out = rendered(hostile, "html")
    parser = _Tags()
    parser.feed(out)
    text = "".join(parser.text)
    assert not UNSAFE.search(text)
    # what the analyst reads in the browser is the EXTRA-TEXT (controls made visible)
    assert "<script>alert(1)</script><img src=x onerror=alert(2)>" in text
    assert "</code></td></table><!-- &amp; ]]>" in text
    assert "<script>alert\\(1\\)</script>.example.com" in text  # \( from the decoder


# --- CSV -----------------------------------------------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _formula_cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row
            if cell.startswith(FORMULA_START) and not _is_number(cell)]


def test_report_csv_has_no_formula_cell(hostile: dict) -> None:
    out = rendered(hostile, "csv")
    assert not _formula_cells(out)
    cells = {cell for row in csv.reader(io.StringIO(out)) for cell in row}
    assert "'=HYPERLINK(\"https://evil.example\",\"y\")" in cells or any(
        c.startswith("'=HYPERLINK") for c in cells)


@pytest.mark.parametrize("all_responses", [False, True], ids=["ede", "responses"])
def test_extract_csv_has_no_formula_cell(all_responses: bool) -> None:
    result = scan([io.BytesIO(HOSTILE_CAPTURE)], all_responses=all_responses)
    frame = result.responses if all_responses else result.ede
    out = io.StringIO()
    write_frame(frame, "csv", out)
    assert not _formula_cells(out.getvalue())
    if not all_responses:
        texts = [row["extra_text"] for row in csv.DictReader(io.StringIO(out.getvalue()))]
        assert "'+1+1" in texts and "'@SUM(A1:A2)" in texts and "'\tTAB" in texts


# --- JSON ----------------------------------------------------------------------------------

def test_json_report_is_valid_ascii_and_keeps_invalid_utf8_escaped(hostile: dict) -> None:
    out = rendered(hostile, "json")
    assert out.isascii()
    report = json.loads(out)
    texts = {t["text"] for c in report["codes"] for t in c["extra_texts"]}
    assert shown(b"\xff\xfe not utf-8 \xc0\xaf \xed\xa0\x80") in texts
    assert "\\xff\\xfe not utf-8" in shown(b"\xff\xfe not utf-8")  # escaped, not dropped
    assert report["problems"]["ede-text-not-utf8"] == 2


def test_jsonl_rows_keep_every_text_exactly() -> None:
    result = scan([io.BytesIO(HOSTILE_CAPTURE)])
    out = io.StringIO()
    write_frame(result.ede, "jsonl", out)
    assert out.getvalue().isascii()
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    got = [(r["extra_text"], r["extra_text_utf8_valid"]) for r in rows]
    expected = [(shown(t), _valid(t)) for t in HOSTILE_TEXTS] * 2
    assert sorted(got) == sorted(expected)


def _valid(text: bytes) -> bool:
    try:
        text.decode()
    except UnicodeDecodeError:
        return False
    return True


# --- Markdown --------------------------------------------------------------------------------

def test_markdown_tables_keep_their_columns_and_text_stays_in_code_spans(hostile: dict) -> None:
    out = rendered(hostile, "markdown")
    assert not UNSAFE.search(out)
    width = None  # cells in the current table's header row
    tables = 0
    for line in out.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        cells = len(re.split(r"(?<!\\)\|", line)) - 2
        if width is None:
            width, tables = cells, tables + 1
        assert cells == width, line
    assert tables >= 4
    # outside code spans there is no HTML, link or emphasis from the capture
    outside = re.sub(r"`[^`]*`", "", out)
    for bad in ("<script", "<img", "[link](", "*emph*", "=HYPERLINK"):
        assert bad not in outside, bad


# --- the CLI: what reaches stdout and stderr -------------------------------------------------

def test_cli_escapes_a_hostile_capture_path_on_stderr_and_stdout(tmp_path: Path) -> None:
    evil = tmp_path / "evil\x1b[31m\u202e.pcap"
    evil.write_bytes(b"not a capture at all")
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(evil), str(tmp_path / "good.pcap")])
    assert result.exit_code == 1
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr
    assert "\\x1b[31m\\u202e.pcap" in result.stderr


@pytest.mark.parametrize("fmt", REPORT_FORMATS)
def test_cli_output_of_a_hostile_capture_is_inert(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "hostile.pcap"
    path.write_bytes(HOSTILE_CAPTURE)
    result = CliRunner().invoke(app, ["report", str(path), "--format", fmt])
    assert result.exit_code == 0, result.output
    if fmt in ("text", "markdown", "html"):
        assert not UNSAFE.search(result.stdout)
    if fmt == "json":
        assert result.stdout.isascii()
        json.loads(result.stdout)
    if fmt == "csv":
        assert not _formula_cells(result.stdout)
    assert not UNSAFE.search(result.stderr)


# --- properties: any bytes ---------------------------------------------------------------------

printable_label = st.binary(min_size=1, max_size=20).filter(lambda b: b"." not in b)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.binary(max_size=80), min_size=1, max_size=3),
       labels=st.lists(printable_label, min_size=1, max_size=3))
def test_any_bytes_in_names_and_texts_render_safely(texts: list[bytes],
                                                    labels: list[bytes]) -> None:
    data = capture([(name(*labels), [(17, t) for t in texts])])
    result = scan([io.BytesIO(data)])
    assert result.ede_options == len(texts)
    # never dropped: each text is there, invalid UTF-8 as escapes (one final NUL is
    # padding, RFC 8914 §2)
    kept = [t[:-1] if t.endswith(b"\x00") else t for t in texts]
    assert result.ede.extra_text.tolist() == [shown(t) for t in kept]
    report = build_report(result)
    for fmt in REPORT_FORMATS:
        out = rendered(report, fmt, width=200, color=fmt == "text")
        if fmt == "json":
            assert out.isascii()
            json.loads(out)
        elif fmt == "csv":
            assert not _formula_cells(out)
        else:
            assert not UNSAFE.search(SGR.sub("", out)), (fmt, UNSAFE.search(SGR.sub("", out)))
        if fmt == "html":
            parser = _Tags()
            parser.feed(out)
            assert parser.tags <= ALLOWED_TAGS and parser.attrs <= ALLOWED_ATTRS
    out = io.StringIO()
    write_frame(result.ede, "jsonl", out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["extra_text"] for r in rows] == [shown(t) for t in kept]
