"""Facility allocation, substitution, savings accrual and reconciliation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from finance_helpers import facility_dict

from greenloop.funding import (
    FacilityConfig,
    LoanPosition,
    LoanStatus,
    accrue_savings,
    allocate,
    financing_share,
    ineligibility_reason,
    reconcile,
)

AS_OF = date(2026, 6, 30)


def facility(**overrides: object) -> FacilityConfig:
    return FacilityConfig.model_validate(facility_dict(**overrides))


def position(
    key: str,
    outstanding: int,
    category: str = "appliance",
    originated: date = date(2026, 3, 1),
    status: LoanStatus = LoanStatus.ACTIVE,
) -> LoanPosition:
    return LoanPosition(
        key, category, originated, Decimal(outstanding), Decimal(outstanding), status
    )


def test_allocation_fills_drawn_amount() -> None:
    loans = {f"p{i}": position(f"p{i}", 400_000) for i in range(4)}
    result = allocate(facility(), AS_OF, {}, loans)
    assert result.allocated_fen == 1_000_000
    assert result.unallocated_fen == 0
    assert result.pool_fen == 1_200_000
    assert result.pool_covers_drawn


def test_last_loan_allocated_partially() -> None:
    loans = {f"p{i}": position(f"p{i}", 400_000) for i in range(3)}
    result = allocate(facility(), AS_OF, {}, loans)
    assert result.allocations["p2"] == 200_000
    assert result.allocations["p0"] == 400_000


def test_short_pool_leaves_unallocated_balance() -> None:
    loans = {"p0": position("p0", 300_000)}
    result = allocate(facility(), AS_OF, {}, loans)
    assert result.unallocated_fen == 700_000
    assert not result.pool_covers_drawn


def test_ineligible_category_not_allocated() -> None:
    loans = {"p0": position("p0", 300_000, category="green_food")}
    result = allocate(facility(), AS_OF, {}, loans)
    assert result.allocations == {}


def test_lookback_window_bounds_refinancing() -> None:
    terms = facility()
    old = position("old", 300_000, originated=date(2025, 6, 30))
    recent = position("recent", 300_000, originated=date(2025, 7, 1))
    assert ineligibility_reason(terms, old) is not None
    assert ineligibility_reason(terms, recent) is None


def test_revoked_loan_substituted() -> None:
    loans = {
        "p0": position("p0", 600_000, status=LoanStatus.REVOKED),
        "p1": position("p1", 600_000, originated=date(2026, 3, 2)),
        "p2": position("p2", 600_000, originated=date(2026, 3, 3)),
    }
    current = {"p0": Decimal(600_000), "p1": Decimal(400_000)}
    result = allocate(facility(), AS_OF, current, loans)
    assert result.released == {"p0": "loan is revoked"}
    assert result.added == ("p2",)
    assert result.allocations == {"p1": Decimal(600_000), "p2": Decimal(400_000)}


def test_loan_taken_elsewhere_not_allocated() -> None:
    loans = {"p0": position("p0", 600_000)}
    result = allocate(facility(), AS_OF, {}, loans, taken_elsewhere={"p0"})
    assert result.allocations == {}


def test_amortized_allocations_shrink() -> None:
    loans = {"p0": position("p0", 250_000)}
    result = allocate(facility(), AS_OF, {"p0": Decimal(300_000)}, loans)
    assert result.allocations["p0"] == 250_000
    assert result.unallocated_fen == 750_000


def test_financing_share_splits_by_first_drawdown() -> None:
    terms = facility()
    loans = {
        "before": position("before", 300_000, originated=date(2025, 12, 1)),
        "after": position("after", 100_000, originated=date(2026, 2, 1)),
    }
    allocations = {"before": Decimal(300_000), "after": Decimal(100_000)}
    assert financing_share(terms, allocations, loans) == Decimal("0.25")


def test_savings_accrue_daily_spread() -> None:
    days = list(accrue_savings(facility(), date(2026, 1, 10)))
    assert len(days) == 10
    # 1,000,000 fen * 0.005 / 360 = 13.888... fen a day; ten days book 139 fen.
    assert sum(day.savings_fen for day in days) == 139
    assert {day.savings_fen for day in days} <= {Decimal(13), Decimal(14)}


def test_savings_follow_drawdowns() -> None:
    terms = facility(
        drawdowns=[
            {"value_date": "2026-01-01", "amount_yuan": "3600"},
            {"value_date": "2026-01-03", "amount_yuan": "3600"},
        ]
    )
    days = list(accrue_savings(terms, date(2026, 1, 3)))
    assert [day.savings_fen for day in days] == [5, 5, 10]


def test_savings_stop_at_maturity() -> None:
    days = list(accrue_savings(facility(), date(2030, 1, 1)))
    assert days[-1].day == date(2028, 1, 1)


def test_reconciliation_balances_to_the_fen() -> None:
    check = reconcile(
        "f", Decimal(1000), {"a": Decimal(600)}, Decimal(400), {"a": Decimal(700)}
    )
    assert check.balanced
    assert not check.pool_covers_drawn
    assert check.pool_shortfall_fen == 300


def test_reconciliation_finds_missing_fen() -> None:
    check = reconcile(
        "f", Decimal(1000), {"a": Decimal(600)}, Decimal(399), {"a": Decimal(600)}
    )
    assert not check.balanced
    assert "differs from drawn 1000 fen by -1 fen" in check.problems[0]


def test_reconciliation_finds_overallocated_loan() -> None:
    check = reconcile(
        "f", Decimal(1000), {"a": Decimal(1000)}, Decimal(0), {"a": Decimal(900)}
    )
    assert check.problems == ("loan a is allocated 1000 fen but owes 900 fen",)


def test_drawdowns_above_commitment_rejected() -> None:
    with pytest.raises(ValueError, match="more than the committed"):
        facility(drawdowns=[{"value_date": "2026-01-01", "amount_yuan": "30000"}])
