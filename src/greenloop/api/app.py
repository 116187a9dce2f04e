"""The FastAPI application: settings, store, domain and routers joined."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy.engine import Engine

from greenloop.api import problems
from greenloop.api.auth import KeyCache
from greenloop.api.limits import BodySizeLimit, RateLimiter
from greenloop.api.platform import FeeOffers, IdentifierFactory, Platform
from greenloop.api.routes import (
    checkout,
    configuration,
    consumer,
    funder,
    merchant,
    operator,
    review,
)
from greenloop.api.settings import Settings
from greenloop.certify import Identifies
from greenloop.store.base import make_engine
from greenloop.store.repositories import CertifiedProductRow, to_certified_product
from greenloop.store.schema import upgrade

logger = logging.getLogger(__name__)

API_VERSION = "1.0.0"
ROUTERS = (
    checkout.router,
    merchant.router,
    review.reviewer_router,
    review.lender_router,
    consumer.router,
    funder.router,
    operator.router,
    configuration.router,
)


@dataclass
class ServiceState:
    """Everything a request handler needs, kept on `app.state.service`."""

    settings: Settings
    engine: Engine
    platform: Platform
    key_cache: KeyCache
    rate_limiter: RateLimiter
    rejected_keys: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count_rejected_key(self) -> None:
        """Count a request with an unknown key; log the 1st, 10th, 100th, ..."""
        with self._lock:
            self.rejected_keys += 1
            count = self.rejected_keys
        if count in (1, 10, 100) or count % 1000 == 0:
            logger.warning("%d requests rejected for an unknown or revoked key", count)


def default_identifier_factory(settings: Settings) -> IdentifierFactory:
    """Return a factory of Identifiers that share one load of the reference data.

    Standards, registries, ENERGY STAR files and the category model load once;
    each call builds an identifier with the given certified products and
    today's date.
    """
    from greenloop.identify import Identifier

    base: Identifier | None = None

    def build(certified: Sequence[CertifiedProductRow]) -> Identifies:
        nonlocal base
        if base is None:
            base = Identifier.load(
                jurisdiction=settings.jurisdiction,
                registry_dir=settings.registry_dir,
                energy_star_files=settings.energy_star_files,
            )
        return base.with_certified_products(
            [to_certified_product(row) for row in certified],
            as_of=datetime.now(UTC).date(),
        )

    return build


def default_platform(settings: Settings, engine: Engine) -> Platform:
    """Build the platform from the real domain packages and the finance store."""
    from greenloop.api.wiring import (
        CampaignIncentives,
        FinanceAwards,
        impact_calculator,
    )

    return Platform(
        engine=engine,
        identifier_factory=default_identifier_factory(settings),
        fee_offers=FeeOffers(),
        impact_calculator=impact_calculator(),
        incentives=CampaignIncentives(settings.campaigns_path),
        awards=FinanceAwards(
            engine,
            facilities_path=settings.facilities_path,
            campaigns_path=settings.campaigns_path,
            key_dir=settings.key_dir,
        ),
        check_interval_seconds=settings.certified_products_check_seconds,
    )


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    platform: Platform | None = None,
    migrate: bool = True,
) -> FastAPI:
    """Build the service; migrate the database first unless `migrate` is false."""
    resolved = settings or Settings.from_environment()
    database = engine or make_engine(resolved.database_url)
    if migrate:
        upgrade(database)

    state = ServiceState(
        settings=resolved,
        engine=database,
        platform=platform or default_platform(resolved, database),
        key_cache=KeyCache(resolved.api_key_cache_seconds),
        rate_limiter=RateLimiter(
            resolved.rate_limit_per_minute, resolved.rate_limit_burst
        ),
    )
    app = FastAPI(
        title="greenloop",
        version=API_VERSION,
        summary="Green consumer finance: checkout decisions, certification, funding.",
        description=(
            "Every endpoint needs an API key bound to one role and one tenant, "
            "sent as `Authorization: Bearer KEY`. Errors are RFC 9457 problem "
            "details."
        ),
    )
    app.state.service = state
    # Load the identifier now, so the first request does not wait for it.
    state.platform.identifier()

    problems.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(BodySizeLimit, max_bytes=resolved.max_body_bytes)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """Return the OpenAPI document with validation errors as problem details."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = problems.Problem.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for definition_name, definition in components["Problem"].pop("$defs", {}).items():
        components[definition_name] = definition
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"] = {
                    "description": "Invalid request",
                    "content": problems.PROBLEM_CONTENT,
                }
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema
