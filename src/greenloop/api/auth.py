"""API keys: who is calling, in which role, for which tenant.

A key is sent as `Authorization: Bearer KEY` (or `X-API-Key: KEY`). The store
keeps only its SHA-256. A verified key is cached for a few seconds so the hot
checkout path does not read the database on every request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from greenloop.api.problems import ProblemError
from greenloop.certify import Role
from greenloop.store import repositories
from greenloop.store.repositories import ApiKey

logger = logging.getLogger(__name__)

bearer_scheme = HTTPBearer(auto_error=False, description="an API key")
header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: the key's public id, its role and its tenant."""

    key_id: str
    role: Role
    tenant_id: str


class KeyCache:
    """Verified keys by hash, each trusted for `ttl_seconds`."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._entries: dict[str, tuple[ApiKey | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> tuple[bool, ApiKey | None]:
        """Return (found, key); found is false when absent or stale."""
        with self._lock:
            entry = self._entries.get(key_hash)
        if entry is None or entry[1] < time.monotonic():
            return False, None
        return True, entry[0]

    def put(self, key_hash: str, key: ApiKey | None) -> None:
        """Remember a lookup result, a missing key included."""
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key_hash] = (key, time.monotonic() + self.ttl_seconds)

    def clear(self) -> None:
        """Forget every cached key, for example after a revocation."""
        with self._lock:
            self._entries.clear()


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    header_key: Annotated[str | None, Depends(header_scheme)],
) -> Principal:
    """Resolve the caller's key, apply its rate limit, and return the principal.

    It runs on the event loop, because a cached key needs no I/O; only a cache
    miss reads the database, in the thread pool.
    """
    presented = bearer.credentials if bearer else header_key
    if not presented:
        raise ProblemError(
            401,
            "unauthenticated",
            "no API key was sent; send `Authorization: Bearer KEY`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    state = request.app.state.service
    key_hash = repositories.hash_api_key(presented)
    found, key = state.key_cache.get(key_hash)
    if not found:
        key = await run_in_threadpool(_lookup, state.engine, presented)
        state.key_cache.put(key_hash, key)
    if key is None:
        state.count_rejected_key()
        raise ProblemError(
            401,
            "invalid-api-key",
            "the API key is unknown or revoked; ask the operator for a new key",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    wait = state.rate_limiter.acquire(key.key_id)
    if wait > 0:
        raise ProblemError(
            429,
            "rate-limited",
            f"API key {key.key_id} exceeded its limit of "
            f"{state.settings.rate_limit_per_minute} requests per minute; "
            f"retry after {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    request.state.key_id = key.key_id
    return Principal(key.key_id, key.role, key.tenant_id)


def _lookup(engine: Engine, presented: str) -> ApiKey | None:
    with engine.connect() as connection:
        return repositories.find_api_key(connection, presented)


def require(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """Return a dependency that admits only callers in one of `roles`."""
    allowed = ", ".join(role.value for role in roles)

    async def dependency(
        principal: Annotated[Principal, Depends(authenticate)],
    ) -> Principal:
        if principal.role not in roles:
            raise ProblemError(
                403,
                "forbidden-role",
                f"this endpoint is for role {allowed}; the key {principal.key_id} "
                f"has role {principal.role.value}",
            )
        return principal

    return dependency
