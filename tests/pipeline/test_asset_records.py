"""Ledger records built in SQL are RFC 8785 canonical JSON for any text."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenloop.ledger import canonical_json
from greenloop.pipeline.assets import (
    RECORD_SQL,
    PurchaseIdOrder,
    build_assets,
    canonical_records,
    check_canonical,
)

TEXT = st.text(min_size=1, max_size=30)


def _results(purchase_id: str, merchant_id: str, user_id: str) -> pa.Table:
    return pa.table(
        {
            "row": [1],
            "purchase_id": [purchase_id],
            "occurred_at": [datetime(2026, 5, 1, 10, 30)],
            "user_id": [user_id],
            "merchant_id": [merchant_id],
            "category": ["appliance"],
            "standard_id": ["cn.appliance"],
            "standard_version": ["2025-01-01"],
            "region_code": ["CN-GD"],
            "net_amount": pa.array([Decimal("3299.005")], pa.decimal128(18, 4)),
            "currency": ["CNY"],
            "installments": [12],
            "net_quantity": [1.0],
            "status": ["green"],
            "kg_co2e_per_year": [106.3],
            "kg_co2e_lifetime": [1063.25],
            "verdict_digest": ["ab" * 32],
            "impact_digest": ["cd" * 32],
        }
    )


def _record(connection: duckdb.DuckDBPyConnection) -> str:
    """Return the one asset's record as the ledger step reads it."""
    records = connection.sql(f"SELECT {RECORD_SQL} AS record FROM assets")
    record = canonical_records(records.to_arrow_table().column("record"))[0]
    return record.decode("utf-8")


@settings(max_examples=30, deadline=None)
@given(purchase_id=TEXT, merchant_id=TEXT, user_id=TEXT)
def test_sql_record_is_canonical(purchase_id, merchant_id, user_id):
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.register("results_arrow", _results(purchase_id, merchant_id, user_id))
    connection.execute("CREATE TABLE results AS SELECT * FROM results_arrow")
    build_assets(connection, "run-1", b"k" * 32)
    record = _record(connection)
    assert canonical_json(json.loads(record)).decode("utf-8") == record
    assert json.loads(record)["purchase_id"] == purchase_id
    assert json.loads(record)["merchant_id"] == merchant_id


def test_sql_record_rounds_amount_half_up():
    connection = duckdb.connect()
    connection.register("results_arrow", _results("p1", "m1", "u1"))
    connection.execute("CREATE TABLE results AS SELECT * FROM results_arrow")
    build_assets(connection, "run-1", b"k" * 32)
    record = json.loads(_record(connection))
    assert record["amount_minor_units"] == 329901
    assert record["g_co2e_lifetime"] == 1063250
    assert record["occurred_at"] == "2026-05-01T10:30:00Z"
    assert record["user"] != "u1"


@pytest.mark.parametrize("merchant_id", ["m\x1f1", "m\\u0041", "m\x00\x7f\u2028"])
def test_escaped_records_become_canonical(merchant_id):
    connection = duckdb.connect()
    connection.register("results_arrow", _results("p1", merchant_id, "u1"))
    connection.execute("CREATE TABLE results AS SELECT * FROM results_arrow")
    build_assets(connection, "run-1", b"k" * 32)
    record = _record(connection)
    assert canonical_json(json.loads(record)).decode("utf-8") == record
    assert json.loads(record)["merchant_id"] == merchant_id


def test_order_accepts_increasing_ids():
    order = PurchaseIdOrder()
    order.check(pa.array(["a", "b"]))
    order.check(pa.array([], pa.string()))
    order.check(pa.array(["c"]))


@pytest.mark.parametrize(
    "batches",
    [[["b", "a"]], [["a", "b"], ["b", "c"]], [["a", "a"]], [["c"], ["a"]]],
)
def test_order_rejects_repeats_and_reversals(batches):
    order = PurchaseIdOrder()
    with pytest.raises(RuntimeError, match="purchase-id order"):
        for batch in batches:
            order.check(pa.array(batch))


def test_order_error_names_both_ids():
    order = PurchaseIdOrder()
    order.check(pa.array(["a", "c"]))
    with pytest.raises(RuntimeError, match="'c' came before 'b'"):
        order.check(pa.array(["b"]))


def test_canonical_bytes_pass_check():
    check_canonical([b'{"a":1,"b":"x"}', b"{}"])


@pytest.mark.parametrize("record", [b'{"b":1,"a":2}', b'{"a": 1}', b'{"a":"\\u001F"}'])
def test_other_forms_fail_check(record):
    with pytest.raises(RuntimeError, match="not canonical JSON"):
        check_canonical([record])


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("kg_co2e_lifetime", 1.0e14),
        ("kg_co2e_lifetime", float("inf")),
        ("net_amount", Decimal("99999999999999.0000")),
    ],
)
def test_large_integers_stop_assets(column, value):
    table = _results("p-large", "m1", "u1")
    position = table.schema.get_field_index(column)
    table = table.set_column(
        position, column, pa.array([value], table.schema.field(column).type)
    )
    connection = duckdb.connect()
    connection.register("results_arrow", table)
    connection.execute("CREATE TABLE results AS SELECT * FROM results_arrow")
    with pytest.raises(RuntimeError, match="'p-large' is too large for a ledger"):
        build_assets(connection, "run-1", b"k" * 32)


def _assets_of_amount(amount: Decimal) -> duckdb.DuckDBPyConnection:
    """Return a connection whose `results` hold one green purchase of `amount`."""
    table = _results("p-edge", "m1", "u1")
    position = table.schema.get_field_index("net_amount")
    table = table.set_column(
        position, "net_amount", pa.array([amount], pa.decimal128(18, 4))
    )
    connection = duckdb.connect()
    connection.register("results_arrow", table)
    connection.execute("CREATE TABLE results AS SELECT * FROM results_arrow")
    return connection


def test_largest_exact_amount_passes():
    connection = _assets_of_amount(Decimal("90071992547409.91"))
    build_assets(connection, "run-1", b"k" * 32)
    record = json.loads(_record(connection))
    assert record["amount_minor_units"] == 2**53 - 1


def test_amount_above_exact_limit_stops():
    connection = _assets_of_amount(Decimal("90071992547409.92"))
    with pytest.raises(RuntimeError, match="too large for a ledger record") as raised:
        build_assets(connection, "run-1", b"k" * 32)
    assert "amount_minor_units 9007199254740992 (hundredths)" in str(raised.value)
