"""Benchmark identification: single-call latency and a batch of distinct products.

Usage (from the project root, with ../shared/data present):

    .venv/bin/python benchmarks/identify_bench.py [--batch 200000] [--single 3000]

The product mix is built from the reference data. It draws Online Retail
descriptions, ENERGY STAR refrigerator and clothes-washer models as sellers
write them, Chinese appliance titles with stated grades, Open Food Facts product
names, and fares and second-hand purchases by MCC. Size and colour words and
seller SKUs make every query distinct, so no verdict is reused. A synthetic
registry folder (energy-label filings for part of the Chinese titles, organic
codes) is written to a temporary folder. The shipped category model is used.
Output is one JSON document on standard output.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from greenloop.identify import Identifier, ProductQuery
from greenloop.identify.energy_star import read_energy_star_file

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
AS_OF = date(2026, 12, 4)
VARIANTS = [
    "SMALL",
    "LARGE",
    "SET OF 3",
    "PINK",
    "BLUE",
    "RED",
    "IVORY",
    "VINTAGE",
    "MINI",
    "JUMBO",
    "GIFT",
    "XL",
    "PACK OF 6",
    "RETRO",
    "DELUXE",
    "2026",
]
CHINESE_BRANDS = ["海尔", "美的", "格力", "海信", "小天鹅", "西门子", "容声", "TCL"]
CHINESE_TYPES = [
    "冰箱",
    "洗衣机",
    "空调",
    "电视",
    "热水器",
    "洗碗机",
    "微波炉",
    "电饭煲",
]
CHINESE_GRADES = [
    "新一级能效",
    "一级能效",
    "新二级能效",
    "三级能效",
    "",
    "能效等级：2级",
]


def main() -> None:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=200_000, help="Distinct products.")
    parser.add_argument("--single", type=int, default=3_000, help="Single calls timed.")
    parser.add_argument("--seed", type=int, default=20261204, help="Random seed.")
    parser.add_argument(
        "--unique-titles",
        action="store_true",
        help="Append a letter code to every title, so no two products share one.",
    )
    arguments = parser.parse_args()
    load_before = os.getloadavg()
    if not SHARED_DATA.is_dir():
        raise SystemExit(f"reference data not found at {SHARED_DATA}")

    generator = random.Random(arguments.seed)
    energy_star_files = [
        SHARED_DATA / "energy-star" / "refrigerators.csv",
        SHARED_DATA / "energy-star" / "clothes-washers.csv",
    ]
    with tempfile.TemporaryDirectory() as folder:
        registry_dir = write_registries(Path(folder), generator)
        started = time.perf_counter()
        identifier = Identifier.load(
            "cn",
            registry_dir=registry_dir,
            energy_star_files=energy_star_files,
            as_of=AS_OF,
        )
        load_seconds = time.perf_counter() - started
    queries = build_queries(arguments.batch, generator, energy_star_files)
    if arguments.unique_titles:
        queries = [
            replace(query, title=f"{query.title} {letter_code(number)}")
            for number, query in enumerate(queries)
        ]

    single = time_single_calls(identifier, distinct_titles(queries, arguments.single))
    started = time.perf_counter()
    cpu_started = time.process_time()
    verdicts = identifier.identify_many(queries)
    batch_seconds = time.perf_counter() - started
    batch_cpu_seconds = time.process_time() - cpu_started

    statuses: dict[str, int] = {}
    for verdict in verdicts:
        statuses[verdict.status.value] = statuses.get(verdict.status.value, 0) + 1
    print(
        json.dumps(
            {
                "machine": machine(),
                "load_seconds": round(load_seconds, 2),
                "unique_titles": arguments.unique_titles,
                "single_call": single,
                "batch": {
                    "products": len(queries),
                    "distinct": len(set(queries)),
                    "distinct_titles": len({query.title for query in queries}),
                    "seconds": round(batch_seconds, 2),
                    "cpu_seconds": round(batch_cpu_seconds, 2),
                    "products_per_second": round(len(queries) / batch_seconds),
                    "statuses": statuses,
                },
                "versions": identifier.versions(),
                "load_average_before": load_before,
            },
            indent=2,
            ensure_ascii=False,
        )
    )


def letter_code(number: int) -> str:
    """Return `number` written in the letters A to Z, so it adds no digits."""
    letters = ""
    while True:
        number, remainder = divmod(number, 26)
        letters = chr(ord("A") + remainder) + letters
        if number == 0:
            return f"Q{letters}"


def write_registries(folder: Path, generator: random.Random) -> Path:
    """Write a registry folder with energy-label filings and organic codes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "snapshot.yaml").write_text(
        "registries:\n"
        "  energy_label:\n    file: energy_label.csv\n    snapshot_date: 2026-11-30\n"
        '    source: "benchmark filings"\n    max_age_days: 90\n'
        "  organic:\n    file: organic.csv\n    snapshot_date: 2026-11-30\n"
        '    source: "benchmark certificates"\n    max_age_days: 90\n',
        encoding="utf-8",
    )
    with (folder / "energy_label.csv").open(
        "w", encoding="utf-8", newline=""
    ) as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["brand", "model_number", "appliance_type", "grade", "valid_until"]
        )
        for number in range(20_000):
            brand = CHINESE_BRANDS[number % len(CHINESE_BRANDS)]
            writer.writerow(
                [brand, f"BCD-{number:05d}W", "refrigerator", 1 + number % 5, ""]
            )
    with (folder / "organic.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["code", "product", "holder", "valid_until"])
        for number in range(5_000):
            writer.writerow([f"12319{number:012d}", "有机大米", "农场", "2027-06-30"])
    return folder


def build_queries(
    count: int, generator: random.Random, energy_star_files: list[Path]
) -> list[ProductQuery]:
    """Return `count` distinct product queries from the reference data."""
    descriptions = sorted(
        {
            str(value)
            for value in pq.read_table(
                SHARED_DATA / "online-retail" / "online_retail.parquet",
                columns=["Description"],
            )
            .column(0)
            .to_pylist()
            if value
        }
    )
    records = [
        record
        for path in energy_star_files
        for record in read_energy_star_file(path).records
    ]
    food_names = read_food_names()
    queries: set[ProductQuery] = set()
    number = 0
    while len(queries) < count:
        number += 1
        choice = generator.random()
        sku = f"sku-{number}"
        if choice < 0.55:
            title = f"{generator.choice(descriptions)} {generator.choice(VARIANTS)}"
            queries.add(ProductQuery(title, sku=sku, mcc=5999))
        elif choice < 0.70:
            record = generator.choice(records)
            model = record.model_number.replace("*", generator.choice("ABCW"))
            title = f"{record.brand} {model} {record.product_type.replace('_', ' ')}"
            queries.add(ProductQuery(title, sku=sku))
        elif choice < 0.85:
            brand = generator.choice(CHINESE_BRANDS)
            kind = generator.choice(CHINESE_TYPES)
            grade = generator.choice(CHINESE_GRADES)
            model = f"BCD-{generator.randrange(40_000):05d}W"
            queries.add(ProductQuery(f"{brand}{kind} {model} {grade}", sku=sku))
        elif choice < 0.95:
            name = generator.choice(food_names)
            code = f"12319{generator.randrange(10_000):012d}" if choice < 0.88 else None
            queries.add(ProductQuery(name, sku=sku, certificate_id=code))
        else:
            mcc = generator.choice([4111, 4112, 4131, 4121, 5931])
            queries.add(ProductQuery(f"purchase {number}", sku=sku, mcc=mcc))
    return sorted(queries, key=lambda query: query.sku or "")


def read_food_names() -> list[str]:
    """Return the non-empty product names of the Open Food Facts sample."""
    path = SHARED_DATA / "open-food-facts" / "products.tsv"
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        return [row["product_name"] for row in reader if row.get("product_name")]


def distinct_titles(queries: list[ProductQuery], count: int) -> list[ProductQuery]:
    """Return `count` queries with pairwise different titles, in a fixed order.

    Distinct titles keep the identifier's per-title cache from serving a
    timed call, so each call parses its title and runs the model afresh.
    """
    chosen: dict[str, ProductQuery] = {}
    for query in queries[::7]:
        chosen.setdefault(query.title, query)
        if len(chosen) == count + 100:
            break
    return list(chosen.values())


def time_single_calls(
    identifier: Identifier, queries: list[ProductQuery]
) -> dict[str, float]:
    """Time `identify` once per query, after 100 warm-up calls, in milliseconds.

    Wall time is the target's measure. The thread's CPU time per call is
    reported beside it, so a tail caused by other processes shows as such.
    """
    for query in queries[:100]:
        identifier.identify(query)
    with_model: list[float] = []
    without_model: list[float] = []
    cpu: list[float] = []
    for query in queries[100:]:
        started = time.perf_counter_ns()
        cpu_started = time.thread_time_ns()
        verdict = identifier.identify(query)
        cpu.append((time.thread_time_ns() - cpu_started) / 1e6)
        duration = (time.perf_counter_ns() - started) / 1e6
        if verdict.model_score is None:
            without_model.append(duration)
        else:
            with_model.append(duration)
    return {
        **percentiles(with_model + without_model),
        "with_model": percentiles(with_model),
        "without_model": percentiles(without_model),
        # CPU time of the calling thread: a wall time far above it was spent
        # waiting for a core that other processes held.
        "thread_cpu": percentiles(cpu),
    }


def percentiles(durations: list[float]) -> dict[str, float]:
    """Return the count, median, 99th percentile and maximum of durations (ms)."""
    if not durations:
        return {"calls": 0}
    ordered = sorted(durations)
    return {
        "calls": len(ordered),
        "median_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 3),
        "max_ms": round(ordered[-1], 3),
    }


def calibration_loop() -> float:
    """Return the CPU seconds of 10 million Python additions.

    The machine is shared, so this fixed loop shows how much slower than usual
    each core runs during the benchmark.
    """
    started = time.process_time()
    total = 0
    for number in range(10_000_000):
        total += number
    return time.process_time() - started


def machine() -> dict[str, object]:
    """Return the CPU model, core count, memory and load average of this machine.

    It is called when the run has finished, so the load average and the
    calibration loop describe the end of the run.
    """
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as handle:
        total_kib = int(handle.readline().split()[1])
    return {
        "calibration_loop_cpu_seconds": round(calibration_loop(), 2),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


if __name__ == "__main__":
    main()
