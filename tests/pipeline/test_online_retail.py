"""The main job on the real UCI Online Retail export, with the counts it reports."""

from __future__ import annotations

import json

import pytest

from greenloop.pipeline.job import RunConfig, run_job

ROWS = 541_909
QUARANTINED = 1_181
RETURNS = 10_624
PURCHASES = ROWS - QUARANTINED - RETURNS
DISTINCT_PRODUCTS = 4_158


@pytest.fixture(scope="module")
def online_retail_run(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("online-retail")
    return run_job(
        RunConfig(
            input_path=shared_data / "online-retail" / "online_retail.parquet",
            mapping="online-retail",
            out_dir=folder / "runs",
            database_url=f"sqlite:///{folder / 'greenloop.sqlite3'}",
            key_dir=folder / "keys",
        )
    )


def test_online_retail_rows_read(online_retail_run):
    assert online_retail_run.counts["ingest"]["rows_read"] == ROWS


def test_online_retail_quarantine(online_retail_run):
    assert online_retail_run.counts["ingest"]["quarantined_rows"] == QUARANTINED


def test_online_retail_returns(online_retail_run):
    ingest = online_retail_run.counts["ingest"]
    assert ingest["returns"] == RETURNS
    assert ingest["returns_matched"] + ingest["returns_unmatched"] == RETURNS


def test_online_retail_purchases(online_retail_run):
    assert online_retail_run.counts["ingest"]["purchases"] == PURCHASES


def test_online_retail_distinct_products(online_retail_run):
    assert (
        online_retail_run.counts["identify"]["distinct_products"] == DISTINCT_PRODUCTS
    )


def test_online_retail_no_green_verdicts(online_retail_run):
    assert online_retail_run.counts["identify"]["green"] == 0


def test_online_retail_statuses_cover_purchases(online_retail_run):
    identify = online_retail_run.counts["identify"]
    total = identify["green"] + identify["needs_review"] + identify["not_green"]
    assert total == PURCHASES


def test_online_retail_quarantine_reasons(online_retail_run):
    report = json.loads((online_retail_run.run_dir / "report.json").read_text("utf-8"))
    reasons = {
        item["reason"].split(":")[0] for item in report["quarantine"]["by_reason"]
    }
    assert reasons == {"impossible amount 0", "impossible amount"}
