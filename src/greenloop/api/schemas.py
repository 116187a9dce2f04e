"""Request and response bodies of the API, as Pydantic models."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from greenloop.categories import Category, Status


def _as_utc(value: datetime) -> datetime:
    # The store writes UTC; SQLite returns it without a zone, so add it back.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@-]+$"),
]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=500)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
RegionCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Money = Annotated[
    Decimal,
    Field(gt=0, le=Decimal("100000000"), max_digits=14, decimal_places=2),
]


class Closed(BaseModel):
    """A model that rejects unknown fields."""

    model_config = ConfigDict(extra="forbid")


class CheckoutRequest(Closed):
    """One purchase line at checkout.

    `amount` is the line total in the currency's major unit (yuan for CNY).
    `merchant_id` defaults to the calling merchant's id and must equal it.
    """

    merchant_id: Identifier | None = None
    title: Title
    amount: Money
    currency: CurrencyCode = "CNY"
    quantity: Annotated[
        Decimal, Field(gt=0, le=100000, max_digits=12, decimal_places=3)
    ] = Decimal(1)
    region: RegionCode | None = None
    user_id: Identifier | None = None
    merchant_name: ShortText | None = None
    mcc: Annotated[int, Field(ge=0, le=9999)] | None = None
    sku: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    brand: ShortText | None = None
    model_number: ShortText | None = None
    energy_label_grade: Annotated[int, Field(ge=1, le=5)] | None = None
    certificate_id: ShortText | None = None
    label_codes: Annotated[list[ShortText], Field(max_length=20)] = []


class ConfirmationRequest(CheckoutRequest):
    """A purchase the consumer has confirmed, with the plan chosen.

    `installments` is 0 or 1 for paying at once, else one of the offered periods.
    """

    purchase_id: Annotated[
        str,
        StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$"),
    ]
    user_id: Identifier
    installments: Annotated[int, Field(ge=0, le=36)] = 0
    occurred_at: UtcDatetime | None = None


class EvidenceOut(BaseModel):
    """One piece of evidence behind a verdict."""

    kind: str
    value: str
    source: str
    verified: bool
    attributes: dict[str, Any] = {}


class ClaimOut(BaseModel):
    """A green claim found in the product text."""

    rule: str
    kind: str
    term: str
    message: str


class VerdictOut(BaseModel):
    """The identification of the purchase's product."""

    status: Status
    category: Category | None
    standard_id: str | None
    standard_version: str | None
    evidence: list[EvidenceOut]
    claims: list[ClaimOut]
    model_category: Category | None = None
    model_score: float | None = None
    reasons: list[str]
    top_tier: bool = False
    attributes: dict[str, Any] = {}


class OfferOut(BaseModel):
    """An installment offer with its annualised rate (APR).

    Money is in the purchase currency's major unit; rates are decimals
    (0.159 = 15.9 %). `apr_nominal` is 12 times the monthly internal rate of
    return, `apr_effective` compounds it over a year.
    """

    periods: int
    fee_rate: Decimal
    fee: Decimal
    first_installment: Decimal
    total: Decimal
    apr_nominal: Decimal
    apr_effective: Decimal
    schedule_id: str


class ImpactOut(BaseModel):
    """The avoided emissions of the purchase line, in kgCO2e."""

    method: str
    method_version: str
    basis: str
    kg_co2e_per_year: float
    kg_co2e_lifetime: float
    low_kg_co2e_lifetime: float
    high_kg_co2e_lifetime: float
    lifetime_years: float
    factors: list[dict[str, Any]] = []
    assumptions: list[str] = []
    region_used: str | None = None
    extra: dict[str, Any] = {}


class DecisionOut(BaseModel):
    """The checkout view of a purchase: verdict, offers, impact and incentives.

    A decision awards nothing; `POST /v1/checkout/confirmations` does.
    """

    verdict: VerdictOut
    offers: list[OfferOut]
    incentives: list[dict[str, Any]]
    impact: ImpactOut | None
    awarded: bool = False


class ConfirmationOut(BaseModel):
    """A confirmed purchase and what it was awarded."""

    confirmation_id: int
    purchase_id: str
    merchant_id: str
    user_id: str
    verdict: VerdictOut
    offer: OfferOut | None
    impact: ImpactOut | None
    awards: list[dict[str, Any]]
    created_at: UtcDatetime


class ProductIn(Closed):
    """A merchant's product."""

    sku: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    title: Title
    brand: ShortText | None = None
    model_number: ShortText | None = None
    mcc: Annotated[int, Field(ge=0, le=9999)] | None = None


class ProductOut(BaseModel):
    """A stored product."""

    id: int
    merchant_id: str
    sku: str
    title: str
    brand: str | None
    model_number: str | None
    mcc: int | None
    created_at: UtcDatetime


class DocumentIn(Closed):
    """A document attached to a self-certification, by name and SHA-256."""

    name: ShortText
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    url: Annotated[str, StringConstraints(max_length=1000)] | None = None


class CertificationIn(Closed):
    """A merchant's self-certification of one of its products."""

    product_id: Annotated[int, Field(ge=1)]
    claimed_category: Category
    certificate_codes: Annotated[list[ShortText], Field(max_length=20)] = []
    energy_label_grade: Annotated[int, Field(ge=1, le=5)] | None = None
    registry_model_number: ShortText | None = None
    documents: Annotated[list[DocumentIn], Field(max_length=20)] = []


class TransitionOut(BaseModel):
    """One recorded move of a certification."""

    from_state: str | None
    to_state: str
    actor_role: str
    actor_id: str
    reason: str
    occurred_at: UtcDatetime


class CertificationOut(BaseModel):
    """A certification with its evidence, automatic check and audit trail."""

    id: int
    product_id: int
    merchant_id: str
    claimed_category: Category
    state: str
    evidence: dict[str, Any]
    auto_check: dict[str, Any] | None
    valid_until: date | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    transitions: list[TransitionOut] = []


class DecisionIn(Closed):
    """A reviewer's or lender's decision, with the reason recorded."""

    reason: Reason


class RecordEntry(BaseModel):
    """One confirmed purchase in a consumer's green record."""

    purchase_id: str
    merchant_id: str
    title: str
    amount: Decimal
    currency: str
    verdict_status: Status
    category: Category | None
    kg_co2e_lifetime: float | None
    installments: int
    occurred_at: UtcDatetime
    source: str = Field(description="checkout or batch_run")


class ConsumerImpactOut(BaseModel):
    """A consumer's avoided emissions over green confirmed purchases."""

    user_id: str
    green_purchases: int
    kg_co2e_lifetime: float
    basis: str = "activity"


class AwardOut(BaseModel):
    """One award made to a consumer's confirmed purchase."""

    purchase_id: str
    award: dict[str, Any]


class ExpiryOut(BaseModel):
    """The certifications an expiry pass moved to expired."""

    expired: list[int]


class ApiKeyIn(Closed):
    """A new API key's role, tenant and label."""

    role: Annotated[
        str,
        StringConstraints(
            pattern=r"^(merchant|reviewer|lender|funder|consumer|operator)$"
        ),
    ]
    tenant_id: Identifier
    label: ShortText = "created through the API"


class ApiKeyOut(BaseModel):
    """A key's public record; `api_key` is set only in the creation response."""

    key_id: str
    role: str
    tenant_id: str
    label: str
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None = None
    api_key: str | None = None
