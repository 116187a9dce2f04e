"""The database connection and the shared table metadata.

Every store module defines its tables on `metadata`, so one Alembic history
covers them all. SQLite is the default; `GREENLOOP_DATABASE_URL` selects another
database, for example `postgresql+psycopg://postgres@127.0.0.1:5432/test`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine, create_engine

DATABASE_URL_VARIABLE = "GREENLOOP_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path("greenloop.sqlite3")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def database_url(explicit: str | None = None) -> str:
    """Return the database URL: the argument, the environment, or the SQLite file."""
    if explicit:
        return explicit
    from_environment = os.environ.get(DATABASE_URL_VARIABLE)
    if from_environment:
        return from_environment
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def make_engine(url: str | None = None) -> Engine:
    """Create an engine; SQLite connections get WAL mode and foreign keys on."""
    resolved = database_url(url)
    if resolved.startswith("sqlite"):
        engine = create_engine(resolved, connect_args={"timeout": 30})
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(resolved, pool_pre_ping=True)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
