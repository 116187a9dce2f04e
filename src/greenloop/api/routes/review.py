"""Reviewer and lender endpoints: the review queue, certification, revocation.

A platform reviewer approves or rejects self-certifications in review. The
lender certifies or rejects approved ones and revokes certified ones; a
revocation turns the verdicts resting on the certification to needs_review and
takes their loans out of facility pools.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from greenloop.api.auth import Principal, require
from greenloop.api.problems import problem_responses
from greenloop.api.routes.common import certification_out, store_errors, utc_now
from greenloop.api.schemas import CertificationOut, DecisionIn, ExpiryOut
from greenloop.certify import Action, Role, State, next_state
from greenloop.store import repositories

logger = logging.getLogger(__name__)

reviewer_router = APIRouter(prefix="/v1/reviewer", tags=["reviewer"])
lender_router = APIRouter(prefix="/v1/lender", tags=["lender"])
reviewer_only = require(Role.REVIEWER)
lender_only = require(Role.LENDER)
ERRORS = problem_responses(401, 403, 404, 409, 413, 422, 429)


def _queue(request: Request, state: State) -> list[CertificationOut]:
    with request.app.state.service.engine.connect() as connection:
        rows = repositories.list_certifications(connection, states=[state])
        return [
            certification_out(connection, row, with_transitions=False) for row in rows
        ]


def _act(
    request: Request,
    certification_id: int,
    action: Action,
    principal: Principal,
    reason: str,
) -> CertificationOut:
    service = request.app.state.service
    if action is Action.REVOKE:
        return revoke_certification(request, certification_id, principal, reason)
    with store_errors(), service.engine.begin() as connection:
        row = repositories.apply_action(
            connection,
            certification_id,
            action,
            role=principal.role,
            actor_id=principal.tenant_id,
            reason=reason,
            now=utc_now(),
        )
        result = certification_out(connection, row)
    if action is Action.CERTIFY:
        service.platform.invalidate()
    return result


def revoke_certification(
    request: Request, certification_id: int, principal: Principal, reason: str
) -> CertificationOut:
    """Revoke, then take the affected loans out of facility pools.

    The transition is checked before the loans move, and the loans move before
    the revocation commits: a failure in between leaves the certification
    certified, and revoking the loans again is harmless.
    """
    service = request.app.state.service
    with store_errors(), service.engine.connect() as connection:
        current = repositories.get_certification(connection, certification_id)
        next_state(State(current["state"]), Action.REVOKE, principal.role)
        affected = repositories.purchases_resting_on(
            connection, certification_id=certification_id
        )
    outcome = service.platform.revoke(
        affected, f"certification {certification_id} revoked: {reason}"
    )
    with store_errors(), service.engine.begin() as connection:
        row = repositories.apply_action(
            connection,
            certification_id,
            Action.REVOKE,
            role=principal.role,
            actor_id=principal.tenant_id,
            reason=reason,
            now=utc_now(),
        )
        repositories.mark_verdicts_for_review(
            connection,
            certification_id=certification_id,
            reason=f"certification {certification_id} revoked: {reason}",
        )
        result = certification_out(connection, row)
    service.platform.invalidate()
    logger.info(
        "certification %d revoked by %s: %d purchases to review, loans: %s",
        certification_id,
        principal.key_id,
        len(affected),
        outcome,
    )
    return result


@reviewer_router.get("/queue", response_model=list[CertificationOut], responses=ERRORS)
def review_queue(
    request: Request, _principal: Annotated[Principal, Depends(reviewer_only)]
) -> list[CertificationOut]:
    """List the certifications waiting for platform review, oldest first."""
    return _queue(request, State.IN_REVIEW)


@reviewer_router.get(
    "/certifications/{certification_id}",
    response_model=CertificationOut,
    responses=ERRORS,
)
def review_certification(
    certification_id: int,
    request: Request,
    _principal: Annotated[Principal, Depends(reviewer_only)],
) -> CertificationOut:
    """Return a certification with its evidence and audit trail."""
    with store_errors(), request.app.state.service.engine.connect() as connection:
        row = repositories.get_certification(connection, certification_id)
        return certification_out(connection, row)


@reviewer_router.post(
    "/certifications/{certification_id}/approve",
    response_model=CertificationOut,
    responses=ERRORS,
)
def approve(
    certification_id: int,
    body: DecisionIn,
    request: Request,
    principal: Annotated[Principal, Depends(reviewer_only)],
) -> CertificationOut:
    """Approve a certification in review and pass it to the lender."""
    return _act(request, certification_id, Action.APPROVE, principal, body.reason)


@reviewer_router.post(
    "/certifications/{certification_id}/reject",
    response_model=CertificationOut,
    responses=ERRORS,
)
def reviewer_reject(
    certification_id: int,
    body: DecisionIn,
    request: Request,
    principal: Annotated[Principal, Depends(reviewer_only)],
) -> CertificationOut:
    """Reject a certification in review."""
    return _act(request, certification_id, Action.REJECT, principal, body.reason)


@lender_router.get("/queue", response_model=list[CertificationOut], responses=ERRORS)
def lender_queue(
    request: Request, _principal: Annotated[Principal, Depends(lender_only)]
) -> list[CertificationOut]:
    """List the platform-approved certifications waiting for the lender."""
    return _queue(request, State.PLATFORM_APPROVED)


@lender_router.post(
    "/certifications/{certification_id}/certify",
    response_model=CertificationOut,
    responses=ERRORS,
)
def certify(
    certification_id: int,
    body: DecisionIn,
    request: Request,
    principal: Annotated[Principal, Depends(lender_only)],
) -> CertificationOut:
    """Certify an approved certification; its product becomes evidence."""
    return _act(request, certification_id, Action.CERTIFY, principal, body.reason)


@lender_router.post(
    "/certifications/{certification_id}/reject",
    response_model=CertificationOut,
    responses=ERRORS,
)
def lender_reject(
    certification_id: int,
    body: DecisionIn,
    request: Request,
    principal: Annotated[Principal, Depends(lender_only)],
) -> CertificationOut:
    """Reject an approved certification."""
    return _act(request, certification_id, Action.REJECT, principal, body.reason)


@lender_router.post(
    "/certifications/{certification_id}/revoke",
    response_model=CertificationOut,
    responses=ERRORS,
)
def revoke(
    certification_id: int,
    body: DecisionIn,
    request: Request,
    principal: Annotated[Principal, Depends(lender_only)],
) -> CertificationOut:
    """Revoke a certified certification and flow the revocation on."""
    return _act(request, certification_id, Action.REVOKE, principal, body.reason)


@lender_router.post("/expiry", response_model=ExpiryOut, responses=ERRORS)
def expire(
    request: Request, _principal: Annotated[Principal, Depends(lender_only)]
) -> ExpiryOut:
    """Expire every certified certification whose end date has passed."""
    service = request.app.state.service
    now = utc_now()
    with service.engine.begin() as connection:
        expired = repositories.expire_due(connection, today=now.date(), now=now)
    if expired:
        service.platform.invalidate()
    return ExpiryOut(expired=expired)
