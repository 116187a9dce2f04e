"""Bring a database to the current schema with Alembic.

`upgrade` is the one entry point: the batch run, the service and the command
line call it before anything else. It handles three cases:

- an empty database, or one with an `alembic_version` row: run the migrations
  up to head;
- tables created by `metadata.create_all` with no `alembic_version` row: create
  the missing tables, compare the database with the metadata, and stamp head
  when they match, or raise SchemaMismatchError listing the differences.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine

from greenloop.store.base import make_engine, metadata

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"

# Every module that defines tables on the shared metadata. Alembic compares and
# generates only the tables of modules imported before it runs.
STORE_MODULES = (
    "greenloop.store.models",
    "greenloop.store.ledger",
    "greenloop.store.finance",
    "greenloop.store.runs",
)

# An arbitrary advisory-lock id; every greenloop process uses this one, so
# concurrent upgrades of one PostgreSQL database run one after another.
POSTGRES_LOCK_ID = 0x5A1E_C0DE


class SchemaMismatchError(RuntimeError):
    """The database has tables that differ from the current metadata."""


def load_all_tables() -> MetaData:
    """Import every store module and return the shared metadata.

    A store module that does not exist yet is skipped; an import error inside
    a module that exists is raised.
    """
    for name in STORE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            logger.debug("store module %s not present; its tables are skipped", name)
    return metadata


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Leave tables that the metadata does not define out of comparisons."""
    return not (type_ == "table" and reflected and compare_to is None)


def alembic_config(url: str | None = None) -> Config:
    """Return an Alembic configuration for the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """Return the newest migration's revision id."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """Return the revision the database is at, or None when unstamped."""
    return MigrationContext.configure(connection).get_current_revision()


def differences(connection: Connection) -> list[Any]:
    """Return Alembic's comparison of the database with the metadata."""
    context = MigrationContext.configure(
        connection,
        opts={"include_object": include_object, "compare_type": True},
    )
    return list(compare_metadata(context, load_all_tables()))


def upgrade(engine_or_url: Engine | str | None = None, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest migration)."""
    engine = (
        engine_or_url
        if isinstance(engine_or_url, Engine)
        else make_engine(engine_or_url)
    )
    owned = not isinstance(engine_or_url, Engine)
    load_all_tables()
    try:
        with _sqlite_upgrade_lock(engine), engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("select pg_advisory_xact_lock(:id)"), {"id": POSTGRES_LOCK_ID}
                )
            _upgrade_locked(connection, revision)
    finally:
        if owned:
            engine.dispose()


@contextmanager
def _sqlite_upgrade_lock(engine: Engine) -> Iterator[None]:
    """Hold an exclusive lock on `<database>-upgrade.lock` for a SQLite file.

    Python's sqlite3 runs Alembic's DDL outside a transaction, so two processes
    upgrading one file at once could both add the same column. The lock is on
    a file of its own: closing a descriptor of the database file would drop
    the locks SQLite holds on it. Other databases, in-memory SQLite and
    systems without `fcntl` need no lock file.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    try:
        import fcntl
    except ImportError:  # not on a POSIX system
        yield
        return
    descriptor = os.open(f"{database}-upgrade.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _upgrade_locked(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    existing = set(inspect(connection).get_table_names())
    known = set(metadata.tables)
    if VERSION_TABLE in existing or not existing & known:
        before = current_revision(connection)
        command.upgrade(config, revision)
        after = current_revision(connection)
        if before == after:
            logger.debug("database schema already at %s", after)
        else:
            logger.info(
                "database schema upgraded from %s to %s", before or "empty", after
            )
        return
    _stamp_created_tables(connection, config, sorted(existing & known))


def _stamp_created_tables(
    connection: Connection, config: Config, present: list[str]
) -> None:
    logger.info(
        "database has %d greenloop tables but no %s row; comparing before stamping",
        len(present),
        VERSION_TABLE,
    )
    metadata.create_all(connection, checkfirst=True)
    found = differences(connection)
    if found:
        listed = "; ".join(str(item) for item in found[:10])
        raise SchemaMismatchError(
            f"the database's tables differ from the greenloop schema "
            f"({len(found)} differences: {listed}). It has no {VERSION_TABLE} "
            "table, so greenloop cannot migrate it: drop those tables or use an "
            "empty database, then run `greenloop db upgrade`"
        )
    command.stamp(config, "head")
    logger.info("database stamped at %s after comparison", head_revision())
