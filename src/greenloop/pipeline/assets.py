"""The green-asset, ledger and finance steps.

A green asset is a green purchase that was not wholly returned. Its record is
what the ledger stores: it carries no personal data, only a keyed hash of the
user, and nothing that changes between runs, so the same purchase always yields
the same leaf.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Connection, Engine

from greenloop.collector import collector_paused
from greenloop.pipeline.outputs import write_atomically
from greenloop.pipeline.progress import ProgressSink
from greenloop.store import runs as run_store

logger = logging.getLogger(__name__)

RECORD_TYPE = "greenloop.green_asset"
RECORD_VERSION = 1
LEDGER_BATCH = 10_000
LEDGER_BATCH_VARIABLE = "GREENLOOP_LEDGER_BATCH"
MAX_RECEIPTS_PER_RUN = 20_000
# A run with at least this many assets, and more than the store contains,
# stores them without the indexes of DEFERRABLE_ASSET_INDEXES and builds those
# afterwards. floor_bench.py stored 3.7 million assets in 33.1 s with the
# index on user_key, and in 16.2 s without it, building it afterwards included.
DEFER_INDEXES_MIN_ASSETS = 100_000
# Records per ledger batch, evenly spaced, whose canonical form is confirmed.
CANONICAL_CHECKS_PER_BATCH = 20
FINANCED_CURRENCY = "CNY"
# Receipt file names: at most this many characters before the digest suffix,
# which keeps a name with its temporary form well under the 255 bytes that
# common file systems allow.
RECEIPT_STEM_CHARACTERS = 100
RECEIPT_DIGEST_CHARACTERS = 16
_PLAIN_RECEIPT_STEM = re.compile(r"[A-Z0-9_-][A-Z0-9._-]*")
_RECEIPT_DIGEST_SUFFIX = re.compile(rf"-[0-9A-Fa-f]{{{RECEIPT_DIGEST_CHARACTERS}}}$")
# Names that Windows reserves for devices, also with an extension.
WINDOWS_DEVICE_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{port}{number}" for port in ("COM", "LPT") for number in range(10)]
)


@dataclass(frozen=True)
class LedgerCounts:
    """How many ledger entries the run added and the checkpoint it signed."""

    entries_appended: int
    entries_existing: int
    tree_size: int
    checkpoint: str
    receipts_written: int
    verifier_key: str
    assets_stored: int


# A green asset's columns, one row per green purchase that was not wholly
# returned. Its ledger record is built from them by RECORD_SQL when the ledger
# reads the assets, so the run keeps no copy of the records' text.
ASSET_SQL = """
WITH green AS (
    SELECT r.*, k.user_key,
           CAST(round(CAST(r.net_amount AS DECIMAL(38, 4)) * 100) AS BIGINT)
               AS amount_fen,
           CAST(greatest(coalesce(r.installments, 1), 1) AS INTEGER) AS periods
    FROM results r LEFT JOIN user_keys k USING (user_id)
    WHERE r.status = 'green' AND r.net_quantity > 0
)
SELECT row, purchase_id, $run_id AS run_id,
       CAST(occurred_at AS TIMESTAMPTZ) AS occurred_at, user_key, merchant_id,
       category, standard_id, standard_version, region_code AS region, amount_fen,
       currency, periods, kg_co2e_per_year, kg_co2e_lifetime, verdict_digest,
       impact_digest,
       CAST(NULL AS BIGINT) AS ledger_index,
       false AS reversed
FROM green
"""

# The ledger record of a green asset, built in SQL from a row of `assets`.
# DuckDB's to_json writes compact JSON in the struct's key order with RFC 8785
# string escaping, so with the keys in sorted order the text is canonical JSON,
# except for the escapes that `canonical_records` rewrites. The ledger stores
# these bytes as they are, so the ledger step confirms the form of
# CANONICAL_CHECKS_PER_BATCH records in each batch. The record has no
# floating-point field whose form could differ.
RECORD_SQL = f"""
CAST(to_json({{
    'amount_minor_units': amount_fen,
    'category': category,
    'currency': currency,
    'g_co2e_lifetime': CAST(round(kg_co2e_lifetime * 1000) AS BIGINT),
    'impact_digest': impact_digest,
    'merchant_id': merchant_id,
    'occurred_at': strftime(occurred_at, '%Y-%m-%dT%H:%M:%SZ'),
    'periods': periods,
    'purchase_id': purchase_id,
    'region': region,
    'standard_id': standard_id,
    'standard_version': standard_version,
    'type': '{RECORD_TYPE}',
    'user': user_key,
    'verdict_digest': verdict_digest,
    'version': {RECORD_VERSION:d}
}}) AS VARCHAR)
"""


def build_assets(
    connection: duckdb.DuckDBPyConnection, run_id: str, user_secret: bytes
) -> int:
    """Create the DuckDB table `assets`: this run's green assets.

    Amounts become hundredths (fen for CNY), rounded half away from zero; the
    user becomes a keyed hash computed once per distinct user. Returns how
    many assets there are.
    """
    from greenloop.ledger import pseudonym

    users = [
        row[0]
        for row in connection.execute(
            "SELECT DISTINCT user_id FROM results WHERE status = 'green' "
            "AND net_quantity > 0 AND user_id IS NOT NULL"
        ).fetchall()
    ]
    user_keys = pa.table(
        {
            "user_id": pa.array(users, pa.string()),
            "user_key": pa.array(
                [pseudonym(u, user_secret) for u in users], pa.string()
            ),
        }
    )
    connection.register("user_keys", user_keys)
    connection.execute(
        f"CREATE OR REPLACE TABLE assets AS {ASSET_SQL}", {"run_id": run_id}
    )
    connection.unregister("user_keys")
    _check_record_integers(connection)
    return int(connection.execute("SELECT count(*) FROM assets").fetchall()[0][0])


def _check_record_integers(connection: duckdb.DuckDBPyConnection) -> None:
    """Raise RuntimeError when an asset's record would carry too large an integer.

    RFC 8785 numbers are IEEE 754 doubles, which hold integers exactly only up
    to 2**53 - 1, and the ledger step checks the whole form of only a few
    records per batch. So every asset's integers are checked here, before
    anything is appended.
    """
    from greenloop.ledger.canonical import MAX_SAFE_INTEGER

    # DOUBLE arithmetic, so a value beyond BIGINT is reported, not an error.
    too_large = connection.execute(
        "SELECT purchase_id, amount_fen, kg_co2e_lifetime, "
        "round(kg_co2e_lifetime * 1000) FROM assets "
        "WHERE abs(CAST(amount_fen AS DOUBLE)) > $limit "
        "OR abs(round(kg_co2e_lifetime * 1000)) > $limit "
        "OR NOT isfinite(kg_co2e_lifetime) "
        "ORDER BY purchase_id LIMIT 1",
        {"limit": MAX_SAFE_INTEGER},
    ).fetchall()
    if too_large:
        purchase_id, amount_fen, kg_co2e_lifetime, grams = too_large[0]
        stated_grams = "none" if grams is None else f"{grams:.0f}"
        raise RuntimeError(
            f"purchase {purchase_id!r} is too large for a ledger record: its "
            f"record states amount_minor_units {amount_fen} (hundredths) and "
            f"g_co2e_lifetime {stated_grams} (grams, from {kg_co2e_lifetime} kg), "
            f"and each must be at most {MAX_SAFE_INTEGER}; correct its quantity "
            "or amount in the input and run again"
        )


def canonical_records(records: pa.ChunkedArray | pa.Array) -> list[bytes]:
    """Return the records' bytes, with each one containing a \\u escape rewritten.

    DuckDB writes control characters as upper-case \\u001F, but RFC 8785
    requires lower case. Such records are rare, so Python rewrites them one by
    one. In a profile of the ledger step, a search of each record's bytes took
    less time than Arrow's substring kernel on the whole column.
    """
    from greenloop.ledger import canonical_json

    texts: list[bytes] = records.cast(pa.binary()).to_pylist()
    for position, text in enumerate(texts):
        if b"\\u" in text:
            texts[position] = canonical_json(json.loads(text))
    return texts


def check_canonical(records: Sequence[bytes]) -> None:
    """Raise RuntimeError when a record is not its own canonical JSON."""
    from greenloop.ledger import canonical_json

    for text in records:
        if canonical_json(json.loads(text)) != text:
            raise RuntimeError(
                f"ledger record is not canonical JSON (RFC 8785): {text[:200]!r}"
            )


def receipt_purchase_ids(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """Return the purchase ids whose receipts the run writes, or none above the cap."""
    rows = connection.execute(
        f"SELECT purchase_id FROM assets ORDER BY purchase_id "
        f"LIMIT {MAX_RECEIPTS_PER_RUN + 1}"
    ).fetchall()
    if len(rows) > MAX_RECEIPTS_PER_RUN:
        logger.info(
            "not writing receipts for more than %d assets; get one with "
            "`greenloop ledger receipt PURCHASE_ID`",
            MAX_RECEIPTS_PER_RUN,
        )
        return []
    return [row[0] for row in rows]


def append_to_ledger(
    engine: Engine,
    connection: duckdb.DuckDBPyConnection,
    key_dir: Path,
    origin: str,
    receipt_ids: Sequence[str],
    receipts_folder: Path,
    progress: ProgressSink,
) -> LedgerCounts:
    """Append the `assets` table to the ledger and the store, then sign a checkpoint.

    Batches go in purchase-id order. Each batch is appended to the log first
    and then stored with its ledger index, while the log writes the next
    batch. Both steps skip purchase ids they already contain, so a run resumed
    after a crash appends the remaining assets in the order an uninterrupted
    run would have used.
    """
    from greenloop.store.ledger import AppendResult, LedgerStore

    stored_origin = asset_log_origin(engine)
    if stored_origin is not None and stored_origin != origin:
        raise RuntimeError(
            f"the green assets in this store carry indexes of the log "
            f"{stored_origin!r}, so assets of the log {origin!r} would clash with "
            f"them; set the origin {stored_origin!r} (RunConfig.origin) or use "
            "another database"
        )
    log = LedgerStore(engine, origin=origin, key_dir=key_dir)
    total = connection.execute("SELECT count(*) FROM assets").fetchall()[0][0]
    batch_size = int(os.environ.get(LEDGER_BATCH_VARIABLE, LEDGER_BATCH))
    dialect = engine.dialect.name
    selected = list(run_store.ASSET_COLUMNS)
    # DuckDB formats the times in its own threads. Otherwise Python would make
    # a datetime object of each on the main thread, which prepares the next batch.
    position = selected.index("occurred_at")
    selected[position] = (
        f"strftime(occurred_at, '{run_store.stored_time_format(dialect)}') "
        "AS occurred_at"
    )
    columns = ", ".join(selected)
    # The records are built after the sort, so it moves only the columns.
    reader = connection.sql(
        f"SELECT {columns}, {RECORD_SQL} AS record, row "
        "FROM (SELECT * FROM assets ORDER BY purchase_id)"
    ).to_arrow_reader(batch_size)
    progress.start("ledger", int(total))
    appended = existing = stored = 0
    index_batches: list[pa.RecordBatch] = []
    # Batches read but not yet stored, oldest first. The log yields each
    # batch's results after its commit, while it writes the next one.
    waiting: deque[pa.RecordBatch] = deque()
    # Each batch's assets, converted for the store while the log writes the
    # batch before. The log's writer thread stores them in the batch's own
    # transaction, so an entry and its asset commit together.
    to_store: deque[run_store.AssetRows] = deque()

    order = PurchaseIdOrder()

    def ledger_batches() -> Iterator[list[tuple[str, bytes]]]:
        # The records are canonical JSON (see RECORD_SQL), so their bytes go
        # to the log as they are.
        for batch in reader:
            order.check(batch.column("purchase_id"))
            waiting.append(batch)
            to_store.append(
                run_store.asset_rows(pa.Table.from_batches([batch]), dialect)
            )
            keys = batch.column("purchase_id").to_pylist()
            records = canonical_records(batch.column("record"))
            stride = max(1, len(records) // CANONICAL_CHECKS_PER_BATCH)
            check_canonical(records[::stride])
            yield list(zip(keys, records, strict=True))

    def store_assets(database: Connection, results: list[AppendResult]) -> None:
        nonlocal stored
        rows = to_store.popleft()
        indexes = [result.index for result in results]
        # Assets of entries the log already had are likely stored already.
        expect_new = all(result.created for result in results)
        stored += run_store.store_asset_rows(
            database, rows, indexes, expect_new=expect_new
        )

    defer_indexes = (
        total >= DEFER_INDEXES_MIN_ASSETS and total > run_store.count_assets(engine)
    )
    if defer_indexes:
        run_store.drop_deferrable_indexes(engine)
    try:
        # Each batch makes tens of thousands of short-lived tuples, and
        # collecting them held the GIL that the log's writer thread waits for.
        with collector_paused():
            for results in log.append_batches(
                ledger_batches(), encoded=True, with_each=store_assets
            ):
                index_batches.append(_index_batch(waiting.popleft(), results))
                created = sum(1 for result in results if result.created)
                appended += created
                existing += len(results) - created
                progress.advance(len(results))
    finally:
        if defer_indexes:
            run_store.create_missing_indexes(engine)
    _create_index_table(connection, index_batches)
    checkpoint = log.checkpoint()
    progress.finish()
    receipts = _write_receipts(log, receipt_ids, receipts_folder)
    return LedgerCounts(
        appended, existing, log.size, checkpoint, receipts, str(log.verifier), stored
    )


class PurchaseIdOrder:
    """Check that batches of purchase ids arrive in strictly increasing order.

    A resumed run appends in the order an uninterrupted run would have used
    only if the assets are read in purchase-id order.
    """

    def __init__(self) -> None:
        self.last: str | None = None

    def check(self, ids: pa.Array) -> None:
        """Raise RuntimeError when `ids` do not follow the ids checked before."""
        if len(ids) == 0:
            return
        previous = ids.slice(0, len(ids) - 1)
        following = ids.slice(1)
        backwards = pc.indices_nonzero(pc.less_equal(following, previous))
        pair = None
        if self.last is not None and ids[0].as_py() <= self.last:
            pair = (self.last, ids[0].as_py())
        elif len(backwards):
            position = backwards[0].as_py()
            pair = (previous[position].as_py(), following[position].as_py())
        if pair is not None:
            raise RuntimeError(
                f"the assets were not read in purchase-id order ({pair[0]!r} came "
                f"before {pair[1]!r}), so a resumed run could append them in "
                "another order; report this defect in the ledger step's query "
                "with the run's log"
            )
        self.last = ids[-1].as_py()


def asset_log_origin(engine: Engine) -> str | None:
    """Return the origin of the log whose indexes the stored assets carry.

    Each asset's ledger index is unique in the store, so the assets of one
    store belong to one log, and one asset shows which. Returns None when no
    asset has a ledger index.
    """
    from sqlalchemy import select

    from greenloop.store.ledger import ledger_entries, ledger_logs

    assets = run_store.green_assets
    with engine.connect() as connection:
        asset = connection.execute(
            select(assets.c.purchase_id, assets.c.ledger_index)
            .where(assets.c.ledger_index.is_not(None))
            .limit(1)
        ).first()
        if asset is None:
            return None
        for log_id, origin in connection.execute(
            select(ledger_logs.c.id, ledger_logs.c.origin).order_by(ledger_logs.c.id)
        ).all():
            entry = connection.execute(
                select(ledger_entries.c.entry_index).where(
                    ledger_entries.c.log_id == log_id,
                    ledger_entries.c.purchase_id == asset.purchase_id,
                    ledger_entries.c.entry_index == asset.ledger_index,
                )
            ).first()
            if entry is not None:
                return str(origin)
    return None


def _index_batch(batch: pa.RecordBatch, results: Sequence[Any]) -> pa.RecordBatch:
    """Return (row, ledger_index) for one appended batch of assets."""
    indexes = pa.array([result.index for result in results], pa.int64())
    # A column imported from DuckDB keeps its whole batch in memory, the
    # records included, so the row numbers are copied into a new array.
    rows = pa.array(batch.column("row").to_pylist(), pa.int64())
    return pa.RecordBatch.from_arrays([rows, indexes], ["row", "ledger_index"])


def _create_index_table(
    connection: duckdb.DuckDBPyConnection, batches: list[pa.RecordBatch]
) -> None:
    """Create the DuckDB table `ledger_indexes` (row, ledger_index).

    The input row number is the key, so the report can join one range of rows
    at a time.
    """
    schema = pa.schema([("row", pa.int64()), ("ledger_index", pa.int64())])
    table = pa.Table.from_batches(batches, schema=schema)
    connection.register("ledger_index_arrow", table)
    connection.execute(
        "CREATE OR REPLACE TABLE ledger_indexes AS SELECT * FROM ledger_index_arrow"
    )
    connection.unregister("ledger_index_arrow")


def _write_receipts(log: Any, purchase_ids: Sequence[str], folder: Path) -> int:
    """Write one receipt file per asset, named after its purchase id."""
    if not purchase_ids:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    receipts = log.receipts(list(purchase_ids))
    for purchase_id, receipt in zip(purchase_ids, receipts, strict=True):
        text = json.dumps(receipt, indent=2)
        write_atomically(
            folder / f"{receipt_file_stem(purchase_id)}.json",
            partial(Path.write_text, data=text, encoding="utf-8"),
        )
    return len(purchase_ids)


def receipt_file_stem(purchase_id: str) -> str:
    """Return a receipt file name without extension for a purchase id.

    Distinct ids get names that differ also when case is ignored, which
    case-insensitive file systems such as those of macOS and Windows need. An
    id of up to RECEIPT_STEM_CHARACTERS characters made of upper-case ASCII
    letters, digits, `_`, `-` and `.` not in front is its own name, unless
    Windows reserves it (CON, NUL.X) or it ends like a digest suffix. Any other
    id gets its characters other than letters, digits, `_` and `-` replaced by
    `_`, is cut to RECEIPT_STEM_CHARACTERS characters and ends with `-` and the
    first RECEIPT_DIGEST_CHARACTERS hex digits of the SHA-256 of its UTF-8
    bytes. Two such names are equal only when those digests are.
    """
    if (
        len(purchase_id) <= RECEIPT_STEM_CHARACTERS
        and _PLAIN_RECEIPT_STEM.fullmatch(purchase_id)
        and purchase_id.split(".")[0] not in WINDOWS_DEVICE_NAMES
        and not _RECEIPT_DIGEST_SUFFIX.search(purchase_id)
    ):
        return purchase_id
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", purchase_id)[:RECEIPT_STEM_CHARACTERS]
    digest = hashlib.sha256(purchase_id.encode("utf-8")).hexdigest()
    return f"{cleaned}-{digest[:RECEIPT_DIGEST_CHARACTERS]}"


def finance_loans(
    engine: Engine,
    connection: duckdb.DuckDBPyConnection,
    facilities_path: Path,
    campaigns_path: Path,
    as_of: date,
    progress: ProgressSink,
) -> Any:
    """Allocate this run's financed green assets and award incentives.

    Only loans in CNY with two or more installments are financed. Progress
    counts the phases of the finance work.
    """
    from greenloop.store.finance import (
        FINANCE_PHASES,
        GreenLoan,
        process_green_loans,
    )

    financed = connection.execute(
        "SELECT purchase_id, user_key, occurred_at, amount_fen, periods, category, "
        "region, merchant_id, kg_co2e_lifetime FROM assets "
        "WHERE periods >= 2 AND currency = ? ORDER BY purchase_id",
        [FINANCED_CURRENCY],
    ).fetchall()
    # The columns are GreenLoan's fields in order; a loan without a user key
    # gets an empty one.
    loans = [GreenLoan(row[0], row[1] or "", *row[2:]) for row in financed]
    progress.start("finance", len(FINANCE_PHASES))
    # The job reports counts and the two reports, not each loan's figures.
    outcome = process_green_loans(
        engine,
        loans,
        facilities_path,
        campaigns_path,
        as_of,
        per_loan=False,
        on_phase=lambda _phase: progress.advance(1),
    )
    progress.finish()
    return outcome
