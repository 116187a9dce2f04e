"""Operator endpoints: API keys, runs, facilities, campaigns and standards."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from greenloop.api.auth import Principal, require
from greenloop.api.problems import problem_responses
from greenloop.api.routes.common import store_errors, utc_now
from greenloop.api.schemas import ApiKeyIn, ApiKeyOut, CertificationOut, DecisionIn
from greenloop.certify import Role
from greenloop.store import repositories

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/operator", tags=["operator"])
operator_only = require(Role.OPERATOR)
ERRORS = problem_responses(401, 403, 404, 409, 413, 422, 429)


@router.get("/api-keys", response_model=list[ApiKeyOut], responses=ERRORS)
def list_keys(
    request: Request, _principal: Annotated[Principal, Depends(operator_only)]
) -> list[ApiKeyOut]:
    """List every API key's public record; secrets are never stored."""
    with request.app.state.service.engine.connect() as connection:
        keys = repositories.list_api_keys(connection)
    return [
        ApiKeyOut(
            key_id=key.key_id,
            role=key.role.value,
            tenant_id=key.tenant_id,
            label=key.label,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )
        for key in keys
    ]


@router.post("/api-keys", response_model=ApiKeyOut, status_code=201, responses=ERRORS)
def create_key(
    body: ApiKeyIn,
    request: Request,
    principal: Annotated[Principal, Depends(operator_only)],
) -> ApiKeyOut:
    """Create an API key bound to a role and tenant; the key is shown only here."""
    with request.app.state.service.engine.begin() as connection:
        presented, key = repositories.create_api_key(
            connection,
            role=Role(body.role),
            tenant_id=body.tenant_id,
            label=body.label,
            now=utc_now(),
        )
    logger.info(
        "API key %s created for role %s, tenant %s by %s",
        key.key_id,
        key.role.value,
        key.tenant_id,
        principal.key_id,
    )
    return ApiKeyOut(
        key_id=key.key_id,
        role=key.role.value,
        tenant_id=key.tenant_id,
        label=key.label,
        created_at=key.created_at,
        api_key=presented,
    )


@router.delete("/api-keys/{key_id}", status_code=204, responses=ERRORS)
def revoke_key(
    key_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(operator_only)],
) -> None:
    """Revoke an API key; every cached copy in this process is dropped at once."""
    service = request.app.state.service
    with store_errors(), service.engine.begin() as connection:
        repositories.revoke_api_key(connection, key_id, now=utc_now())
    service.key_cache.clear()
    logger.info("API key %s revoked by %s", key_id, principal.key_id)


@router.post(
    "/certifications/{certification_id}/revoke",
    response_model=CertificationOut,
    responses=ERRORS,
)
def revoke_certification(
    certification_id: int,
    body: DecisionIn,
    request: Request,
    principal: Annotated[Principal, Depends(operator_only)],
) -> CertificationOut:
    """Revoke a certified certification, as the lender can, and flow it on."""
    from greenloop.api.routes.review import revoke_certification as revoke

    return revoke(request, certification_id, principal, body.reason)
