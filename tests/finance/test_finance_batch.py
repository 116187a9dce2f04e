"""The chunked award path of the batch run: order, equivalence, conflicts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from finance_helpers import campaign_dict, facility_dict, make_loan, write_yaml
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from greenloop.incentives import CampaignConfig, ineligibility_reason
from greenloop.store import finance
from greenloop.store.base import make_engine
from greenloop.store.finance import GreenLoan, process_green_loans

AS_OF = date(2026, 6, 30)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    created = make_engine(database_url)
    yield created
    created.dispose()


def write_configs(tmp_path: Path, campaigns: list[dict[str, Any]]) -> tuple[Path, Path]:
    facilities = write_yaml(
        tmp_path / "facilities.yaml",
        {"facilities": [facility_dict(facility_rate="0.005")]},
    )
    return facilities, write_yaml(tmp_path / "campaigns.yaml", {"campaigns": campaigns})


def mixed_campaigns() -> list[dict[str, Any]]:
    """Three campaigns that run out by total, per-user and per-day limits."""
    return [
        campaign_dict(
            id="free",
            benefit={"kind": "interest_free", "max_periods": 12},
            budget={"total_yuan": "60", "per_user_awards": 1},
        ),
        campaign_dict(
            id="envelope",
            budget={"total_yuan": "150", "per_user_yuan": "20", "per_day_yuan": "40"},
        ),
        campaign_dict(
            id="lottery",
            benefit={"kind": "lottery_red_envelope", "prize_yuan": "8", "winners": 2},
            budget={"total_yuan": "16"},
        ),
    ]


def mixed_loans() -> list[GreenLoan]:
    return [
        make_loan(
            index,
            user=f"user-{index % 7}",
            day=1 + index % 5,
            category=("appliance", "new_energy_vehicle")[index % 2],
        )
        for index in range(60)
    ]


def award_rows(engine: Engine) -> list[tuple[Any, ...]]:
    awards = finance.finance_awards.c
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                select(
                    awards.campaign_id,
                    awards.purchase_id,
                    awards.amount_fen,
                    awards.status,
                    awards.savings_balance_after_fen,
                ).order_by(awards.campaign_id, awards.purchase_id)
            )
        ]


def counters(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    tables = {
        "campaigns": select(
            finance.finance_campaigns.c.campaign_id,
            finance.finance_campaigns.c.spent_fen,
        ).order_by(finance.finance_campaigns.c.campaign_id),
        "users": select(finance.finance_campaign_users).order_by(
            finance.finance_campaign_users.c.campaign_id,
            finance.finance_campaign_users.c.user_key,
        ),
        "days": select(finance.finance_campaign_days).order_by(
            finance.finance_campaign_days.c.campaign_id,
            finance.finance_campaign_days.c.day,
        ),
        "savings": select(finance.finance_facilities.c.savings_spent_fen),
    }
    with engine.connect() as connection:
        return {
            name: [tuple(row) for row in connection.execute(query)]
            for name, query in tables.items()
        }


def award_one_by_one(
    engine: Engine, loans: list[GreenLoan], campaigns: list[dict[str, Any]]
) -> None:
    """Award in the documented order with one transaction per award."""
    configs = [CampaignConfig.model_validate(item) for item in campaigns]
    ordered = sorted(loans, key=lambda loan: (loan.occurred_at, loan.purchase_id))
    for loan in ordered:
        for campaign in configs:
            if ineligibility_reason(campaign, loan) is not None:
                continue
            cost = finance.benefit_cost_fen(
                campaign,
                loan,
                Decimal("0.005"),
                finance._standard_plan(finance.load_fee_schedules().get(), loan),
            )
            finance.award(engine, campaign, loan, cost)


def test_chunks_match_single_awards(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaigns = mixed_campaigns()
    paths = write_configs(tmp_path, campaigns)
    loans = mixed_loans()
    monkeypatch.setattr(finance, "AWARD_CHUNK", 7)
    process_green_loans(engine, loans, *paths, AS_OF)
    chunked_awards = award_rows(engine)
    chunked_counters = counters(engine)

    other = make_engine(f"sqlite:///{tmp_path / 'single.sqlite3'}")
    # Record the loans and budgets without awards, then award one by one.
    monkeypatch.setattr(finance, "_award_incentives", lambda *_: {})
    process_green_loans(other, loans, *paths, AS_OF)
    award_one_by_one(other, loans, campaigns)
    single_awards = award_rows(other)
    single_counters = counters(other)
    other.dispose()

    assert len(chunked_awards) > 0
    assert chunked_awards == single_awards
    assert chunked_counters == single_counters


def test_chunk_size_keeps_results(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_configs(tmp_path, mixed_campaigns())
    loans = mixed_loans()
    monkeypatch.setattr(finance, "AWARD_CHUNK", 1000)
    process_green_loans(engine, loans, *paths, AS_OF)
    whole = award_rows(engine)

    other = make_engine(f"sqlite:///{tmp_path / 'small-chunks.sqlite3'}")
    monkeypatch.setattr(finance, "AWARD_CHUNK", 3)
    process_green_loans(other, loans, *paths, AS_OF)
    in_threes = award_rows(other)
    other.dispose()
    assert whole == in_threes


def test_earliest_purchases_win_budget(engine: Engine, tmp_path: Path) -> None:
    # Ten 10-yuan envelopes fit the 100-yuan budget, so the purchases of the
    # ten earliest days win whatever order the batch lists them in.
    loans = [make_loan(index, day=1 + index) for index in range(15)]
    shuffled = list(loans)
    random.Random(7).shuffle(shuffled)
    paths = write_configs(tmp_path, [campaign_dict()])
    outcome = process_green_loans(engine, shuffled, *paths, AS_OF)
    winners = {key for key, result in outcome.loans.items() if result.awards}
    assert winners == {loan.purchase_id for loan in loans[:10]}


def test_same_time_ordered_by_purchase_id(engine: Engine, tmp_path: Path) -> None:
    loans = [make_loan(index) for index in range(15)]
    paths = write_configs(tmp_path, [campaign_dict()])
    outcome = process_green_loans(engine, list(reversed(loans)), *paths, AS_OF)
    winners = sorted(key for key, result in outcome.loans.items() if result.awards)
    assert winners == [loan.purchase_id for loan in loans[:10]]


def test_existing_award_row_conflicts(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path, [campaign_dict()])
    loan = make_loan(1)
    process_green_loans(engine, [loan], *paths, AS_OF)
    with engine.connect() as connection:
        row = connection.execute(select(finance.finance_awards)).one()
    values = {name: getattr(row, name) for name in row._fields if name != "id"}
    with pytest.raises(finance._ChunkConflict), engine.begin() as connection:
        finance._insert_award_rows(connection, [values])


def test_invalid_award_row_is_no_conflict(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path, [campaign_dict()])
    process_green_loans(engine, [make_loan(1)], *paths, AS_OF)
    with engine.connect() as connection:
        row = connection.execute(select(finance.finance_awards)).one()
    values = {name: getattr(row, name) for name in row._fields if name != "id"}
    values["purchase_id"] = "another-purchase"
    values["user_key"] = None
    with pytest.raises(IntegrityError), engine.begin() as connection:
        finance._insert_award_rows(connection, [values])


def test_counter_upsert_never_passes_limit(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path, [campaign_dict()])
    process_green_loans(engine, [make_loan(1)], *paths, AS_OF)
    table = finance.finance_campaign_users
    rows = [{"campaign_id": "test-envelope", "user_key": "user-1", "spent_fen": 1500}]
    with pytest.raises(finance._ChunkConflict), engine.begin() as connection:
        finance._upsert_counters(
            connection, table, ["campaign_id", "user_key"], rows, {"spent_fen": 2000}
        )
    with engine.connect() as connection:
        spent = connection.execute(select(table.c.spent_fen)).scalar_one()
    assert spent == 1000


def test_concurrent_award_forces_retry(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = campaign_dict()
    paths = write_configs(tmp_path, [payload])
    campaign = CampaignConfig.model_validate(payload)
    original = finance._read_budgets
    calls = {"count": 0}

    def award_after_read(*arguments: Any) -> Any:
        # Between the chunk's read and its write, a checkout awards the same
        # campaign on its own connection, so the chunk's savings check fails.
        budgets = original(*arguments)
        calls["count"] += 1
        if calls["count"] == 1:
            finance.award(engine, campaign, make_loan(99, day=28), Decimal(1000))
        return budgets

    monkeypatch.setattr(finance, "_read_budgets", award_after_read)
    loans = [make_loan(index) for index in range(15)]
    outcome = process_green_loans(engine, loans, *paths, AS_OF)
    section = outcome.incentive_report["campaigns"]["test-envelope"]
    assert calls["count"] == 2
    assert section["spent_fen"] == 10_000
    assert section["awards"] == 10
    with engine.connect() as connection:
        paid = connection.execute(
            select(func.sum(finance.finance_awards.c.amount_fen))
        ).scalar_one()
    assert paid == 10_000


def test_repeated_conflicts_fall_back(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_conflict(*_: Any) -> Any:
        raise finance._ChunkConflict("test conflict")

    monkeypatch.setattr(finance, "_award_chunk_once", always_conflict)
    paths = write_configs(tmp_path, [campaign_dict()])
    loans = [make_loan(index) for index in range(15)]
    outcome = process_green_loans(engine, loans, *paths, AS_OF)
    section = outcome.incentive_report["campaigns"]["test-envelope"]
    assert section["awards"] == 10
    assert section["remaining_fen"] == 0


def test_counts_without_per_loan_results(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path, mixed_campaigns())
    loans = [*mixed_loans(), make_loan(999, principal_fen=0)]
    outcome = process_green_loans(engine, loans, *paths, AS_OF, per_loan=False)
    assert outcome.loans == {}
    assert outcome.processed == len(loans)
    assert outcome.rejected == 1
    assert award_rows(engine)
    with_results = process_green_loans(engine, loans, *paths, AS_OF)
    assert len(with_results.loans) == len(loans)
    assert with_results.allocation_report == outcome.allocation_report


def test_plan_caches_cleared(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path, mixed_campaigns())
    long_loans = [make_loan(500 + number, periods=24) for number in range(3)]
    process_green_loans(engine, long_loans, *paths, AS_OF)
    assert finance._unrefunded_figures.cache_info().currsize > 0
    finance.clear_plan_caches()
    assert finance._unrefunded_figures.cache_info().currsize == 0
    assert finance._repaid_after.cache_info().currsize == 0
