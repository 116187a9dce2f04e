"""The main job under concurrent runs and kills, on SQLite and PostgreSQL.

Each run is a `greenloop run` process or a child that kills itself, so the
runs share the store only through the database, as separate jobs would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pytest
from demo_runs import demo_config, run_command
from sqlalchemy import create_engine, text

from greenloop.pipeline.demo import DemoSample
from greenloop.pipeline.job import run_job
from greenloop.store.base import make_engine
from greenloop.store.ledger import LedgerStore
from greenloop.store.runs import mark_interrupted_runs

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

KILL_CHILD = Path(__file__).with_name("finance_kill_child.py")
# Small ledger batches make each run's ledger step commit many times, so the
# steps of two runs started together overlap.
LEDGER_BATCH = "5"
RUN_TIMEOUT_SECONDS = 120

# The finance tables in a form that compares across stores: every column that
# does not record when a row was written.
FINANCE_QUERIES = {
    "loans": "SELECT purchase_id, principal_fen, consumer_fee_waived, status "
    "FROM finance_loans ORDER BY 1",
    "awards": "SELECT campaign_id, purchase_id, user_key, benefit_kind, amount_fen, "
    "facility_id, savings_fen, savings_balance_after_fen, day, status "
    "FROM finance_awards ORDER BY 1, 2",
    "allocations": "SELECT facility_id, purchase_id, allocated_fen, outstanding_fen, "
    "allocated_on, measured_on, released_on FROM finance_allocations ORDER BY 1, 2",
    "campaigns": "SELECT campaign_id, total_fen, spent_fen FROM finance_campaigns "
    "ORDER BY 1",
    "campaign_users": "SELECT campaign_id, user_key, spent_fen, awards "
    "FROM finance_campaign_users ORDER BY 1, 2",
    "campaign_days": "SELECT campaign_id, day, spent_fen FROM finance_campaign_days "
    "ORDER BY 1, 2",
    "facilities": "SELECT facility_id, drawn_fen, unallocated_fen, accrued_fen, "
    "savings_spent_fen, accrued_through, allocated_as_of FROM finance_facilities "
    "ORDER BY 1",
    "savings_days": "SELECT facility_id, day, drawn_fen, savings_fen "
    "FROM finance_savings_days ORDER BY 1, 2",
}


def _start(command: list[str], ledger_batch: str = LEDGER_BATCH) -> subprocess.Popen:
    environment = {**os.environ, "GREENLOOP_LEDGER_BATCH": ledger_batch}
    return subprocess.Popen(
        command,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    _, errors = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
    return process.returncode, errors


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query)).all()]
    finally:
        engine.dispose()


def _count(url: str, table: str) -> int:
    """Return the table's row count, or 0 while the table does not exist."""
    try:
        return int(_rows(url, f"SELECT count(*) FROM {table}")[0][0])
    except Exception:
        return 0


def _finance_tables(url: str) -> dict[str, list[tuple[str, ...]]]:
    """Return the finance tables as text, so SQLite and PostgreSQL rows compare."""
    return {
        name: [tuple(str(value) for value in row) for row in _rows(url, query)]
        for name, query in FINANCE_QUERIES.items()
    }


def _receipt_ids(runs_folder: Path) -> set[str]:
    """Return the purchase ids of every receipt the runs in `runs_folder` wrote."""
    return {path.stem for path in runs_folder.glob("*/receipts/*.json")}


def _check_ledger(url: str, keys: Path, purchase_ids: set[str]) -> None:
    """Check that the log and the assets contain each purchase id exactly once."""
    entries = _rows(url, "SELECT purchase_id FROM ledger_entry")
    assert len(entries) == len(purchase_ids)
    assert {row[0] for row in entries} == purchase_ids
    assets = _rows(url, "SELECT purchase_id, ledger_index FROM green_assets")
    assert len(assets) == len(purchase_ids)
    assert {row[0] for row in assets} == purchase_ids
    unmatched = _rows(
        url,
        "SELECT count(*) FROM green_assets a LEFT JOIN ledger_entry e "
        "ON e.purchase_id = a.purchase_id AND e.entry_index = a.ledger_index "
        "WHERE e.purchase_id IS NULL",
    )
    assert unmatched == [(0,)]
    engine = make_engine(url)
    log = LedgerStore(engine, key_dir=keys)
    assert log.size == len(purchase_ids)
    report = log.audit()
    engine.dispose()
    assert report.ok, report.findings


def _check_finance(url: str) -> None:
    """Check that nothing was awarded or allocated twice and no budget exceeded."""
    awards = _rows(
        url,
        "SELECT count(*), count(DISTINCT campaign_id || '/' || purchase_id) "
        "FROM finance_awards",
    )
    assert awards[0][0] > 0
    assert awards[0][0] == awards[0][1]

    active = _rows(
        url,
        "SELECT count(*), count(DISTINCT purchase_id) FROM finance_allocations "
        "WHERE released_on IS NULL",
    )
    assert active[0][0] > 0
    assert active[0][0] == active[0][1]

    over_budget = _rows(
        url, "SELECT campaign_id FROM finance_campaigns WHERE spent_fen > total_fen"
    )
    assert over_budget == []

    # Each counter equals the sum of the awards it was charged for.
    unpaid = _rows(
        url,
        "SELECT c.campaign_id, c.spent_fen, coalesce(sum(a.amount_fen), 0) "
        "FROM finance_campaigns c LEFT JOIN finance_awards a "
        "ON a.campaign_id = c.campaign_id AND a.status IN ('awarded', 'won') "
        "GROUP BY c.campaign_id, c.spent_fen "
        "HAVING c.spent_fen <> coalesce(sum(a.amount_fen), 0)",
    )
    assert unpaid == []

    users = _rows(
        url,
        "SELECT u.campaign_id, u.user_key FROM finance_campaign_users u "
        "LEFT JOIN finance_awards a ON a.campaign_id = u.campaign_id "
        "AND a.user_key = u.user_key AND a.status IN ('awarded', 'won') "
        "GROUP BY u.campaign_id, u.user_key, u.spent_fen, u.awards "
        "HAVING u.spent_fen <> coalesce(sum(a.amount_fen), 0) "
        "OR u.awards <> count(a.purchase_id)",
    )
    assert users == []

    savings = _rows(
        url,
        "SELECT f.facility_id FROM finance_facilities f "
        "WHERE f.savings_spent_fen <> (SELECT coalesce(sum(a.savings_fen), 0) "
        "FROM finance_awards a WHERE a.facility_id = f.facility_id "
        "AND a.status IN ('awarded', 'won')) OR f.savings_spent_fen > f.accrued_fen",
    )
    assert savings == []
    _check_caps(url)


def _check_caps(url: str) -> None:
    """Check each user's and each day's spending against the campaign's limits."""
    budgets = {
        campaign_id: json.loads(config)["budget"]
        if isinstance(config, str)
        else config["budget"]
        for campaign_id, config in _rows(
            url, "SELECT campaign_id, config FROM finance_campaigns"
        )
    }
    for campaign_id, user_key, spent_fen, awards in _rows(
        url,
        "SELECT campaign_id, user_key, spent_fen, awards FROM finance_campaign_users",
    ):
        budget = budgets[campaign_id]
        if budget["per_user_yuan"] is not None:
            limit_fen = int(Decimal(budget["per_user_yuan"]) * 100)
            assert spent_fen <= limit_fen, (campaign_id, user_key)
        if budget["per_user_awards"] is not None:
            assert awards <= budget["per_user_awards"], (campaign_id, user_key)

    for campaign_id, day, spent_fen in _rows(
        url, "SELECT campaign_id, day, spent_fen FROM finance_campaign_days"
    ):
        budget = budgets[campaign_id]
        if budget["per_day_yuan"] is not None:
            limit_fen = int(Decimal(budget["per_day_yuan"]) * 100)
            assert spent_fen <= limit_fen, (campaign_id, day)


def _statuses(url: str) -> list[str]:
    return sorted(row[0] for row in _rows(url, "SELECT status FROM runs"))


def _overlapping_input(sample: DemoSample, folder: Path) -> Path:
    """Write every other row of the sample, and a third of it under new ids.

    The rows under new ids keep their products, so they are green where the
    originals are. Their returns point at the renamed purchases.
    """
    table = pa_csv.read_csv(
        sample.purchases,
        convert_options=pa_csv.ConvertOptions(
            column_types={
                name: pa.string() for name in _column_names(sample.purchases)
            },
            strings_can_be_null=False,
        ),
    )
    positions = range(table.num_rows)
    shared = table.take([index for index in positions if index % 2 == 0])
    renamed = table.take([index for index in positions if index % 3 == 0])
    for column in ("purchase_id", "returns_purchase_id"):
        values = pc.replace_substring_regex(renamed[column], "^P", "Q")
        renamed = renamed.set_column(renamed.column_names.index(column), column, values)
    path = folder / "overlapping.csv"
    pa_csv.write_csv(pa.concat_tables([shared, renamed]), path)
    return path


def _column_names(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as file:
        return [name.strip('"') for name in file.readline().strip().split(",")]


@pytest.mark.parametrize("delay_seconds", [0.0, 0.05])
def test_two_runs_of_one_input(
    demo_sample, tmp_path, user_secret_dir, database_url, delay_seconds
):
    runs_folder = tmp_path / "runs"
    command = run_command(
        demo_sample.purchases, demo_sample, runs_folder, user_secret_dir, database_url
    )
    first = _start(command)
    time.sleep(delay_seconds)
    second = _start(command)
    first_code, first_errors = _finish(first)
    second_code, second_errors = _finish(second)

    assert first_code == 0, first_errors
    assert second_code == 0, second_errors
    manifests = [
        json.loads(path.read_text("utf-8"))
        for path in runs_folder.glob("*/manifest.json")
    ]
    assert len(manifests) == 2
    found = {
        manifest["counts"]["green_assets"]["assets_found"] for manifest in manifests
    }
    receipts = _receipt_ids(runs_folder)
    assert found == {len(receipts)}
    new = sum(
        manifest["counts"]["green_assets"]["assets_new"] for manifest in manifests
    )
    assert new == len(receipts)
    _check_ledger(database_url, user_secret_dir, receipts)
    _check_finance(database_url)
    assert _statuses(database_url) == ["succeeded", "succeeded"]


def test_two_runs_sharing_purchase_ids(
    demo_sample, tmp_path, user_secret_dir, database_url
):
    other_input = _overlapping_input(demo_sample, tmp_path)
    first_runs, second_runs = tmp_path / "first-runs", tmp_path / "second-runs"
    first = _start(
        run_command(
            demo_sample.purchases,
            demo_sample,
            first_runs,
            user_secret_dir,
            database_url,
        )
    )
    second = _start(
        run_command(
            other_input, demo_sample, second_runs, user_secret_dir, database_url
        )
    )
    first_code, first_errors = _finish(first)
    second_code, second_errors = _finish(second)

    assert first_code == 0, first_errors
    assert second_code == 0, second_errors
    first_ids, second_ids = _receipt_ids(first_runs), _receipt_ids(second_runs)
    assert first_ids & second_ids
    assert second_ids - first_ids
    _check_ledger(database_url, user_secret_dir, first_ids | second_ids)
    _check_finance(database_url)
    assert _statuses(database_url) == ["succeeded", "succeeded"]


# Where the child kills itself: after the N-th call of a finance function
# returns. A function that runs inside a transaction of its caller is killed
# before that transaction commits.
FINANCE_KILL_POINTS = [
    ("_record_loans", 1),
    ("_accrue_facility", 1),
    ("_award_chunk_once", 2),
    ("_award_chunk", 3),
    ("_allocate_facility", 1),
    ("_reallocate", 2),
]


@pytest.mark.parametrize(("function", "call"), FINANCE_KILL_POINTS)
def test_run_killed_in_finance_resumes(
    demo_sample, tmp_path, user_secret_dir, database_url, function, call
):
    clean_url = f"sqlite:///{tmp_path / 'clean.sqlite3'}"
    run_job(demo_config(demo_sample, tmp_path / "clean", user_secret_dir, clean_url))

    config = demo_config(demo_sample, tmp_path, user_secret_dir, database_url)
    fields = {
        "input_path": str(config.input_path),
        "out_dir": str(config.out_dir),
        "database_url": database_url,
        "key_dir": str(config.key_dir),
        "registry_dir": str(config.registry_dir),
        "as_of": str(config.as_of),
    }
    killed = subprocess.run(
        [sys.executable, str(KILL_CHILD), json.dumps(fields), function, str(call)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _count(database_url, "finance_loans") > 0

    run_job(config)

    assert _finance_tables(database_url) == _finance_tables(clean_url)
    _check_finance(database_url)
    assert _statuses(database_url) == ["interrupted", "succeeded"]


@pytest.mark.parametrize("gap_seconds", [0.0, 0.5])
def test_run_killed_in_ledger_as_another_starts(
    demo_sample, tmp_path, user_secret_dir, database_url, gap_seconds
):
    clean_url = f"sqlite:///{tmp_path / 'clean.sqlite3'}"
    clean_keys = tmp_path / "clean-keys"
    shutil.copytree(user_secret_dir, clean_keys)
    clean_runs = tmp_path / "clean-runs"
    clean = _start(
        run_command(
            demo_sample.purchases, demo_sample, clean_runs, clean_keys, clean_url
        )
    )
    clean_code, clean_errors = _finish(clean)
    assert clean_code == 0, clean_errors

    runs_folder = tmp_path / "runs"
    command = run_command(
        demo_sample.purchases, demo_sample, runs_folder, user_secret_dir, database_url
    )
    # Batches of one entry keep the first run in its ledger step for seconds,
    # so the kill arrives there. The second run starts `gap_seconds` before it.
    first = _start(command, ledger_batch="1")
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while _count(database_url, "ledger_entry") == 0 and time.monotonic() < deadline:
        assert first.poll() is None, "the first run ended before its ledger step"
        time.sleep(0.02)
    second = _start(command)
    time.sleep(gap_seconds)
    first.send_signal(signal.SIGKILL)
    first_code, _ = _finish(first)
    second_code, second_errors = _finish(second)

    assert first_code == -signal.SIGKILL
    assert second_code == 0, second_errors
    _check_ledger(database_url, user_secret_dir, _receipt_ids(clean_runs))
    # Both runs appended in purchase-id order, so the log is the clean run's.
    clean_root = _rows(clean_url, "SELECT root FROM ledger_log")
    assert _rows(database_url, "SELECT root FROM ledger_log") == clean_root
    assert _finance_tables(database_url) == _finance_tables(clean_url)
    engine = make_engine(database_url)
    mark_interrupted_runs(engine)
    engine.dispose()
    assert _statuses(database_url) == ["interrupted", "succeeded"]
