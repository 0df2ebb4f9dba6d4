"""Open the HTML report in headless Chromium: the charts render and capture data stays text.

Skipped when Chromium is not installed, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import html
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_reports import SEC, T0, ede_row, make_scan, outage_rows

import analyzer
from analyzer import render, reports

SCRIPT_QNAME = "<script>document.title='pwned'</script>.example.com"
SCRIPT_TEXT = "<script>document.body.setAttribute('data-pwned','1')</script><img src=x>"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is required when CI=true but is not installed")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def dump_dom(browser: str, page: Path, profile: Path) -> str:
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def dom(tmp_path_factory: pytest.TempPathFactory) -> str:
    browser = chromium()
    rows = outage_rows(n_background=300, burst=80)
    n = len(rows)
    for i in range(6):
        n += 1
        rows.append(ede_row(n, ts=T0 + (10 + i) * SEC, code=15, qname=SCRIPT_QNAME,
                            text=SCRIPT_TEXT))
    report = reports.build_report(make_scan(rows), interval="10s")
    out = io.StringIO()
    render.render(report, "html", out)
    folder = tmp_path_factory.mktemp("html")
    page = folder / "report.html"
    page.write_text(out.getvalue(), encoding="utf-8")
    return dump_dom(browser, page, folder / "profile")


def test_charts_render_as_non_empty_svg(dom: str) -> None:
    charts = re.findall(r"<svg\b[^>]*>(.*?)</svg>", dom, re.S)
    assert len(charts) >= 2  # the code frequencies and at least one time series
    for chart in charts:
        assert re.search(r"<rect\b[^>]*\bwidth=\"(?!0[\".])", chart), "a chart without bars"
    assert 'class="incident"' in dom  # the outage is shaded on its time series


def test_script_in_capture_data_stays_inert_text(dom: str) -> None:
    # the browser parsed no element from capture data: no script but ours, no img
    from analyzer.render import interactive

    scripts = re.findall(r"<script>(.*?)</script>", dom, re.S)
    assert scripts == [interactive.SCRIPT]
    assert dom.lower().count("<script") == 1
    assert "<img" not in dom.lower()
    assert not re.search(r"<[^>]*data-pwned", dom)  # the script did not run
    # it is shown as text instead
    assert html.escape(SCRIPT_QNAME, quote=False) in dom
    assert html.escape("<script>document.body.setAttribute(", quote=False) in dom
    title = re.search(r"<title>(.*?)</title>", dom)
    assert title and title.group(1) == "Extended DNS Errors report"


def test_content_security_policy_survives_parsing(dom: str) -> None:
    from analyzer.render import interactive

    assert ("default-src 'none'; style-src 'unsafe-inline'; script-src "
            f"{interactive.script_hash()}") in dom
    assert 'class="js"' in dom  # our script ran: the policy allows it by its hash


# --- the interactive page, driven in Chromium ------------------------------------------------

# Runs after the page's own script, in a copy of the page whose policy also allows it:
# real mouse, keyboard and input events on the real page, results written into the DOM.
HARNESS = r"""
(function () {
  var out = {};
  function rows(table) {
    return Array.prototype.filter.call(table.tBodies[0].rows, function (r) {
      return !r.hidden;
    }).map(function (r) {
      return r.cells[0].textContent.trim() + "|" + r.cells[1].textContent.trim();
    });
  }
  var domains = document.querySelector("#affected-domains ~ .scroll table");
  out.domainsBefore = rows(domains);
  var heads = domains.tHead.rows[0].cells, edes = heads[3], qname = heads[1];
  qname.click();
  out.byNameAsc = rows(domains);
  out.byNameSort = qname.getAttribute("aria-sort");
  qname.click();
  out.byNameDesc = rows(domains);
  edes.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true}));
  out.byCountSort = edes.getAttribute("aria-sort");
  out.byCount = Array.prototype.map.call(domains.tBodies[0].rows, function (r) {
    return +r.cells[3].textContent.replace(/,/g, ""); });
  var box = domains.parentNode.previousElementSibling.previousElementSibling;  // its box
  box.value = "checkout";
  box.dispatchEvent(new Event("input", {bubbles: true}));
  out.filtered = rows(domains);
  box.value = "";
  box.dispatchEvent(new Event("input", {bubbles: true}));
  out.unfiltered = rows(domains).length;

  var chart = document.querySelector("svg.timechart"), plot = chart.querySelector("svg.plot");
  function ticks() {
    return Array.prototype.map.call(chart.querySelectorAll("g.xticks text"),
                                    function (t) { return t.textContent; });
  }
  out.viewStart = plot.getAttribute("viewBox");
  out.ticksStart = ticks();
  var box2 = plot.getBoundingClientRect(), y = box2.top + box2.height / 2;
  function mouse(type, fraction, target) {
    (target || plot).dispatchEvent(new MouseEvent(type, {bubbles: true, cancelable: true,
      clientX: box2.left + fraction * box2.width, clientY: y, button: 0}));
  }
  mouse("mousedown", 0.4);
  mouse("mousemove", 0.5, window);
  mouse("mouseup", 0.5, window);
  out.viewDrag = plot.getAttribute("viewBox");
  out.ticksDrag = ticks();
  plot.dispatchEvent(new WheelEvent("wheel", {bubbles: true, cancelable: true, deltaY: -100,
    clientX: box2.left + box2.width / 2, clientY: y}));
  out.viewWheel = plot.getAttribute("viewBox");
  plot.dispatchEvent(new MouseEvent("dblclick", {bubbles: true}));
  out.viewReset = plot.getAttribute("viewBox");
  var buttons = chart.parentNode.querySelectorAll(".zoom button");
  buttons[0].click();
  out.viewButton = plot.getAttribute("viewBox");
  var legendBox = chart.parentNode.querySelector("ul.legend input");
  legendBox.click();
  out.hiddenLine = plot.querySelector('polyline[data-code="' + legendBox.dataset.code + '"]')
    .style.display;
  var pre = document.createElement("pre");
  pre.id = "harness";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
"""


@pytest.fixture(scope="module")
def driven(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Return what HARNESS saw on the report of samples/incident.pcap."""
    import json

    browser = chromium()
    report = reports.build_report(analyzer.scan("samples/incident.pcap"))
    out = io.StringIO()
    render.render(report, "html", out)
    page = out.getvalue().replace("script-src 'sha256-", "script-src 'unsafe-inline' 'sha256-")
    # 'unsafe-inline' is ignored where a hash is listed: allow the harness by its hash too
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.sha256(HARNESS.encode()).digest()).decode()
    page = page.replace("script-src 'unsafe-inline' ", f"script-src 'sha256-{digest}' ")
    page = page.replace("</body>", f"<script>{HARNESS}</script>\n</body>")
    folder = tmp_path_factory.mktemp("driven")
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    dom = dump_dom(browser, path, folder / "profile")
    found = re.search(r'<pre id="harness">(.*?)</pre>', dom, re.S)
    assert found, "the harness did not run"
    return json.loads(html.unescape(found.group(1)))


def test_tables_sort_by_a_clicked_column(driven: dict) -> None:
    names = [r.split("|")[1] for r in driven["byNameAsc"]]
    assert names == sorted(names, key=str.lower) and driven["byNameSort"] == "ascending"
    assert [r.split("|")[1] for r in driven["byNameDesc"]] == names[::-1]
    assert driven["byCountSort"] == "descending"  # numbers sort largest first
    assert driven["byCount"] == sorted(driven["byCount"], reverse=True)
    assert driven["byCount"][0] == 31  # cdn.shop.example.com, code 7
    assert sorted(driven["byNameAsc"]) == sorted(driven["domainsBefore"])


def test_tables_filter_as_you_type(driven: dict) -> None:
    assert driven["filtered"] and all("checkout" in r for r in driven["filtered"])
    assert len(driven["filtered"]) < len(driven["domainsBefore"])
    assert driven["unfiltered"] == len(driven["domainsBefore"])


def test_time_chart_zooms_and_relabels_its_axis(driven: dict) -> None:
    def span(view: str) -> tuple[float, float]:
        x, _, w, _ = map(float, view.split())
        return x, w

    assert span(driven["viewStart"]) == (0, 120)  # 30 minutes in 15 s buckets
    x, w = span(driven["viewDrag"])
    assert abs(x - 48) < 1 and abs(w - 12) < 1  # 40% to 50% of the axis
    assert driven["ticksStart"][:2] == ["09:00", "09:05"]
    assert driven["ticksDrag"] != driven["ticksStart"]
    assert all(t.startswith("09:1") for t in driven["ticksDrag"])  # 09:12 to 09:15
    assert len(driven["ticksDrag"]) >= 3
    assert span(driven["viewWheel"])[1] < w  # the wheel zooms in further
    assert span(driven["viewReset"]) == (0, 120)  # double-click: the whole capture
    assert span(driven["viewButton"]) == (30, 60)  # "Zoom in" halves around the middle
    assert driven["hiddenLine"] == "none"  # the legend hides a code's line


def test_all_codes_share_one_time_axis_with_distinct_colours(tmp_path: Path) -> None:
    report = reports.build_report(analyzer.scan("samples/all-codes.pcapng"))
    out = io.StringIO()
    render.render(report, "html", out)
    page = out.getvalue()
    assert page.count('<svg class="chart timechart"') == 1
    lines = re.findall(r'<polyline class="line" data-code="(\d+)" stroke="([^"]+)"', page)
    assert len(lines) == len(report["codes"]) == 37
    assert len({colour for _, colour in lines}) == 37
    hits = re.findall(r'<rect class="hit"[^>]*><title>([^<]*)</title>', page)
    assert hits and all(" UTC (+" in t and " EDE" in t for t in hits)
    assert "2024-03-13 09:00:00 UTC (+1s): " in hits[0]
    toc = re.search(r'<nav class="toc".*?</nav>', page, re.S)
    assert toc and '<a href="#time-series">Time series</a>' in toc.group(0)
    assert '<h2 id="time-series">' in page
    # without JavaScript: the axis is labelled, the legend lists every code, names whole
    ticks = re.search(r'<g class="xticks">(.*?)</g>', page).group(1)
    assert re.findall(r">(\d\d:\d\d:\d\d)</text>", ticks)[:3] == ["09:00:00", "09:00:01",
                                                                     "09:00:02"]
    assert page.count("<li><label><input type=\"checkbox\" checked hidden") == 37
    assert "code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, " \
        "monospace;\n  font-size: .92em; white-space: nowrap; }" in page
