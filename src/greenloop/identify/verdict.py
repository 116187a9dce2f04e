"""The records an identification produces: evidence, claim findings, verdicts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from greenloop.categories import Category, Status


@dataclass(frozen=True, slots=True)
class ProductQuery:
    """The facts known of one product at identification time.

    Every field but `title` is optional. The batch run builds one query per
    distinct product key, so two purchases with equal queries share a verdict.
    """

    title: str
    mcc: int | None = None
    merchant_id: str | None = None
    merchant_name: str | None = None
    brand: str | None = None
    model_number: str | None = None
    sku: str | None = None
    energy_label_grade: int | None = None
    certificate_id: str | None = None
    label_codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Evidence:
    """One piece of evidence and where it was verified.

    `kind` is a short id such as `energy_label`, `energy_star`, `certificate`,
    `nev_catalogue`, `mcc` or `certified_product`. `source` names the registry
    snapshot or standard that confirmed it, and `verified` is false for a claim
    that no registry confirmed.
    """

    kind: str
    value: str
    source: str
    verified: bool
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClaimFinding:
    """A green claim found in a product text, with the rule that matched it.

    `kind` is `generic`, `specific`, `neutrality_offset`, `single_attribute` or
    `future_pledge`; `term` is the matched words as they appear in the text.
    """

    rule: str
    kind: str
    term: str
    message: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of identifying one product against one jurisdiction's standards.

    `attributes` carries the verified facts that impact methods need, for
    example `appliance_type`, `energy_label_grade`, `annual_kwh` and
    `federal_standard_kwh`.
    """

    status: Status
    category: Category | None
    standard_id: str | None
    standard_version: str | None
    evidence: tuple[Evidence, ...] = ()
    claims: tuple[ClaimFinding, ...] = ()
    model_category: Category | None = None
    model_score: float | None = None
    reasons: tuple[str, ...] = ()
    top_tier: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the verdict as plain JSON-ready values."""
        return asdict(self)
