"""The identify step: one verdict per distinct product, joined back to purchases."""

from __future__ import annotations

import hashlib
from typing import Any

import duckdb
import orjson
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

    document = orjson.loads(
        orjson.dumps(verdict, option=orjson.OPT_NON_STR_KEYS, default=str)
    )
    return canonical_json(document).decode("utf-8")


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
    return {"product_key": product_key, **_verdict_columns(verdict)}


def _verdict_columns(verdict: Verdict) -> dict[str, Any]:
    from greenloop.ledger import canonical_json

    # orjson turns the dataclasses, enums and dates into plain values in C.
    document = orjson.loads(
        orjson.dumps(verdict, option=orjson.OPT_NON_STR_KEYS, default=str)
    )
    return {
        "status": document["status"],
        "category": document["category"],
        "standard_id": verdict.standard_id,
        "standard_version": verdict.standard_version,
        "top_tier": verdict.top_tier,
        "model_category": document["model_category"],
        "model_score": verdict.model_score,
        "reasons": _json_text(document["reasons"]),
        "claims": _json_text(document["claims"]),
        "claim_kinds": ";".join(sorted({claim.kind for claim in verdict.claims}))
        or None,
        "evidence": _json_text(document["evidence"]),
        "attributes": _json_text(document["attributes"]),
        "verdict_digest": hashlib.sha256(canonical_json(document)).hexdigest(),
    }


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


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
    columns_by_verdict: dict[int, tuple[Verdict, dict[str, Any]]] = {}
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
            # The identifier returns one object for products it judged alike,
            # so each object is serialized once.
            cached = columns_by_verdict.get(id(verdict))
            if cached is None or cached[0] is not verdict:
                cached = (verdict, _verdict_columns(verdict))
                columns_by_verdict[id(verdict)] = cached
            flattened.append({"product_key": row["product_key"], **cached[1]})
        table = pa.Table.from_pylist(flattened, schema=VERDICT_SCHEMA)
        connection.register("verdict_batch", table)
        connection.execute("INSERT INTO product_verdicts SELECT * FROM verdict_batch")
        connection.unregister("verdict_batch")
        progress.advance(len(rows))
    progress.finish()
    return verdicts
