"""The HTML run report, opened offline in a real Chromium through Playwright."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import greenloop
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


# Text that runs script or breaks markup if a report writes it unescaped.
PAYLOADS = (
    "<script>window.__pwned = 'script'</script>",
    '"><img src=x onerror="window.__pwned = \'img\'">',
    "</title><script>window.__pwned = 'title'</script>",
    "]]></text></svg><svg onload=\"window.__pwned = 'svg'\">",
    "' onmouseover='window.__pwned = 1' x='",
)
# An unclosed right-to-left override, which reverses the text after it.
RIGHT_TO_LEFT = "\u202e"
FIELDS = (
    "purchase_id",
    "occurred_at",
    "user_id",
    "merchant_id",
    "merchant_name",
    "mcc",
    "title",
    "sku",
    "brand",
    "model_number",
    "quantity",
    "amount",
    "currency",
    "region",
    "installments",
)

FIRST_AND_LAST_LETTER_LEFT = """
([container, word]) => {
  const walker = document.createTreeWalker(
    document.querySelector(container), NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.data.indexOf(word);
    if (at < 0) continue;
    const left = (offset) => {
      const range = document.createRange();
      range.setStart(node, offset);
      range.setEnd(node, offset + 1);
      return range.getBoundingClientRect().left;
    };
    return [left(at), left(at + word.length - 1)];
  }
  return null;
}
"""


def _hostile_run(tmp_path: Path, keys: Path, url: str) -> tuple[Path, str, str]:
    """Run a small input with hostile text and return the report, mapping, lender."""
    import csv

    folder = tmp_path / 'in put "q\'" 名前 é'
    folder.mkdir()
    path = folder / 'pur chases "q\'" 名前 é.csv'
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(FIELDS)
        for number, payload in enumerate(PAYLOADS):
            title = f"Kettle {payload} 电水壶 🌱 {RIGHT_TO_LEFT}eltteK"
            writer.writerow(
                [f"p{number}", "2026-05-01 10:00:00", "u1", "m1", payload, "5722",
                 title, payload, payload, payload, "1", "99", "CNY", payload, "3"]
            )  # fmt: skip
        long_title = "长" * 50_000 + "x" * 50_000
        writer.writerow(
            ["p-long", "2026-05-01 10:00:00", "u1", "m1", "m", "5722", long_title,
             "", "", "", "1", "99", "CNY", "CN-BJ", "3"]
        )  # fmt: skip
        writer.writerow(
            ["p-bad", "2026-05-01 10:00:00", "u1", "m1", "m", "5722", "Kettle",
             "", "", "", PAYLOADS[0], "99", PAYLOADS[1], "CN-BJ", "3"]
        )  # fmt: skip

    mapping_name = PAYLOADS[2] + RIGHT_TO_LEFT + "mapping"
    mapping = tmp_path / "mapping.yaml"
    columns = "".join(f"  {field}: {field}\n" for field in FIELDS)
    mapping.write_text(
        f"name: {json.dumps(mapping_name)}\ncolumns:\n{columns}", encoding="utf-8"
    )
    lender = PAYLOADS[1] + RIGHT_TO_LEFT + "lender"
    examples = Path(greenloop.__file__).parent / "funding" / "examples"
    facilities = (examples / "facilities.yaml").read_text("utf-8")
    facilities = facilities.replace(
        "lender: Example Commercial Bank (scenario)", f"lender: {json.dumps(lender)}"
    )
    facilities_path = tmp_path / "facilities.yaml"
    facilities_path.write_text(facilities, encoding="utf-8")

    result = run_job(
        RunConfig(
            input_path=path,
            out_dir=tmp_path / "runs",
            database_url=url,
            key_dir=keys,
            mapping=mapping,
            facilities_path=facilities_path,
        )
    )
    return result.run_dir / "report.html", mapping_name, lender


def test_hostile_text_shows_as_text(tmp_path, user_secret_dir, sqlite_url):
    from playwright.sync_api import sync_playwright

    report, mapping_name, lender = _hostile_run(tmp_path, user_secret_dir, sqlite_url)
    dialogs: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on(
            "dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss())
        )
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(report.as_uri())
        # Hovering shows each bar's tooltip, and would fire a mouse-over handler.
        for bar in page.locator("svg.chart rect").all():
            if bar.is_visible():
                bar.hover()
        pwned = page.evaluate("window.__pwned")
        scripts = page.locator("script").count()
        images = page.locator("img").count()
        shown_mapping = page.locator("#mapping-name").inner_text()
        shown_path = page.locator("#input-path").inner_text()
        body = page.inner_text("body")
        standard_letters = page.evaluate(
            FIRST_AND_LAST_LETTER_LEFT, ["p.meta", "standard"]
        )
        page_width = page.evaluate("document.documentElement.scrollWidth")
        browser.close()
    assert pwned is None
    assert dialogs == []
    assert errors == []
    assert scripts == 0
    assert images == 0
    assert shown_mapping == mapping_name
    assert shown_path.endswith('pur chases "q\'" 名前 é.csv')
    assert lender in body
    # The word after the mapping name still reads left to right.
    first_letter, last_letter = standard_letters
    assert first_letter < last_letter
    assert page_width <= 1200


def test_value_list_items_isolated(tmp_path):
    from playwright.sync_api import sync_playwright

    from greenloop.reports.run_report import value_table

    sources = ["first " + RIGHT_TO_LEFT + "source", "standard"]
    html = f"<!DOCTYPE html><div id='cell'>{value_table({'sources': sources})}</div>"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.set_content(html)
        first_letter, last_letter = page.evaluate(
            FIRST_AND_LAST_LETTER_LEFT, ["#cell", "standard"]
        )
        browser.close()
    assert first_letter < last_letter
