"""Conversions from domain records to the API's response models."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from greenloop.api.platform import Offer
from greenloop.api.schemas import ImpactOut, OfferOut, VerdictOut
from greenloop.identify.verdict import Verdict
from greenloop.impact.record import Impact


def json_ready(value: Any) -> Any:
    """Return `value` with dates, decimals, enums and tuples as JSON values."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def verdict_out(verdict: Verdict) -> VerdictOut:
    """Return the verdict as its response model."""
    return VerdictOut.model_validate(json_ready(verdict.to_dict()))


def offer_out(offer: Offer) -> OfferOut:
    """Return the offer as its response model."""
    return OfferOut.model_validate(asdict(offer))


def impact_out(impact: Impact | None) -> ImpactOut | None:
    """Return the impact as its response model, or None."""
    if impact is None:
        return None
    return ImpactOut.model_validate(json_ready(impact.to_dict()))
