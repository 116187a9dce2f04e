"""The service on the real identifier, lending, impact, finance and ledger."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_support import Keys

from greenloop.api.app import create_app
from greenloop.api.settings import Settings
from greenloop.certify import Role
from greenloop.store import repositories

FACILITY = "cn-green-interbank-2026"
OTHER_FACILITY = "cn-nev-pilot-2026"
TENANTS = {
    "merchant": (Role.MERCHANT, "m-1"),
    "reviewer": (Role.REVIEWER, "r-1"),
    "lender": (Role.LENDER, "l-1"),
    "funder": (Role.FUNDER, FACILITY),
    "funder_other": (Role.FUNDER, OTHER_FACILITY),
    "consumer": (Role.CONSUMER, "u-1"),
}


@pytest.fixture(scope="module")
def platform_client(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, Keys]]:
    folder: Path = tmp_path_factory.mktemp("platform")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'greenloop.sqlite3'}",
        key_dir=folder / "keys",
        rate_limit_per_minute=100_000,
        rate_limit_burst=10_000,
        certified_products_check_seconds=0.0,
    )
    app = create_app(settings)
    engine = app.state.service.engine
    values = {}
    with engine.begin() as connection:
        for name, (role, tenant) in TENANTS.items():
            values[name], _ = repositories.create_api_key(
                connection,
                role=role,
                tenant_id=tenant,
                label=name,
                now=datetime.now(UTC),
            )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, Keys(values)
    engine.dispose()


def _certify_washer(client: TestClient, keys: Keys) -> int:
    product = client.post(
        "/v1/merchant/products",
        json={
            "sku": "wash-9",
            "title": "滚筒洗衣机 10kg",
            "brand": "Haier",
            "model_number": "EG100",
        },
        headers=keys.headers("merchant"),
    ).json()
    certification = client.post(
        "/v1/merchant/certifications",
        json={
            "product_id": product["id"],
            "claimed_category": "appliance",
            "energy_label_grade": 1,
            "documents": [{"name": "energy-label.pdf", "sha256": "c" * 64}],
        },
        headers=keys.headers("merchant"),
    ).json()
    client.post(
        f"/v1/reviewer/certifications/{certification['id']}/approve",
        json={"reason": "grade 1 label on the filing"},
        headers=keys.headers("reviewer"),
    )
    client.post(
        f"/v1/lender/certifications/{certification['id']}/certify",
        json={"reason": "policy met"},
        headers=keys.headers("lender"),
    )
    return int(certification["id"])


def test_confirmed_loan_reaches_facility(
    platform_client: tuple[TestClient, Keys],
) -> None:
    client, keys = platform_client
    certification_id = _certify_washer(client, keys)
    purchase = {
        "title": "滚筒洗衣机 10kg",
        "sku": "wash-9",
        "amount": "3200.00",
        "region": "CN-SH",
        "user_id": "u-1",
    }
    decision = client.post(
        "/v1/checkout/decisions", json=purchase, headers=keys.headers("merchant")
    ).json()
    confirmation = client.post(
        "/v1/checkout/confirmations",
        json={**purchase, "purchase_id": "p-real-1", "installments": 12},
        headers={**keys.headers("merchant"), "Idempotency-Key": "real-1"},
    )
    assert confirmation.status_code == 201, confirmation.text
    awards = confirmation.json()["awards"]
    allocations = client.get(
        "/v1/funder/allocations", headers=keys.headers("funder")
    ).json()
    other_receipt = client.get(
        "/v1/funder/receipts/p-real-1", headers=keys.headers("funder_other")
    )
    assert decision["verdict"]["status"] == "green"
    assert len(decision["offers"]) == 4
    # The example campaign runs 2026-01-15 to 2026-12-31 for 3, 6 or 12 periods.
    campaigns = {item["campaign_id"]: item for item in decision["incentives"]}
    if datetime.now(UTC).date() <= date(2026, 12, 31):
        assert campaigns["appliance-interest-free-2026"]["periods"] == [3, 6, 12]
    assert confirmation.status_code == 201, confirmation.text
    assert awards[0]["kind"] == "green_loan"
    assert awards[0]["facility_id"] == FACILITY
    assert isinstance(awards[0]["ledger_index"], int)
    assert [row["purchase_id"] for row in allocations] == ["p-real-1"]
    incentives = client.get("/v1/consumer/incentives", headers=keys.headers("consumer"))
    if datetime.now(UTC).date() <= date(2026, 12, 31):
        awarded = [item["award"]["campaign_id"] for item in incentives.json()]
        assert "appliance-interest-free-2026" in awarded
    assert other_receipt.status_code == 404

    revoked = client.post(
        f"/v1/lender/certifications/{certification_id}/revoke",
        json={"reason": "label withdrawn"},
        headers=keys.headers("lender"),
    )
    after = client.get("/v1/funder/allocations", headers=keys.headers("funder")).json()
    record = client.get("/v1/consumer/record", headers=keys.headers("consumer")).json()
    assert revoked.status_code == 200, revoked.text
    assert after[0]["released_on"] is not None
    assert record[0]["verdict_status"] == "needs_review"


def test_funder_sees_only_own_facility(
    platform_client: tuple[TestClient, Keys],
) -> None:
    client, keys = platform_client
    own = client.get("/v1/funder/facility", headers=keys.headers("funder"))
    assert own.status_code == 200, own.text
    assert own.json()["facility_id"] == FACILITY
