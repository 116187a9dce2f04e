"""The main job: ingest → identify → impact → green assets → ledger → finance → report.

`run_job` reads like the loop it closes; each step is a function in its own
module, and each records its counts in the manifest.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
from sqlalchemy.engine import Engine

import greenloop
from greenloop.pipeline import assets as asset_step
from greenloop.pipeline.identify_step import identify_products
from greenloop.pipeline.impact_step import (
    GreenFacts,
    compute_impacts,
    create_purchase_results,
    normalize_regions,
)
from greenloop.pipeline.ingest import drop_purchases, ingest
from greenloop.pipeline.mapping import ColumnMapping, identity_mapping, load_mapping
from greenloop.pipeline.memory import WITH_WORKERS, cpu_seconds, record_peak
from greenloop.pipeline.outputs import write_data_files, write_outputs
from greenloop.pipeline.progress import NoProgress, ProgressSink
from greenloop.pipeline.sources import Source, register_source
from greenloop.pipeline.totals import exact_sum, fetch_totals, to_float
from greenloop.store.base import make_engine

logger = logging.getLogger(__name__)

DEFAULT_ORIGIN = "greenloop.local/green-assets"
PACKAGE_DATA = Path(__file__).resolve().parents[1]
DEFAULT_FACILITIES = PACKAGE_DATA / "funding" / "examples" / "facilities.yaml"
DEFAULT_CAMPAIGNS = PACKAGE_DATA / "incentives" / "examples" / "campaigns.yaml"

T = TypeVar("T")

FINANCE_DUCKDB_MEMORY = "192MB"
# The report sorts verdicts one row range at a time and aggregates into few
# groups, so more memory would only raise the run's peak.
REPORT_DUCKDB_MEMORY = "512MB"


@dataclass
class RunConfig:
    """Everything one run needs; paths are resolved by the caller."""

    input_path: Path
    out_dir: Path = Path("runs")
    mapping: str | Path | None = None
    standard: str = "cn"
    database_url: str | None = None
    key_dir: Path = Path("keys")
    registry_dir: Path | None = None
    energy_star_files: tuple[Path, ...] = ()
    facilities_path: Path | None = DEFAULT_FACILITIES
    campaigns_path: Path | None = DEFAULT_CAMPAIGNS
    origin: str = DEFAULT_ORIGIN
    as_of: date | None = None
    run_id: str | None = None
    memory_limit: str = "768MB"
    threads: int | None = None
    # Worker processes that identify products beside this one: 0 for none,
    # None for one per further CPU (see identify_step.default_workers), as
    # `greenloop run` uses. Inputs of fewer than
    # identify_step.PARALLEL_MIN_PRODUCTS distinct products use none. Workers
    # are new interpreters that do not import the main module, so a script
    # needs no `if __name__ == "__main__":` guard.
    identify_workers: int | None = None


@dataclass
class RunResult:
    """The outcome of a run: its id, its output folder, its manifest and counts."""

    run_id: str
    run_dir: Path
    manifest: dict[str, Any]
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)


def new_run_id(started_at: datetime, input_sha256: str) -> str:
    """Return a run id: the UTC start time, the input digest's start, pid and a token.

    The random token keeps apart two runs of one input that a process starts
    within the same second.
    """
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{input_sha256[:8]}-{os.getpid()}-{secrets.token_hex(4)}"


def run_job(config: RunConfig, progress: ProgressSink | None = None) -> RunResult:
    """Run the main job on one input file and write `runs/<run-id>/`.

    The run is recorded in the store as running, then as succeeded or failed.
    Meanwhile a thread refreshes its heartbeat every
    `runs.HEARTBEAT_INTERVAL_SECONDS`. Before that, earlier runs whose process
    has ended on this host, or whose heartbeat is stale, are marked
    interrupted.
    """
    from greenloop.store import runs as run_store
    from greenloop.store.heartbeat import RunHeartbeat
    from greenloop.store.schema import upgrade

    sink = progress or NoProgress()
    started_at = datetime.now(UTC)
    as_of = config.as_of or started_at.date()
    timings: dict[str, float] = {}
    peaks: dict[str, int] = {}
    cpu: dict[str, float] = {}
    counts: dict[str, dict[str, Any]] = {}

    with ExitStack() as cleanup:
        connection = _connect(config)
        cleanup.callback(connection.close)
        source = _timed(
            timings,
            peaks,
            cpu,
            "read",
            lambda: register_source(connection, config.input_path),
        )
        # Reading may copy part of the input to Python's temporary folder (the
        # run's folder does not exist yet). The copies go when the run ends,
        # whatever its outcome, so after every step that reads `raw`.
        cleanup.callback(source.remove_temporary_files)
        mapping = _resolve_mapping(config.mapping, source.columns)
        # The run streams through the store, so mapped pages would only add to
        # its resident memory. The store is opened before the run's folder is
        # made, so a store that cannot be opened leaves no empty run folder.
        # The output folder comes first, because the store may be a file in it.
        config.out_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(config.database_url, sqlite_mmap_bytes=0)
        cleanup.callback(engine.dispose)
        upgrade(engine)
        # A run killed while it stored many assets leaves some indexes dropped.
        run_store.create_missing_indexes(engine)
        run_store.mark_interrupted_runs(engine)
        run_id = config.run_id or new_run_id(started_at, source.sha256)
        run_dir = config.out_dir / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        spill = run_dir / ".spill"
        # DuckDB's spill files are of no use after the run, whatever its outcome.
        # The callbacks run last first, so the connection closes before they go.
        cleanup.callback(shutil.rmtree, spill, ignore_errors=True)
        cleanup.callback(connection.close)
        connection.execute(f"SET temp_directory = '{_sql_path(spill)}'")
        logger.info(
            "run %s started: input %s (sha256 %s), standard %s, greenloop %s, "
            "duckdb %s",
            run_id,
            config.input_path,
            source.sha256,
            config.standard,
            greenloop.__version__,
            duckdb.__version__,
        )

        run_store.record_run_start(
            engine,
            {
                "run_id": run_id,
                "input_path": str(config.input_path),
                "input_sha256": source.sha256,
                "standard": config.standard,
                "started_at": started_at,
            },
        )

        heartbeat = RunHeartbeat(
            engine.url, run_id, run_store.HEARTBEAT_INTERVAL_SECONDS
        )
        try:
            with heartbeat:
                manifest = _run_steps(
                    _Run(
                        config,
                        sink,
                        connection,
                        source,
                        mapping,
                        engine,
                        run_id,
                        run_dir,
                        started_at,
                        as_of,
                        timings,
                        peaks,
                        cpu,
                        counts,
                    )
                )
        except Exception as error:
            run_store.record_run_end(
                engine, run_id, "failed", {"error": f"{type(error).__name__}: {error}"}
            )
            logger.error("run %s failed: %s", run_id, error)
            raise
        except KeyboardInterrupt:
            # A process that catches the interruption and goes on, such as a
            # notebook, would otherwise leave the run `running`.
            run_store.record_run_end(
                engine, run_id, run_store.INTERRUPTED, {"error": "interrupted (SIGINT)"}
            )
            logger.error("run %s interrupted", run_id)
            raise
        run_store.record_run_end(engine, run_id, "succeeded", manifest)
        logger.info("run %s finished in %.1f s", run_id, sum(timings.values()))
        return RunResult(run_id, run_dir, manifest, counts)


@dataclass
class _Run:
    """The state the steps of one run share."""

    config: RunConfig
    sink: ProgressSink
    connection: duckdb.DuckDBPyConnection
    source: Source
    mapping: ColumnMapping
    engine: Engine
    run_id: str
    run_dir: Path
    started_at: datetime
    as_of: date
    timings: dict[str, float]
    peaks: dict[str, int]
    cpu: dict[str, float]
    counts: dict[str, dict[str, Any]]


def _run_steps(run: _Run) -> dict[str, Any]:
    """Run every step after the input is registered; return the manifest."""
    from greenloop.identify import Identifier
    from greenloop.impact import ImpactCalculator
    from greenloop.ledger import load_or_create_secret
    from greenloop.store.repositories import identifier_evidence

    run.sink.start("ingest", None)
    ingest_counts = _timed(
        run.timings,
        run.peaks,
        run.cpu,
        "ingest",
        lambda: ingest(run.connection, run.source, run.mapping, run.started_at),
    )
    run.sink.advance(ingest_counts.rows_read)
    run.sink.finish()
    run.counts["ingest"] = vars(ingest_counts)

    # Products certified through the certification workflow are evidence too.
    identifier = Identifier.load(
        jurisdiction=run.config.standard,
        registry_dir=run.config.registry_dir,
        energy_star_files=run.config.energy_star_files,
        certified_products=identifier_evidence(run.engine, as_of=run.as_of),
        as_of=run.as_of,
    )
    identified = _timed(
        run.timings,
        run.peaks,
        run.cpu,
        "identify",
        lambda: identify_products(
            run.connection, identifier, run.sink, run.config.identify_workers
        ),
    )
    run.counts["identify"] = {
        **_verdict_counts(run.connection, identified.products),
        "worker_processes": identified.workers,
    }
    if identified.worker_usage:
        run.cpu["identify_workers"] = round(identified.worker_cpu_seconds, 3)
    if identified.worker_peak_mib is not None and "identify" in run.peaks:
        # The workers ran beside the main process, so their memory adds to it.
        run.peaks["identify" + WITH_WORKERS] = (
            run.peaks["identify"] + identified.worker_peak_mib
        )

    calculator = ImpactCalculator.load(as_of=run.as_of)
    region_counts = normalize_regions(run.connection)

    def impact_step() -> dict[tuple[int, str | None], Any]:
        impacts = compute_impacts(
            run.connection, calculator, identified.green, run.sink
        )
        create_purchase_results(run.connection)
        # Every later step reads `results`, which has all purchase columns.
        drop_purchases(run.connection)
        return impacts

    # The step's time covers the join that gives every purchase its results.
    unit_impacts = _timed(run.timings, run.peaks, run.cpu, "impact", impact_step)
    identified.green = GreenFacts()  # free the green products before the ledger
    run.counts["impact"] = {**region_counts, **_impact_counts(run.connection)}

    secret = load_or_create_secret(run.config.key_dir / "user-hmac.key")

    total = _timed(
        run.timings,
        run.peaks,
        run.cpu,
        "green_assets",
        lambda: asset_step.build_assets(run.connection, run.run_id, secret),
    )
    receipt_ids = asset_step.receipt_purchase_ids(run.connection)
    ledger_counts = _timed(
        run.timings,
        run.peaks,
        run.cpu,
        "ledger",
        lambda: asset_step.append_to_ledger(
            run.engine,
            run.connection,
            run.config.key_dir,
            run.config.origin,
            receipt_ids,
            run.run_dir / "receipts",
            run.sink,
        ),
    )
    run.counts["green_assets"] = {
        "green_purchases": run.counts["identify"]["green"],
        "assets_found": total,
        "assets_new": ledger_counts.assets_stored,
    }
    run.counts["ledger"] = {
        key: value
        for key, value in vars(ledger_counts).items()
        if key not in ("checkpoint", "verifier_key", "assets_stored")
    }

    finance = None
    facilities, campaigns = run.config.facilities_path, run.config.campaigns_path
    financed = bool(facilities and campaigns)
    if financed:
        # The finance step keeps every financed loan in Python, so DuckDB
        # gives back most of its memory (spilling to disk) until the report.
        run.connection.execute(f"SET memory_limit = '{FINANCE_DUCKDB_MEMORY}'")
    # The data files need only DuckDB, which works without the GIL, and the
    # finance step is Python. So each gets a core, with one DuckDB thread:
    # more threads at the finance step's memory limit run out of memory.
    with (
        _duckdb_threads(run.connection, 1 if financed else None),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-files") as files,
    ):
        data_files = files.submit(_write_data_files, run.connection, run.run_dir)
        if facilities and campaigns:
            finance = _timed(
                run.timings,
                run.peaks,
                run.cpu,
                "finance",
                lambda: asset_step.finance_loans(
                    run.engine,
                    run.connection,
                    facilities,
                    campaigns,
                    run.as_of,
                    run.sink,
                ),
            )
    run.timings["data_files"] = data_files.result()
    logger.info("step data_files took %.2f s", run.timings["data_files"])
    if finance is not None:
        from greenloop.store.finance import clear_plan_caches

        # The cached plan figures (up to about 40 MB) are not needed again.
        clear_plan_caches()
        _release_freed_memory()
        run.connection.execute(
            f"SET memory_limit = '{_smaller_limit(run.config.memory_limit)}'"
        )
        run.counts["finance"] = {
            "loans": finance.processed,
            "rejected_loans": finance.rejected,
        }

    # The report step records its own time, CPU and peak in the manifest
    # before writing manifest.json, so the store keeps the same figures.
    manifest = write_outputs(
        connection=run.connection,
        run_dir=run.run_dir,
        run_id=run.run_id,
        config=run.config,
        source=run.source,
        mapping=run.mapping,
        started_at=run.started_at,
        counts=run.counts,
        timings=run.timings,
        peaks=run.peaks,
        cpu=run.cpu,
        identifier_versions=identifier.versions(),
        factor_versions=calculator.versions(),
        unit_impacts=unit_impacts,
        ledger=ledger_counts,
        finance=finance,
        engine=run.engine,
    )
    logger.info(
        "step report took %.2f s (peak memory %s MiB)",
        run.timings["report"],
        run.peaks.get("report"),
    )
    return manifest


@contextmanager
def _duckdb_threads(
    connection: duckdb.DuckDBPyConnection, threads: int | None
) -> Iterator[None]:
    """Run the block with DuckDB limited to `threads` (None: as configured)."""
    if threads is None:
        yield
        return
    configured = connection.execute("SELECT current_setting('threads')").fetchall()
    connection.execute(f"SET threads = {int(threads)}")
    try:
        yield
    finally:
        connection.execute(f"SET threads = {int(configured[0][0])}")


def _write_data_files(connection: duckdb.DuckDBPyConnection, run_dir: Path) -> float:
    """Write the run's data files on a DuckDB cursor of their own; return seconds."""
    cursor = connection.cursor()
    try:
        cursor.execute("SET TimeZone = 'UTC'")
        return write_data_files(cursor, run_dir)
    finally:
        cursor.close()


_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?i?B)\s*", re.IGNORECASE)
# DuckDB reads KB, MB, GB and TB as powers of 1000 and KiB, MiB, GiB and TiB
# as powers of 1024.
_UNIT_POWER = {"B": 0, "K": 1, "M": 2, "G": 3, "T": 4}


def _smaller_limit(configured: str) -> str:
    """Return REPORT_DUCKDB_MEMORY, or the configured limit when it is smaller."""
    configured_bytes = _size_bytes(configured)
    report_bytes = _size_bytes(REPORT_DUCKDB_MEMORY)
    if configured_bytes is None or report_bytes is None:
        return configured
    return configured if configured_bytes <= report_bytes else REPORT_DUCKDB_MEMORY


def _size_bytes(text: str) -> float | None:
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    unit = match.group(2).upper()
    base = 1024 if "I" in unit else 1000
    return float(match.group(1)) * base ** _UNIT_POWER[unit[0]]


def _release_freed_memory() -> None:
    """Collect garbage and return freed heap pages to the system (glibc only).

    Without this, freed pages stay in the heap and count towards the run's peak.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        logger.debug("malloc_trim is not available; freed memory stays in the heap")


def _connect(config: RunConfig) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(":memory:")
    connection.execute(f"SET memory_limit = '{config.memory_limit}'")
    connection.execute("SET preserve_insertion_order = false")
    connection.execute("SET enable_progress_bar = false")
    connection.execute("SET TimeZone = 'UTC'")
    if config.threads:
        connection.execute(f"SET threads = {int(config.threads)}")
    return connection


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _resolve_mapping(mapping: str | Path | None, columns: list[str]) -> ColumnMapping:
    if mapping is None:
        return identity_mapping(columns)
    return load_mapping(mapping)


def _timed(
    timings: dict[str, float],
    peaks: dict[str, int],
    cpu: dict[str, float],
    step: str,
    action: Callable[[], T],
) -> T:
    """Run one step; record its seconds, its CPU seconds and the peak memory after it.

    The CPU seconds are those of the whole process while the step ran, so
    they include a thread that works beside it.
    """
    started = time.perf_counter()
    started_cpu = cpu_seconds()
    result = action()
    timings[step] = round(time.perf_counter() - started, 3)
    cpu[step] = round(cpu_seconds() - started_cpu, 3)
    peak = record_peak(peaks, step)
    logger.info("step %s took %.2f s (peak memory %s MiB)", step, timings[step], peak)
    return result


def _verdict_counts(
    connection: duckdb.DuckDBPyConnection, products: int
) -> dict[str, Any]:
    by_status = dict(
        connection.execute(
            """
            SELECT v.status, count(*) FROM purchases p
            JOIN product_verdicts v USING (product_key) GROUP BY 1
            """
        ).fetchall()
    )
    products_by_status = dict(
        connection.execute(
            "SELECT status, count(*) FROM product_verdicts GROUP BY 1"
        ).fetchall()
    )
    return {
        "distinct_products": products,
        "green": int(by_status.get("green", 0)),
        "needs_review": int(by_status.get("needs_review", 0)),
        "not_green": int(by_status.get("not_green", 0)),
        "products_green": int(products_by_status.get("green", 0)),
        "products_needs_review": int(products_by_status.get("needs_review", 0)),
        "products_not_green": int(products_by_status.get("not_green", 0)),
    }


def _impact_counts(connection: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    row = fetch_totals(
        connection,
        f"""
        SELECT count(*) FILTER (WHERE kg_co2e_per_year IS NOT NULL),
               {exact_sum("kg_co2e_per_year")}, {exact_sum("kg_co2e_lifetime")},
               count(*) FILTER (WHERE spend_estimate_kg_co2e IS NOT NULL)
        FROM results
        """,
        "the avoided kgCO2e of the run",
    )[0]
    return {
        "purchases_with_activity_impact": int(row[0]),
        "kg_co2e_per_year": to_float(row[1]),
        "kg_co2e_lifetime": to_float(row[2]),
        "purchases_with_spend_estimate": int(row[3]),
    }
