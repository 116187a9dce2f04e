"""Helpers for the service tests: a rule identifier, keys per role, clients.

`RuleIdentifier` stands in for the registry-backed Identifier where a test
needs fixed verdicts: certified products are green in their category, a
grade-1 energy label is a green appliance, an unverified organic claim needs
review, and everything else is not green.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from greenloop.api.app import create_app
from greenloop.api.platform import FeeOffers, Platform
from greenloop.api.settings import Settings
from greenloop.categories import Category, Status
from greenloop.certify import Role
from greenloop.identify.verdict import Evidence, ProductQuery, Verdict
from greenloop.store import repositories
from greenloop.store.repositories import CertifiedProductRow


class RuleIdentifier:
    """A deterministic identifier with the rules in the module docstring."""

    def __init__(self, certified: Sequence[CertifiedProductRow] = ()) -> None:
        self.certified = {(row.merchant_id, row.sku): row for row in certified}

    def identify(self, query: ProductQuery) -> Verdict:
        row = self.certified.get((query.merchant_id or "", query.sku or ""))
        if row is not None:
            return Verdict(
                status=Status.GREEN,
                category=row.category,
                standard_id="certified-product",
                standard_version="1",
                evidence=(
                    Evidence(
                        kind="certified_product",
                        value=row.certification_id,
                        source="greenloop certification",
                        verified=True,
                        attributes={"certification_id": row.certification_id},
                    ),
                ),
                reasons=("certified product",),
                attributes=dict(row.attributes),
            )
        if query.energy_label_grade == 1:
            return Verdict(
                status=Status.GREEN,
                category=Category.APPLIANCE,
                standard_id="cn-appliance",
                standard_version="2026",
                evidence=(
                    Evidence(
                        kind="energy_label",
                        value="1",
                        source="test registry",
                        verified=True,
                        attributes={"valid_until": "2030-01-31"},
                    ),
                ),
                reasons=("energy-label grade 1",),
                attributes={"appliance_type": "refrigerator", "energy_label_grade": 1},
            )
        if "organic" in query.title.lower():
            return Verdict(
                status=Status.NEEDS_REVIEW,
                category=Category.ORGANIC_FOOD,
                standard_id=None,
                standard_version=None,
                reasons=("organic claim without a verified code",),
            )
        return Verdict(
            status=Status.NOT_GREEN,
            category=None,
            standard_id=None,
            standard_version=None,
            reasons=("no evidence",),
        )


@dataclass
class Keys:
    """API keys by name, e.g. keys["merchant"] for tenant m-1."""

    values: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.values[name]}"}


KEY_TENANTS = {
    "merchant": (Role.MERCHANT, "m-1"),
    "merchant_other": (Role.MERCHANT, "m-2"),
    "reviewer": (Role.REVIEWER, "r-1"),
    "lender": (Role.LENDER, "l-1"),
    "funder": (Role.FUNDER, "facility-1"),
    "funder_other": (Role.FUNDER, "facility-2"),
    "consumer": (Role.CONSUMER, "u-1"),
    "consumer_other": (Role.CONSUMER, "u-2"),
    "operator": (Role.OPERATOR, "ops-1"),
}


def make_keys(engine: Engine) -> Keys:
    """Create one key per entry of KEY_TENANTS."""
    values = {}
    with engine.begin() as connection:
        for name, (role, tenant) in KEY_TENANTS.items():
            values[name], _ = repositories.create_api_key(
                connection,
                role=role,
                tenant_id=tenant,
                label=f"test {name}",
                now=datetime.now(UTC),
            )
    return Keys(values)


def make_platform(engine: Engine) -> Platform:
    """A platform with the rule identifier and the real fee offers."""
    return Platform(
        engine=engine,
        identifier_factory=RuleIdentifier,
        fee_offers=FeeOffers(),
        check_interval_seconds=0.0,
    )


def build_client(engine: Engine, **settings: object) -> TestClient:
    """Return a test client for an app on `engine` with the rule identifier."""
    settings.setdefault("key_dir", Path(tempfile.mkdtemp(prefix="greenloop-keys-")))
    app = create_app(
        Settings(database_url=str(engine.url), **settings),  # type: ignore[arg-type]
        engine=engine,
        platform=make_platform(engine),
        migrate=False,
    )
    return TestClient(app, raise_server_exceptions=False)
