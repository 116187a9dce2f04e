"""Checkout: decisions (award nothing) and idempotent confirmations (award)."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import IntegrityError

from greenloop.api.auth import Principal, require
from greenloop.api.platform import Offer, Purchase, certification_of
from greenloop.api.problems import ProblemError, problem_responses
from greenloop.api.schemas import (
    CheckoutRequest,
    ConfirmationOut,
    ConfirmationRequest,
    DecisionOut,
)
from greenloop.api.serialize import (
    impact_out,
    offer_document,
    offer_out,
    verdict_document,
    verdict_out,
)
from greenloop.categories import Status
from greenloop.certify import Role
from greenloop.store import repositories

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/checkout", tags=["checkout"])
merchant_only = require(Role.MERCHANT)

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="a unique key per confirmation; a retry sends the same key",
    ),
]


def _purchase(body: CheckoutRequest, principal: Principal) -> Purchase:
    merchant_id = body.merchant_id or principal.tenant_id
    if merchant_id != principal.tenant_id:
        raise ProblemError(
            403,
            "forbidden-tenant",
            f"merchant_id {merchant_id!r} is not the calling merchant "
            f"{principal.tenant_id!r}; a merchant checks out only its own sales",
        )
    extra: dict[str, Any] = {}
    if isinstance(body, ConfirmationRequest):
        extra = {
            "purchase_id": body.purchase_id,
            "installments": body.installments,
            "occurred_at": body.occurred_at,
        }
    return Purchase(
        merchant_id=merchant_id,
        title=body.title,
        amount=body.amount,
        currency=body.currency,
        quantity=body.quantity,
        region=body.region,
        user_id=body.user_id,
        merchant_name=body.merchant_name,
        mcc=body.mcc,
        sku=body.sku,
        brand=body.brand,
        model_number=body.model_number,
        energy_label_grade=body.energy_label_grade,
        certificate_id=body.certificate_id,
        label_codes=tuple(body.label_codes),
        **extra,
    )


@router.post(
    "/decisions",
    response_model=DecisionOut,
    responses=problem_responses(401, 403, 413, 422, 429),
    summary="Decide a purchase at checkout without awarding anything",
)
def decide(
    body: CheckoutRequest,
    request: Request,
    principal: Annotated[Principal, Depends(merchant_only)],
) -> Response:
    """Return the verdict, the offers with APR, the impact and incentives."""
    platform = request.app.state.service.platform
    purchase = _purchase(body, principal)
    verdict = platform.identify(purchase)
    offers = platform.offers(purchase)
    impact = (
        platform.impact(purchase, verdict) if verdict.status is Status.GREEN else None
    )
    incentives = platform.qualifying_incentives(purchase, verdict, offers)
    impact_model = impact_out(impact)
    # The parts are built from the response models, so the document matches
    # DecisionOut; returning it as bytes skips a second validation pass.
    document = {
        "verdict": verdict_document(verdict),
        "offers": [offer_document(offer) for offer in offers],
        "incentives": incentives,
        "impact": impact_model.model_dump(mode="json") if impact_model else None,
        "awarded": False,
    }
    payload = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return Response(payload.encode("utf-8"), media_type="application/json")


def _fingerprint(body: ConfirmationRequest, merchant_id: str) -> str:
    canonical = json.dumps(
        {**body.model_dump(mode="json"), "merchant_id": merchant_id},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _chosen_offer(purchase: Purchase, offers: list[Offer]) -> Offer | None:
    if purchase.installments in (0, 1):
        return None
    for offer in offers:
        if offer.periods == purchase.installments:
            return offer
    available = ", ".join(str(o.periods) for o in offers) or "none for this currency"
    raise ProblemError(
        422,
        "unknown-installments",
        f"installments {purchase.installments} is not offered; use 0 or 1 to pay "
        f"at once, or one of: {available}",
    )


@router.post(
    "/confirmations",
    response_model=ConfirmationOut,
    status_code=201,
    responses={
        200: {"description": "a replay of an earlier confirmation with the same key"},
        **problem_responses(401, 403, 409, 413, 422, 429, 503),
    },
    summary="Confirm a purchase and award it, once per Idempotency-Key",
)
def confirm(
    body: ConfirmationRequest,
    request: Request,
    idempotency_key: IdempotencyKey,
    principal: Annotated[Principal, Depends(merchant_only)],
) -> JSONResponse:
    """Record the purchase, award its loan and incentives, and store the response.

    A retry with the same Idempotency-Key and body returns the stored response
    (200); the same key with another body is rejected (422). A purchase id
    confirmed under another key is a conflict (409).
    """
    service = request.app.state.service
    purchase = _purchase(body, principal)
    fingerprint = _fingerprint(body, purchase.merchant_id)
    replay = _replay(service.engine, principal, idempotency_key, fingerprint)
    if replay is not None:
        return replay
    with service.engine.connect() as connection:
        already = repositories.find_confirmation(connection, body.purchase_id)
    if already is not None:
        # A concurrent request with this key may have committed since the
        # replay check; its confirmation and key row commit together, so
        # checking the key again tells a replay from a conflict.
        return _after_conflict(
            service.engine, principal, idempotency_key, fingerprint, purchase
        )

    verdict = service.platform.identify(purchase)
    offers = service.platform.offers(purchase)
    offer = _chosen_offer(purchase, offers)
    impact = (
        service.platform.impact(purchase, verdict)
        if verdict.status is Status.GREEN
        else None
    )
    impact_model = impact_out(impact)
    impact_json = impact_model.model_dump(mode="json") if impact_model else None
    now = datetime.now(UTC)
    values = {
        "purchase_id": purchase.purchase_id,
        "merchant_id": purchase.merchant_id,
        "user_id": purchase.user_id,
        "sku": purchase.sku,
        "title": purchase.title,
        "amount": str(purchase.amount),
        "currency": purchase.currency,
        "region": purchase.region,
        "quantity": str(purchase.quantity),
        "installments": purchase.installments,
        "verdict_status": verdict.status.value,
        "category": verdict.category.value if verdict.category else None,
        "verdict": verdict_out(verdict).model_dump(mode="json"),
        "offer": offer_out(offer).model_dump(mode="json") if offer else None,
        "impact": impact_json,
        "kg_co2e_lifetime": str(impact.kg_co2e_lifetime) if impact else None,
        "awards": [],  # filled in below, after the award committed
        "certification_id": certification_of(verdict),
        "idempotency_key": idempotency_key,
        "occurred_at": purchase.occurred_at or now,
        "created_at": now,
    }
    # The award commits first and is idempotent per purchase id, so a retry
    # after a failure between the two commits awards nothing twice, and a 201
    # is sent only once both the award and the confirmation are stored.
    awards = service.platform.award(purchase, verdict, offer, impact)
    values["awards"] = awards
    try:
        with service.engine.begin() as connection:
            confirmation_id = repositories.insert_confirmation(connection, values)
            response = ConfirmationOut(
                confirmation_id=confirmation_id,
                purchase_id=values["purchase_id"],
                merchant_id=purchase.merchant_id,
                user_id=values["user_id"],
                verdict=verdict_out(verdict),
                offer=offer_out(offer) if offer else None,
                impact=impact_model,
                awards=awards,
                created_at=now,
            ).model_dump(mode="json")
            repositories.save_idempotent_response(
                connection,
                api_key_id=principal.key_id,
                idempotency_key=idempotency_key,
                request_sha256=fingerprint,
                status_code=201,
                response=response,
                now=now,
            )
    except IntegrityError:
        return _after_conflict(
            service.engine, principal, idempotency_key, fingerprint, purchase
        )
    logger.info(
        "purchase %s confirmed (confirmation %d, key %s, verdict %s, %d awards)",
        purchase.purchase_id,
        confirmation_id,
        principal.key_id,
        verdict.status.value,
        len(awards),
    )
    return JSONResponse(response, status_code=201)


def _replay(
    engine: Any, principal: Principal, idempotency_key: str, fingerprint: str
) -> JSONResponse | None:
    with engine.connect() as connection:
        stored = repositories.find_idempotent_response(
            connection, api_key_id=principal.key_id, idempotency_key=idempotency_key
        )
    if stored is None:
        return None
    if stored["request_sha256"] != fingerprint:
        raise ProblemError(
            422,
            "idempotency-key-reused",
            f"Idempotency-Key {idempotency_key!r} was used for a different request "
            "body; use a new key for a new confirmation",
        )
    return JSONResponse(
        stored["response"], status_code=200, headers={"Idempotent-Replayed": "true"}
    )


def _after_conflict(
    engine: Any,
    principal: Principal,
    idempotency_key: str,
    fingerprint: str,
    purchase: Purchase,
) -> JSONResponse:
    replay = _replay(engine, principal, idempotency_key, fingerprint)
    if replay is not None:
        return replay
    _raise_already_confirmed(purchase.purchase_id)


def _raise_already_confirmed(purchase_id: str | None) -> NoReturn:
    raise ProblemError(
        409,
        "purchase-already-confirmed",
        f"purchase {purchase_id!r} was already confirmed under another "
        "Idempotency-Key; retry with the original key to read that confirmation",
    )
