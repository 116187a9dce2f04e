"""The HTML run report, opened offline in a real Chromium through Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenloop.pipeline.job import RunConfig, run_job

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"Chromium not found at {CHROMIUM}"
    ),
]


@pytest.fixture
def report_path(demo_sample, tmp_path, user_secret_dir, sqlite_url) -> Path:
    result = run_job(
        RunConfig(
            input_path=demo_sample.purchases,
            out_dir=tmp_path / "runs",
            database_url=sqlite_url,
            key_dir=user_secret_dir,
            registry_dir=demo_sample.registries,
            as_of=demo_sample.as_of,
        )
    )
    return result.run_dir / "report.html"


def test_report_renders_offline(report_path, tmp_path):
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(report_path.as_uri())
        charts = page.locator("svg.chart").count()
        bars = page.locator("svg.chart rect").count()
        headings = page.locator("h2").all_inner_texts()
        green_without_evidence = page.locator("#green-without-evidence").inner_text()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert charts >= 3
    assert bars > 10
    assert "Verdicts" in headings
    assert "Avoided emissions" in headings
    assert green_without_evidence == "0"
    assert errors == []
    assert [url for url in requests if not url.startswith("file://")] == []


def test_report_fits_page_width(report_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(report_path.as_uri())
        page_width = page.evaluate("document.documentElement.scrollWidth")
        # Each chart label's left edge, relative to its own chart.
        label_lefts = page.evaluate(
            "Array.from(document.querySelectorAll('svg.chart text.label'))"
            ".map(label => label.getBBox().x)"
        )
        # Tables wider than the page must sit in a box that scrolls sideways.
        loose_wide_tables = page.evaluate(
            "Array.from(document.querySelectorAll('table'))"
            ".filter(table => !table.closest('.table-box'))"
            ".filter(table => table.getBoundingClientRect().right > innerWidth)"
            ".length"
        )
        factor_rows = page.locator("#factor-sources tr").count()
        browser.close()
    assert page_width <= 1000
    assert label_lefts
    assert min(label_lefts) >= 0
    assert loose_wide_tables == 0
    assert factor_rows > 1
