"""Parallel finance runs on one SQLite file allocate and award each loan once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from finance_helpers import campaign_dict, facility_dict, make_loan, write_yaml
from sqlalchemy import func, select

from greenloop.store import finance
from greenloop.store.base import make_engine
from greenloop.store.schema import upgrade

AS_OF = date(2026, 6, 30)


def _run_in_parallel(url: str, folder: Path) -> None:
    """Run four finance batches of the same loans at once on a new store; check it."""
    engine = make_engine(url)
    upgrade(engine)
    facilities = write_yaml(
        folder / "facilities.yaml",
        {"facilities": [facility_dict(facility_rate="0.005")]},
    )
    campaigns = write_yaml(
        folder / "campaigns.yaml",
        {"campaigns": [campaign_dict(budget={"total_yuan": "50"})]},
    )
    finance.process_green_loans(engine, [], facilities, campaigns, AS_OF)
    loans = [make_loan(index, principal_fen=400_000) for index in range(40)]

    def run_batch(_: int) -> None:
        finance.process_green_loans(engine, loans, facilities, campaigns, AS_OF)

    # Each thread has a connection of its own, as separate processes would.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(run_batch, range(4)))

    with engine.connect() as connection:
        allocated = connection.execute(
            select(func.count(func.distinct(finance.finance_allocations.c.purchase_id)))
        ).scalar_one()
        awards = connection.execute(
            select(func.count()).select_from(finance.finance_awards)
        ).scalar_one()
    assert allocated > 0
    assert awards == 5
    assert finance.reconcile_facility(engine, "test-facility").balanced
    engine.dispose()


def test_parallel_sqlite_runs_allocate_once(tmp_path: Path) -> None:
    # The race does not show every time, so three new stores are tried.
    for attempt in range(3):
        folder = tmp_path / f"attempt-{attempt}"
        folder.mkdir()
        _run_in_parallel(f"sqlite:///{folder / 'store.sqlite3'}", folder)
