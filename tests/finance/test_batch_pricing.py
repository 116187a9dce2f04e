"""Batch plan pricing against the per-loan Decimal computation.

`greenloop.lending.batch` prices fee plans for arrays of loans, and the finance
store uses it for allocation, awards and loan results. These tests check
that every figure equals the one the Decimal plan of each loan gives, first
plan by plan, then for a whole store scenario run both ways.
"""

from __future__ import annotations

import calendar
import random
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from finance_helpers import make_loan
from finance_scenario import run_scenario, scenario_configs
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from greenloop.funding.config import load_facilities
from greenloop.incentives.config import load_campaigns
from greenloop.incentives.rules import benefit_cost_fen
from greenloop.lending import batch
from greenloop.lending.plans import fee_plan
from greenloop.lending.schedules import load_fee_schedules
from greenloop.lending.subsidy import interest_free_cost
from greenloop.store import finance
from greenloop.store.base import make_engine, metadata

RATES = ("0", "0.023", "0.025", "0.045", "0.065", "0.075", "0.088")
PERIODS = (2, 3, 6, 9, 12, 13, 24, 36)


def random_day(generator: random.Random) -> date:
    year = generator.choice((2024, 2025, 2026))
    month = generator.randint(1, 12)
    day = min(
        generator.choice((1, 15, 28, 29, 30, 31)), calendar.monthrange(year, month)[1]
    )
    return date(year, month, day)


def random_principals(generator: random.Random, count: int) -> list[int]:
    return [
        generator.choice(
            (
                generator.randint(1, 300),
                generator.randint(300, 5_000_000),
                generator.randint(5_000_000, batch.MAX_PRINCIPAL_FEN),
            )
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("rate", RATES)
def test_fee_plans_match_decimal_plans(rate: str) -> None:
    generator = random.Random(rate)
    for periods in PERIODS:
        principals = random_principals(generator, 150)
        starts = [random_day(generator) for _ in principals]
        on = random_day(generator)
        plans = batch.fee_plans(
            np.array(principals, dtype=np.int64), periods, Decimal(rate)
        )
        due = batch.installments_due(batch.date_numbers(starts), periods, on)
        repaid = batch.repaid_principal(plans, due)
        annual = batch.annual_rates(plans)
        for index, principal in enumerate(principals):
            plan = fee_plan(Decimal(principal), periods, Decimal(rate), starts[index])
            assert plans.fee[index] == plan.fee_fen
            assert plans.regular[index] == plan.installments[0].amount_fen
            assert plans.last[index] == plan.installments[-1].amount_fen
            assert principal - repaid[index] == plan.outstanding_fen(on)
            if annual.exact[index]:
                continue
            expected = plan.annual_rate()
            if plans.fee[index] == 0:
                assert expected == batch.zero_rate()
                continue
            nominal = batch.rate_decimal(int(annual.nominal_micro[index]))
            effective = batch.rate_decimal(int(annual.effective_micro[index]))
            assert repr(nominal) == repr(expected.nominal_annual)
            assert repr(effective) == repr(expected.effective_annual)


@pytest.mark.parametrize("periods", PERIODS)
def test_funding_costs_match_decimal(periods: int) -> None:
    generator = random.Random(periods)
    principals = random_principals(generator, 300)
    for funding_rate in (Decimal("0.005"), Decimal("0.025"), Decimal("0.0275")):
        costs, exact = batch.interest_free_funding_cost(
            np.array(principals, dtype=np.int64), periods, funding_rate
        )
        for index, principal in enumerate(principals):
            if exact[index]:
                continue
            expected = interest_free_cost(Decimal(principal), periods, funding_rate)
            assert costs[index] == expected.funding_cost_fen


def test_installments_due_at_month_ends() -> None:
    # Installments of a plan started on January 31 fall due on the last day
    # of shorter months.
    starts = batch.date_numbers([date(2026, 1, 31)] * 4)
    days = [date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 30), date(2026, 3, 31)]
    counts = [int(batch.installments_due(starts, 12, day)[0]) for day in days]
    assert counts == [0, 1, 1, 2]


def test_unsupported_inputs_raise() -> None:
    with pytest.raises(ValueError, match="batch pricing"):
        batch.fee_plans(np.array([0], dtype=np.int64), 3, Decimal("0.025"))
    with pytest.raises(ValueError, match="batch pricing"):
        batch.fee_plans(
            np.array([batch.MAX_PRINCIPAL_FEN + 1], dtype=np.int64), 3, Decimal("0.025")
        )
    assert not batch.supports(Decimal(1), 3)
    assert not batch.supports(Decimal("0.025"), 0)


def stored_rows(generator: random.Random, count: int) -> list[finance._StoredLoan]:
    """Build stored loans of every plan kind, half of them sharing terms."""
    shared_principals = [generator.randint(1, 3_000_000) for _ in range(12)]
    rows = []
    for index in range(count):
        periods = generator.choice((3, 6, 9, 12, 13, 24, 36, 60))
        if periods > 12:
            plan_kind, rate = "interest", generator.choice(("0.035", "0.0435"))
        else:
            plan_kind, rate = "fee", generator.choice(("0.025", "0.088"))
        if index % 2:
            principal = generator.choice(shared_principals)
        else:
            principal = generator.choice(
                (*random_principals(generator, 1), batch.MAX_PRINCIPAL_FEN + 7)
            )
        start = random_day(generator)
        refunds = []
        if generator.random() < 0.2:
            left = principal
            for _ in range(generator.randint(1, 3)):
                # Some refunds fall on the same day, in the same period.
                refunded_on = generator.choice((start, random_day(generator)))
                fen = generator.randint(1, left - 1) if left > 1 else 0
                if not fen:
                    break
                left -= fen
                refunds.append({"on": refunded_on.isoformat(), "fen": fen})
            refunds.sort(key=lambda item: item["on"])
        rows.append(
            finance._StoredLoan(
                purchase_id=f"r{index:05d}",
                occurred_at=start,
                principal_fen=principal,
                periods=periods,
                plan_kind=plan_kind,
                fee_rate=rate,
                consumer_fee_waived=int(generator.random() < 0.1),
                partial_refunds=refunds or None,
                category="appliance",
                status="active",
            )
        )
    return rows


def test_stored_plans_match_per_loan_plans() -> None:
    generator = random.Random(29)
    rows = stored_rows(generator, 1500)
    assert sum(1 for row in rows if row.plan_kind == "interest") > 500
    assert sum(1 for row in rows if row.partial_refunds) > 200
    finance._repaid_after.cache_clear()
    finance._unrefunded_figures.cache_clear()
    # Passes after the first read the figures that the first one cached.
    for on in (random_day(generator), random_day(generator), date(2031, 1, 1)):
        principals, outstanding = finance._plan_principals_and_outstanding(rows, on)
        figures = finance._fees_and_rates(rows)
        for index, row in enumerate(rows):
            plan = finance._plan_of(row)
            expected = plan.annual_rate()
            assert principals[index] == plan.principal_fen, row
            assert outstanding[index] == plan.outstanding_fen(on), row
            assert figures[index].fee_fen == plan.fee_fen, row
            assert figures[index].rate_error is None, row
            assert repr(figures[index].apr) == repr(expected.nominal_annual), row
            effective = figures[index].effective_annual_rate
            assert repr(effective) == repr(expected.effective_annual), row
    assert finance._repaid_after.cache_info().hits > 0
    assert finance._unrefunded_figures.cache_info().hits > 0


def test_interest_free_costs_shared_by_terms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    facilities_path, campaigns_path = scenario_configs(tmp_path)
    facilities = load_facilities(facilities_path)
    campaigns = {item.id: item for item in load_campaigns(campaigns_path).campaigns}
    # Forgone fees of interest plans, and funding costs of principals too
    # large for batch pricing, both go through `benefit_cost_fen`.
    forgone = campaigns["free-forgone"]
    funding = campaigns["free-funding"]
    day = date(2026, 6, 1)
    loans = [
        make_loan(index, principal_fen=principal, periods=periods, day=1 + index % 28)
        for index, (principal, periods) in enumerate(
            [(250_000, 24), (250_000, 24), (250_000, 36), (90_000, 24)] * 3
        )
    ]
    large = [
        make_loan(100 + index, principal_fen=batch.MAX_PRINCIPAL_FEN + 5, periods=12)
        for index in range(3)
    ]
    offered = [(loan, ((forgone, day),)) for loan in loans]
    offered += [(loan, ((funding, day),)) for loan in large]
    computed = []
    original = finance._AwardCosts._exact

    def counting_exact(self: finance._AwardCosts, campaign: Any, loan: Any) -> int:
        computed.append((campaign.id, loan.principal_fen, loan.periods))
        return original(self, campaign, loan)

    monkeypatch.setattr(finance._AwardCosts, "_exact", counting_exact)
    costs = finance._AwardCosts(facilities, offered)
    schedule = load_fee_schedules().get()
    for loan, ((campaign, _),) in offered:
        rate = facilities.get(campaign.funding.facility_id).facility_rate
        standard = finance._standard_plan(schedule, loan)
        expected = benefit_cost_fen(campaign, loan, rate, standard)
        assert costs.cost_of(campaign, loan) == expected, loan
    assert sorted(computed) == sorted(set(computed))
    assert len(computed) == 4


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    created = make_engine(database_url)
    yield created
    created.dispose()


def test_scenario_matches_per_loan_pricing(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batched = run_scenario(engine, tmp_path)

    # The same database again, empty, so stored values compare exactly.
    metadata.drop_all(engine, tables=list(finance.FINANCE_TABLES))
    monkeypatch.setattr(finance, "BATCH_PRICING", False)
    per_loan = run_scenario(engine, tmp_path)

    assert len(batched["tables"]["finance_awards"]) > 100
    assert len(batched["tables"]["finance_allocations"]) > 50
    assert batched["outcomes"] == per_loan["outcomes"]
    for name, rows in per_loan["tables"].items():
        assert batched["tables"][name] == rows, name


def test_bulk_insert_duplicate_raises(engine: Engine) -> None:
    # Enough rows for COPY on PostgreSQL; both databases raise SQLAlchemy's
    # IntegrityError for a second allocation of the same loans.
    finance.create_finance_tables(engine)
    rows = [
        ("facility", f"p{index:05d}", 100, 100, date(2026, 1, 1), date(2026, 1, 1))
        for index in range(finance.COPY_MIN_ROWS)
    ]
    with engine.begin() as connection:
        finance._insert_rows(
            connection, finance.finance_allocations, finance.ALLOCATION_COLUMNS, rows
        )
    with pytest.raises(IntegrityError), engine.begin() as connection:
        finance._insert_rows(
            connection, finance.finance_allocations, finance.ALLOCATION_COLUMNS, rows
        )
    with engine.connect() as connection:
        count = connection.execute(
            select(func.count()).select_from(finance.finance_allocations)
        ).scalar_one()
    assert count == finance.COPY_MIN_ROWS


def test_bulk_insert_skips_existing_keys(engine: Engine) -> None:
    finance.create_finance_tables(engine)
    rows = [
        ("facility", f"p{index:05d}", 100, 100, date(2026, 1, 1), date(2026, 1, 1))
        for index in range(finance.COPY_MIN_ROWS + 10)
    ]
    keys = ["facility_id", "purchase_id"]
    table = finance.finance_allocations
    with engine.begin() as connection:
        finance._insert_rows(connection, table, finance.ALLOCATION_COLUMNS, rows[:20])
        finance._insert_rows(connection, table, finance.ALLOCATION_COLUMNS, rows, keys)
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(table)).scalar_one()
    assert count == len(rows)
