"""Checkout decisions and idempotent confirmations."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from service_support import Keys, build_client, make_keys
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from greenloop.store.base import make_engine
from greenloop.store.models import checkout_confirmations, idempotency_keys
from greenloop.store.schema import upgrade

FRIDGE = {
    "title": "一级能效 双门冰箱 BCD-520",
    "amount": "3999.00",
    "currency": "CNY",
    "sku": "fridge-520",
    "energy_label_grade": 1,
    "region": "CN-SH",
}


def _confirmation(purchase_id: str, **changes: object) -> dict[str, object]:
    return {
        **FRIDGE,
        "purchase_id": purchase_id,
        "user_id": "u-1",
        "installments": 12,
        **changes,
    }


def test_decision_returns_green_verdict(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/checkout/decisions", json=FRIDGE, headers=keys.headers("merchant")
    )
    assert response.status_code == 200
    body = response.json()
    assert body["verdict"]["status"] == "green"
    assert body["verdict"]["category"] == "appliance"
    assert body["awarded"] is False


def test_decision_offers_four_plans_with_apr(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/checkout/decisions", json=FRIDGE, headers=keys.headers("merchant")
    )
    offers = {offer["periods"]: offer for offer in response.json()["offers"]}
    assert sorted(offers) == [3, 6, 9, 12]
    # The 12-period plan: 8.8 % fee, ≈15.9 % nominal APR by internal rate of return.
    assert Decimal(offers[12]["fee_rate"]) == Decimal("0.088")
    assert abs(Decimal(offers[12]["apr_nominal"]) - Decimal("0.159")) < Decimal("0.001")
    assert abs(Decimal(offers[3]["apr_nominal"]) - Decimal("0.149")) < Decimal("0.001")
    # Fee 3999.00 × 0.088 = 351.912, rounded half up to 351.91.
    assert Decimal(offers[12]["total"]) == Decimal("4350.91")


def test_decision_awards_nothing(
    client: TestClient, keys: Keys, service_engine: Engine
) -> None:
    client.post("/v1/checkout/decisions", json=FRIDGE, headers=keys.headers("merchant"))
    with service_engine.connect() as connection:
        count = connection.execute(
            select(func.count()).select_from(checkout_confirmations)
        ).scalar()
    assert count == 0


def test_decision_rejects_other_merchant_id(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/checkout/decisions",
        json={**FRIDGE, "merchant_id": "m-2"},
        headers=keys.headers("merchant"),
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


def test_decision_no_offers_outside_cny(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/checkout/decisions",
        json={**FRIDGE, "currency": "GBP"},
        headers=keys.headers("merchant"),
    )
    assert response.status_code == 200
    assert response.json()["offers"] == []


def test_confirmation_is_created_once(
    client: TestClient, keys: Keys, service_engine: Engine
) -> None:
    headers = {**keys.headers("merchant"), "Idempotency-Key": "key-1"}
    first = client.post(
        "/v1/checkout/confirmations", json=_confirmation("p-1"), headers=headers
    )
    second = client.post(
        "/v1/checkout/confirmations", json=_confirmation("p-1"), headers=headers
    )
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    with service_engine.connect() as connection:
        count = connection.execute(
            select(func.count()).select_from(checkout_confirmations)
        ).scalar()
    assert count == 1


def test_confirmation_records_chosen_offer(client: TestClient, keys: Keys) -> None:
    headers = {**keys.headers("merchant"), "Idempotency-Key": "key-offer"}
    response = client.post(
        "/v1/checkout/confirmations", json=_confirmation("p-offer"), headers=headers
    )
    assert response.json()["offer"]["periods"] == 12


def test_confirmation_key_reuse_is_rejected(client: TestClient, keys: Keys) -> None:
    headers = {**keys.headers("merchant"), "Idempotency-Key": "key-2"}
    client.post(
        "/v1/checkout/confirmations", json=_confirmation("p-2"), headers=headers
    )
    response = client.post(
        "/v1/checkout/confirmations",
        json=_confirmation("p-2", amount="10.00"),
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["type"].endswith("idempotency-key-reused")


def test_confirmation_other_key_conflicts(client: TestClient, keys: Keys) -> None:
    first = {**keys.headers("merchant"), "Idempotency-Key": "key-3"}
    second = {**keys.headers("merchant"), "Idempotency-Key": "key-4"}
    client.post("/v1/checkout/confirmations", json=_confirmation("p-3"), headers=first)
    response = client.post(
        "/v1/checkout/confirmations", json=_confirmation("p-3"), headers=second
    )
    assert response.status_code == 409
    assert response.json()["type"].endswith("purchase-already-confirmed")


def test_confirmation_needs_idempotency_key(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/checkout/confirmations",
        json=_confirmation("p-5"),
        headers=keys.headers("merchant"),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == ["header", "Idempotency-Key"]


def test_confirmation_rejects_unoffered_periods(client: TestClient, keys: Keys) -> None:
    headers = {**keys.headers("merchant"), "Idempotency-Key": "key-6"}
    response = client.post(
        "/v1/checkout/confirmations",
        json=_confirmation("p-6", installments=5),
        headers=headers,
    )
    assert response.status_code == 422
    assert "3, 6, 9, 12" in response.json()["detail"]


def test_concurrent_retries_confirm_once(
    client: TestClient, keys: Keys, service_engine: Engine
) -> None:
    headers = {**keys.headers("merchant"), "Idempotency-Key": "key-race"}
    statuses: list[int] = []

    def send() -> None:
        response = client.post(
            "/v1/checkout/confirmations", json=_confirmation("p-race"), headers=headers
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with service_engine.connect() as connection:
        confirmations = connection.execute(
            select(func.count()).select_from(checkout_confirmations)
        ).scalar()
        stored_keys = connection.execute(
            select(func.count()).select_from(idempotency_keys)
        ).scalar()
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201}, statuses
    assert confirmations == 1
    assert stored_keys == 1


@pytest.mark.postgres
def test_concurrent_retries_on_postgres(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)
    keys = make_keys(engine)
    client = build_client(
        engine, rate_limit_per_minute=100_000, rate_limit_burst=10_000
    )
    headers = {**keys.headers("merchant"), "Idempotency-Key": "key-pg"}
    statuses: list[int] = []

    def send() -> None:
        response = client.post(
            "/v1/checkout/confirmations", json=_confirmation("p-pg"), headers=headers
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as connection:
        confirmations = connection.execute(
            select(func.count()).select_from(checkout_confirmations)
        ).scalar()
    engine.dispose()
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201}, statuses
    assert confirmations == 1
