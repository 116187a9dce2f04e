"""Products certified through greenloop's own certification workflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from greenloop.categories import Category


@dataclass(frozen=True, slots=True)
class CertifiedProduct:
    """A merchant's product that passed self-certification and platform review.

    The identifier matches it by merchant id and SKU. `valid_until` None means
    no expiry was recorded; `attributes` carries the verified facts (for
    example `appliance_type` and `energy_label_grade`) into the verdict.
    """

    merchant_id: str
    sku: str
    category: Category
    certification_id: str
    valid_until: date | None
    attributes: dict[str, Any] = field(default_factory=dict)
