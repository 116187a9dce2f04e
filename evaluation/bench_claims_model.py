"""Time find_claims and CategoryModel.propose on batches of distinct titles.

The batch is built from the distinct Online Retail descriptions and the
hand-written Chinese and English evaluation titles, each repeated with a
running number appended so that every title is distinct, up to --titles.

Usage: python evaluation/bench_claims_model.py [--data DIR] [--titles N] [--repeats R]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from greenloop.identify.claims import default_lexicons, find_claims
from greenloop.identify.model import CategoryModel

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"


def main() -> None:
    """Run the timings and print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--titles", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()

    base = _base_titles(arguments.data)
    titles = [f"{base[i % len(base)]} {i}" for i in range(arguments.titles)]
    chinese = [title for title in titles if not title.isascii()]
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"load average before: {os.getloadavg()}")
    print(f"titles: {len(titles)} distinct, of which {len(chinese)} non-ASCII")

    default_lexicons()
    _time_per_title("find_claims, all titles", find_claims, titles, arguments.repeats)
    _time_per_title("find_claims, non-ASCII", find_claims, chinese, arguments.repeats)

    model = CategoryModel.load()
    model.propose(titles[:100])
    seconds = []
    cpu_seconds = []
    for _ in range(arguments.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        model.propose(titles)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    print(
        f"propose, {len(titles)} titles: median {statistics.median(seconds):.2f} s, "
        f"min {min(seconds):.2f} s wall, min {min(cpu_seconds):.2f} s CPU "
        f"over {arguments.repeats} runs"
    )
    print(f"load average after: {os.getloadavg()}")


def _time_per_title(
    label: str, function: Callable[[str], object], titles: list[str], repeats: int
) -> None:
    per_title = []
    cpu_per_title = []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        for title in titles:
            function(title)
        per_title.append((time.perf_counter() - start) / len(titles) * 1e6)
        cpu_per_title.append((time.process_time() - cpu_start) / len(titles) * 1e6)
    print(
        f"{label}: median {statistics.median(per_title):.1f} µs per title, "
        f"min {min(per_title):.1f} µs wall, min {min(cpu_per_title):.1f} µs CPU "
        f"over {repeats} runs of {len(titles)}"
    )


def _base_titles(data: Path) -> list[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(
        data / "online-retail" / "online_retail.parquet", columns=["Description"]
    )
    titles = sorted({text for text in table.column("Description").to_pylist() if text})
    with (HERE / "handwritten.csv").open(encoding="utf-8", newline="") as handle:
        titles += [row["title"] for row in csv.DictReader(handle)]
    return titles


if __name__ == "__main__":
    main()
