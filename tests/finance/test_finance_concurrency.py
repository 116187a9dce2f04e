"""Concurrent awards and runs against PostgreSQL never exceed a budget."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from finance_helpers import campaign_dict, facility_dict, make_loan, write_yaml
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from greenloop.incentives import CampaignConfig
from greenloop.store import finance
from greenloop.store.base import make_engine

pytestmark = pytest.mark.postgres

THREADS = 24
AS_OF = date(2026, 6, 30)


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    created = make_engine(postgres_url)
    yield created
    created.dispose()


def prepare(
    engine: Engine, tmp_path: Path, campaign: dict[str, object]
) -> tuple[Path, Path]:
    facilities = write_yaml(
        tmp_path / "facilities.yaml",
        {"facilities": [facility_dict(facility_rate="0.005")]},
    )
    campaigns = write_yaml(tmp_path / "campaigns.yaml", {"campaigns": [campaign]})
    finance.process_green_loans(engine, [], facilities, campaigns, AS_OF)
    return facilities, campaigns


def scalar(engine: Engine, query: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())  # type: ignore[call-overload]


def wait_for(event: threading.Event) -> None:
    """Wait for another thread's event, failing after 20 s."""
    name = threading.current_thread().name
    assert event.wait(timeout=20), f"{name} waited 20 s for the other thread"


def run_threads(targets: dict[str, Callable[[], None]]) -> list[BaseException]:
    """Run each target in a thread of its name; return the errors they raised."""
    errors: list[BaseException] = []

    def recording(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as error:
                errors.append(error)

        return run

    threads = [
        threading.Thread(target=recording(target), name=name)
        for name, target in targets.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_concurrent_awards_stay_within_budget(engine: Engine, tmp_path: Path) -> None:
    payload = campaign_dict(budget={"total_yuan": "100"})
    prepare(engine, tmp_path, payload)
    campaign = CampaignConfig.model_validate(payload)
    loans = [make_loan(index) for index in range(300)]

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(
            pool.map(
                lambda loan: finance.award(engine, campaign, loan, Decimal(1000)), loans
            )
        )

    assert outcomes.count("awarded") == 10
    assert outcomes.count("campaign budget exhausted") == 290
    spent = scalar(engine, select(finance.finance_campaigns.c.spent_fen))
    assert spent == 10_000
    paid = scalar(engine, select(func.sum(finance.finance_awards.c.amount_fen)))
    assert paid == 10_000
    savings = scalar(engine, select(finance.finance_facilities.c.savings_spent_fen))
    assert savings == 10_000


def test_concurrent_awards_respect_user_cap(engine: Engine, tmp_path: Path) -> None:
    payload = campaign_dict(budget={"total_yuan": "100", "per_user_awards": 3})
    prepare(engine, tmp_path, payload)
    campaign = CampaignConfig.model_validate(payload)
    loans = [make_loan(index, user="same-user") for index in range(96)]

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(
            pool.map(
                lambda loan: finance.award(engine, campaign, loan, Decimal(100)), loans
            )
        )

    assert outcomes.count("awarded") == 3
    awards = scalar(engine, select(func.count()).select_from(finance.finance_awards))
    assert awards == 3
    spent = scalar(engine, select(finance.finance_campaigns.c.spent_fen))
    assert spent == 300


def test_concurrent_same_award_counted_once(engine: Engine, tmp_path: Path) -> None:
    payload = campaign_dict()
    prepare(engine, tmp_path, payload)
    campaign = CampaignConfig.model_validate(payload)
    loan = make_loan(1)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(
            pool.map(
                lambda _: finance.award(engine, campaign, loan, Decimal(1000)),
                range(THREADS),
            )
        )

    assert outcomes.count("awarded") == 1
    assert outcomes.count("duplicate") == THREADS - 1
    spent = scalar(engine, select(finance.finance_campaigns.c.spent_fen))
    assert spent == 1000


def test_parallel_runs_award_each_loan_once(engine: Engine, tmp_path: Path) -> None:
    payload = campaign_dict(budget={"total_yuan": "50"})
    facilities, campaigns = prepare(engine, tmp_path, payload)
    loans = [make_loan(index, principal_fen=400_000) for index in range(40)]

    def run_batch(_: int) -> None:
        finance.process_green_loans(engine, loans, facilities, campaigns, AS_OF)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(run_batch, range(4)))

    awards = scalar(engine, select(func.count()).select_from(finance.finance_awards))
    assert awards == 5
    spent = scalar(engine, select(finance.finance_campaigns.c.spent_fen))
    assert spent == 5000
    check = finance.reconcile_facility(engine, "test-facility")
    assert check.balanced
    active = scalar(
        engine,
        select(func.count())
        .select_from(finance.finance_allocations)
        .where(finance.finance_allocations.c.released_on.is_(None)),
    )
    assert active == 4


def test_refunds_racing_awards_stay_exact(engine: Engine, tmp_path: Path) -> None:
    payload = campaign_dict(budget={"total_yuan": "100"})
    facilities, campaigns = prepare(engine, tmp_path, payload)
    campaign = CampaignConfig.model_validate(payload)
    first = [make_loan(index) for index in range(10)]
    finance.process_green_loans(engine, first, facilities, campaigns, AS_OF)
    later = [make_loan(index) for index in range(10, 60)]

    def refund(loan: object) -> str:
        key = loan.purchase_id  # type: ignore[attr-defined]
        finance.refund_purchases(engine, [key], "goods returned", AS_OF)
        return "refunded"

    def work(item: tuple[str, object]) -> str:
        kind, loan = item
        if kind == "refund":
            return refund(loan)
        return finance.award(engine, campaign, loan, Decimal(1000))  # type: ignore[arg-type]

    jobs = [("refund", loan) for loan in first] + [("award", loan) for loan in later]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(pool.map(work, jobs))

    # How many later awards win depends on the interleaving, so the checks are
    # the invariants: never above the budget, and the counter equals the paid sum.
    awarded = outcomes.count("awarded")
    assert awarded <= 10
    spent = scalar(engine, select(finance.finance_campaigns.c.spent_fen))
    paid = scalar(
        engine,
        select(func.coalesce(func.sum(finance.finance_awards.c.amount_fen), 0)).where(
            finance.finance_awards.c.status == "awarded"
        ),
    )
    assert spent == paid
    assert spent == 1000 * awarded


def test_two_facilities_claim_one_loan(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both facilities fund vehicles. The second run has allocated "general" and
    # reads the candidates of "vehicles", which include the first run's new
    # vehicle loan. The first run then allocates that loan to "general" and
    # commits before the second run inserts its own allocation of it.
    facilities = write_yaml(
        tmp_path / "facilities.yaml",
        {
            "facilities": [
                facility_dict(id="general"),
                facility_dict(
                    id="vehicles", eligible_categories=["new_energy_vehicle"]
                ),
            ]
        },
    )
    campaigns = write_yaml(
        tmp_path / "campaigns.yaml",
        {"campaigns": [campaign_dict(funding={"facility_id": "general"})]},
    )
    first_loans = [make_loan(1, category="new_energy_vehicle")]
    second_loans = [make_loan(2, category="appliance")]
    second_before_vehicles = threading.Event()
    first_accrued = threading.Event()
    second_measured_vehicles = threading.Event()
    first_allocated_general = threading.Event()
    allocate = finance.allocate
    allocate_facility = finance._allocate_facility

    def paused_allocate(facility: Any, *arguments: Any) -> Any:
        if threading.current_thread().name == "second" and facility.id == "vehicles":
            second_measured_vehicles.set()
            wait_for(first_allocated_general)
        return allocate(facility, *arguments)

    def paused_allocate_facility(
        engine: Engine, facility: Any, *arguments: Any
    ) -> None:
        name = threading.current_thread().name
        if name == "second" and facility.id == "vehicles":
            second_before_vehicles.set()
            wait_for(first_accrued)
        allocate_facility(engine, facility, *arguments)
        if name == "first" and facility.id == "general":
            first_allocated_general.set()

    def first_phase(phase: str) -> None:
        if phase == "accrue savings":
            first_accrued.set()
            wait_for(second_measured_vehicles)

    monkeypatch.setattr(finance, "allocate", paused_allocate)
    monkeypatch.setattr(finance, "_allocate_facility", paused_allocate_facility)

    def run_first() -> None:
        wait_for(second_before_vehicles)
        finance.process_green_loans(
            engine, first_loans, facilities, campaigns, AS_OF, on_phase=first_phase
        )

    def run_second() -> None:
        finance.process_green_loans(engine, second_loans, facilities, campaigns, AS_OF)

    errors = run_threads({"first": run_first, "second": run_second})

    assert errors == []
    columns = finance.finance_allocations.c
    active = scalar(
        engine,
        select(func.count())
        .select_from(finance.finance_allocations)
        .where(columns.purchase_id == "p00001", columns.released_on.is_(None)),
    )
    assert active == 1
    with engine.connect() as connection:
        holder = connection.execute(
            select(columns.facility_id).where(
                columns.purchase_id == "p00001", columns.released_on.is_(None)
            )
        ).scalar_one()
    assert holder == "general"
    assert finance.reconcile_facility(engine, "general").balanced
    assert finance.reconcile_facility(engine, "vehicles").balanced


def test_refund_substitute_claimed_concurrently(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "vehicles" has p00001 allocated. A refund of it makes "vehicles" read its
    # candidates, which include the new vehicle loan p00002 of a concurrent
    # run. That run allocates p00002 to "general" and commits before the
    # refund's transaction inserts its own allocation of it.
    vehicles = facility_dict(id="vehicles", eligible_categories=["new_energy_vehicle"])
    campaigns = write_yaml(
        tmp_path / "campaigns.yaml",
        {"campaigns": [campaign_dict(funding={"facility_id": "vehicles"})]},
    )
    only_vehicles = write_yaml(tmp_path / "vehicles.yaml", {"facilities": [vehicles]})
    finance.process_green_loans(
        engine,
        [make_loan(1, category="new_energy_vehicle")],
        only_vehicles,
        campaigns,
        AS_OF,
    )
    both = write_yaml(
        tmp_path / "both.yaml",
        {"facilities": [facility_dict(id="general"), vehicles]},
    )
    run_accrued = threading.Event()
    refund_measured = threading.Event()
    run_allocated_general = threading.Event()
    allocate = finance.allocate
    allocate_facility = finance._allocate_facility

    def paused_allocate(facility: Any, *arguments: Any) -> Any:
        if threading.current_thread().name == "refund" and facility.id == "vehicles":
            refund_measured.set()
            wait_for(run_allocated_general)
        return allocate(facility, *arguments)

    def paused_allocate_facility(
        engine: Engine, facility: Any, *arguments: Any
    ) -> None:
        name = threading.current_thread().name
        if name == "run" and facility.id == "general":
            wait_for(refund_measured)
        allocate_facility(engine, facility, *arguments)
        if name == "run" and facility.id == "general":
            run_allocated_general.set()

    def run_phase(phase: str) -> None:
        if phase == "accrue savings":
            run_accrued.set()

    monkeypatch.setattr(finance, "allocate", paused_allocate)
    monkeypatch.setattr(finance, "_allocate_facility", paused_allocate_facility)
    reports: list[Any] = []

    def refund() -> None:
        wait_for(run_accrued)
        reports.append(finance.refund_purchases(engine, ["p00001"], "returned", AS_OF))

    def run() -> None:
        finance.process_green_loans(
            engine,
            [make_loan(2, category="new_energy_vehicle")],
            both,
            campaigns,
            AS_OF,
            on_phase=run_phase,
        )

    errors = run_threads({"refund": refund, "run": run})

    assert errors == []
    assert len(reports) == 1
    columns = finance.finance_allocations.c
    with engine.connect() as connection:
        holders = connection.execute(
            select(columns.facility_id).where(
                columns.purchase_id == "p00002", columns.released_on.is_(None)
            )
        ).all()
    assert holders == [("general",)]
    assert finance.reconcile_facility(engine, "general").balanced
    assert finance.reconcile_facility(engine, "vehicles").balanced
