"""Migrations: from empty to head on SQLite and PostgreSQL, with no drift."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text

from greenloop.store import schema
from greenloop.store.base import make_engine, metadata


def _table_names(url: str) -> set[str]:
    engine = make_engine(url)
    with engine.connect() as connection:
        names = set(inspect(connection).get_table_names())
    engine.dispose()
    return names


@pytest.mark.postgres
def test_upgrade_creates_every_table(database_url: str) -> None:
    schema.upgrade(database_url)
    names = _table_names(database_url)
    missing = set(schema.load_all_tables().tables) - names
    assert missing == set()
    assert schema.VERSION_TABLE in names


@pytest.mark.postgres
def test_autogenerate_finds_no_drift(database_url: str) -> None:
    schema.upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        found = schema.differences(connection)
        revision = schema.current_revision(connection)
    engine.dispose()
    assert found == []
    assert revision == schema.head_revision()


@pytest.mark.postgres
def test_upgrade_twice_is_harmless(database_url: str) -> None:
    schema.upgrade(database_url)
    schema.upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        revision = schema.current_revision(connection)
    engine.dispose()
    assert revision == schema.head_revision()


@pytest.mark.postgres
def test_create_all_database_gets_stamped(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        schema.load_all_tables().create_all(connection)
    schema.upgrade(engine)
    with engine.connect() as connection:
        revision = schema.current_revision(connection)
        found = schema.differences(connection)
    engine.dispose()
    assert revision == schema.head_revision()
    assert found == []


def test_partial_create_all_gets_completed(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    first_table = metadata.tables["products"]
    with engine.begin() as connection:
        first_table.create(connection)
    schema.upgrade(engine)
    with engine.connect() as connection:
        revision = schema.current_revision(connection)
        names = set(inspect(connection).get_table_names())
    engine.dispose()
    assert revision == schema.head_revision()
    assert set(metadata.tables) <= names


def test_mismatched_tables_are_rejected(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(text("create table products (id integer primary key)"))
    with pytest.raises(schema.SchemaMismatchError, match="products"):
        schema.upgrade(engine)
    engine.dispose()


def test_unrelated_tables_are_left_alone(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(text("create table notes (id integer primary key)"))
    schema.upgrade(engine)
    with engine.connect() as connection:
        found = schema.differences(connection)
        names = set(inspect(connection).get_table_names())
    engine.dispose()
    assert found == []
    assert "notes" in names


@pytest.mark.postgres
def test_migration_0002_up_and_down(database_url: str) -> None:
    schema.upgrade(database_url, revision="0001")
    engine = make_engine(database_url)

    asset = (
        "INSERT INTO green_assets (purchase_id, run_id, occurred_at, user_key, "
        "category, standard_id, standard_version, amount_fen, currency, periods, "
        "verdict_digest, record, ledger_index, reversed) VALUES ('p1', 'r1', "
        "'2026-05-01 10:30:00', 'u1', 'appliance', 'cn', '2025', 100, 'CNY', 2, "
        "'d', '{\"purchase_id\":\"p1\"}', 0, false)"
    )
    entry = "INSERT INTO ledger_log (id, origin, size, root) VALUES (1, 'o', 1, :root)"
    with engine.begin() as connection:
        connection.execute(text(asset))
        connection.execute(text(entry), {"root": b"\0" * 32})
        connection.execute(
            text(
                "INSERT INTO ledger_entry (log_id, entry_index, purchase_id, record) "
                "VALUES (1, 0, 'p1', :record)"
            ),
            {"record": b'{"purchase_id":"p1"}'},
        )

    schema.upgrade(engine)
    with engine.connect() as connection:
        columns = {c["name"] for c in inspect(connection).get_columns("green_assets")}
        indexes = {i["name"] for i in inspect(connection).get_indexes("green_assets")}
        kept = connection.execute(text("SELECT purchase_id FROM green_assets")).all()
    assert "record" not in columns
    assert "ix_green_assets_user_key" in indexes
    assert kept == [("p1",)]

    with engine.begin() as connection:
        config = schema.alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    with engine.connect() as connection:
        record = connection.execute(text("SELECT record FROM green_assets")).scalar()
    engine.dispose()
    assert record == '{"purchase_id":"p1"}'
