"""Ingest: mapping, validation, quarantine and returns, on small written inputs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from greenloop.pipeline.ingest import ingest
from greenloop.pipeline.mapping import MappingError, identity_mapping, load_mapping
from greenloop.pipeline.schema import (
    MAX_AMOUNT,
    MAX_MERCHANT_ID_LENGTH,
    MAX_PURCHASE_ID_LENGTH,
    MAX_QUANTITY,
)
from greenloop.pipeline.sources import InputError, register_source

RUN_STARTED = datetime(2026, 12, 1, tzinfo=UTC)
HEADER = "purchase_id,occurred_at,user_id,title,quantity,amount,currency,installments"


def _ingest(path: Path, mapping: str | None = None):
    connection = duckdb.connect()
    source = register_source(connection, path)
    chosen = load_mapping(mapping) if mapping else identity_mapping(source.columns)
    counts = ingest(connection, source, chosen, RUN_STARTED)
    return connection, counts


def _write(tmp_path: Path, lines: list[str], name: str = "purchases.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _reasons(connection: duckdb.DuckDBPyConnection) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for row, column, reason in connection.execute(
        'SELECT row, "column", reason FROM quarantine ORDER BY row'
    ).fetchall():
        found.setdefault(row, []).append(f"{column}: {reason}")
    return found


def test_clean_rows_become_purchases(tmp_path):
    path = _write(
        tmp_path,
        [
            HEADER,
            "a1,2026-05-01 10:00:00,u1,美的 空调,1,3299.00,CNY,12",
            "a2,2026-05-02T11:00:00,u2,Metro ride,2,8,cny,1",
        ],
    )
    connection, counts = _ingest(path)
    assert counts.rows_read == 2
    assert counts.purchases == 2
    assert counts.quarantined_rows == 0
    rows = connection.execute(
        "SELECT purchase_id, amount, currency FROM purchases ORDER BY 1"
    ).fetchall()
    assert str(rows[0][1]) == "3299.0000"
    assert rows[1][2] == "CNY"


@pytest.mark.parametrize(
    ("line", "column", "reason_start"),
    [
        (",2026-05-01,u1,t,1,10,CNY,1", "purchase_id", "missing purchase_id"),
        ("b1,yesterday,u1,t,1,10,CNY,1", "occurred_at", "unparseable occurred_at"),
        ("b1,2026-05-01,u1,t,1,12;3o,CNY,1", "amount", "unparseable amount"),
        ("b1,2026-05-01,u1,t,1,10,RMB,1", "currency", "unknown currency"),
        ("b1,2026-05-01,u1,t,0,10,CNY,1", "quantity", "impossible quantity"),
        ("b1,2026-05-01,u1,t,1,0,CNY,1", "amount", "impossible amount 0"),
        ("b1,2026-05-01,u1,t,1,-5,CNY,1", "amount", "impossible amount"),
        ("b1,1970-05-01,u1,t,1,10,CNY,1", "occurred_at", "impossible date"),
        ("b1,2031-05-01,u1,t,1,10,CNY,1", "occurred_at", "impossible date"),
        ("b1,2026-05-01,u1,t,1,10,CNY,-3", "installments", "impossible installments"),
        ("b1,2026-05-01,u1,,1,10,CNY,1", "title", "missing title"),
        ("b" * 129 + ",2026-05-01,u1,t,1,10,CNY,1", "purchase_id", "invalid"),
        (
            "b1,2026-05-01,u1,t,1,90071992547409.92,CNY,1",
            "amount",
            "impossible amount: more",
        ),
        ("b1,2026-05-01,u1,t,1,NaN,CNY,1", "amount", "unparseable amount"),
        ("b1,2026-05-01,u1,t,1,inf,CNY,1", "amount", "unparseable amount"),
        ("b1,2026-05-01,u1,t,1,-0,CNY,1", "amount", "impossible amount 0"),
        (
            "b1,2026-05-01,u1,t,-0,10,CNY,1",
            "quantity",
            "impossible quantity 0: give the number of units",
        ),
        (
            "b1,2026-05-01,u1,t,100000000000000,10,CNY,1",
            "quantity",
            "impossible quantity: more than",
        ),
        (
            f"b1,2026-05-01,u1,t,{MAX_QUANTITY + 1},10,CNY,1",
            "quantity",
            "impossible quantity: more than",
        ),
        (
            "b1,2026-05-01,u1,t,-100000000000000,10,CNY,1",
            "quantity",
            "impossible quantity: more than",
        ),
        ("b1,2026-05-01,u1,t,1e400,10,CNY,1", "quantity", "impossible quantity: not"),
        ("b1,2026-05-01,u1,t,NaN,10,CNY,1", "quantity", "impossible quantity: not"),
        ("b1,2026-05-01,u1,t,-inf,10,CNY,1", "quantity", "impossible quantity: not"),
    ],
)
def test_bad_row_is_quarantined(tmp_path, line, column, reason_start):
    path = _write(tmp_path, [HEADER, "ok1,2026-05-01,u1,good,1,10,CNY,1", line])
    connection, counts = _ingest(path)
    assert counts.quarantined_rows == 1
    assert counts.purchases == 1
    reasons = _reasons(connection)[2]
    assert any(r.startswith(f"{column}: {reason_start}") for r in reasons), reasons


def test_duplicate_id_keeps_first_row(tmp_path):
    path = _write(
        tmp_path,
        [
            HEADER,
            "d1,2026-05-01,u1,first,1,10,CNY,1",
            "d1,2026-05-02,u1,second,1,20,CNY,1",
        ],
    )
    connection, counts = _ingest(path)
    assert counts.purchases == 1
    assert _reasons(connection)[2][0].startswith("purchase_id: duplicate purchase_id")
    title = connection.execute("SELECT title FROM purchases").fetchall()[0][0]
    assert title == "first"


def test_quarantine_records_value(tmp_path):
    path = _write(tmp_path, [HEADER, "v1,2026-05-01,u1,t,1,abc,CNY,1"])
    connection, _ = _ingest(path)
    value = connection.execute("SELECT value FROM quarantine").fetchall()[0][0]
    assert value == "abc"


def test_every_row_is_accounted_for(tmp_path):
    path = _write(
        tmp_path,
        [
            HEADER + ",returns_purchase_id",
            "p1,2026-05-01,u1,t,2,10,CNY,1,",
            "p2,2026-05-01,u1,t,1,10,XXX,1,",
            "r1,2026-05-03,u1,t,-1,5,CNY,1,p1",
            "p3,2026-05-01,u1,t,1,10,CNY,1,",
        ],
    )
    _, counts = _ingest(path)
    assert (
        counts.purchases + counts.returns + counts.quarantined_rows == counts.rows_read
    )


def test_return_reduces_net_quantity(tmp_path):
    path = _write(
        tmp_path,
        [
            HEADER + ",returns_purchase_id",
            "p1,2026-05-01,u1,t,2,10,CNY,1,",
            "r1,2026-05-03,u1,t,-1,5,CNY,1,p1",
        ],
    )
    connection, counts = _ingest(path)
    assert counts.returns == 1
    assert counts.returns_matched == 1
    net_quantity, net_amount = connection.execute(
        "SELECT net_quantity, net_amount FROM purchases"
    ).fetchall()[0]
    assert net_quantity == 1
    assert str(net_amount) == "5.0000"


def test_return_to_unknown_purchase_is_unmatched(tmp_path):
    path = _write(
        tmp_path,
        [HEADER + ",returns_purchase_id", "r1,2026-05-03,u1,t,-1,5,CNY,1,missing"],
    )
    connection, counts = _ingest(path)
    assert counts.returns_unmatched == 1
    status = connection.execute("SELECT match_status FROM returns").fetchall()[0][0]
    assert status.startswith("unmatched: purchase missing")


def test_malformed_csv_record_quarantined(tmp_path):
    path = _write(
        tmp_path,
        [HEADER, "m1,2026-05-01,u1,t,1,10,CNY,1", "m2,2026-05-01,u1,a,b,1,10,CNY,1"],
    )
    connection, counts = _ingest(path)
    assert counts.rows_read == 2
    assert counts.quarantined_rows == 1
    [(purchase_id, reason, detail)] = connection.execute(
        "SELECT purchase_id, reason, detail FROM quarantine"
    ).fetchall()
    assert reason.startswith("malformed CSV record: wrong number of fields")
    assert detail == "expected 8 fields, found 9"
    # The fields may be shifted, so even the first one is not taken as the id.
    assert purchase_id is None


def test_jsonl_invalid_line_quarantined(tmp_path):
    good = {
        "purchase_id": "j1",
        "occurred_at": "2026-05-01 10:00:00",
        "title": "有机大米",
        "quantity": 1,
        "amount": 59.9,
        "currency": "CNY",
    }
    path = tmp_path / "purchases.jsonl"
    path.write_text(json.dumps(good, ensure_ascii=False) + "\n{not json\n", "utf-8")
    connection, counts = _ingest(path)
    assert counts.purchases == 1
    [(purchase_id, reason, detail)] = connection.execute(
        "SELECT purchase_id, reason, detail FROM quarantine"
    ).fetchall()
    assert reason.startswith("invalid JSON")
    assert detail.endswith("at column 2")
    assert purchase_id is None


def test_missing_file_names_path(tmp_path):
    with pytest.raises(InputError, match=r"nowhere\.csv: file not found"):
        register_source(duckdb.connect(), tmp_path / "nowhere.csv")


def test_unknown_extension_is_rejected(tmp_path):
    path = tmp_path / "purchases.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(InputError, match=r"unknown file type '\.xlsx'"):
        register_source(duckdb.connect(), path)


def test_corrupt_parquet_is_rejected(tmp_path):
    path = tmp_path / "purchases.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(InputError, match="as Parquet"):
        register_source(duckdb.connect(), path)


def test_mapping_missing_column_is_named(tmp_path):
    path = _write(tmp_path, ["a,b", "1,2"])
    with pytest.raises(MappingError, match=r"has no column .*'InvoiceNo'"):
        _ingest(path, "online-retail")


def test_unknown_mapping_field_rejected(tmp_path):
    mapping = tmp_path / "bad.yaml"
    mapping.write_text("name: bad\ncolumns:\n  price_each: Price\n", "utf-8")
    with pytest.raises(MappingError, match="unknown purchase field 'price_each'"):
        load_mapping(mapping)


def test_mapping_yaml_error_one_line(tmp_path):
    mapping = tmp_path / "bad.yaml"
    mapping.write_text("name: bad\ncolumns:\n  title: [Description\n", "utf-8")
    with pytest.raises(MappingError) as raised:
        load_mapping(mapping)
    message = str(raised.value)
    assert "\n" not in message
    assert f"mapping {mapping} is not valid YAML: line 4, column 1:" in message
    assert "for the format" in message


def test_mapping_not_utf8_rejected(tmp_path):
    mapping = tmp_path / "bad.yaml"
    mapping.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(MappingError) as raised:
        load_mapping(mapping)
    assert f"cannot read mapping {mapping}: 'utf-8'" in str(raised.value)


def test_unknown_mapping_name_lists_shipped(tmp_path):
    with pytest.raises(MappingError, match="bank-transactions"):
        load_mapping("no-such-mapping")


def test_largest_amount_is_accepted(tmp_path):
    line = f"b1,2026-05-01,u1,t,1,{MAX_AMOUNT},CNY,1"
    path = _write(tmp_path, [HEADER, line])
    _, counts = _ingest(path)
    assert counts.purchases == 1
    assert counts.quarantined_rows == 0


@pytest.mark.parametrize("quantity", [MAX_QUANTITY, -MAX_QUANTITY, 0.5])
def test_largest_quantity_is_accepted(tmp_path, quantity):
    path = _write(tmp_path, [HEADER, f"b1,2026-05-01,u1,t,{quantity},10,CNY,1"])
    _, counts = _ingest(path)
    assert counts.purchases + counts.returns == 1
    assert counts.quarantined_rows == 0


def test_parquet_quantity_limits(tmp_path):
    path = tmp_path / "purchases.parquet"
    quantities = [1.0, 1e14, float("nan"), float("inf"), -1e14, float(MAX_QUANTITY)]
    table = pa.table(
        {
            "purchase_id": [f"q{i}" for i in range(len(quantities))],
            "occurred_at": ["2026-05-01"] * len(quantities),
            "title": ["Metro ride"] * len(quantities),
            "quantity": pa.array(quantities, pa.float64()),
            "amount": pa.array([4.0] * len(quantities), pa.float64()),
            "currency": ["CNY"] * len(quantities),
        }
    )
    pq.write_table(table, path)
    connection, counts = _ingest(path)
    assert counts.purchases == 2
    assert counts.quarantined_rows == 4
    reasons = _reasons(connection)
    assert sorted(reasons) == [2, 3, 4, 5]
    assert all(
        r[0].startswith("quantity: impossible quantity") for r in reasons.values()
    )


PRICE_MAPPING = """
name: priced
columns:
  purchase_id: purchase_id
  occurred_at: occurred_at
  title: title
  quantity: quantity
  unit_price: unit_price
constants:
  currency: CNY
"""


@pytest.mark.parametrize(
    ("quantity", "unit_price", "reason_start"),
    [
        ("100000000000000", "1", "quantity: impossible quantity: more than"),
        ("NaN", "1", "quantity: impossible quantity: not"),
        ("1000000", "1000000000000", "unit_price: impossible amount: more than"),
        ("1000000", "99999999", "unit_price: impossible amount: more than"),
        ("100000", "910000000", "unit_price: impossible amount: more than"),
    ],
)
def test_price_times_quantity_limit(tmp_path, quantity, unit_price, reason_start):
    mapping = tmp_path / "priced.yaml"
    mapping.write_text(PRICE_MAPPING, "utf-8")
    path = _write(
        tmp_path,
        [
            "purchase_id,occurred_at,title,quantity,unit_price",
            "ok1,2026-05-01,Kettle,2,99.5",
            f"big,2026-05-01,Kettle,{quantity},{unit_price}",
        ],
    )
    connection, counts = _ingest(path, str(mapping))
    assert counts.purchases == 1
    assert counts.quarantined_rows == 1
    reasons = _reasons(connection)[2]
    assert any(r.startswith(reason_start) for r in reasons), reasons


def test_largest_price_times_quantity_accepted(tmp_path):
    mapping = tmp_path / "priced.yaml"
    mapping.write_text(PRICE_MAPPING, "utf-8")
    path = _write(
        tmp_path,
        [
            "purchase_id,occurred_at,title,quantity,unit_price",
            "big,2026-05-01,Kettle,100000,900000000.5",
        ],
    )
    connection, counts = _ingest(path, str(mapping))
    assert counts.purchases == 1
    amount = connection.execute("SELECT amount FROM purchases").fetchall()[0][0]
    assert str(amount) == "90000000050000.0000"


def test_longest_purchase_id_is_accepted(tmp_path):
    line = "b" * MAX_PURCHASE_ID_LENGTH + ",2026-05-01,u1,t,1,10,CNY,1"
    path = _write(tmp_path, [HEADER, line])
    _, counts = _ingest(path)
    assert counts.purchases == 1
    assert counts.quarantined_rows == 0


def test_purchase_id_with_nul_is_quarantined(tmp_path):
    path = tmp_path / "purchases.parquet"
    table = pa.table(
        {
            "purchase_id": ["ok1", "b\x001"],
            "occurred_at": ["2026-05-01", "2026-05-01"],
            "user_id": ["u1", "u1"],
            "title": ["t", "t"],
            "quantity": [1, 1],
            "amount": [10, 10],
            "currency": ["CNY", "CNY"],
        }
    )
    pq.write_table(table, path)
    connection, counts = _ingest(path)
    assert counts.quarantined_rows == 1
    assert any(r.startswith("purchase_id: invalid") for r in _reasons(connection)[2])


@pytest.mark.parametrize(
    ("merchant_id", "quarantined"), [("m" * 128, 0), ("m" * 129, 1), ("m\x00", 1)]
)
def test_merchant_id_limit(tmp_path, merchant_id, quarantined):
    path = tmp_path / "purchases.parquet"
    table = pa.table(
        {
            "purchase_id": ["b1"],
            "occurred_at": ["2026-05-01"],
            "user_id": ["u1"],
            "merchant_id": [merchant_id],
            "title": ["t"],
            "quantity": [1],
            "amount": [10],
            "currency": ["CNY"],
        }
    )
    pq.write_table(table, path)
    _, counts = _ingest(path)
    assert counts.quarantined_rows == quarantined


def test_merchant_limit_fits_finance_tables():
    from greenloop.store.finance import finance_loans
    from greenloop.store.runs import green_assets

    lengths = [
        table.c.merchant_id.type.length for table in (finance_loans, green_assets)
    ]
    assert min(lengths) == MAX_MERCHANT_ID_LENGTH


def test_purchase_limit_fits_store_columns():
    import greenloop.store.finance
    import greenloop.store.ledger
    import greenloop.store.models
    import greenloop.store.runs  # noqa: F401
    from greenloop.store.base import metadata

    lengths = [
        column.type.length
        for table in metadata.tables.values()
        for column in table.columns
        if column.name == "purchase_id"
    ]
    assert min(lengths) == MAX_PURCHASE_ID_LENGTH


def test_too_many_digits_says_the_limit(tmp_path):
    path = _write(tmp_path, [HEADER, "b1,2026-05-01,u1,t,1,100000000000000,CNY,1"])
    connection, counts = _ingest(path)
    assert counts.quarantined_rows == 1
    reasons = _reasons(connection)[1]
    assert any("at most 14 digits before the point" in r for r in reasons), reasons
