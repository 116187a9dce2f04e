"""Consumer endpoints: the caller's own green record, CO2 avoided and incentives.

The record joins the caller's checkout confirmations with the green assets of
batch runs. Batch runs store users only as a keyed hash (a pseudonym), so the
service computes the caller's pseudonym with the same secret to find them.
Incentives are read live from the finance store, so a lottery entry shows
whether it won.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from greenloop.api.auth import Principal, require
from greenloop.api.problems import problem_responses
from greenloop.api.schemas import AwardOut, ConsumerImpactOut, RecordEntry
from greenloop.categories import Status
from greenloop.certify import Role
from greenloop.store import repositories

router = APIRouter(prefix="/v1/consumer", tags=["consumer"])
consumer_only = require(Role.CONSUMER)
ERRORS = problem_responses(401, 403, 429)
ConsumerKey = Annotated[Principal, Depends(consumer_only)]


def _user_key(request: Request, user_id: str) -> str:
    from greenloop.api.wiring import user_pseudonym

    return user_pseudonym(request.app.state.service.settings.key_dir, user_id)


def _entries(request: Request, user_id: str) -> list[RecordEntry]:
    """Return the caller's confirmations, then batch-run assets not confirmed here.

    Assets reversed by a return are left out.
    """
    from greenloop.store.runs import green_assets

    engine = request.app.state.service.engine
    with engine.connect() as connection:
        confirmations = repositories.list_confirmations(connection, user_id=user_id)
        assets = connection.execute(
            select(green_assets)
            .where(
                green_assets.c.user_key == _user_key(request, user_id),
                green_assets.c.reversed.is_(False),
            )
            .order_by(green_assets.c.occurred_at)
        ).mappings()
        entries = [_confirmation_entry(row) for row in confirmations]
        seen = {entry.purchase_id for entry in entries}
        entries.extend(
            _asset_entry(row) for row in assets if row["purchase_id"] not in seen
        )
    return entries


def _confirmation_entry(row: dict[str, Any]) -> RecordEntry:
    impact = row["impact"] or {}
    activity = impact.get("basis") == "activity"
    return RecordEntry(
        purchase_id=row["purchase_id"],
        merchant_id=row["merchant_id"],
        title=row["title"],
        amount=Decimal(row["amount"]),
        currency=row["currency"],
        verdict_status=Status(row["verdict_status"]),
        category=row["category"],
        kg_co2e_lifetime=float(impact["kg_co2e_lifetime"]) if activity else None,
        installments=row["installments"],
        occurred_at=row["occurred_at"],
        source="checkout",
    )


def _asset_entry(row: Any) -> RecordEntry:
    return RecordEntry(
        purchase_id=row["purchase_id"],
        merchant_id=row["merchant_id"] or "",
        title="",
        amount=Decimal(row["amount_fen"]) / 100,
        currency=row["currency"],
        verdict_status=Status.GREEN,
        category=row["category"],
        kg_co2e_lifetime=row["kg_co2e_lifetime"],
        installments=row["periods"],
        occurred_at=row["occurred_at"],
        source="batch_run",
    )


@router.get("/record", response_model=list[RecordEntry], responses=ERRORS)
def record(request: Request, principal: ConsumerKey) -> list[RecordEntry]:
    """List the caller's purchases with their verdicts, checkout and batch runs."""
    return _entries(request, principal.tenant_id)


@router.get("/impact", response_model=ConsumerImpactOut, responses=ERRORS)
def impact(request: Request, principal: ConsumerKey) -> ConsumerImpactOut:
    """Sum the CO2 the caller's green purchases avoid over their lifetime.

    Only green verdicts with an activity-based impact count; spend-based
    estimates are never added to them.
    """
    green = [
        entry
        for entry in _entries(request, principal.tenant_id)
        if entry.verdict_status is Status.GREEN and entry.kg_co2e_lifetime is not None
    ]
    return ConsumerImpactOut(
        user_id=principal.tenant_id,
        green_purchases=len(green),
        kg_co2e_lifetime=sum(entry.kg_co2e_lifetime or 0.0 for entry in green),
    )


@router.get("/incentives", response_model=list[AwardOut], responses=ERRORS)
def incentives(request: Request, principal: ConsumerKey) -> list[AwardOut]:
    """List the incentives awarded to the caller, with their current status."""
    from greenloop.store.finance import finance_awards

    engine = request.app.state.service.engine
    with engine.connect() as connection:
        rows = connection.execute(
            select(finance_awards)
            .where(finance_awards.c.user_key == _user_key(request, principal.tenant_id))
            .order_by(finance_awards.c.id)
        ).mappings()
        return [
            AwardOut(
                purchase_id=row["purchase_id"],
                award={
                    "campaign_id": row["campaign_id"],
                    "benefit": row["benefit_kind"],
                    "amount": str(Decimal(row["amount_fen"]) / 100),
                    "status": row["status"],
                    "awarded_at": row["awarded_at"].isoformat(),
                },
            )
            for row in rows
        ]
