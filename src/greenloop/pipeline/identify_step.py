"""The identify step: one verdict per distinct product, joined back to purchases."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from greenloop.identify import Identifier
from greenloop.identify.verdict import ProductQuery, Verdict
from greenloop.pipeline.progress import ProgressSink
from greenloop.pipeline.schema import PRODUCT_KEY_FIELDS

BATCH_PRODUCTS = 20_000

VERDICT_SCHEMA = pa.schema(
    [
        ("product_key", pa.uint64()),
        ("status", pa.string()),
        ("category", pa.string()),
        ("standard_id", pa.string()),
        ("standard_version", pa.string()),
        ("top_tier", pa.bool_()),
        ("model_category", pa.string()),
        ("model_score", pa.float64()),
        ("reasons", pa.string()),
        ("claims", pa.string()),
        ("claim_kinds", pa.string()),
        ("evidence", pa.string()),
        ("attributes", pa.string()),
        ("verdict_digest", pa.string()),
    ]
)


def verdict_json(verdict: Verdict) -> str:
    """Return the verdict as canonical JSON (RFC 8785), the form its digest covers."""
    from greenloop.ledger import canonical_json

    return canonical_json(_jsonable(verdict.to_dict())).decode("utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def query_from_row(row: dict[str, Any]) -> ProductQuery:
    """Build the identifier's query from one distinct product row."""
    labels = row.get("label_codes")
    return ProductQuery(
        title=row["title"],
        mcc=row.get("mcc"),
        merchant_id=row.get("merchant_id"),
        merchant_name=row.get("merchant_name"),
        brand=row.get("brand"),
        model_number=row.get("model_number"),
        sku=row.get("sku"),
        energy_label_grade=row.get("energy_label_grade"),
        certificate_id=row.get("certificate_id"),
        label_codes=tuple(code.strip() for code in labels.split(";") if code.strip())
        if labels
        else (),
    )


def verdict_row(product_key: int, verdict: Verdict) -> dict[str, Any]:
    """Flatten a verdict into one row of VERDICT_SCHEMA."""
    document = verdict_json(verdict)
    return {
        "product_key": product_key,
        "status": str(verdict.status),
        "category": str(verdict.category) if verdict.category else None,
        "standard_id": verdict.standard_id,
        "standard_version": verdict.standard_version,
        "top_tier": verdict.top_tier,
        "model_category": str(verdict.model_category)
        if verdict.model_category
        else None,
        "model_score": verdict.model_score,
        "reasons": json.dumps(list(verdict.reasons), ensure_ascii=False),
        "claims": json.dumps(
            [_jsonable(claim) for claim in _as_dicts(verdict.claims)],
            ensure_ascii=False,
        ),
        "claim_kinds": ";".join(sorted({claim.kind for claim in verdict.claims}))
        or None,
        "evidence": json.dumps(
            [_jsonable(item) for item in _as_dicts(verdict.evidence)],
            ensure_ascii=False,
        ),
        "attributes": json.dumps(_jsonable(verdict.attributes), ensure_ascii=False),
        "verdict_digest": hashlib.sha256(document.encode("utf-8")).hexdigest(),
    }


def _as_dicts(items: Sequence[Any]) -> list[dict[str, Any]]:
    from dataclasses import asdict

    return [asdict(item) for item in items]


def identify_products(
    connection: duckdb.DuckDBPyConnection,
    identifier: Identifier,
    progress: ProgressSink,
) -> dict[int, Verdict]:
    """Identify each distinct product of `purchases` into `product_verdicts`."""
    columns = ", ".join(f"any_value({name}) AS {name}" for name in PRODUCT_KEY_FIELDS)
    products = connection.sql(
        f"SELECT product_key, {columns} FROM purchases "
        f"GROUP BY product_key ORDER BY product_key"
    ).to_arrow_table()
    progress.start("identify", products.num_rows)
    verdicts: dict[int, Verdict] = {}
    empty = VERDICT_SCHEMA.empty_table()
    connection.register("verdict_empty", empty)
    connection.execute(
        "CREATE OR REPLACE TABLE product_verdicts AS SELECT * FROM verdict_empty"
    )
    connection.unregister("verdict_empty")
    for batch in products.to_batches(BATCH_PRODUCTS):
        rows = batch.to_pylist()
        batch_verdicts = identifier.identify_many([query_from_row(row) for row in rows])
        flattened = []
        for row, verdict in zip(rows, batch_verdicts, strict=True):
            verdicts[row["product_key"]] = verdict
            flattened.append(verdict_row(row["product_key"], verdict))
        table = pa.Table.from_pylist(flattened, schema=VERDICT_SCHEMA)
        connection.register("verdict_batch", table)
        connection.execute("INSERT INTO product_verdicts SELECT * FROM verdict_batch")
        connection.unregister("verdict_batch")
        progress.advance(len(rows))
    progress.finish()
    return verdicts
