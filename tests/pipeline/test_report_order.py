"""The run report depends only on the rows, never on the order DuckDB meets them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import duckdb
import pytest

from greenloop.impact.record import Basis, Impact
from greenloop.pipeline.assets import LedgerCounts
from greenloop.pipeline.job import _impact_counts
from greenloop.pipeline.outputs import build_report
from greenloop.pipeline.totals import TotalOutOfRangeError, exact_sum, fetch_totals

UNIT = Impact(
    method="appliance-energy-label-savings",
    method_version="1.0",
    basis=Basis.ACTIVITY,
    kg_co2e_per_year=0.1,
    kg_co2e_lifetime=1.0,
    low_kg_co2e_lifetime=0.7,
    high_kg_co2e_lifetime=1.3,
    lifetime_years=10.0,
)
LEDGER = LedgerCounts(
    entries_appended=0,
    entries_existing=0,
    tree_size=0,
    checkpoint="",
    receipts_written=0,
    verifier_key="",
    assets_stored=0,
)
# Adding 0.1, 0.2 and 0.3 as DOUBLE in this order gives 0.6000000000000001,
# and in the reverse order 0.6.
AMOUNTS = (0.1, 0.2, 0.3)

# (row, product_key, category, claim_kinds, region_used, amount). Each row's
# net quantity and its kgCO2e (per year, lifetime and spend-based) are `amount`.
RESULTS = [
    (1, 1, "appliance", "specific", "CN:north", AMOUNTS[0]),
    (2, 1, "appliance", "generic", "CN:east", AMOUNTS[1]),
    (3, 1, "appliance", None, None, AMOUNTS[2]),
    (4, 2, "lighting", "generic", "CN:north", AMOUNTS[0]),
    (5, 2, "lighting", "specific", "CN:east", AMOUNTS[1]),
    (6, 2, "lighting", None, None, AMOUNTS[2]),
]
VERDICTS = [
    (1, "green", '["meets grade 1", "label verified"]'),
    (2, "green", '["label verified", "meets grade 1"]'),
]
# Every reason has the same count, so only the reason text can order them.
QUARANTINE = [
    (10, "amount", "unparseable amount"),
    (11, "quantity", "impossible quantity 0"),
    (12, "currency", "unknown currency"),
    (13, "amount", "impossible amount"),
]


def _connection(
    results: Sequence[tuple[Any, ...]], quarantine: Sequence[tuple[Any, ...]]
) -> duckdb.DuckDBPyConnection:
    """Return a one-thread DuckDB session holding the report's input tables."""
    connection = duckdb.connect(":memory:")
    # One thread adds the rows in the order they are stored, so the stored
    # order decides any order-dependent result.
    connection.execute("SET threads = 1")

    connection.execute(
        """
        CREATE TABLE results (
            row BIGINT, product_key UBIGINT, category VARCHAR, status VARCHAR,
            claim_kinds VARCHAR, facts_id BIGINT, region_code VARCHAR,
            region_used VARCHAR, net_quantity DOUBLE, kg_co2e_per_year DOUBLE,
            kg_co2e_lifetime DOUBLE, spend_estimate_kg_co2e DOUBLE
        )
        """
    )
    for row, product, category, claims, region_used, amount in results:
        connection.execute(
            "INSERT INTO results VALUES "
            "(?, ?, ?, 'green', ?, 0, 'CN-BJ', ?, ?, ?, ?, ?)",
            [row, product, category, claims, region_used, *[amount] * 4],
        )

    connection.execute(
        "CREATE TABLE product_verdicts "
        "(product_key UBIGINT, status VARCHAR, reasons VARCHAR, evidence VARCHAR)"
    )
    connection.executemany(
        "INSERT INTO product_verdicts VALUES (?, ?, ?, '[\"label\"]')", VERDICTS
    )

    connection.execute(
        'CREATE TABLE quarantine (row BIGINT, "column" VARCHAR, reason VARCHAR)'
    )
    connection.executemany("INSERT INTO quarantine VALUES (?, ?, ?)", quarantine)
    return connection


def _report(
    results: Sequence[tuple[Any, ...]], quarantine: Sequence[tuple[Any, ...]]
) -> dict[str, Any]:
    connection = _connection(results, quarantine)
    report = build_report(
        connection,
        "run-1",
        {"impact": _impact_counts(connection)},
        {(0, "CN-BJ"): UNIT},
        LEDGER,
        None,
        "cn",
    )
    connection.close()
    return report


@pytest.fixture(scope="module")
def reports() -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the report of the rows stored in input order and in reverse order."""
    forward = _report(RESULTS, QUARANTINE)
    backward = _report(RESULTS[::-1], QUARANTINE[::-1])
    return forward, backward


@pytest.mark.parametrize(
    "section",
    [
        "counts",
        "avoided_by_category",
        "purchases_by_grid_factor",
        "verdicts",
        "quarantine",
        "impact",
        "spend_estimates",
    ],
)
def test_report_section_ignores_row_order(reports, section):
    forward, backward = reports
    assert json.dumps(forward[section]) == json.dumps(backward[section])


def test_quarantine_ties_ordered_by_reason(reports):
    for report in reports:
        reasons = [row["reason"] for row in report["quarantine"]["by_reason"]]
        assert reasons == sorted(reasons)


def test_claim_ties_ordered_by_kind(reports):
    for report in reports:
        assert list(report["verdicts"]["claims_by_kind"]) == ["generic", "specific"]


def test_grid_factor_ties_ordered_by_name(reports):
    for report in reports:
        names = list(report["purchases_by_grid_factor"])
        assert names == ["CN:east", "CN:north", "no grid factor"]


def test_category_ties_ordered_by_name(reports):
    for report in reports:
        avoided = [row["category"] for row in report["avoided_by_category"]]
        spend = [row["category"] for row in report["spend_estimates"]["by_category"]]
        assert avoided == ["appliance", "lighting"]
        assert spend == ["appliance", "lighting"]


def test_kg_totals_are_exact_decimal_sums(reports):
    forward, _ = reports
    assert forward["counts"]["impact"]["kg_co2e_lifetime"] == 1.2
    assert forward["spend_estimates"]["by_category"][0]["kg_co2e"] == 0.6


def test_report_states_its_rounding(reports):
    forward, _ = reports
    assert "9 decimal places" in forward["rounding"]


@pytest.mark.parametrize("value", ["nan", "inf", "1e30"])
def test_unrepresentable_total_raises(value):
    connection = duckdb.connect(":memory:")
    query = f"SELECT {exact_sum('x')} FROM (VALUES (CAST('{value}' AS DOUBLE))) t(x)"
    with pytest.raises(TotalOutOfRangeError, match="kgCO2e of a test"):
        fetch_totals(connection, query, "the kgCO2e of a test")
