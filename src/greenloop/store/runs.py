"""Tables and queries for batch runs and the green assets they create.

A run row is `running` from its start until its process records `succeeded`
or `failed`. Meanwhile its process refreshes the row's heartbeat (see
greenloop.store.heartbeat). A process killed before the end leaves the row
`running`, so each new run first marks as `interrupted` the `running` runs
whose process has ended on its host or whose heartbeat is stale (see
`mark_interrupted_runs`).

A green asset is keyed by its purchase id, so running the same input twice, or
again after a crash, never creates a second asset. Its canonical record lives
in the ledger entry that `ledger_index` names, not here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, RowMapping

from greenloop.store.base import (
    copy_rows,
    is_unique_violation,
    metadata,
    sqlite_insert_many,
)
from greenloop.store.processes import (
    ProcessIdentity,
    ProcessState,
    current_process,
    process_state,
)

logger = logging.getLogger(__name__)

RUNNING = "running"
INTERRUPTED = "interrupted"
# Values of `interruption_reason`: the kernel showed the run's process ended,
# or the run's last heartbeat was older than the stale limit.
PROCESS_ENDED = "process_ended"
HEARTBEAT_STALE = "heartbeat_stale"

# Seconds between two heartbeats of a running run. A beat is one UPDATE of one
# row, so it costs nothing next to the run, and at this interval a stale limit
# of many beats still finds a stopped run within minutes.
HEARTBEAT_INTERVAL_SECONDS = 30.0
# Age in seconds after which the last heartbeat of a run shows that the run has
# stopped, unless its process is seen running. It is 20 intervals, so that a run
# survives many beats lost in a row: each beat on SQLite gives up while the
# ledger step holds the write lock, and a busy PostgreSQL server may time a beat
# out.
STALE_HEARTBEAT_SECONDS = 600.0

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("input_path", Text, nullable=False),
    Column("input_sha256", String(64), nullable=False),
    Column("standard", String(8), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("manifest", Text),
    # The process that runs the run, as greenloop.store.processes identifies
    # it. Rows recorded before these columns existed contain NULL.
    Column("host_name", String(255)),
    Column("process_id", Integer),
    Column("process_scope", String(128)),
    Column("process_start_ticks", BigInteger),
    # When a later process found that the run had stopped and marked it
    # `interrupted`. The run itself ended at some time before.
    Column("interruption_noticed_at", DateTime(timezone=True)),
    # The database's time at the run's start and at each beat of its process.
    # Rows recorded before this column existed contain NULL.
    Column("heartbeat_at", DateTime(timezone=True)),
    # Why a later process marked the run `interrupted`: PROCESS_ENDED or
    # HEARTBEAT_STALE. NULL when the run's own process recorded its end.
    Column("interruption_reason", String(32)),
)

green_assets = Table(
    "green_assets",
    metadata,
    Column("purchase_id", String(200), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("user_key", String(64), index=True),
    Column("merchant_id", String(200)),
    Column("category", String(40), nullable=False),
    Column("standard_id", String(80), nullable=False),
    Column("standard_version", String(40), nullable=False),
    Column("region", String(16)),
    Column("amount_fen", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("periods", Integer, nullable=False),
    Column("kg_co2e_per_year", Float),
    Column("kg_co2e_lifetime", Float),
    Column("verdict_digest", String(64), nullable=False),
    Column("impact_digest", String(64)),
    Column("ledger_index", BigInteger, unique=True),
    Column("reversed", Boolean, nullable=False, default=False),
)

ASSET_COLUMNS = tuple(column.name for column in green_assets.columns)
# Indexes of green_assets that a large load drops and builds again afterwards.
# Their keys arrive in random order, so keeping them up to date row by row
# dirties pages all over the index in every transaction. The unique ones stay,
# because they reject conflicting rows.
DEFERRABLE_ASSET_INDEXES = tuple(
    index for index in green_assets.indexes if not index.unique
)
# Text forms of a UTC time, in DuckDB's strftime codes, that `asset_rows`
# stores as they are: SQLAlchemy's form of a SQLite DATETIME, and a
# PostgreSQL timestamptz.
SQLITE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
POSTGRESQL_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f+00"
_LEDGER_INDEX_POSITION = ASSET_COLUMNS.index("ledger_index")


def record_run_start(
    engine: Engine, run: Mapping[str, Any], process: ProcessIdentity | None = None
) -> None:
    """Insert a run row with status `running`, its process and a first heartbeat.

    `process` defaults to the calling process.
    """
    owner = process or current_process()
    with engine.begin() as connection:
        connection.execute(
            runs.insert().values(
                **run,
                status=RUNNING,
                host_name=owner.host_name,
                process_id=owner.process_id,
                process_scope=owner.scope,
                process_start_ticks=owner.start_ticks,
                heartbeat_at=func.now(),
            )
        )


def record_heartbeat(connection: Connection, run_id: str) -> bool:
    """Set the heartbeat of a `running` run to the database's current time.

    Returns False when the run is not `running`, so no row changed. The caller
    commits. The time comes from the database's clock, so the heartbeats of
    hosts whose clocks differ can still be compared.
    """
    result = connection.execute(
        update(runs)
        .where(runs.c.run_id == run_id, runs.c.status == RUNNING)
        .values(heartbeat_at=func.now())
    )
    return result.rowcount > 0


def database_time(connection: Connection) -> datetime:
    """Return the database's current time in UTC, the clock of the heartbeats."""
    return as_utc(connection.execute(select(func.now())).scalar_one())


def as_utc(moment: datetime) -> datetime:
    """Return a stored time as an aware UTC time.

    SQLite returns the stored UTC time without a zone, and PostgreSQL returns
    it in the session's zone.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def mark_interrupted_runs(
    engine: Engine,
    observer: ProcessIdentity | None = None,
    stale_after_seconds: float = STALE_HEARTBEAT_SECONDS,
) -> list[str]:
    """Mark `running` runs that have stopped as `interrupted`; return their ids.

    A run is marked for one of two reasons, which its row records with the
    time it was noticed:

    - PROCESS_ENDED: the kernel shows the run's process ended. Only runs of
      the observer's host, boot and pid namespace can be checked so (see
      `process_state`).
    - HEARTBEAT_STALE: the run's process cannot be seen running, and its last
      heartbeat is more than `stale_after_seconds` old on the database's
      clock. A row without a heartbeat, recorded before heartbeats existed,
      counts from its start time instead.

    A run whose process the observer can show running is never marked,
    however old its heartbeat. `observer` defaults to this process.
    """
    this_process = observer or current_process()
    with engine.connect() as connection:
        now = database_time(connection)
        candidates = connection.execute(
            select(
                runs.c.run_id,
                runs.c.host_name,
                runs.c.process_id,
                runs.c.process_scope,
                runs.c.process_start_ticks,
                runs.c.started_at,
                runs.c.heartbeat_at,
            ).where(runs.c.status == RUNNING)
        ).all()
    stale_before = now - timedelta(seconds=stale_after_seconds)
    ended: list[str] = []
    stale: list[str] = []
    for row in candidates:
        state = _recorded_process_state(row, this_process)
        if state == ProcessState.ENDED:
            ended.append(row.run_id)
        elif state == ProcessState.UNKNOWN:
            # NOTE: the start time comes from the clock of the run's host, so
            # for a row without a heartbeat the limit moves by the difference
            # between that clock and the database's.
            last_sign = row.heartbeat_at or row.started_at
            if as_utc(last_sign) < stale_before:
                stale.append(row.run_id)
    marked_ended = _mark_interrupted(engine, ended, PROCESS_ENDED, stale_before)
    marked_stale = _mark_interrupted(engine, stale, HEARTBEAT_STALE, stale_before)
    if marked_ended:
        logger.warning(
            "marked %d run(s) interrupted because their process has ended: %s",
            len(marked_ended),
            ", ".join(marked_ended),
        )
    if marked_stale:
        logger.warning(
            "marked %d run(s) interrupted because their process cannot be checked "
            "from this host and their last heartbeat is older than %.0f s: %s",
            len(marked_stale),
            stale_after_seconds,
            ", ".join(marked_stale),
        )
    return marked_ended + marked_stale


def _recorded_process_state(row: Any, observer: ProcessIdentity) -> ProcessState:
    """Return the state of a run row's process; UNKNOWN for rows without one."""
    if row.host_name is None or row.process_id is None:
        return ProcessState.UNKNOWN
    recorded = ProcessIdentity(
        row.host_name, row.process_id, row.process_scope, row.process_start_ticks
    )
    return process_state(recorded, observer)


def _mark_interrupted(
    engine: Engine, run_ids: list[str], reason: str, stale_before: datetime
) -> list[str]:
    """Mark the given runs `interrupted` for `reason`; return those marked.

    A run marked by another process meanwhile is left alone, and so is a run
    that recorded a heartbeat since it was found stale.
    """
    if not run_ids:
        return []
    marked = []
    with engine.begin() as connection:
        for run_id in run_ids:
            conditions = [runs.c.run_id == run_id, runs.c.status == RUNNING]
            if reason == HEARTBEAT_STALE:
                last_sign = func.coalesce(runs.c.heartbeat_at, runs.c.started_at)
                conditions.append(last_sign < stale_before)
            result = connection.execute(
                update(runs)
                .where(*conditions)
                .values(
                    status=INTERRUPTED,
                    interruption_noticed_at=datetime.now(UTC),
                    interruption_reason=reason,
                )
            )
            if result.rowcount > 0:
                marked.append(run_id)
    return marked


def recent_runs(engine: Engine, limit: int) -> list[RowMapping]:
    """Return up to `limit` run rows, newest start first."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(runs).order_by(runs.c.started_at.desc()).limit(limit)
            ).mappings()
        )


def record_run_end(engine: Engine, run_id: str, status: str, manifest: Mapping) -> None:
    """Mark a run finished with its manifest.

    A run that another process marked `interrupted` while it was still alive
    (its heartbeat had failed for too long) loses that mark, because the
    run's own end is what happened.
    """
    with engine.begin() as connection:
        connection.execute(
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(
                status=status,
                finished_at=datetime.now(UTC),
                manifest=json.dumps(manifest, sort_keys=True),
                interruption_noticed_at=None,
                interruption_reason=None,
            )
        )


class AssetRows(NamedTuple):
    """Green assets converted for one database's INSERT, ready to be stored.

    On SQLite `values` contains every row's values one after another, in the
    order of `ASSET_COLUMNS`. On PostgreSQL it contains one list per row, in
    that order.
    """

    dialect: str
    row_count: int
    values: list[Any]


def insert_assets(engine: Engine, assets: pa.Table) -> int:
    """Insert green assets and return how many were new.

    A purchase id already stored keeps its first record. The table's columns
    are those of `green_assets`. The count comes from the rows each statement
    inserted, so a batch costs the same however many assets are stored.
    """
    rows = asset_rows(assets, engine.dialect.name)
    if rows.row_count == 0:
        return 0
    with engine.begin() as connection:
        return store_asset_rows(connection, rows)


def stored_time_format(dialect: str) -> str:
    """Return the strftime form in which `asset_rows` takes times as text."""
    if dialect == "sqlite":
        return SQLITE_DATETIME_FORMAT
    return POSTGRESQL_TIMESTAMP_FORMAT


def asset_rows(assets: pa.Table, dialect: str) -> AssetRows:
    """Convert a table with the columns of `green_assets` for `store_asset_rows`.

    The conversion needs no connection, so it can run while another thread
    writes to the database. `occurred_at` may be a UTC timestamp, or text in
    `stored_time_format(dialect)`, which is stored as it is.
    """
    names = list(ASSET_COLUMNS)
    table = assets.select(names)
    if dialect != "sqlite":
        columns = [table.column(name).to_pylist() for name in names]
        return AssetRows(
            dialect, table.num_rows, [list(row) for row in zip(*columns, strict=True)]
        )
    columns = []
    for name in names:
        column = table.column(name)
        if name == "occurred_at" and not pa.types.is_string(column.type):
            # Arrow writes microsecond timestamps with six fraction digits,
            # which is SQLAlchemy's text form of a SQLite DATETIME.
            column = pc.strftime(
                column.cast(pa.timestamp("us", tz="UTC")),
                format="%Y-%m-%d %H:%M:%S",
            )
        columns.append(column.to_pylist())
    values = list(chain.from_iterable(zip(*columns, strict=True)))
    return AssetRows(dialect, table.num_rows, values)


def store_asset_rows(
    connection: Connection,
    rows: AssetRows,
    ledger_indexes: Sequence[int] | None = None,
    *,
    expect_new: bool = True,
) -> int:
    """Insert converted assets on `connection`; return how many were new.

    `ledger_indexes`, one per row, replaces the rows' ledger indexes. With
    `expect_new=False`, PostgreSQL skips the attempt to copy the rows straight
    into the table, which fails when a purchase id is stored already.
    """
    if ledger_indexes is not None and len(ledger_indexes) != rows.row_count:
        raise ValueError(
            f"{len(ledger_indexes)} ledger indexes for {rows.row_count} assets; pass "
            "one index per asset"
        )
    if rows.row_count == 0:
        return 0
    if rows.dialect == "sqlite":
        width = len(ASSET_COLUMNS)
        if ledger_indexes is not None:
            rows.values[_LEDGER_INDEX_POSITION::width] = ledger_indexes
        head = f"INSERT INTO green_assets ({', '.join(ASSET_COLUMNS)})"
        # Only a stored purchase id is skipped, and the count is of the rows
        # inserted. Any other conflict, such as a ledger index taken by another
        # purchase, raises, where INSERT OR IGNORE would drop the row.
        tail = "ON CONFLICT (purchase_id) DO NOTHING"
        return sqlite_insert_many(connection, head, width, rows.values, tail)
    if rows.dialect != "postgresql":
        raise NotImplementedError(
            f"unsupported database dialect {rows.dialect!r}: use SQLite or PostgreSQL"
        )
    if ledger_indexes is not None:
        for row, index in zip(rows.values, ledger_indexes, strict=True):
            row[_LEDGER_INDEX_POSITION] = index
    return _copy_assets(connection, rows.values, expect_new)


def _copy_assets(
    connection: Connection, values: Sequence[Sequence[Any]], expect_new: bool
) -> int:
    """Insert asset rows on PostgreSQL through COPY; return how many were new.

    With `expect_new`, the rows are first copied straight into green_assets,
    which succeeds when none of their purchase ids is stored or repeated, as
    in a first run. Otherwise, or when that COPY fails on a repeated id and is
    rolled back to a savepoint, COPY fills a temporary table and one INSERT
    moves the rows whose purchase id is not stored yet. Within the rows, the
    first with a purchase id wins, as in a row-by-row insert.
    """
    names = ", ".join(ASSET_COLUMNS)
    cursor = connection.connection.cursor()
    try:
        if expect_new:
            cursor.execute("SAVEPOINT green_assets_copy")
            try:
                copy_rows(cursor, f"green_assets ({names})", values)
            except connection.dialect.loaded_dbapi.IntegrityError as error:
                if not is_unique_violation(error):
                    raise
                cursor.execute("ROLLBACK TO SAVEPOINT green_assets_copy")
            else:
                cursor.execute("RELEASE SAVEPOINT green_assets_copy")
                return len(values)
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS green_assets_incoming "
            "(LIKE green_assets, position BIGINT) ON COMMIT DELETE ROWS"
        )
        copy_rows(
            cursor,
            f"green_assets_incoming ({names}, position)",
            ((*row, position) for position, row in enumerate(values)),
        )
        cursor.execute(
            f"INSERT INTO green_assets ({names}) "
            f"SELECT DISTINCT ON (purchase_id) {names} FROM green_assets_incoming "
            "ORDER BY purchase_id, position "
            "ON CONFLICT (purchase_id) DO NOTHING"
        )
        inserted = int(cursor.rowcount)
        # The rows would otherwise stay until the commit and meet the next call.
        cursor.execute("TRUNCATE green_assets_incoming")
    finally:
        cursor.close()
    return inserted


def _count(connection: Connection) -> int:
    return int(
        connection.execute(select(func.count()).select_from(green_assets)).scalar_one()
    )


def ledger_indexes(engine: Engine, purchase_ids: Iterable[str]) -> dict[str, int]:
    """Return the ledger index of each given purchase id that has one."""
    requested = list(purchase_ids)
    found: dict[str, int] = {}
    with engine.connect() as connection:
        for start in range(0, len(requested), 10_000):
            chunk = requested[start : start + 10_000]
            rows = connection.execute(
                select(green_assets.c.purchase_id, green_assets.c.ledger_index).where(
                    green_assets.c.purchase_id.in_(chunk),
                    green_assets.c.ledger_index.is_not(None),
                )
            )
            found.update({row[0]: int(row[1]) for row in rows})
    return found


def asset_count(engine: Engine) -> int:
    """Return how many green assets the store holds."""
    with engine.connect() as connection:
        return _count(connection)


def count_assets(engine: Engine) -> int:
    """Return how many green assets the store contains."""
    with engine.connect() as connection:
        return _count(connection)


def drop_deferrable_indexes(engine: Engine) -> None:
    """Drop the indexes of DEFERRABLE_ASSET_INDEXES before a large load.

    Until `create_missing_indexes` runs, queries by user scan the table.
    """
    with engine.begin() as connection:
        for index in DEFERRABLE_ASSET_INDEXES:
            index.drop(connection, checkfirst=True)
            logger.info("dropped index %s until the assets are stored", index.name)


def create_missing_indexes(engine: Engine) -> None:
    """Build each index of DEFERRABLE_ASSET_INDEXES that the store lacks.

    A run killed during a large load leaves them dropped, so every run calls
    this before its steps as well as after the load.
    """
    with engine.begin() as connection:
        for index in DEFERRABLE_ASSET_INDEXES:
            index.create(connection, checkfirst=True)
