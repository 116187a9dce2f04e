"""Audit against tampering done directly in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from ledger_helpers import asset
from sqlalchemy import text
from sqlalchemy.engine import Connection

from greenloop.ledger.canonical import canonical_json
from greenloop.store.base import make_engine
from greenloop.store.ledger import LedgerStore

pytestmark = pytest.mark.postgres

SIZE = 600


def _change_entry(connection: Connection) -> None:
    record = canonical_json(asset(5, amount="1.00")[1])
    connection.execute(
        text("UPDATE ledger_entry SET record = :record WHERE entry_index = 5"),
        {"record": record},
    )


def _delete_entry(connection: Connection) -> None:
    connection.execute(text("DELETE FROM ledger_entry WHERE entry_index = 7"))


def _shift(connection: Connection, start: int, offset: int) -> None:
    # Two steps through negative indexes, so no row collides on the key midway.
    connection.execute(
        text(
            "UPDATE ledger_entry SET entry_index = -entry_index - 1 "
            "WHERE entry_index >= :s"
        ),
        {"s": start},
    )
    connection.execute(
        text(
            "UPDATE ledger_entry SET entry_index = -entry_index - 1 + :o "
            "WHERE entry_index < 0"
        ),
        {"o": offset},
    )


def _delete_and_close_gap(connection: Connection) -> None:
    _delete_entry(connection)
    _shift(connection, 8, -1)


def _insert_at_end(connection: Connection) -> None:
    key, record = asset(SIZE)
    connection.execute(
        text(
            "INSERT INTO ledger_entry (log_id, entry_index, purchase_id, record) "
            "VALUES (1, :index, :key, :record)"
        ),
        {"index": SIZE, "key": key, "record": canonical_json(record)},
    )


def _insert_in_middle(connection: Connection) -> None:
    _shift(connection, 4, 1)
    key, record = asset(9_999)
    connection.execute(
        text(
            "INSERT INTO ledger_entry (log_id, entry_index, purchase_id, record) "
            "VALUES (1, 4, :key, :record)"
        ),
        {"key": key, "record": canonical_json(record)},
    )


def _swap_entries(connection: Connection) -> None:
    connection.execute(
        text("UPDATE ledger_entry SET entry_index = -1 WHERE entry_index = 2")
    )
    connection.execute(
        text("UPDATE ledger_entry SET entry_index = 2 WHERE entry_index = 9")
    )
    connection.execute(
        text("UPDATE ledger_entry SET entry_index = 9 WHERE entry_index = -1")
    )


def _change_tile(connection: Connection) -> None:
    hashes = connection.execute(
        text("SELECT hashes FROM ledger_tile WHERE level = 0 AND tile_index = 0")
    ).scalar_one()
    changed = bytes(hashes)[:64] + bytes(32) + bytes(hashes)[96:]
    connection.execute(
        text(
            "UPDATE ledger_tile SET hashes = :hashes WHERE level = 0 AND tile_index = 0"
        ),
        {"hashes": changed},
    )


def _delete_tile(connection: Connection) -> None:
    connection.execute(
        text("DELETE FROM ledger_tile WHERE level = 0 AND tile_index = 1")
    )


def _insert_tile(connection: Connection) -> None:
    connection.execute(
        text(
            "INSERT INTO ledger_tile (log_id, level, tile_index, hashes, inner_hashes) "
            "VALUES (1, 0, 50, :hashes, :inner)"
        ),
        {"hashes": bytes(32), "inner": b""},
    )


def _swap_tiles(connection: Connection) -> None:
    connection.execute(
        text(
            "UPDATE ledger_tile SET tile_index = -1 WHERE level = 0 AND tile_index = 0"
        )
    )
    connection.execute(
        text("UPDATE ledger_tile SET tile_index = 0 WHERE level = 0 AND tile_index = 1")
    )
    connection.execute(
        text(
            "UPDATE ledger_tile SET tile_index = 1 WHERE level = 0 AND tile_index = -1"
        )
    )


TAMPERING: list[tuple[str, Callable[[Connection], None], str, int, int | None]] = [
    ("entry-changed", _change_entry, "entry_changed", 5, None),
    ("entry-deleted", _delete_entry, "entry_deleted", 7, None),
    ("entry-deleted-gap-closed", _delete_and_close_gap, "entry_deleted", 7, None),
    ("entry-inserted-at-end", _insert_at_end, "entry_inserted", SIZE, None),
    ("entry-inserted-in-middle", _insert_in_middle, "entry_inserted", 4, None),
    ("entries-reordered", _swap_entries, "entry_reordered", 2, None),
    ("tile-changed", _change_tile, "tile_changed", 0, 0),
    ("tile-deleted", _delete_tile, "tile_missing", 1, 0),
    ("tile-inserted", _insert_tile, "tile_inserted", 50, 0),
    ("tiles-reordered", _swap_tiles, "tile_reordered", 0, 0),
]


@pytest.fixture
def filled(database_url: str, tmp_path: Path) -> LedgerStore:
    log = LedgerStore(make_engine(database_url), key_dir=tmp_path / "keys")
    log.append([asset(index) for index in range(SIZE)])
    log.checkpoint()
    return log


def test_untouched_log_audits_clean(filled: LedgerStore) -> None:
    report = filled.audit()
    assert report.findings == []
    assert report.entries_checked == SIZE


@pytest.mark.parametrize(
    ("tamper", "kind", "index", "level"),
    [case[1:] for case in TAMPERING],
    ids=[case[0] for case in TAMPERING],
)
def test_audit_names_tampered_index(
    filled: LedgerStore,
    tamper: Callable[[Connection], None],
    kind: str,
    index: int,
    level: int | None,
) -> None:
    with filled.engine.begin() as connection:
        tamper(connection)
    report = filled.audit()
    found = {
        (finding.kind, finding.index, finding.level) for finding in report.findings
    }
    assert (kind, index, level) in found, report.findings


def test_entry_change_breaks_checkpoint_root(filled: LedgerStore) -> None:
    with filled.engine.begin() as connection:
        _change_entry(connection)
    kinds = {finding.kind for finding in filled.audit().findings}
    assert "checkpoint_mismatch" in kinds
