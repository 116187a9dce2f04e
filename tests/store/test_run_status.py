"""Runs whose process ended or whose heartbeat is stale are marked interrupted.

Live runs stay running.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from run_rows import run_row
from sqlalchemy import inspect, select, text, update
from sqlalchemy.engine import Engine

from greenloop.store import schema
from greenloop.store.base import make_engine
from greenloop.store.processes import (
    ProcessIdentity,
    ProcessState,
    current_process,
    process_state,
)
from greenloop.store.runs import (
    HEARTBEAT_STALE,
    PROCESS_ENDED,
    STALE_HEARTBEAT_SECONDS,
    database_time,
    mark_interrupted_runs,
    record_run_end,
    record_run_start,
    runs,
)

pytestmark = pytest.mark.skipif(
    current_process().scope is None, reason="needs Linux /proc to identify processes"
)

_TEN_YEARS = 10 * 365 * 24 * 3600.0


def _start_sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _identity(process_id: int) -> ProcessIdentity:
    """Return the identity of a process of this host, read as the store reads it."""
    from greenloop.store.processes import _stat

    stat = _stat(process_id)
    assert stat is not None, f"process {process_id} has no /proc entry"
    this_process = current_process()
    return ProcessIdentity(
        this_process.host_name, process_id, this_process.scope, stat[1]
    )


def _ended_process() -> ProcessIdentity:
    """Return this process's identity with another start time, as after pid reuse."""
    this_process = current_process()
    assert this_process.start_ticks is not None
    return dataclasses.replace(this_process, start_ticks=this_process.start_ticks - 1)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """Yield a child process that sleeps until the test ends it."""
    process = _start_sleeper()
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


def _start(engine: Engine, run_id: str, process: ProcessIdentity) -> None:
    started_at = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    record_run_start(engine, run_row(run_id, started_at), process)


def _status(engine: Engine, run_id: str) -> tuple[str, datetime | None]:
    with engine.connect() as connection:
        row = connection.execute(
            select(runs.c.status, runs.c.interruption_noticed_at).where(
                runs.c.run_id == run_id
            )
        ).one()
    return row.status, row.interruption_noticed_at


def _reason(engine: Engine, run_id: str) -> str | None:
    with engine.connect() as connection:
        return connection.execute(
            select(runs.c.interruption_reason).where(runs.c.run_id == run_id)
        ).scalar_one()


def _age_heartbeat(engine: Engine, run_id: str, age: timedelta | None) -> None:
    """Set a run's heartbeat to `age` before the database's time, or to NULL."""
    with engine.begin() as connection:
        heartbeat_at = None if age is None else database_time(connection) - age
        connection.execute(
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(heartbeat_at=heartbeat_at)
        )


def _elsewhere() -> ProcessIdentity:
    """Return a process of another host, which this one cannot check."""
    return dataclasses.replace(current_process(), host_name="another-host")


def test_own_process_is_running():
    assert process_state(current_process()) == ProcessState.RUNNING


def test_live_child_is_running(sleeper):
    assert process_state(_identity(sleeper.pid)) == ProcessState.RUNNING


def test_reaped_child_has_ended(sleeper):
    recorded = _identity(sleeper.pid)
    sleeper.kill()
    sleeper.wait()
    assert process_state(recorded) == ProcessState.ENDED


def test_zombie_child_has_ended(sleeper):
    recorded = _identity(sleeper.pid)
    sleeper.kill()
    # Not reaped yet, so the process id still exists, as a zombie.
    deadline = time.monotonic() + 10
    while process_state(recorded) != ProcessState.ENDED:
        assert time.monotonic() < deadline, "the killed child never became a zombie"
        time.sleep(0.01)
    assert sleeper.poll() is not None


def test_reused_process_id_has_ended():
    assert process_state(_ended_process()) == ProcessState.ENDED


@pytest.mark.parametrize(
    "change",
    [
        {"host_name": "another-host"},
        {"scope": "another-boot pid:[1]"},
        {"scope": None},
        {"start_ticks": None},
        {"process_id": 0},
    ],
    ids=["host", "scope", "no-scope", "no-start", "no-pid"],
)
def test_unverifiable_process_is_unknown(change):
    recorded = dataclasses.replace(current_process(), **change)
    assert process_state(recorded) == ProcessState.UNKNOWN


def test_proc_of_other_namespace_unknown(tmp_path, monkeypatch):
    # A container that shares the host's /proc: /proc/self names the process
    # by its host pid, so /proc/<os.getpid()> would be another process.
    from greenloop.store import processes

    recorded = _identity(os.getpid())
    fake = tmp_path / "proc"
    (fake / "sys" / "kernel" / "random").mkdir(parents=True)
    (fake / "sys" / "kernel" / "random" / "boot_id").write_text("boot\n", "ascii")
    host_pid = str(os.getpid() + 100_000)
    (fake / host_pid / "ns").mkdir(parents=True)
    (fake / host_pid / "ns" / "pid").symlink_to("pid:[4026531836]")
    (fake / "self").symlink_to(host_pid)
    monkeypatch.setattr(processes, "PROC", fake)
    monkeypatch.setattr(processes, "BOOT_ID", fake / "sys/kernel/random/boot_id")
    observer = current_process()
    assert observer.scope is None
    assert observer.start_ticks is None
    assert process_state(recorded, observer) == ProcessState.UNKNOWN


def test_proc_of_own_namespace_has_scope():
    identity = current_process()
    assert identity.scope is not None
    assert identity.start_ticks is not None


@pytest.mark.postgres
def test_ended_run_marked_interrupted(engine, sleeper):
    _start(engine, "run-killed", _identity(sleeper.pid))
    sleeper.kill()
    sleeper.wait()
    before = datetime.now(UTC)
    assert mark_interrupted_runs(engine) == ["run-killed"]
    status, noticed = _status(engine, "run-killed")
    assert status == "interrupted"
    assert noticed is not None
    assert noticed.replace(tzinfo=UTC) >= before.replace(microsecond=0)
    assert _reason(engine, "run-killed") == PROCESS_ENDED


@pytest.mark.postgres
def test_live_run_stays_running(engine, sleeper):
    _start(engine, "run-live", _identity(sleeper.pid))
    _start(engine, "run-here", current_process())
    assert mark_interrupted_runs(engine) == []
    assert _status(engine, "run-live") == ("running", None)
    assert _status(engine, "run-here") == ("running", None)


@pytest.mark.postgres
def test_run_of_another_host_stays_running(engine, sleeper):
    elsewhere = dataclasses.replace(_identity(sleeper.pid), host_name="another-host")
    _start(engine, "run-elsewhere", elsewhere)
    sleeper.kill()
    sleeper.wait()
    assert mark_interrupted_runs(engine) == []
    assert _status(engine, "run-elsewhere") == ("running", None)


@pytest.mark.postgres
def test_stale_run_of_another_host_marked(engine):
    _start(engine, "run-elsewhere", _elsewhere())
    _age_heartbeat(engine, "run-elsewhere", timedelta(minutes=11))
    assert mark_interrupted_runs(engine) == ["run-elsewhere"]
    status, noticed = _status(engine, "run-elsewhere")
    assert status == "interrupted"
    assert noticed is not None
    assert _reason(engine, "run-elsewhere") == HEARTBEAT_STALE


@pytest.mark.postgres
def test_run_end_clears_wrong_mark(engine):
    _start(engine, "run-slow", _elsewhere())
    _age_heartbeat(engine, "run-slow", timedelta(minutes=11))
    assert mark_interrupted_runs(engine) == ["run-slow"]
    record_run_end(engine, "run-slow", "succeeded", {"run_id": "run-slow"})
    assert _status(engine, "run-slow") == ("succeeded", None)
    assert _reason(engine, "run-slow") is None


@pytest.mark.postgres
def test_fresh_run_of_another_host_stays(engine):
    _start(engine, "run-new", _elsewhere())
    _start(engine, "run-beating", _elsewhere())
    _age_heartbeat(engine, "run-beating", timedelta(minutes=9))
    assert mark_interrupted_runs(engine) == []
    assert _status(engine, "run-new") == ("running", None)
    assert _status(engine, "run-beating") == ("running", None)
    assert _reason(engine, "run-beating") is None


@pytest.mark.parametrize(
    ("stale_after_seconds", "expected"),
    [(59.0, ["run-elsewhere"]), (61.0, [])],
    ids=["older-than-limit", "within-limit"],
)
@pytest.mark.postgres
def test_stale_limit_is_configurable(engine, stale_after_seconds, expected):
    _start(engine, "run-elsewhere", _elsewhere())
    _age_heartbeat(engine, "run-elsewhere", timedelta(seconds=60))
    marked = mark_interrupted_runs(engine, stale_after_seconds=stale_after_seconds)
    assert marked == expected


@pytest.mark.postgres
def test_live_local_run_ignores_old_heartbeat(engine, sleeper):
    _start(engine, "run-live", _identity(sleeper.pid))
    _start(engine, "run-here", current_process())
    for run_id in ("run-live", "run-here"):
        _age_heartbeat(engine, run_id, timedelta(days=3))
    assert mark_interrupted_runs(engine, stale_after_seconds=1) == []
    assert _status(engine, "run-live") == ("running", None)
    assert _status(engine, "run-here") == ("running", None)


@pytest.mark.postgres
def test_unreadable_local_process_uses_heartbeat(engine):
    # A start time that could not be read leaves the process unverifiable.
    unverifiable = dataclasses.replace(current_process(), start_ticks=None)
    _start(engine, "run-unverifiable", unverifiable)
    _start(engine, "run-unverifiable-fresh", unverifiable)
    _age_heartbeat(engine, "run-unverifiable", timedelta(hours=1))
    assert mark_interrupted_runs(engine) == ["run-unverifiable"]
    assert _reason(engine, "run-unverifiable") == HEARTBEAT_STALE
    assert _status(engine, "run-unverifiable-fresh") == ("running", None)


@pytest.mark.postgres
def test_observer_without_proc_uses_heartbeats(engine):
    # Off Linux the observer has no scope, so no process can be seen running.
    observer = dataclasses.replace(current_process(), scope=None)
    _start(engine, "run-here", current_process())
    _age_heartbeat(engine, "run-here", timedelta(hours=1))
    assert mark_interrupted_runs(engine, observer) == ["run-here"]
    assert _reason(engine, "run-here") == HEARTBEAT_STALE


@pytest.mark.postgres
def test_run_without_heartbeat_counts_from_start(engine):
    now = _database_now(engine)
    for run_id, started_at in (
        ("run-old", now - timedelta(hours=2)),
        ("run-recent", now - timedelta(minutes=1)),
    ):
        record_run_start(engine, run_row(run_id, started_at), _elsewhere())
        _age_heartbeat(engine, run_id, None)
    assert mark_interrupted_runs(engine) == ["run-old"]
    assert _reason(engine, "run-old") == HEARTBEAT_STALE
    assert _status(engine, "run-recent") == ("running", None)


@pytest.mark.postgres
def test_heartbeat_after_reading_keeps_run(engine):
    from greenloop.store.runs import _mark_interrupted

    # The run was read as stale, then beat before the update.
    _start(engine, "run-elsewhere", _elsewhere())
    stale_before = _database_now(engine) - timedelta(seconds=STALE_HEARTBEAT_SECONDS)
    marked = _mark_interrupted(engine, ["run-elsewhere"], HEARTBEAT_STALE, stale_before)
    assert marked == []
    assert _status(engine, "run-elsewhere") == ("running", None)


def _database_now(engine: Engine) -> datetime:
    with engine.connect() as connection:
        return database_time(connection)


@pytest.mark.postgres
def test_finished_run_keeps_its_status(engine, sleeper):
    from greenloop.store.runs import record_run_end

    _start(engine, "run-done", _identity(sleeper.pid))
    record_run_end(engine, "run-done", "succeeded", {})
    sleeper.kill()
    sleeper.wait()
    assert mark_interrupted_runs(engine) == []
    assert _status(engine, "run-done")[0] == "succeeded"


def _insert_run_at_0002(connection, run_id: str, status: str) -> None:
    connection.execute(
        text(
            "INSERT INTO runs (run_id, status, input_path, input_sha256, standard, "
            "started_at) VALUES (:run_id, :status, 'purchases.csv', :digest, 'cn', "
            ":started_at)"
        ),
        {
            "run_id": run_id,
            "status": status,
            "digest": "0" * 64,
            "started_at": datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
        },
    )


@pytest.mark.postgres
def test_migration_0003_keeps_existing_runs(database_url):
    schema.upgrade(database_url, revision="0002")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        _insert_run_at_0002(connection, "run-old-running", "running")
        _insert_run_at_0002(connection, "run-old-done", "succeeded")

    schema.upgrade(engine)
    with engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("runs")}
        stored = connection.execute(
            select(runs.c.run_id, runs.c.status, runs.c.host_name).order_by(
                runs.c.run_id
            )
        ).all()
        found = schema.differences(connection)
    assert {"host_name", "process_id", "interruption_noticed_at"} <= columns
    assert stored == [
        ("run-old-done", "succeeded", None),
        ("run-old-running", "running", None),
    ]
    assert found == []
    # A row without a recorded process cannot be checked, so only its start
    # time can show that it stopped.
    assert mark_interrupted_runs(engine, stale_after_seconds=_TEN_YEARS) == []

    with engine.begin() as connection:
        config = schema.alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    with engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("runs")}
        rows_left = connection.execute(text("SELECT count(*) FROM runs")).scalar_one()
    engine.dispose()
    assert "host_name" not in columns
    assert rows_left == 2


def _insert_run_at_0003(
    connection, run_id: str, status: str, started_at: datetime
) -> None:
    noticed = started_at + timedelta(hours=1) if status == "interrupted" else None
    connection.execute(
        text(
            "INSERT INTO runs (run_id, status, input_path, input_sha256, standard, "
            "started_at, host_name, process_id, process_scope, process_start_ticks, "
            "interruption_noticed_at) VALUES (:run_id, :status, 'purchases.csv', "
            ":digest, 'cn', :started_at, 'another-host', 4242, 'boot pid:[1]', 7, "
            ":noticed)"
        ),
        {
            "run_id": run_id,
            "status": status,
            "digest": "0" * 64,
            "started_at": started_at,
            "noticed": noticed,
        },
    )


@pytest.mark.postgres
def test_migration_0004_keeps_existing_runs(database_url):
    schema.upgrade(database_url, revision="0003")
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        _insert_run_at_0003(
            connection, "run-old-stale", "running", now - timedelta(days=1)
        )
        _insert_run_at_0003(
            connection, "run-old-recent", "running", now - timedelta(minutes=1)
        )
        _insert_run_at_0003(
            connection, "run-old-killed", "interrupted", now - timedelta(days=2)
        )

    schema.upgrade(engine)
    with engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("runs")}
        stored = connection.execute(
            select(
                runs.c.run_id, runs.c.heartbeat_at, runs.c.interruption_reason
            ).order_by(runs.c.run_id)
        ).all()
        found = schema.differences(connection)
    assert {"heartbeat_at", "interruption_reason"} <= columns
    assert stored == [
        ("run-old-killed", None, PROCESS_ENDED),
        ("run-old-recent", None, None),
        ("run-old-stale", None, None),
    ]
    assert found == []
    # Without a heartbeat, a run's start time is its last sign of life.
    assert mark_interrupted_runs(engine) == ["run-old-stale"]
    assert _reason(engine, "run-old-stale") == HEARTBEAT_STALE
    assert _status(engine, "run-old-recent") == ("running", None)

    with engine.begin() as connection:
        config = schema.alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    with engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("runs")}
        statuses = dict(
            connection.execute(text("SELECT run_id, status FROM runs")).all()
        )
    engine.dispose()
    assert "heartbeat_at" not in columns
    assert "interruption_reason" not in columns
    assert statuses == {
        "run-old-stale": "interrupted",
        "run-old-recent": "running",
        "run-old-killed": "interrupted",
    }


@pytest.mark.postgres
def test_cli_shows_heartbeat_age(database_url):
    from typer.testing import CliRunner

    from greenloop.cli import app

    engine = make_engine(database_url)
    schema.upgrade(engine)
    _start(engine, "run-beating", _elsewhere())
    _age_heartbeat(engine, "run-beating", timedelta(minutes=5, seconds=10))
    _start(engine, "run-silent", _elsewhere())
    _age_heartbeat(engine, "run-silent", timedelta(hours=3))
    _start(engine, "run-unbeaten", _elsewhere())
    _age_heartbeat(engine, "run-unbeaten", None)
    with engine.begin() as connection:
        connection.execute(
            update(runs)
            .where(runs.c.run_id == "run-unbeaten")
            .values(started_at=database_time(connection))
        )
    engine.dispose()
    result = CliRunner().invoke(app, ["runs", "list", "--database", database_url])
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert result.exit_code == 0, result.output
    assert lines["run-beating"].split()[1] == "running"
    assert lines["run-beating"].endswith("heartbeat 5 min ago")
    assert lines["run-silent"].split()[1] == "interrupted"
    assert "(heartbeat stale)" in lines["run-silent"]
    assert "heartbeat 3 h ago" not in lines["run-silent"]
    assert lines["run-unbeaten"].endswith("no heartbeat")


def test_cli_lists_interrupted_run(sqlite_url):
    from typer.testing import CliRunner

    from greenloop.cli import app

    engine = make_engine(sqlite_url)
    schema.upgrade(engine)
    _start(engine, "run-killed", _ended_process())
    _start(engine, "run-live", current_process())
    engine.dispose()
    result = CliRunner().invoke(app, ["runs", "list", "--database", sqlite_url])
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert result.exit_code == 0, result.output
    assert lines["run-killed"].split()[1] == "interrupted"
    assert "interruption noticed" in lines["run-killed"]
    assert "(process ended)" in lines["run-killed"]
    assert lines["run-live"].split()[1] == "running"
    assert f"pid {current_process().process_id}" in lines["run-live"]
    assert "heartbeat" in lines["run-live"]


def test_cli_missing_store_creates_nothing(tmp_path):
    from typer.testing import CliRunner

    from greenloop.cli import app

    missing = tmp_path / "absent.sqlite3"
    result = CliRunner().invoke(
        app, ["runs", "list", "--database", f"sqlite:///{missing}"]
    )
    assert result.exit_code == 1
    assert f"no store at {missing}" in result.output
    assert list(tmp_path.iterdir()) == []


def test_cli_file_path_as_database(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from greenloop.cli import app

    monkeypatch.chdir(tmp_path)
    for arguments in (["runs", "list"], ["db", "upgrade"]):
        result = CliRunner().invoke(
            app, [*arguments, "--database", "runs/greenloop.sqlite3"]
        )
        assert result.exit_code == 1, result.output
        assert "--database='runs/greenloop.sqlite3' is not a database URL" in (
            result.output
        )
        assert "sqlite:///runs/greenloop.sqlite3" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert list(tmp_path.iterdir()) == []


def test_any_command_reports_store_error(tmp_path):
    # A process of its own runs the entry point as users do: one line, no trace.
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenloop.cli",
            "ledger",
            "checkpoint",
            "--database",
            "runs/greenloop.sqlite3",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    last_line = completed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: --database='runs/greenloop.sqlite3' is not")
    assert list(tmp_path.iterdir()) == []


def test_concurrent_sqlite_upgrades_both_succeed(tmp_path):
    # Two processes that open an old store at once both upgrade it: one waits
    # for the other's upgrade lock, then finds the schema current.
    program = (
        "import sys\nfrom greenloop.store.schema import upgrade\nupgrade(sys.argv[1])\n"
    )
    for attempt in range(5):
        url = f"sqlite:///{tmp_path / f'old-{attempt}.sqlite3'}"
        schema.upgrade(url, revision="0002")
        upgraders = [
            subprocess.Popen(
                [sys.executable, "-c", program, url],
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for upgrader in upgraders:
            _, errors = upgrader.communicate(timeout=120)
            assert upgrader.returncode == 0, errors
        engine = make_engine(url)
        with engine.connect() as connection:
            assert schema.current_revision(connection) == schema.head_revision()
        engine.dispose()
