"""Time `process_green_loans` on synthetic loans: a first run and a rerun.

    .venv/bin/python benchmarks/finance_bench.py sqlite:////tmp/bench.sqlite3 \
        --loans 100000

The loans spread over 2026 across six categories and 500 users, so every
example campaign and facility receives loans. With `--loans-from`, the loans
are instead those that a run of the main job stored, read from the
`finance_loans` table of that run's SQLite file, for example
`benchmarks/out/generated-run/bench.sqlite3` after
`benchmarks/run_bench.py --rows 1000000 --products 20000 --skip-online-retail`.
Those include interest plans of 24, 36 and 60 periods. The loans go to the
example facility and campaign files. The database should be empty, so the
first run makes every award and the rerun makes none. Prints one JSON line per
run: the seconds taken (wall clock, and CPU time of this process, which leaves
out the database server's), the load average when the run started, and the
resident memory before the run and the process's peak so far (MiB). The first run's
peak minus the memory before it bounds what the finance step itself used.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from greenloop.store.base import make_engine
from greenloop.store.finance import GreenLoan, process_green_loans

SOURCE = Path(__file__).resolve().parents[1] / "src" / "greenloop"
FACILITIES = SOURCE / "funding" / "examples" / "facilities.yaml"
CAMPAIGNS = SOURCE / "incentives" / "examples" / "campaigns.yaml"
AS_OF = date(2026, 12, 31)
CATEGORIES = (
    "appliance",
    "new_energy_vehicle",
    "public_transport",
    "green_food",
    "green_product",
    "energy_star",
)


def synthetic_loans(count: int) -> list[GreenLoan]:
    """Build `count` loans with fixed, reproducible values."""
    start = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    return [
        GreenLoan(
            purchase_id=f"bench-{index:07d}",
            user_key=f"user-{index % 500:04d}",
            occurred_at=start + timedelta(hours=7 * index % (24 * 330)),
            principal_fen=50_000 + (index * 7919) % 2_000_000,
            periods=(3, 6, 9, 12)[index % 4],
            category=CATEGORIES[index % len(CATEGORIES)],
            region="CN-SH",
            merchant_id=f"merchant-{index % 40}",
            kg_co2e_lifetime=100.0 + index % 900,
        )
        for index in range(count)
    ]


def stored_loans(path: Path) -> list[GreenLoan]:
    """Read the loans of a main-job run from its SQLite store, in purchase id order."""
    if not path.is_file():
        raise SystemExit(f"store not found: {path}; run benchmarks/run_bench.py first")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT purchase_id, user_key, occurred_at, principal_fen, periods,"
            " category, region, merchant_id, kg_co2e_lifetime FROM finance_loans"
            " ORDER BY purchase_id"
        ).fetchall()
    return [
        # The columns are GreenLoan's fields in order. SQLAlchemy stores the
        # UTC time as naive ISO text on SQLite.
        GreenLoan(
            row[0], row[1], datetime.fromisoformat(row[2]).replace(tzinfo=UTC), *row[3:]
        )
        for row in rows
    ]


def resident_mib() -> float:
    """Return the current resident set size of this process in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status; run this on Linux")


def peak_mib() -> float:
    """Return the peak resident set size of this process so far in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="URL of an empty database")
    parser.add_argument(
        "--loans", type=int, default=5000, help="number of synthetic loans"
    )
    parser.add_argument(
        "--loans-from",
        type=Path,
        help="SQLite file of a main-job run whose stored loans to use instead",
    )
    arguments = parser.parse_args()
    engine = make_engine(arguments.url)
    if arguments.loans_from:
        loans = stored_loans(arguments.loans_from)
    else:
        loans = synthetic_loans(arguments.loans)
    for label in ("first run", "rerun"):
        load_average = os.getloadavg()[0]
        before = resident_mib()
        began = time.perf_counter()
        began_cpu = time.process_time()
        outcome = process_green_loans(engine, loans, FACILITIES, CAMPAIGNS, AS_OF)
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - began_cpu
        awards = sum(len(result.awards) for result in outcome.loans.values())
        record = {
            "run": label,
            "loans": len(loans),
            "awards": awards,
            "seconds": round(elapsed, 1),
            "cpu_seconds": round(cpu, 1),
            "load_average_1min": round(load_average, 2),
            "rss_before_mib": round(before),
            "peak_rss_mib": round(peak_mib()),
        }
        print(json.dumps(record), flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()
