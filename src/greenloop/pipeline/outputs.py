"""The report step: write verdicts, quarantine, returns, reports and the manifest.

The data files (`write_data_files`) need only DuckDB, so the main job writes
them in a thread of their own while the finance step runs. The reports and
the manifest follow (`write_outputs`). Every file is written under a temporary name
and renamed, and the manifest is written last, so a run folder with a manifest
is complete. A write that fails removes its temporary file and raises
OutputError, which names the file and what to do.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow.parquet as pq
from sqlalchemy.engine import Engine

import greenloop
from greenloop.impact.record import Impact
from greenloop.pipeline.mapping import ColumnMapping
from greenloop.pipeline.memory import cpu_seconds, record_peak
from greenloop.pipeline.sources import Source
from greenloop.pipeline.totals import ROUNDING_NOTE, exact_sum, fetch_totals, to_float
from greenloop.reports.run_report import render_html

if TYPE_CHECKING:
    from greenloop.pipeline.assets import LedgerCounts
    from greenloop.pipeline.job import RunConfig

VERDICT_COLUMNS = (
    "row, purchase_id, occurred_at, merchant_id, merchant_name, mcc, title, sku, "
    "brand, "
    "model_number, region, region_code, quantity, returned_quantity, net_quantity, "
    "amount, net_amount, currency, installments, energy_label_grade, certificate_id, "
    "label_codes, product_key, status, category, standard_id, standard_version, "
    "top_tier, model_category, model_score, claim_kinds, verdict_digest, "
    "impact_method, impact_basis, region_used, "
    "lifetime_years, kg_co2e_per_year, kg_co2e_lifetime, low_kg_co2e_lifetime, "
    "high_kg_co2e_lifetime, spend_method, spend_estimate_kg_co2e"
)
# The verdict in full, once per distinct product; purchases refer to it by key.
PRODUCT_COLUMNS = (
    "product_key, title, sku, brand, model_number, mcc, merchant_id, "
    "merchant_name, energy_label_grade, certificate_id, label_codes, status, "
    "category, standard_id, standard_version, top_tier, model_category, "
    "model_score, reasons, claims, claim_kinds, evidence, attributes, verdict_digest"
)
TOP_REASONS = 12
KG_PER_TONNE = 1000
VERDICT_ROW_RANGE = 100_000
VERDICT_ROW_GROUP = 122_880
# Columns of the verdict file whose values nearly all differ, so a dictionary
# would cost time and save no space.
VERDICT_PLAIN_COLUMNS = ("row", "purchase_id", "occurred_at")
# Columns whose minimum and maximum per row group the verdict file states, for
# readers that filter on them. Statistics of the other columns only cost
# encoding time.
VERDICT_STATISTICS_COLUMNS = (
    "row",
    "purchase_id",
    "occurred_at",
    "product_key",
    "status",
    "ledger_index",
)
# DuckDB 2.0 reports the errno of a failed write only inside its message, as
# "errno":"28".
DUCKDB_ERRNO = re.compile(r'"errno":"(\d+)"')
# First characters of a CSV text cell that get a leading single quote, as a
# DuckDB list: the characters that start a formula in spreadsheets, and the
# quote itself.
SPREADSHEET_QUOTED_STARTS = "('=', '+', '-', '@', chr(9), chr(13), '''')"
NEGATIVE_NUMBER_TEXT = "-[0-9][0-9.,]*"
FULL_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT}
PERMISSION_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS}

logger = logging.getLogger(__name__)


class OutputError(OSError):
    """A failure to write a run file, with a message naming the file and the fix."""


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write `path` through a temporary file, which any failure removes.

    Raises OutputError when the file system rejects the write. Any other error
    is raised unchanged.
    """
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException as error:
        _remove_temporary(temporary)
        if isinstance(error, OSError | duckdb.IOException):
            raise _output_error(path, error) from error
        raise


def _remove_temporary(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        logger.warning("could not remove the temporary file %s: %s", path, error)


def _output_error(path: Path, error: OSError | duckdb.IOException) -> OutputError:
    """Return an OutputError for `path` that names the failure and the fix."""
    number = error.errno if isinstance(error, OSError) else None
    if number is None:
        found = DUCKDB_ERRNO.search(str(error))
        number = int(found.group(1)) if found else None
    if number is not None:
        detail = os.strerror(number)
    else:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if number in FULL_DISK_ERRORS:
        fix = "free space on its file system"
    elif number in PERMISSION_ERRORS:
        fix = "make the folder writable"
    else:
        fix = "check the folder"
    failure = OutputError(
        f"cannot write {path}: {detail}; {fix} or choose another output folder "
        "(--out) and run again"
    )
    failure.errno = number
    return failure


def _copy_to(
    connection: duckdb.DuckDBPyConnection, query: str, options: str
) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        quoted = str(path).replace("'", "''")
        connection.execute(f"COPY ({query}) TO '{quoted}' ({options})")

    return write


def _spreadsheet_query(
    connection: duckdb.DuckDBPyConnection, table: str, columns: str, order: str
) -> str:
    """Return a query of `columns` of `table` whose text cells open as text.

    A spreadsheet runs a cell that starts with =, +, -, @, a tab or a carriage
    return as a formula. Such a text cell, and one that starts with a single
    quote, gets a single quote in front, so removing one leading quote from a
    text cell gives back the stored value. A negative number written as text,
    such as -45.00, runs nothing and is written as it is. Columns of other
    types are written as they are. `order` names the table's own columns, such
    as returns.row, so that rows are sorted by their stored values.
    """
    described = connection.execute(f"DESCRIBE SELECT {columns} FROM {table}")
    selected = [
        _spreadsheet_text(name) if kind == "VARCHAR" else _identifier(name)
        for name, kind, *_ in described.fetchall()
    ]
    return f"SELECT {', '.join(selected)} FROM {table} ORDER BY {order}"


def _spreadsheet_text(name: str) -> str:
    column = _identifier(name)
    return (
        f"CASE WHEN left({column}, 1) IN {SPREADSHEET_QUOTED_STARTS} "
        f"AND NOT regexp_full_match({column}, '{NEGATIVE_NUMBER_TEXT}') "
        f"THEN '''' || {column} ELSE {column} END AS {column}"
    )


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _write_verdicts(connection: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Write every purchase's verdict to `path`, in input row order.

    One sort of every purchase would spill to disk at tens of millions of
    rows. So the rows of one range of VERDICT_ROW_RANGE row numbers at a time
    are read, sorted in Arrow and appended to the file in range order. Sorting
    in Arrow keeps the rows out of DuckDB's memory limit, which is small while
    the finance step runs. `results` is stored as a few sorted runs, one per
    DuckDB thread that inserted into it, so each range reads few row groups.
    Most of the time goes into making Arrow rows and encoding Parquet, so one
    range is encoded in a second thread while DuckDB reads the next.
    """
    query = (
        f"SELECT {VERDICT_COLUMNS}, ledger_index FROM results "
        "LEFT JOIN (SELECT * FROM ledger_indexes WHERE row >= $low AND row < $high) "
        "USING (row) WHERE row >= $low AND row < $high"
    )
    first, last = connection.execute(
        "SELECT min(row), max(row) FROM results"
    ).fetchall()[0]
    # Without purchases, one empty range still gives the file its columns.
    lows = [0] if first is None else range(first, last + 1, VERDICT_ROW_RANGE)
    writer: pq.ParquetWriter | None = None
    written: Future[None] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verdicts") as encoder:
        try:
            for low in lows:
                bounds = {"low": low, "high": low + VERDICT_ROW_RANGE}
                rows = connection.sql(query, params=bounds).to_arrow_table()
                rows = rows.sort_by("row")
                if writer is None:
                    writer = pq.ParquetWriter(
                        path,
                        rows.schema,
                        compression="zstd",
                        use_dictionary=[
                            name
                            for name in rows.schema.names
                            if name not in VERDICT_PLAIN_COLUMNS
                        ],
                        write_statistics=list(VERDICT_STATISTICS_COLUMNS),
                    )
                if written is not None:
                    written.result()
                written = encoder.submit(
                    writer.write_table, rows, row_group_size=VERDICT_ROW_GROUP
                )
                del rows
            if written is not None:
                written.result()
        finally:
            if written is not None:
                # The writer is closed only after its last write, failed or not.
                wait([written])
            if writer is not None:
                writer.close()


def write_data_files(connection: duckdb.DuckDBPyConnection, run_dir: Path) -> float:
    """Write verdicts, products, quarantine and returns; return the seconds taken.

    `connection` must be a connection of its own (a cursor) when another thread
    uses the database meanwhile.
    """
    started = time.perf_counter()
    write_atomically(
        run_dir / "verdicts.parquet", lambda path: _write_verdicts(connection, path)
    )
    write_atomically(
        run_dir / "products.parquet",
        _copy_to(
            connection,
            f"SELECT {PRODUCT_COLUMNS} FROM products "
            f"JOIN product_verdicts USING (product_key) ORDER BY product_key",
            "FORMAT parquet, COMPRESSION zstd",
        ),
    )
    write_atomically(
        run_dir / "quarantine.csv",
        _copy_to(
            connection,
            _spreadsheet_query(
                connection,
                "quarantine",
                "*",
                'quarantine.row, quarantine."column"',
            ),
            "HEADER, DELIMITER ','",
        ),
    )
    write_atomically(
        run_dir / "returns.csv",
        _copy_to(
            connection,
            _spreadsheet_query(
                connection,
                "returns",
                "row, return_id, occurred_at, sku, title, quantity, amount, "
                "returns_purchase_id, match_status",
                "returns.row",
            ),
            "HEADER, DELIMITER ','",
        ),
    )
    return round(time.perf_counter() - started, 3)


def write_outputs(
    *,
    connection: duckdb.DuckDBPyConnection,
    run_dir: Path,
    run_id: str,
    config: RunConfig,
    source: Source,
    mapping: ColumnMapping,
    started_at: datetime,
    counts: dict[str, dict[str, Any]],
    timings: dict[str, float],
    peaks: dict[str, int],
    cpu: dict[str, float],
    identifier_versions: dict[str, str],
    factor_versions: dict[str, str],
    unit_impacts: dict[tuple[int, str | None], Impact],
    ledger: LedgerCounts,
    finance: Any,
    engine: Engine,
) -> dict[str, Any]:
    """Write the reports and the manifest into `run_dir`; return the manifest.

    The data files of `write_data_files` must be written already.
    """
    started = time.perf_counter()
    started_cpu = cpu_seconds()
    report = build_report(
        connection, run_id, counts, unit_impacts, ledger, finance, config.standard
    )
    finished_at = datetime.now(UTC)
    manifest = {
        "run_id": run_id,
        "status": "succeeded",
        "input": {
            "path": str(source.path),
            "format": source.format,
            "sha256": source.sha256,
            "mapping": mapping.name,
        },
        "standard": {"jurisdiction": config.standard, "versions": identifier_versions},
        "factor_versions": factor_versions,
        "package_version": greenloop.__version__,
        "engine": {"name": "duckdb", "version": duckdb.__version__},
        "database": engine.url.render_as_string(hide_password=True),
        "ledger": {"origin": config.origin, "tree_size": ledger.tree_size},
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "counts": counts,
        "step_seconds": timings,
        "peak_memory_mib": peaks,
        "cpu_seconds": cpu,
        "outputs": [
            "verdicts.parquet",
            "products.parquet",
            "quarantine.csv",
            "returns.csv",
            "report.json",
            "report.html",
        ]
        + ["checkpoint.txt", "verifier-key.txt"]
        + (["receipts/"] if ledger.receipts_written else []),
    }
    report["run"] = {
        key: manifest[key]
        for key in (
            "run_id",
            "input",
            "standard",
            "package_version",
            "started_at",
            "finished_at",
        )
    }
    report["checkpoint"] = ledger.checkpoint
    write_atomically(
        run_dir / "report.json", lambda p: p.write_text(_json(report), encoding="utf-8")
    )
    write_atomically(
        run_dir / "report.html",
        lambda p: p.write_text(render_html(report), encoding="utf-8"),
    )
    write_atomically(
        run_dir / "checkpoint.txt",
        lambda p: p.write_text(ledger.checkpoint, encoding="utf-8"),
    )
    write_atomically(
        run_dir / "verifier-key.txt",
        lambda p: p.write_text(ledger.verifier_key + "\n", encoding="utf-8"),
    )
    # The manifest is the last file, so its report time covers everything else.
    timings["report"] = round(time.perf_counter() - started, 3)
    cpu["report"] = round(cpu_seconds() - started_cpu, 3)
    # The whole process from its start, with the identify workers' time.
    cpu["process"] = round(cpu_seconds() + cpu.get("identify_workers", 0.0), 3)
    record_peak(peaks, "report")
    write_atomically(
        run_dir / "manifest.json",
        lambda p: p.write_text(_json(manifest), encoding="utf-8"),
    )
    return manifest


def _json(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, default=_default) + "\n"


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def build_report(
    connection: duckdb.DuckDBPyConnection,
    run_id: str,
    counts: dict[str, dict[str, Any]],
    unit_impacts: dict[tuple[int, str | None], Impact],
    ledger: LedgerCounts,
    finance: Any,
    standard: str,
) -> dict[str, Any]:
    """Return the run report as JSON-ready values."""
    from greenloop.impact import summarize_impacts

    by_category_status = [
        {"category": category or "(none)", "status": status, "purchases": int(n)}
        for category, status, n in connection.execute(
            "SELECT category, status, count(*) FROM results GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    ]
    top_reasons = [
        {"reason": reason, "purchases": int(n)}
        for reason, n in connection.execute(
            f"""
            SELECT reason, sum(n) AS n FROM (
                SELECT unnest(from_json(v.reasons, '["VARCHAR"]')) AS reason, n
                FROM (SELECT product_key, count(*) AS n FROM results GROUP BY 1)
                JOIN product_verdicts v USING (product_key)
            ) GROUP BY 1 ORDER BY n DESC, reason LIMIT {TOP_REASONS}
            """
        ).fetchall()
    ]
    # A row can have several entries of one kind, such as two bad keys of one
    # JSON record, so the rows are counted once each.
    quarantine_reasons = [
        {"column": column, "reason": reason, "rows": int(n)}
        for column, reason, n in connection.execute(
            'SELECT "column", reason, count(DISTINCT row) FROM quarantine '
            'GROUP BY 1, 2 ORDER BY 3 DESC, reason, "column"'
        ).fetchall()
    ]
    claims = dict(
        connection.execute(
            """
            SELECT kind, sum(n) FROM (
                SELECT unnest(string_split(claim_kinds, ';')) AS kind, n
                FROM (SELECT claim_kinds, count(*) AS n FROM results
                      WHERE claim_kinds IS NOT NULL GROUP BY claim_kinds)
            ) GROUP BY 1 ORDER BY 2 DESC, 1
            """
        ).fetchall()
    )
    green_without_evidence = connection.execute(
        "SELECT count(*) FROM results JOIN product_verdicts v USING (product_key) "
        "WHERE v.status = 'green' AND (v.evidence IS NULL OR v.evidence = '[]')"
    ).fetchall()[0][0]
    impact_rows = _impact_rows(connection, unit_impacts)
    factor_use = {
        str(scope): int(n)
        for scope, n in connection.execute(
            "SELECT coalesce(region_used, 'no grid factor'), count(*) FROM results "
            "WHERE kg_co2e_per_year IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
    }
    report: dict[str, Any] = {
        "counts": counts,
        "avoided_by_category": _avoided_by_category(connection),
        "purchases_by_grid_factor": factor_use,
        "verdicts": {
            "by_category_status": by_category_status,
            "top_reasons": top_reasons,
            "claims_by_kind": {kind: int(n) for kind, n in claims.items()},
            "green_without_evidence": int(green_without_evidence),
        },
        "quarantine": {"by_reason": quarantine_reasons},
        "impact": summarize_impacts(impact_rows),
        "spend_estimates": {
            "note": "Footprint estimates of what was bought (spend-based); never added "
            "to the avoided emissions above.",
            "by_category": _spend_by_category(connection),
        },
        "rounding": ROUNDING_NOTE,
        "ledger": {
            "entries_appended": ledger.entries_appended,
            "entries_existing": ledger.entries_existing,
            "tree_size": ledger.tree_size,
            "receipts_written": ledger.receipts_written,
        },
        "standard": standard,
    }
    if finance is not None:
        report["allocation"] = finance.allocation_report
        report["incentives"] = finance.incentive_report
    return report


def _avoided_by_category(connection: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Return the activity-based tCO2e avoided per category, largest first."""
    rows = fetch_totals(
        connection,
        f"""
        SELECT category, count(*), {exact_sum("kg_co2e_per_year")},
               {exact_sum("kg_co2e_lifetime")}
        FROM results WHERE kg_co2e_per_year IS NOT NULL
        GROUP BY 1 ORDER BY 3 DESC, 1
        """,
        "the avoided kgCO2e per category",
    )
    return [
        {
            "category": category,
            "purchases": int(n),
            "t_co2e_per_year": to_float(per_year, KG_PER_TONNE),
            "t_co2e_lifetime": to_float(lifetime, KG_PER_TONNE),
        }
        for category, n, per_year, lifetime in rows
    ]


def _spend_by_category(connection: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Return the spend-based kgCO2e estimates per category, largest first."""
    rows = fetch_totals(
        connection,
        f"""
        SELECT category, count(*), {exact_sum("spend_estimate_kg_co2e")}
        FROM results WHERE spend_estimate_kg_co2e IS NOT NULL
        GROUP BY 1 ORDER BY 3 DESC, 1
        """,
        "the spend-based kgCO2e estimates per category",
    )
    return [
        {"category": category or "(none)", "purchases": int(n), "kg_co2e": to_float(kg)}
        for category, n, kg in rows
    ]


def _impact_rows(
    connection: duckdb.DuckDBPyConnection,
    unit_impacts: dict[tuple[int, str | None], Impact],
) -> Iterator[tuple[str | None, str | None, Impact, int]]:
    """Yield (category, region, impact, purchases) per group of alike purchases.

    Impact is linear in quantity, so a group's impact is the unit impact times
    the group's total quantity.
    """
    groups = fetch_totals(
        connection,
        f"""
        SELECT facts_id, region_code, category, {exact_sum("net_quantity")}, count(*)
        FROM results WHERE kg_co2e_per_year IS NOT NULL AND net_quantity > 0
        GROUP BY 1, 2, 3
        """,
        "the quantities of green purchases",
    )
    for facts_id, region_code, category, quantity, purchases in groups:
        scaled = _scale(unit_impacts[(facts_id, region_code)], to_float(quantity))
        yield category, region_code, scaled, int(purchases)


def _scale(impact: Impact, quantity: float) -> Impact:
    return dataclasses.replace(
        impact,
        kg_co2e_per_year=impact.kg_co2e_per_year * quantity,
        kg_co2e_lifetime=impact.kg_co2e_lifetime * quantity,
        low_kg_co2e_lifetime=impact.low_kg_co2e_lifetime * quantity,
        high_kg_co2e_lifetime=impact.high_kg_co2e_lifetime * quantity,
    )
