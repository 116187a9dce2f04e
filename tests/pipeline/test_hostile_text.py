"""Hostile text in the input: the run files keep it and show it safely."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from demo_runs import run_small

from greenloop.pipeline.assets import WINDOWS_DEVICE_NAMES, receipt_file_stem
from greenloop.pipeline.job import RunResult
from greenloop.reports.charts import bar_chart

HEADER = [
    "purchase_id",
    "occurred_at",
    "user_id",
    "title",
    "sku",
    "quantity",
    "amount",
    "currency",
    "returns_purchase_id",
]


def _run(rows: list[list[str]], tmp_path: Path, keys: Path, url: str) -> RunResult:
    path = tmp_path / "purchases.csv"
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return run_small(path, tmp_path, keys, url)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def test_csv_formulas_open_as_text(tmp_path, user_secret_dir, sqlite_url):
    when = "2026-05-01 10:00:00"
    bad_currencies = {
        "q1": '=HYPERLINK("http://127.0.0.1/","x")',
        "q2": "+1+2",
        "q3": "-3+4",
        "q4": "@SUM(1,1)",
        "q5": "\t=1+1",
        "q6": "\r=1+1",
        "q7": "'=1+1",
        "q8": "plain",
    }
    rows = [["p1", when, "u1", "Kettle", "k1", "1", "99", "CNY", ""]]
    for purchase_id, currency in bad_currencies.items():
        rows.append([purchase_id, when, "u1", "Kettle", "k1", "1", "99", currency, ""])
    rows.append(["n1", when, "u1", "Kettle", "k1", "1", "-45.00", "CNY", ""])
    rows.append(["+r1", when, "u1", "=1+2", "@sku", "-1", "99", "CNY", "p9"])
    result = _run(rows, tmp_path, user_secret_dir, sqlite_url)

    quarantine = _read_csv(result.run_dir / "quarantine.csv")
    values = {row["purchase_id"]: row["value"] for row in quarantine}
    for purchase_id, currency in bad_currencies.items():
        if purchase_id == "q8":
            assert values[purchase_id] == currency
        else:
            assert values[purchase_id] == "'" + currency
    # A negative number as text runs nothing in a spreadsheet.
    assert values["n1"].startswith("-45")
    # The row number is a number column, so it gets no quote.
    assert all(row["row"].isdigit() for row in quarantine)

    returns = _read_csv(result.run_dir / "returns.csv")
    assert len(returns) == 1
    assert returns[0]["title"] == "'=1+2"
    assert returns[0]["sku"] == "'@sku"
    assert returns[0]["return_id"] == "'+r1"
    assert returns[0]["quantity"] == "1.0"


RECEIPT_IDS = [
    "P07000000001",
    "../evil",
    "a/b",
    "a_b",
    ".",
    "..",
    ".hidden",
    "CON",
    "NUL.X",
    "nul",
    "P07CASE",
    "p07case",
    "P07Case",
    "x" * 128,
    "x" * 127 + "y",
    "名前",
    "A-1234567890ABCDEF",
]


def test_receipt_stems_distinct_ignoring_case():
    # An id spelled like the cleaned name of another id with its digest.
    lookalike = "a_b-" + receipt_file_stem("a/b").rsplit("-", 1)[1]
    ids = [*RECEIPT_IDS, lookalike]
    stems = [receipt_file_stem(purchase_id) for purchase_id in ids]
    assert len({stem.casefold() for stem in stems}) == len(ids)


def test_receipt_stems_safe_file_names():
    for purchase_id in RECEIPT_IDS:
        stem = receipt_file_stem(purchase_id)
        assert re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", stem), stem
        assert len(f".{stem}.json.tmp".encode()) < 255
        assert stem.split(".")[0].upper() not in WINDOWS_DEVICE_NAMES


def test_receipt_stem_keeps_plain_ids():
    assert receipt_file_stem("P07000000001") == "P07000000001"
    assert receipt_file_stem("INV-2026.001") == "INV-2026.001"
    assert receipt_file_stem("p1").startswith("p1-")


def test_chart_tooltip_isolates_label():
    svg = bar_chart("Top reasons", [("abc\u202eevil", 3.0)], "CNY")
    assert "<title>\u2068abc\u202eevil\u2069: 3 CNY</title>" in svg
