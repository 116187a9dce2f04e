"""A bounded schemathesis run: every operation against its OpenAPI schema.

Each operation is called with a key of its own role, so generated requests
reach the handlers. The run is bounded by a fixed number of examples per
operation and a time limit for the whole test.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from service_support import Keys

ROLE_KEYS = {
    "/v1/checkout/": "merchant",
    "/v1/merchant/": "merchant",
    "/v1/reviewer/": "reviewer",
    "/v1/lender/": "lender",
    "/v1/funder/": "funder",
    "/v1/consumer/": "consumer",
    "/v1/operator/": "operator",
}
EXAMPLES_PER_OPERATION = 5


def _explore(operation: Any, headers: dict[str, str], checks: list[Any]) -> None:
    """Call one operation with generated requests and run the checks on each."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def call(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    call()


@pytest.mark.timeout(240)
def test_operations_conform_to_schema(client: TestClient, keys: Keys) -> None:
    api_schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 30
    for operation in operations:
        name = next(
            key
            for prefix, key in ROLE_KEYS.items()
            if operation.path.startswith(prefix)
        )
        headers = {"Authorization": f"Bearer {keys[name]}"}

        _explore(operation, headers, checks)
