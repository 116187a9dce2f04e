"""The green-asset store on SQLite and PostgreSQL: inserts are idempotent."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from sqlalchemy import select

from greenloop.store.base import make_engine, metadata, sqlite_insert_many
from greenloop.store.runs import (
    asset_count,
    asset_rows,
    green_assets,
    insert_assets,
    ledger_indexes,
    store_asset_rows,
)


def _assets(ids: list[str]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "purchase_id": purchase_id,
                "run_id": "run-1",
                "occurred_at": datetime(2026, 5, 1, 10, 30, tzinfo=UTC),
                "user_key": "u" * 64,
                "merchant_id": "m-suning",
                "category": "appliance",
                "standard_id": "cn.appliance",
                "standard_version": "2025-01-01",
                "region": "CN-GD",
                "amount_fen": 329900,
                "currency": "CNY",
                "periods": 12,
                "kg_co2e_per_year": 106.3,
                "kg_co2e_lifetime": 1063.0,
                "verdict_digest": "a" * 64,
                "impact_digest": None,
                "ledger_index": None,
                "reversed": False,
            }
            for purchase_id in ids
        ]
    )


def _engine(url: str):
    engine = make_engine(url)
    metadata.create_all(engine, tables=[green_assets])
    return engine


def test_insert_counts_new_assets(database_url):
    engine = _engine(database_url)
    assert insert_assets(engine, _assets(["p1", "p2"])) == 2
    assert insert_assets(engine, _assets(["p2", "p3"])) == 1
    assert asset_count(engine) == 3


def test_insert_keeps_timestamp(database_url):
    engine = _engine(database_url)
    insert_assets(engine, _assets(["p1"]))
    with engine.connect() as connection:
        stored = connection.execute(select(green_assets.c.occurred_at)).scalar_one()
    assert stored.replace(tzinfo=None) == datetime(2026, 5, 1, 10, 30)


def test_ledger_indexes_round_trip(database_url):
    engine = _engine(database_url)
    table = _assets(["p2", "p1"])
    table = table.set_column(
        table.schema.get_field_index("ledger_index"),
        "ledger_index",
        pa.array([1, 0], pa.int64()),
    )
    insert_assets(engine, table)
    assert ledger_indexes(engine, ["p1", "p2", "p9"]) == {"p1": 0, "p2": 1}


def test_insert_ignores_columns_the_table_lacks(database_url):
    engine = _engine(database_url)
    table = _assets(["p1"]).append_column("record", pa.array(['{"purchase_id":"p1"}']))
    assert insert_assets(engine, table) == 1


def test_stored_rows_take_the_given_ledger_indexes(database_url):
    engine = _engine(database_url)
    rows = asset_rows(_assets(["p1", "p2", "p3"]), engine.dialect.name)
    with engine.begin() as connection:
        assert store_asset_rows(connection, rows, [7, 5, 6]) == 3
    assert ledger_indexes(engine, ["p1", "p2", "p3"]) == {"p1": 7, "p2": 5, "p3": 6}


def test_stored_rows_need_one_index_each(database_url):
    engine = _engine(database_url)
    rows = asset_rows(_assets(["p1", "p2"]), engine.dialect.name)
    with engine.begin() as connection, pytest.raises(ValueError, match="2 assets"):
        store_asset_rows(connection, rows, [1])
    assert asset_count(engine) == 0


def test_many_rows_split_over_statements(sqlite_url):
    import sqlite3

    from sqlalchemy import event

    engine = make_engine(sqlite_url)

    def lower_limit(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Room for 2 asset rows of 18 values per INSERT.
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 40)

    event.listen(engine, "connect", lower_limit)
    metadata.create_all(engine, tables=[green_assets])
    ids = [f"p{number}" for number in range(7)]
    assert insert_assets(engine, _assets(ids)) == 7
    assert insert_assets(engine, _assets(["p6", "p7", "p8"])) == 2
    assert asset_count(engine) == 9


def test_partial_rows_rejected(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE pairs (a, b)")
        with pytest.raises(ValueError, match="whole rows of 2"):
            sqlite_insert_many(connection, "INSERT INTO pairs", 2, [1, 2, 3])


def test_stores_times_formatted_by_duckdb(database_url):
    import duckdb

    from greenloop.store.runs import stored_time_format

    engine = _engine(database_url)
    dialect = engine.dialect.name
    moment = datetime(2026, 5, 1, 10, 30, 5, 250, tzinfo=UTC)
    table = _assets(["p1"])
    connection = duckdb.connect()
    # The main job's DuckDB session runs in UTC, as here.
    connection.execute("SET TimeZone = 'UTC'")
    text = connection.execute(
        "SELECT strftime(?::TIMESTAMPTZ, ?)", [moment, stored_time_format(dialect)]
    ).fetchall()[0][0]
    position = table.schema.get_field_index("occurred_at")
    as_text = table.set_column(position, "occurred_at", pa.array([text]))
    if dialect == "sqlite":
        as_time = table.set_column(
            position, "occurred_at", pa.array([moment], pa.timestamp("us", tz="UTC"))
        )
        assert asset_rows(as_text, dialect) == asset_rows(as_time, dialect)
    insert_assets(engine, as_text)
    with engine.connect() as database:
        stored = database.execute(select(green_assets.c.occurred_at)).scalar_one()
    if stored.tzinfo is None:
        stored = stored.replace(tzinfo=UTC)
    assert stored == moment


def test_first_of_repeated_ids_is_kept(database_url):
    engine = _engine(database_url)
    table = _assets(["p1", "p1", "p2"])
    table = table.set_column(
        table.schema.get_field_index("run_id"),
        "run_id",
        pa.array(["run-first", "run-second", "run-first"]),
    )
    assert insert_assets(engine, table) == 2
    with engine.connect() as connection:
        stored = connection.execute(
            select(green_assets.c.run_id).where(green_assets.c.purchase_id == "p1")
        ).scalar_one()
    assert stored == "run-first"


@pytest.mark.parametrize("expect_new", [True, False])
def test_two_stores_in_one_transaction(database_url, expect_new):
    engine = _engine(database_url)
    dialect = engine.dialect.name
    with engine.begin() as connection:
        first = asset_rows(_assets(["p1", "p2"]), dialect)
        assert store_asset_rows(connection, first, [0, 1]) == 2
        second = asset_rows(_assets(["p2", "p3"]), dialect)
        stored = store_asset_rows(connection, second, [1, 2], expect_new=expect_new)
        assert stored == 1
    assert asset_count(engine) == 3
    assert ledger_indexes(engine, ["p1", "p2", "p3"]) == {"p1": 0, "p2": 1, "p3": 2}


def test_taken_ledger_index_raises(database_url):
    engine = _engine(database_url)
    dialect = engine.dialect.name
    with engine.begin() as connection:
        store_asset_rows(connection, asset_rows(_assets(["p1"]), dialect), [0])
    # The rows go through the driver's cursor, so the driver's error is raised.
    error = engine.dialect.loaded_dbapi.IntegrityError
    with pytest.raises(error), engine.begin() as connection:
        store_asset_rows(connection, asset_rows(_assets(["p2"]), dialect), [0])
    assert asset_count(engine) == 1
