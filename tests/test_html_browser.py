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
    # the browser parsed no element from capture data: no script, no img
    assert "<script" not in dom.lower()
    assert "<img" not in dom.lower()
    assert not re.search(r"<[^>]*data-pwned", dom)  # the script did not run
    # it is shown as text instead
    assert html.escape(SCRIPT_QNAME, quote=False) in dom
    assert html.escape("<script>document.body.setAttribute(", quote=False) in dom
    title = re.search(r"<title>(.*?)</title>", dom)
    assert title and title.group(1) == "Extended DNS Errors report"


def test_content_security_policy_survives_parsing(dom: str) -> None:
    assert "default-src 'none'; style-src 'unsafe-inline'" in dom
