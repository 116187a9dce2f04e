"""Time `process_green_loans` on synthetic loans: a first run and a rerun.

Usage: python tests/finance/bench_finance.py DATABASE_URL [LOANS]

The loans spread over 2026 across six categories and 500 users, so every
example campaign and facility receives loans. The database should be empty.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from greenloop.store.base import make_engine
from greenloop.store.finance import GreenLoan, process_green_loans

SOURCE = Path(__file__).resolve().parents[2] / "src" / "greenloop"
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


def main() -> None:
    url = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    engine = make_engine(url)
    loans = synthetic_loans(count)
    facilities = SOURCE / "funding" / "examples" / "facilities.yaml"
    campaigns = SOURCE / "incentives" / "examples" / "campaigns.yaml"
    for label in ("first run", "rerun"):
        began = time.perf_counter()
        outcome = process_green_loans(
            engine, loans, facilities, campaigns, date(2026, 12, 31)
        )
        elapsed = time.perf_counter() - began
        awards = sum(len(result.awards) for result in outcome.loans.values())
        print(f"{label}: {count} loans, {awards} awards, {elapsed:.1f} s")
    engine.dispose()


if __name__ == "__main__":
    main()
