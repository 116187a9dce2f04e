"""Merchant endpoints: its own products and certifications, nothing else."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from greenloop.api.auth import Principal, require
from greenloop.api.problems import problem_responses
from greenloop.api.routes.common import certification_out, store_errors, utc_now
from greenloop.api.schemas import (
    CertificationIn,
    CertificationOut,
    ProductIn,
    ProductOut,
)
from greenloop.categories import Category
from greenloop.certify import Action, Document, Role, SelfCertification, check
from greenloop.store import repositories

router = APIRouter(prefix="/v1/merchant", tags=["merchant"])
merchant_only = require(Role.MERCHANT)
ERRORS = problem_responses(401, 403, 404, 409, 413, 422, 429)


@router.get("/products", response_model=list[ProductOut], responses=ERRORS)
def list_products(
    request: Request, principal: Annotated[Principal, Depends(merchant_only)]
) -> list[ProductOut]:
    """List the calling merchant's products."""
    with request.app.state.service.engine.connect() as connection:
        rows = repositories.list_products(connection, principal.tenant_id)
    return [ProductOut.model_validate(row) for row in rows]


@router.post("/products", response_model=ProductOut, status_code=201, responses=ERRORS)
def create_product(
    body: ProductIn,
    request: Request,
    principal: Annotated[Principal, Depends(merchant_only)],
) -> ProductOut:
    """Add a product to the calling merchant's catalogue."""
    with store_errors(), request.app.state.service.engine.begin() as connection:
        row = repositories.create_product(
            connection,
            merchant_id=principal.tenant_id,
            sku=body.sku,
            title=body.title,
            brand=body.brand,
            model_number=body.model_number,
            mcc=body.mcc,
            now=utc_now(),
        )
    return ProductOut.model_validate(row)


@router.get("/products/{product_id}", response_model=ProductOut, responses=ERRORS)
def get_product(
    product_id: int,
    request: Request,
    principal: Annotated[Principal, Depends(merchant_only)],
) -> ProductOut:
    """Return one of the calling merchant's products."""
    with store_errors(), request.app.state.service.engine.connect() as connection:
        row = repositories.get_product(
            connection, product_id, merchant_id=principal.tenant_id
        )
    return ProductOut.model_validate(row)


@router.post(
    "/certifications",
    response_model=CertificationOut,
    status_code=201,
    responses=ERRORS,
)
def self_certify(
    body: CertificationIn,
    request: Request,
    principal: Annotated[Principal, Depends(merchant_only)],
) -> CertificationOut:
    """Self-certify a product; the automatic check runs at once.

    The certification ends in_review when the check passes it to a reviewer,
    or rejected when the identifier found the claim not green and no document
    was attached.
    """
    service = request.app.state.service
    with store_errors(), service.engine.connect() as connection:
        product = repositories.get_product(
            connection, body.product_id, merchant_id=principal.tenant_id
        )
    claim = SelfCertification(
        merchant_id=principal.tenant_id,
        sku=product["sku"],
        title=product["title"],
        claimed_category=Category(body.claimed_category),
        brand=product["brand"],
        registry_model_number=body.registry_model_number or product["model_number"],
        energy_label_grade=body.energy_label_grade,
        certificate_codes=tuple(body.certificate_codes),
        documents=tuple(Document(d.name, d.sha256, d.url) for d in body.documents),
        mcc=product["mcc"],
    )
    result = check(claim, service.platform.identifier())
    with store_errors(), service.engine.begin() as connection:
        row = repositories.submit_certification(
            connection, product=product, claim=claim, result=result, now=utc_now()
        )
        return certification_out(connection, row)


@router.get("/certifications", response_model=list[CertificationOut], responses=ERRORS)
def list_certifications(
    request: Request, principal: Annotated[Principal, Depends(merchant_only)]
) -> list[CertificationOut]:
    """List the calling merchant's certifications."""
    with request.app.state.service.engine.connect() as connection:
        rows = repositories.list_certifications(
            connection, merchant_id=principal.tenant_id
        )
        return [
            certification_out(connection, row, with_transitions=False) for row in rows
        ]


@router.get(
    "/certifications/{certification_id}",
    response_model=CertificationOut,
    responses=ERRORS,
)
def get_certification(
    certification_id: int,
    request: Request,
    principal: Annotated[Principal, Depends(merchant_only)],
) -> CertificationOut:
    """Return one of the merchant's certifications with its audit trail."""
    with store_errors(), request.app.state.service.engine.connect() as connection:
        row = repositories.get_certification(
            connection, certification_id, merchant_id=principal.tenant_id
        )
        return certification_out(connection, row)


@router.post(
    "/certifications/{certification_id}/withdraw",
    response_model=CertificationOut,
    responses=ERRORS,
)
def withdraw(
    certification_id: int,
    request: Request,
    principal: Annotated[Principal, Depends(merchant_only)],
) -> CertificationOut:
    """Withdraw one of the merchant's certifications before it is certified."""
    with store_errors(), request.app.state.service.engine.begin() as connection:
        row = repositories.apply_action(
            connection,
            certification_id,
            Action.WITHDRAW,
            role=Role.MERCHANT,
            actor_id=principal.tenant_id,
            reason="withdrawn by the merchant",
            now=utc_now(),
            merchant_id=principal.tenant_id,
        )
        return certification_out(connection, row)
