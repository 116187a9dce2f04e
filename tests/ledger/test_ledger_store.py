"""The log in SQLite and PostgreSQL: appends, proofs, checkpoints, receipts."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from ledger_helpers import asset, reference_root
from sqlalchemy import text
from sqlalchemy.engine import Connection

from greenloop.ledger import (
    EMPTY_ROOT,
    CheckpointError,
    ReceiptError,
    canonical_json,
    leaf_hash,
    open_checkpoint,
    verify_consistency,
    verify_inclusion,
    verify_receipt,
)
from greenloop.ledger.tiles import MemoryTileLog, tail_keys
from greenloop.store.base import make_engine
from greenloop.store.ledger import (
    WRITER_SWITCH_INTERVAL,
    AppendResult,
    LedgerError,
    LedgerStore,
    PreparedBatch,
    TreeState,
    plan_tiles,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def log(database_url: str, tmp_path: Path) -> LedgerStore:
    return LedgerStore(make_engine(database_url), key_dir=tmp_path / "keys")


def _entries(store: LedgerStore) -> list[bytes]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT record FROM ledger_entry ORDER BY entry_index")
        ).all()
    return [bytes(row[0]) for row in rows]


def test_append_assigns_consecutive_indexes(log: LedgerStore) -> None:
    results = log.append([asset(index) for index in range(3)])
    assert results == [
        AppendResult("purchase-000000", 0, True),
        AppendResult("purchase-000001", 1, True),
        AppendResult("purchase-000002", 2, True),
    ]


def test_known_purchase_not_added_again(log: LedgerStore) -> None:
    log.append([asset(0), asset(1)])
    results = log.append([asset(1), asset(2), asset(2)])
    assert results == [
        AppendResult("purchase-000001", 1, False),
        AppendResult("purchase-000002", 2, True),
        AppendResult("purchase-000002", 2, False),
    ]
    assert log.size == 3


def test_personal_data_batch_rejected_whole(log: LedgerStore) -> None:
    key, record = asset(1, email="someone@example.org")
    with pytest.raises(ValueError, match="email"):
        log.append([asset(0), (key, record)])
    assert log.size == 0


def test_mismatched_purchase_id_rejected(log: LedgerStore) -> None:
    with pytest.raises(ValueError, match="must be equal"):
        log.append([("purchase-x", {"purchase_id": "purchase-y"})])


def test_root_matches_reference_tree(log: LedgerStore) -> None:
    for start, end in [(0, 200), (200, 300), (300, 700)]:
        log.append([asset(index) for index in range(start, end)])
    assert log.root() == reference_root(_entries(log))
    assert log.root(257) == reference_root(_entries(log)[:257])


def test_proofs_from_storage_verify(log: LedgerStore) -> None:
    log.append([asset(index) for index in range(600)])
    log.append([asset(index) for index in range(600, 1100)])
    entries = _entries(log)
    root = log.root()
    for index in (0, 255, 256, 599, 1099):
        proof = log.inclusion_proof(index)
        assert (
            verify_inclusion(leaf_hash(entries[index]), index, 1100, proof, root)
            is None
        )
    for old in (1, 256, 600, 1000):
        proof = log.consistency_proof(old, 1100)
        assert verify_consistency(old, 1100, proof, log.root(old), root) is None


def test_checkpoint_signs_current_head(log: LedgerStore) -> None:
    log.append([asset(index) for index in range(10)])
    checkpoint = open_checkpoint(log.checkpoint(), log.verifier)
    assert (checkpoint.size, checkpoint.root) == (10, log.root())


def test_checkpoint_refused_after_head_rewrite(
    log: LedgerStore, database_url: str
) -> None:
    log.append([asset(index) for index in range(300)])
    log.checkpoint()
    log.append([asset(index) for index in range(300, 600)])
    with make_engine(database_url).begin() as connection:
        connection.execute(
            text("UPDATE ledger_log SET root = :root"), {"root": bytes(32)}
        )
    with pytest.raises(CheckpointError, match="does not extend"):
        log.checkpoint()


def test_checkpoint_refused_after_tile_rewrite(
    log: LedgerStore, database_url: str
) -> None:
    log.append([asset(index) for index in range(300)])
    log.checkpoint()
    log.append([asset(index) for index in range(300, 600)])
    fresh = LedgerStore(make_engine(database_url), key_dir=log.key_dir)
    with make_engine(database_url).begin() as connection:
        hashes = connection.execute(
            text("SELECT hashes FROM ledger_tile WHERE level = 1 AND tile_index = 0")
        ).scalar_one()
        connection.execute(
            text(
                "UPDATE ledger_tile SET hashes = :hashes "
                "WHERE level = 1 AND tile_index = 0"
            ),
            {"hashes": bytes(32) + bytes(hashes)[32:]},
        )
    with pytest.raises(CheckpointError, match="does not extend"):
        fresh.checkpoint()


def test_checkpoint_refused_with_other_key(
    log: LedgerStore, database_url: str, tmp_path: Path
) -> None:
    log.append([asset(0)])
    log.checkpoint()
    other = LedgerStore(make_engine(database_url), key_dir=tmp_path / "other-keys")
    with pytest.raises(CheckpointError, match="restore the key"):
        other.checkpoint()


def test_receipt_verifies_offline(log: LedgerStore) -> None:
    log.append([asset(index) for index in range(300)])
    log.checkpoint()
    receipt = log.receipt("purchase-000123")
    verified = verify_receipt(receipt, log.verifier)
    assert verified.index == 123
    assert verified.record["purchase_id"] == "purchase-000123"
    assert verify_receipt(receipt["tlog_proof"], log.verifier).index == 123


def test_receipt_with_changed_record_rejected(log: LedgerStore) -> None:
    log.append([asset(index) for index in range(5)])
    log.checkpoint()
    receipt = log.receipt("purchase-000003")
    proven_amount = receipt["record"]["amount"]
    receipt["record"]["amount"] = "1.00"
    with pytest.raises(ReceiptError, match="record") as raised:
        verify_receipt(receipt, log.verifier)
    # The message names the edited key with both values, not whole records.
    expected = f"amount is '1.00' in the receipt and {proven_amount!r} in the proof"
    assert str(raised.value).endswith(expected)


def test_receipt_needs_covering_checkpoint(log: LedgerStore) -> None:
    log.append([asset(0)])
    log.checkpoint()
    log.append([asset(1)])
    with pytest.raises(LedgerError, match="not covered"):
        log.receipt("purchase-000001")


def test_unknown_purchase_receipt_raises(log: LedgerStore) -> None:
    with pytest.raises(KeyError, match="not in the ledger"):
        log.receipt("purchase-missing")


def test_two_origins_share_tables(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    first = LedgerStore(engine, origin="example.org/a", key_dir=tmp_path)
    second = LedgerStore(engine, origin="example.org/b", key_dir=tmp_path)
    first.append([asset(0), asset(1)])
    second.append([asset(0)])
    assert (first.size, second.size) == (2, 1)


def test_receipts_for_whole_batch(log: LedgerStore) -> None:
    log.append([asset(index) for index in range(300)])
    log.checkpoint()
    keys = [asset(index)[0] for index in (299, 0, 150)]
    receipts = log.receipts(keys)
    assert [receipt["index"] for receipt in receipts] == [299, 0, 150]
    for receipt in receipts:
        assert verify_receipt(receipt, log.verifier).checkpoint.size == 300


def test_batched_proofs_match_single(log: LedgerStore) -> None:
    log.append([asset(index) for index in range(600)])
    indexes = [0, 255, 256, 499]
    single = [log.inclusion_proof(index, 500) for index in indexes]
    assert log.inclusion_proofs(indexes, 500) == single


def test_origin_with_space_rejected(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key name"):
        LedgerStore(make_engine(sqlite_url), origin="green log", key_dir=tmp_path)


def test_append_result_fields_by_name(log: LedgerStore) -> None:
    (result,) = log.append([asset(0)])
    assert result.key == "purchase-000000"
    assert result.index == 0
    assert result.created is True


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        (("", {}), "non-empty string"),
        (("p" * 256, {}), "at most 255"),
        ((7, {}), "non-empty string"),
        (("purchase-x", ["not", "a", "mapping"]), "is a list"),
        (("purchase-x", {"purchase_id": "purchase-y"}), "must be equal"),
    ],
)
def test_invalid_pair_in_batch_rejected(
    log: LedgerStore, pair: tuple[object, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        log.append([asset(0), pair, asset(1)])  # type: ignore[list-item]
    assert log.size == 0


def test_append_batches_match_append(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    batched = LedgerStore(engine, origin="example.org/batched", key_dir=tmp_path)
    single = LedgerStore(engine, origin="example.org/single", key_dir=tmp_path)
    batches = [
        [asset(index) for index in range(0, 300)],
        [asset(index) for index in range(290, 600)],
        [],
        [asset(599), asset(600), asset(600)],
    ]
    results = list(batched.append_batches(iter(batches)))
    expected = [single.append(batch) for batch in batches]
    assert results == expected
    assert batched.size == 601
    assert batched.root() == single.root()
    assert results[1][0] == AppendResult("purchase-000290", 290, False)
    assert results[3][2] == AppendResult("purchase-000600", 600, False)


def test_append_batches_stop_at_invalid_batch(log: LedgerStore) -> None:
    key, record = asset(301, phone="123")
    batches = [
        [asset(index) for index in range(300)],
        [asset(300), (key, record)],
        [asset(index) for index in range(302, 400)],
    ]
    consumed = []
    with pytest.raises(ValueError, match="phone"):
        for results in log.append_batches(batches):
            consumed.append(results)
    assert log.size == 300
    assert consumed == []


def test_append_batches_closed_early(log: LedgerStore) -> None:
    batches = ([asset(index)] for index in range(10))
    generator = log.append_batches(batches)
    first = next(generator)
    generator.close()
    assert first == [AppendResult("purchase-000000", 0, True)]
    assert log.size == 2


def test_sqlite_insert_split_by_parameter_limit(
    sqlite_url: str, tmp_path: Path
) -> None:
    import sqlite3

    from sqlalchemy import event

    engine = make_engine(sqlite_url)

    def lower_limit(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Room for 2 entry rows (4 parameters each) per INSERT.
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 11)

    event.listen(engine, "connect", lower_limit)
    log = LedgerStore(engine, key_dir=tmp_path / "keys")
    results = log.append([asset(index) for index in range(7)])
    assert [result.index for result in results] == list(range(7))
    assert log.size == 7
    assert log.root() == reference_root(_entries(log))


def test_encoded_batches_match_records(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    encoded = LedgerStore(engine, origin="example.org/encoded", key_dir=tmp_path)
    records = LedgerStore(engine, origin="example.org/records", key_dir=tmp_path)
    batches = [[asset(index) for index in range(0, 300)], [asset(299), asset(300)]]
    as_bytes = [
        [(key, canonical_json(record)) for key, record in batch] for batch in batches
    ]
    assert list(encoded.append_batches(as_bytes, encoded=True)) == list(
        records.append_batches(batches)
    )
    assert encoded.root() == records.root()
    assert encoded.entry("purchase-000007") == records.entry("purchase-000007")


def test_encoded_entry_must_state_its_purchase(log: LedgerStore) -> None:
    key, record = asset(1)
    entry = canonical_json({**record, "purchase_id": "purchase-000002"})
    with pytest.raises(ValueError, match="does not state that purchase_id"):
        list(log.append_batches([[(key, entry)]], encoded=True))
    with pytest.raises(ValueError, match="as bytes"):
        list(log.append_batches([[(key, entry.decode())]], encoded=True))
    assert log.size == 0


def test_append_batches_with_another_writer(database_url: str, tmp_path: Path) -> None:
    # Another store appends to the same log between the batches, so the tiles
    # worked out ahead for the next batch start from a stale head.
    log = LedgerStore(make_engine(database_url), key_dir=tmp_path / "keys")
    other = LedgerStore(make_engine(database_url), key_dir=tmp_path / "keys")

    def batches() -> Iterator[list[tuple[str, dict[str, object]]]]:
        for start in range(0, 1_000, 250):
            yield [asset(index) for index in range(start, start + 200)]
            other.append([asset(index) for index in range(start + 200, start + 250)])

    results = [result for batch in log.append_batches(batches()) for result in batch]
    assert log.size == 1_000
    stored = _entries(log)
    assert log.root() == reference_root(stored)
    for result in results:
        assert result.created
        assert orjson.loads(stored[result.index])["purchase_id"] == result.key
    assert log.audit().ok


def test_append_while_another_writer_commits(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another store commits an append after the head is read and before the
    # tiles at its right edge are, so those tiles are wider than the head.
    log = LedgerStore(make_engine(database_url), key_dir=tmp_path / "keys")
    other = LedgerStore(make_engine(database_url), key_dir=tmp_path / "keys")
    log.append([asset(index) for index in range(95)])
    select_tiles = log._select_tiles
    appended = []

    def select_after_append(connection: Connection, keys: list) -> list:
        if not appended:
            appended.extend(other.append([asset(index) for index in range(95, 100)]))
        return select_tiles(connection, keys)

    monkeypatch.setattr(log, "_select_tiles", select_after_append)
    batch = [asset(index) for index in range(100, 110)]
    results = [result for part in log.append_batches([batch]) for result in part]

    assert len(appended) == 5
    assert [result.index for result in results] == list(range(100, 110))
    assert log.size == 110
    assert log.root() == reference_root(_entries(log))
    assert log.audit().ok


def test_plan_tiles_gives_the_tree_of_an_append() -> None:
    for size, count in [(0, 1), (0, 256), (255, 1), (250, 600), (65_530, 10), (3, 0)]:
        tree = MemoryTileLog()
        tree.append_hashes([leaf_hash(b"%d" % index) for index in range(size)])
        state = TreeState(
            tree.size,
            tree.root(),
            {key: tree.tiles[key] for key in tail_keys(tree.size)},
        )
        entries = [b"new %d" % index for index in range(count)]
        prepared = PreparedBatch(
            [f"key-{index}" for index in range(count)],
            entries,
            [leaf_hash(entry) for entry in entries],
        )
        plan = plan_tiles(state, prepared)
        if count == 0:
            assert plan is None
            continue
        assert plan is not None
        tree.append_hashes(prepared.leaves)
        assert plan.end.size == size + count
        assert plan.end.root == tree.root()
        assert plan.changed == [tree.tiles[tile.key] for tile in plan.changed]
        assert {tile.key for tile in plan.replaced} <= set(state.tails or {})
        assert plan.results[0] == AppendResult("key-0", size, True)


def test_no_plan_for_repeated_keys_or_unknown_tiles() -> None:
    entries = [b"a", b"b"]
    prepared = PreparedBatch(["same", "same"], entries, [leaf_hash(e) for e in entries])
    empty = TreeState(0, EMPTY_ROOT, {})
    assert plan_tiles(empty, prepared) is None
    distinct = prepared._replace(keys=["one", "two"])
    assert plan_tiles(empty, distinct) is not None
    assert plan_tiles(TreeState(0, EMPTY_ROOT, None), distinct) is None
    assert plan_tiles(None, distinct) is None


def test_batch_hook_commits_with_the_entries(database_url: str, tmp_path: Path) -> None:
    log = LedgerStore(make_engine(database_url), key_dir=tmp_path / "keys")
    with log.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS hook_rows"))
        connection.execute(text("CREATE TABLE hook_rows (key VARCHAR(40), idx INT)"))
    seen: list[list[AppendResult]] = []

    def record(connection: Connection, results: list[AppendResult]) -> None:
        seen.append(results)
        if any(result.key == "purchase-000250" for result in results):
            raise RuntimeError("the hook failed")
        for result in results:
            connection.execute(
                text("INSERT INTO hook_rows VALUES (:key, :idx)"),
                {"key": result.key, "idx": result.index},
            )

    batches = [
        [asset(index) for index in range(0, 100)],
        [],
        [asset(index) for index in range(50, 200)],
        [asset(index) for index in range(200, 300)],
    ]
    yielded = []
    with pytest.raises(RuntimeError, match="the hook failed"):
        for results in log.append_batches(batches, with_each=record):
            yielded.append(results)
    assert seen[:3] == yielded
    assert len(seen) == 4
    # The failing batch left neither entries nor hook rows behind.
    assert log.size == 200
    with log.engine.connect() as connection:
        rows = connection.execute(text("SELECT key, idx FROM hook_rows")).all()
        connection.execute(text("DROP TABLE hook_rows"))
        connection.commit()
    assert len(rows) == 250
    assert {(key, idx) for key, idx in rows} == {
        (result.key, result.index) for batch in yielded for result in batch
    }


def test_switch_interval_short_while_appending(log: LedgerStore) -> None:
    before = sys.getswitchinterval()
    during: list[float] = []

    def note(_connection: Connection, _results: list[AppendResult]) -> None:
        during.append(sys.getswitchinterval())

    batches = [[asset(index)] for index in range(3)]
    for _ in log.append_batches(batches, with_each=note):
        during.append(sys.getswitchinterval())
    assert during
    assert max(during) <= WRITER_SWITCH_INTERVAL
    assert sys.getswitchinterval() == before


def test_copy_types_match_tables():
    from sqlalchemy.dialects import postgresql

    from greenloop.store.ledger import (
        ENTRY_COPY_TYPES,
        TILE_COPY_TYPES,
        ledger_entries,
        ledger_tiles,
    )

    # COPY's binary format sends each value in the named type's own form.
    binary_type = {
        "INTEGER": "int4",
        "BIGINT": "int8",
        "SMALLINT": "int2",
        "VARCHAR": "text",
        "TEXT": "text",
        "BYTEA": "bytea",
    }
    dialect = postgresql.dialect()
    for table, copied in (
        (ledger_entries, ENTRY_COPY_TYPES),
        (ledger_tiles, TILE_COPY_TYPES),
    ):
        declared = tuple(
            binary_type[column.type.compile(dialect=dialect).split("(")[0]]
            for column in table.columns
        )
        assert declared == copied, table.name
