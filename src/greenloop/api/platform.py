"""The domain behind the service: identification, offers, impact and awards.

`Platform` joins the pure packages for the API. It identifies products, with
certified products as evidence that is reloaded when certifications change.
It prices the installment offers and their APR, estimates the impact and lists
the incentives a purchase qualifies for. On confirmation it awards the green
loan and the incentives. Each part is a small protocol, so tests and other
deployments can swap one without the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol, cast

from sqlalchemy.engine import Engine

from greenloop.certify import Identifies
from greenloop.identify.verdict import ProductQuery, Verdict
from greenloop.impact.record import Impact
from greenloop.store import repositories
from greenloop.store.repositories import CertifiedProductRow

logger = logging.getLogger(__name__)

OFFER_CURRENCY = "CNY"


@dataclass(frozen=True, slots=True)
class Purchase:
    """The facts of one purchase at checkout, after validation."""

    merchant_id: str
    title: str
    amount: Decimal
    currency: str
    quantity: Decimal = Decimal(1)
    region: str | None = None
    user_id: str | None = None
    purchase_id: str | None = None
    merchant_name: str | None = None
    mcc: int | None = None
    sku: str | None = None
    brand: str | None = None
    model_number: str | None = None
    energy_label_grade: int | None = None
    certificate_id: str | None = None
    label_codes: tuple[str, ...] = ()
    installments: int = 0
    occurred_at: datetime | None = None

    def to_query(self) -> ProductQuery:
        """Return the identifier's query for this purchase's product."""
        return ProductQuery(
            title=self.title,
            mcc=self.mcc,
            merchant_id=self.merchant_id,
            merchant_name=self.merchant_name,
            brand=self.brand,
            model_number=self.model_number,
            sku=self.sku,
            energy_label_grade=self.energy_label_grade,
            certificate_id=self.certificate_id,
            label_codes=self.label_codes,
        )


@dataclass(frozen=True, slots=True)
class Offer:
    """One installment offer: the plan's money in yuan and its annualised rate."""

    periods: int
    fee_rate: Decimal
    fee: Decimal
    first_installment: Decimal
    total: Decimal
    apr_nominal: Decimal
    apr_effective: Decimal
    schedule_id: str


class ImpactCalculating(Protocol):
    """The impact calculator's interface."""

    def impact(
        self, verdict: Verdict, quantity: float, region: str | None
    ) -> Impact | None: ...


class Incentives(Protocol):
    """Lists the incentives a purchase qualifies for, awarding nothing."""

    def qualifying(
        self, purchase: Purchase, verdict: Verdict, offers: Sequence[Offer]
    ) -> list[dict[str, Any]]: ...


class Awards(Protocol):
    """Awards a confirmed purchase its green loan and incentives, and revokes them.

    Both calls are idempotent per purchase id and commit on their own.
    """

    def award(
        self,
        purchase: Purchase,
        verdict: Verdict,
        offer: Offer | None,
        impact: Impact | None,
    ) -> list[dict[str, Any]]: ...

    def revoke(self, purchase_ids: Sequence[str], reason: str) -> dict[str, Any]: ...


IdentifierFactory = Callable[[Sequence[CertifiedProductRow]], Identifies]


class FeeOffers:
    """Prices the installment offers of a fee schedule, with each plan's APR."""

    def __init__(self, schedule_id: str | None = None) -> None:
        from greenloop.lending import load_fee_schedules

        self.schedule = load_fee_schedules().get(schedule_id)

    def offers(self, amount: Decimal, currency: str) -> list[Offer]:
        """Return one offer per period count, or none in another currency."""
        if currency != self.schedule.currency:
            return []
        return [
            _price_offer(amount, periods, rate, self.schedule.id)
            for periods, rate in sorted(self.schedule.fee_rates.items())
        ]


@lru_cache(maxsize=8192)
def _price_offer(
    amount: Decimal, periods: int, rate: Decimal, schedule_id: str
) -> Offer:
    from greenloop.lending import fee_plan, fen_to_yuan, yuan_to_fen

    plan = fee_plan(yuan_to_fen(amount), periods, rate)
    annual = plan.annual_rate()
    return Offer(
        periods=periods,
        fee_rate=rate,
        fee=fen_to_yuan(plan.fee_fen),
        first_installment=fen_to_yuan(plan.installments[0].amount_fen),
        total=fen_to_yuan(plan.total_fen),
        apr_nominal=annual.nominal_annual.quantize(Decimal("0.0001")),
        apr_effective=annual.effective_annual.quantize(Decimal("0.0001")),
        schedule_id=schedule_id,
    )


@dataclass
class Platform:
    """The domain parts the service calls, with a cached identifier."""

    engine: Engine
    identifier_factory: IdentifierFactory
    fee_offers: FeeOffers | None = None
    impact_calculator: ImpactCalculating | None = None
    incentives: Incentives | None = None
    awards: Awards | None = None
    check_interval_seconds: float = 5.0
    _identifier: Identifies | None = field(default=None, init=False)
    _fingerprint: object = field(default=None, init=False)
    _checked_at: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def identifier(self) -> Identifies:
        """Return the identifier, rebuilt when the certified products changed."""
        now = time.monotonic()
        if (
            self._identifier is not None
            and now - self._checked_at < self.check_interval_seconds
        ):
            return self._identifier
        with self._lock:
            if (
                self._identifier is not None
                and now - self._checked_at < self.check_interval_seconds
            ):
                return self._identifier
            with self.engine.connect() as connection:
                # The date is part of the fingerprint, so expiry and registry
                # staleness move on at midnight UTC.
                fingerprint = (
                    repositories.certifications_version(connection),
                    today_utc(),
                )
                if self._identifier is None or fingerprint != self._fingerprint:
                    certified = repositories.certified_products(
                        connection, as_of=datetime.now(UTC).date()
                    )
                    self._identifier = self.identifier_factory(certified)
                    self._fingerprint = fingerprint
                    _cached_identify.cache_clear()
                    logger.info(
                        "identifier loaded with %d certified products", len(certified)
                    )
            self._checked_at = time.monotonic()
            return self._identifier

    def invalidate(self) -> None:
        """Force a fingerprint check on the next identification."""
        self._checked_at = 0.0

    def identify(self, purchase: Purchase) -> Verdict:
        """Identify the purchase's product; equal queries share one verdict."""
        identifier = self.identifier()
        return _cached_identify(cast(Hashable, identifier), purchase.to_query())

    def offers(self, purchase: Purchase) -> list[Offer]:
        """Return the installment offers for the purchase's amount."""
        if self.fee_offers is None:
            return []
        return self.fee_offers.offers(purchase.amount, purchase.currency)

    def impact(self, purchase: Purchase, verdict: Verdict) -> Impact | None:
        """Return the purchase's avoided emissions, or None when unknown."""
        if self.impact_calculator is None:
            return None
        return self.impact_calculator.impact(
            verdict, float(purchase.quantity), purchase.region
        )

    def qualifying_incentives(
        self, purchase: Purchase, verdict: Verdict, offers: Sequence[Offer]
    ) -> list[dict[str, Any]]:
        """Return the incentives the purchase qualifies for, awarding nothing."""
        if self.incentives is None:
            return []
        return self.incentives.qualifying(purchase, verdict, offers)

    def award(
        self,
        purchase: Purchase,
        verdict: Verdict,
        offer: Offer | None,
        impact: Impact | None,
    ) -> list[dict[str, Any]]:
        """Award the confirmed purchase's loan and incentives; idempotent."""
        if self.awards is None:
            return []
        return self.awards.award(purchase, verdict, offer, impact)

    def revoke(self, purchase_ids: Sequence[str], reason: str) -> dict[str, Any]:
        """Take the purchases' loans out of facility pools after a revocation."""
        if self.awards is None or not purchase_ids:
            return {"purchase_ids": list(purchase_ids)}
        return self.awards.revoke(purchase_ids, reason)


@lru_cache(maxsize=65536)
def _cached_identify(identifier: Hashable, query: ProductQuery) -> Verdict:
    return cast(Identifies, identifier).identify(query)


def certification_of(verdict: Verdict) -> int | None:
    """Return the certification id a verdict rests on, if a certified product."""
    for evidence in verdict.evidence:
        if evidence.kind == "certified_product" and evidence.verified:
            raw = evidence.attributes.get("certification_id") or evidence.value
            try:
                return int(raw)
            except (TypeError, ValueError):
                return None
    return None


def today_utc() -> date:
    """Return today's date in UTC."""
    return datetime.now(UTC).date()
