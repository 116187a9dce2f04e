"""Benchmark impact accounting: factor loading, impact(), spend estimates, summaries.

Usage (from the project root):

    .venv/bin/python benchmarks/impact_bench.py --calls 200000 --rows 100000

Prints a Markdown table of medians over `--repeats` runs. `impact()` is timed
over a fixed mix of green verdicts (air conditioner, ENERGY STAR refrigerator,
BEV, metro, second-hand phone) and regions (None, a province with its own
factor, provinces on regional grids, CN, US, GB).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable
from decimal import Decimal

from greenloop.categories import Category, Status
from greenloop.identify.verdict import Verdict
from greenloop.impact import ImpactCalculator, summarize_impacts

VERDICT_ATTRIBUTES = [
    (
        Category.APPLIANCE,
        {"appliance_type": "room_air_conditioner", "energy_label_grade": 1},
    ),
    (
        Category.ENERGY_STAR,
        {
            "product_type": "refrigerator",
            "annual_kwh": 400,
            "federal_standard_kwh": 444,
        },
    ),
    (Category.NEW_ENERGY_VEHICLE, {"vehicle_kind": "bev"}),
    (Category.PUBLIC_TRANSPORT, {"mode": "metro"}),
    (Category.SECOND_HAND, {"item_kind": "phone"}),
]
REGIONS = [None, "CN-HE", "CN-GD", "CN-SC", "CN", "US", "GB"]


def _verdicts() -> list[Verdict]:
    return [
        Verdict(Status.GREEN, category, "bench", "1", attributes=attributes)
        for category, attributes in VERDICT_ATTRIBUTES
    ]


def _median_seconds(action: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    """Run the measurements and print them as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="impact() calls")
    parser.add_argument("--rows", type=int, default=100_000, help="summary rows")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure")
    args = parser.parse_args()

    load_seconds = _median_seconds(ImpactCalculator.load, args.repeats)
    calculator = ImpactCalculator.load()
    pairs = list(itertools.product(_verdicts(), REGIONS))
    cycle = list(itertools.islice(itertools.cycle(pairs), args.calls))

    def call_impact() -> None:
        for verdict, region in cycle:
            calculator.impact(verdict, 1.0, region)

    def call_spend() -> None:
        for index in range(args.calls):
            calculator.spend_estimate(
                Decimal(index % 5000), "CNY", 5722, "appliance", "CN-GD", 2025
            )

    rows = []
    for index, (verdict, region) in enumerate(itertools.islice(cycle, args.rows)):
        impact = calculator.impact(verdict, 1.0 + index % 3, region)
        if impact is not None:
            rows.append((str(verdict.category), region, impact))

    impact_seconds = _median_seconds(call_impact, args.repeats)
    spend_seconds = _median_seconds(call_spend, args.repeats)
    summary_seconds = _median_seconds(lambda: summarize_impacts(rows), args.repeats)

    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("| measurement | median | rate |")
    print("|---|---|---|")
    print(f"| ImpactCalculator.load() | {load_seconds * 1000:.0f} ms | |")
    print(
        f"| impact(), {args.calls:,} calls | {impact_seconds:.2f} s | "
        f"{args.calls / impact_seconds:,.0f} calls/s |"
    )
    print(
        f"| spend_estimate(), {args.calls:,} calls | {spend_seconds:.2f} s | "
        f"{args.calls / spend_seconds:,.0f} calls/s |"
    )
    print(
        f"| summarize_impacts(), {len(rows):,} rows | {summary_seconds:.2f} s | "
        f"{len(rows) / summary_seconds:,.0f} rows/s |"
    )


if __name__ == "__main__":
    main()
