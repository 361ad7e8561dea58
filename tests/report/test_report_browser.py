"""The report in a real browser (headless Chromium over the DevTools protocol): no console error, every image
decoded, the case table sorts on a header click; a screenshot is kept (and copied to ``$NPCSEG_SCREENSHOT_DIR``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from report_browser import SKIP_REASON, Browser, find_chromium
from report_cases import NUM_CASES, case_id

from npcseg.report import ReportResult

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIRST_COLUMN = "Array.from(document.querySelectorAll('#cases tbody tr')).map(row => row.cells[0].textContent)"


def _click_header(browser: Browser, title: str) -> str:
    """Click the case table's header ``title``; returns its ``aria-sort`` afterwards."""
    script = (
        "(() => { const header = Array.from(document.querySelectorAll('#cases th'))"
        f".find(cell => cell.textContent === {title!r}); header.click(); return header.getAttribute('aria-sort'); }})()"
    )
    return str(browser.evaluate(script))


def test_report_opens_in_chromium_without_errors_and_sorts(
    crossvalidation_report: ReportResult, tmp_path: Path
) -> None:
    executable = find_chromium()
    if executable is None:
        pytest.skip(SKIP_REASON)
    pytest.importorskip("websocket", reason="websocket-client is not installed (a dev dependency)")
    result = crossvalidation_report

    with Browser(executable, tmp_path / "profile") as browser:
        browser.open(result.html)
        images = browser.evaluate(
            "Array.from(document.images).map(image => [image.complete, image.naturalWidth, image.naturalHeight])"
        )
        assert len(images) == len(result.figures) == 4
        assert all(complete and width > 0 and height > 0 for complete, width, height in images), images
        assert browser.evaluate("document.title") == "Cross-validation cv"

        worst_first = [case_id(index) for index in reversed(range(NUM_CASES))]
        assert browser.evaluate(FIRST_COLUMN) == worst_first  # as written: worst Dice first
        assert _click_header(browser, "dice") == "ascending"
        assert browser.evaluate(FIRST_COLUMN) == worst_first
        assert _click_header(browser, "dice") == "descending"
        assert browser.evaluate(FIRST_COLUMN) == worst_first[::-1]
        assert _click_header(browser, "case") == "ascending"  # text column
        assert browser.evaluate(FIRST_COLUMN) == sorted(worst_first)
        assert browser.evaluate("document.querySelectorAll('#cases th[aria-sort]').length") == 1

        screenshot = browser.screenshot(tmp_path / "report.png")
        errors = browser.errors()
    assert errors == []
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE) and screenshot.stat().st_size > 10_000
    copy_to = os.environ.get("NPCSEG_SCREENSHOT_DIR")
    if copy_to:
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(copy_to) / "report_browser_test.png")


def test_console_errors_are_caught(tmp_path: Path) -> None:
    """The error collection itself works: a page that throws and logs an error is reported."""
    executable = find_chromium()
    if executable is None:
        pytest.skip(SKIP_REASON)
    pytest.importorskip("websocket", reason="websocket-client is not installed (a dev dependency)")
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>console.error('bad thing'); undefinedFunction();</script></body></html>")
    with Browser(executable, tmp_path / "profile") as browser:
        browser.open(page)
        browser.evaluate("1 + 1")  # lets queued events arrive
        errors = browser.errors()
    assert any("bad thing" in error for error in errors), errors
    assert any("undefinedFunction" in error for error in errors), errors
