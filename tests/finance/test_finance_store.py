"""The finance store on SQLite and PostgreSQL: run, rerun, revoke, refund, draw."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from finance_helpers import campaign_dict, facility_dict, make_loan, write_yaml
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from greenloop.incentives.draws import new_seed, seed_digest, verify_record
from greenloop.lending import fee_plan
from greenloop.lending.configfile import ConfigError
from greenloop.lending.plans import InstallmentPlan
from greenloop.lending.rates import AnnualRate
from greenloop.store import finance
from greenloop.store.base import make_engine
from greenloop.store.finance import (
    GreenLoan,
    apply_partial_refund,
    commit_campaign_draw,
    process_green_loans,
    reconcile_facility,
    refund_purchases,
    repay_loans,
    reveal_campaign_draw,
    revoke_loans,
)

AS_OF = date(2026, 6, 30)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    created = make_engine(database_url)
    yield created
    created.dispose()


def write_configs(
    tmp_path: Path,
    facilities: list[dict[str, Any]] | None = None,
    campaigns: list[dict[str, Any]] | None = None,
) -> tuple[Path, Path]:
    # A 2.5-point spread accrues about 69 yuan a day on the 10,000 yuan drawn,
    # enough savings for the campaigns of these tests.
    default = [facility_dict(facility_rate="0.005")]
    facilities_path = write_yaml(
        tmp_path / "facilities.yaml", {"facilities": facilities or default}
    )
    campaigns_path = write_yaml(
        tmp_path / "campaigns.yaml", {"campaigns": campaigns or [campaign_dict()]}
    )
    return facilities_path, campaigns_path


def run(
    engine: Engine,
    loans: list[GreenLoan],
    paths: tuple[Path, Path],
    as_of: date = AS_OF,
) -> finance.FinanceOutcome:
    return process_green_loans(engine, loans, paths[0], paths[1], as_of)


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(table)).scalar_one()
        )


def test_run_allocates_and_reconciles(engine: Engine, tmp_path: Path) -> None:
    loans = [make_loan(index, principal_fen=400_000) for index in range(4)]
    outcome = run(engine, loans, write_configs(tmp_path))
    section = outcome.allocation_report["facilities"]["test-facility"]
    assert section["drawn_fen"] == 1_000_000
    assert section["allocated_fen"] + section["unallocated_fen"] == 1_000_000
    assert section["reconciled"] is True
    assert section["pool_covers_drawn"] is True
    assert section["allocated_per_category_fen"] == {"appliance": 1_000_000}


def test_run_reports_plan_summary(engine: Engine, tmp_path: Path) -> None:
    outcome = run(engine, [make_loan(1)], write_configs(tmp_path))
    result = outcome.loans["p00001"]
    assert result.fee_fen == 26_400
    assert result.apr is not None
    assert str(result.apr.quantize(result.apr.__class__("0.001"))) == "0.159"
    assert result.facility_id == "test-facility"
    assert [award.campaign_id for award in result.awards] == ["test-envelope"]


def test_rerun_awards_and_allocates_nothing_twice(
    engine: Engine, tmp_path: Path
) -> None:
    paths = write_configs(tmp_path)
    loans = [make_loan(index, principal_fen=400_000) for index in range(5)]
    first = run(engine, loans, paths)
    second = run(engine, loans, paths)
    assert count(engine, finance.finance_awards) == 5
    # Each loan owes 300,000 fen after three installments, so four loans cover
    # the 1,000,000 fen drawn.
    assert count(engine, finance.finance_allocations) == 4
    assert second.incentive_report["spent_fen"] == first.incentive_report["spent_fen"]
    assert second.incentive_report["campaigns"]["test-envelope"]["spent_fen"] == 5000
    with engine.connect() as connection:
        users = connection.execute(select(finance.finance_campaign_users)).all()
    assert {row.awards for row in users} == {1}


def test_budget_never_exceeded(engine: Engine, tmp_path: Path) -> None:
    loans = [make_loan(index) for index in range(15)]
    outcome = run(engine, loans, write_configs(tmp_path))
    campaign = outcome.incentive_report["campaigns"]["test-envelope"]
    assert campaign["spent_fen"] == 10_000
    assert campaign["awards"] == 10
    assert campaign["remaining_fen"] == 0


def test_per_user_award_cap_holds(engine: Engine, tmp_path: Path) -> None:
    capped = campaign_dict(budget={"total_yuan": "100", "per_user_awards": 2})
    loans = [make_loan(index, user="same-user") for index in range(5)]
    outcome = run(engine, loans, write_configs(tmp_path, campaigns=[capped]))
    assert outcome.incentive_report["campaigns"]["test-envelope"]["awards"] == 2


def test_daily_budget_holds(engine: Engine, tmp_path: Path) -> None:
    daily = campaign_dict(budget={"total_yuan": "100", "per_day_yuan": "20"})
    loans = [make_loan(index, day=1 + index % 2) for index in range(8)]
    outcome = run(engine, loans, write_configs(tmp_path, campaigns=[daily]))
    assert outcome.incentive_report["campaigns"]["test-envelope"]["spent_fen"] == 4000


def test_savings_limit_awards(engine: Engine, tmp_path: Path) -> None:
    # 1,000,000 fen drawn at a 0.5-point spread saves about 13.9 fen a day, so
    # ten days of savings (139 fen) pay for one 1-yuan envelope only.
    small = campaign_dict(
        benefit={"kind": "fixed_red_envelope", "amount_yuan": "1"},
        starts_on="2026-01-01",
    )
    loans = [make_loan(index, month=1, day=2) for index in range(3)]
    paths = write_configs(tmp_path, [facility_dict()], [small])
    outcome = run(engine, loans, paths, date(2026, 1, 10))
    assert outcome.incentive_report["campaigns"]["test-envelope"]["awards"] == 1
    section = outcome.allocation_report["facilities"]["test-facility"]
    assert section["savings_accrued_fen"] == 139
    assert section["savings_spent_fen"] == 100


def test_award_records_savings_that_paid(engine: Engine, tmp_path: Path) -> None:
    run(engine, [make_loan(1)], write_configs(tmp_path))
    with engine.connect() as connection:
        row = connection.execute(select(finance.finance_awards)).one()
    assert row.facility_id == "test-facility"
    assert row.savings_fen == 1000
    assert row.savings_balance_after_fen is not None


def test_interest_free_award_waives_fee(engine: Engine, tmp_path: Path) -> None:
    offer = campaign_dict(benefit={"kind": "interest_free", "max_periods": 12})
    outcome = run(engine, [make_loan(1)], write_configs(tmp_path, campaigns=[offer]))
    result = outcome.loans["p00001"]
    assert result.consumer_fee_waived is True
    assert result.fee_fen == 0
    # 3,000 yuan over 12 months at the 0.5 % facility rate costs about 8 yuan.
    assert result.awards[0].amount_fen == 811


def test_revocation_substitutes_unallocated_loan(
    engine: Engine, tmp_path: Path
) -> None:
    paths = write_configs(tmp_path)
    # Each loan owes 450,000 fen on the report date: three cover the drawn
    # amount and the fourth waits unallocated.
    loans = [make_loan(index, principal_fen=600_000) for index in range(4)]
    run(engine, loans, paths)
    report = revoke_loans(engine, ["p00000", "missing"], "certificate revoked", AS_OF)
    assert report.not_found == ("missing",)
    assert set(report.released["test-facility"]) == {"p00000"}
    assert set(report.added["test-facility"]) == {"p00003"}
    assert report.pool_covers_drawn["test-facility"] is True
    assert reconcile_facility(engine, "test-facility").balanced


def test_revoked_loan_never_reallocated(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path)
    loans = [make_loan(index, principal_fen=600_000) for index in range(3)]
    run(engine, loans, paths)
    revoke_loans(engine, ["p00000"], "certificate revoked", AS_OF)
    outcome = run(engine, loans, paths)
    assert outcome.loans["p00000"].facility_id is None


def test_refund_returns_award_budget(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path)
    loans = [make_loan(index) for index in range(10)]
    run(engine, loans, paths)
    report = refund_purchases(engine, ["p00003"], "goods returned", AS_OF)
    assert report.awards_refunded == 1
    outcome = run(engine, [*loans, make_loan(10)], paths)
    campaign = outcome.incentive_report["campaigns"]["test-envelope"]
    assert campaign["spent_fen"] == 10_000
    assert campaign["refunded"] == 1
    assert outcome.loans["p00010"].awards[0].status == "awarded"


def test_refund_twice_returns_budget_once(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path)
    run(engine, [make_loan(1)], paths)
    refund_purchases(engine, ["p00001"], "goods returned", AS_OF)
    second = refund_purchases(engine, ["p00001"], "goods returned", AS_OF)
    assert second.awards_refunded == 0
    with engine.connect() as connection:
        spent = connection.execute(
            select(finance.finance_campaigns.c.spent_fen)
        ).scalar()
    assert spent == 0


@pytest.mark.parametrize("chunk_size", [1, 1000])
def test_crash_mid_award_loses_nothing(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    # With one loan per chunk, two chunks commit before the crash. With one
    # chunk for all four loans, the crash rolls the whole chunk back.
    monkeypatch.setattr(finance, "AWARD_CHUNK", chunk_size)
    paths = write_configs(tmp_path)
    loans = [make_loan(index) for index in range(4)]
    original = finance._charge_savings
    calls = {"count": 0}

    def crash_on_call(*arguments: Any) -> int | None:
        calls["count"] += 1
        if calls["count"] == (3 if chunk_size == 1 else 1):
            raise RuntimeError("process killed")
        return original(*arguments)

    monkeypatch.setattr(finance, "_charge_savings", crash_on_call)
    with pytest.raises(RuntimeError, match="process killed"):
        run(engine, loans, paths)
    awards_before_rerun = count(engine, finance.finance_awards)
    assert awards_before_rerun == (2 if chunk_size == 1 else 0)
    monkeypatch.setattr(finance, "_charge_savings", original)
    outcome = run(engine, loans, paths)
    campaign = outcome.incentive_report["campaigns"]["test-envelope"]
    assert campaign["awards"] == 4
    assert campaign["spent_fen"] == 4000
    section = outcome.allocation_report["facilities"]["test-facility"]
    assert section["savings_spent_fen"] == 4000
    with engine.connect() as connection:
        users = connection.execute(select(finance.finance_campaign_users)).all()
    assert sum(row.spent_fen for row in users) == 4000


def test_unpriced_periods_reported(engine: Engine, tmp_path: Path) -> None:
    outcome = run(engine, [make_loan(1, periods=72)], write_configs(tmp_path))
    error = outcome.loans["p00001"].error
    assert error is not None
    assert "no fee rate for 72 periods" in error


def test_unknown_funding_facility_rejected(engine: Engine, tmp_path: Path) -> None:
    orphan = campaign_dict(funding={"facility_id": "nowhere"})
    with pytest.raises(ConfigError, match=r"campaigns\[0\]\.funding\.facility_id"):
        run(engine, [make_loan(1)], write_configs(tmp_path, campaigns=[orphan]))


def test_lottery_draw_pays_winners_within_budget(
    engine: Engine, tmp_path: Path
) -> None:
    lottery = campaign_dict(
        id="test-lottery",
        benefit={"kind": "lottery_red_envelope", "prize_yuan": "8", "winners": 3},
        budget={"total_yuan": "20"},
    )
    loans = [make_loan(index) for index in range(10)]
    paths = write_configs(tmp_path, campaigns=[lottery])
    run(engine, loans, paths)
    seed = new_seed()
    commitment = commit_campaign_draw(engine, "test-lottery", seed_digest(seed), "r1")
    assert commitment.entry_count == 10
    record = reveal_campaign_draw(engine, commitment.draw_id, seed)
    assert verify_record(record) == []
    outcome = run(engine, loans, paths)
    statuses = sorted(
        award.status for result in outcome.loans.values() for award in result.awards
    )
    assert statuses.count("won") == 2
    assert statuses.count("won_unpaid") == 1
    assert statuses.count("lost") == 7
    assert outcome.incentive_report["campaigns"]["test-lottery"]["spent_fen"] == 1600


def test_second_reveal_pays_nothing(engine: Engine, tmp_path: Path) -> None:
    lottery = campaign_dict(
        id="test-lottery",
        benefit={"kind": "lottery_red_envelope", "prize_yuan": "1", "winners": 2},
    )
    run(
        engine,
        [make_loan(index) for index in range(4)],
        write_configs(tmp_path, campaigns=[lottery]),
    )
    seed = new_seed()
    commitment = commit_campaign_draw(engine, "test-lottery", seed_digest(seed))
    reveal_campaign_draw(engine, commitment.draw_id, seed)
    reveal_campaign_draw(engine, commitment.draw_id, seed)
    with engine.connect() as connection:
        spent = connection.execute(
            select(finance.finance_campaigns.c.spent_fen)
        ).scalar()
    assert spent == 200


def test_entries_close_at_commitment(engine: Engine, tmp_path: Path) -> None:
    lottery = campaign_dict(
        id="test-lottery",
        benefit={"kind": "lottery_red_envelope", "prize_yuan": "1", "winners": 1},
    )
    paths = write_configs(tmp_path, campaigns=[lottery])
    run(engine, [make_loan(1)], paths)
    commit_campaign_draw(engine, "test-lottery", seed_digest(new_seed()))
    outcome = run(engine, [make_loan(1), make_loan(2)], paths)
    this_run = outcome.incentive_report["campaigns"]["test-lottery"]["this_run"]
    assert this_run == {"draw already committed; entries are closed": 1}
    assert outcome.loans["p00002"].awards == ()


def test_repaid_loan_substituted(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path)
    loans = [make_loan(index, principal_fen=600_000) for index in range(4)]
    run(engine, loans, paths)
    report = repay_loans(engine, ["p00001"], "repaid early", AS_OF)
    assert set(report.released["test-facility"]) == {"p00001"}
    assert set(report.added["test-facility"]) == {"p00003"}
    assert reconcile_facility(engine, "test-facility").balanced


def test_groups_count_each_loan_once(engine: Engine, tmp_path: Path) -> None:
    second = campaign_dict(id="second-envelope")
    paths = write_configs(tmp_path, campaigns=[campaign_dict(), second])
    outcome = run(
        engine, [make_loan(1), make_loan(2, category="new_energy_vehicle")], paths
    )
    report = outcome.incentive_report
    assert report["groups"]["green_appliances"]["spent_fen"] == 2000
    assert report["groups"]["green_appliances"]["kg_co2e_avoided"] == "500.000"
    assert report["groups"]["other"]["spent_fen"] == 2000
    assert report["kg_co2e_avoided"] == "1000.000"
    # 40 yuan for one tonne.
    assert report["yuan_per_tco2e"] == "40.00"


def allocated_fen(engine: Engine, purchase_id: str) -> int:
    allocations = finance.finance_allocations
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(allocations.c.allocated_fen).where(
                    allocations.c.purchase_id == purchase_id
                )
            ).scalar_one()
        )


def test_partial_refund_shrinks_allocation(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path)
    loans = [make_loan(index, principal_fen=600_000) for index in range(4)]
    run(engine, loans, paths)
    assert allocated_fen(engine, "p00000") == 450_000
    report = apply_partial_refund(engine, "p00000", 300_000, AS_OF)
    assert report.pool_covers_drawn["test-facility"] is True
    assert allocated_fen(engine, "p00000") == 150_000
    assert allocated_fen(engine, "p00002") == 400_000
    assert reconcile_facility(engine, "test-facility").balanced
    outcome = run(engine, loans, paths)
    # The fee still to come (9 of 12 parts of 52,800 fen) falls by two thirds.
    assert outcome.loans["p00000"].fee_fen == 13_200 + 13_200


def test_partial_refunds_reaching_principal(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path)
    run(engine, [make_loan(1)], paths)
    apply_partial_refund(engine, "p00001", 200_000, AS_OF)
    report = apply_partial_refund(engine, "p00001", 100_000, AS_OF)
    assert report.awards_refunded == 1
    with engine.connect() as connection:
        status = connection.execute(select(finance.finance_loans.c.status)).scalar()
    assert status == "refunded"


def test_refunds_leaving_no_principal_priced(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path)
    loans = [make_loan(index, principal_fen=600_000) for index in range(4)]
    run(engine, loans, paths)
    # Three installments are paid by AS_OF. Two refunds on that day return
    # 599,000 of the 600,000 fen, more than the principal still outstanding.
    apply_partial_refund(engine, "p00000", 400_000, AS_OF)
    apply_partial_refund(engine, "p00000", 199_000, AS_OF)
    outcome = run(engine, loans, paths)
    result = outcome.loans["p00000"]
    assert result.rate_error is None
    assert result.apr is not None
    assert result.apr > 0
    assert result.facility_id is None
    assert outcome.loans["p00001"].apr == outcome.loans["p00002"].apr
    section = outcome.allocation_report["facilities"]["test-facility"]
    assert section["reconciled"] is True


def test_loan_without_rate_keeps_batch(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_configs(tmp_path)
    loans = [make_loan(index, principal_fen=600_000) for index in range(3)]
    run(engine, loans, paths)
    apply_partial_refund(engine, "p00000", 100_000, AS_OF)
    original = InstallmentPlan.annual_rate

    def failing_rate(plan: InstallmentPlan) -> AnnualRate:
        if plan.principal_fen == 500_000:
            raise ValueError("no internal rate of return: payments are too large")
        return original(plan)

    monkeypatch.setattr(InstallmentPlan, "annual_rate", failing_rate)
    outcome = run(engine, loans, paths)
    result = outcome.loans["p00000"]
    assert result.apr is None
    assert result.effective_annual_rate is None
    assert result.rate_error == (
        "no APR: no internal rate of return: payments are too large"
    )
    assert result.error is None
    assert result.fee_fen is not None
    assert result.facility_id == "test-facility"
    assert outcome.loans["p00001"].apr is not None


def test_same_day_single_loan_allocated(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path)
    run(engine, [make_loan(1, principal_fen=400_000)], paths)
    outcome = run(engine, [make_loan(2, principal_fen=400_000)], paths)
    assert outcome.loans["p00002"].facility_id == "test-facility"
    section = outcome.allocation_report["facilities"]["test-facility"]
    plan = fee_plan(Decimal(400_000), 12, Decimal("0.088"), date(2026, 3, 1))
    assert section["allocated_fen"] == 2 * plan.outstanding_fen(AS_OF)
    assert section["reconciled"] is True


def test_next_day_remeasures_allocations(engine: Engine, tmp_path: Path) -> None:
    paths = write_configs(tmp_path)
    loans = [make_loan(index, principal_fen=600_000) for index in range(4)]
    run(engine, loans, paths, date(2026, 6, 30))
    outcome = run(engine, loans, paths, date(2026, 7, 1))
    section = outcome.allocation_report["facilities"]["test-facility"]
    # A fourth installment fell due on 1 July, so each loan owes 400,000 fen.
    assert allocated_fen(engine, "p00000") == 400_000
    assert section["allocated_fen"] == 1_000_000
    assert section["loans_allocated"] == 3


def test_long_loan_priced_with_interest(engine: Engine, tmp_path: Path) -> None:
    outcome = run(engine, [make_loan(1, periods=36)], write_configs(tmp_path))
    result = outcome.loans["p00001"]
    assert result.error is None
    assert result.fee_fen == 0
    assert result.apr is not None
    assert result.apr.quantize(Decimal("0.001")) == Decimal("0.035")


def test_changed_budget_applies_on_rerun(engine: Engine, tmp_path: Path) -> None:
    loans = [make_loan(index) for index in range(15)]
    run(engine, loans, write_configs(tmp_path))
    larger = campaign_dict(budget={"total_yuan": "120"})
    outcome = run(engine, loans, write_configs(tmp_path, campaigns=[larger]))
    campaign = outcome.incentive_report["campaigns"]["test-envelope"]
    assert campaign["budget_fen"] == 12_000
    assert campaign["awards"] == 12


def test_interest_free_loan_allocated_at_new_plan(
    engine: Engine, tmp_path: Path
) -> None:
    offer = campaign_dict(benefit={"kind": "interest_free", "max_periods": 12})
    paths = write_configs(tmp_path, campaigns=[offer])
    run(engine, [make_loan(1, principal_fen=400_000)], paths)
    # Without the fee, each installment repays 33,333 fen of principal, so three
    # leave 300,001 fen; the fee plan would leave 299,999.
    free = fee_plan(Decimal(400_000), 12, Decimal(0), date(2026, 3, 1))
    assert free.outstanding_fen(AS_OF) == 300_001
    assert allocated_fen(engine, "p00001") == 300_001


def test_reveal_resumes_after_crash(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lottery = campaign_dict(
        id="test-lottery",
        benefit={"kind": "lottery_red_envelope", "prize_yuan": "1", "winners": 3},
    )
    run(
        engine,
        [make_loan(index) for index in range(6)],
        write_configs(tmp_path, campaigns=[lottery]),
    )
    seed = new_seed()
    commitment = commit_campaign_draw(engine, "test-lottery", seed_digest(seed))
    original = finance._settle_entry
    calls = {"count": 0}

    def crash_on_fourth(*arguments: Any) -> None:
        calls["count"] += 1
        if calls["count"] == 4:
            raise RuntimeError("process killed")
        original(*arguments)

    monkeypatch.setattr(finance, "_settle_entry", crash_on_fourth)
    with pytest.raises(RuntimeError, match="process killed"):
        reveal_campaign_draw(engine, commitment.draw_id, seed)
    monkeypatch.setattr(finance, "_settle_entry", original)
    record = reveal_campaign_draw(engine, commitment.draw_id, seed)

    with engine.connect() as connection:
        rows = connection.execute(select(finance.finance_awards)).all()
        spent = connection.execute(
            select(finance.finance_campaigns.c.spent_fen)
        ).scalar()
    assert {row.status for row in rows} <= {"won", "lost"}
    assert sorted(row.purchase_id for row in rows if row.status == "won") == sorted(
        record.winners
    )
    assert spent == 300


def test_second_commit_other_seed_rejected(engine: Engine, tmp_path: Path) -> None:
    lottery = campaign_dict(
        id="test-lottery",
        benefit={"kind": "lottery_red_envelope", "prize_yuan": "1", "winners": 1},
    )
    run(engine, [make_loan(1)], write_configs(tmp_path, campaigns=[lottery]))
    seed = new_seed()
    first = commit_campaign_draw(engine, "test-lottery", seed_digest(seed))
    again = commit_campaign_draw(engine, "test-lottery", seed_digest(seed))
    assert again == first
    with pytest.raises(ValueError, match="already committed"):
        commit_campaign_draw(engine, "test-lottery", seed_digest(new_seed()))


def test_kg_totals_exact_in_any_order(database_url: str) -> None:
    from decimal import Decimal

    from sqlalchemy import Column, Float, MetaData, Table, insert, select

    from greenloop.store.base import make_engine
    from greenloop.store.finance import _kg, _milligram_sum

    table = Table("kg_values", MetaData(), Column("kg", Float))
    engine = make_engine(database_url)
    values = [1e9] + [0.0006] * 1000
    totals = []
    for order in (values, values[::-1]):
        with engine.begin() as connection:
            table.drop(connection, checkfirst=True)
            table.create(connection)
            connection.execute(insert(table), [{"kg": value} for value in order])
            totals.append(
                connection.execute(select(_milligram_sum(table.c.kg))).scalar_one()
            )
    engine.dispose()
    assert int(totals[0]) == int(totals[1]) == 1_000_000_000_600_000
    assert _kg(totals[0]) == Decimal("1000000000.600")
