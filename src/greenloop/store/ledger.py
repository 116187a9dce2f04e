"""The ledger in the database: entries, tiles, tree heads and checkpoints.

Four tables on the shared metadata hold one or more logs, each named by its
origin. An append of a batch is one transaction of a few bulk statements:
one lookup of the batch's purchase ids, one multi-row insert of entries, one
of tiles, and the update of the tree head. A proof reads O(log n) tiles in one
query. Tiles above level 0 and the partial tile at the right edge are cached:
a stored hash never changes, so a cached tile serves any size up to its width.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain, repeat
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from greenloop.ledger.audit import (
    CHECKPOINT_MISMATCH,
    AuditReport,
    Finding,
    StoredCheckpoint,
    audit_log,
)
from greenloop.ledger.canonical import canonical_json
from greenloop.ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    sign_checkpoint,
)
from greenloop.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    Node,
    NodeReader,
    ProofError,
    consistency_proof_from,
    inclusion_proof_from,
    root_hash,
    verify_consistency,
)
from greenloop.ledger.note import (
    Signer,
    Verifier,
    check_key_name,
    load_or_create_signer,
    verifier_path,
)
from greenloop.ledger.receipt import build_receipt
from greenloop.ledger.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    Tile,
    TileKey,
    entries_path,
    entry_bundle,
    extend_tiles,
    read_nodes_from,
    tail_keys,
    tile_path,
)
from greenloop.store.base import copy_rows, metadata, sqlite_insert_many

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255
KEY_LOOKUP_CHUNK = 5_000
TILE_CACHE_SIZE = 4_096
STREAM_BATCH = 10_000
# Seconds a thread may keep the GIL while another waits for it, during
# append_batches (the interpreter's default is 0.005).
WRITER_SWITCH_INTERVAL = 0.001
# Maximum tiles per SELECT on PostgreSQL, where each tile is its own lookup.
POSTGRESQL_TILES_PER_SELECT = 64
# Inclusion proofs per group in `inclusion_proofs`: the leaf tiles of a group,
# up to this many of about 11 KB each, are read together before its proofs.
PROOFS_PER_LEAF_READ = 256

# The PostgreSQL types of the columns that `_insert_rows` copies into
# ledger_entry and ledger_tile, in column order.
ENTRY_COPY_TYPES = ("int4", "int8", "text", "bytea")
TILE_COPY_TYPES = ("int4", "int2", "int8", "bytea", "bytea")

_Result = TypeVar("_Result")
_STRING_TYPE = {str}
_DICT_TYPE = {dict}
_sha256 = hashlib.sha256

ledger_logs = Table(
    "ledger_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("origin", String(255), nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
)

ledger_entries = Table(
    "ledger_entry",
    metadata,
    Column("log_id", Integer, ForeignKey("ledger_log.id"), primary_key=True),
    Column("entry_index", BigInteger, primary_key=True, autoincrement=False),
    Column("purchase_id", String(MAX_KEY_LENGTH), nullable=False),
    Column("record", LargeBinary, nullable=False),
    UniqueConstraint("log_id", "purchase_id"),
)

ledger_tiles = Table(
    "ledger_tile",
    metadata,
    Column("log_id", Integer, ForeignKey("ledger_log.id"), primary_key=True),
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("tile_index", BigInteger, primary_key=True, autoincrement=False),
    Column("hashes", LargeBinary, nullable=False),
    Column("inner_hashes", LargeBinary, nullable=False),
)

ledger_checkpoints = Table(
    "ledger_checkpoint",
    metadata,
    Column("log_id", Integer, ForeignKey("ledger_log.id"), primary_key=True),
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
)

LEDGER_TABLES = [ledger_logs, ledger_entries, ledger_tiles, ledger_checkpoints]


def _driver_sql(
    connection: Connection, sql: str, parameters: Any = (), binary: bool = False
) -> list[tuple[Any, ...]]:
    """Run `sql` (with ? placeholders) on the DBAPI cursor and return all rows.

    The append and proof paths run these statements thousands of times per
    second, where SQLAlchemy's statement compilation and result processing
    would dominate. The cursor belongs to `connection`, so the statement
    joins its transaction. A list of parameter tuples runs as executemany.
    With `binary=True`, psycopg fetches the rows in PostgreSQL's binary format,
    so a bytea column arrives as its bytes instead of as hex text twice as
    long. SQLite ignores the flag.
    """
    if connection.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    # Any: the DBAPI cursor type has no psycopg `binary` argument.
    cursor: Any = connection.connection.cursor()
    try:
        if isinstance(parameters, list):
            cursor.executemany(sql, parameters)
        elif binary and connection.dialect.name == "postgresql":
            cursor.execute(sql, parameters, binary=True)
        else:
            cursor.execute(sql, parameters)
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        cursor.close()


def log_origins(engine: Engine) -> list[str]:
    """Return the origins of the logs in a store, sorted, and create nothing.

    A store without ledger tables has no logs and returns an empty list.
    """
    if not inspect(engine).has_table(ledger_logs.name):
        return []
    with engine.connect() as connection:
        return sorted(connection.execute(select(ledger_logs.c.origin)).scalars())


class LedgerError(RuntimeError):
    """The stored log is inconsistent, or an operation needs a step not yet taken."""


class AppendResult(NamedTuple):
    """A purchase's entry: its key, its index, and whether this call added it."""

    key: str
    # The field shadows tuple.index, which nothing here calls.
    index: int  # type: ignore[assignment]
    created: bool


class PreparedBatch(NamedTuple):
    """A batch checked and encoded for appending, before any database work."""

    keys: list[str]
    entries: list[bytes]
    leaves: list[bytes]


BatchHook = Callable[[Connection, list[AppendResult]], None]
"""Writes that join a batch's transaction: see `LedgerStore.append_batches`."""


class TreeState(NamedTuple):
    """A log's size and root, and its partial tiles at the right edge when known."""

    size: int
    root: bytes
    tails: dict[TileKey, Tile] | None


class TilePlan(NamedTuple):
    """The tile changes of a batch, worked out before the batch is written.

    A plan assumes that the log is at `start` and that every key of the batch
    is new. The writer uses it only when both are true. Otherwise it works
    the changes out itself.
    """

    start: TreeState
    changed: list[Tile]
    replaced: list[Tile]
    end: TreeState
    results: list[AppendResult]


class LedgerStore:
    """An append-only Merkle log of green-asset records in SQLite or PostgreSQL.

    Creates its tables if missing. The signing key lives in `key_dir` and is
    created on the first checkpoint.
    """

    def __init__(
        self,
        engine: Engine,
        origin: str = "greenloop.local/green-assets",
        key_dir: Path = Path("keys"),
    ) -> None:
        self.engine = engine
        # Reads on PostgreSQL run in autocommit mode: see `_read`.
        self._read_engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )
        self.origin = check_key_name(origin)
        self.key_dir = Path(key_dir)
        metadata.create_all(engine, tables=LEDGER_TABLES)
        self.log_id = self._ensure_log()
        self._signer: Signer | None = None
        self._cache: OrderedDict[TileKey, Tile] = OrderedDict()
        self._cache_lock = threading.Lock()

    def _ensure_log(self) -> int:
        query = select(ledger_logs.c.id).where(ledger_logs.c.origin == self.origin)
        with self.engine.begin() as connection:
            found = connection.execute(query).scalar()
            if found is not None:
                return int(found)
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(ledger_logs).values(
                        origin=self.origin, size=0, root=EMPTY_ROOT
                    )
                )
        except IntegrityError:
            logger.debug("log %s was created by another process", self.origin)
        with self.engine.begin() as connection:
            return int(connection.execute(query).scalar_one())

    # Reading the tree head and tiles.

    def _read(self, work: Callable[[Connection], _Result]) -> _Result:
        """Run `work` on a pooled connection, and once more if it was dropped.

        On PostgreSQL the connection is in autocommit mode, so a read sends no
        BEGIN and no ROLLBACK, only its own statements. Under READ COMMITTED
        each statement takes its own snapshot in either mode. Proofs stay valid
        because a stored hash never changes and an append commits its tiles
        with the tree head that needs them.

        The statements go to the driver directly, so SQLAlchemy does not see a
        connection that the server closed. This method detects that case,
        replaces the engine's pool, and runs `work` again on a new connection,
        which is safe because reads change nothing.
        """
        with self._read_engine.connect() as connection:
            try:
                return work(connection)
            except Exception as error:
                if not _is_disconnect(connection, error):
                    raise
                connection.invalidate(error)
                logger.warning(
                    "database connection lost while reading %s (%s), so the "
                    "connection pool is replaced and the read runs again",
                    self.origin,
                    error,
                )
        self.engine.dispose()
        with self._read_engine.connect() as connection:
            return work(connection)

    @property
    def size(self) -> int:
        """Number of entries in the log."""
        return self._read(lambda connection: self._head(connection)[0])

    def root(self, size: int | None = None) -> bytes:
        """Return the root hash at `size` entries (default: the current size)."""

        def read(connection: Connection) -> bytes:
            current, current_root = self._head(connection)
            tree_size = current if size is None else self._check_size(size, current)
            if tree_size == current:
                return current_root
            return root_hash(tree_size, self._reader(connection))

        return self._read(read)

    def _head(self, connection: Connection) -> tuple[int, bytes]:
        (row,) = _driver_sql(
            connection,
            "SELECT size, root FROM ledger_log WHERE id = ?",
            (self.log_id,),
            binary=True,
        )
        return int(row[0]), bytes(row[1])

    def _check_size(self, size: int, current: int) -> int:
        if not 0 <= size <= current:
            raise ValueError(
                f"tree size {size} is outside 0..{current}, the log's size"
            )
        return size

    def _reader(
        self,
        connection: Connection,
        cached: bool = True,
        known: Mapping[TileKey, Tile] | None = None,
    ) -> NodeReader:
        """Return a node reader; with `cached=False` it reads every tile afresh.

        `known` tiles, read on the same connection, serve like cached ones.
        """

        def read(nodes: Sequence[Node]) -> list[bytes]:
            tiles = self._load_tiles(connection, nodes, cached, known)
            return read_nodes_from(tiles, nodes)

        return read

    def _head_and_leaf_tile(
        self, connection: Connection, index: int
    ) -> tuple[int, Tile | None]:
        """Return the log's size and the level-0 tile of entry `index`, in one query.

        The tile is None when it does not exist, for example when `index` is
        outside the log.
        """
        (row,) = _driver_sql(
            connection,
            "SELECT ledger_log.size, ledger_tile.tile_index, ledger_tile.hashes, "
            "ledger_tile.inner_hashes FROM ledger_log LEFT JOIN ledger_tile "
            "ON ledger_tile.log_id = ledger_log.id AND ledger_tile.level = 0 "
            "AND ledger_tile.tile_index = ? WHERE ledger_log.id = ?",
            (index >> TILE_HEIGHT, self.log_id),
            binary=True,
        )
        if row[1] is None:
            return int(row[0]), None
        return int(row[0]), Tile(0, int(row[1]), bytes(row[2]), bytes(row[3]))

    def _load_tiles(
        self,
        connection: Connection,
        nodes: Sequence[Node],
        cached: bool = True,
        known: Mapping[TileKey, Tile] | None = None,
    ) -> dict[TileKey, Tile]:
        # Plain (level, index) tuples: they hash and compare as TileKeys do.
        needed: dict[tuple[int, int], int] = {}
        for height, index in nodes:
            sub_height = height & (TILE_HEIGHT - 1)
            first = index << sub_height
            key = (height // TILE_HEIGHT, first >> TILE_HEIGHT)
            width = (first & (TILE_WIDTH - 1)) + (1 << sub_height)
            if needed.get(key, 0) < width:
                needed[key] = width
        tiles: dict[TileKey, Tile] = {}
        missing = []
        cache = self._cache
        with self._cache_lock:
            for key, width in needed.items():
                hit: Tile | None = None
                if known is not None:
                    hit = known.get(key)  # type: ignore[call-overload]
                if hit is None and cached:
                    hit = cache.get(key)  # type: ignore[call-overload]
                    if hit is not None:
                        cache.move_to_end(key)  # type: ignore[arg-type]
                if hit is not None and len(hit.hashes) >= width * HASH_SIZE:
                    tiles[key] = hit  # type: ignore[index]
                else:
                    missing.append(TileKey(*key))
        if missing:
            for tile in self._select_tiles(connection, missing):
                tiles[tile.key] = tile
                # Level-0 tiles are cached only at the right edge, where every
                # proof's last hashes come from; the rest would fill memory.
                if tile.level > 0 or tile.width < TILE_WIDTH:
                    self._remember(tile)
                else:
                    # The cache may still hold this tile from when it was the
                    # partial one at the right edge, which every later proof
                    # that needs its full width would read again.
                    self._forget(tile.key)
        return tiles

    def _select_tiles(
        self, connection: Connection, keys: Sequence[TileKey]
    ) -> list[Tile]:
        if not keys:
            return []
        if connection.dialect.name == "postgresql":
            return self._select_tiles_postgresql(connection, keys)
        condition = " OR ".join(["(level = ? AND tile_index = ?)"] * len(keys))
        parameters: list[int] = [self.log_id]
        for key in keys:
            parameters.extend((key.level, key.index))
        rows = _driver_sql(
            connection,
            "SELECT level, tile_index, hashes, inner_hashes FROM ledger_tile "
            f"WHERE log_id = ? AND ({condition})",
            tuple(parameters),
        )
        return [
            Tile(int(row[0]), int(row[1]), bytes(row[2]), bytes(row[3])) for row in rows
        ]

    def _select_tiles_postgresql(
        self, connection: Connection, keys: Sequence[TileKey]
    ) -> list[Tile]:
        """Read tiles with one primary-key lookup each, joined by UNION ALL.

        PostgreSQL 15.20 (seen with EXPLAIN) rewrites an OR of (level,
        tile_index) pairs that share a level into one condition on the level
        plus a filter on tile_index. Without table statistics it then scans
        every tile of that level. An exact key in each arm of a UNION ALL is
        planned as a primary-key lookup by both custom and generic plans.
        """
        tiles: list[Tile] = []
        for start in range(0, len(keys), POSTGRESQL_TILES_PER_SELECT):
            chunk = keys[start : start + POSTGRESQL_TILES_PER_SELECT]
            parameters: list[int] = []
            for key in chunk:
                parameters.extend((self.log_id, key.level, key.index))
            rows = _driver_sql(
                connection,
                _union_of_tile_lookups(len(chunk)),
                tuple(parameters),
                binary=True,
            )
            tiles.extend(
                Tile(int(row[0]), int(row[1]), bytes(row[2]), bytes(row[3]))
                for row in rows
            )
        return tiles

    def _remember(self, tile: Tile) -> None:
        with self._cache_lock:
            self._cache[tile.key] = tile
            self._cache.move_to_end(tile.key)
            while len(self._cache) > TILE_CACHE_SIZE:
                self._cache.popitem(last=False)

    def _forget(self, key: TileKey) -> None:
        if key not in self._cache:
            return
        with self._cache_lock:
            self._cache.pop(key, None)

    # Appending.

    def append(
        self, entries: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[AppendResult]:
        """Append (purchase_id, record) pairs as one transaction.

        A purchase id already in the log, or repeated within the batch, keeps
        its first index and comes back with created=False. Records are stored
        as RFC 8785 canonical JSON; a record with a personal-data key, or whose
        own `purchase_id` differs from the key, raises ValueError and nothing
        is written.
        """
        return self._append_prepared(prepare_batch(entries))[0]

    def append_batches(
        self,
        batches: Iterable[Sequence[tuple[str, Any]]],
        *,
        encoded: bool = False,
        with_each: BatchHook | None = None,
    ) -> Iterator[list[AppendResult]]:
        """Append many batches, each as its own transaction; yield each one's results.

        Each batch behaves as one `append` call. While a worker thread writes
        batch N, this generator encodes and hashes batch N + 1, so the two
        overlap on a machine with a free core: the SQLite and PostgreSQL
        drivers release the GIL while the database works. A batch's results
        are yielded after its commit, by which time the next batch is being
        written. When a batch is invalid, ValueError is raised once the batches
        before it have been committed, and nothing of it is written. Closing
        the generator early waits for the batch being written and commits it.
        Until the generator finishes or is closed, the interpreter's switch
        interval is at most `WRITER_SWITCH_INTERVAL`.

        With `encoded=True` each pair is (purchase_id, canonical bytes). The
        caller must have encoded the record as RFC 8785 JSON without personal
        data, as the main job does in SQL. The log only checks that each entry
        states its purchase id (see `prepare_encoded`).

        `with_each(connection, results)` runs in each batch's transaction, in
        the writer thread, after the batch's entries are written, for every
        batch in turn (empty ones too). What it writes on `connection` commits
        with the entries or not at all, and an error it raises stops the
        appends as an invalid batch does.
        """
        prepare = prepare_encoded if encoded else prepare_batch
        # The state the log will be in once the batch in flight is written,
        # as far as this generator can tell; None when it cannot.
        expected: TreeState | None = self._tree_state()
        with (
            _short_switch_interval(),
            ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="ledger-append"
            ) as writer,
        ):
            pending: Future[tuple[list[AppendResult], TreeState]] | None = None
            try:
                for batch in batches:
                    prepared = prepare(batch)
                    # The tiles are worked out here, while the writer is busy,
                    # on the assumption that the batch in flight adds its keys.
                    plan = plan_tiles(expected, prepared)
                    if pending is None:
                        pending = writer.submit(
                            self._append_prepared, prepared, plan, with_each
                        )
                        expected = None if plan is None else plan.end
                        continue
                    done, reached = pending.result()
                    if reached != expected:
                        plan = plan_tiles(reached, prepared)
                    # Batch N + 1 is written while the caller handles batch N.
                    pending = writer.submit(
                        self._append_prepared, prepared, plan, with_each
                    )
                    expected = None if plan is None else plan.end
                    yield done
                if pending is not None:
                    done, _ = pending.result()
                    pending = None
                    yield done
            finally:
                if pending is not None:
                    # Wait for the write in flight, so its error is not lost.
                    pending.result()

    def _tree_state(self) -> TreeState:
        """Read the log's size, root and partial tiles at the right edge.

        The head and the tiles are read by separate statements without the
        log's lock, so an append committed between them leaves tiles wider
        than the head needs. The tiles are then unknown (None), and the writer
        reads them again under the lock.
        """
        with self.engine.connect() as connection:
            size, root = self._head(connection)
            tails = self._select_tiles(connection, tail_keys(size)) if size else []
        found = {tile.key: tile for tile in tails}
        if not _tails_fit(size, found):
            logger.debug(
                "log %s grew between the reads of its head and its tiles", self.origin
            )
            return TreeState(size, root, None)
        return TreeState(size, root, found)

    def _append_prepared(
        self,
        prepared: PreparedBatch,
        plan: TilePlan | None = None,
        with_each: BatchHook | None = None,
    ) -> tuple[list[AppendResult], TreeState]:
        """Write a prepared batch; return its results and the log's state after it.

        `plan` saves the tile work when it starts from the log's current state
        and none of the keys is stored yet. `with_each` runs last in the
        transaction.
        """
        keys = prepared.keys
        with self.engine.begin() as connection:
            self._lock_head(connection)
            size, root = self._head(connection)
            existing = self._existing_indexes(connection, keys) if keys else {}
            if not keys:
                results: list[AppendResult] = []
                new_batch = prepared
                reached = TreeState(size, root, None)
            elif (
                plan is not None
                and not existing
                and plan.start.size == size
                and plan.start.root == root
            ):
                results, new_batch = plan.results, prepared
                self._write_planned(connection, new_batch, plan)
                reached = plan.end
            else:
                results, new_batch = _assign_indexes(prepared, existing, size)
                reached = TreeState(size, root, None)
                if new_batch.keys:
                    reached = self._write_batch(connection, size, new_batch)
            if with_each is not None:
                with_each(connection, results)
        if new_batch.keys:
            logger.info(
                "appended %d entries to %s (size %d)",
                len(new_batch.keys),
                self.origin,
                size + len(new_batch.keys),
            )
        return results, reached

    def _lock_head(self, connection: Connection) -> None:
        # A no-op update takes the row lock on PostgreSQL and the write lock on
        # SQLite before anything is read, so concurrent appends run in turn.
        connection.execute(
            update(ledger_logs)
            .where(ledger_logs.c.id == self.log_id)
            .values(size=ledger_logs.c.size)
        )

    def _existing_indexes(
        self, connection: Connection, keys: Sequence[str]
    ) -> dict[str, int]:
        found: dict[str, int] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), KEY_LOOKUP_CHUNK):
            chunk = unique[start : start + KEY_LOOKUP_CHUNK]
            if connection.dialect.name == "postgresql":
                # One index lookup per key, whatever the table's statistics.
                # The LIMIT keeps PostgreSQL from turning the lateral subquery
                # into a join it could plan another way. Without statistics,
                # PostgreSQL 15 planned `purchase_id = ANY(?)` for 5,000 keys
                # as a scan of the log's whole key range.
                rows = _driver_sql(
                    connection,
                    "SELECT wanted.purchase_id, found.entry_index "
                    "FROM unnest(?::text[]) AS wanted(purchase_id) "
                    "CROSS JOIN LATERAL (SELECT entry_index FROM ledger_entry "
                    "WHERE log_id = ? AND purchase_id = wanted.purchase_id "
                    "LIMIT 1) AS found",
                    (chunk, self.log_id),
                )
            else:
                marks = ",".join("?" * len(chunk))
                rows = _driver_sql(
                    connection,
                    "SELECT purchase_id, entry_index FROM ledger_entry "
                    f"WHERE log_id = ? AND purchase_id IN ({marks})",
                    (self.log_id, *chunk),
                )
            found.update((row[0], int(row[1])) for row in rows)
        return found

    def _write_batch(
        self, connection: Connection, size: int, batch: PreparedBatch
    ) -> TreeState:
        tails = self._select_tiles(connection, tail_keys(size)) if size else []
        tail_map = {tile.key: tile for tile in tails}
        changed, replaced, end = _extend(size, tail_map, batch.leaves)
        self._write_rows(connection, size, batch, replaced, changed, end.root)
        return end

    def _write_planned(
        self, connection: Connection, batch: PreparedBatch, plan: TilePlan
    ) -> None:
        self._write_rows(
            connection,
            plan.start.size,
            batch,
            plan.replaced,
            plan.changed,
            plan.end.root,
        )

    def _write_rows(
        self,
        connection: Connection,
        size: int,
        batch: PreparedBatch,
        replaced: Sequence[Tile],
        changed: Sequence[Tile],
        new_root: bytes,
    ) -> None:
        """Insert the batch's entries, replace its tiles and move the tree head.

        `replaced` are the stored tiles that `changed` supersedes.
        """
        new_size = size + len(batch.keys)
        self._insert_rows(
            connection,
            "ledger_entry (log_id, entry_index, purchase_id, record)",
            ENTRY_COPY_TYPES,
            list(
                zip(
                    repeat(self.log_id),
                    range(size, new_size),
                    batch.keys,
                    batch.entries,
                    strict=False,
                )
            ),
        )
        self._replace_tiles(connection, replaced, changed)
        connection.execute(
            update(ledger_logs)
            .where(ledger_logs.c.id == self.log_id)
            .values(size=new_size, root=new_root)
        )

    def _replace_tiles(
        self, connection: Connection, replaced: Sequence[Tile], changed: Sequence[Tile]
    ) -> None:
        for tile in replaced:
            _driver_sql(
                connection,
                "DELETE FROM ledger_tile "
                "WHERE log_id = ? AND level = ? AND tile_index = ?",
                (self.log_id, tile.level, tile.index),
            )
        self._insert_rows(
            connection,
            "ledger_tile (log_id, level, tile_index, hashes, inner_hashes)",
            TILE_COPY_TYPES,
            [
                (self.log_id, tile.level, tile.index, tile.hashes, tile.inner)
                for tile in changed
            ],
        )

    def _insert_rows(
        self,
        connection: Connection,
        target: str,
        copy_types: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
    ) -> None:
        """Insert many rows: COPY on PostgreSQL, multi-row INSERTs on SQLite.

        `copy_types` names the PostgreSQL type of each column, in order, for
        COPY's binary format, which sends the hashes and records as they are
        instead of as hex text.
        """
        if connection.dialect.name == "postgresql":
            copy_rows(connection.connection.cursor(), target, rows, copy_types)
            return
        sqlite_insert_many(
            connection,
            f"INSERT INTO {target}",
            len(rows[0]),
            list(chain.from_iterable(rows)),
        )

    # Proofs.

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the RFC 9162 inclusion proof of entry `index` at `size` entries.

        NOTE: on PostgreSQL one call took about 320 µs at 10^7 entries in
        ledger_bench.py (3,100 proofs/s), mostly client CPU in the connection
        pool and psycopg. `inclusion_proofs` serves many proofs about 3 times
        as fast.
        """

        def read(connection: Connection) -> list[bytes]:
            # One query returns the tree head and the leaf's tile. The upper
            # tiles usually come from the cache, so most proofs need no other.
            current, leaf_tile = self._head_and_leaf_tile(connection, index)
            tree_size = current if size is None else self._check_size(size, current)
            known = {} if leaf_tile is None else {leaf_tile.key: leaf_tile}
            reader = self._reader(connection, known=known)
            return inclusion_proof_from(index, tree_size, reader)

        return self._read(read)

    def inclusion_proofs(
        self, indexes: Sequence[int], size: int | None = None
    ) -> list[list[bytes]]:
        """Return the inclusion proofs of many entries at `size` over one connection.

        On PostgreSQL the leaf tiles of up to `PROOFS_PER_LEAF_READ` proofs are
        read together, so a group of proofs costs a few queries instead of one
        per proof.
        """

        def read(connection: Connection) -> list[list[bytes]]:
            current, _ = self._head(connection)
            tree_size = current if size is None else self._check_size(size, current)
            if connection.dialect.name != "postgresql":
                # SQLite has no round trip to save, and in ledger_bench.py at
                # 10^6 entries an OR chain of 256 leaf tiles made it 3x slower.
                reader = self._reader(connection)
                return [
                    inclusion_proof_from(index, tree_size, reader) for index in indexes
                ]
            proofs: list[list[bytes]] = []
            for start in range(0, len(indexes), PROOFS_PER_LEAF_READ):
                group = indexes[start : start + PROOFS_PER_LEAF_READ]
                leaf_keys = dict.fromkeys(
                    TileKey(0, index >> TILE_HEIGHT)
                    for index in group
                    if 0 <= index < tree_size
                )
                leaf_tiles = self._select_tiles(connection, list(leaf_keys))
                reader = self._reader(
                    connection, known={tile.key: tile for tile in leaf_tiles}
                )
                proofs.extend(
                    inclusion_proof_from(index, tree_size, reader) for index in group
                )
            return proofs

        return self._read(read)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Return the RFC 9162 consistency proof from `size1` to `size2` entries."""

        def read(connection: Connection) -> list[bytes]:
            current, _ = self._head(connection)
            tree_size = current if size2 is None else self._check_size(size2, current)
            return consistency_proof_from(size1, tree_size, self._reader(connection))

        return self._read(read)

    def entry(self, key: str) -> tuple[int, bytes]:
        """Return the index and canonical record bytes of purchase `key`."""
        columns = ledger_entries.c
        with self.engine.connect() as connection:
            row = connection.execute(
                select(columns.entry_index, columns.record)
                .where(columns.log_id == self.log_id)
                .where(columns.purchase_id == key)
            ).one_or_none()
        if row is None:
            raise KeyError(f"purchase {key!r} is not in the ledger {self.origin!r}")
        return int(row.entry_index), bytes(row.record)

    # Checkpoints and receipts.

    @property
    def signer(self) -> Signer:
        """The log's Ed25519 note signer, created in `key_dir` on first use."""
        if self._signer is None:
            self._signer = load_or_create_signer(self.key_dir, self.origin)
        return self._signer

    @property
    def verifier(self) -> Verifier:
        """The public key that verifies this log's checkpoints."""
        return self.signer.verifier

    def checkpoint(self) -> str:
        """Sign and store a checkpoint for the current size, and return the signed note.

        Raises CheckpointError, and signs nothing, when the current tree does
        not extend the latest checkpoint signed before.
        """
        signer = self.signer
        with self.engine.begin() as connection:
            self._lock_head(connection)
            size, root = self._head(connection)
            latest = self._latest_checkpoint(connection)
            if latest is not None:
                self._check_signed_by(signer, str(latest.note))
                if latest.size == size and latest.root == root:
                    return str(latest.note)
                self._check_extends(
                    connection, int(latest.size), bytes(latest.root), size, root
                )
            note = sign_checkpoint(signer, Checkpoint(self.origin, size, root))
            connection.execute(
                insert(ledger_checkpoints).values(
                    log_id=self.log_id,
                    size=size,
                    root=root,
                    note=note,
                    signed_at=datetime.now(UTC),
                )
            )
        logger.info("signed checkpoint of %s at size %d", self.origin, size)
        return note

    def _check_signed_by(self, signer: Signer, note: str) -> None:
        try:
            open_checkpoint(note, signer.verifier, self.origin)
        except CheckpointError as error:
            raise CheckpointError(
                f"checkpoint rejected: the latest checkpoint of {self.origin!r} does "
                f"not verify with the key in {self.key_dir} ({error}); restore the key "
                "directory that signed it"
            ) from error

    def _check_extends(
        self,
        connection: Connection,
        old_size: int,
        old_root: bytes,
        size: int,
        root: bytes,
    ) -> None:
        prefix = f"checkpoint for size {size} rejected: "
        if old_size > size:
            raise CheckpointError(
                prefix
                + f"a checkpoint for the larger size {old_size} was signed before"
            )
        if old_size == size:
            raise CheckpointError(
                prefix + "a different root was signed for this size before"
            )
        if old_size == 0:
            return
        try:
            # Tiles are read afresh so a cached copy cannot hide a changed tile.
            reader = self._reader(connection, cached=False)
            proof = consistency_proof_from(old_size, size, reader)
            verify_consistency(old_size, size, proof, old_root, root)
        except (ProofError, ValueError) as error:
            raise CheckpointError(
                prefix + f"the tree does not extend the checkpoint at size {old_size} "
                f"({error}); run `greenloop ledger audit`"
            ) from error

    def _latest_checkpoint(self, connection: Connection) -> Any:
        columns = ledger_checkpoints.c
        return connection.execute(
            select(columns.size, columns.root, columns.note)
            .where(columns.log_id == self.log_id)
            .order_by(columns.size.desc())
            .limit(1)
        ).one_or_none()

    def latest_checkpoint(self) -> str | None:
        """Return the latest signed checkpoint note, or None before the first one."""
        with self.engine.connect() as connection:
            row = self._latest_checkpoint(connection)
        return None if row is None else str(row.note)

    def receipt(self, key: str) -> dict[str, Any]:
        """Return the offline receipt of purchase `key` against the latest checkpoint.

        Raises KeyError for an unknown purchase and LedgerError when no
        checkpoint covers the entry yet.
        """
        return self.receipts([key])[0]

    def receipts(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        """Return the receipts of many purchases, in order, over one connection.

        Raises like `receipt` for the first purchase that is unknown or not
        yet covered by a checkpoint.
        """
        with self.engine.connect() as connection:
            found = self._entries_by_key(connection, keys)
            latest = self._latest_checkpoint(connection)
            reader = self._reader(connection)
            receipts = []
            for key in keys:
                if key not in found:
                    raise KeyError(
                        f"purchase {key!r} is not in the ledger {self.origin!r}"
                    )
                index, entry = found[key]
                if latest is None or int(latest.size) <= index:
                    raise LedgerError(
                        f"entry {index} ({key!r}) is not covered by a signed "
                        "checkpoint yet; call checkpoint() or run "
                        "`greenloop ledger checkpoint` first"
                    )
                size = int(latest.size)
                proof = inclusion_proof_from(index, size, reader)
                receipts.append(
                    build_receipt(key, entry, index, proof, str(latest.note))
                )
        return receipts

    def _entries_by_key(
        self, connection: Connection, keys: Sequence[str]
    ) -> dict[str, tuple[int, bytes]]:
        found: dict[str, tuple[int, bytes]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), KEY_LOOKUP_CHUNK):
            chunk = unique[start : start + KEY_LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = _driver_sql(
                connection,
                "SELECT purchase_id, entry_index, record FROM ledger_entry "
                f"WHERE log_id = ? AND purchase_id IN ({marks})",
                (self.log_id, *chunk),
            )
            found.update((row[0], (int(row[1]), bytes(row[2]))) for row in rows)
        return found

    # Static export.

    def export_tiles(self, directory: Path) -> int:
        """Write the log as c2sp.org/tlog-tiles files in `directory`; return the size.

        The export covers the latest signed checkpoint: `checkpoint`, every
        tile at that size (partial tiles with their `.p/<W>` suffix) and the
        entry bundles, so tile-based clients and witnesses can read the log
        from a static file server. Raises LedgerError before the first
        checkpoint.
        """
        directory = Path(directory)
        with self.engine.connect() as connection:
            latest = self._latest_checkpoint(connection)
            if latest is None:
                raise LedgerError(
                    "no signed checkpoint to export; run `greenloop ledger checkpoint`"
                )
            size = int(latest.size)
            self._write_file(directory / "checkpoint", str(latest.note).encode())
            for tile in self._stream_tiles(connection, upper=False):
                self._export_tile(directory, tile, size)
            for tile in self._stream_tiles(connection, upper=True):
                self._export_tile(directory, tile, size)
            self._export_entries(connection, directory, size)
        logger.info("exported %s at size %d to %s", self.origin, size, directory)
        return size

    def _export_tile(self, directory: Path, tile: Tile, size: int) -> None:
        nodes = size >> (TILE_HEIGHT * tile.level)
        full = nodes // TILE_WIDTH
        if tile.index < full:
            width = TILE_WIDTH
        elif tile.index == full and nodes % TILE_WIDTH:
            width = nodes % TILE_WIDTH
        else:
            return
        data = tile.hashes[: width * HASH_SIZE]
        self._write_file(directory / tile_path(tile.level, tile.index, width), data)

    def _export_entries(
        self, connection: Connection, directory: Path, size: int
    ) -> None:
        bundle: list[bytes] = []
        for index, entry in self._stream_entries(connection):
            if index >= size:
                break
            bundle.append(entry)
            if len(bundle) == TILE_WIDTH or index == size - 1:
                first = index // TILE_WIDTH
                path = entries_path(first, len(bundle))
                self._write_file(directory / path, entry_bundle(bundle))
                bundle = []

    @staticmethod
    def _write_file(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    # Audit.

    def audit(self) -> AuditReport:
        """Recompute the tree from the stored entries and report every difference."""
        with self.engine.connect() as connection:
            size, root = self._head(connection)
            checkpoints = self._stored_checkpoints(connection)
            upper = {
                tile.key: tile for tile in self._stream_tiles(connection, upper=True)
            }
            report = audit_log(
                size,
                root,
                self._stream_entries(connection),
                self._stream_tiles(connection, upper=False),
                upper,
                checkpoints,
            )
        self._check_checkpoint_signatures(report)
        return report

    def _stored_checkpoints(self, connection: Connection) -> list[StoredCheckpoint]:
        columns = ledger_checkpoints.c
        rows = connection.execute(
            select(columns.size, columns.root)
            .where(columns.log_id == self.log_id)
            .order_by(columns.size)
        )
        return [StoredCheckpoint(int(row.size), bytes(row.root)) for row in rows]

    def _stream_entries(self, connection: Connection) -> Iterator[tuple[int, bytes]]:
        columns = ledger_entries.c
        rows = connection.execution_options(yield_per=STREAM_BATCH).execute(
            select(columns.entry_index, columns.record)
            .where(columns.log_id == self.log_id)
            .order_by(columns.entry_index)
        )
        for row in rows:
            yield int(row.entry_index), bytes(row.record)

    def _stream_tiles(self, connection: Connection, upper: bool) -> Iterator[Tile]:
        columns = ledger_tiles.c
        level_condition = columns.level > 0 if upper else columns.level == 0
        rows = connection.execution_options(yield_per=1_000).execute(
            select(
                columns.level, columns.tile_index, columns.hashes, columns.inner_hashes
            )
            .where(columns.log_id == self.log_id)
            .where(level_condition)
            .order_by(columns.level, columns.tile_index)
        )
        for row in rows:
            yield Tile(
                int(row.level),
                int(row.tile_index),
                bytes(row.hashes),
                bytes(row.inner_hashes),
            )

    def _check_checkpoint_signatures(self, report: AuditReport) -> None:
        path = verifier_path(self.key_dir, self.origin)
        if not path.exists():
            return
        verifier = Verifier.parse(path.read_text(encoding="utf-8"))
        columns = ledger_checkpoints.c
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(columns.size, columns.root, columns.note)
                .where(columns.log_id == self.log_id)
                .order_by(columns.size)
            ).all()
        for row in rows:
            try:
                checkpoint = open_checkpoint(str(row.note), verifier, self.origin)
            except CheckpointError as error:
                report.add(
                    Finding(
                        CHECKPOINT_MISMATCH,
                        int(row.size),
                        f"checkpoint for size {row.size}: {error}",
                    )
                )
                continue
            if checkpoint.size != int(row.size) or checkpoint.root != bytes(row.root):
                report.add(
                    Finding(
                        CHECKPOINT_MISMATCH,
                        int(row.size),
                        f"checkpoint note for size {row.size} signs another tree head",
                    )
                )


@lru_cache(maxsize=POSTGRESQL_TILES_PER_SELECT)
def _union_of_tile_lookups(count: int) -> str:
    """Return a SELECT of `count` tiles, each by its full primary key."""
    lookup = (
        "SELECT level, tile_index, hashes, inner_hashes FROM ledger_tile "
        "WHERE log_id = ? AND level = ? AND tile_index = ?"
    )
    return " UNION ALL ".join([lookup] * count)


def _is_disconnect(connection: Connection, error: Exception) -> bool:
    """Return whether `error` means the server closed `connection`."""
    if isinstance(error, DBAPIError):
        return bool(error.connection_invalidated)
    dialect = connection.dialect
    if not isinstance(error, dialect.loaded_dbapi.Error):
        return False
    return bool(
        dialect.is_disconnect(error, connection.connection.dbapi_connection, None)
    )


def prepare_batch(entries: Iterable[tuple[str, Mapping[str, Any]]]) -> PreparedBatch:
    """Check and encode (purchase_id, record) pairs and hash their leaves.

    Raises ValueError for the first pair that `LedgerStore.append` rejects.
    """
    pairs = list(entries)
    if not pairs:
        return PreparedBatch([], [], [])
    keys = [key for key, _ in pairs]
    records: list[Any] = [record for _, record in pairs]
    # The usual batch is plain dicts under plain string keys: check it with a
    # few whole-batch operations, and check pair by pair only to find an error.
    if not (
        set(map(type, keys)) == _STRING_TYPE
        and set(map(type, records)) == _DICT_TYPE
        and min(map(len, keys)) > 0
        and max(map(len, keys)) <= MAX_KEY_LENGTH
        and list(map(dict.get, records, repeat("purchase_id"), keys)) == keys
    ):
        for key, record in pairs:
            _check_pair(key, record)
    encoded = list(map(canonical_json, records))
    leaves = [_sha256(LEAF_PREFIX + entry).digest() for entry in encoded]
    return PreparedBatch(keys, encoded, leaves)


def prepare_encoded(entries: Iterable[tuple[str, bytes]]) -> PreparedBatch:
    """Check (purchase_id, canonical bytes) pairs and hash their leaves.

    The bytes are stored as given, so they must already be the record's RFC
    8785 canonical JSON. Each entry must contain `"purchase_id":` followed by
    its key as a JSON string; otherwise ValueError names the key.
    """
    pairs = list(entries)
    keys = [key for key, _ in pairs]
    encoded = [entry for _, entry in pairs]
    for key, entry in pairs:
        _check_key(key)
        if not isinstance(entry, bytes):
            raise ValueError(
                f"entry for purchase {key!r} is a {type(entry).__name__}; pass "
                "the record's canonical JSON as bytes"
            )
        if b'"purchase_id":' + orjson.dumps(key) not in entry:
            raise ValueError(
                f"entry for purchase {key!r} does not state that purchase_id; an "
                "entry must be the canonical JSON of that purchase's record"
            )
    leaves = [_sha256(LEAF_PREFIX + entry).digest() for entry in encoded]
    return PreparedBatch(keys, encoded, leaves)


def _tails_fit(size: int, tails: Mapping[TileKey, Tile]) -> bool:
    """Tell whether `tails` are exactly the partial tiles of a tree of `size` leaves."""
    if set(tails) != set(tail_keys(size)):
        return False
    return all(
        tile.width == (size >> (TILE_HEIGHT * tile.level)) % TILE_WIDTH
        for tile in tails.values()
    )


def plan_tiles(state: TreeState | None, prepared: PreparedBatch) -> TilePlan | None:
    """Work out a batch's tiles, assuming the log is at `state` and every key is new.

    Returns None when that cannot be worked out here: the state or its tiles
    are unknown, or a key repeats within the batch.
    """
    keys = prepared.keys
    if state is None or state.tails is None or not keys:
        return None
    if len(set(keys)) != len(keys):
        return None
    changed, replaced, end = _extend(state.size, state.tails, prepared.leaves)
    return TilePlan(state, changed, replaced, end, _new_results(keys, state.size))


def _new_results(keys: Sequence[str], first: int) -> list[AppendResult]:
    """Return the results of new entries for `keys`, numbered from `first`."""
    return list(map(AppendResult, keys, range(first, first + len(keys)), repeat(True)))


def _extend(
    size: int, tails: Mapping[TileKey, Tile], leaves: Sequence[bytes]
) -> tuple[list[Tile], list[Tile], TreeState]:
    """Append `leaves` to the tiles of a log of `size` entries.

    Returns the tiles that change, the stored tiles among `tails` that they
    replace, and the log's state after the append.
    """
    changed = extend_tiles(size, tails, leaves)
    replaced = [tails[tile.key] for tile in changed if tile.key in tails]
    new_size = size + len(leaves)
    known = {**tails, **{tile.key: tile for tile in changed}}
    new_root = root_hash(new_size, lambda nodes: read_nodes_from(known, nodes))
    end = TreeState(
        new_size, new_root, {key: known[key] for key in tail_keys(new_size)}
    )
    return changed, replaced, end


_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.0


@contextmanager
def _short_switch_interval() -> Iterator[None]:
    """Shorten the interpreter's switch interval while appends run on two threads.

    The writer thread releases the GIL for every statement, about a dozen
    times a batch, and must get it back each time. A thread that keeps the
    GIL busy yields it only after the switch interval, so each wait can last
    that long. Nested and concurrent users share one change, which the last
    one out undoes.
    """
    global _switch_users, _switch_saved
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_saved, WRITER_SWITCH_INTERVAL))
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ValueError(
            f"purchase id {key!r} must be a non-empty string of at most "
            f"{MAX_KEY_LENGTH} characters"
        )


def _check_pair(key: str, record: Mapping[str, Any]) -> None:
    _check_key(key)
    if not isinstance(record, Mapping):
        raise ValueError(
            f"record for purchase {key!r} is a {type(record).__name__}; "
            "pass a mapping of field names to values"
        )
    stated = record.get("purchase_id", key)
    if stated != key:
        raise ValueError(
            f"record for purchase {key!r} has purchase_id {stated!r}; the two "
            "must be equal"
        )


def _assign_indexes(
    prepared: PreparedBatch, existing: dict[str, int], size: int
) -> tuple[list[AppendResult], PreparedBatch]:
    keys = prepared.keys
    if not existing and len(set(keys)) == len(keys):
        # Every key is new: build the results without a Python loop.
        return _new_results(keys, size), prepared
    results = []
    new_batch = PreparedBatch([], [], [])
    for key, entry, leaf in zip(keys, prepared.entries, prepared.leaves, strict=True):
        index = existing.get(key)
        if index is not None:
            results.append(AppendResult(key, index, False))
            continue
        index = size + len(new_batch.keys)
        existing[key] = index
        new_batch.keys.append(key)
        new_batch.entries.append(entry)
        new_batch.leaves.append(leaf)
        results.append(AppendResult(key, index, True))
    return results, new_batch


__all__ = [
    "LEDGER_TABLES",
    "TILE_WIDTH",
    "AppendResult",
    "LedgerError",
    "LedgerStore",
    "PreparedBatch",
    "ledger_checkpoints",
    "ledger_entries",
    "ledger_logs",
    "ledger_tiles",
    "prepare_batch",
    "prepare_encoded",
]
