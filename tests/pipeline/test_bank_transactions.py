"""The main job on the real labelled bank statement, through its shipped mapping.

The statement is in South African rand and has no evidence columns, so no
purchase can be green. Money coming in and rows with text in the amount column
are quarantined. One rail fare goes to review because the model proposes a
category for it.
"""

from __future__ import annotations

import csv
import json

import duckdb
import pytest

from greenloop.pipeline.job import RunConfig, run_job

ROWS = 451
# Deposits, refunds and interest: negative purchase amounts after `negate`.
MONEY_IN = 23
# Rows whose amount column contains text such as "Bank -3.00".
UNPARSEABLE_AMOUNTS = 3
PURCHASES = ROWS - MONEY_IN - UNPARSEABLE_AMOUNTS
DISTINCT_PRODUCTS = 322


@pytest.fixture(scope="module")
def bank_run(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bank-transactions")
    return run_job(
        RunConfig(
            input_path=shared_data / "bank-transactions" / "transactions.csv",
            mapping="bank-transactions",
            out_dir=folder / "runs",
            database_url=f"sqlite:///{folder / 'greenloop.sqlite3'}",
            key_dir=folder / "keys",
        )
    )


def test_bank_rows_and_purchases(bank_run):
    ingest = bank_run.counts["ingest"]
    assert ingest["rows_read"] == ROWS
    assert ingest["quarantined_rows"] == MONEY_IN + UNPARSEABLE_AMOUNTS
    assert ingest["purchases"] == PURCHASES
    assert ingest["returns"] == 0


def test_bank_quarantine_reasons(bank_run):
    with (bank_run.run_dir / "quarantine.csv").open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    reasons = [row["reason"].split(":")[0] for row in rows]
    assert reasons.count("impossible amount") == MONEY_IN
    assert reasons.count("unparseable amount") == UNPARSEABLE_AMOUNTS
    assert {row["column"] for row in rows} == {"amount"}
    # Every quarantined row keeps the id the mapping gave it.
    assert all(row["purchase_id"] == f"bank-{row['row']}" for row in rows)


def test_bank_no_green_purchase_without_evidence(bank_run):
    identify = bank_run.counts["identify"]
    assert identify["distinct_products"] == DISTINCT_PRODUCTS
    assert identify["green"] == 0
    judged = identify["green"] + identify["needs_review"] + identify["not_green"]
    assert judged == PURCHASES
    assert bank_run.counts["ledger"]["entries_appended"] == 0


def test_bank_rail_fare_goes_to_review(bank_run):
    products = bank_run.run_dir / "products.parquet"
    rows = duckdb.sql(
        f"SELECT title, model_category, reasons FROM '{products}' "
        "WHERE status = 'needs_review'"
    ).fetchall()
    assert len(rows) == 1
    assert bank_run.counts["identify"]["products_needs_review"] == 1
    title, model_category, reasons = rows[0]
    assert "Gautrain" in title
    assert model_category == "public_transport"
    assert "reviewer" in " ".join(json.loads(reasons))
