"""Split the CPU time of one 10,000-entry SQLite append into its steps.

Usage: .venv/bin/python benchmarks/ledger/append_breakdown.py [--batches 5]

Each in-memory step runs alone, and the last row times a whole append as the
store runs it, SQL included. Figures are CPU microseconds per entry
(`time.process_time`), which other jobs on a shared machine distort less
than wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger_bench import batches

from greenloop.ledger.canonical import canonical_json
from greenloop.ledger.merkle import leaf_hash
from greenloop.ledger.tiles import extend_tiles
from greenloop.store.base import make_engine
from greenloop.store.ledger import LedgerStore


def cpu_microseconds(step: Callable[[], Any], count: int) -> float:
    """Run `step` once and return its CPU time in microseconds per entry."""
    started = time.process_time()
    step()
    return (time.process_time() - started) / count * 1e6


def _encode_all(batch: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    return [canonical_json(record) for _, record in batch]


def _hash_all(entries: list[bytes]) -> list[bytes]:
    return [leaf_hash(entry) for entry in entries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=5, help="batches to average")
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="greenloop-append-breakdown-"))
    log = LedgerStore(
        make_engine(f"sqlite:///{folder / 'ledger.sqlite3'}"), key_dir=folder / "keys"
    )
    totals: dict[str, float] = {}
    for batch in batches(0, 10_000 * arguments.batches, 10_000):
        count = len(batch)
        entries = [canonical_json(record) for _, record in batch]
        leaves = [leaf_hash(entry) for entry in entries]
        steps: dict[str, Callable[[], Any]] = {
            "canonical JSON (RFC 8785)": partial(_encode_all, batch),
            "leaf hashes": partial(_hash_all, entries),
            "tiles with inner hashes": partial(extend_tiles, 0, {}, leaves),
            "whole append (all steps and SQL)": partial(log.append, batch),
        }
        for name, step in steps.items():
            totals[name] = totals.get(name, 0.0) + cpu_microseconds(step, count)
    for name, total in totals.items():
        print(f"{name}: {total / arguments.batches:.1f} CPU microseconds per entry")


if __name__ == "__main__":
    main()
