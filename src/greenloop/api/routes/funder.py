"""Funder endpoints: the caller's own facility, never another's.

A funder key's tenant is a facility id from the facilities file. The pool,
allocation and impact views read the finance store. Checkpoints and receipts
come from the ledger, and a receipt is served only for a purchase whose loan
was allocated to the caller's facility.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel
from sqlalchemy import and_, func, select

from greenloop.api.auth import Principal, require
from greenloop.api.problems import ProblemError, problem_responses
from greenloop.certify import Role

router = APIRouter(prefix="/v1/funder", tags=["funder"])
funder_only = require(Role.FUNDER)
ERRORS = problem_responses(401, 403, 404, 409, 429)


class AllocationOut(BaseModel):
    """One loan allocated to the facility; money in fen."""

    purchase_id: str
    category: str
    allocated_fen: int
    outstanding_fen: int
    allocated_on: str
    released_on: str | None
    release_reason: str | None


class ImpactByCategory(BaseModel):
    """Avoided emissions of the loans the facility currently holds."""

    category: str
    loans: int
    kg_co2e_lifetime: float


class FacilityImpactOut(BaseModel):
    """The facility's impact report: activity-based avoided emissions only."""

    facility_id: str
    loans: int
    kg_co2e_lifetime: float
    t_co2e_lifetime: float
    by_category: list[ImpactByCategory]
    basis: str = "activity"


class CheckpointOut(BaseModel):
    """The latest signed checkpoint of the green-asset log (a C2SP signed note)."""

    checkpoint: str


def _facility(request: Request, principal: Principal) -> Any:
    from greenloop.funding import load_facilities

    settings = request.app.state.service.settings
    facilities = load_facilities(settings.facilities_path)
    for facility in facilities.facilities:
        if facility.id == principal.tenant_id:
            return facilities, facility
    raise ProblemError(
        404,
        "facility-not-found",
        f"facility {principal.tenant_id!r} of this key is not in the facilities "
        "file; ask the operator to add it",
    )


@router.get("/facility", response_model=dict[str, Any], responses=ERRORS)
def facility_pool(
    request: Request, principal: Annotated[Principal, Depends(funder_only)]
) -> dict[str, Any]:
    """Return the facility's pool, allocation and reconciliation (amounts in fen)."""
    from sqlalchemy.exc import NoResultFound

    from greenloop.store.finance import build_allocation_report

    facilities, facility = _facility(request, principal)
    engine = request.app.state.service.engine
    only_mine = facilities.model_copy(update={"facilities": [facility]})
    try:
        report = build_allocation_report(engine, only_mine, datetime.now(UTC).date())
    except NoResultFound:
        raise ProblemError(
            404,
            "facility-not-started",
            f"facility {facility.id!r} has no recorded state yet; it appears after "
            "its first allocation",
        ) from None
    return {
        "facility_id": facility.id,
        "as_of": report["as_of"],
        **report["facilities"][facility.id],
    }


@router.get("/allocations", response_model=list[AllocationOut], responses=ERRORS)
def allocations(
    request: Request, principal: Annotated[Principal, Depends(funder_only)]
) -> list[AllocationOut]:
    """List the loans allocated to the facility, released ones included."""
    from greenloop.store.finance import (
        finance_allocations,
        finance_loans,
    )

    _facility(request, principal)
    engine = request.app.state.service.engine
    query = (
        select(finance_allocations, finance_loans.c.category)
        .join(
            finance_loans,
            finance_loans.c.purchase_id == finance_allocations.c.purchase_id,
        )
        .where(finance_allocations.c.facility_id == principal.tenant_id)
        .order_by(finance_allocations.c.id)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return [
        AllocationOut(
            purchase_id=row["purchase_id"],
            category=row["category"],
            allocated_fen=int(row["allocated_fen"]),
            outstanding_fen=int(row["outstanding_fen"]),
            allocated_on=row["allocated_on"].isoformat(),
            released_on=row["released_on"].isoformat() if row["released_on"] else None,
            release_reason=row["release_reason"],
        )
        for row in rows
    ]


@router.get("/impact", response_model=FacilityImpactOut, responses=ERRORS)
def impact(
    request: Request, principal: Annotated[Principal, Depends(funder_only)]
) -> FacilityImpactOut:
    """Sum the avoided emissions of the loans the facility holds, by category."""
    from greenloop.store.finance import (
        finance_allocations,
        finance_loans,
    )

    _facility(request, principal)
    engine = request.app.state.service.engine
    query = (
        select(
            finance_loans.c.category,
            func.count(),
            func.coalesce(func.sum(finance_loans.c.kg_co2e_lifetime), 0.0),
        )
        .join(
            finance_loans,
            finance_loans.c.purchase_id == finance_allocations.c.purchase_id,
        )
        .where(
            and_(
                finance_allocations.c.facility_id == principal.tenant_id,
                finance_allocations.c.released_on.is_(None),
            )
        )
        .group_by(finance_loans.c.category)
        .order_by(finance_loans.c.category)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    by_category = [
        ImpactByCategory(
            category=category, loans=int(count), kg_co2e_lifetime=float(kg)
        )
        for category, count, kg in rows
    ]
    total = sum(item.kg_co2e_lifetime for item in by_category)
    return FacilityImpactOut(
        facility_id=principal.tenant_id,
        loans=sum(item.loans for item in by_category),
        kg_co2e_lifetime=total,
        t_co2e_lifetime=total / 1000,
        by_category=by_category,
    )


def _ledger(request: Request) -> Any:
    """Return the service's ledger store, opened on first use."""
    from greenloop.api.wiring import LEDGER_ORIGIN
    from greenloop.store.ledger import LedgerStore

    state = request.app.state
    if getattr(state, "ledger", None) is None:
        state.ledger = LedgerStore(
            state.service.engine,
            origin=LEDGER_ORIGIN,
            key_dir=state.service.settings.key_dir,
        )
    return state.ledger


@router.get("/checkpoint", response_model=CheckpointOut, responses=ERRORS)
def checkpoint(
    request: Request, principal: Annotated[Principal, Depends(funder_only)]
) -> CheckpointOut:
    """Return the latest signed checkpoint of the green-asset log."""
    _facility(request, principal)
    note = _ledger(request).latest_checkpoint()
    if note is None:
        raise ProblemError(
            404,
            "no-checkpoint",
            "the log has no signed checkpoint yet; the operator signs one with "
            "`greenloop ledger checkpoint`",
        )
    return CheckpointOut(checkpoint=note)


@router.get("/receipts/{purchase_id}", response_model=dict[str, Any], responses=ERRORS)
def receipt(
    purchase_id: Annotated[str, Path(min_length=1, max_length=128)],
    request: Request,
    principal: Annotated[Principal, Depends(funder_only)],
) -> dict[str, Any]:
    """Return the offline receipt of a loan allocated to the facility."""
    from greenloop.store.finance import finance_allocations
    from greenloop.store.ledger import LedgerError

    _facility(request, principal)
    engine = request.app.state.service.engine
    with engine.connect() as connection:
        allocated = connection.execute(
            select(func.count()).where(
                and_(
                    finance_allocations.c.facility_id == principal.tenant_id,
                    finance_allocations.c.purchase_id == purchase_id,
                )
            )
        ).scalar_one()
    if not allocated:
        raise ProblemError(
            404,
            "not-found",
            f"no loan for purchase {purchase_id!r} was allocated to facility "
            f"{principal.tenant_id!r}",
        )
    try:
        return dict(_ledger(request).receipt(purchase_id))
    except KeyError:
        raise ProblemError(
            404, "not-found", f"purchase {purchase_id!r} has no ledger entry"
        ) from None
    except LedgerError as error:
        raise ProblemError(409, "no-checkpoint", str(error)) from None
