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
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy.engine import Engine

from greenloop.pipeline.progress import ProgressSink
from greenloop.store import runs as run_store

logger = logging.getLogger(__name__)

RECORD_TYPE = "greenloop.green_asset"
RECORD_VERSION = 1
LEDGER_BATCH = 10_000
LEDGER_BATCH_VARIABLE = "GREENLOOP_LEDGER_BATCH"
MAX_RECEIPTS_PER_RUN = 2_000
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


def to_minor_units(amount: Decimal) -> int:
    """Convert an amount in major units to hundredths (fen for CNY), half up."""
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_assets(
    connection: duckdb.DuckDBPyConnection, run_id: str, user_secret: bytes
) -> list[dict[str, Any]]:
    """Return the store rows of this run's green assets, each with its ledger record."""
    from greenloop.ledger import canonical_json, pseudonym

    rows = connection.execute(
        """
        SELECT purchase_id, occurred_at, user_id, merchant_id, category, standard_id,
               standard_version, region_code, net_amount, currency,
               greatest(coalesce(installments, 1), 1) AS periods,
               kg_co2e_per_year, kg_co2e_lifetime, verdict_digest, impact_json
        FROM results
        WHERE status = 'green' AND net_quantity > 0
        ORDER BY purchase_id
        """
    ).fetchall()
    assets = []
    for row in rows:
        (
            purchase_id,
            occurred_at,
            user_id,
            merchant_id,
            category,
            standard_id,
            standard_version,
            region_code,
            net_amount,
            currency,
            periods,
            kg_year,
            kg_lifetime,
            verdict_digest,
            impact_json,
        ) = row
        impact_digest = (
            hashlib.sha256(impact_json.encode("utf-8")).hexdigest()
            if impact_json
            else None
        )
        record = {
            "type": RECORD_TYPE,
            "version": RECORD_VERSION,
            "purchase_id": purchase_id,
            "occurred_at": _timestamp(occurred_at),
            "user": pseudonym(user_id, user_secret) if user_id else None,
            "merchant_id": merchant_id,
            "category": category,
            "standard_id": standard_id,
            "standard_version": standard_version,
            "region": region_code,
            "amount_minor_units": to_minor_units(net_amount),
            "currency": currency,
            "periods": int(periods),
            "g_co2e_lifetime": round(kg_lifetime * 1000) if kg_lifetime else None,
            "verdict_digest": verdict_digest,
            "impact_digest": impact_digest,
        }
        assets.append(
            {
                "purchase_id": purchase_id,
                "run_id": run_id,
                "occurred_at": occurred_at.replace(tzinfo=UTC)
                if occurred_at.tzinfo is None
                else occurred_at,
                "user_key": record["user"],
                "merchant_id": merchant_id,
                "category": category,
                "standard_id": standard_id,
                "standard_version": standard_version,
                "region": region_code,
                "amount_fen": record["amount_minor_units"],
                "currency": currency,
                "periods": int(periods),
                "kg_co2e_per_year": kg_year,
                "kg_co2e_lifetime": kg_lifetime,
                "verdict_digest": verdict_digest,
                "impact_digest": impact_digest,
                "record": canonical_json(record).decode("utf-8"),
                "ledger_index": None,
                "reversed": False,
            }
        )
    return assets


def store_assets(
    engine: Engine, assets: Sequence[dict[str, Any]], green: int
) -> AssetCounts:
    """Insert the assets; a purchase id already stored keeps its first record."""
    new = run_store.insert_assets(engine, assets)
    return AssetCounts(green_purchases=green, assets_found=len(assets), assets_new=new)


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
    assets: Sequence[dict[str, Any]],
    facilities_path: Path,
    campaigns_path: Path,
    as_of: date,
) -> Any:
    """Allocate this run's financed green assets and award incentives.

    Only loans in CNY with two or more installments are financed.
    """
    from greenloop.store.finance import GreenLoan, process_green_loans

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
        for asset in assets
        if asset["periods"] >= 2 and asset["currency"] == FINANCED_CURRENCY
    ]
    return process_green_loans(engine, loans, facilities_path, campaigns_path, as_of)
