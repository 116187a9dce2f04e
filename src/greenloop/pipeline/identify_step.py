"""The identify step: one verdict per distinct product, joined back to purchases."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from greenloop.identify import Identifier
from greenloop.identify.verdict import ProductQuery, Verdict
from greenloop.pipeline.impact_step import GreenFacts
from greenloop.pipeline.memory import peak_rss_mib
from greenloop.pipeline.progress import ProgressSink
from greenloop.pipeline.schema import PRODUCT_KEY_FIELDS

logger = logging.getLogger(__name__)

BATCH_PRODUCTS = 20_000
# Below about this many distinct products, starting worker processes costs
# more than it saves.
PARALLEL_MIN_PRODUCTS = 3 * BATCH_PRODUCTS

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


def default_workers() -> int:
    """Return how many worker processes identify products beside this one: one
    per further CPU the process may use."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(cpus - 1, 0)


def identify_products(
    connection: duckdb.DuckDBPyConnection,
    identifier: Identifier,
    progress: ProgressSink,
    workers: int | None = None,
) -> IdentifiedProducts:
    """Identify each distinct product of `purchases` into `product_verdicts`.

    The distinct products, with the fields their key covers, are kept in the
    table `products`. With `workers` above 0 (default: `default_workers()`),
    that many processes judge batches of products beside this one, which
    also stores the verdicts. Inputs whose estimated count of distinct
    products is under PARALLEL_MIN_PRODUCTS are judged here only. A batch's
    verdicts do not depend on which process judged it, because each batch is
    judged on its own.

    A script that calls this with workers must start its work under
    `if __name__ == "__main__":`, as Python's multiprocessing requires.
    """
    if workers is None:
        workers = default_workers()
    # An estimate suffices, and it is known before the exact count, so the
    # workers can start while DuckDB finds the distinct products.
    estimate = connection.execute(
        "SELECT approx_count_distinct(product_key) FROM purchases"
    ).fetchall()[0][0]
    if estimate < PARALLEL_MIN_PRODUCTS:
        workers = 0
    with _worker_pool(identifier, workers) as pool:
        columns = ", ".join(
            f"any_value({name}) AS {name}" for name in PRODUCT_KEY_FIELDS
        )
        connection.execute(
            f"CREATE OR REPLACE TABLE products AS SELECT product_key, {columns} "
            f"FROM purchases GROUP BY product_key"
        )
        products = connection.sql(
            "SELECT * FROM products ORDER BY product_key"
        ).to_arrow_table()
        progress.start("identify", products.num_rows)
        identified = IdentifiedProducts(products.num_rows, GreenFacts(), 0, None)
        connection.register("verdict_empty", VERDICT_SCHEMA.empty_table())
        connection.execute(
            "CREATE OR REPLACE TABLE product_verdicts AS SELECT * FROM verdict_empty"
        )
        connection.unregister("verdict_empty")
        batches = products.to_batches(BATCH_PRODUCTS)
        # Batches come back out of order, and the green products are kept in
        # batch order, so the impact step numbers their facts the same way
        # whichever process judged them.
        green_of_batch: dict[int, GreenFacts] = {}
        for position, judged, worker_peak in _judged_batches(
            identifier, batches, pool, workers
        ):
            green_of_batch[position] = judged.green
            connection.register("verdict_batch", judged.table)
            connection.execute(
                "INSERT INTO product_verdicts SELECT * FROM verdict_batch"
            )
            connection.unregister("verdict_batch")
            progress.advance(judged.table.num_rows)
            if worker_peak is not None:
                identified.workers = workers
                identified.worker_peak_mib = max(
                    identified.worker_peak_mib or 0, worker_peak
                )
        for position in sorted(green_of_batch):
            identified.green.extend(green_of_batch[position])
    progress.finish()
    return identified


@dataclass
class IdentifiedProducts:
    """The outcome of identification: the product count, the green products
    and the worker processes.

    `worker_peak_mib` is the largest peak resident memory a worker process
    reported, or None when no worker ran.
    """

    products: int
    green: GreenFacts
    workers: int
    worker_peak_mib: int | None


@contextmanager
def _worker_pool(
    identifier: Identifier, workers: int
) -> Iterator[ProcessPoolExecutor | None]:
    """Start `workers` processes, each with a copy of the identifier.

    Yields the pool, or None when `workers` is 0.

    Each worker starts from a fresh interpreter (forkserver), not as a copy of
    this process with its DuckDB threads and its memory. On leaving, work
    not yet started is dropped.
    """
    if workers <= 0:
        yield None
        return
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_start_worker,
        initargs=(identifier,),
    )
    try:
        # Submitting tasks starts workers now, while DuckDB finds the products.
        # Python 3.11 starts a worker only when none is idle, so some may
        # start later.
        for _ in range(workers):
            pool.submit(os.getpid)
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _judged_batches(
    identifier: Identifier,
    batches: Sequence[pa.RecordBatch],
    pool: ProcessPoolExecutor | None,
    workers: int,
) -> Iterator[tuple[int, JudgedBatch, int | None]]:
    """Yield each batch's position and verdicts as soon as the batch is judged.

    The workers take batches from the front. While the oldest batch out with
    a worker is not back, this process judges the last batch not yet handed
    out, so no process waits while batches remain. The third item is the
    peak memory in MiB of the worker that judged the batch, or None when
    this process judged it.
    """
    if pool is None:
        for position, batch in enumerate(batches):
            yield position, _judge(identifier, batch), None
        return
    not_started = deque(range(len(batches)))
    running: deque[tuple[int, Future[tuple[JudgedBatch, int | None]]]] = deque()
    while not_started or running:
        # Each worker has a batch in hand and one queued.
        while not_started and len(running) < 2 * workers:
            handed_out = not_started.popleft()
            future = pool.submit(_identify_in_worker, batches[handed_out])
            running.append((handed_out, future))
        position, future = running[0]
        if not future.done() and not_started:
            last = not_started.pop()
            yield last, _judge(identifier, batches[last]), None
            continue
        running.popleft()
        try:
            judged, peak = future.result()
        except BrokenProcessPool as error:
            raise RuntimeError(
                "an identify worker process stopped before it returned its "
                f"verdicts, perhaps killed or out of memory ({error}). Run again, "
                "or set --identify-workers 0 (RunConfig.identify_workers = 0) to "
                "identify in the main process"
            ) from error
        yield position, judged, peak or 0


_worker_identifier: Identifier | None = None


def _start_worker(identifier: Identifier) -> None:
    global _worker_identifier
    _worker_identifier = identifier


def _identify_in_worker(batch: pa.RecordBatch) -> tuple[JudgedBatch, int | None]:
    """Judge one batch in a worker; return it with the worker's peak MiB."""
    if _worker_identifier is None:
        raise RuntimeError("the identify worker was started without an identifier")
    return _judge(_worker_identifier, batch), peak_rss_mib()


@dataclass(frozen=True)
class JudgedBatch:
    """One batch's VERDICT_SCHEMA rows, in the batch's order, and its green products."""

    table: pa.Table
    green: GreenFacts


def _judge(identifier: Identifier, batch: pa.RecordBatch) -> JudgedBatch:
    verdicts = identifier.identify_many(
        [query_from_row(row) for row in batch.to_pylist()]
    )
    keys = batch.column("product_key")
    green = GreenFacts()
    for key, verdict in zip(keys.to_pylist(), verdicts, strict=True):
        green.add(key, verdict)
    return JudgedBatch(_verdict_table(keys, verdicts), green)


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
