"""Campaign eligibility, benefit cost and budget checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from finance_helpers import campaign_dict, make_loan

from greenloop.incentives import (
    CampaignConfig,
    Spending,
    benefit_cost_fen,
    budget_rejection,
    ineligibility_reason,
    report_group,
)
from greenloop.lending import fee_plan, interest_plan


def campaign(**overrides: object) -> CampaignConfig:
    return CampaignConfig.model_validate(campaign_dict(**overrides))


ELIGIBILITY_CASES = [
    ({}, {}, None),
    ({}, {"category": "green_food"}, "category green_food is not eligible"),
    ({"starts_on": "2026-04-01"}, {}, "outside the campaign dates"),
    (
        {"eligibility": {"categories": ["appliance"], "merchants": ["m-2"]}},
        {},
        "merchant m-1 is not eligible",
    ),
    (
        {"eligibility": {"categories": ["appliance"], "regions": ["CN-BJ"]}},
        {},
        "region CN-SH is not eligible",
    ),
    (
        {"eligibility": {"categories": ["appliance"], "min_amount_yuan": "3000.01"}},
        {},
        "below the minimum",
    ),
    (
        {"eligibility": {"categories": ["appliance"], "min_amount_yuan": "3000"}},
        {},
        None,
    ),
    (
        {"eligibility": {"categories": ["appliance"], "periods": [3, 6]}},
        {},
        "12 installments are not eligible",
    ),
    (
        {"benefit": {"kind": "interest_free", "max_periods": 6}},
        {},
        "exceed the interest-free 6",
    ),
]


@pytest.mark.parametrize(("overrides", "loan_fields", "expected"), ELIGIBILITY_CASES)
def test_eligibility_rules(
    overrides: dict[str, object], loan_fields: dict[str, object], expected: str | None
) -> None:
    reason = ineligibility_reason(campaign(**overrides), make_loan(1, **loan_fields))
    if expected is None:
        assert reason is None
    else:
        assert reason is not None
        assert expected in reason


def test_interest_free_cost_at_facility_rate() -> None:
    offer = campaign(benefit={"kind": "interest_free", "max_periods": 12})
    loan = make_loan(1, principal_fen=10_000)
    standard = fee_plan(Decimal(10_000), 12, Decimal("0.088"))
    assert benefit_cost_fen(offer, loan, Decimal("0.03"), standard) == 161
    assert benefit_cost_fen(offer, loan, Decimal("0.025"), standard) == 134


def test_interest_free_forgone_fee_basis() -> None:
    offer = campaign(
        benefit={
            "kind": "interest_free",
            "max_periods": 12,
            "cost_basis": "forgone_fee",
        }
    )
    loan = make_loan(1, principal_fen=10_000)
    standard = fee_plan(Decimal(10_000), 12, Decimal("0.088"))
    assert benefit_cost_fen(offer, loan, Decimal("0.03"), standard) == 880


def test_lottery_entry_costs_nothing() -> None:
    offer = campaign(
        benefit={"kind": "lottery_red_envelope", "prize_yuan": "88", "winners": 3}
    )
    standard = fee_plan(Decimal(300_000), 12, Decimal("0.088"))
    assert benefit_cost_fen(offer, make_loan(1), Decimal("0.03"), standard) == 0


BUDGET_CASES = [
    (Spending(Decimal(9000), Decimal(0), 0, Decimal(0)), 1000, None),
    (Spending(Decimal(9001), Decimal(0), 0, Decimal(0)), 1000, "campaign budget"),
    (Spending(Decimal(0), Decimal(1500), 0, Decimal(0)), 1000, None),
    (Spending(Decimal(0), Decimal(1501), 0, Decimal(0)), 1000, "per-user budget"),
    (Spending(Decimal(0), Decimal(0), 2, Decimal(0)), 1000, "per-user award count"),
    (Spending(Decimal(0), Decimal(0), 0, Decimal(4001)), 1000, "daily budget"),
]


@pytest.mark.parametrize(("spent", "amount", "expected"), BUDGET_CASES)
def test_budget_limits_at_boundary(
    spent: Spending, amount: int, expected: str | None
) -> None:
    offer = campaign(
        budget={
            "total_yuan": "100",
            "per_user_yuan": "25",
            "per_user_awards": 2,
            "per_day_yuan": "50",
        }
    )
    reason = budget_rejection(offer.budget, spent, Decimal(amount))
    if expected is None:
        assert reason is None
    else:
        assert reason is not None
        assert expected in reason


def test_report_groups() -> None:
    assert report_group("organic_food") == "green_food"
    assert report_group("energy_star") == "green_appliances"
    assert report_group("public_transport") == "public_transport"
    assert report_group("second_hand") == "other"


def test_purchase_date_uses_campaign_timezone() -> None:
    offer = campaign(starts_on="2026-03-02")
    late_evening_utc = replace(
        make_loan(1), occurred_at=datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
    )
    assert ineligibility_reason(offer, late_evening_utc) is None
    utc_offer = campaign(starts_on="2026-03-02", timezone="UTC")
    assert ineligibility_reason(utc_offer, late_evening_utc) is not None


def test_unknown_timezone_rejected() -> None:
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Olympus'"):
        campaign(timezone="Mars/Olympus")


def test_forgone_interest_of_long_loan() -> None:
    offer = campaign(
        benefit={
            "kind": "interest_free",
            "max_periods": 36,
            "cost_basis": "forgone_fee",
        }
    )
    loan = make_loan(1, principal_fen=10_000_000, periods=36)
    standard = interest_plan(Decimal(10_000_000), 36, Decimal("0.035"))
    cost = benefit_cost_fen(offer, loan, Decimal("0.025"), standard)
    assert cost == standard.interest_fen
