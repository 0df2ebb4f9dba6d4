"""Full-page screenshots of the HTML report in headless Chromium, compared with golden PNGs.

The reports of samples/all-codes.pcapng and samples/incident.pcap are shot at 1280 CSS px
(desktop) and 420 CSS px (phone) by ``devtools.Browser``, which pins the viewport, the
scale factor, the colour scheme and the fonts (DejaVu, from fonts-dejavu-core). The page
prints no clock or version, so the same code gives the same pixels.

The goldens in tests/golden/<sample>.<width>px.png are the screenshots reduced SCALE times
(each pixel the mean of a SCALE x SCALE block): small enough to commit, still showing every
line of text, rule and chart. A test fails when more than MAX_SHARE of the reduced pixels
differ by more than PIXEL_DIFF in a channel; the screenshot, its reduction and a map of the
differences are then left in the test's tmp_path. Measured, reduced by 4: two runs with
fresh profiles give identical images; text hinted differently (none instead of slight, or
subpixel instead of grey-scale antialiasing) changes at most 0.011% of the pixels by more
than 32; moving the legend's entries 3 px closer changes 0.2% to 0.36%, a different page
width or heading margin 5% to 20%. After a deliberate change, regenerate them and look at
the new images:

    UPDATE_GOLDEN=1 python3 -m pytest tests/test_html_screenshots.py -q

Skipped when Chromium or DejaVu is missing, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from devtools import DEJAVU, Browser
from PIL import Image, ImageChops
from test_html_browser import chromium

import analyzer
from analyzer import render, reports

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

SAMPLES = ["all-codes.pcapng", "incident.pcap"]
WIDTHS = {"desktop": 1280, "phone": 420}
SCALE = 4
PIXEL_DIFF = 32  # of 255, in the reduced image: antialiasing stays below, moved text does not
MAX_SHARE = 0.0005  # 0.05%: 4x the worst antialiasing difference measured, 1/4 of a small move


def difference(actual: Image.Image, golden: Image.Image) -> tuple[float, Image.Image]:
    """Return the share of pixels that differ by more than PIXEL_DIFF, and their map.

    Images of different sizes are compared over the larger one: rows or columns that only
    one of them has count as different.
    """
    size = (max(actual.width, golden.width), max(actual.height, golden.height))

    def padded(image: Image.Image) -> Image.Image:
        canvas = Image.new("RGB", size, (255, 0, 255))
        canvas.paste(image.convert("RGB"), (0, 0))
        return canvas

    red, green, blue = ImageChops.difference(padded(actual), padded(golden)).split()
    largest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    changed = largest.point(lambda v: 255 if v > PIXEL_DIFF else 0)
    share = changed.histogram()[255] / (size[0] * size[1])
    return share, changed


def report_page(sample: str, folder: Path, css: tuple[str, str] | None = None) -> Path:
    """Write the HTML report of samples/``sample`` to ``folder``, optionally with a CSS edit."""
    report = reports.build_report(analyzer.scan(f"samples/{sample}"))
    out = io.StringIO()
    render.render(report, "html", out)
    text = out.getvalue()
    if css:
        assert css[0] in text, f"{css[0]!r} is not in the page's style any more"
        text = text.replace(*css)
    page = folder / "report.html"
    page.write_text(text, encoding="utf-8")
    return page


def screenshot(browser: Browser, page: Path, width: int) -> Image.Image:
    return Image.open(io.BytesIO(browser.screenshot(page, width))).convert("RGB")


def golden_path(sample: str, width: int) -> Path:
    return GOLDEN / f"{sample.rsplit('.', 1)[0]}.{width}px.png"


def require_dejavu() -> None:
    if not DEJAVU.is_dir():
        message = f"the screenshots are taken with DejaVu fonts: {DEJAVU} is missing " \
                  "(apt-get install fonts-dejavu-core)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(autouse=True)
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    # the page names the capture as given: samples/..., relative to the repository
    monkeypatch.chdir(REPO)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    executable = chromium()
    require_dejavu()
    started = Browser(executable, tmp_path_factory.mktemp("chromium"))
    yield started
    started.close()


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
@pytest.mark.parametrize("sample", SAMPLES)
def test_report_matches_its_golden_screenshot(browser: Browser, sample: str, width: int,
                                              tmp_path: Path) -> None:
    shot = screenshot(browser, report_page(sample, tmp_path), width)
    reduced = shot.reduce(SCALE)
    golden = golden_path(sample, width)
    if UPDATE:
        reduced.save(golden, optimize=True)
        return
    assert golden.exists(), f"{golden} missing; run UPDATE_GOLDEN=1 python3 -m pytest {__file__}"
    share, changed = difference(reduced, Image.open(golden))
    if share > MAX_SHARE:
        shot.save(tmp_path / "screenshot.png")
        reduced.save(tmp_path / "reduced.png")
        changed.save(tmp_path / "changed.png")
        pytest.fail(f"{sample} at {width} px: {share:.3%} of the pixels differ from "
                    f"{golden.name} (at most {MAX_SHARE:.3%} may; sizes {reduced.size} and "
                    f"{Image.open(golden).size}). Screenshot, reduced.png and changed.png are "
                    f"in {tmp_path}; if the change is meant, regenerate: UPDATE_GOLDEN=1 "
                    f"python3 -m pytest {__file__}")


# --- the tolerance: loose enough for another machine's text, tight enough for layout --------

@pytest.mark.skipif(UPDATE, reason="compares with the goldens being written")
def test_differently_hinted_text_stays_within_the_tolerance(tmp_path: Path) -> None:
    executable = chromium()
    require_dejavu()
    unhinted = Browser(executable, tmp_path / "chromium", hintstyle="hintnone")
    try:
        shot = screenshot(unhinted, report_page("incident.pcap", tmp_path), WIDTHS["phone"])
    finally:
        unhinted.close()
    share, _ = difference(shot.reduce(SCALE), Image.open(golden_path("incident.pcap", 420)))
    assert 0 < share <= MAX_SHARE / 2  # it does differ, by well under the bound


@pytest.mark.skipif(UPDATE, reason="compares with the goldens being written")
def test_a_small_layout_change_exceeds_the_tolerance(browser: Browser, tmp_path: Path) -> None:
    # the legend's entries 3 px closer together: one element of the page moves
    page = report_page("all-codes.pcapng", tmp_path, ("gap: .2rem 1rem;", "gap: .2rem .8rem;"))
    share, _ = difference(screenshot(browser, page, WIDTHS["desktop"]).reduce(SCALE),
                          Image.open(golden_path("all-codes.pcapng", 1280)))
    assert share > 2 * MAX_SHARE


def test_difference_counts_moved_and_missing_pixels_not_faint_ones() -> None:
    base = Image.new("RGB", (100, 100), "white")
    faint = Image.new("RGB", (100, 100), (255 - PIXEL_DIFF, 255, 255))
    assert difference(faint, base)[0] == 0
    line = base.copy()
    line.paste((0, 0, 0), (0, 10, 100, 11))  # a black rule across row 10
    moved = base.copy()
    moved.paste((0, 0, 0), (0, 12, 100, 13))
    assert difference(moved, line)[0] == pytest.approx(0.02)  # rows 10 and 12
    taller = Image.new("RGB", (100, 110), "white")
    assert difference(taller, base)[0] == pytest.approx(10 / 110)
