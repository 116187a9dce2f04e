"""The run's heartbeat: it beats while the job runs and stops with the run."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from demo_runs import demo_config
from sqlalchemy import select, update

from greenloop.pipeline import job
from greenloop.pipeline.job import run_job
from greenloop.store import runs as run_store
from greenloop.store.base import make_engine
from greenloop.store.heartbeat import THREAD_NAME_PREFIX
from greenloop.store.runs import runs

OLD_HEARTBEAT = datetime(2000, 1, 1, tzinfo=UTC)


def _heartbeat_threads() -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith(THREAD_NAME_PREFIX)
    ]


def _run_row(url: str) -> Any:
    engine = make_engine(url)
    with engine.connect() as connection:
        row = connection.execute(select(runs)).mappings().one()
    engine.dispose()
    return row


@pytest.fixture
def fast_heartbeat(monkeypatch: pytest.MonkeyPatch) -> float:
    """Make runs beat every 20 ms; return the interval in seconds."""
    interval = 0.02
    monkeypatch.setattr(run_store, "HEARTBEAT_INTERVAL_SECONDS", interval)
    return interval


@pytest.mark.postgres
def test_job_beats_while_steps_run(
    demo_sample,
    tmp_path,
    user_secret_dir,
    database_url,
    fast_heartbeat,
    heartbeat_connections,
    monkeypatch,
):
    beats_seen: list[datetime] = []

    def steps_until_a_beat(run: Any) -> dict[str, Any]:
        # The start recorded a heartbeat, so age it and wait for the next one.
        with run.engine.begin() as connection:
            connection.execute(
                update(runs)
                .where(runs.c.run_id == run.run_id)
                .values(heartbeat_at=OLD_HEARTBEAT)
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with run.engine.connect() as connection:
                moment = connection.execute(
                    select(runs.c.heartbeat_at).where(runs.c.run_id == run.run_id)
                ).scalar_one()
            if run_store.as_utc(moment) > OLD_HEARTBEAT:
                beats_seen.append(run_store.as_utc(moment))
                break
            time.sleep(fast_heartbeat)
        return {"status": "succeeded"}

    monkeypatch.setattr(job, "_run_steps", steps_until_a_beat)
    run_job(demo_config(demo_sample, tmp_path, user_secret_dir, database_url))
    row = _run_row(database_url)
    assert len(beats_seen) == 1
    assert row["status"] == "succeeded"
    assert _heartbeat_threads() == []
    assert heartbeat_connections["opened"] == 1
    assert heartbeat_connections["closed"] == 1


@pytest.mark.parametrize(
    ("error", "status"),
    [(RuntimeError("step failed"), "failed"), (KeyboardInterrupt(), "interrupted")],
    ids=["exception", "keyboard-interrupt"],
)
def test_heartbeat_stops_when_run_fails(
    demo_sample,
    tmp_path,
    user_secret_dir,
    sqlite_url,
    fast_heartbeat,
    heartbeat_connections,
    monkeypatch,
    error,
    status,
):
    def failing_steps(run: Any) -> dict[str, Any]:
        # Let the thread open its connection before the run fails.
        deadline = time.monotonic() + 10
        while heartbeat_connections["opened"] == 0:
            assert time.monotonic() < deadline, "the heartbeat never connected"
            time.sleep(fast_heartbeat)
        raise error

    monkeypatch.setattr(job, "_run_steps", failing_steps)
    with pytest.raises(type(error)):
        run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url))
    assert _run_row(sqlite_url)["status"] == status
    assert _heartbeat_threads() == []
    assert heartbeat_connections["opened"] == 1
    assert heartbeat_connections["closed"] == 1


def test_fast_heartbeat_leaves_run_intact(
    demo_sample, tmp_path, user_secret_dir, sqlite_url, fast_heartbeat
):
    # Beats every 20 ms run beside the ledger step's write transactions.
    result = run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url))
    row = _run_row(sqlite_url)
    assert row["status"] == "succeeded"
    assert result.counts["green_assets"]["assets_new"] > 0
    assert row["heartbeat_at"] is not None
    assert _heartbeat_threads() == []
