"""Benchmark the ledger: appends, proofs from storage, verification, bytes per entry.

Usage (from the project root):

    .venv/bin/python benchmarks/ledger_bench.py --backend sqlite --sizes 100000 1000000
    .venv/bin/python benchmarks/ledger_bench.py --backend postgresql --sizes 100000

The log grows from one size to the next in the same database, and each size
gets its own measurements. Each result is printed as one JSON line and, with
`--output`, appended to that file. With `--pymerkle-sizes`, pymerkle 7's SQLite
tree runs the same workload in a throwaway virtual environment under /tmp.
pymerkle is GPL-3.0, so it never becomes a project dependency.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from greenloop.ledger import leaf_hash, pseudonym, verify_inclusion, verify_receipt
from greenloop.store.base import make_engine
from greenloop.store.ledger import LedgerStore

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PYMERKLE_VERSION = "7.0.0"
TARGET_SIZE = 10**9
BENCH_SECRET = b"ledger-benchmark-secret-32-bytes"
CATEGORIES = ("appliance", "new_energy_vehicle", "public_transport", "second_hand")
REGIONS = ("CN-BJ", "CN-SH", "CN-GD", "CN-ZJ", "CN-SC")


def purchase_id(index: int) -> str:
    """Return the benchmark purchase id for entry `index`."""
    return f"bench-{index:010d}"


def green_asset(index: int) -> dict[str, Any]:
    """Return a green-asset record shaped like the batch run's, for entry `index`."""
    amount = Decimal(1000 + index % 9000) + Decimal("0.99")
    return {
        "purchase_id": purchase_id(index),
        "user": pseudonym(f"user-{index % 100_003}", BENCH_SECRET),
        "category": CATEGORIES[index % len(CATEGORIES)],
        "status": "green",
        "region": REGIONS[index % len(REGIONS)],
        "amount": amount,
        "currency": "CNY",
        "installments": 12,
        "occurred_at": f"2026-{1 + index % 12:02d}-{1 + index % 28:02d}T10:00:00Z",
        "standard": "cn-appliance-energy-label@2026-11-30",
        "kg_co2e_per_year": 100.5 + (index % 997) / 7,
        "verdict_digest": f"{index:064x}",
        "impact_digest": f"{index * 7:064x}",
    }


def batches(
    start: int, end: int, size: int
) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Yield (purchase_id, record) batches for entries start..end-1."""
    for first in range(start, end, size):
        last = min(first + size, end)
        yield [(purchase_id(i), green_asset(i)) for i in range(first, last)]


def append_until(
    log: LedgerStore, start: int, end: int, arguments: argparse.Namespace
) -> tuple[float, float]:
    """Grow the log from `start` to `end` entries; return wall and CPU seconds.

    Records are built before the clock starts, `--group-batches` batches at a
    time. With `append_batches` each group is one call, so the encoding of one
    batch overlaps the database write of the one before. With `append` each
    batch is one call. CPU seconds count every thread of this process.
    """
    wall_seconds = cpu_seconds = 0.0
    step = arguments.batch_size * arguments.group_batches
    for first in range(start, end, step):
        group = list(batches(first, min(first + step, end), arguments.batch_size))
        started, cpu_started = time.perf_counter(), time.process_time()
        if arguments.append_api == "append_batches":
            for _ in log.append_batches(group):
                pass
        else:
            for batch in group:
                log.append(batch)
        wall_seconds += time.perf_counter() - started
        cpu_seconds += time.process_time() - cpu_started
        del group
    return wall_seconds, cpu_seconds


def storage_bytes(engine: Engine, database_path: Path | None) -> int:
    """Return the ledger's bytes: the SQLite files, or the PostgreSQL tables."""
    if database_path is not None:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(
            path.stat().st_size
            for path in database_path.parent.glob(database_path.name + "*")
        )
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relkind = 'r' "
                    "AND c.relname LIKE 'ledger_%'"
                )
            ).scalar_one()
        )


def measure_size(
    engine: Engine, key_dir: Path, size: int, arguments: argparse.Namespace
) -> dict[str, Any]:
    """Measure proofs, verification and receipts on a log of `size` entries."""
    generator = random.Random(size)
    log = LedgerStore(engine, key_dir=key_dir)  # a new store: an empty tile cache
    indexes = [generator.randrange(size) for _ in range(arguments.proofs)]

    started, cpu_started = time.perf_counter(), time.process_time()
    proofs = [log.inclusion_proof(index) for index in indexes]
    proof_seconds = time.perf_counter() - started
    proof_cpu_seconds = time.process_time() - cpu_started

    started = time.perf_counter()
    batched = log.inclusion_proofs(indexes)
    batched_seconds = time.perf_counter() - started
    assert batched == proofs

    root = log.root()
    leaves = [leaf_hash(log.entry(purchase_id(index))[1]) for index in indexes]
    cases = [
        (leaves[n % len(leaves)], indexes[n % len(leaves)], proofs[n % len(leaves)])
        for n in range(arguments.verifications)
    ]
    started, cpu_started = time.perf_counter(), time.process_time()
    for leaf, index, proof in cases:
        verify_inclusion(leaf, index, size, proof, root)
    verify_seconds = time.perf_counter() - started
    verify_cpu_seconds = time.process_time() - cpu_started

    log.checkpoint()
    receipts = [
        log.receipt(purchase_id(index)) for index in indexes[: arguments.receipts]
    ]
    verifier = log.verifier
    started = time.perf_counter()
    for receipt in receipts:
        verify_receipt(receipt, verifier)
    receipt_seconds = time.perf_counter() - started

    pairs = [
        sorted((generator.randint(1, size), generator.randint(1, size)))
        for _ in range(200)
    ]
    started = time.perf_counter()
    for first, second in pairs:
        log.consistency_proof(first, second)
    consistency_seconds = time.perf_counter() - started

    return {
        "proofs_per_second": len(indexes) / proof_seconds,
        "proofs_per_cpu_second": len(indexes) / proof_cpu_seconds,
        "batched_proofs_per_second": len(indexes) / batched_seconds,
        "proof_hashes": sum(len(proof) for proof in proofs) / len(proofs),
        "verifications_per_second": len(cases) / verify_seconds,
        "verifications_per_cpu_second": len(cases) / verify_cpu_seconds,
        "receipt_verifications_per_second": len(receipts) / receipt_seconds,
        "consistency_proofs_per_second": len(pairs) / consistency_seconds,
    }


def run_backend(arguments: argparse.Namespace) -> list[dict[str, Any]]:
    """Grow one log through the requested sizes and measure at each."""
    work = Path(
        tempfile.mkdtemp(prefix="greenloop-ledger-bench-", dir=arguments.work_dir)
    )
    key_dir = work / "keys"
    database_path: Path | None = None
    schema = None
    if arguments.backend == "sqlite":
        database_path = work / "ledger.sqlite3"
        engine = make_engine(f"sqlite:///{database_path}")
    else:
        schema = f"ledger_bench_{os.getpid()}"
        admin = create_engine(arguments.postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        # The project's engine, so the run measures its pool settings.
        engine = make_engine(
            f"{arguments.postgres_url}?options=-csearch_path%3D{schema}"
        )
    log = LedgerStore(engine, key_dir=key_dir)
    results = []
    grown = 0
    try:
        for size in arguments.sizes:
            append_seconds, append_cpu_seconds = append_until(
                log, grown, size, arguments
            )
            appended = size - grown
            grown = size
            stored = storage_bytes(engine, database_path)
            result = {
                "backend": arguments.backend,
                "size": size,
                "batch_size": arguments.batch_size,
                "append_api": arguments.append_api,
                "appended": appended,
                "appends_per_second": appended / append_seconds if appended else None,
                "appends_per_cpu_second": (
                    appended / append_cpu_seconds if appended else None
                ),
                "bytes_per_entry": stored / size,
                **measure_size(engine, key_dir, size, arguments),
                "load_average": os.getloadavg(),
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            results.append(result)
            _emit(result, arguments.output)
    finally:
        engine.dispose()
        if schema is not None and not arguments.keep:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
        if not arguments.keep:
            shutil.rmtree(work, ignore_errors=True)
    return results


PYMERKLE_SCRIPT = """
import json, os, random, sys, time
from pymerkle import SqliteTree, verify_inclusion
path, size, proofs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
entries = [line.rstrip(b"\\n") for line in open(sys.argv[4], "rb")]
tree = SqliteTree(path)
started, cpu_started = time.perf_counter(), time.process_time()
for first in range(0, size, 10000):
    tree.append_entries(entries[first:first + 10000])
append_seconds = time.perf_counter() - started
append_cpu_seconds = time.process_time() - cpu_started
generator = random.Random(size)
indexes = [generator.randrange(1, size + 1) for _ in range(proofs)]
started, cpu_started = time.perf_counter(), time.process_time()
generated = [tree.prove_inclusion(index) for index in indexes]
proof_seconds = time.perf_counter() - started
proof_cpu_seconds = time.process_time() - cpu_started
root = tree.get_state()
leaves = [tree.get_leaf(index) for index in indexes]
started, cpu_started = time.perf_counter(), time.process_time()
for leaf, proof in zip(leaves, generated):
    verify_inclusion(leaf, root, proof)
verify_seconds = time.perf_counter() - started
verify_cpu_seconds = time.process_time() - cpu_started
tree.close()
print(json.dumps({
    "appends_per_second": size / append_seconds,
    "appends_per_cpu_second": size / append_cpu_seconds,
    "proofs_per_second": proofs / proof_seconds,
    "proofs_per_cpu_second": proofs / proof_cpu_seconds,
    "verifications_per_second": proofs / verify_seconds,
    "verifications_per_cpu_second": proofs / verify_cpu_seconds,
    "bytes_per_entry": os.path.getsize(path) / size,
}))
"""


def run_pymerkle(arguments: argparse.Namespace) -> list[dict[str, Any]]:
    """Run pymerkle's SQLite tree on the same records in a throwaway venv."""
    work = Path(tempfile.mkdtemp(prefix="greenloop-pymerkle-", dir=arguments.work_dir))
    environment = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(environment)], check=True)
    python = environment / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"pymerkle=={PYMERKLE_VERSION}"],
        check=True,
    )
    script = work / "pymerkle_run.py"
    script.write_text(PYMERKLE_SCRIPT, encoding="utf-8")
    from greenloop.ledger import canonical_json

    results = []
    try:
        for size in arguments.pymerkle_sizes:
            entries_path = work / f"entries-{size}.jsonl"
            with entries_path.open("wb") as handle:
                for index in range(size):
                    handle.write(canonical_json(green_asset(index)) + b"\n")
            output = subprocess.run(
                [
                    str(python),
                    str(script),
                    str(work / f"tree-{size}.db"),
                    str(size),
                    str(min(arguments.proofs, 1000)),
                    str(entries_path),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            result = {
                "backend": f"pymerkle {PYMERKLE_VERSION} SqliteTree",
                "size": size,
                **json.loads(output),
                "load_average": os.getloadavg(),
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            results.append(result)
            _emit(result, arguments.output)
    finally:
        if not arguments.keep:
            shutil.rmtree(work, ignore_errors=True)
    return results


def _emit(result: dict[str, Any], output: Path | None) -> None:
    print(json.dumps(result), flush=True)
    if output is not None:
        with output.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(result) + "\n")


def describe_machine() -> dict[str, Any]:
    """Return the machine facts the benchmark page records with each run."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
    }


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")

    parser.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[100_000],
        help="log sizes to measure at, ascending (entries)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=10_000, help="entries per append call"
    )
    parser.add_argument(
        "--append-api",
        choices=["append_batches", "append"],
        default="append",
        help="append: one call per batch. append_batches: one call per group of "
        "batches, as the main job makes them, which encodes the next batch and "
        "works out its tiles while a worker thread writes the current one",
    )
    parser.add_argument(
        "--group-batches",
        type=int,
        default=20,
        help="batches built in memory before each timed append call",
    )
    parser.add_argument(
        "--proofs", type=int, default=2_000, help="inclusion proofs generated per size"
    )
    parser.add_argument(
        "--verifications",
        type=int,
        default=20_000,
        help="inclusion proofs verified per size",
    )
    parser.add_argument(
        "--receipts", type=int, default=500, help="offline receipts verified per size"
    )
    parser.add_argument(
        "--pymerkle-sizes",
        type=int,
        nargs="*",
        default=[],
        help="sizes for the pymerkle comparison (none by default)",
    )

    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--work-dir", default=None, help="folder for temporary files")
    parser.add_argument(
        "--output", type=Path, default=None, help="append JSON lines here"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases afterwards"
    )

    arguments = parser.parse_args(argv)
    if arguments.sizes != sorted(arguments.sizes):
        parser.error(f"--sizes must be ascending, got {arguments.sizes}")
    return arguments


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    print(json.dumps({"machine": describe_machine()}), flush=True)
    if arguments.sizes:
        run_backend(arguments)
    if arguments.pymerkle_sizes:
        run_pymerkle(arguments)


if __name__ == "__main__":
    main()
