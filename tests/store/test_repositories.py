"""The service repositories on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from greenloop.categories import Category
from greenloop.certify import Action, Outcome, Role, SelfCertification, State
from greenloop.certify.checks import CheckResult
from greenloop.identify.verdict import Verdict
from greenloop.store import repositories
from greenloop.store.base import make_engine
from greenloop.store.models import api_keys
from greenloop.store.schema import upgrade

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _submit(engine: Engine, outcome: Outcome = Outcome.VERIFIED) -> dict:
    claim = SelfCertification(
        merchant_id="m-1",
        sku="s-1",
        title="Green tea",
        claimed_category=Category.GREEN_FOOD,
        certificate_codes=("GF110101250001",),
    )
    verdict = Verdict(
        status="green",
        category=Category.GREEN_FOOD,
        standard_id=None,
        standard_version=None,
    )  # type: ignore[arg-type]
    result = CheckResult(outcome, verdict, ("checked",), registry_valid_until=None)
    with engine.begin() as connection:
        product = repositories.create_product(
            connection,
            merchant_id="m-1",
            sku="s-1",
            title="Green tea",
            brand=None,
            model_number=None,
            mcc=None,
            now=NOW,
        )
        return repositories.submit_certification(
            connection, product=product, claim=claim, result=result, now=NOW
        )


def _act(engine: Engine, certification_id: int, action: Action, role: Role) -> dict:
    with engine.begin() as connection:
        return repositories.apply_action(
            connection,
            certification_id,
            action,
            role=role,
            actor_id="x",
            reason="r",
            now=NOW,
        )


def test_submission_records_two_transitions(engine: Engine) -> None:
    row = _submit(engine)
    with engine.connect() as connection:
        trail = repositories.list_transitions(connection, row["id"])
    assert row["state"] == State.IN_REVIEW
    assert [t["to_state"] for t in trail] == ["submitted", "in_review"]


def test_certify_sets_green_food_end(engine: Engine) -> None:
    row = _submit(engine)
    _act(engine, row["id"], Action.APPROVE, Role.REVIEWER)
    certified = _act(engine, row["id"], Action.CERTIFY, Role.LENDER)
    # Certified on 2026-12-04; the GF code was issued in 2025, so 2028-12-31 caps
    # the three-year term that would end on 2029-12-04.
    assert certified["valid_until"] == date(2028, 12, 31)


def test_stale_version_conflicts(engine: Engine) -> None:
    row = _submit(engine)
    with engine.begin() as connection:
        current = repositories.get_certification(connection, row["id"])
        repositories.apply_action(
            connection,
            row["id"],
            Action.APPROVE,
            role=Role.REVIEWER,
            actor_id="a",
            reason="r",
            now=NOW,
        )
    with engine.begin() as connection:
        changed = connection.execute(
            repositories.certifications.update()
            .where(repositories.certifications.c.id == row["id"])
            .where(repositories.certifications.c.version == current["version"])
            .values(state="in_review")
        ).rowcount
    assert changed == 0


def test_certified_products_skip_expired(engine: Engine) -> None:
    row = _submit(engine)
    _act(engine, row["id"], Action.APPROVE, Role.REVIEWER)
    _act(engine, row["id"], Action.CERTIFY, Role.LENDER)
    with engine.connect() as connection:
        valid = repositories.certified_products(connection, as_of=date(2027, 1, 1))
        expired = repositories.certified_products(connection, as_of=date(2029, 1, 1))
    assert [p.sku for p in valid] == ["s-1"]
    assert expired == []


def test_expire_due_moves_state(engine: Engine) -> None:
    row = _submit(engine)
    _act(engine, row["id"], Action.APPROVE, Role.REVIEWER)
    _act(engine, row["id"], Action.CERTIFY, Role.LENDER)
    with engine.begin() as connection:
        expired = repositories.expire_due(connection, today=date(2029, 1, 1), now=NOW)
        state = repositories.get_certification(connection, row["id"])["state"]
    assert expired == [row["id"]]
    assert state == State.EXPIRED


def test_api_key_stored_as_hash(engine: Engine) -> None:
    with engine.begin() as connection:
        presented, key = repositories.create_api_key(
            connection, role=Role.FUNDER, tenant_id="f-1", label="t", now=NOW
        )
        stored = connection.execute(select(api_keys.c.key_hash)).scalar_one()
        found = repositories.find_api_key(connection, presented)
    assert stored == repositories.hash_api_key(presented)
    assert presented not in stored
    assert found is not None
    assert (found.key_id, found.role, found.tenant_id) == (
        key.key_id,
        Role.FUNDER,
        "f-1",
    )


def test_revoked_api_key_not_found(engine: Engine) -> None:
    with engine.begin() as connection:
        presented, key = repositories.create_api_key(
            connection, role=Role.CONSUMER, tenant_id="u-1", label="t", now=NOW
        )
        repositories.revoke_api_key(connection, key.key_id, now=NOW)
        found = repositories.find_api_key(connection, presented)
    assert found is None


def _confirmation(purchase_id: str, key: str) -> dict:
    return {
        "purchase_id": purchase_id,
        "merchant_id": "m-1",
        "user_id": "u-1",
        "sku": "s-1",
        "title": "Green tea",
        "amount": "12.50",
        "currency": "CNY",
        "region": None,
        "quantity": "1",
        "installments": 0,
        "verdict_status": "green",
        "category": "green_food",
        "verdict": {"status": "green", "reasons": []},
        "offer": None,
        "impact": None,
        "kg_co2e_lifetime": None,
        "awards": [],
        "certification_id": 7,
        "idempotency_key": key,
        "occurred_at": NOW,
        "created_at": NOW,
    }


def test_purchase_confirmed_once(engine: Engine) -> None:
    with engine.begin() as connection:
        repositories.insert_confirmation(connection, _confirmation("p-1", "k-1"))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        repositories.insert_confirmation(connection, _confirmation("p-1", "k-2"))


def test_idempotency_key_unique_per_api_key(engine: Engine) -> None:
    values = {
        "api_key_id": "a",
        "idempotency_key": "k",
        "request_sha256": "0" * 64,
        "status_code": 201,
        "response": {"ok": True},
        "now": NOW,
    }
    with engine.begin() as connection:
        repositories.save_idempotent_response(connection, **values)
        repositories.save_idempotent_response(
            connection, **{**values, "api_key_id": "b"}
        )
    with pytest.raises(IntegrityError), engine.begin() as connection:
        repositories.save_idempotent_response(connection, **values)


def test_revocation_marks_verdicts(engine: Engine) -> None:
    with engine.begin() as connection:
        repositories.insert_confirmation(connection, _confirmation("p-1", "k-1"))
        affected = repositories.mark_verdicts_for_review(
            connection, certification_id=7, reason="revoked"
        )
        row = repositories.find_confirmation(connection, "p-1")
    assert affected == ["p-1"]
    assert row is not None
    assert row["verdict_status"] == "needs_review"
    assert row["verdict"]["reasons"] == ["revoked"]


def test_identifier_evidence_lists_certified(engine: Engine) -> None:
    row = _submit(engine)
    _act(engine, row["id"], Action.APPROVE, Role.REVIEWER)
    _act(engine, row["id"], Action.CERTIFY, Role.LENDER)
    evidence = repositories.identifier_evidence(engine, as_of=date(2027, 1, 1))
    assert [(p.merchant_id, p.sku, p.category) for p in evidence] == [
        ("m-1", "s-1", Category.GREEN_FOOD)
    ]
    assert evidence[0].certification_id == str(row["id"])
