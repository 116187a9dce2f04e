"""Small facility and campaign files written by the finance tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from greenloop.lending.loans import GreenLoan


def facility_dict(**overrides: Any) -> dict[str, Any]:
    """Return a valid facility mapping: 10,000 yuan drawn, 0.5 points of savings."""
    facility: dict[str, Any] = {
        "id": "test-facility",
        "lender": "Test Bank",
        "borrower": "Test Consumer Finance",
        "currency": "CNY",
        "committed_yuan": "20000",
        "drawdowns": [{"value_date": "2026-01-01", "amount_yuan": "10000"}],
        "facility_rate": "0.025",
        "benchmark_rate": "0.030",
        "benchmark": "1-year LPR",
        "day_count": 360,
        "start_date": "2026-01-01",
        "maturity_date": "2028-01-01",
        "eligible_categories": ["appliance", "new_energy_vehicle"],
        "standard": "test standard",
        "lookback_months": 6,
        "unallocated_placement": "cash",
        "sources": ["test"],
    }
    facility.update(overrides)
    return facility


def campaign_dict(**overrides: Any) -> dict[str, Any]:
    """Return a valid fixed red envelope campaign of 10 yuan, budget 100 yuan."""
    campaign: dict[str, Any] = {
        "id": "test-envelope",
        "name": "Test envelope",
        "starts_on": "2026-01-01",
        "ends_on": "2026-12-31",
        "eligibility": {"categories": ["appliance", "new_energy_vehicle"]},
        "benefit": {"kind": "fixed_red_envelope", "amount_yuan": "10"},
        "budget": {"total_yuan": "100"},
        "funding": {"facility_id": "test-facility"},
    }
    campaign.update(overrides)
    return campaign


def write_yaml(path: Path, payload: dict[str, Any]) -> Path:
    """Write `payload` as YAML to `path` and return the path."""
    path.write_text(yaml.safe_dump(payload, sort_keys=False), encoding="utf-8")
    return path


def make_loan(
    index: int,
    category: str = "appliance",
    principal_fen: int = 300_000,
    periods: int = 12,
    user: str | None = None,
    day: int = 1,
    month: int = 3,
) -> GreenLoan:
    """Build a green loan whose purchase id is `p` plus a zero-padded index."""
    return GreenLoan(
        purchase_id=f"p{index:05d}",
        user_key=user or f"user-{index}",
        occurred_at=datetime(2026, month, day, 12, 0, tzinfo=UTC),
        principal_fen=principal_fen,
        periods=periods,
        category=category,
        region="CN-SH",
        merchant_id="m-1",
        kg_co2e_lifetime=500.0,
    )
