"""``/openapi.json`` and ``/docs``: every route described, and the description honest.

The schemathesis run sends generated requests for every operation of the document to a real
server on each backend, authenticated, and fails on any 5xx, any status the document does not
list, and any answer whose body or content type breaks the document.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from api import sign_up
from conftest import BACKENDS, Server, serve_module
from hypothesis import HealthCheck, settings
from schemathesis import checks
from starlette.routing import Route

from sync_server.app import build_operations, build_routes, openapi_document

# The suite's run: enough to reach the statuses of every operation, bounded to stay well under a
# minute for both backends. A longer sweep by hand: SYNC_SCHEMATHESIS_EXAMPLES=300 also turns on
# schemathesis's coverage phase (boundary and invalid values of every parameter and field).
EXAMPLES = int(os.environ.get("SYNC_SCHEMATHESIS_EXAMPLES", "12"))
SWEEP = EXAMPLES > 12
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


def test_every_route_is_described_and_every_description_is_a_route() -> None:
    routed = {
        (method, route.path)
        for route in build_routes()
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    described = {(operation.method, operation.path) for operation in build_operations()}
    assert routed == described


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Live updates answer late by design (an event stream stays open, a long poll waits): on
    this module's server they end within a moment, so every generated request gets its answer."""
    yield from serve_module(
        request, tmp_path_factory, SYNC_LIVE_IDLE_TIMEOUT="0.2", SYNC_LIVE_MAX_WAIT="1"
    )


@pytest.fixture(scope="module")
def http(server: Any) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def test_the_document_is_openapi_3_1_with_a_schema_for_every_answer(http: httpx.Client) -> None:
    response = http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert document == openapi_document()
    schemathesis.openapi.from_dict(document)  # refuses an invalid document
    operations = [op for methods in document["paths"].values() for op in methods.values()]
    assert len({op["operationId"] for op in operations}) == len(operations)
    row = document["components"]["schemas"]["ShowRow"]
    assert {"net", "costs_total", "fee", "version", "created_at"} <= set(row["properties"])
    for path, methods in document["paths"].items():
        for operation in methods.values():
            for status, answer in operation["responses"].items():
                if int(status) >= 400 and path != "/ready":  # /ready answers its own JSON
                    assert "application/problem+json" in answer["content"]


def test_every_entity_write_documents_the_idempotency_key() -> None:
    document = openapi_document()
    writes = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if path.startswith(("/v1/shows", "/v1/costs", "/v1/workouts", "/v1/inventory"))
        and method in ("post", "patch", "delete")
    ]
    assert len(writes) == 4 * 3 + 3  # create, change, delete of each collection; 3 actions
    for path, method, operation in writes:
        headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
        assert headers["Idempotency-Key"]["schema"]["maxLength"] == 255, (method, path)
        assert "422" in operation["responses"], (method, path)  # a key reused


def test_the_docs_page_renders_the_document_without_other_hosts(http: httpx.Client) -> None:
    response = http.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'fetch("/openapi.json")' in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "the page loads something remote"
    assert "connect-src 'self'" in response.headers["content-security-policy"]


@pytest.fixture(scope="module")
def token(http: httpx.Client) -> str:
    return sign_up(http).token


# The document the server serves, built in-process (a test checks the server serves this one).
schema = schemathesis.openapi.from_dict(
    openapi_document(),
    config=schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}}),
)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    case: Any, server: Any, token: str
) -> None:
    case.call_and_validate(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
    )
