"""The heartbeat thread: it beats, stops cleanly and outlasts a locked database."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from run_rows import run_row
from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine

from greenloop.store import schema
from greenloop.store.base import make_engine
from greenloop.store.heartbeat import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    THREAD_NAME_PREFIX,
    RunHeartbeat,
)
from greenloop.store.runs import record_run_end, record_run_start, runs

# Short enough that a test observes many beats within a second.
INTERVAL_SECONDS = 0.05
OLD_HEARTBEAT = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


def _start_run(engine: Engine, run_id: str) -> None:
    """Record a running run whose heartbeat is OLD_HEARTBEAT."""
    record_run_start(engine, run_row(run_id, datetime.now(UTC)))
    with engine.begin() as connection:
        connection.execute(
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(heartbeat_at=OLD_HEARTBEAT)
        )


def _heartbeat_at(engine: Engine, run_id: str) -> datetime:
    with engine.connect() as connection:
        moment = connection.execute(
            select(runs.c.heartbeat_at).where(runs.c.run_id == run_id)
        ).scalar_one()
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _wait_for(
    condition: Callable[[], bool], description: str, seconds: float = 10
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {description}"
        time.sleep(0.01)


def _heartbeat_threads() -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith(THREAD_NAME_PREFIX)
    ]


@pytest.mark.postgres
def test_heartbeat_beats_until_stopped(engine, heartbeat_connections):
    _start_run(engine, "run-beating")
    heartbeat = RunHeartbeat(engine.url, "run-beating", INTERVAL_SECONDS)
    with heartbeat:
        _wait_for(
            lambda: _heartbeat_at(engine, "run-beating") > OLD_HEARTBEAT,
            "a heartbeat",
        )
        threads_while_beating = len(_heartbeat_threads())
    after_stop = _heartbeat_at(engine, "run-beating")
    time.sleep(5 * INTERVAL_SECONDS)
    assert threads_while_beating == 1
    assert _heartbeat_threads() == []
    assert _heartbeat_at(engine, "run-beating") == after_stop
    # One connection served every beat, and it was closed at the stop.
    assert heartbeat_connections["opened"] == 1
    assert heartbeat_connections["closed"] == 1


@pytest.mark.postgres
def test_heartbeat_closes_postgresql_session(postgres_url):
    engine = make_engine(postgres_url)
    schema.upgrade(engine)
    _start_run(engine, "run-session")

    def sessions() -> int:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": f"{THREAD_NAME_PREFIX} run-session"},
                ).scalar_one()
            )

    with RunHeartbeat(engine.url, "run-session", INTERVAL_SECONDS):
        _wait_for(
            lambda: _heartbeat_at(engine, "run-session") > OLD_HEARTBEAT,
            "a heartbeat",
        )
        while_beating = sessions()
    # The server drops a session shortly after its client closes it.
    _wait_for(lambda: sessions() == 0, "the heartbeat session to close")
    engine.dispose()
    assert while_beating == 1


def test_heartbeat_survives_locked_sqlite(sqlite_url, heartbeat_connections, caplog):
    caplog.set_level(logging.DEBUG, logger="greenloop.store.heartbeat")
    engine = make_engine(sqlite_url)
    schema.upgrade(engine)
    _start_run(engine, "run-locked")
    database = engine.url.database
    assert database is not None

    # A writer that holds SQLite's write lock, as the ledger step does.
    writer = sqlite3.connect(database, isolation_level=None)
    heartbeat = RunHeartbeat(engine.url, "run-locked", INTERVAL_SECONDS)
    try:
        writer.execute("BEGIN IMMEDIATE")
        heartbeat.start()
        _wait_for(
            lambda: sum("database is locked" in r.message for r in caplog.records) >= 2,
            "two beats that found the database locked",
        )
        alive_while_locked = [thread.is_alive() for thread in _heartbeat_threads()]

        writer.execute("COMMIT")
        _wait_for(
            lambda: _heartbeat_at(engine, "run-locked") > OLD_HEARTBEAT,
            "a heartbeat after the lock was released",
        )

        # A stop while the lock is held waits for one beat at most.
        writer.execute("BEGIN IMMEDIATE")
        time.sleep(2 * INTERVAL_SECONDS)
        stop_started = time.monotonic()
        heartbeat.stop()
        stop_seconds = time.monotonic() - stop_started
    finally:
        heartbeat.stop()
        writer.close()
        engine.dispose()

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert alive_while_locked == [True]
    assert stop_seconds < SQLITE_BUSY_TIMEOUT_SECONDS + 2
    assert _heartbeat_threads() == []
    assert warnings == []
    # The lock never cost the thread its connection.
    assert heartbeat_connections["opened"] == 1
    assert heartbeat_connections["closed"] == 1


@pytest.mark.postgres
def test_heartbeat_ends_with_the_run(engine, heartbeat_connections, caplog):
    _start_run(engine, "run-ended")
    heartbeat = RunHeartbeat(engine.url, "run-ended", INTERVAL_SECONDS)
    heartbeat.start()
    try:
        _wait_for(lambda: len(_heartbeat_threads()) == 1, "the heartbeat thread")
        record_run_end(engine, "run-ended", "succeeded", {})
        # The next beat finds the run finished, and the thread ends by itself.
        _wait_for(lambda: _heartbeat_threads() == [], "the thread to end")
    finally:
        heartbeat.stop()
    assert "no longer `running`" in caplog.text
    assert heartbeat_connections["opened"] == heartbeat_connections["closed"]


def test_heartbeat_reconnects_after_failure(
    sqlite_url, heartbeat_connections, caplog, monkeypatch
):
    from greenloop.store import heartbeat as heartbeat_module

    caplog.set_level(logging.INFO, logger="greenloop.store.heartbeat")
    engine = make_engine(sqlite_url)
    schema.upgrade(engine)
    _start_run(engine, "run-flaky")
    real_record = heartbeat_module.record_heartbeat
    failures = iter([True, True])

    def flaky_record(connection, run_id):  # type: ignore[no-untyped-def]
        if next(failures, False):
            connection.execute(text("SELECT * FROM no_such_table"))
        return real_record(connection, run_id)

    monkeypatch.setattr(heartbeat_module, "record_heartbeat", flaky_record)
    with RunHeartbeat(engine.url, "run-flaky", INTERVAL_SECONDS):
        _wait_for(
            lambda: _heartbeat_at(engine, "run-flaky") > OLD_HEARTBEAT,
            "a heartbeat after two failed beats",
        )
    engine.dispose()
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no_such_table" in warnings[0]
    assert "recorded again after 2 failed beats" in caplog.text
    # Each failed beat closed its connection, and the next one opened another.
    assert heartbeat_connections["opened"] == 3
    assert heartbeat_connections["closed"] == 3


def test_memory_database_gets_no_thread():
    heartbeat = RunHeartbeat("sqlite://", "run-in-memory", INTERVAL_SECONDS)
    with heartbeat:
        threads = _heartbeat_threads()
    assert threads == []


@pytest.mark.parametrize("interval", [0, -1.0])
def test_non_positive_interval_rejected(interval):
    with pytest.raises(ValueError, match="not positive"):
        RunHeartbeat("sqlite:///store.sqlite3", "run-x", interval)
