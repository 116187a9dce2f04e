"""Time `append_batches` on SQLite and split its CPU time between its two threads.

Usage: .venv/bin/python benchmarks/ledger/append_threads.py [--entries 300000]
       [--switch-interval 0.001]

Records are built before the clock, 20 batches of 10,000 at a time, as in
ledger_bench.py. The script prints appends per second of wall time, then the
CPU microseconds per entry (`time.thread_time`) that the preparing thread
spends encoding and hashing and working out tiles, and that the writer thread
spends in the database. `--switch-interval` overrides the switch interval
that `append_batches` sets while it runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger_bench import batches

from greenloop.store import ledger
from greenloop.store.base import make_engine

GROUP = 200_000


def timed(totals: dict[str, float], name: str, step: Callable[..., Any]) -> Any:
    """Wrap `step` so that its thread's CPU time adds up under `name`."""

    def wrapper(*arguments: Any) -> Any:
        started = time.thread_time()
        try:
            return step(*arguments)
        finally:
            totals[name] = totals.get(name, 0.0) + time.thread_time() - started

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=300_000, help="entries")
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="seconds; the interval append_batches sets (default: its own)",
    )
    arguments = parser.parse_args()

    if arguments.switch_interval is not None:
        ledger.WRITER_SWITCH_INTERVAL = arguments.switch_interval
    folder = Path(tempfile.mkdtemp(prefix="greenloop-append-threads-"))
    log = ledger.LedgerStore(
        make_engine(f"sqlite:///{folder / 'ledger.sqlite3'}"), key_dir=folder / "keys"
    )

    totals: dict[str, float] = {}
    ledger.prepare_batch = timed(totals, "prepare (encode, hash)", ledger.prepare_batch)
    ledger.plan_tiles = timed(totals, "plan (tiles, root, results)", ledger.plan_tiles)
    write = timed(totals, "writer thread (database)", log._append_prepared)
    log._append_prepared = write

    wall = 0.0
    for first in range(0, arguments.entries, GROUP):
        group = list(batches(first, min(first + GROUP, arguments.entries), 10_000))
        started = time.perf_counter()
        for _ in log.append_batches(group):
            pass
        wall += time.perf_counter() - started

    print(f"appends per second: {arguments.entries / wall:,.0f}")
    for name, seconds in totals.items():
        print(f"{name}: {seconds / arguments.entries * 1e6:.2f} CPU µs per entry")


if __name__ == "__main__":
    main()
