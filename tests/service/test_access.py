"""Access control: every endpoint refuses every other role and tenant."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from service_support import KEY_TENANTS, Keys

from greenloop.certify import Role

# The role each URL prefix belongs to.
PREFIX_ROLES = {
    "/v1/checkout/": Role.MERCHANT,
    "/v1/merchant/": Role.MERCHANT,
    "/v1/reviewer/": Role.REVIEWER,
    "/v1/lender/": Role.LENDER,
    "/v1/funder/": Role.FUNDER,
    "/v1/consumer/": Role.CONSUMER,
    "/v1/operator/": Role.OPERATOR,
}


def _endpoints(client: TestClient) -> list[tuple[str, str, Role]]:
    """Return (method, path, role) for every operation in the OpenAPI document."""
    endpoints = []
    document = client.app.openapi()  # type: ignore[attr-defined]
    for path, operations in document["paths"].items():
        role = next(r for p, r in PREFIX_ROLES.items() if path.startswith(p))
        for method in operations:
            endpoints.append((method.upper(), path, role))
    return endpoints


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_endpoint_has_a_role(client: TestClient) -> None:
    endpoints = _endpoints(client)
    assert len(endpoints) >= 20
    for _method, path, _role in endpoints:
        assert any(path.startswith(prefix) for prefix in PREFIX_ROLES)


def test_other_roles_are_refused(client: TestClient, keys: Keys) -> None:
    refused = 0
    for method, path, role in _endpoints(client):
        for name, (key_role, _tenant) in KEY_TENANTS.items():
            if key_role is role:
                continue
            response = client.request(
                method, _url(path), json={}, headers=keys.headers(name)
            )
            assert response.status_code == 403, (method, path, name, response.text)
            assert response.json()["type"].endswith("forbidden-role")
            refused += 1
    assert refused > 100


def test_missing_key_is_refused(client: TestClient) -> None:
    for method, path, _role in _endpoints(client):
        response = client.request(method, _url(path), json={})
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_key_is_refused(client: TestClient) -> None:
    headers = {"Authorization": "Bearer glk_000000000000_not-a-real-key"}
    for method, path, _role in _endpoints(client):
        response = client.request(method, _url(path), json={}, headers=headers)
        assert response.status_code == 401, (method, path)


def test_revoked_key_is_refused(client: TestClient, keys: Keys) -> None:
    key_id = keys["merchant"].split("_")[1]
    deleted = client.delete(
        f"/v1/operator/api-keys/{key_id}", headers=keys.headers("operator")
    )
    response = client.get("/v1/merchant/products", headers=keys.headers("merchant"))
    assert deleted.status_code == 204
    assert response.status_code == 401


def test_x_api_key_header_is_accepted(client: TestClient, keys: Keys) -> None:
    response = client.get(
        "/v1/merchant/products", headers={"X-API-Key": keys["merchant"]}
    )
    assert response.status_code == 200


@pytest.fixture
def merchant_data(client: TestClient, keys: Keys) -> dict[str, int]:
    """A product and a certification of merchant m-1."""
    product = client.post(
        "/v1/merchant/products",
        json={"sku": "fridge-1", "title": "Fridge", "model_number": "BCD-1"},
        headers=keys.headers("merchant"),
    ).json()
    certification = client.post(
        "/v1/merchant/certifications",
        json={
            "product_id": product["id"],
            "claimed_category": "appliance",
            "energy_label_grade": 1,
        },
        headers=keys.headers("merchant"),
    ).json()
    return {"product": product["id"], "certification": certification["id"]}


def test_other_merchant_cannot_read_product(
    client: TestClient, keys: Keys, merchant_data: dict[str, int]
) -> None:
    url = f"/v1/merchant/products/{merchant_data['product']}"
    own = client.get(url, headers=keys.headers("merchant"))
    other = client.get(url, headers=keys.headers("merchant_other"))
    assert own.status_code == 200
    assert other.status_code == 404


def test_other_merchant_lists_nothing(
    client: TestClient, keys: Keys, merchant_data: dict[str, int]
) -> None:
    products = client.get(
        "/v1/merchant/products", headers=keys.headers("merchant_other")
    )
    certifications = client.get(
        "/v1/merchant/certifications", headers=keys.headers("merchant_other")
    )
    assert products.json() == []
    assert certifications.json() == []


def test_other_merchant_cannot_read_certification(
    client: TestClient, keys: Keys, merchant_data: dict[str, int]
) -> None:
    url = f"/v1/merchant/certifications/{merchant_data['certification']}"
    response = client.get(url, headers=keys.headers("merchant_other"))
    assert response.status_code == 404


def test_other_merchant_cannot_withdraw(
    client: TestClient, keys: Keys, merchant_data: dict[str, int]
) -> None:
    url = f"/v1/merchant/certifications/{merchant_data['certification']}/withdraw"
    response = client.post(url, headers=keys.headers("merchant_other"))
    assert response.status_code == 404


def test_other_merchant_cannot_certify_product(
    client: TestClient, keys: Keys, merchant_data: dict[str, int]
) -> None:
    response = client.post(
        "/v1/merchant/certifications",
        json={"product_id": merchant_data["product"], "claimed_category": "appliance"},
        headers=keys.headers("merchant_other"),
    )
    assert response.status_code == 404


def test_other_merchant_cannot_check_out(client: TestClient, keys: Keys) -> None:
    body = {"merchant_id": "m-1", "title": "Fridge", "amount": "10.00"}
    response = client.post(
        "/v1/checkout/decisions", json=body, headers=keys.headers("merchant_other")
    )
    assert response.status_code == 403


def test_idempotency_keys_are_per_api_key(client: TestClient, keys: Keys) -> None:
    body = {
        "title": "Kettle",
        "amount": "99.00",
        "purchase_id": "p-9",
        "user_id": "u-1",
    }
    first = client.post(
        "/v1/checkout/confirmations",
        json=body,
        headers={**keys.headers("merchant"), "Idempotency-Key": "shared"},
    )
    other = client.post(
        "/v1/checkout/confirmations",
        json=body,
        headers={**keys.headers("merchant_other"), "Idempotency-Key": "shared"},
    )
    assert first.status_code == 201
    assert other.status_code == 409
    assert "m-1" not in other.text


def test_consumer_sees_only_own_record(client: TestClient, keys: Keys) -> None:
    body = {
        "title": "Kettle",
        "amount": "99.00",
        "purchase_id": "p-10",
        "user_id": "u-1",
    }
    client.post(
        "/v1/checkout/confirmations",
        json=body,
        headers={**keys.headers("merchant"), "Idempotency-Key": "k-10"},
    )
    own = client.get("/v1/consumer/record", headers=keys.headers("consumer"))
    other = client.get("/v1/consumer/record", headers=keys.headers("consumer_other"))
    assert [row["purchase_id"] for row in own.json()] == ["p-10"]
    assert other.json() == []


def test_consumer_sees_only_own_assets(client: TestClient, keys: Keys) -> None:
    from sqlalchemy import insert

    from greenloop.api.wiring import user_pseudonym
    from greenloop.store.runs import green_assets

    state = client.app.state.service  # type: ignore[attr-defined]
    asset = {
        "purchase_id": "batch-1",
        "run_id": "run-1",
        "occurred_at": datetime(2026, 6, 1, tzinfo=UTC),
        "user_key": user_pseudonym(state.settings.key_dir, "u-1"),
        "merchant_id": "m-1",
        "category": "appliance",
        "standard_id": "cn-appliance",
        "standard_version": "2025",
        "region": "CN-SH",
        "amount_fen": 399900,
        "currency": "CNY",
        "periods": 12,
        "kg_co2e_per_year": 20.0,
        "kg_co2e_lifetime": 200.0,
        "verdict_digest": "0" * 64,
        "impact_digest": None,
        "ledger_index": None,
        "reversed": False,
    }
    with state.engine.begin() as connection:
        connection.execute(insert(green_assets).values(**asset))
    own = client.get("/v1/consumer/record", headers=keys.headers("consumer")).json()
    other = client.get("/v1/consumer/record", headers=keys.headers("consumer_other"))
    impact = client.get("/v1/consumer/impact", headers=keys.headers("consumer")).json()
    assert [(row["purchase_id"], row["source"]) for row in own] == [
        ("batch-1", "batch_run")
    ]
    assert other.json() == []
    assert impact["kg_co2e_lifetime"] == 200.0
