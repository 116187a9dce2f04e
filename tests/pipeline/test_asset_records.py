"""Ledger records built in SQL are RFC 8785 canonical JSON for any text."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from greenloop.ledger import canonical_json
from greenloop.pipeline.assets import build_assets

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


@settings(max_examples=30, deadline=None)
@given(purchase_id=TEXT, merchant_id=TEXT, user_id=TEXT)
def test_sql_record_is_canonical(purchase_id, merchant_id, user_id):
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.register("results_arrow", _results(purchase_id, merchant_id, user_id))
    connection.execute("CREATE TABLE results AS SELECT * FROM results_arrow")
    build_assets(connection, "run-1", b"k" * 32)
    record = connection.execute("SELECT record FROM assets").fetchall()[0][0]
    assert canonical_json(json.loads(record)).decode("utf-8") == record
    assert json.loads(record)["purchase_id"] == purchase_id
    assert json.loads(record)["merchant_id"] == merchant_id


def test_sql_record_rounds_amount_half_up():
    connection = duckdb.connect()
    connection.register("results_arrow", _results("p1", "m1", "u1"))
    connection.execute("CREATE TABLE results AS SELECT * FROM results_arrow")
    build_assets(connection, "run-1", b"k" * 32)
    record = json.loads(
        connection.execute("SELECT record FROM assets").fetchall()[0][0]
    )
    assert record["amount_minor_units"] == 329901
    assert record["g_co2e_lifetime"] == 1063250
    assert record["occurred_at"] == "2026-05-01T10:30:00Z"
    assert record["user"] != "u1"
