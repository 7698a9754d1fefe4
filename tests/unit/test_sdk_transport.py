"""The SDK's HTTP layer against ``httpx.MockTransport``: what is retried, how long it waits,
and what reaches the caller."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from client_sdk import ApiError, NetworkError, RateLimited, RetryPolicy, ServerError
from client_sdk.retry import parse_retry_after
from client_sdk.transport import Transport, problem_of

Handler = Callable[[httpx.Request], httpx.Response]


def scripted(
    *answers: httpx.Response | Exception,
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that gives ``answers`` in order (raising the exceptions), recording requests."""
    seen: list[httpx.Request] = []
    queue: Iterator[httpx.Response | Exception] = iter(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = next(queue)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


def problem(status: int, code: str, **headers: str) -> httpx.Response:
    body = {"type": "about:blank", "title": "x", "status": status, "code": code, "detail": code}
    return httpx.Response(status, json=body, headers=headers)


def transport_for(mock: httpx.MockTransport, sleeps: list[float], attempts: int = 4) -> Transport:
    policy = RetryPolicy(attempts=attempts, base_delay=1.0, max_delay=8.0, rng=random.Random(7))
    return Transport("http://server", transport=mock, retry=policy, sleep=sleeps.append)


OK = httpx.Response(200, json={"ok": True})


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_overload_and_server_errors_are_retried(status: int) -> None:
    mock, seen = scripted(problem(status, "busy"), problem(status, "busy"), OK)
    sleeps: list[float] = []
    response = transport_for(mock, sleeps).request("POST", "/v1/sync/push", body={})
    assert response.status_code == 200
    assert len(seen) == 3 and len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 415, 422])
def test_other_client_errors_are_never_retried(status: int) -> None:
    mock, seen = scripted(problem(status, "nope"))
    sleeps: list[float] = []
    response = transport_for(mock, sleeps).request("POST", "/v1/sync/push", body={})
    assert response.status_code == status
    assert len(seen) == 1 and sleeps == []


def test_network_errors_are_retried_then_raised() -> None:
    failure = httpx.ReadError("reset by peer")
    mock, seen = scripted(failure, failure, failure, failure)
    with pytest.raises(NetworkError, match="reset by peer"):
        transport_for(mock, []).request("GET", "/v1/sync/pull")
    assert len(seen) == 4


def test_server_errors_that_persist_are_raised_typed() -> None:
    mock, _ = scripted(*[problem(503, "unavailable")] * 4)
    with pytest.raises(ServerError) as raised:
        transport_for(mock, []).request("GET", "/v1/sync/pull")
    assert (raised.value.status, raised.value.code) == (503, "unavailable")


def test_retry_after_is_a_floor_under_the_backoff() -> None:
    mock, _ = scripted(problem(429, "rate_limited", **{"Retry-After": "7"}), OK)
    sleeps: list[float] = []
    transport_for(mock, sleeps).request("GET", "/v1/sync/pull")
    assert sleeps == [7.0]


def test_a_retry_after_beyond_the_limit_is_reported_not_waited() -> None:
    mock, seen = scripted(problem(429, "rate_limited", **{"Retry-After": "3600"}))
    sleeps: list[float] = []
    with pytest.raises(RateLimited) as raised:
        transport_for(mock, sleeps).request("GET", "/v1/sync/pull")
    assert raised.value.retry_after == 3600 and sleeps == [] and len(seen) == 1


def test_a_request_that_may_have_done_something_is_not_resent_unless_idempotent() -> None:
    mock, seen = scripted(httpx.ReadError("lost"), OK)
    with pytest.raises(NetworkError):
        transport_for(mock, []).request("POST", "/v1/auth/refresh", body={}, idempotent=False)
    assert len(seen) == 1
    mock, seen = scripted(problem(500, "bug"), OK)
    with pytest.raises(ServerError):
        transport_for(mock, []).request("POST", "/v1/auth/refresh", body={}, idempotent=False)
    assert len(seen) == 1


def test_a_request_that_never_left_is_resent_even_if_not_idempotent() -> None:
    mock, seen = scripted(httpx.ConnectError("refused"), problem(503, "unavailable"), OK)
    response = transport_for(mock, []).request("POST", "/v1/auth/login", body={}, idempotent=False)
    assert response.status_code == 200 and len(seen) == 3


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0, rng=random.Random(1))
    for retry, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [policy.delay(retry) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8  # the whole range is used, not a fixed delay


def test_retry_after_in_both_forms() -> None:
    now = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Fri, 20 Nov 2026 10:00:30 GMT", now) == 30.0
    assert parse_retry_after("Fri, 20 Nov 2026 09:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_a_problem_body_is_read_into_the_error() -> None:
    body = {"status": 422, "code": "validation_failed", "detail": "bad", "request_id": "r-1",
            "errors": [{"path": "ops[0].op_id", "message": "must be a UUID"}]}  # fmt: skip
    mock, _ = scripted(httpx.Response(422, json=body))
    error = problem_of(transport_for(mock, []).request("POST", "/v1/sync/push", body={}))
    assert isinstance(error, ApiError)
    assert (error.status, error.code, error.detail, error.request_id) == (
        422,
        "validation_failed",
        "bad",
        "r-1",
    )
    assert error.errors == body["errors"]
