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


def _verdict_document(verdict: Verdict) -> bytes:
    # orjson turns the dataclasses, enums and dates into plain values in C.
    return orjson.dumps(verdict, option=orjson.OPT_NON_STR_KEYS, default=str)


def _verdict_columns(verdict: Verdict, raw: bytes) -> dict[str, Any]:
    from greenloop.ledger import canonical_json

    document = orjson.loads(raw)
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
    """Identify each distinct product of `purchases` into `product_verdicts`.

    The distinct products, with the fields their key covers, are kept in the
    table `products`.
    """
    columns = ", ".join(f"any_value({name}) AS {name}" for name in PRODUCT_KEY_FIELDS)
    connection.execute(
        f"CREATE OR REPLACE TABLE products AS SELECT product_key, {columns} "
        f"FROM purchases GROUP BY product_key"
    )
    products = connection.sql(
        "SELECT * FROM products ORDER BY product_key"
    ).to_arrow_table()
    progress.start("identify", products.num_rows)
    verdicts: dict[int, Verdict] = {}
    connection.register("verdict_empty", VERDICT_SCHEMA.empty_table())
    connection.execute(
        "CREATE OR REPLACE TABLE product_verdicts AS SELECT * FROM verdict_empty"
    )
    connection.unregister("verdict_empty")
    for batch in products.to_batches(BATCH_PRODUCTS):
        rows = batch.to_pylist()
        batch_verdicts = identifier.identify_many([query_from_row(row) for row in rows])
        keys = batch.column("product_key")
        for key, verdict in zip(keys.to_pylist(), batch_verdicts, strict=True):
            verdicts[key] = verdict
        table = _verdict_table(keys, batch_verdicts)
        connection.register("verdict_batch", table)
        connection.execute("INSERT INTO product_verdicts SELECT * FROM verdict_batch")
        connection.unregister("verdict_batch")
        progress.advance(len(rows))
    progress.finish()
    return verdicts


def _verdict_table(keys: pa.Array, batch_verdicts: list[Verdict]) -> pa.Table:
    """Return the VERDICT_SCHEMA rows of one batch.

    Many products get equal verdicts, and the identifier returns one object
    for products it judged alike. Each distinct verdict is flattened and
    digested once, and its row is repeated with `take`.
    """
    position_of: dict[int, int] = {}
    position_of_document: dict[bytes, int] = {}
    distinct: list[dict[str, Any]] = []
    positions = []
    for verdict in batch_verdicts:
        position = position_of.get(id(verdict))
        if position is None:
            raw = _verdict_document(verdict)
            position = position_of_document.get(raw)
            if position is None:
                position = position_of_document[raw] = len(distinct)
                distinct.append(_verdict_columns(verdict, raw))
            position_of[id(verdict)] = position
        positions.append(position)
    names = VERDICT_SCHEMA.names[1:]
    flattened = pa.Table.from_pydict(
        {name: [row[name] for row in distinct] for name in names},
        schema=pa.schema([VERDICT_SCHEMA.field(name) for name in names]),
    ).take(pa.array(positions, pa.int32()))
    return flattened.add_column(0, VERDICT_SCHEMA.field("product_key"), keys)
