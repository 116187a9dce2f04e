"""The database connection and the shared table metadata.

Every store module defines its tables on `metadata`, so one Alembic history
covers them all. SQLite is the default; `GREENLOOP_DATABASE_URL` selects another
database, for example `postgresql+psycopg://postgres@127.0.0.1:5432/test`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Integer, MetaData, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, InvalidatePoolError, NoSuchModuleError

DATABASE_URL_VARIABLE = "GREENLOOP_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path("greenloop.sqlite3")
POSTGRESQL_URL_EXAMPLE = "postgresql+psycopg://USER@HOST:5432/DATABASE"
SQLITE_MMAP_BYTES = 1 << 30
SQLITE_PAGE_BYTES = 16_384
# Most rows one multi-row INSERT carries on SQLite.
SQLITE_ROWS_PER_INSERT = 5_000
# A pooled connection returned at least this many seconds ago is pinged
# before it is used again (see `ping_idle_connections`).
PING_AFTER_IDLE_SECONDS = 1.0
# Seconds a PostgreSQL connection attempt may take when the URL sets no
# `connect_timeout`. Without a limit, a server or another service that
# accepts the connection and never replies keeps the command waiting forever.
POSTGRESQL_CONNECT_TIMEOUT_SECONDS = 10
_CHECKED_IN_AT = "greenloop_checked_in_at"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# A surrogate key: BIGINT on PostgreSQL, INTEGER on SQLite, where only an
# INTEGER PRIMARY KEY autoincrements.
Identifier = BigInteger().with_variant(Integer(), "sqlite")


def dialect_insert(connection: Connection, table: Table) -> Any:
    """Return an INSERT for `table` that supports ON CONFLICT on this database."""
    name = connection.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(
        f"unsupported database dialect {name!r}: use SQLite or PostgreSQL"
    )


def database_url(
    explicit: str | None = None, *, explicit_source: str | None = None
) -> str:
    """Return the database URL: the argument, the environment, or the SQLite file.

    A URL read from GREENLOOP_DATABASE_URL is checked here, so an invalid one
    raises StoreError that names the variable. An explicit URL is checked only
    when `explicit_source`, such as `--database`, names where it came from.
    """
    if explicit:
        if explicit_source is not None:
            parse_database_url(explicit, source=explicit_source)
        return explicit
    from_environment = os.environ.get(DATABASE_URL_VARIABLE)
    if from_environment:
        parse_database_url(from_environment, source=DATABASE_URL_VARIABLE)
        return from_environment
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def make_engine(
    url: str | None = None, *, sqlite_mmap_bytes: int = SQLITE_MMAP_BYTES
) -> Engine:
    """Create an engine; SQLite connections get WAL mode and foreign keys on.

    `sqlite_mmap_bytes` sets how much of a SQLite file reads map into memory,
    and 0 turns mapping off. Mapped pages count as resident memory. Other
    databases get a pool that pings idle connections before use, and
    PostgreSQL connection attempts time out after
    POSTGRESQL_CONNECT_TIMEOUT_SECONDS unless the URL sets `connect_timeout`.
    """
    resolved = database_url(url)
    parsed = parse_database_url(resolved)
    if resolved.startswith("sqlite"):
        _check_sqlite_folder(resolved)
        engine = create_engine(resolved, connect_args={"timeout": 30})
        mmap_bytes = int(sqlite_mmap_bytes)

        def configure(dbapi_connection: Any, _record: Any) -> None:
            _configure_sqlite(dbapi_connection, mmap_bytes)

        event.listen(engine, "connect", configure)
        return engine
    connect_args: dict[str, Any] = {}
    if (
        parsed.get_backend_name() == "postgresql"
        and "connect_timeout" not in parsed.query
    ):
        connect_args["connect_timeout"] = POSTGRESQL_CONNECT_TIMEOUT_SECONDS
    engine = create_engine(resolved, connect_args=connect_args)
    ping_idle_connections(engine, PING_AFTER_IDLE_SECONDS)
    return engine


class StoreError(RuntimeError):
    """A store that cannot be opened where its URL points."""


def parse_database_url(url: str, *, source: str | None = None) -> URL:
    """Parse a SQLAlchemy database URL and load its dialect and driver module.

    Raises StoreError when the URL is invalid, names an unknown driver or
    needs a driver module that is not installed. `source`, such as
    `GREENLOOP_DATABASE_URL` or `--database`, is named in the message. A bare
    file path is the usual mistake, so the message then shows the SQLite URL
    of that path.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        if "://" in url:
            example = f"such as {POSTGRESQL_URL_EXAMPLE}"
        else:
            example = f"such as sqlite:///{url} for a SQLite file"
        if source is None:
            raise StoreError(
                f"invalid database URL {url!r}; give a SQLAlchemy URL, {example}"
            ) from None
        raise StoreError(
            f"{source}={url!r} is not a database URL; give a SQLAlchemy URL, {example}"
        ) from None
    _load_driver(parsed, source)
    return parsed


def _load_driver(parsed: URL, source: str | None) -> None:
    """Raise StoreError when SQLAlchemy cannot load the URL's dialect and driver."""
    masked_url = repr(parsed.render_as_string(hide_password=True))
    named = f"{source}={masked_url}" if source else f"database URL {masked_url}"
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise StoreError(
            f"{named} names the unknown database driver {parsed.drivername!r}; "
            f"use sqlite:///FILE or {POSTGRESQL_URL_EXAMPLE}"
        ) from None
    except ImportError as error:
        raise StoreError(
            f"{named} needs the Python module {error.name!r}, which is not "
            f"installed; install it or use {POSTGRESQL_URL_EXAMPLE}"
        ) from None


def sqlite_file(url: str) -> Path | None:
    """Return the file of a SQLite URL, or None for other databases and memory.

    URLs of the `file:` form are left to SQLite and also give None.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _check_sqlite_folder(url: str) -> None:
    """Raise StoreError when a SQLite file's folder does not exist.

    SQLite creates the file but not its folder, and its own error names
    neither.
    """
    path = sqlite_file(url)
    if path is None:
        return
    folder = path.parent
    if not folder.is_dir():
        raise StoreError(
            f"the SQLite store {path} cannot be created because its folder "
            f"{folder} does not exist; create the folder or give another "
            "database URL"
        )


def ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection at checkout if it was idle `idle_seconds` or longer.

    This is SQLAlchemy's `pool_pre_ping` for idle connections only, so reads
    that follow each other closely cost one round trip each instead of two.
    On a failed ping, the pool replaces that connection and every connection
    pooled before it, as `pool_pre_ping` does. A connection that the server
    closes less than `idle_seconds` after its last use fails on its next
    statement instead. SQLAlchemy then invalidates it for statements it runs,
    and `LedgerStore` reads retry on a new connection.
    """
    dialect = engine.dialect

    def record_checkin(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None:
            record.info[_CHECKED_IN_AT] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.pop(_CHECKED_IN_AT, None)
        # A new connection has never been checked in and needs no ping.
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if not dialect.is_disconnect(error, dbapi_connection, None):
                raise
            raise InvalidatePoolError(
                f"ping of a pooled connection failed ({error}), so the pool reconnects"
            ) from error

    event.listen(engine, "checkin", record_checkin)
    event.listen(engine, "checkout", ping_if_idle)


def _configure_sqlite(dbapi_connection: Any, mmap_bytes: int) -> None:
    cursor = dbapi_connection.cursor()
    # The page size takes effect only while the file is still empty. With
    # 16 KiB pages a full ledger tile (about 11 KiB of hashes) fits in one
    # page instead of spilling into overflow pages, and bulk inserts write
    # fewer, fuller pages than with the default 4 KiB.
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # A 64 MiB page cache per connection (a negative size is in KiB) keeps the
    # upper B-tree pages of large tables in memory, where the default is 2 MiB.
    # Reads map up to `mmap_bytes` of the file instead of copying it.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute(f"PRAGMA mmap_size={mmap_bytes}")
    cursor.close()


# The SQLSTATE of a duplicate key (unique_violation) in PostgreSQL.
UNIQUE_VIOLATION = "23505"


def is_unique_violation(error: BaseException) -> bool:
    """Return whether PostgreSQL raised `error`, or the driver error it wraps,
    for a duplicate key."""
    driver_error = getattr(error, "orig", None) or error
    return getattr(driver_error, "sqlstate", None) == UNIQUE_VIOLATION


def copy_rows(
    cursor: Any, target: str, rows: Iterable[Sequence[Any]], types: Sequence[str] = ()
) -> None:
    """Send `rows` to PostgreSQL with `COPY target FROM STDIN` on a psycopg cursor.

    `target` is the table with its column list. With `types`, the PostgreSQL
    type of each column in order, COPY uses its binary format, which sends
    bytes as they are instead of as hex text.
    """
    binary = " (FORMAT BINARY)" if types else ""
    with cursor.copy(f"COPY {target} FROM STDIN{binary}") as copy:
        if types:
            copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def sqlite_insert_many(
    connection: Connection,
    head: str,
    width: int,
    values: Sequence[Any],
    tail: str = "",
) -> int:
    """Insert rows on SQLite with multi-row INSERTs; return how many were inserted.

    `head` is the statement up to VALUES, such as `INSERT INTO t (a, b)`,
    `tail` what follows the rows, such as `ON CONFLICT (a) DO NOTHING`, and
    `values` contains the rows' values one row after another, `width` per
    row.
    Each statement carries up to `SQLITE_ROWS_PER_INSERT` rows, fewer when the
    connection's bound-parameter limit is lower. One step per statement
    replaces one per row, as executemany takes, and the driver releases the
    GIL once per statement instead of once per row, so a thread writing
    beside another thread rarely waits to get the GIL back.
    """
    if not values:
        return 0
    if len(values) % width:
        raise ValueError(
            f"{len(values)} values do not make whole rows of {width}; pass "
            "every row's values in full"
        )
    driver_connection: Any = connection.connection.driver_connection
    limit = driver_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per_statement = max(1, min(limit // width, SQLITE_ROWS_PER_INSERT)) * width
    row_marks = "(" + ",".join("?" * width) + ")"
    inserted = 0
    cursor = connection.connection.cursor()
    try:
        for start in range(0, len(values), per_statement):
            chunk = values[start : start + per_statement]
            marks = ",".join([row_marks] * (len(chunk) // width))
            cursor.execute(f"{head} VALUES {marks} {tail}", chunk)
            inserted += cursor.rowcount
    finally:
        cursor.close()
    return inserted
