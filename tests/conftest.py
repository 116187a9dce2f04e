"""Fixtures shared by the whole suite: reference data and database URLs."""

from __future__ import annotations

import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (PROJECT_ROOT / ".." / "shared" / "data").resolve()
POSTGRES_ADMIN_URL = os.environ.get(
    "GREENLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Return ../shared/data, or skip when the reference data are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}; these tests need it")
    return SHARED_DATA


def _postgres_reachable() -> bool:
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(POSTGRES_ADMIN_URL)
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
    except Exception:
        return False
    return True


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """Yield a URL whose connections use a new, empty schema in the `test` database.

    Outside CI the tests skip when the server is down; in CI (`CI` set) they fail,
    because `.ci/run` starts the server.
    """
    from sqlalchemy import create_engine, text

    if not _postgres_reachable():
        message = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'create schema "{schema}"'))
    separator = "&" if "?" in POSTGRES_ADMIN_URL else "?"
    yield f"{POSTGRES_ADMIN_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.connect() as connection:
        connection.execute(text(f'drop schema "{schema}" cascade'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """Return the URL of a new SQLite file in the test's folder."""
    return f"sqlite:///{tmp_path / 'greenloop.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return a fresh database URL, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'greenloop.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def heartbeat_connections() -> Iterator[Counter[str]]:
    """Count the database connections heartbeat threads open and close meanwhile.

    The counter's keys are "opened" and "closed".
    """
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    from greenloop.store.heartbeat import THREAD_NAME_PREFIX

    counts: Counter[str] = Counter()

    def count(key: str) -> None:
        if threading.current_thread().name.startswith(THREAD_NAME_PREFIX):
            counts[key] += 1

    def on_connect(_dbapi_connection: object, _record: object) -> None:
        count("opened")

    def on_close(_dbapi_connection: object, _record: object) -> None:
        count("closed")

    event.listen(Pool, "connect", on_connect)
    event.listen(Pool, "close", on_close)
    yield counts
    event.remove(Pool, "connect", on_connect)
    event.remove(Pool, "close", on_close)
