"""RFC 9457 problem details: the one shape of every error response (PROTOCOL.md, "Errors")."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

PROBLEM_TYPE_BASE = "https://sync-server.dev/problems/"


class FieldProblem(msgspec.Struct, frozen=True):
    path: str
    message: str


class ProblemBody(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    errors: list[FieldProblem] | None = None
    request_id: str | None = None


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem+json response."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        *,
        errors: list[FieldProblem] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or code)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


RETRY_AFTER_UNAVAILABLE = 2
"""Seconds a client is told to wait when the database is unavailable (a restart or failover
takes a few; clients add jitter)."""


def retry_later(code: str, detail: str) -> Problem:
    """A 503 that nothing was written for: the same request, sent again after ``Retry-After``
    seconds (with the same op ids), may well succeed."""
    return Problem(503, code, detail, headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})


def unavailable() -> Problem:
    """The answer while the database cannot be reached, or is busy beyond the lock timeout."""
    return retry_later("unavailable", "the database is unavailable; retry shortly")


def concurrent_write() -> Problem:
    """The answer when another transaction changed a stream between this request's read and its
    write (a race the owner lock did not cover): it was rolled back whole, and a retry reads
    the new state."""
    return retry_later("concurrent_write", "the data changed while this request was written; retry")


_encoder = msgspec.json.Encoder()


def problem_response(problem: Problem, request_id: str | None = None) -> Response:
    body = ProblemBody(
        type=PROBLEM_TYPE_BASE + problem.code,
        title=_TITLES.get(problem.status, "Error"),
        status=problem.status,
        code=problem.code,
        detail=problem.detail,
        errors=problem.errors,
        request_id=request_id,
    )
    payload = msgspec.to_builtins(body)
    if problem.extra:
        # Members a specific problem adds (a 409 carries the current state and version, …).
        payload.update(problem.extra)
    return Response(
        _encoder.encode(payload),
        status_code=problem.status,
        media_type="application/problem+json",
        headers=problem.headers,
    )


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


async def handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request_id_of(request))


def validation_errors(error: msgspec.ValidationError, prefix: str = "") -> list[FieldProblem]:
    """msgspec's message (``Expected `int`, got `str` - at `$.ops[3].base_version```) as a path."""
    message = str(error)
    path = ""
    if " - at `$" in message:
        message, _, where = message.rpartition(" - at `$")
        path = where.rstrip("`").lstrip(".")
    full = ".".join(p for p in (prefix, path) if p) or "$"
    return [FieldProblem(full.replace(".[", "["), message)]
