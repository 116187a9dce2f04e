"""Conversions from domain records to the API's response models."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from functools import lru_cache
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


_VERDICT_DOCUMENTS: dict[int, tuple[Verdict, dict[str, Any]]] = {}
_VERDICT_DOCUMENTS_MAX = 65536


def verdict_document(verdict: Verdict) -> dict[str, Any]:
    """Return the verdict's JSON document, built once per verdict object.

    Verdicts come from the platform's cache, so equal purchases share one
    object. Each entry keeps its verdict alive, so an id is never reused
    while its entry exists. Callers must not modify the returned document.
    """
    entry = _VERDICT_DOCUMENTS.get(id(verdict))
    if entry is not None and entry[0] is verdict:
        return entry[1]
    document = verdict_out(verdict).model_dump(mode="json")
    if len(_VERDICT_DOCUMENTS) >= _VERDICT_DOCUMENTS_MAX:
        _VERDICT_DOCUMENTS.clear()
    _VERDICT_DOCUMENTS[id(verdict)] = (verdict, document)
    return document


@lru_cache(maxsize=8192)
def offer_document(offer: Offer) -> dict[str, Any]:
    """Return the offer's JSON document, cached because offers are frozen.

    Callers must not modify the returned document.
    """
    return offer_out(offer).model_dump(mode="json")
