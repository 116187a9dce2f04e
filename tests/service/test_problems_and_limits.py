"""Problem details, body size limits, rate limits and secrets kept out of logs."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from service_support import Keys, build_client
from sqlalchemy.engine import Engine

from greenloop.api.limits import RateLimiter

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


def test_unknown_path_is_problem(client: TestClient) -> None:
    response = client.get("/v1/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert set(response.json()) >= PROBLEM_FIELDS
    assert response.json()["instance"] == "/v1/nowhere"


def test_validation_error_lists_fields(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/checkout/decisions",
        json={"title": "Fridge", "amount": "-5", "currency": "cny"},
        headers=keys.headers("merchant"),
    )
    body = response.json()
    locations = {tuple(error["location"]) for error in body["errors"]}
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert ("body", "amount") in locations
    assert ("body", "currency") in locations
    assert body["status"] == 422


def test_unknown_field_is_rejected(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/checkout/decisions",
        json={"title": "Fridge", "amount": "5", "discount": "1"},
        headers=keys.headers("merchant"),
    )
    assert response.status_code == 422


def test_large_body_is_rejected(service_engine: Engine, keys: Keys) -> None:
    client = build_client(service_engine, max_body_bytes=1024)
    response = client.post(
        "/v1/checkout/decisions",
        content=b'{"title": "' + b"x" * 2000 + b'"}',
        headers={**keys.headers("merchant"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert "1024" in response.json()["detail"]


def test_chunked_large_body_is_rejected(service_engine: Engine, keys: Keys) -> None:
    client = build_client(service_engine, max_body_bytes=1024)

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"x" * 200

    response = client.post(
        "/v1/checkout/decisions",
        content=chunks(),
        headers={**keys.headers("merchant"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_rate_limit_returns_429(service_engine: Engine, keys: Keys) -> None:
    client = build_client(service_engine, rate_limit_per_minute=60, rate_limit_burst=3)
    statuses = [
        client.get(
            "/v1/merchant/products", headers=keys.headers("merchant")
        ).status_code
        for _ in range(5)
    ]
    limited = client.get("/v1/merchant/products", headers=keys.headers("merchant"))
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1


def test_rate_limit_is_per_key(service_engine: Engine, keys: Keys) -> None:
    client = build_client(service_engine, rate_limit_per_minute=60, rate_limit_burst=2)
    for _ in range(3):
        client.get("/v1/merchant/products", headers=keys.headers("merchant"))
    other = client.get("/v1/merchant/products", headers=keys.headers("merchant_other"))
    assert other.status_code == 200


def test_bucket_refills_over_time() -> None:
    limiter = RateLimiter(per_minute=60, burst=1)
    first = limiter.acquire("k", now=100.0)
    empty = limiter.acquire("k", now=100.5)
    refilled = limiter.acquire("k", now=101.0)
    assert first == 0.0
    assert empty == pytest.approx(0.5)
    assert refilled == 0.0


def test_invalid_rate_limit_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        RateLimiter(per_minute=0, burst=1)


def test_logs_hold_no_api_key(
    client: TestClient, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.post(
        "/v1/checkout/confirmations",
        json={
            "title": "Kettle",
            "amount": "9.00",
            "purchase_id": "p-l",
            "user_id": "u",
        },
        headers={**keys.headers("merchant"), "Idempotency-Key": "log-test"},
    )
    client.post(
        "/v1/operator/api-keys",
        json={"role": "consumer", "tenant_id": "u-9"},
        headers=keys.headers("operator"),
    )
    client.get(
        "/v1/merchant/products", headers={"Authorization": "Bearer glk_x_secret"}
    )
    secret_parts = [value.split("_", 2)[2] for value in keys.values.values()]
    logged = caplog.text
    assert "confirmed" in logged
    for secret in secret_parts:
        assert secret not in logged
    assert "glk_x_secret" not in logged


def test_api_key_creation_shows_key_once(client: TestClient, keys: Keys) -> None:
    created = client.post(
        "/v1/operator/api-keys",
        json={"role": "funder", "tenant_id": "facility-9"},
        headers=keys.headers("operator"),
    )
    listed = client.get("/v1/operator/api-keys", headers=keys.headers("operator"))
    new_key = created.json()["api_key"]
    assert created.status_code == 201
    assert new_key.startswith("glk_")
    assert new_key not in listed.text
    assert all(item["api_key"] is None for item in listed.json())
