"""A varied finance scenario whose stored state and outcomes can be compared.

The scenario records a few thousand loans in two batches on two dates, with
partial and full refunds, revocations and repayments in between, then reruns
the second batch. Its loans mix fee plans, interest plans (more than 12
periods), tiny and large principals, month-end purchase days and purchases
near midnight in Shanghai, and its campaigns waive fees, so every branch of
plan pricing, allocation and awarding is used.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from finance_helpers import campaign_dict, facility_dict, write_yaml
from sqlalchemy import select
from sqlalchemy.engine import Engine

from greenloop.store import finance
from greenloop.store.finance import (
    FinanceOutcome,
    GreenLoan,
    apply_partial_refund,
    process_green_loans,
    refund_purchases,
    repay_loans,
    revoke_loans,
)

CATEGORIES = (
    "appliance",
    "new_energy_vehicle",
    "public_transport",
    "green_food",
    "green_product",
    "energy_star",
    "organic_food",
)
PERIODS = (2, 3, 6, 9, 12, 13, 18, 24, 36, 60)
FIRST_AS_OF = date(2026, 6, 30)
SECOND_AS_OF = date(2026, 12, 31)
# Columns that contain the wall-clock time of a write, which differs between runs.
CLOCK_COLUMNS = {"created_at", "awarded_at", "updated_at", "refunded_at", "id"}


def scenario_loans(count: int, seed: int = 11) -> list[GreenLoan]:
    """Build `count` varied loans, a few of them invalid."""
    generator = random.Random(seed)
    loans = []
    for index in range(count):
        day = generator.choice((1, 15, 28, 29, 30, 31))
        month = generator.randint(1, 12)
        year = generator.choice((2025, 2026, 2026, 2026))
        while True:
            try:
                moment = datetime(year, month, day, tzinfo=UTC)
                break
            except ValueError:
                day -= 1
        # 15:30 to 16:30 UTC straddles midnight in Shanghai (UTC+8).
        moment += timedelta(minutes=generator.choice((30, 600, 930, 959, 960, 990)))
        shape = generator.random()
        if shape < 0.05:
            principal = generator.randint(1, 500)
        elif shape < 0.1:
            principal = generator.randint(10_000_000, 300_000_000)
        else:
            principal = generator.randint(5_000, 3_000_000)
        periods = generator.choice(PERIODS)
        if index % 97 == 0:
            periods = generator.choice((0, 1, 61, 120))
        if index % 89 == 0:
            principal = generator.choice((0, -100))
        loans.append(
            GreenLoan(
                purchase_id=f"s{index:06d}",
                user_key=f"user-{generator.randint(0, 60)}",
                occurred_at=moment,
                principal_fen=principal,
                periods=periods,
                category=generator.choice(CATEGORIES),
                region=generator.choice(("CN-SH", "CN-BJ", None)),
                merchant_id=generator.choice(("m-1", "m-2", None)),
                kg_co2e_lifetime=generator.choice((None, 12.5, 480.0, 3100.25)),
            )
        )
    return loans


def scenario_configs(directory: Path) -> tuple[Path, Path]:
    """Write two facilities and six campaigns with every kind of budget limit."""
    facilities = [
        facility_dict(
            id="wide",
            drawdowns=[
                {"value_date": "2026-01-01", "amount_yuan": "1500000"},
                {"value_date": "2026-09-01", "amount_yuan": "500000"},
            ],
            committed_yuan="3000000",
            facility_rate="0.02",
            maturity_date="2029-01-01",
            eligible_categories=[
                "appliance",
                "new_energy_vehicle",
                "energy_star",
                "green_product",
            ],
            lookback_months=6,
            min_loan_yuan="100",
        ),
        facility_dict(
            id="narrow",
            drawdowns=[{"value_date": "2026-03-01", "amount_yuan": "80000"}],
            committed_yuan="100000",
            facility_rate="0.0275",
            start_date="2026-03-01",
            maturity_date="2028-03-01",
            eligible_categories=["new_energy_vehicle", "public_transport"],
            lookback_months=12,
        ),
    ]
    campaigns = [
        campaign_dict(
            id="free-funding",
            eligibility={
                "categories": ["appliance", "energy_star"],
                "periods": [3, 6, 12],
            },
            benefit={"kind": "interest_free", "max_periods": 12},
            budget={
                "total_yuan": "3000",
                "per_user_yuan": "150",
                "per_day_yuan": "400",
            },
            funding={"facility_id": "wide"},
        ),
        campaign_dict(
            id="free-forgone",
            eligibility={"categories": ["new_energy_vehicle"], "min_amount_yuan": "10"},
            benefit={
                "kind": "interest_free",
                "max_periods": 36,
                "cost_basis": "forgone_fee",
            },
            budget={"total_yuan": "40000", "per_user_awards": 2},
            funding={"facility_id": "narrow"},
        ),
        campaign_dict(
            id="envelope",
            eligibility={"categories": ["public_transport"], "regions": ["CN-SH"]},
            benefit={"kind": "fixed_red_envelope", "amount_yuan": "2"},
            budget={"total_yuan": "300", "per_user_yuan": "6", "per_day_yuan": "10"},
            funding={"facility_id": "wide"},
        ),
        campaign_dict(
            id="coupon",
            timezone="UTC",
            eligibility={
                "categories": ["green_food", "organic_food"],
                "merchants": ["m-1"],
                "min_amount_yuan": "50",
            },
            benefit={
                "kind": "coupon",
                "amount_yuan": "5",
                "min_spend_yuan": "50",
                "valid_days": 30,
            },
            budget={"total_yuan": "400", "per_user_awards": 3},
            funding={"facility_id": "wide"},
        ),
        campaign_dict(
            id="lottery",
            starts_on="2026-07-01",
            eligibility={"categories": ["green_product"], "min_amount_yuan": "100"},
            benefit={"kind": "lottery_red_envelope", "prize_yuan": "88", "winners": 5},
            budget={"total_yuan": "440"},
            funding={"facility_id": "wide"},
        ),
        campaign_dict(
            id="free-late",
            starts_on="2026-06-01",
            eligibility={"categories": ["appliance", "green_product"]},
            benefit={"kind": "interest_free", "max_periods": 9},
            budget={"total_yuan": "2000"},
            funding={"facility_id": "wide"},
        ),
    ]
    return (
        write_yaml(directory / "facilities.yaml", {"facilities": facilities}),
        write_yaml(directory / "campaigns.yaml", {"campaigns": campaigns}),
    )


def run_scenario(engine: Engine, directory: Path, count: int = 3000) -> dict[str, Any]:
    """Run the scenario on an empty database and return outcomes and stored rows."""
    facilities_path, campaigns_path = scenario_configs(directory)
    loans = scenario_loans(count)
    first_batch = loans[: count * 2 // 3]
    outcomes = [
        process_green_loans(
            engine, first_batch, facilities_path, campaigns_path, FIRST_AS_OF
        )
    ]

    # Partial refunds on a twelfth of the stored loans, some refunded twice.
    stored = [
        loan for loan in first_batch if loan.periods >= 2 and loan.principal_fen > 0
    ]
    generator = random.Random(5)
    for loan in generator.sample(stored, len(stored) // 12):
        share = generator.choice((Decimal("0.1"), Decimal("0.3"), Decimal("0.5")))
        refund = max(1, int(loan.principal_fen * share))
        refunded_on = generator.choice(
            (date(2026, 2, 28), date(2026, 7, 31), SECOND_AS_OF)
        )
        apply_partial_refund(engine, loan.purchase_id, refund, refunded_on)
        if generator.random() < 0.3:
            apply_partial_refund(
                engine, loan.purchase_id, refund // 3 + 1, SECOND_AS_OF
            )

    # Fifteen loans each end by refund, revocation and repayment.
    ended = generator.sample(stored, 45)
    refund_purchases(
        engine, [loan.purchase_id for loan in ended[:15]], "returned", SECOND_AS_OF
    )
    revoke_loans(
        engine, [loan.purchase_id for loan in ended[15:30]], "revoked", SECOND_AS_OF
    )
    repay_loans(
        engine, [loan.purchase_id for loan in ended[30:]], "repaid", SECOND_AS_OF
    )

    # The whole batch again, twice, on the second date.
    for _ in range(2):
        outcomes.append(
            process_green_loans(
                engine, loans, facilities_path, campaigns_path, SECOND_AS_OF
            )
        )
    return {
        "outcomes": [outcome_figures(outcome) for outcome in outcomes],
        "tables": stored_rows(engine),
    }


def outcome_figures(outcome: FinanceOutcome) -> dict[str, Any]:
    """Return an outcome with every figure as text, so dicts compare exactly."""
    return {
        "loans": {key: repr(result) for key, result in sorted(outcome.loans.items())},
        "allocation_report": repr(outcome.allocation_report),
        "incentive_report": repr(outcome.incentive_report),
    }


def stored_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Return every finance table's rows, ordered, without clock columns."""
    rows = {}
    with engine.connect() as connection:
        for table in finance.FINANCE_TABLES:
            columns = [column for column in table.c if column.name not in CLOCK_COLUMNS]
            keys = [
                column for column in table.primary_key.columns if column.name != "id"
            ]
            # Awards and allocations have a generated id, so they are ordered
            # by their unique keys instead.
            if not keys and "campaign_id" in table.c:
                keys = [table.c.purchase_id, table.c.campaign_id]
            elif not keys:
                keys = [table.c.facility_id, table.c.purchase_id]
            result = connection.execute(select(*columns).order_by(*keys))
            rows[table.name] = [tuple(repr(value) for value in row) for row in result]
    return rows
