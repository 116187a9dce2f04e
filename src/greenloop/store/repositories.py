"""Reads and writes of the service tables, one function per operation.

Every function takes an open SQLAlchemy `Connection`; the caller owns the
transaction (`with engine.begin() as connection:`), so several writes can
commit together or not at all.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection, Engine, RowMapping

from greenloop.categories import Category, Status
from greenloop.certify import (
    Action,
    CheckResult,
    Outcome,
    Role,
    SelfCertification,
    State,
    transition,
    valid_until,
)
from greenloop.identify.certified import CertifiedProduct
from greenloop.store.models import (
    api_keys,
    certification_transitions,
    certifications,
    checkout_confirmations,
    idempotency_keys,
    products,
)

API_KEY_PREFIX = "glk"


class NotFoundError(LookupError):
    """A row that does not exist, or that belongs to another tenant."""


class ConflictError(RuntimeError):
    """A write that lost a race or repeats a unique value."""


# Products


def create_product(
    connection: Connection,
    *,
    merchant_id: str,
    sku: str,
    title: str,
    brand: str | None,
    model_number: str | None,
    mcc: int | None,
    now: datetime,
) -> dict[str, Any]:
    """Insert a merchant's product; raise ConflictError when the SKU exists."""
    existing = connection.execute(
        select(products.c.id).where(
            products.c.merchant_id == merchant_id, products.c.sku == sku
        )
    ).first()
    if existing is not None:
        raise ConflictError(
            f"merchant {merchant_id!r} already has a product with sku {sku!r} "
            f"(id {existing.id}); update that product or use another sku"
        )
    values = {
        "merchant_id": merchant_id,
        "sku": sku,
        "title": title,
        "brand": brand,
        "model_number": model_number,
        "mcc": mcc,
        "created_at": now,
        "updated_at": now,
    }
    new_id = connection.execute(
        insert(products).values(**values).returning(products.c.id)
    ).scalar_one()
    return {"id": new_id, **values}


def get_product(
    connection: Connection, product_id: int, *, merchant_id: str | None = None
) -> dict[str, Any]:
    """Return one product; with `merchant_id`, only that merchant's product."""
    query = select(products).where(products.c.id == product_id)
    if merchant_id is not None:
        query = query.where(products.c.merchant_id == merchant_id)
    row = connection.execute(query).mappings().first()
    if row is None:
        raise NotFoundError(f"product {product_id} not found")
    return dict(row)


def list_products(connection: Connection, merchant_id: str) -> list[dict[str, Any]]:
    """Return a merchant's products, oldest first."""
    rows = connection.execute(
        select(products)
        .where(products.c.merchant_id == merchant_id)
        .order_by(products.c.id)
    ).mappings()
    return [dict(row) for row in rows]


# Certifications


def submit_certification(
    connection: Connection,
    *,
    product: dict[str, Any],
    claim: SelfCertification,
    result: CheckResult,
    now: datetime,
) -> dict[str, Any]:
    """Insert a self-certification and apply its automatic check.

    The certification is recorded as submitted by the merchant, then moved by
    the system to in_review or rejected according to `result`.
    """
    evidence = {
        "brand": claim.brand,
        "registry_model_number": claim.registry_model_number,
        "energy_label_grade": claim.energy_label_grade,
        "certificate_codes": list(claim.certificate_codes),
        "documents": [
            {"name": d.name, "sha256": d.sha256, "url": d.url} for d in claim.documents
        ],
    }
    certification_id = connection.execute(
        insert(certifications)
        .values(
            product_id=product["id"],
            merchant_id=claim.merchant_id,
            claimed_category=claim.claimed_category.value,
            state=State.SUBMITTED.value,
            evidence=evidence,
            auto_check=result.to_dict(),
            valid_until=None,
            version=1,
            created_at=now,
            updated_at=now,
        )
        .returning(certifications.c.id)
    ).scalar_one()
    _record_transition(
        connection,
        certification_id,
        None,
        State.SUBMITTED,
        Role.MERCHANT,
        claim.merchant_id,
        "self-certification submitted",
        now,
    )
    action = (
        Action.FAIL_AUTOMATIC_CHECK
        if result.outcome is Outcome.FAILED
        else Action.PASS_AUTOMATIC_CHECK
    )
    reason = f"automatic check {result.outcome.value}: " + "; ".join(result.reasons)
    return apply_action(
        connection,
        certification_id,
        action,
        role=Role.SYSTEM,
        actor_id="identifier",
        reason=reason,
        now=now,
    )


def get_certification(
    connection: Connection,
    certification_id: int,
    *,
    merchant_id: str | None = None,
) -> dict[str, Any]:
    """Return one certification; with `merchant_id`, only that merchant's."""
    query = select(certifications).where(certifications.c.id == certification_id)
    if merchant_id is not None:
        query = query.where(certifications.c.merchant_id == merchant_id)
    row = connection.execute(query).mappings().first()
    if row is None:
        raise NotFoundError(f"certification {certification_id} not found")
    return dict(row)


def list_certifications(
    connection: Connection,
    *,
    merchant_id: str | None = None,
    states: Sequence[State] = (),
) -> list[dict[str, Any]]:
    """Return certifications, oldest first, filtered by merchant and states."""
    query = select(certifications).order_by(certifications.c.id)
    if merchant_id is not None:
        query = query.where(certifications.c.merchant_id == merchant_id)
    if states:
        query = query.where(certifications.c.state.in_([s.value for s in states]))
    return [dict(row) for row in connection.execute(query).mappings()]


def list_transitions(
    connection: Connection, certification_id: int
) -> list[dict[str, Any]]:
    """Return a certification's transitions in the order they happened."""
    rows = connection.execute(
        select(certification_transitions)
        .where(certification_transitions.c.certification_id == certification_id)
        .order_by(certification_transitions.c.id)
    ).mappings()
    return [dict(row) for row in rows]


def apply_action(
    connection: Connection,
    certification_id: int,
    action: Action,
    *,
    role: Role,
    actor_id: str,
    reason: str,
    now: datetime,
    merchant_id: str | None = None,
) -> dict[str, Any]:
    """Move a certification by `action` and record the transition.

    Raises NotFoundError for an unknown id (or another merchant's, when
    `merchant_id` is given), TransitionError for a move the rules forbid, and
    ConflictError when another writer changed the row first.
    """
    current = get_certification(connection, certification_id, merchant_id=merchant_id)
    source = State(current["state"])
    record = transition(
        source, action, role=role, actor_id=actor_id, reason=reason, at=now
    )
    values: dict[str, Any] = {
        "state": record.target.value,
        "version": current["version"] + 1,
        "updated_at": now,
    }
    if record.target is State.CERTIFIED:
        values["valid_until"] = _certification_end(current, now.date())
    changed = connection.execute(
        update(certifications)
        .where(
            certifications.c.id == certification_id,
            certifications.c.version == current["version"],
        )
        .values(**values)
    ).rowcount
    if changed != 1:
        raise ConflictError(
            f"certification {certification_id} changed while it was being "
            f"updated; read it again and retry the {action.value}"
        )
    _record_transition(
        connection,
        certification_id,
        source,
        record.target,
        role,
        actor_id,
        reason,
        now,
    )
    return {**current, **values}


def _certification_end(
    current: RowMapping | dict[str, Any], today: date
) -> date | None:
    auto_check = current.get("auto_check") or {}
    raw = auto_check.get("registry_valid_until")
    registry_date = date.fromisoformat(raw) if raw else None
    codes = tuple((current.get("evidence") or {}).get("certificate_codes") or ())
    return valid_until(
        Category(current["claimed_category"]),
        today,
        registry_valid_until=registry_date,
        certificate_codes=codes,
    )


def _record_transition(
    connection: Connection,
    certification_id: int,
    source: State | None,
    target: State,
    role: Role,
    actor_id: str,
    reason: str,
    now: datetime,
) -> None:
    connection.execute(
        insert(certification_transitions).values(
            certification_id=certification_id,
            from_state=source.value if source else None,
            to_state=target.value,
            actor_role=role.value,
            actor_id=actor_id,
            reason=reason,
            occurred_at=now,
        )
    )


def expire_due(connection: Connection, *, today: date, now: datetime) -> list[int]:
    """Expire every certified certification whose end date is before `today`."""
    due = connection.execute(
        select(certifications.c.id).where(
            certifications.c.state == State.CERTIFIED.value,
            certifications.c.valid_until.is_not(None),
            certifications.c.valid_until < today,
        )
    ).scalars()
    expired = []
    for certification_id in list(due):
        apply_action(
            connection,
            certification_id,
            Action.EXPIRE,
            role=Role.SYSTEM,
            actor_id="expiry",
            reason=f"valid_until passed on {today.isoformat()}",
            now=now,
        )
        expired.append(certification_id)
    return expired


@dataclass(frozen=True, slots=True)
class CertifiedProductRow:
    """A certified, unexpired product: evidence for the identifier."""

    merchant_id: str
    sku: str
    category: Category
    certification_id: str
    valid_until: date | None
    attributes: dict[str, Any]


def certified_products(
    connection: Connection, *, as_of: date
) -> list[CertifiedProductRow]:
    """Return the products whose certification is certified and valid on `as_of`."""
    rows = connection.execute(
        select(
            certifications.c.id,
            certifications.c.merchant_id,
            certifications.c.claimed_category,
            certifications.c.valid_until,
            certifications.c.auto_check,
            certifications.c.evidence,
            products.c.sku,
        )
        .join(products, products.c.id == certifications.c.product_id)
        .where(
            certifications.c.state == State.CERTIFIED.value,
            (certifications.c.valid_until.is_(None))
            | (certifications.c.valid_until >= as_of),
        )
        .order_by(certifications.c.id)
    ).mappings()
    result = []
    for row in rows:
        verdict = (row["auto_check"] or {}).get("verdict") or {}
        attributes = dict(verdict.get("attributes") or {})
        grade = (row["evidence"] or {}).get("energy_label_grade")
        if grade is not None:
            attributes.setdefault("energy_label_grade", grade)
        result.append(
            CertifiedProductRow(
                merchant_id=row["merchant_id"],
                sku=row["sku"],
                category=Category(row["claimed_category"]),
                certification_id=str(row["id"]),
                valid_until=row["valid_until"],
                attributes=attributes,
            )
        )
    return result


def certifications_version(connection: Connection) -> tuple[int, Any]:
    """Return a cheap fingerprint that changes when any certification changes."""
    row = connection.execute(
        select(func.count(certifications.c.id), func.max(certifications.c.updated_at))
    ).one()
    return int(row[0]), row[1]


# API keys


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key, without its secret."""

    key_id: str
    role: Role
    tenant_id: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


def hash_api_key(presented: str) -> str:
    """Return the SHA-256 hex digest under which a key is stored."""
    return hashlib.sha256(presented.encode("utf-8")).hexdigest()


def create_api_key(
    connection: Connection,
    *,
    role: Role,
    tenant_id: str,
    label: str,
    now: datetime,
) -> tuple[str, ApiKey]:
    """Create a key bound to `role` and `tenant_id`; return the key and its record.

    The key itself is returned once and never stored: only its SHA-256 is.
    """
    if role is Role.SYSTEM:
        raise ValueError("role 'system' is internal; API keys use another role")
    if not tenant_id.strip():
        raise ValueError("tenant_id is empty; give the merchant, funder or user id")
    key_id = secrets.token_hex(6)
    presented = f"{API_KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    connection.execute(
        insert(api_keys).values(
            key_id=key_id,
            key_hash=hash_api_key(presented),
            role=role.value,
            tenant_id=tenant_id,
            label=label,
            created_at=now,
            revoked_at=None,
        )
    )
    return presented, ApiKey(key_id, role, tenant_id, label, now, None)


def find_api_key(connection: Connection, presented: str) -> ApiKey | None:
    """Return the active key matching `presented`, or None."""
    row = (
        connection.execute(
            select(api_keys).where(
                api_keys.c.key_hash == hash_api_key(presented),
                api_keys.c.revoked_at.is_(None),
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return _api_key(row)


def revoke_api_key(connection: Connection, key_id: str, *, now: datetime) -> None:
    """Mark a key revoked; raise NotFoundError for an unknown or revoked key."""
    changed = connection.execute(
        update(api_keys)
        .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount
    if changed != 1:
        raise NotFoundError(f"active API key {key_id!r} not found")


def list_api_keys(connection: Connection) -> list[ApiKey]:
    """Return every key record, without secrets."""
    rows = connection.execute(select(api_keys).order_by(api_keys.c.id)).mappings()
    return [_api_key(row) for row in rows]


def _api_key(row: RowMapping) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        role=Role(row["role"]),
        tenant_id=row["tenant_id"],
        label=row["label"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


# Checkout confirmations and idempotency keys


def find_idempotent_response(
    connection: Connection, *, api_key_id: str, idempotency_key: str
) -> dict[str, Any] | None:
    """Return the stored response of an earlier request with this key, if any."""
    row = (
        connection.execute(
            select(
                idempotency_keys.c.request_sha256,
                idempotency_keys.c.status_code,
                idempotency_keys.c.response,
            ).where(
                idempotency_keys.c.api_key_id == api_key_id,
                idempotency_keys.c.idempotency_key == idempotency_key,
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def save_idempotent_response(
    connection: Connection,
    *,
    api_key_id: str,
    idempotency_key: str,
    request_sha256: str,
    status_code: int,
    response: dict[str, Any],
    now: datetime,
) -> None:
    """Store the response of a request under its idempotency key."""
    connection.execute(
        insert(idempotency_keys).values(
            api_key_id=api_key_id,
            idempotency_key=idempotency_key,
            request_sha256=request_sha256,
            status_code=status_code,
            response=response,
            created_at=now,
        )
    )


def insert_confirmation(connection: Connection, values: dict[str, Any]) -> int:
    """Insert a checkout confirmation and return its id."""
    return int(
        connection.execute(
            insert(checkout_confirmations)
            .values(**values)
            .returning(checkout_confirmations.c.id)
        ).scalar_one()
    )


def find_confirmation(
    connection: Connection, purchase_id: str
) -> dict[str, Any] | None:
    """Return the confirmation of a purchase, or None."""
    row = (
        connection.execute(
            select(checkout_confirmations).where(
                checkout_confirmations.c.purchase_id == purchase_id
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def list_confirmations(
    connection: Connection,
    *,
    user_id: str | None = None,
    merchant_id: str | None = None,
    purchase_ids: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Return confirmations, oldest first, filtered by user, merchant or ids."""
    query = select(checkout_confirmations).order_by(checkout_confirmations.c.id)
    if user_id is not None:
        query = query.where(checkout_confirmations.c.user_id == user_id)
    if merchant_id is not None:
        query = query.where(checkout_confirmations.c.merchant_id == merchant_id)
    if purchase_ids is not None:
        query = query.where(checkout_confirmations.c.purchase_id.in_(purchase_ids))
    return [dict(row) for row in connection.execute(query).mappings()]


def purchases_resting_on(connection: Connection, *, certification_id: int) -> list[str]:
    """Return the purchase ids whose green verdict rests on a certification."""
    return list(
        connection.execute(
            select(checkout_confirmations.c.purchase_id).where(
                and_(
                    checkout_confirmations.c.certification_id == certification_id,
                    checkout_confirmations.c.verdict_status == Status.GREEN.value,
                )
            )
        ).scalars()
    )


def mark_verdicts_for_review(
    connection: Connection, *, certification_id: int, reason: str
) -> list[str]:
    """Turn green verdicts resting on a certification to needs_review.

    Returns the purchase ids whose verdict changed.
    """
    affected = purchases_resting_on(connection, certification_id=certification_id)
    if affected:
        rows = connection.execute(
            select(checkout_confirmations.c.id, checkout_confirmations.c.verdict).where(
                checkout_confirmations.c.purchase_id.in_(affected)
            )
        ).all()
        for row_id, verdict in rows:
            reasons = [*(verdict or {}).get("reasons", []), reason]
            connection.execute(
                update(checkout_confirmations)
                .where(checkout_confirmations.c.id == row_id)
                .values(
                    verdict_status=Status.NEEDS_REVIEW.value,
                    verdict={
                        **(verdict or {}),
                        "status": Status.NEEDS_REVIEW.value,
                        "reasons": reasons,
                    },
                )
            )
    return affected


def set_confirmation_awards(
    connection: Connection, confirmation_id: int, awards: list[dict[str, Any]]
) -> None:
    """Store the awards made for a confirmation."""
    connection.execute(
        update(checkout_confirmations)
        .where(checkout_confirmations.c.id == confirmation_id)
        .values(awards=awards)
    )


def identifier_evidence(engine: Engine, *, as_of: date) -> list[CertifiedProduct]:
    """Return the certified, unexpired products as the identifier's evidence.

    The batch run passes these to `Identifier.load(certified_products=...)`, so
    a product certified through the workflow is green there as at checkout.
    """
    with engine.connect() as connection:
        rows = certified_products(connection, as_of=as_of)
    return [to_certified_product(row) for row in rows]


def to_certified_product(row: CertifiedProductRow) -> CertifiedProduct:
    """Return a stored certified product as the identifier's record."""
    return CertifiedProduct(
        merchant_id=row.merchant_id,
        sku=row.sku,
        category=row.category,
        certification_id=row.certification_id,
        valid_until=row.valid_until,
        attributes=row.attributes,
    )
