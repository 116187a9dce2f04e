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
        help="Database URL; default GREENLOOP_DATABASE_URL or greenloop.sqlite3.",
    ),
    limit: int = typer.Option(
        20, "--limit", min=1, help="Number of runs to list, newest first."
    ),
) -> None:
    """List recent runs with their status, host and process id.

    Runs of this host whose process has ended are marked interrupted first.
    """
    from greenloop.store.base import make_engine
    from greenloop.store.runs import mark_interrupted_runs, recent_runs
    from greenloop.store.schema import upgrade

    engine = make_engine(database)
    upgrade(engine)
    mark_interrupted_runs(engine)
    rows = recent_runs(engine, limit)
    engine.dispose()
    if not rows:
        typer.echo("no runs recorded")
        return
    for row in rows:
        typer.echo(_describe(row))


def _describe(row: Any) -> str:
    """Return one line: id, status, start, end or interruption, host and pid."""
    parts = [
        row["run_id"],
        f"{row['status']:<11}",
        f"started {_time(row['started_at'])}",
    ]
    if row["finished_at"] is not None:
        parts.append(f"finished {_time(row['finished_at'])}")
    if row["interruption_noticed_at"] is not None:
        parts.append(f"interruption noticed {_time(row['interruption_noticed_at'])}")
    if row["host_name"] is not None:
        parts.append(f"on {row['host_name']} pid {row['process_id']}")
    return "  ".join(parts)


def _time(moment: datetime) -> str:
    """Return a stored time in UTC to the second.

    SQLite returns the stored UTC time without a zone, and PostgreSQL returns
    it in the session's zone.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
