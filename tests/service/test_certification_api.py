"""The certification workflow through the API, revocation included."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient
from service_support import Keys
from sqlalchemy import update
from sqlalchemy.engine import Engine

from greenloop.store.models import certifications


def _product(client: TestClient, keys: Keys, sku: str = "wash-1") -> int:
    response = client.post(
        "/v1/merchant/products",
        json={"sku": sku, "title": "Washer", "model_number": "XQB-1"},
        headers=keys.headers("merchant"),
    )
    return int(response.json()["id"])


def _certified(client: TestClient, keys: Keys, sku: str = "wash-1") -> int:
    product_id = _product(client, keys, sku)
    submitted = client.post(
        "/v1/merchant/certifications",
        json={
            "product_id": product_id,
            "claimed_category": "appliance",
            "documents": [{"name": "label.pdf", "sha256": "b" * 64}],
        },
        headers=keys.headers("merchant"),
    ).json()
    certification_id = submitted["id"]
    client.post(
        f"/v1/reviewer/certifications/{certification_id}/approve",
        json={"reason": "label document matches the model"},
        headers=keys.headers("reviewer"),
    )
    client.post(
        f"/v1/lender/certifications/{certification_id}/certify",
        json={"reason": "meets the lender's policy"},
        headers=keys.headers("lender"),
    )
    return int(certification_id)


def test_submission_lands_in_review_queue(client: TestClient, keys: Keys) -> None:
    product_id = _product(client, keys)
    submitted = client.post(
        "/v1/merchant/certifications",
        json={
            "product_id": product_id,
            "claimed_category": "appliance",
            "documents": [{"name": "label.pdf", "sha256": "b" * 64}],
        },
        headers=keys.headers("merchant"),
    )
    queue = client.get("/v1/reviewer/queue", headers=keys.headers("reviewer"))
    assert submitted.status_code == 201
    assert submitted.json()["state"] == "in_review"
    assert [item["id"] for item in queue.json()] == [submitted.json()["id"]]


def test_unevidenced_claim_is_rejected_automatically(
    client: TestClient, keys: Keys
) -> None:
    product_id = _product(client, keys)
    submitted = client.post(
        "/v1/merchant/certifications",
        json={"product_id": product_id, "claimed_category": "appliance"},
        headers=keys.headers("merchant"),
    )
    assert submitted.json()["state"] == "rejected"
    assert submitted.json()["transitions"][-1]["actor_role"] == "system"


def test_full_flow_records_every_transition(client: TestClient, keys: Keys) -> None:
    certification_id = _certified(client, keys)
    response = client.get(
        f"/v1/merchant/certifications/{certification_id}",
        headers=keys.headers("merchant"),
    )
    trail = [
        (t["to_state"], t["actor_role"], t["actor_id"])
        for t in response.json()["transitions"]
    ]
    assert response.json()["state"] == "certified"
    assert trail == [
        ("submitted", "merchant", "m-1"),
        ("in_review", "system", "identifier"),
        ("platform_approved", "reviewer", "r-1"),
        ("certified", "lender", "l-1"),
    ]
    assert (
        response.json()["transitions"][2]["reason"]
        == "label document matches the model"
    )


def test_certify_before_review_is_illegal(client: TestClient, keys: Keys) -> None:
    product_id = _product(client, keys)
    submitted = client.post(
        "/v1/merchant/certifications",
        json={
            "product_id": product_id,
            "claimed_category": "appliance",
            "documents": [{"name": "label.pdf", "sha256": "b" * 64}],
        },
        headers=keys.headers("merchant"),
    ).json()
    response = client.post(
        f"/v1/lender/certifications/{submitted['id']}/certify",
        json={"reason": "skip review"},
        headers=keys.headers("lender"),
    )
    assert response.status_code == 409
    assert response.json()["type"].endswith("illegal-transition")


def test_certified_product_is_green_evidence(client: TestClient, keys: Keys) -> None:
    _certified(client, keys)
    decision = client.post(
        "/v1/checkout/decisions",
        json={"title": "Washer", "sku": "wash-1", "amount": "2999.00"},
        headers=keys.headers("merchant"),
    ).json()
    assert decision["verdict"]["status"] == "green"
    assert decision["verdict"]["evidence"][0]["kind"] == "certified_product"


def test_revocation_turns_verdicts_to_review(client: TestClient, keys: Keys) -> None:
    certification_id = _certified(client, keys)
    client.post(
        "/v1/checkout/confirmations",
        json={
            "title": "Washer",
            "sku": "wash-1",
            "amount": "2999.00",
            "purchase_id": "p-w",
            "user_id": "u-1",
            "installments": 6,
        },
        headers={**keys.headers("merchant"), "Idempotency-Key": "w-1"},
    )
    revoked = client.post(
        f"/v1/lender/certifications/{certification_id}/revoke",
        json={"reason": "registry withdrew the label"},
        headers=keys.headers("lender"),
    )
    record = client.get("/v1/consumer/record", headers=keys.headers("consumer")).json()
    decision = client.post(
        "/v1/checkout/decisions",
        json={"title": "Washer", "sku": "wash-1", "amount": "2999.00"},
        headers=keys.headers("merchant"),
    ).json()
    assert revoked.json()["state"] == "revoked"
    assert record[0]["verdict_status"] == "needs_review"
    assert decision["verdict"]["status"] == "not_green"


def test_expiry_pass_expires_past_end(
    client: TestClient, keys: Keys, service_engine: Engine
) -> None:
    certification_id = _certified(client, keys)
    with service_engine.begin() as connection:
        connection.execute(
            update(certifications)
            .where(certifications.c.id == certification_id)
            .values(valid_until=date(2020, 1, 1))
        )
    response = client.post("/v1/lender/expiry", headers=keys.headers("lender"))
    state = client.get(
        f"/v1/merchant/certifications/{certification_id}",
        headers=keys.headers("merchant"),
    ).json()["state"]
    assert response.json()["expired"] == [certification_id]
    assert state == "expired"


def test_merchant_can_withdraw_in_review(client: TestClient, keys: Keys) -> None:
    product_id = _product(client, keys)
    submitted = client.post(
        "/v1/merchant/certifications",
        json={
            "product_id": product_id,
            "claimed_category": "appliance",
            "documents": [{"name": "label.pdf", "sha256": "b" * 64}],
        },
        headers=keys.headers("merchant"),
    ).json()
    response = client.post(
        f"/v1/merchant/certifications/{submitted['id']}/withdraw",
        headers=keys.headers("merchant"),
    )
    assert response.json()["state"] == "withdrawn"


def test_duplicate_sku_conflicts(client: TestClient, keys: Keys) -> None:
    _product(client, keys)
    response = client.post(
        "/v1/merchant/products",
        json={"sku": "wash-1", "title": "Washer again"},
        headers=keys.headers("merchant"),
    )
    assert response.status_code == 409


def test_operator_can_revoke(client: TestClient, keys: Keys) -> None:
    certification_id = _certified(client, keys)
    response = client.post(
        f"/v1/operator/certifications/{certification_id}/revoke",
        json={"reason": "fraud report confirmed"},
        headers=keys.headers("operator"),
    )
    trail = response.json()["transitions"]
    assert response.status_code == 200
    assert response.json()["state"] == "revoked"
    assert (trail[-1]["actor_role"], trail[-1]["actor_id"]) == ("operator", "ops-1")


def test_revoking_twice_is_illegal(client: TestClient, keys: Keys) -> None:
    certification_id = _certified(client, keys)
    url = f"/v1/lender/certifications/{certification_id}/revoke"
    client.post(url, json={"reason": "first"}, headers=keys.headers("lender"))
    again = client.post(url, json={"reason": "second"}, headers=keys.headers("lender"))
    assert again.status_code == 409
