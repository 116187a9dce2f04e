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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy.engine import Engine

from greenloop.pipeline.progress import ProgressSink
from greenloop.store import runs as run_store

logger = logging.getLogger(__name__)

RECORD_TYPE = "greenloop.green_asset"
RECORD_VERSION = 1
LEDGER_BATCH = 10_000
LEDGER_BATCH_VARIABLE = "GREENLOOP_LEDGER_BATCH"
MAX_RECEIPTS_PER_RUN = 2_000
CANONICAL_SAMPLE = 2_000
FINANCED_CURRENCY = "CNY"


@dataclass(frozen=True)
class AssetCounts:
    """How many green assets the run found and how many were new to the store."""

    green_purchases: int
    assets_found: int
    assets_new: int


@dataclass(frozen=True)
class LedgerCounts:
    """How many ledger entries the run added and the checkpoint it signed."""

    entries_appended: int
    entries_existing: int
    tree_size: int
    checkpoint: str
    receipts_written: int
    verifier_key: str


# The ledger record of a green asset, built in SQL. DuckDB's to_json writes
# compact JSON in the struct's key order with RFC 8785 string escaping, so with
# the keys in sorted order the text is canonical JSON; `check_canonical`
# confirms that on every run.
ASSET_SQL = """
WITH green AS (
    SELECT r.*, k.user_key,
           CAST(round(r.net_amount * 100) AS BIGINT) AS amount_fen,
           CAST(greatest(coalesce(r.installments, 1), 1) AS INTEGER) AS periods,
           CASE WHEN r.impact_json IS NULL THEN NULL ELSE sha256(r.impact_json) END
               AS impact_digest
    FROM results r LEFT JOIN user_keys k USING (user_id)
    WHERE r.status = 'green' AND r.net_quantity > 0
)
SELECT purchase_id, $run_id AS run_id,
       CAST(occurred_at AS TIMESTAMPTZ) AS occurred_at, user_key, merchant_id,
       category, standard_id, standard_version, region_code AS region, amount_fen,
       currency, periods, kg_co2e_per_year, kg_co2e_lifetime, verdict_digest,
       impact_digest,
       CAST(to_json({
           'amount_minor_units': amount_fen,
           'category': category,
           'currency': currency,
           'g_co2e_lifetime': CAST(round(kg_co2e_lifetime * 1000) AS BIGINT),
           'impact_digest': impact_digest,
           'merchant_id': merchant_id,
           'occurred_at': strftime(occurred_at, '%Y-%m-%dT%H:%M:%SZ'),
           'periods': periods,
           'purchase_id': purchase_id,
           'region': region_code,
           'standard_id': standard_id,
           'standard_version': standard_version,
           'type': $record_type,
           'user': user_key,
           'verdict_digest': verdict_digest,
           'version': $record_version
       }) AS VARCHAR) AS record,
       CAST(NULL AS BIGINT) AS ledger_index,
       false AS reversed
FROM green
ORDER BY purchase_id
"""


def build_assets(
    connection: duckdb.DuckDBPyConnection, run_id: str, user_secret: bytes
) -> pa.Table:
    """Return the store rows of this run's green assets, each with its ledger record.

    Amounts become hundredths (fen for CNY), rounded half away from zero; the
    user becomes a keyed hash computed once per distinct user.
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
    assets = connection.sql(
        ASSET_SQL,
        params={
            "run_id": run_id,
            "record_type": RECORD_TYPE,
            "record_version": RECORD_VERSION,
        },
    ).to_arrow_table()
    connection.unregister("user_keys")
    assets = _recanonicalize_escapes(assets)
    check_canonical(assets.column("record").to_pylist()[:CANONICAL_SAMPLE])
    return assets


def _recanonicalize_escapes(assets: pa.Table) -> pa.Table:
    """Rewrite records that contain a \\u escape in canonical form.

    DuckDB writes control characters as upper-case \\u001F, while RFC 8785 asks
    for lower case; such records are rare, so Python rewrites them one by one.
    """
    import pyarrow.compute as pc

    from greenloop.ledger import canonical_json

    records = assets.column("record")
    if not pc.any(pc.match_substring(records, "\\u")).as_py():
        return assets
    rewritten = [
        canonical_json(json.loads(text)).decode("utf-8") if "\\u" in text else text
        for text in records.to_pylist()
    ]
    index = assets.schema.get_field_index("record")
    return assets.set_column(index, "record", pa.array(rewritten, pa.string()))


def check_canonical(records: Sequence[str]) -> None:
    """Raise RuntimeError when a record text is not its own canonical JSON."""
    from greenloop.ledger import canonical_json

    for text in records:
        if canonical_json(json.loads(text)).decode("utf-8") != text:
            raise RuntimeError(
                f"ledger record is not canonical JSON (RFC 8785): {text[:200]}"
            )


def store_assets(engine: Engine, assets: pa.Table, green: int) -> AssetCounts:
    """Insert the assets; a purchase id already stored keeps its first record."""
    new = run_store.insert_assets(engine, assets)
    return AssetCounts(
        green_purchases=green, assets_found=assets.num_rows, assets_new=new
    )


def append_to_ledger(
    engine: Engine,
    key_dir: Path,
    origin: str,
    run_purchase_ids: Sequence[str],
    receipts_folder: Path,
    progress: ProgressSink,
) -> LedgerCounts:
    """Append assets missing from the ledger, sign a checkpoint, write receipts."""
    from greenloop.store.ledger import LedgerStore

    log = LedgerStore(engine, origin=origin, key_dir=key_dir)
    pending = run_store.assets_without_ledger_index(engine)
    progress.start("ledger", len(pending))
    appended = existing = 0
    batch = int(os.environ.get(LEDGER_BATCH_VARIABLE, LEDGER_BATCH))
    for start in range(0, len(pending), batch):
        chunk = pending[start : start + batch]
        results = log.append([(key, json.loads(record)) for key, record in chunk])
        run_store.set_ledger_indexes(engine, [(r.key, r.index) for r in results])
        appended += sum(1 for r in results if r.created)
        existing += sum(1 for r in results if not r.created)
        progress.advance(len(chunk))
    checkpoint = log.checkpoint()
    progress.finish()
    receipts = _write_receipts(log, run_purchase_ids, receipts_folder)
    return LedgerCounts(
        appended, existing, log.size, checkpoint, receipts, str(log.verifier)
    )


def _write_receipts(log: Any, purchase_ids: Sequence[str], folder: Path) -> int:
    """Write one receipt file per asset, named after its purchase id."""
    if len(purchase_ids) > MAX_RECEIPTS_PER_RUN:
        logger.info(
            "skipped writing %d receipts (more than %d); get one with "
            "`greenloop ledger receipt PURCHASE_ID`",
            len(purchase_ids),
            MAX_RECEIPTS_PER_RUN,
        )
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    for purchase_id in purchase_ids:
        path = folder / f"{receipt_file_stem(purchase_id)}.json"
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(log.receipt(purchase_id), indent=2), "utf-8")
        temporary.replace(path)
    return len(purchase_ids)


def receipt_file_stem(purchase_id: str) -> str:
    """Return a file name for a purchase id, safe on every file system.

    Unsafe characters become `_`, and a digest suffix keeps such names distinct.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", purchase_id)
    if safe != purchase_id:
        safe += "-" + hashlib.sha256(purchase_id.encode("utf-8")).hexdigest()[:8]
    return safe


def finance_loans(
    engine: Engine,
    assets: pa.Table,
    facilities_path: Path,
    campaigns_path: Path,
    as_of: date,
) -> Any:
    """Allocate this run's financed green assets and award incentives.

    Only loans in CNY with two or more installments are financed.
    """
    import pyarrow.compute as pc

    from greenloop.store.finance import GreenLoan, process_green_loans

    financed = assets.filter(
        pc.and_(
            pc.greater_equal(assets.column("periods"), 2),
            pc.equal(assets.column("currency"), FINANCED_CURRENCY),
        )
    )
    loans = [
        GreenLoan(
            purchase_id=asset["purchase_id"],
            user_key=asset["user_key"] or "",
            occurred_at=asset["occurred_at"],
            principal_fen=asset["amount_fen"],
            periods=asset["periods"],
            category=asset["category"],
            region=asset["region"],
            merchant_id=asset["merchant_id"],
            kg_co2e_lifetime=asset["kg_co2e_lifetime"],
        )
        for asset in financed.to_pylist()
    ]
    return process_green_loans(engine, loans, facilities_path, campaigns_path, as_of)
