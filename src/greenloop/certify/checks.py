"""The automatic check of a self-certification against the identifier.

The merchant's evidence becomes a product query. The identifier's verdict then
decides: green in the claimed category passes (registry-verified); not green
with no document for a reviewer to read fails; anything else passes to the
reviewer with the verdict's reasons attached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, Protocol

from greenloop.categories import Category, Status
from greenloop.identify.verdict import ProductQuery, Verdict


class Identifies(Protocol):
    """Anything that turns a product query into a verdict, like the Identifier."""

    def identify(self, query: ProductQuery) -> Verdict: ...


@dataclass(frozen=True, slots=True)
class Document:
    """A document the merchant attached, by name and content digest."""

    name: str
    sha256: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class SelfCertification:
    """What a merchant claims about one of its products, and on what evidence."""

    merchant_id: str
    sku: str
    title: str
    claimed_category: Category
    brand: str | None = None
    registry_model_number: str | None = None
    energy_label_grade: int | None = None
    certificate_codes: tuple[str, ...] = ()
    documents: tuple[Document, ...] = ()
    mcc: int | None = None

    def to_query(self) -> ProductQuery:
        """Return the product query the identifier checks."""
        codes = tuple(code.strip() for code in self.certificate_codes if code.strip())
        return ProductQuery(
            title=self.title,
            mcc=self.mcc,
            merchant_id=self.merchant_id,
            brand=self.brand,
            model_number=self.registry_model_number,
            sku=self.sku,
            energy_label_grade=self.energy_label_grade,
            certificate_id=codes[0] if codes else None,
            label_codes=codes[1:],
        )


class Outcome(StrEnum):
    """The result of the automatic check."""

    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The automatic check's outcome, the verdict it rests on and why."""

    outcome: Outcome
    verdict: Verdict
    reasons: tuple[str, ...]
    registry_valid_until: date | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain JSON-ready values."""
        return {
            "outcome": self.outcome.value,
            "verdict": _json_ready(self.verdict.to_dict()),
            "reasons": list(self.reasons),
            "registry_valid_until": (
                self.registry_valid_until.isoformat()
                if self.registry_valid_until
                else None
            ),
        }


def check(claim: SelfCertification, identifier: Identifies) -> CheckResult:
    """Run the identifier on the claim's evidence and grade the result."""
    verdict = identifier.identify(claim.to_query())
    claimed = claim.claimed_category
    if verdict.status is Status.GREEN and verdict.category is claimed:
        return CheckResult(
            Outcome.VERIFIED,
            verdict,
            (
                f"the identifier verified the {claimed.value} claim "
                "on registry evidence",
            ),
            registry_valid_until=_registry_valid_until(verdict),
            attributes=dict(verdict.attributes),
        )
    if verdict.status is Status.NOT_GREEN and not claim.documents:
        reasons = verdict.reasons or ("no evidence for the claim was verified",)
        return CheckResult(
            Outcome.FAILED,
            verdict,
            (
                f"the identifier found the {claimed.value} claim not green and "
                "no document was attached for review",
                *reasons,
            ),
        )
    found = verdict.category.value if verdict.category else "no category"
    return CheckResult(
        Outcome.UNVERIFIED,
        verdict,
        (
            f"the identifier returned {verdict.status.value} ({found}); "
            "a reviewer must check the evidence",
            *verdict.reasons,
        ),
    )


def _registry_valid_until(verdict: Verdict) -> date | None:
    dates: list[date] = []
    for evidence in verdict.evidence:
        raw = evidence.attributes.get("valid_until") if evidence.verified else None
        if isinstance(raw, date):
            dates.append(raw)
        elif isinstance(raw, str) and raw:
            try:
                dates.append(date.fromisoformat(raw))
            except ValueError:
                continue
    return min(dates) if dates else None


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
