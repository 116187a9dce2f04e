"""Refresh the heartbeat of a running run from a background thread.

`RunHeartbeat` sets the run's `heartbeat_at` once per interval, so that other
processes, on any host, can tell a run that still runs from one that stopped
(see `greenloop.store.runs.mark_interrupted_runs`). The thread opens its own
engine without a pool and keeps one connection, so the job's pool and
transactions are never involved. A beat waits only briefly for a lock: when
the job holds SQLite's write lock, or a row lock blocks it on PostgreSQL, the
beat gives up and the next one tries again. No error of a beat reaches the job.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from types import TracebackType

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from greenloop.store.runs import (
    HEARTBEAT_INTERVAL_SECONDS,
    STALE_HEARTBEAT_SECONDS,
    record_heartbeat,
)

logger = logging.getLogger(__name__)

THREAD_NAME_PREFIX = "greenloop-heartbeat"
# How long a beat waits for SQLite's write lock. The ledger step takes that lock
# for each batch it appends, and a waiting beat delays only its own thread.
SQLITE_BUSY_TIMEOUT_SECONDS = 0.5
# How long a beat on PostgreSQL waits for a row lock, for its statement and for
# a new connection. Another process that marks runs takes a row lock only for
# its short transaction.
POSTGRES_LOCK_TIMEOUT_MS = 500
POSTGRES_STATEMENT_TIMEOUT_MS = 5_000
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
# How long `stop` waits for a beat in progress. It exceeds the longest beat
# that the timeouts above allow (a new connection, then the statement), but
# resolving the database's host name has no timeout of its own.
STOP_TIMEOUT_SECONDS = 20.0
# PostgreSQL's SQLSTATE when lock_timeout ends a statement (lock_not_available).
LOCK_NOT_AVAILABLE = "55P03"
# Longest PostgreSQL application_name; the server truncates longer names.
_APPLICATION_NAME_CHARACTERS = 63


class RunHeartbeat:
    """A daemon thread that sets one run's heartbeat every `interval_seconds`.

    Use it as a context manager around the run's work, or call `start` and
    `stop`. The thread ends and closes its connection at `stop`, or earlier
    when the run is no longer `running` in the store. An in-memory SQLite
    database is private to one connection, so no thread is started for it.
    """

    def __init__(
        self,
        url: URL | str,
        run_id: str,
        interval_seconds: float = HEARTBEAT_INTERVAL_SECONDS,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError(
                f"heartbeat interval {interval_seconds!r} s is not positive; "
                "pass a number of seconds above 0"
            )
        self.url = make_url(url)
        self.run_id = run_id
        self.interval_seconds = interval_seconds
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        # Monotonic time of the last recorded beat, the start counting as one.
        self._last_beat = time.monotonic()
        # Failed beats since the last recorded one, and whether a warning
        # about them was logged.
        self._failed_beats = 0
        self._failure_warned = False

    def start(self) -> None:
        """Start the thread, unless the database is in-memory SQLite."""
        if self._thread is not None:
            raise RuntimeError(f"the heartbeat of run {self.run_id} already started")
        if _is_memory_sqlite(self.url):
            logger.debug(
                "run %s has no heartbeat: its database is in memory", self.run_id
            )
            return
        self._thread = threading.Thread(
            target=self._beat_until_stopped,
            name=f"{THREAD_NAME_PREFIX}-{self.run_id}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait up to STOP_TIMEOUT_SECONDS for it to end."""
        self._stop_requested.set()
        if self._thread is None:
            return
        self._thread.join(STOP_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            logger.warning(
                "heartbeat thread of run %s did not stop within %.0f s; it ends "
                "and closes its connection when its current beat returns",
                self.run_id,
                STOP_TIMEOUT_SECONDS,
            )

    def __enter__(self) -> RunHeartbeat:
        self.start()
        return self

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _beat_until_stopped(self) -> None:
        engine = _heartbeat_engine(self.url, self.run_id)
        connection: Connection | None = None
        try:
            while not self._stop_requested.wait(self.interval_seconds):
                connection, running = self._beat(engine, connection)
                if not running:
                    logger.warning(
                        "run %s is no longer `running` in the store, so its "
                        "heartbeat stops; another process may have marked it "
                        "interrupted, and the run's end replaces that status",
                        self.run_id,
                    )
                    break
        finally:
            if connection is not None:
                connection.close()
            engine.dispose()

    def _beat(
        self, engine: Engine, connection: Connection | None
    ) -> tuple[Connection | None, bool]:
        """Record one beat; return the connection to keep and a running flag.

        The flag is False once the run is no longer `running` in the store. A
        connection that failed other than on a lock is closed, and the next
        beat opens a new one.
        """
        try:
            if connection is None:
                connection = engine.connect()
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text(f"SET LOCAL lock_timeout = {POSTGRES_LOCK_TIMEOUT_MS}")
                    )
                    connection.execute(
                        text(
                            "SET LOCAL statement_timeout = "
                            f"{POSTGRES_STATEMENT_TIMEOUT_MS}"
                        )
                    )
                running = record_heartbeat(connection, self.run_id)
        except SQLAlchemyError as error:
            if isinstance(error, DBAPIError) and _is_lock_wait(error):
                logger.debug(
                    "heartbeat of run %s skipped because the database is locked "
                    "(%s); the next beat tries again",
                    self.run_id,
                    error.orig,
                )
            else:
                self._report_failure(error)
                if connection is not None:
                    connection.close()
                connection = None
            self._failed_beats += 1
            self._report_silence()
            return connection, True
        if self._failed_beats:
            logger.log(
                logging.INFO if self._failure_warned else logging.DEBUG,
                "heartbeat of run %s recorded again after %d failed beats",
                self.run_id,
                self._failed_beats,
            )
        self._last_beat = time.monotonic()
        self._failed_beats = 0
        self._failure_warned = False
        return connection, running

    def _report_failure(self, error: SQLAlchemyError) -> None:
        """Log a failed beat: a warning for the first in a row, then at debug."""
        level = logging.DEBUG if self._failure_warned else logging.WARNING
        self._failure_warned = True
        logger.log(
            level,
            "heartbeat of run %s failed (%s); the next beat tries again on a new "
            "connection",
            self.run_id,
            error,
        )

    def _report_silence(self) -> None:
        """Warn once in a row of failed beats that lasts half the stale limit."""
        silent_seconds = time.monotonic() - self._last_beat
        if self._failure_warned or silent_seconds < STALE_HEARTBEAT_SECONDS / 2:
            return
        self._failure_warned = True
        logger.warning(
            "run %s has recorded no heartbeat for %.0f s (%d failed beats); other "
            "processes that cannot check its process mark it interrupted after "
            "%.0f s without one",
            self.run_id,
            silent_seconds,
            self._failed_beats,
            STALE_HEARTBEAT_SECONDS,
        )


def _heartbeat_engine(url: URL, run_id: str) -> Engine:
    """Create an engine without a pool, whose connections wait only briefly."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return create_engine(
            url,
            poolclass=NullPool,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
    if backend == "postgresql":
        application_name = f"{THREAD_NAME_PREFIX} {run_id}"
        return create_engine(
            url,
            poolclass=NullPool,
            connect_args={
                "connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS,
                "application_name": application_name[:_APPLICATION_NAME_CHARACTERS],
            },
        )
    return create_engine(url, poolclass=NullPool)


def _is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _is_lock_wait(error: DBAPIError) -> bool:
    """Return whether a statement failed only because another one held a lock."""
    driver_error = error.orig
    sqlite_code = getattr(driver_error, "sqlite_errorcode", None)
    if sqlite_code is not None:
        # The primary code is the low byte of SQLite's extended error code.
        return sqlite_code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return getattr(driver_error, "sqlstate", None) == LOCK_NOT_AVAILABLE
