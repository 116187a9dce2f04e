"""Consumer endpoints: the caller's own green record, CO2 avoided and incentives."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from greenloop.api.auth import Principal, require
from greenloop.api.problems import problem_responses
from greenloop.api.schemas import AwardOut, ConsumerImpactOut, RecordEntry
from greenloop.categories import Status
from greenloop.certify import Role
from greenloop.store import repositories

router = APIRouter(prefix="/v1/consumer", tags=["consumer"])
consumer_only = require(Role.CONSUMER)
ERRORS = problem_responses(401, 403, 429)


def _confirmations(request: Request, user_id: str) -> list[dict]:
    with request.app.state.service.engine.connect() as connection:
        return repositories.list_confirmations(connection, user_id=user_id)


@router.get("/record", response_model=list[RecordEntry], responses=ERRORS)
def record(
    request: Request, principal: Annotated[Principal, Depends(consumer_only)]
) -> list[RecordEntry]:
    """List the caller's confirmed purchases with their verdicts."""
    return [
        RecordEntry(
            purchase_id=row["purchase_id"],
            merchant_id=row["merchant_id"],
            title=row["title"],
            amount=Decimal(row["amount"]),
            currency=row["currency"],
            verdict_status=Status(row["verdict_status"]),
            category=row["category"],
            kg_co2e_lifetime=(
                float(row["kg_co2e_lifetime"]) if row["kg_co2e_lifetime"] else None
            ),
            installments=row["installments"],
            occurred_at=row["occurred_at"],
        )
        for row in _confirmations(request, principal.tenant_id)
    ]


@router.get("/impact", response_model=ConsumerImpactOut, responses=ERRORS)
def impact(
    request: Request, principal: Annotated[Principal, Depends(consumer_only)]
) -> ConsumerImpactOut:
    """Sum the CO2 the caller's green purchases avoid over their lifetime.

    Only green verdicts with an activity-based impact count; spend-based
    estimates are never added to them.
    """
    total = 0.0
    count = 0
    for row in _confirmations(request, principal.tenant_id):
        figures = row["impact"] or {}
        if row["verdict_status"] != Status.GREEN.value:
            continue
        if figures.get("basis") != "activity":
            continue
        total += float(figures["kg_co2e_lifetime"])
        count += 1
    return ConsumerImpactOut(
        user_id=principal.tenant_id, green_purchases=count, kg_co2e_lifetime=total
    )


@router.get("/incentives", response_model=list[AwardOut], responses=ERRORS)
def incentives(
    request: Request, principal: Annotated[Principal, Depends(consumer_only)]
) -> list[AwardOut]:
    """List the incentives awarded to the caller's purchases."""
    return [
        AwardOut(purchase_id=row["purchase_id"], award=award)
        for row in _confirmations(request, principal.tenant_id)
        for award in row["awards"] or []
    ]
