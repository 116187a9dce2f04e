"""Commands about batch runs: `greenloop runs list`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

runs_app = typer.Typer(help="Batch runs recorded in the store.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add `runs` to the application."""
    runs_app.command("list")(list_runs)
    app.add_typer(runs_app, name="runs")


def list_runs(
    database: str = typer.Option(
        None,
        "--database",
        help=(
            "SQLAlchemy database URL, such as sqlite:///runs/greenloop.sqlite3 "
            "for the store of `greenloop demo`. Default: GREENLOOP_DATABASE_URL, "
            "else the SQLite file greenloop.sqlite3 in the current folder."
        ),
    ),
    limit: int = typer.Option(
        20, "--limit", min=1, help="Number of runs to list, newest first."
    ),
) -> None:
    """List recent runs with their status, host, process id and heartbeat age.

    Runs whose process has ended on this host, or whose heartbeat is stale,
    are marked interrupted first.
    """
    from greenloop.cli.stores import existing_store_url
    from greenloop.store.base import make_engine
    from greenloop.store.runs import database_time, mark_interrupted_runs, recent_runs
    from greenloop.store.schema import upgrade

    # Listing must not leave an empty store behind.
    url = existing_store_url(database)
    engine = make_engine(url)
    upgrade(engine)
    mark_interrupted_runs(engine)
    rows = recent_runs(engine, limit)
    with engine.connect() as connection:
        now = database_time(connection)
    engine.dispose()
    if not rows:
        typer.echo("no runs recorded")
        return
    for row in rows:
        typer.echo(_describe(row, now))


def _describe(row: Any, now: datetime) -> str:
    """Return one line: id, status, start, end or interruption, host, pid, heartbeat.

    A running run's heartbeat age is measured against `now`, the database's
    time, which is the clock of the heartbeats.
    """
    parts = [
        row["run_id"],
        f"{row['status']:<11}",
        f"started {_time(row['started_at'])}",
    ]
    if row["finished_at"] is not None:
        parts.append(f"finished {_time(row['finished_at'])}")
    if row["interruption_noticed_at"] is not None:
        noticed = f"interruption noticed {_time(row['interruption_noticed_at'])}"
        if row["interruption_reason"] is not None:
            noticed += f" ({row['interruption_reason'].replace('_', ' ')})"
        parts.append(noticed)
    if row["host_name"] is not None:
        parts.append(f"on {row['host_name']} pid {row['process_id']}")
    if row["status"] == "running":
        parts.append(_heartbeat_age(row["heartbeat_at"], now))
    return "  ".join(parts)


def _heartbeat_age(heartbeat_at: datetime | None, now: datetime) -> str:
    """Return how long ago a run beat, such as `heartbeat 42 s ago`."""
    from greenloop.store.runs import as_utc

    if heartbeat_at is None:
        return "no heartbeat"
    seconds = max(0, round((now - as_utc(heartbeat_at)).total_seconds()))
    if seconds < 120:
        return f"heartbeat {seconds} s ago"
    if seconds < 120 * 60:
        return f"heartbeat {seconds // 60} min ago"
    return f"heartbeat {seconds // 3600} h ago"


def _time(moment: datetime) -> str:
    """Return a stored time in UTC to the second.

    SQLite returns the stored UTC time without a zone, and PostgreSQL returns
    it in the session's zone.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
