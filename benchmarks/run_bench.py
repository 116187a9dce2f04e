"""Benchmark the main job: purchases per second per step, peak memory, and the
ratio to a bare DuckDB query that reads the same file and groups it by product.

    .venv/bin/python benchmarks/run_bench.py                 # Online Retail + 10M rows
    .venv/bin/python benchmarks/run_bench.py --rows 1000000  # a smaller generated input

Each run of the job is a separate process, and its peak resident memory is
what the job records in its manifest after each step (Linux's VmHWM). The
child's `ru_maxrss` is printed beside it but not used: a child started by
vfork takes the size of this process at the start (as large as 3.6 GB after
generating the input) into its own maximum. Results go to
benchmarks/out/run_bench.json and are printed as Markdown rows for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
ONLINE_RETAIL = (
    ROOT / ".." / "shared" / "data" / "online-retail" / "online_retail.parquet"
)
# The speed target of the main job on the generated input.
TARGET_PURCHASES_PER_SECOND = 500_000
PRODUCT_COLUMNS = (
    "title, mcc, merchant_id, merchant_name, brand, model_number, sku, "
    "energy_label_grade, certificate_id"
)


def machine() -> dict[str, str]:
    """Describe the machine: CPU model, cores, memory, load average."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as stream:
        for line in stream:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as stream:
        total_kib = int(stream.readline().split()[1])
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory_gib": f"{total_kib / 2**20:.1f}",
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "load_average": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }


def fresh_postgresql(url: str) -> str:
    """Drop and create the database that `url` names; return `url`.

    The script connects to the server's `postgres` database to do so, so the
    URL must name a database that may be thrown away.
    """
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import ArgumentError, OperationalError

    try:
        parsed = make_url(url)
    except ArgumentError as error:
        message = f"--postgresql {url!r} is not a database URL: {error}"
        raise SystemExit(message) from error
    name = parsed.database
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit(
            f"--postgresql {url!r} is not a PostgreSQL URL; give one such as "
            "postgresql+psycopg://postgres@127.0.0.1:5432/greenloop_bench"
        )
    if not name or name == "postgres" or '"' in name:
        raise SystemExit(
            f"--postgresql {url!r}: name a database that may be dropped, "
            "such as greenloop_bench"
        )
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        raise SystemExit(
            f"--postgresql {url!r}: failed to connect to the server to create "
            f"{name!r} ({error.orig}); check that PostgreSQL runs there"
        ) from error
    finally:
        admin.dispose()
    return url


def positive_count(text: str) -> int:
    """Return `text` as a count above zero, for argparse."""
    try:
        rows = int(text)
    except ValueError:
        rows = 0
    if rows <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid count {text!r}: give a whole number above 0, such as 1000000"
        )
    return rows


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """Add the size options of the generated input: --rows and --products."""
    parser.add_argument(
        "--rows", type=positive_count, default=10_000_000, help="generated rows"
    )
    parser.add_argument(
        "--products", type=positive_count, default=200_000, help="distinct products"
    )


def generated_input(rows: int, products: int) -> Path:
    """Return the generated input of that size, writing it first when missing."""
    from greenloop.pipeline.demo import write_benchmark_input

    folder = OUT / f"generated-{rows}-{products}"
    path = folder / "purchases.parquet"
    if not path.exists():
        # The input and its registries are written into a temporary folder and
        # renamed together, so an interrupted run leaves no half-written input.
        partial = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        started = time.perf_counter()
        write_benchmark_input(partial / path.name, rows, products)
        partial.rename(folder)
        print(f"generated {path} in {time.perf_counter() - started:.1f} s")
    return path


def run_job(
    input_path: Path, work: Path, extra: list[str], database: str | None = None
) -> dict:
    """Run `greenloop run` in a child process; return manifest, time and peak RSS.

    The store is a new SQLite file in `work`, or the database URL `database`.
    """
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    command = [
        sys.executable, "-m", "greenloop.cli", "run", str(input_path),
        "--out", str(work / "runs"),
        "--database", database or f"sqlite:///{work / 'bench.sqlite3'}",
        "--key-dir", str(work / "keys"), *extra,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if completed.returncode != 0:
        raise SystemExit(f"greenloop run failed:\n{completed.stderr[-3000:]}")
    manifest_path = next((work / "runs").glob("*/manifest.json"))
    manifest = json.loads(manifest_path.read_text("utf-8"))
    peaks = manifest.get("peak_memory_mib") or {}
    return {
        "seconds": elapsed,
        "peak_rss_mib": max(peaks.values()) if peaks else None,
        "peak_rss_mib_by_step": peaks,
        "child_ru_maxrss_mib": max(peak_kib, before) / 1024,
        "manifest": manifest,
    }


def bare_query_seconds(input_path: Path, repeats: int = 3) -> float:
    """Return the median time of reading the file and grouping it by product key."""
    times = []
    for _ in range(repeats):
        connection = duckdb.connect()
        started = time.perf_counter()
        connection.execute(
            f"SELECT {PRODUCT_COLUMNS}, count(*), sum(amount) "
            f"FROM read_parquet('{input_path}') GROUP BY ALL"
        ).fetchall()
        times.append(time.perf_counter() - started)
        connection.close()
    return sorted(times)[len(times) // 2]


def describe(name: str, rows: int, result: dict, bare: float | None) -> dict:
    """Summarise one benchmark: purchases per second overall and per step."""
    steps = result["manifest"]["step_seconds"]
    cpu = result["manifest"].get("cpu_seconds") or {}
    cores = len(os.sched_getaffinity(0))
    summary = {
        "input": name,
        "rows": rows,
        "seconds": round(result["seconds"], 2),
        "purchases_per_second": round(rows / result["seconds"]),
        "peak_rss_mib": result["peak_rss_mib"],
        "child_ru_maxrss_mib": round(result["child_ru_maxrss_mib"]),
        "steps": {
            step: {
                "seconds": seconds,
                "purchases_per_second": round(rows / seconds) if seconds else None,
                "peak_rss_mib_after": result["peak_rss_mib_by_step"].get(step),
                "cpu_seconds": cpu.get(step),
            }
            for step, seconds in steps.items()
        },
        "counts": result["manifest"]["counts"],
        # CPU seconds of the job's process and of its identify workers.
        "cpu_seconds": cpu.get("process"),
        "identify_worker_cpu_seconds": cpu.get("identify_workers"),
        # What the speed target allows: every core busy for the target's time.
        "cpu_seconds_at_target": round(rows / TARGET_PURCHASES_PER_SECOND * cores, 1),
    }
    if bare is not None:
        summary["bare_duckdb_seconds"] = round(bare, 3)
        summary["ratio_to_bare_query"] = round(result["seconds"] / bare, 1)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_input_options(parser)
    parser.add_argument("--skip-online-retail", action="store_true")
    parser.add_argument(
        "--skip-generated", action="store_true", help="run only the Online Retail file"
    )
    parser.add_argument(
        "--no-finance",
        action="store_true",
        help="skip loan allocation and incentive awards in the generated run",
    )
    parser.add_argument(
        "--identify-workers",
        type=int,
        default=1,
        help="worker processes that identify products in the generated run "
        "(default 1, for two CPUs; 0 identifies in the main process)",
    )
    parser.add_argument(
        "--postgresql",
        metavar="URL",
        help="store the generated run in this PostgreSQL database, which the "
        "script drops and creates first (for example "
        "postgresql+psycopg://postgres@127.0.0.1:5432/greenloop_bench)",
    )
    arguments = parser.parse_args()
    # A bad URL fails here, before any run. The database is dropped now too.
    database = fresh_postgresql(arguments.postgresql) if arguments.postgresql else None
    OUT.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine(), "runs": []}

    if ONLINE_RETAIL.exists() and not arguments.skip_online_retail:
        retail = run_job(
            ONLINE_RETAIL.resolve(),
            OUT / "online-retail",
            ["--mapping", "online-retail"],
        )
        rows = retail["manifest"]["counts"]["ingest"]["rows_read"]
        bare = None
        results["runs"].append(describe("UCI Online Retail", rows, retail, bare))
        print(json.dumps(results["runs"][-1], indent=2))

    if arguments.skip_generated:
        _finish(results)
        return

    generated = generated_input(arguments.rows, arguments.products)
    bare = bare_query_seconds(generated)
    extra = ["--registries", str(generated.parent / "registries")]
    if arguments.no_finance:
        extra.append("--no-finance")
    extra += ["--identify-workers", str(arguments.identify_workers)]
    result = run_job(generated, OUT / "generated-run", extra, database)
    results["runs"].append(
        describe(
            f"generated {arguments.rows:,} rows"
            + (" on PostgreSQL" if arguments.postgresql else ""),
            arguments.rows,
            result,
            bare,
        )
    )
    print(json.dumps(results["runs"][-1], indent=2))
    _finish(results)


def _finish(results: dict) -> None:
    """Add the final load average, write run_bench.json and print the machine."""
    results["machine"]["load_average_after"] = " ".join(
        f"{v:.2f}" for v in os.getloadavg()
    )
    (OUT / "run_bench.json").write_text(json.dumps(results, indent=2), "utf-8")
    print(json.dumps(results["machine"], indent=2))


if __name__ == "__main__":
    main()
