"""Fixtures for the service tests: an app on a fresh database, keys per role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from service_support import Keys, build_client, make_keys
from sqlalchemy.engine import Engine

from greenloop.store.base import make_engine
from greenloop.store.schema import upgrade


@pytest.fixture
def service_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def keys(service_engine: Engine) -> Keys:
    return make_keys(service_engine)


@pytest.fixture
def client(service_engine: Engine, keys: Keys) -> TestClient:
    return build_client(
        service_engine, rate_limit_per_minute=100_000, rate_limit_burst=10_000
    )
