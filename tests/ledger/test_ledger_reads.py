"""Proof reads: stale caches, grouped leaf reads, tile lookups, lost connections."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from ledger_helpers import asset
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from greenloop.ledger import leaf_hash, verify_consistency, verify_inclusion
from greenloop.ledger.tiles import TileKey
from greenloop.store import ledger as ledger_module
from greenloop.store.base import make_engine, ping_idle_connections
from greenloop.store.ledger import LedgerStore

pytestmark = pytest.mark.postgres


def _records(store: LedgerStore, size: int) -> list[bytes]:
    return [store.entry(asset(index)[0])[1] for index in range(size)]


def test_stale_cache_proofs_verify(database_url: str, tmp_path: Path) -> None:
    reader = LedgerStore(make_engine(database_url), key_dir=tmp_path)
    writer = LedgerStore(make_engine(database_url), key_dir=tmp_path)
    writer.append([asset(index) for index in range(300)])
    # The reader caches the partial tiles at the right edge of size 300.
    old_root = reader.root()
    reader.inclusion_proof(0)
    assert len(reader._cache[TileKey(0, 1)].hashes) == 44 * 32

    writer.append([asset(index) for index in range(300, 700)])
    records = _records(writer, 700)
    root = reader.root()
    for index in (0, 256, 299, 300, 511, 512, 699):
        proof = reader.inclusion_proof(index)
        leaf = leaf_hash(records[index])
        assert verify_inclusion(leaf, index, 700, proof, root) is None
    proof = reader.consistency_proof(300, 700)
    assert verify_consistency(300, 700, proof, old_root, root) is None
    # Tile 1 of level 0 is full now: its 44-hash copy must leave the cache.
    assert TileKey(0, 1) not in reader._cache


def test_grouped_leaf_reads_match_single(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "PROOFS_PER_LEAF_READ", 3)
    monkeypatch.setattr(ledger_module, "POSTGRESQL_TILES_PER_SELECT", 2)
    log = LedgerStore(make_engine(database_url), key_dir=tmp_path)
    log.append([asset(index) for index in range(1100)])
    indexes = [1099, 0, 512, 513, 255, 256, 768, 1024, 3, 700]
    single = [log.inclusion_proof(index, 1050) for index in indexes if index < 1050]
    batched = log.inclusion_proofs([index for index in indexes if index < 1050], 1050)
    assert batched == single
    with pytest.raises(ValueError, match="outside a tree of size 1050"):
        log.inclusion_proofs([5, 1060], 1050)


def _captured_statements(
    monkeypatch: pytest.MonkeyPatch,
) -> list[tuple[str, Any]]:
    """Record each (sql, parameters) the store sends until monkeypatch.undo()."""
    statements: list[tuple[str, Any]] = []
    run = ledger_module._driver_sql

    def capture(connection: Any, sql: str, parameters: Any = (), **options: Any) -> Any:
        statements.append((sql, parameters))
        return run(connection, sql, parameters, **options)

    monkeypatch.setattr(ledger_module, "_driver_sql", capture)
    return statements


def _explain(engine: Any, sql: str, parameters: Any) -> str:
    """Return PostgreSQL's plan for a statement the store sent, as one text."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN " + sql.replace("?", "%s"), parameters)
        return "\n".join(row[0] for row in cursor.fetchall())
    finally:
        raw.close()


def _log_of_3000(url: str, key_dir: Path) -> tuple[Engine, LedgerStore]:
    """Return an engine and a log of 3,000 entries, for the plan checks."""
    engine = make_engine(url)
    log = LedgerStore(engine, key_dir=key_dir)
    log.append([asset(index) for index in range(3000)])
    return engine, log


def test_tile_select_uses_primary_key(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, log = _log_of_3000(postgres_url, tmp_path)
    statements = _captured_statements(monkeypatch)
    # Two level-0 tiles in one query: the case an OR chain turns into a scan.
    proof = log.consistency_proof(300, 2900)
    monkeypatch.undo()
    assert proof
    (sql, parameters) = next(
        (sql, parameters) for sql, parameters in statements if "hashes" in sql
    )
    plan = _explain(engine, sql, parameters)
    lookups = len(parameters) // 3
    assert lookups >= 2
    assert plan.count("Index Cond") == lookups
    assert plan.count("tile_index =") == lookups
    assert "Filter" not in plan
    assert "Seq Scan" not in plan


def test_duplicate_check_looks_up_each_key(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, log = _log_of_3000(postgres_url, tmp_path)
    statements = _captured_statements(monkeypatch)
    results = log.append([asset(index) for index in range(2900, 3100)])
    monkeypatch.undo()
    assert sum(result.created for result in results) == 100
    (sql, parameters) = next(
        (sql, parameters) for sql, parameters in statements if "purchase_id" in sql
    )
    # The table has no statistics, as on a server without autovacuum.
    plan = _explain(engine, sql, parameters)
    assert plan.startswith("Nested Loop")
    assert "Index Scan using uq_ledger_entry_log_id" in plan
    assert "purchase_id)::text = wanted.purchase_id" in plan
    assert "Filter" not in plan


def _named_url(postgres_url: str) -> tuple[str, str]:
    name = f"greenloop-test-{uuid.uuid4().hex[:12]}"
    return f"{postgres_url}&application_name={name}", name


def _terminate_backends(postgres_url: str, name: str) -> None:
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    query = "FROM pg_stat_activity WHERE application_name = :name"
    try:
        with admin.connect() as connection:
            stopped = connection.execute(
                text(f"SELECT count(pg_terminate_backend(pid)) {query}"),
                {"name": name},
            ).scalar_one()
            assert stopped > 0
            deadline = time.monotonic() + 10
            while connection.execute(
                text(f"SELECT count(*) {query}"), {"name": name}
            ).scalar_one():
                assert time.monotonic() < deadline, "backends did not stop"
                time.sleep(0.05)
    finally:
        admin.dispose()


def test_proof_after_dropped_connection(postgres_url: str, tmp_path: Path) -> None:
    url, name = _named_url(postgres_url)
    log = LedgerStore(make_engine(url), key_dir=tmp_path)
    log.append([asset(index) for index in range(300)])
    log.inclusion_proof(7)
    # The pooled connection was used just now, so checkout does not ping it.
    _terminate_backends(postgres_url, name)
    proof = log.inclusion_proof(7)
    records = _records(log, 300)
    assert verify_inclusion(leaf_hash(records[7]), 7, 300, proof, log.root()) is None


def test_idle_connection_pinged_on_checkout(postgres_url: str) -> None:
    url, name = _named_url(postgres_url)
    engine = create_engine(url)
    ping_idle_connections(engine, 0.0)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
    _terminate_backends(postgres_url, name)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 2")).scalar_one() == 2
    engine.dispose()


def test_busy_connection_not_pinged(postgres_url: str) -> None:
    url, name = _named_url(postgres_url)
    engine = create_engine(url)
    ping_idle_connections(engine, 3600.0)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    _terminate_backends(postgres_url, name)
    # Without a ping the dropped connection surfaces on the next statement,
    # and SQLAlchemy replaces it for the statement after that.
    with pytest.raises(DBAPIError) as raised, engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert raised.value.connection_invalidated
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 2")).scalar_one() == 2
    engine.dispose()
