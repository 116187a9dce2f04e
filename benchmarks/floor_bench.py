"""Time the least work the main job must do on its input, with no logic around it.

    .venv/bin/python benchmarks/floor_bench.py                 # the 10M generated input
    .venv/bin/python benchmarks/floor_bench.py --rows 1000000  # a smaller one

The main job reads every purchase, groups it by product, hashes each green
asset into the Merkle log, stores each log entry and each asset in the
embedded store (SQLite), and writes one verdict row per purchase. This script
times each of those parts as bare as it can be done here:

- scan: DuckDB reads the Parquet file and groups it by the product columns
  (the query `run_bench.py` compares the job with);
- leaf and node hashes: SHA-256 of every record as an RFC 9162 leaf, and one
  interior hash per leaf, in a list comprehension;
- log entries: the records go into the job's `ledger_entry` table with
  multi-row INSERTs, 10,000 rows per transaction, from tuples built beforehand;
- assets: the same for the job's `green_assets` table and its indexes;
- verdict file: DuckDB copies every purchase with 40 columns to a Parquet file.

DuckDB builds the records from the input's purchases with the job's record
layout, as many as the job's green assets (GREEN_SHARE of the rows), so their
number and length are close to the job's. The script needs only the input,
which it generates as `run_bench.py` does when it is missing. Results go to
benchmarks/out/floor_bench.json.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from run_bench import OUT, PRODUCT_COLUMNS, ROOT, add_input_options, generated_input

from greenloop.store.base import SQLITE_ROWS_PER_INSERT, make_engine
from greenloop.store.schema import upgrade

BATCH = 10_000
# The job's green assets were 3,693,914 of the 10,000,000 generated purchases.
GREEN_SHARE = 0.3694
RECORD_SQL = """
SELECT purchase_id, CAST(to_json({
    'amount_minor_units': CAST(round(amount * 100) AS BIGINT),
    'category': 'public_transport',
    'currency': currency,
    'g_co2e_lifetime': 1234,
    'impact_digest': sha256(title),
    'merchant_id': merchant_id,
    'occurred_at': strftime(occurred_at, '%Y-%m-%dT%H:%M:%SZ'),
    'periods': greatest(coalesce(installments, 1), 1),
    'purchase_id': purchase_id,
    'region': region,
    'standard_id': 'cn.public_transport',
    'standard_version': '2024-01-01',
    'type': 'greenloop.green_asset',
    'user': sha256(user_id),
    'verdict_digest': sha256(coalesce(sku, title)),
    'version': 1
}) AS VARCHAR) AS record,
strftime(occurred_at, '%Y-%m-%d %H:%M:%S.%f') AS occurred_text,
sha256(user_id) AS user_key, merchant_id, region,
CAST(round(amount * 100) AS BIGINT) AS amount_fen, currency,
greatest(coalesce(installments, 1), 1) AS periods
FROM read_parquet($path)
ORDER BY purchase_id LIMIT $records
"""


def timed(results: dict[str, float], name: str, action: Callable[[], Any]) -> Any:
    """Run `action`, store its seconds under `name`, print them, return its value."""
    gc.collect()
    started = time.perf_counter()
    value = action()
    results[name] = round(time.perf_counter() - started, 3)
    print(f"{name}: {results[name]:.2f} s", flush=True)
    return value


def scan(path: Path) -> None:
    """Read the file and group it by product, as run_bench's bare query does."""
    connection = duckdb.connect()
    connection.execute(
        f"SELECT {PRODUCT_COLUMNS}, count(*), sum(amount) "
        f"FROM read_parquet('{path}') GROUP BY ALL"
    ).fetchall()
    connection.close()


def green_records(path: Path, purchases: int) -> pa.Table:
    """Return GREEN_SHARE of the purchases in `path` as the job's green records."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    table = connection.sql(
        RECORD_SQL,
        params={"path": str(path), "records": round(purchases * GREEN_SHARE)},
    ).to_arrow_table()
    connection.close()
    return table


def hash_leaves(records: list[bytes]) -> list[bytes]:
    """Return the leaf hashes and compute one interior hash per leaf."""
    sha256 = hashlib.sha256
    leaves = [sha256(b"\x00" + record).digest() for record in records]
    level = leaves
    while len(level) > 1:
        level = [
            sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ] + ([level[-1]] if len(level) % 2 else [])
    return leaves


def insert_batches(
    database: Path, head: str, rows: list[tuple[Any, ...]], executemany: bool
) -> None:
    """Insert `rows` with multi-row INSERTs, one transaction per BATCH rows.

    `head` is the statement up to VALUES. A statement carries as many rows as
    SQLite's bound-parameter limit allows, up to SQLITE_ROWS_PER_INSERT, which
    was faster than executemany on this machine. With `executemany` set, the
    rows go through executemany instead.
    """
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA cache_size=-65536")
    width = len(rows[0]) if rows else 1
    limit = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per_statement = max(1, min(limit // width, SQLITE_ROWS_PER_INSERT))
    row_marks = "(" + ",".join("?" * width) + ")"
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        connection.execute("BEGIN")
        if executemany:
            connection.executemany(f"{head} VALUES {row_marks}", batch)
        else:
            for first in range(0, len(batch), per_statement):
                chunk = batch[first : first + per_statement]
                marks = ",".join([row_marks] * len(chunk))
                values = list(chain.from_iterable(chunk))
                connection.execute(f"{head} VALUES {marks}", values)
        connection.execute("COMMIT")
    connection.close()


def _index_users(database: Path) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE INDEX ix_green_assets_user_key ON green_assets (user_key)"
        )


def write_verdict_file(path: Path, target: Path, compression: str = "zstd") -> None:
    """Copy every purchase with 40 columns to a Parquet file, as verdicts are.

    The job compresses the file with zstd, the default here.
    """
    connection = duckdb.connect()
    connection.execute("SET memory_limit = '768MB'")
    connection.execute("SET preserve_insertion_order = false")
    connection.execute(
        f"""
        COPY (
            SELECT *, md5(title) AS verdict_digest, 'green' AS status,
                   'public_transport' AS category, 'cn.x' AS standard_id,
                   '2024-01-01' AS standard_version, 0.5 AS model_score,
                   1.5 AS kg_co2e_per_year, 15.0 AS kg_co2e_lifetime,
                   14.0 AS low_kg_co2e_lifetime, 16.0 AS high_kg_co2e_lifetime,
                   'activity' AS impact_method, 'grid' AS impact_basis,
                   region AS region_used, 10.0 AS lifetime_years,
                   quantity AS net_quantity, amount AS net_amount,
                   0 AS returned_quantity, hash(title) AS product_key,
                   CAST(NULL AS BIGINT) AS ledger_index
            FROM read_parquet('{path}')
        ) TO '{target}' (FORMAT parquet, COMPRESSION {compression})
        """
    )
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_input_options(parser)
    parser.add_argument(
        "--executemany",
        action="store_true",
        help="insert with executemany instead of multi-row INSERTs",
    )
    parser.add_argument(
        "--user-index-after",
        action="store_true",
        help="insert the assets without the index on user_key and build the "
        "index afterwards, timed on its own",
    )
    arguments = parser.parse_args()
    path = generated_input(arguments.rows, arguments.products)
    results: dict[str, float] = {}
    load_before = " ".join(f"{value:.2f}" for value in os.getloadavg())

    timed(results, "scan and group by product", lambda: scan(path))
    table = green_records(path, arguments.rows)
    rows = [tuple(row.values()) for row in table.to_pylist()]
    del table
    records = [row[1].encode("utf-8") for row in rows]
    print(f"{len(records):,} green records, {sum(map(len, records)) / len(records):.0f}"
          " bytes on average", flush=True)  # fmt: skip
    timed(results, "leaf and node hashes", lambda: hash_leaves(records))

    with tempfile.TemporaryDirectory(dir=OUT) as folder:
        database = Path(folder) / "floor.sqlite3"
        engine = make_engine(f"sqlite:///{database}")
        upgrade(engine)
        with engine.begin() as setup:
            setup.exec_driver_sql(
                "INSERT INTO ledger_log (id, origin, size, root) "
                "VALUES (1, 'floor', 0, x'00')"
            )
        engine.dispose()
        entries = [(1, index, row[0], records[index]) for index, row in enumerate(rows)]
        timed(
            results,
            "log entries into SQLite",
            lambda: insert_batches(
                database,
                "INSERT INTO ledger_entry (log_id, entry_index, purchase_id, record)",
                entries,
                arguments.executemany,
            ),
        )
        entries.clear()
        if arguments.user_index_after:
            with sqlite3.connect(database) as setup:
                setup.execute("DROP INDEX ix_green_assets_user_key")
        assets = [
            (row[0], "run", row[2], row[3], row[4], "public_transport", "cn.x",
             "2024-01-01", row[5], row[6], row[7], row[8], 1.5, 15.0, "d" * 64,
             "i" * 64, index, False)
            for index, row in enumerate(rows)
        ]  # fmt: skip
        timed(
            results,
            "assets into SQLite",
            lambda: insert_batches(
                database,
                "INSERT INTO green_assets (purchase_id, run_id, occurred_at, "
                "user_key, merchant_id, category, standard_id, standard_version, "
                "region, amount_fen, currency, periods, kg_co2e_per_year, "
                "kg_co2e_lifetime, verdict_digest, impact_digest, ledger_index, "
                "reversed)",
                assets,
                arguments.executemany,
            ),
        )
        assets.clear()
        if arguments.user_index_after:
            timed(
                results,
                "index on user_key, built after",
                lambda: _index_users(database),
            )
        rows.clear()
        records.clear()
        timed(
            results,
            "verdict file",
            lambda: write_verdict_file(path, Path(folder) / "verdicts.parquet"),
        )

    total = sum(results.values())
    summary = {
        "input": str(path.relative_to(ROOT)),
        "rows": arguments.rows,
        "sqlite_inserts": "executemany" if arguments.executemany else "multi-row",
        "user_index": "built after" if arguments.user_index_after else "during",
        "seconds": results,
        "total_seconds": round(total, 2),
        "purchases_per_second_at_total": round(arguments.rows / total),
        "load_average_before": load_before,
    }
    save_summary("floor_bench.json", summary)


def save_summary(file_name: str, summary: dict[str, Any]) -> None:
    """Add the load average and the time, write `summary` to OUT and print it."""
    summary["load_average_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    summary["utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / file_name).write_text(json.dumps(summary, indent=2), "utf-8")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
