"""Operator management of the facilities and campaigns files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_support import Keys, build_client
from sqlalchemy.engine import Engine

from greenloop.api.settings import DEFAULT_CAMPAIGNS, DEFAULT_FACILITIES
from greenloop.funding import load_facilities


def _client(engine: Engine, folder: Path) -> TestClient:
    facilities = folder / "facilities.yaml"
    campaigns = folder / "campaigns.yaml"
    shutil.copy(DEFAULT_FACILITIES, facilities)
    shutil.copy(DEFAULT_CAMPAIGNS, campaigns)
    return build_client(engine, facilities_path=facilities, campaigns_path=campaigns)


def test_facilities_round_trip(
    service_engine: Engine, keys: Keys, tmp_path: Path
) -> None:
    client = _client(service_engine, tmp_path)
    current = client.get("/v1/operator/facilities", headers=keys.headers("operator"))
    document = current.json()
    document["facilities"][0]["lender"] = "Another Bank (scenario)"
    replaced = client.put(
        "/v1/operator/facilities", json=document, headers=keys.headers("operator")
    )
    stored = load_facilities(tmp_path / "facilities.yaml")
    assert current.status_code == 200
    assert replaced.status_code == 200, replaced.text
    assert stored.facilities[0].lender == "Another Bank (scenario)"


def test_invalid_facilities_are_rejected(
    service_engine: Engine, keys: Keys, tmp_path: Path
) -> None:
    client = _client(service_engine, tmp_path)
    document = client.get(
        "/v1/operator/facilities", headers=keys.headers("operator")
    ).json()
    document["facilities"][0]["facility_rate"] = "1.5"
    response = client.put(
        "/v1/operator/facilities", json=document, headers=keys.headers("operator")
    )
    assert response.status_code == 422
    assert load_facilities(tmp_path / "facilities.yaml").facilities[0].facility_rate < 1


def test_packaged_examples_are_not_overwritten(client: TestClient, keys: Keys) -> None:
    document = client.get("/v1/operator/facilities", headers=keys.headers("operator"))
    response = client.put(
        "/v1/operator/facilities",
        json=document.json(),
        headers=keys.headers("operator"),
    )
    assert response.status_code == 409
    assert "GREENLOOP_FACILITIES_PATH" in response.json()["detail"]


def test_campaign_needs_known_facility(
    service_engine: Engine, keys: Keys, tmp_path: Path
) -> None:
    client = _client(service_engine, tmp_path)
    document = client.get(
        "/v1/operator/campaigns", headers=keys.headers("operator")
    ).json()
    document["campaigns"][0]["funding"]["facility_id"] = "no-such-facility"
    response = client.put(
        "/v1/operator/campaigns", json=document, headers=keys.headers("operator")
    )
    assert response.status_code == 422
    assert "no-such-facility" in response.json()["detail"]


def test_standards_are_listed(client: TestClient, keys: Keys) -> None:
    response = client.get("/v1/operator/standards", headers=keys.headers("operator"))
    ids = [row["id"] for row in response.json()]
    assert response.status_code == 200
    assert len(ids) >= 5


def test_run_needs_existing_input(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/operator/runs",
        json={"input_path": "/nonexistent/purchases.csv"},
        headers=keys.headers("operator"),
    )
    assert response.status_code == 422
    assert "/nonexistent/purchases.csv" in response.json()["detail"]


def test_runs_list_shows_interrupted_run(
    client: TestClient, keys: Keys, service_engine: Engine
) -> None:
    import dataclasses
    from datetime import UTC, datetime

    from greenloop.store.processes import current_process
    from greenloop.store.runs import mark_interrupted_runs, record_run_start

    this_process = current_process()
    if this_process.start_ticks is None:
        pytest.skip("needs Linux /proc to identify processes")
    # The same process id with another start time means the process has ended.
    ended = dataclasses.replace(this_process, start_ticks=this_process.start_ticks - 1)
    record_run_start(
        service_engine,
        {
            "run_id": "run-killed",
            "input_path": "purchases.csv",
            "input_sha256": "0" * 64,
            "standard": "cn",
            "started_at": datetime(2026, 12, 5, 8, 0, tzinfo=UTC),
        },
        ended,
    )
    mark_interrupted_runs(service_engine)
    response = client.get("/v1/operator/runs", headers=keys.headers("operator"))
    [run] = response.json()
    assert response.status_code == 200
    assert run["status"] == "interrupted"
    assert run["interruption_noticed_at"] is not None
    assert run["interruption_reason"] == "process_ended"
    assert run["heartbeat_at"] is not None
    assert run["host_name"] == this_process.host_name
    assert run["process_id"] == this_process.process_id
